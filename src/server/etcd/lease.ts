// etcd's Lease service over a KvBackend: LeaseGrant, LeaseRevoke,
// LeaseKeepAlive (a bidirectional stream), LeaseTimeToLive and LeaseLeases,
// with etcd's messages and status codes.
//
// Grant and revoke are log commands (backend.write): the grant's id and TTL
// are decided here, before proposing, so that every replica applies the same
// lease: a client's id of 0 gets a random nonzero 53-bit id (another random
// one if it is taken), and a TTL below the minimum gets the minimum, as etcd's
// lessor does. Keep-alive and time-to-live go to backend.leases (the leader's
// lessor, src/server/lessor.ts). A lease's keys are deleted by its revoke, in
// one revision (src/services/kv/store.ts), so watchers see the deletes.
//
// etcd's behaviours kept: a keep-alive or time-to-live of an unknown lease is
// not an error (TTL 0, resp. TTL -1); a revoke of one is "requested lease not
// found" (NOT_FOUND); a TTL above 9,000,000,000 s is "too large lease TTL"
// (OUT_OF_RANGE); a taken id is "lease already exists" (FAILED_PRECONDITION).
// A keep-alive stream that cannot reach a leader in time ends with etcd's
// "no leader" / "request timed out" (UNAVAILABLE), and clients reopen it.

import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { Needs } from '../../services/auth/needs.js';
import { MAX_LEASE_TTL_SECONDS, type KvCommand, type KvResult } from '../../services/kv/types.js';
import type { KvBackend, LeaseKeeper } from './backend.js';
import { parseInt64, type Int64, type WireHeader } from './convert.js';
import { EtcdRequestError, ETCD_STATUS, etcdStatusOf, KV_ERROR_STATUS, serviceError } from './errors.js';

/** etcdserverpb.LeaseGrantRequest as received. */
export interface WireLeaseGrantRequest {
  TTL?: Int64;
  ID?: Int64;
}

/** A request naming one lease (Revoke, KeepAlive, TimeToLive). */
export interface WireLeaseIdRequest {
  ID?: Int64;
  keys?: boolean;
}

/** What the Lease handlers need from the server they are added to (server.ts). */
export interface LeaseServiceContext {
  readonly backend: KvBackend;
  readonly leases: LeaseKeeper;
  readonly header: (revision: number) => WireHeader;
  /** Wraps a unary handler: result or etcd status back to the client, nothing escapes (server.ts's `unary`). */
  readonly unary: <Req>(method: string, fn: (req: Req, call: CallerOf) => Promise<object> | object) => grpc.handleUnaryCall<unknown, unknown>;
  readonly logger: Logger;
  /** With auth: refuses a caller without `needs` (server.ts's `check`; a no-op while auth is off). */
  readonly check: (call: CallerOf, needs: Needs) => unknown;
  /** Sends a command through the log as the caller's, checked and stamped (server.ts's `submit`). */
  readonly submit: (call: CallerOf, cmd: KvCommand) => Promise<KvResult>;
}

/** What identifies a call's caller (its metadata). */
type CallerOf = { readonly metadata: grpc.Metadata };

const NO_NEEDS: Needs = [];

/** Keep-alives one stream may have waiting for an answer; beyond, the stream ends with "too many requests". */
export const KEEPALIVE_MAX_PENDING = 1024;
/** Attempts at a random id before giving up (a collision at 53 bits is already unlikely once). */
const GRANT_ID_ATTEMPTS = 4;

/** A random lease id in [1, 2^53 - 1]. */
export function randomLeaseId(): number {
  for (;;) {
    const id = Number(randomBytes(8).readBigUInt64BE() >> 11n);
    if (id !== 0) return id;
  }
}

/** A command's result, or etcd's status for its error. */
function check<T extends KvResult['type']>(result: KvResult, expected: T): Extract<KvResult, { type: T }> {
  if (result.type === 'error') {
    const s = KV_ERROR_STATUS[result.error];
    if (s === undefined) throw new Error(`store returned unknown error code ${String(result.error)}: ${result.message}`);
    throw new EtcdRequestError(s, { cause: new Error(result.message) });
  }
  if (result.type !== expected) throw new Error(`store answered a ${expected} command with a ${result.type} result`);
  return result as Extract<KvResult, { type: T }>;
}

