// Who is asking, and may they: the server side of auth, used by every
// service a client can reach (etcd's KV, Watch, Lease, Cluster, Maintenance
// and Auth; the quorum queues; the metadata log).
//
// A request's identity is its `token` metadata (from Authenticate, tokens.ts)
// or, with client TLS and clientCertAuth, its certificate's common name, as
// etcd does it. While auth is off there is no identity and everything is
// allowed. While it is on, a request without one is refused ("user name is
// empty"), a bad token is refused ("invalid auth token", which makes etcd's
// clients authenticate again), and a request that needs more than the user's
// roles grant is refused ("permission denied") before it costs a log entry or
// a read. Writes carry the identity into the log as a stamp, and the auth
// gate checks them again where they apply (src/services/auth/gate.ts).
//
// Checks are synchronous against this member's applied auth state, and a
// stamp carries the auth revision they were made at: make the check and the
// stamp in the same turn (identify → require → stamp), or call identify again.

import { allowed, type Needs } from '../../services/auth/needs.js';
import type { AuthStamp } from '../../services/auth/codec.js';
import { isAuthDenied, type AuthDeniedResult } from '../../services/auth/types.js';
import type { AuthStateMachine } from '../../services/auth/state-machine.js';
import { AuthRefusedError, ETCD_STATUS, EtcdRequestError } from '../etcd/errors.js';
import { signToken, verifyToken, type TokenClaims } from './tokens.js';

/** An identified user, and the auth revision the identification was made at. */
export interface Principal {
  readonly user: string;
  readonly revision: number;
}

export interface AuthorizerOptions {
  /** Lifetime of a token from Authenticate (etcd's --auth-token-ttl; default 300 s). */
  readonly tokenTtlMs?: number;
  /** With client TLS: a request without a token is its certificate's common name (etcd's --client-cert-auth). */
  readonly clientCertAuth?: boolean;
  /** The wall clock (tests pass their own). Tokens carry an absolute expiry: members' clocks must roughly agree. */
  readonly now?: () => number;
}

/** What a request brings to identify itself. */
export interface Credentials {
  readonly token?: string | undefined;
  /** The verified client certificate's common name, when the connection has one. */
  readonly certCommonName?: string | undefined;
}

const TOKEN_TTL_MS_DEFAULT = 300_000;
const TOKEN_CACHE_MAX = 10_000;

/** Auth outcome counters (metrics; never names or tokens). */
export interface AuthCounters {
  invalidTokens: number;
  missingIdentity: number;
  permissionDenied: number;
  /** Authenticate refused for a wrong user name or password (src/server/etcd/auth.ts). */
  authFailed: number;
}

export class Authorizer {
  readonly tokenTtlMs: number;
  readonly clientCertAuth: boolean;
  readonly counters: AuthCounters = { invalidTokens: 0, missingIdentity: 0, permissionDenied: 0, authFailed: 0 };
  private readonly now: () => number;
  /** Verified tokens (the signature check is done once); emptied when the key changes. */
  private readonly verified = new Map<string, TokenClaims>();
  private verifiedKey: Uint8Array | null = null;

  constructor(readonly state: AuthStateMachine, opts: AuthorizerOptions = {}) {
    this.tokenTtlMs = opts.tokenTtlMs ?? TOKEN_TTL_MS_DEFAULT;
    if (!(this.tokenTtlMs > 0)) throw new RangeError(`tokenTtlMs must be positive, got ${this.tokenTtlMs}`);
    this.clientCertAuth = opts.clientCertAuth ?? false;
    this.now = opts.now ?? Date.now;
  }

  get enabled(): boolean {
    return this.state.enabled;
  }

  /**
   * The request's user, or null while auth is off. Throws AuthRefusedError
   * ('userEmpty') for a request with no identity, EtcdRequestError
   * (invalid auth token) for a token that does not hold.
   */
  identify(c: Credentials): Principal | null {
    const auth = this.state;
    if (!auth.enabled) return null;
    if (c.token !== undefined && c.token !== '') {
      const claims = this.claims(c.token);
      const u = claims === null ? undefined : auth.user(claims.user);
      if (claims === null || claims.expiresAtMs <= this.now() || u === undefined || u.passwordRevision !== claims.passwordRevision) {
        this.counters.invalidTokens++;
        throw new EtcdRequestError(ETCD_STATUS.invalidAuthToken);
      }
      return { user: claims.user, revision: auth.revision };
    }
    if (this.clientCertAuth && c.certCommonName !== undefined && c.certCommonName !== '') return { user: c.certCommonName, revision: auth.revision };
    this.counters.missingIdentity++;
    throw new AuthRefusedError('userEmpty');
  }

  /** Throws AuthRefusedError('permissionDenied') unless `p` (null: auth is off) has every need. */
  require(p: Principal | null, needs: Needs): void {
    if (p === null) return;
    if (!allowed(this.state, p.user, needs)) {
      this.counters.permissionDenied++;
      throw new AuthRefusedError('permissionDenied');
    }
  }

  /** identify() then require(): the principal (null while auth is off). */
  check(c: Credentials, needs: Needs): Principal | null {
    const p = this.identify(c);
    this.require(p, needs);
    return p;
  }

  /** The stamp a write of `p` goes into the log with; null while auth is off (the command goes unstamped). */
  stamp(p: Principal | null): AuthStamp | null {
    return p === null ? null : { kind: 'user', user: p.user, revision: p.revision };
  }

  /** A new token for `user` (who must exist). */
  issue(user: string): string {
    const u = this.state.user(user);
    if (u === undefined) throw new AuthRefusedError('userNotFound');
    return signToken(this.state.tokenKey, { user, passwordRevision: u.passwordRevision, expiresAtMs: this.now() + this.tokenTtlMs });
  }

  private claims(token: string): TokenClaims | null {
    const key = this.state.tokenKey;
    if (key !== this.verifiedKey) {
      this.verified.clear();
      this.verifiedKey = key;
    }
    const hit = this.verified.get(token);
    if (hit !== undefined) return hit;
    const claims = verifyToken(key, token);
    if (claims !== null) {
      if (this.verified.size >= TOKEN_CACHE_MAX) this.verified.clear();
      this.verified.set(token, claims);
    }
    return claims;
  }
}

/** A stamped write the auth state moved past before it applied is checked and sent again, this many times in all. */
const STAMPED_WRITE_ATTEMPTS = 3;

/**
 * Sends a write stamped as the principal `check` returns (checking it against
 * the current auth state; null while auth is off). When the gate answers that
 * the auth state moved on since (etcd's "revision of auth store is old"),
 * checks it again and sends it again, up to STAMPED_WRITE_ATTEMPTS in all: a
 * client sees that error only while auth keeps changing. Resolves with the
 * last answer (possibly still a refusal).
 */
export async function sendStamped<R>(authz: Authorizer | undefined, check: () => Principal | null, send: (stamp: AuthStamp | null) => Promise<R | AuthDeniedResult>): Promise<R | AuthDeniedResult> {
  for (let attempt = 1; ; attempt++) {
    const p = check();
    const result = await send(authz?.stamp(p) ?? null);
    if (!(isAuthDenied(result) && result.error === 'oldRevision' && attempt < STAMPED_WRITE_ATTEMPTS)) return result;
  }
}
