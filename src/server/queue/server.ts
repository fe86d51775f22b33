// The quorum queue gRPC service (proto/quorumlog/queue.proto, package
// quorumlog.queue.v1) over a QueueBackend: Declare, Publish (answered only
// once the message is committed: the publisher confirm), Consume (a server
// stream: the consumer's id, then its deliveries), Ack, Nack and Stats.
//
// Consumers. A Consume stream is served by the node it reached: that node
// picks the consumer's id, registers the stream, then proposes the attach;
// the queue state machine assigns deliveries when commands apply, on every
// replica, and this node writes the 'delivered' events of its own consumers
// to their streams (a delivery applied before the attach's answer waits
// until the stream's first message, the consumer's id, is written). After a
// snapshot is installed, each stream is sent the deliveries it holds in the
// state that it has not been sent yet. Acks and nacks are ordinary log
// commands and may reach any node.
//
// A consumer ends (its unacknowledged messages go back to the queue) when:
// - its stream ends (client cancel, connection lost): this node proposes the
//   cancel; a failed proposal is retried by the reconciler below;
// - its node is considered down: see src/server/queue/liveness.ts (the
//   leader proposes nodeDown for a node it has not heard from; a starting
//   node proposes it for itself). A stream whose consumer the log removed
//   ends with UNAVAILABLE: the client consumes again;
// - its queue is deleted (through the AMQP API): the stream ends with
//   NOT_FOUND, and what it held is gone with the queue.
// The reconciler: every `reconcileIntervalMs`, consumers that the applied
// state lists for this node but that no stream here serves (a cancel that
// failed, an attach whose answer was lost) are cancelled through the log.
//
// Auth (docs/QUEUES.md, "Permissions"): with an `authorizer`, while auth is
// on, every request is checked when it arrives against the caller's
// permissions on queue names (src/services/auth/needs.ts queueCommandNeeds),
// and its command goes into the log stamped with the caller, where the auth
// gate checks it again. Stats of every queue lists only the queues the caller
// may read. A Consume stream whose caller may no longer read its queue (a
// role revoked, the user deleted, its token no longer valid) ends with the
// refusal, and its consumer is cancelled, as etcd cancels such a watch.
//
// Bad input gets INVALID_ARGUMENT with the reason; command failures and the
// runtime's errors get their statuses (errors.ts); every refusal is counted,
// and logged at debug level; anything unexpected is logged and answered
// INTERNAL. No request can crash the node.

import { randomBytes } from 'node:crypto';
import { SYSTEM_STAMP } from '../../services/auth/codec.js';
import { queueCommandNeeds, queueNeed, allowed, type ConsumerQueue, type Needs } from '../../services/auth/needs.js';
import { sendStamped, type Authorizer, type Principal } from '../auth/authorizer.js';
import { grpcCredentials } from '../auth/credentials.js';
import { throwIfAuthDenied } from '../etcd/errors.js';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { assertNever } from '../../util/assert.js';
import { idProblem, queueNameProblem } from '../../services/queue/codec.js';
import type { QueueStateMachine } from '../../services/queue/state-machine.js';
import { QUEUE_LIMITS, type DeadLetterOrigin, type QueueCommand, type QueueEvent, type QueueResult, type QueueStats } from '../../services/queue/types.js';
import type { QueueBackend } from './backend.js';
import { queueServiceClient } from './proto.js';
import { invalidArgument, QUEUE_ERROR_CODES, QueueRequestError, queueStatusOf, serviceError, type QueueStatus } from './errors.js';

/** Options of {@link addQueueService}. */
export interface QueueServiceOptions {
  readonly logger: Logger;
  /** Prefetch when a Consume request gives 0. Default 10. */
  readonly defaultPrefetch?: number;
  /** Largest message body accepted by Publish. Default 1 MiB. */
  readonly maxBodyBytes?: number;
  /** How often orphaned consumers of this node are cancelled. Default 2000 ms. */
  readonly reconcileIntervalMs?: number;
  /** How long a Consume waits for the node to be ready (whenReady) before UNAVAILABLE. Default 10 s. */
  readonly readyTimeoutMs?: number;
  /** The node's auth (src/server/auth): requests are checked and their commands stamped while auth is on. Absent: no checks. */
  readonly authorizer?: Authorizer;
  /** Calls arrive through protocol workers, which pass the client certificate's name in a header (src/server/auth/credentials.ts). */
  readonly behindProtocolWorkers?: boolean;
}