/** The Lease service's handlers. */
export function leaseHandlers(ctx: LeaseServiceContext): grpc.UntypedServiceImplementation {
  const { backend, leases, header, unary, logger, check: checkCaller, submit } = ctx;
  const store = backend.store;

  async function grant(req: WireLeaseGrantRequest, call: CallerOf): Promise<object> {
    const ttlAsked = parseInt64(req.TTL, 'TTL');
    const idAsked = parseInt64(req.ID, 'ID');
    if (ttlAsked > MAX_LEASE_TTL_SECONDS) throw new EtcdRequestError(KV_ERROR_STATUS.leaseTtlTooLarge);
    const ttlSeconds = Math.max(ttlAsked, leases.minTtlSeconds, 1);
    for (let attempt = 1; ; attempt++) {
      const id = idAsked !== 0 ? idAsked : randomLeaseId();
      const result = await submit(call, { type: 'leaseGrant', request: { id, ttlSeconds } });
      if (result.type === 'error' && result.error === 'leaseExists' && idAsked === 0 && attempt < GRANT_ID_ATTEMPTS) continue;
      const granted = check(result, 'leaseGrant');
      return { header: header(granted.revision), ID: String(granted.id), TTL: String(granted.ttlSeconds), error: '' };
    }
  }

  async function revoke(req: WireLeaseIdRequest, call: CallerOf): Promise<object> {
    const id = parseInt64(req.ID, 'ID');
    if (id === 0) throw new EtcdRequestError(KV_ERROR_STATUS.leaseNotFound);
    const result = check(await submit(call, { type: 'leaseRevoke', request: { id } }), 'leaseRevoke');
    return { header: header(result.revision) };
  }

  async function timeToLive(req: WireLeaseIdRequest, call: CallerOf): Promise<object> {
    const id = parseInt64(req.ID, 'ID');
    checkCaller(call, NO_NEEDS);
    const t = id === 0 ? null : await leases.timeToLive(id);
    if (t === null) return { header: header(store.revision), ID: String(id), TTL: '-1', grantedTTL: '0', keys: [] };
    let keys: Buffer[] = [];
    if (req.keys === true) {
      await backend.readBarrier();
      const attached = store.leaseKeys(id);
      checkCaller(call, attached.map((key) => ({ resource: 'kv', access: 'read', key, rangeEnd: new Uint8Array(0) })));
      keys = attached.map((k) => Buffer.from(k));
    }
    return { header: header(store.revision), ID: String(id), TTL: String(t.remainingSeconds), grantedTTL: String(t.grantedSeconds), keys };
  }

  async function list(_req: object, call: CallerOf): Promise<object> {
    checkCaller(call, NO_NEEDS);
    await backend.readBarrier();
    return { header: header(store.revision), leases: store.leases().map((l) => ({ ID: String(l.id) })) };
  }

  /** One keep-alive stream: answers in request order; ends with etcd's status on a failure, or when the client ends. */
  function keepAlive(call: grpc.ServerDuplexStream<WireLeaseIdRequest, unknown>): void {
    let closed = false;
    let waiting = 0;
    let chain: Promise<void> = Promise.resolve();
    const fail = (err: unknown): void => {
      if (closed) return;
      closed = true;
      let s = etcdStatusOf(err);
      if (s === null) {
        logger.error({ err }, 'etcd API: unexpected error in a lease keep-alive stream');
        s = { code: grpc.status.INTERNAL, message: 'etcdserver: internal error in LeaseKeepAlive' };
      }
      call.emit('error', serviceError(s));
    };
    call.on('data', (req: WireLeaseIdRequest) => {
      if (closed) return;
      let id: number;
      try {
        id = parseInt64(req.ID, 'ID');
      } catch (err) {
        fail(err);
        return;
      }
      if (waiting >= KEEPALIVE_MAX_PENDING) {
        fail(new EtcdRequestError(ETCD_STATUS.tooManyRequests));
        return;
      }
      waiting++;
      chain = chain.then(async () => {
        try {
          if (closed) return;
          checkCaller(call, NO_NEEDS); // a token that stopped holding (expired, user deleted) ends the stream
          const ttl = id === 0 ? 0 : await leases.keepAlive(id);
          if (!closed) call.write({ header: header(store.revision), ID: String(id), TTL: String(ttl) });
        } catch (err) {
          fail(err);
        } finally {
          waiting--;
        }
      });
    });
    call.on('end', () => {
      void chain.then(() => {
        if (closed) return;
        closed = true;
        call.end();
      });
    });
    call.on('error', () => {
      closed = true;
    });
    call.on('cancelled', () => {
      closed = true;
    });
  }

  return {
    LeaseGrant: unary<WireLeaseGrantRequest>('LeaseGrant', grant),
    LeaseRevoke: unary<WireLeaseIdRequest>('LeaseRevoke', revoke),
    LeaseKeepAlive: keepAlive,
    LeaseTimeToLive: unary<WireLeaseIdRequest>('LeaseTimeToLive', timeToLive),
    LeaseLeases: unary<object>('LeaseLeases', list),
  };
}
