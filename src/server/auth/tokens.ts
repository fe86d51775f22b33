// Auth tokens that every member can check: etcd's simple tokens live in the
// memory of the member that issued them (etcd replicates their issue through
// its log); quorumlog's are signed instead, with HMAC-SHA256 under the key
// that AuthEnable drew and the log replicated (src/services/auth), so a token
// from any member holds on every member, and on a new leader after a failover.
//
// A token reads   <user>.<passwordRevision>.<expiresAtMs>.<nonce>.<mac>
// (user, nonce and mac in base64url). It stops holding when it expires (the
// TTL, etcd's --auth-token-ttl, default 300 s), when the user is deleted or
// its password changes (the user's passwordRevision moves), and when auth is
// disabled and enabled again (a new key). Tokens are bearer secrets: never
// log them.

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export interface TokenClaims {
  readonly user: string;
  readonly passwordRevision: number;
  readonly expiresAtMs: number;
}

/** Tokens longer than this are not ours (a name of 255 bytes gives about 420). */
const TOKEN_MAX_CHARS = 1024;
const MAC_BYTES = 32;

function mac(key: Uint8Array, payload: string): Buffer {
  return createHmac('sha256', key).update(payload).digest();
}

/** A token for `claims`, signed with `key`. */
export function signToken(key: Uint8Array, claims: TokenClaims): string {
  const payload = `${Buffer.from(claims.user, 'utf8').toString('base64url')}.${claims.passwordRevision}.${claims.expiresAtMs}.${randomBytes(12).toString('base64url')}`;
  return `${payload}.${mac(key, payload).toString('base64url')}`;
}

/** The claims of a token signed with `key`, or null when it is not one (malformed, forged, or signed with another key). Does not check expiry. */
export function verifyToken(key: Uint8Array, token: string): TokenClaims | null {
  if (key.byteLength === 0 || typeof token !== 'string' || token.length > TOKEN_MAX_CHARS) return null;
  const cut = token.lastIndexOf('.');
  if (cut < 0) return null;
  const payload = token.slice(0, cut);
  const given = Buffer.from(token.slice(cut + 1), 'base64url');
  if (given.byteLength !== MAC_BYTES || !timingSafeEqual(given, mac(key, payload))) return null;
  const parts = payload.split('.');
  if (parts.length !== 4) return null;
  const [user64, rev, exp] = parts as [string, string, string, string];
  const passwordRevision = Number(rev);
  const expiresAtMs = Number(exp);
  if (!Number.isSafeInteger(passwordRevision) || !Number.isSafeInteger(expiresAtMs)) return null;
  return { user: Buffer.from(user64, 'base64url').toString('utf8'), passwordRevision, expiresAtMs };
}