/** Counters of request outcomes. */
export interface QueueServerStats {
  /** Requests refused as malformed or invalid (INVALID_ARGUMENT). */
  invalidRequests: number;
  /** Requests answered with another known error (not found, unavailable, ...). */
  queueErrors: number;
  /** Unexpected failures answered INTERNAL (each is logged). */
  internalErrors: number;
  /** Cancels proposed by the reconciler for consumers no stream here serves. */
  orphansCancelled: number;
}

/** What {@link addQueueService} gives back. */
export interface QueueService {
  readonly stats: QueueServerStats;
  /** Consume streams open on this node. */
  openConsumers(): number;
  /** Ends every Consume stream (UNAVAILABLE) and stops the reconciler; call before the server shuts down. */
  close(): void;
}

/** Wire shapes (proto field names, as loaded with keepCase). */
interface WireDeclare { queue?: string; delivery_limit?: number; dead_letter_queue?: string }
interface WirePublish { queue?: string; body?: Buffer }
interface WireConsume { queue?: string; prefetch?: number }
interface WireAck { consumer_id?: string; delivery_tags?: (string | number)[] }
interface WireNack extends WireAck { discard?: boolean }
interface WireStatsRequest { queue?: string }
interface WireDelivery {
  queue: string; delivery_tag: number; message_id: number; body: Buffer; delivery_count: number;
  dead_letter: { queue: string; message_id: number; reason: string } | null;
}
type WireConsumeResponse = { started: { consumer_id: string } } | { delivery: WireDelivery };

const DEFAULT_PREFETCH = 10;
const MAX_BODY_BYTES_DEFAULT = 1 << 20;
const RECONCILE_INTERVAL_MS_DEFAULT = 2000;
const READY_TIMEOUT_MS_DEFAULT = 10_000;

/** One Consume stream served here. */
interface LocalConsumer {
  readonly id: string;
  readonly queue: string;
  readonly call: grpc.ServerWritableStream<WireConsume, WireConsumeResponse>;
  /** The attach has applied and the consumer's id was written. */
  started: boolean;
  /** Deliveries applied before `started`. */
  readonly early: WireDelivery[];
  /** Highest delivery tag written (tags come in order). */
  lastTag: number;
  ended: boolean;
}

/** Parses a uint64 delivery tag from the wire (a decimal string, as loaded) into a safe integer >= 1. */
function parseTag(t: unknown): number {
  const n = typeof t === 'number' ? t : typeof t === 'string' && /^[0-9]{1,16}$/.test(t) ? Number(t) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) throw invalidArgument(`delivery tag ${String(t)} is not an integer in [1, 2^53)`);
  return n;
}

function checkName(name: unknown, what = 'queue name'): string {
  const p = typeof name === 'string' ? (what === 'queue name' ? queueNameProblem(name) : idProblem(name, what)) : `${what} is missing`;
  if (p !== null) throw invalidArgument(p);
  return name as string;
}

function toWireDelivery(queue: string, tag: number, messageId: number, body: Uint8Array, deliveryCount: number, origin: DeadLetterOrigin | null): WireDelivery {
  return {
    queue, delivery_tag: tag, message_id: messageId, body: Buffer.from(body.buffer, body.byteOffset, body.byteLength), delivery_count: deliveryCount,
    dead_letter: origin === null ? null : { queue: origin.queue, message_id: origin.messageId, reason: origin.reason },
  };
}

function statsToWire(s: QueueStats): object {
  return {
    queue: s.queue, delivery_limit: s.deliveryLimit, dead_letter_queue: s.deadLetterQueue ?? '', ready: s.ready, unacked: s.unacked,
    consumers: s.consumers, enqueued: s.enqueued, acked: s.acked, dead_lettered: s.deadLettered, dropped: s.dropped,
  };
}

type UnaryHandler = (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => void;
/** What a check needs of a call: its metadata (and TLS context) to identify the caller. */
type Caller = Parameters<typeof grpcCredentials>[0];

/**
 * The consumers that some Consume stream in this process serves, per
 * machine: shared by every service over the same machine (say, the client
 * port's and another port's), so that no reconciler takes another's
 * consumers for orphans.
 */
const servedHere = new WeakMap<QueueStateMachine, Set<string>>();

/** The ids of the consumers served in this process over `machine` (Consume streams, AMQP channels): the reconciler cancels only the others. */
export function servedConsumers(machine: QueueStateMachine): Set<string> {
  let served = servedHere.get(machine);
  if (served === undefined) {
    served = new Set();
    servedHere.set(machine, served);
  }
  return served;
}

/** Adds the quorumlog.queue.v1.Queue service over `backend` to `server` (before it starts). */
export function addQueueService(server: grpc.Server, backend: QueueBackend, opts: QueueServiceOptions): QueueService {
  const log = opts.logger;
  const defaultPrefetch = opts.defaultPrefetch ?? DEFAULT_PREFETCH;
  const maxBodyBytes = opts.maxBodyBytes ?? MAX_BODY_BYTES_DEFAULT;
  const reconcileIntervalMs = opts.reconcileIntervalMs ?? RECONCILE_INTERVAL_MS_DEFAULT;
  const readyTimeoutMs = opts.readyTimeoutMs ?? READY_TIMEOUT_MS_DEFAULT;
  if (!Number.isInteger(defaultPrefetch) || defaultPrefetch < 1 || defaultPrefetch > QUEUE_LIMITS.prefetchMax) throw new RangeError(`defaultPrefetch must be in [1, ${QUEUE_LIMITS.prefetchMax}]`);
  const stats: QueueServerStats = { invalidRequests: 0, queueErrors: 0, internalErrors: 0, orphansCancelled: 0 };
  const machine = backend.machine;
  const locals = new Map<string, LocalConsumer>();
  const servedSet = servedConsumers(backend.machine);
  const track = (id: string): void => void servedSet.add(id);
  const untrack = (id: string): void => void servedSet.delete(id);
  /** Consumers whose cancel is being proposed (no second proposal meanwhile). */
  const cancelling = new Set<string>();
  let closed = false;
  const authz = opts.authorizer;
  const behindProxy = opts.behindProtocolWorkers === true;
  const consumerQueue: ConsumerQueue = (id) => machine.consumer(id)?.queue;

  /** The caller, checked for `needs` against this node's auth state (null while auth is off). Throws the refusal. */
  function check(call: Caller, needs: Needs | (() => Needs)): Principal | null {
    if (authz === undefined || !authz.enabled) return null;
    return authz.check(grpcCredentials(call, behindProxy), typeof needs === 'function' ? needs() : needs);
  }

  /** The status for a failure, counted; INTERNAL (logged) for the unknown. */
  function statusFor(err: unknown, method: string): QueueStatus {
    const s = queueStatusOf(err);
    if (s === null) {
      stats.internalErrors++;
      log.error({ err, method }, 'queue API: unexpected error');
      return { code: grpc.status.INTERNAL, message: `queue: internal error in ${method}` };
    }
    if (s.code === grpc.status.INVALID_ARGUMENT) stats.invalidRequests++;
    else stats.queueErrors++;
    log.debug({ method, code: s.code }, s.message);
    return s;
  }

  function unary<Req>(method: string, fn: (req: Req, call: Caller) => Promise<object>): UnaryHandler {
    return (call, callback) => {
      let done = false;
      const finish = (err: unknown, res?: object): void => {
        if (done) return;
        done = true;
        if (err !== null) callback(serviceError(statusFor(err, method)));
        else callback(null, res);
      };
      try {
        fn((call.request ?? {}) as Req, call).then((res) => finish(null, res), (e: unknown) => finish(e));
      } catch (e) {
        finish(e);
      }
    };
  }

  /**
   * Writes a command, checked and stamped as the caller's; a command failure
   * becomes its status; checks the result's type. A write the auth state moved
   * past before it applied ('oldRevision') is checked again and sent again.
   */
  async function write<T extends QueueResult['type']>(call: Caller, cmd: QueueCommand, ...expected: T[]): Promise<Extract<QueueResult, { type: T }>> {
    const answer = await sendStamped(authz, () => check(call, () => queueCommandNeeds(cmd, consumerQueue)), (stamp) => backend.write(cmd, stamp));
    const r = throwIfAuthDenied(answer) as QueueResult;
    if (r.type === 'error') throw new QueueRequestError({ code: QUEUE_ERROR_CODES[r.error], message: `queue: ${r.message}` });
    if (!(expected as string[]).includes(r.type)) throw new Error(`the queue machine answered ${cmd.type} with ${r.type}`);
    return r as Extract<QueueResult, { type: T }>;
  }

  // ---- delivery of this node's consumers' events ----

  function send(lc: LocalConsumer, d: WireDelivery): void {
    if (lc.ended || d.delivery_tag <= lc.lastTag) return;
    if (!lc.started) {
      lc.early.push(d);
      return;
    }
    lc.lastTag = d.delivery_tag;
    lc.call.write({ delivery: d });
  }

  /** Ends a stream: normally (cancelled by request) or with a status; idempotent. */
  function endStream(lc: LocalConsumer, status: QueueStatus | null): void {
    if (lc.ended) return;
    lc.ended = true;
    locals.delete(lc.id);
    untrack(lc.id);
    try {
      if (status === null) lc.call.end();
      else lc.call.emit('error', serviceError(status));
    } catch (err) {
      log.debug({ err, consumer: lc.id }, 'queue API: ending a consume stream failed');
    }
  }

  /** Proposes a consumer's cancel (best effort; the reconciler retries). */
  function proposeCancel(consumerId: string, why: string): void {
    if (closed || cancelling.has(consumerId)) return;
    cancelling.add(consumerId);
    // The node's own clean-up of a consumer whose stream ended: stamped as the system's (src/services/auth/gate.ts).
    backend.write({ type: 'cancel', consumerId }, SYSTEM_STAMP).then(
      (r) => log.debug({ consumer: consumerId, why, result: r.type }, 'queue API: consumer cancelled'),
      (err: unknown) => log.info({ consumer: consumerId, why, err: (err as Error).message }, 'queue API: cancelling a consumer failed; the reconciler retries'),
    ).finally(() => cancelling.delete(consumerId));
  }

  /** After a snapshot: end streams whose consumer is gone, send what the state holds and a stream was not sent. */
  function resync(): void {
    for (const lc of [...locals.values()]) {
      if (!lc.started) continue; // the attach answer is still to come; it decides
      if (machine.consumer(lc.id) === undefined) {
        endStream(lc, { code: grpc.status.UNAVAILABLE, message: 'queue: the consumer no longer exists (removed while this node caught up); consume again' });
        continue;
      }
      for (const f of machine.inFlight(lc.id)) send(lc, toWireDelivery(lc.queue, f.deliveryTag, f.messageId, f.body, f.deliveryCount, f.deadLetter));
    }
  }

  function onEvent(e: QueueEvent): void {
    switch (e.type) {
      case 'delivered': {
        if (e.node !== backend.nodeId) return;
        const lc = locals.get(e.consumerId);
        if (lc !== undefined) send(lc, toWireDelivery(e.queue, e.deliveryTag, e.messageId, e.body, e.deliveryCount, e.deadLetter));
        return;
      }
      case 'consumerRemoved': {
        if (e.node !== backend.nodeId) return;
        const lc = locals.get(e.consumerId);
        if (lc === undefined) return;
        const reason = e.reason;
        switch (reason) {
          case 'cancelled':
            endStream(lc, null);
            return;
          case 'nodeDown':
            endStream(lc, { code: grpc.status.UNAVAILABLE, message: 'queue: the consumer was removed because its node was considered down; consume again' });
            return;
          case 'queueDeleted':
            endStream(lc, { code: grpc.status.NOT_FOUND, message: `queue: queue ${e.queue} was deleted` });
            return;
          default:
            assertNever(reason, 'consumer removed reason');
        }
        return;
      }
      case 'deadLettered':
        log.debug({ queue: e.queue, messageId: e.messageId, reason: e.reason, target: e.target }, e.target === null ? 'queue: message dropped' : 'queue: message dead-lettered');
        return;
      case 'restored':
        resync();
        return;
      default:
        assertNever(e, 'queue event');
    }
  }
  const off = machine.on(onEvent);

  // ---- consumers whose caller lost READ on their queue ----

  /** After a change of the auth state: ends (and cancels) every stream here whose caller may no longer consume its queue. */
  function recheckConsumers(): void {
    for (const lc of [...locals.values()]) {
      if (lc.ended) continue;
      let refusal: QueueStatus | null = null;
      try {
        check(lc.call, [queueNeed('read', lc.queue)]);
      } catch (err) {
        refusal = queueStatusOf(err);
        if (refusal === null) throw err;
      }
      if (refusal === null) continue;
      log.info({ consumer: lc.id, queue: lc.queue }, 'queue API: consumer ended: its caller may no longer consume the queue');
      endStream(lc, refusal);
      // The node's clean-up, as for any ended stream (before its attach applied, consume() cancels again when it does).
      proposeCancel(lc.id, 'permission withdrawn');
    }
  }
  const offAuth = authz?.state.onChange(() => {
    try {
      recheckConsumers();
    } catch (err) {
      stats.internalErrors++;
      log.error({ err }, 'queue API: re-checking consumers after an auth change failed');
    }
  });

  // ---- the reconciler ----

  let reconciling = false;
  const reconciler = setInterval(() => {
    if (closed || reconciling) return;
    reconciling = true;
    backend.whenReady().then(() => {
      for (const c of machine.allConsumers()) {
        if (c.node !== backend.nodeId || servedSet.has(c.consumerId) || cancelling.has(c.consumerId)) continue;
        stats.orphansCancelled++;
        proposeCancel(c.consumerId, 'no stream serves it');
      }
    }, () => undefined).finally(() => {
      reconciling = false;
    });
  }, reconcileIntervalMs);
  reconciler.unref();

  // ---- Consume ----

  async function consume(call: grpc.ServerWritableStream<WireConsume, WireConsumeResponse>): Promise<void> {
    const req: WireConsume = call.request ?? {};
    const queue = checkName(req.queue);
    check(call, [queueNeed('read', queue)]); // fail fast; the attach is checked again where it applies
    const p = req.prefetch ?? 0;
    if (!Number.isInteger(p) || p < 0 || p > QUEUE_LIMITS.prefetchMax) throw invalidArgument(`prefetch must be in [0, ${QUEUE_LIMITS.prefetchMax}] (0 = the default, ${defaultPrefetch})`);
    const prefetch = p === 0 ? defaultPrefetch : p;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        backend.whenReady(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new QueueRequestError({
            code: grpc.status.UNAVAILABLE, message: 'queue: this node has not yet released the consumers of its previous run (no leader?); retry',
          })), readyTimeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
    if (closed || call.cancelled) return;
    const lc: LocalConsumer = { id: `${backend.nodeId}.${randomBytes(9).toString('base64url')}`, queue, call, started: false, early: [], lastTag: 0, ended: false };
    locals.set(lc.id, lc);
    track(lc.id);
    const gone = (): void => {
      if (lc.ended) return;
      lc.ended = true;
      locals.delete(lc.id);
      untrack(lc.id);
      proposeCancel(lc.id, 'stream ended');
    };
    call.on('cancelled', gone);
    call.on('error', gone);
    try {
      await write(call, { type: 'attach', consumerId: lc.id, queue, node: backend.nodeId, prefetch, noAck: false, exclusive: false }, 'attached');
    } catch (err) {
      if (!lc.ended) {
        lc.ended = true;
        locals.delete(lc.id);
        untrack(lc.id);
      }
      if (queueStatusOf(err)?.code === grpc.status.UNAVAILABLE) proposeCancel(lc.id, 'the attach outcome is unknown');
      throw err;
    }
    if (lc.ended) {
      // The stream ended while the attach was in flight. `gone` proposed a cancel then, but that cancel may have
      // applied before the attach did (an attach held through an election is proposed again after a leader change,
      // docs/CLUSTER.md): cancel again, so the consumer does not take deliveries that no stream reads until the
      // reconciler notices it.
      proposeCancel(lc.id, 'the stream ended before the attach applied');
      return;
    }
    lc.started = true;
    call.write({ started: { consumer_id: lc.id } });
    for (const d of lc.early.splice(0)) send(lc, d);
  }

  const Queue = queueServiceClient();
  server.addService(Queue.service, {
    Declare: unary<WireDeclare>('Declare', async (req, call) => {
      const queue = checkName(req.queue);
      const limit = req.delivery_limit ?? 0;
      if (!Number.isInteger(limit) || limit < 0 || limit > QUEUE_LIMITS.deliveryLimitMax) throw invalidArgument(`delivery_limit must be in [0, ${QUEUE_LIMITS.deliveryLimitMax}]`);
      const dlq = req.dead_letter_queue === undefined || req.dead_letter_queue === '' ? null : checkName(req.dead_letter_queue, 'queue name');
      const r = await write(call, { type: 'declare', queue, deliveryLimit: limit, deadLetterQueue: dlq }, 'declared');
      return { created: r.created };
    }),
    Publish: unary<WirePublish>('Publish', async (req, call) => {
      const queue = checkName(req.queue);
      const body = req.body ?? Buffer.alloc(0);
      if (!(body instanceof Uint8Array)) throw invalidArgument('body is not bytes');
      if (body.byteLength > maxBodyBytes) throw invalidArgument(`body is ${body.byteLength} bytes; at most ${maxBodyBytes}`);
      const r = await write(call, { type: 'enqueue', queue, body: new Uint8Array(body) }, 'enqueued');
      return { message_id: r.messageId };
    }),
    Consume: (call: grpc.ServerWritableStream<WireConsume, WireConsumeResponse>) => {
      consume(call).catch((err: unknown) => {
        if (call.cancelled) return;
        try {
          call.emit('error', serviceError(statusFor(err, 'Consume')));
        } catch (e) {
          log.debug({ err: e }, 'queue API: failing a consume stream failed');
        }
      });
    },
    Ack: unary<WireAck>('Ack', async (req, call) => settle(call, 'settle', req)),
    Nack: unary<WireNack>('Nack', async (req, call) => settle(call, req.discard === true ? 'discard' : 'return', req)),
    Stats: unary<WireStatsRequest>('Stats', async (req, call) => {
      const name = req.queue ?? '';
      if (name !== '') checkName(name);
      // One queue: READ on it (before its existence is told). Every queue: a valid identity, and only the queues it may read.
      check(call, name === '' ? [] : [queueNeed('read', name)]);
      await backend.readBarrier();
      if (name === '') {
        const p = check(call, []); // again, against the state after the barrier
        const mayRead = (q: string): boolean => p === null || authz === undefined || allowed(authz.state, p.user, [queueNeed('read', q)]);
        return { queues: machine.stats().filter((s) => mayRead(s.queue)).map(statsToWire) };
      }
      const s = machine.queueStats(name);
      if (s === undefined) throw new QueueRequestError({ code: grpc.status.NOT_FOUND, message: `queue: queue ${name} does not exist` });
      return { queues: [statsToWire(s)] };
    }),
  });

  async function settle(call: Caller, type: 'settle' | 'return' | 'discard', req: WireAck): Promise<object> {
    const consumerId = checkName(req.consumer_id, 'consumer id');
    const raw = req.delivery_tags ?? [];
    if (!Array.isArray(raw) || raw.length === 0) throw invalidArgument('no delivery tags given');
    if (raw.length > QUEUE_LIMITS.tagsPerCommandMax) throw invalidArgument(`${raw.length} delivery tags; at most ${QUEUE_LIMITS.tagsPerCommandMax}`);
    const r = await write(call, { type, consumerId, deliveryTags: raw.map(parseTag) }, 'settled', 'returned', 'discarded');
    return { settled: r.count, unknown: r.unknown };
  }

  return {
    stats,
    openConsumers: () => locals.size,
    close(): void {
      if (closed) return;
      closed = true;
      clearInterval(reconciler);
      off();
      offAuth?.();
      for (const lc of [...locals.values()]) endStream(lc, { code: grpc.status.UNAVAILABLE, message: 'queue: the node is stopping; consume again elsewhere' });
    },
  };
}
