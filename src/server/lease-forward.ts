// Leases on a real node: keep-alives and time-to-live are answered by the
// leader's lessor (src/server/lessor.ts); a follower forwards them to the
// leader over the peer transport, on the runtime's lease channel (2), and
// waits for the answer with a deadline. Grants and revokes need none of this:
// they are log commands, and followers forward those like any other write.
//
// Frames (strict: a frame that does not decode is counted, logged and
// dropped, never trusted): u8 format version (1), u8 kind, then
//   1 keepAlive     int reqId, int leaseId
//   2 timeToLive    int reqId, int leaseId
//   3 keptAlive     int reqId, int ttlSeconds (0: no such lease)
//   4 timeToLiveIs  int reqId, int remainingSeconds (-1: no such lease), int grantedSeconds
//   5 refused       int reqId   (the receiver does not lead, or could not confirm it)
// ints as the key-value codec writes them (zigzag varints); reqId >= 1;
// lease ids nonzero.
//
// Retries. A request that the leader refuses, that times out, or that finds
// no leader is tried again (every retryMs) until requestTimeoutMs has passed
// since the client asked, so that a keep-alive rides over a leader failover
// instead of failing; only then does the client see "no leader" or "request
// timed out". Renewing twice is harmless (a renewal only moves a deadline).

import { SYSTEM_STAMP } from '../services/auth/codec.js';
import { stampCommand } from '../services/machine.js';
import type { Logger } from 'pino';
import type { NodeId } from '../protocol/ids.js';
import { LEASE_CHANNEL } from '../node/channels.js';
import { LeaderChangedError, NoLeaderError, NodeStoppedError, RequestTimeoutError, TooManyRequestsError } from '../node/errors.js';
import type { NodeRuntime } from '../node/runtime.js';
import { ByteReader, ByteWriter, encodeCommand, KvCodecError } from '../services/kv/codec.js';
import type { KvStore } from '../services/kv/store.js';
import { assertNever } from '../util/assert.js';
import type { LeaseKeeper, LeaseTimeToLive } from './etcd/backend.js';
import { Lessor, LessorNotLeaderError } from './lessor.js';

/** The runtime's transport channel for lease frames (numbered in src/node/channels.ts). */
export { LEASE_CHANNEL };
const FRAME_VERSION = 1;

/** A frame on the lease channel. */
export type LeaseFrame =
  | { readonly type: 'keepAlive'; readonly reqId: number; readonly leaseId: number }
  | { readonly type: 'timeToLive'; readonly reqId: number; readonly leaseId: number }
  | { readonly type: 'keptAlive'; readonly reqId: number; readonly ttlSeconds: number }
  | { readonly type: 'timeToLiveIs'; readonly reqId: number; readonly remainingSeconds: number; readonly grantedSeconds: number }
  | { readonly type: 'refused'; readonly reqId: number };

const KINDS = { keepAlive: 1, timeToLive: 2, keptAlive: 3, timeToLiveIs: 4, refused: 5 } as const;

/** A lease frame that does not decode (or a frame that cannot be encoded). */
export class LeaseFrameError extends Error {
  override readonly name = 'LeaseFrameError';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

function checkFrame(f: LeaseFrame): string | null {
  if (!Number.isSafeInteger(f.reqId) || f.reqId < 1) return `reqId ${f.reqId} is not a positive integer`;
  switch (f.type) {
    case 'keepAlive':
    case 'timeToLive':
      return Number.isSafeInteger(f.leaseId) && f.leaseId !== 0 ? null : `lease id ${f.leaseId} is not a nonzero integer`;
    case 'keptAlive':
      return Number.isSafeInteger(f.ttlSeconds) && f.ttlSeconds >= 0 ? null : `TTL ${f.ttlSeconds} is negative`;
    case 'timeToLiveIs':
      if (!Number.isSafeInteger(f.remainingSeconds) || f.remainingSeconds < -1) return `remaining TTL ${f.remainingSeconds} below -1`;
      return Number.isSafeInteger(f.grantedSeconds) && f.grantedSeconds >= 0 ? null : `granted TTL ${f.grantedSeconds} is negative`;
    case 'refused':
      return null;
    default:
      return assertNever(f, 'lease frame');
  }
}

/** Encodes a lease frame; throws LeaseFrameError on out-of-range fields. */
export function encodeLeaseFrame(f: LeaseFrame): Uint8Array {
  const problem = checkFrame(f);
  if (problem !== null) throw new LeaseFrameError(problem);
  const w = new ByteWriter();
  w.u8(FRAME_VERSION);
  w.u8(KINDS[f.type]);
  w.int(f.reqId);
  switch (f.type) {
    case 'keepAlive':
    case 'timeToLive':
      w.int(f.leaseId);
      break;
    case 'keptAlive':
      w.int(f.ttlSeconds);
      break;
    case 'timeToLiveIs':
      w.int(f.remainingSeconds);
      w.int(f.grantedSeconds);
      break;
    case 'refused':
      break;
    default:
      assertNever(f, 'lease frame');
  }
  return w.finish();
}

/** Decodes a lease frame; throws LeaseFrameError on anything malformed (unknown version or kind, bad field, trailing bytes). */
export function decodeLeaseFrame(bytes: Uint8Array): LeaseFrame {
  let f: LeaseFrame;
  try {
    const r = new ByteReader(bytes);
    const version = r.u8();
    if (version !== FRAME_VERSION) throw new LeaseFrameError(`unsupported lease frame version ${version}`);
    const kind = r.u8();
    const reqId = r.int();
    switch (kind) {
      case KINDS.keepAlive: f = { type: 'keepAlive', reqId, leaseId: r.int() }; break;
      case KINDS.timeToLive: f = { type: 'timeToLive', reqId, leaseId: r.int() }; break;
      case KINDS.keptAlive: f = { type: 'keptAlive', reqId, ttlSeconds: r.int() }; break;
      case KINDS.timeToLiveIs: {
        const remainingSeconds = r.int();
        f = { type: 'timeToLiveIs', reqId, remainingSeconds, grantedSeconds: r.int() };
        break;
      }
      case KINDS.refused: f = { type: 'refused', reqId }; break;
      default: throw new LeaseFrameError(`unknown lease frame kind ${kind}`);
    }
    r.end();
  } catch (e) {
    if (e instanceof LeaseFrameError) throw e;
    if (e instanceof KvCodecError) throw new LeaseFrameError(`malformed lease frame: ${e.message}`, { cause: e });
    throw new LeaseFrameError('malformed lease frame', { cause: e });
  }
  const problem = checkFrame(f);
  if (problem !== null) throw new LeaseFrameError(problem);
  return f;
}

/** What of the node runtime the lease service uses (NodeRuntime provides it; tests wire fakes). */
export interface LeaseHost {
  readonly id: NodeId;
  /** The leader this node knows of, itself included; null during an election. */
  leaderId(): NodeId | null;
  onChannel(channel: number, handler: (from: NodeId, payload: Uint8Array) => void): void;
  /** False when the frame could not be queued. */
  sendChannel(to: NodeId, channel: number, payload: Uint8Array): boolean;
}

export interface LeaseServiceOptions {
  readonly minTtlSeconds: number;
  /** How long a client's keep-alive or time-to-live may take, retries included. Default 5000 ms. */
  readonly requestTimeoutMs?: number;
  /** How long one forwarded attempt waits for the leader's answer. Default 1000 ms. */
  readonly attemptTimeoutMs?: number;
  /** Pause between attempts. Default 50 ms. */
  readonly retryMs?: number;
  readonly logger?: Logger;
}

/** Counters. */
export interface LeaseServiceStats {
  forwarded: number;
  served: number;
  malformedFrames: number;
  retries: number;
}

interface Pending {
  readonly resolve: (f: LeaseFrame) => void;
  readonly reject: (e: Error) => void;
  readonly timer: ReturnType<typeof setTimeout>;
}

/** Not an answer: try again (the leader refused, or the attempt timed out, or no leader is known). */
class RetryableLeaseError extends Error {
  override readonly name = 'RetryableLeaseError';
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * The LeaseKeeper of a node: its own lessor when it leads, else the leader's
 * over the lease channel. Invariant: every entry of `pending` has a live
 * timer, and is removed when it settles.
 */
export class LeaseService implements LeaseKeeper {
  readonly minTtlSeconds: number;
  readonly stats: LeaseServiceStats = { forwarded: 0, served: 0, malformedFrames: 0, retries: 0 };
  private readonly requestTimeoutMs: number;
  private readonly attemptTimeoutMs: number;
  private readonly retryMs: number;
  private readonly pending = new Map<number, Pending>();
  private nextReqId = 1;
  private closed = false;

  constructor(private readonly host: LeaseHost, private readonly lessor: Lessor, private readonly opts: LeaseServiceOptions) {
    this.minTtlSeconds = opts.minTtlSeconds;
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 5000;
    this.attemptTimeoutMs = opts.attemptTimeoutMs ?? 1000;
    this.retryMs = opts.retryMs ?? 50;
    host.onChannel(LEASE_CHANNEL, (from, payload) => this.onFrame(from, payload));
  }

  keepAlive(id: number): Promise<number> {
    return this.withRetries('keep-alive', async () => {
      const leader = this.leader();
      if (leader === this.host.id) return this.local(() => this.lessor.renew(id));
      const f = await this.ask(leader, (reqId) => ({ type: 'keepAlive', reqId, leaseId: id }));
      if (f.type !== 'keptAlive') throw new RetryableLeaseError(`the leader answered a keep-alive with ${f.type}`);
      return f.ttlSeconds;
    });
  }

  timeToLive(id: number): Promise<LeaseTimeToLive | null> {
    return this.withRetries('time-to-live', async () => {
      const leader = this.leader();
      if (leader === this.host.id) return this.local(() => this.lessor.timeToLive(id));
      const f = await this.ask(leader, (reqId) => ({ type: 'timeToLive', reqId, leaseId: id }));
      if (f.type !== 'timeToLiveIs') throw new RetryableLeaseError(`the leader answered a time-to-live with ${f.type}`);
      return f.remainingSeconds < 0 ? null : { remainingSeconds: f.remainingSeconds, grantedSeconds: f.grantedSeconds };
    });
  }

  /** Fails what waits with NodeStoppedError; later calls fail at once. */
  close(): void {
    this.closed = true;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new NodeStoppedError());
    }
    this.pending.clear();
  }

  private leader(): NodeId {
    const leader = this.host.leaderId();
    if (leader === null) throw new RetryableLeaseError('no leader');
    return leader;
  }

  private async local<T>(f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (e) {
      if (e instanceof LessorNotLeaderError) throw new RetryableLeaseError(e.message, { cause: e });
      throw e;
    }
  }

  private async withRetries<T>(what: string, attempt: () => Promise<T>): Promise<T> {
    const deadline = performance.now() + this.requestTimeoutMs;
    let sawLeader = false;
    for (;;) {
      if (this.closed) throw new NodeStoppedError();
      try {
        return await attempt();
      } catch (e) {
        if (!(e instanceof RetryableLeaseError) && !isTransient(e)) throw e;
        if (e instanceof RetryableLeaseError && e.message !== 'no leader') sawLeader = true;
        if (performance.now() + this.retryMs >= deadline) {
          throw sawLeader ? new RequestTimeoutError(`a lease ${what}`, this.requestTimeoutMs, { cause: e }) : new NoLeaderError({ cause: e });
        }
        this.stats.retries++;
        await sleep(this.retryMs);
      }
    }
  }

  /** Sends a request to the leader and waits for its answer (attemptTimeoutMs). */
  private ask(leader: NodeId, build: (reqId: number) => LeaseFrame): Promise<LeaseFrame> {
    const reqId = this.nextReqId++;
    const payload = encodeLeaseFrame(build(reqId));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(reqId);
        reject(new RetryableLeaseError(`the leader did not answer within ${this.attemptTimeoutMs} ms`));
      }, this.attemptTimeoutMs);
      this.pending.set(reqId, { resolve, reject, timer });
      this.stats.forwarded++;
      if (!this.host.sendChannel(leader, LEASE_CHANNEL, payload)) {
        clearTimeout(timer);
        this.pending.delete(reqId);
        reject(new RetryableLeaseError('the leader\'s send queue is full'));
      }
    });
  }

  private onFrame(from: NodeId, payload: Uint8Array): void {
    let f: LeaseFrame;
    try {
      f = decodeLeaseFrame(payload);
    } catch (e) {
      this.stats.malformedFrames++;
      this.opts.logger?.warn({ peer: from, err: (e as Error).message }, 'dropped a malformed lease frame');
      return;
    }
    switch (f.type) {
      case 'keepAlive':
      case 'timeToLive':
        void this.serve(from, f);
        return;
      case 'keptAlive':
      case 'timeToLiveIs':
      case 'refused': {
        const p = this.pending.get(f.reqId);
        if (p === undefined) return; // late: the attempt timed out
        this.pending.delete(f.reqId);
        clearTimeout(p.timer);
        if (f.type === 'refused') p.reject(new RetryableLeaseError('the leader refused'));
        else p.resolve(f);
        return;
      }
      default:
        assertNever(f, 'lease frame');
    }
  }

  /** Answers a follower's request with this node's lessor; anything but an answer is a refusal (the follower retries). */
  private async serve(from: NodeId, f: Extract<LeaseFrame, { type: 'keepAlive' | 'timeToLive' }>): Promise<void> {
    let answer: LeaseFrame;
    try {
      if (f.type === 'keepAlive') {
        answer = { type: 'keptAlive', reqId: f.reqId, ttlSeconds: await this.lessor.renew(f.leaseId) };
      } else {
        const t = await this.lessor.timeToLive(f.leaseId);
        answer = t === null
          ? { type: 'timeToLiveIs', reqId: f.reqId, remainingSeconds: -1, grantedSeconds: 0 }
          : { type: 'timeToLiveIs', reqId: f.reqId, remainingSeconds: t.remainingSeconds, grantedSeconds: t.grantedSeconds };
      }
      this.stats.served++;
    } catch (e) {
      if (!(e instanceof LessorNotLeaderError) && !isTransient(e)) this.opts.logger?.warn({ peer: from, err: (e as Error).message }, 'a forwarded lease request failed');
      answer = { type: 'refused', reqId: f.reqId };
    }
    if (!this.closed) this.host.sendChannel(from, LEASE_CHANNEL, encodeLeaseFrame(answer));
  }
}

/** Errors of the runtime's barrier that say "not now" rather than "never". */
function isTransient(e: unknown): boolean {
  return e instanceof NoLeaderError || e instanceof RequestTimeoutError || e instanceof LeaderChangedError || e instanceof TooManyRequestsError;
}

/** etcd's minimum lease TTL for an election timeout: 1.5 times it, in whole seconds (at least 1). */
export function minLeaseTtlSeconds(electionTimeoutMaxMs: number): number {
  return Math.max(1, Math.ceil((1.5 * electionTimeoutMaxMs) / 1000));
}

/** A node's leases: its lessor (checking expiry) and the LeaseKeeper to hand to the etcd API. */
export interface NodeLeases {
  readonly lessor: Lessor;
  readonly keeper: LeaseService;
  stop(): void;
}

/**
 * Starts the lessor of a node and its lease channel. Call before runtime.start(), so that no lease frame arrives
 * without a handler. Epochs and expiries go through runtime.submit, like any write.
 */
export function startNodeLeases(runtime: NodeRuntime, store: KvStore, o: {
  readonly tickMs: number;
  readonly electionTimeoutMaxTicks: number;
  readonly requestTimeoutMs: number;
  readonly logger: Logger;
}): NodeLeases {
  const lessor = new Lessor({
    leases: store,
    now: () => performance.now(),
    leadership: () => ({ leader: runtime.isLeader(), term: runtime.term }),
    barrier: () => runtime.readBarrier(),
    // The cluster's own commands: stamped as the system's, so that they apply while auth is on (src/services/auth/gate.ts).
    proposeExpire: (id, term) => runtime.submit(stampCommand(SYSTEM_STAMP, encodeCommand({ type: 'leaseExpire', request: { id, term } }))),
    proposeEpoch: (term) => runtime.submit(stampCommand(SYSTEM_STAMP, encodeCommand({ type: 'leaseEpoch', request: { term } }))),
    logger: o.logger,
  });
  const keeper = new LeaseService({
    id: runtime.id,
    leaderId: () => runtime.leaderId(),
    onChannel: (channel, handler) => runtime.onChannel(channel, handler),
    sendChannel: (to, channel, payload) => runtime.sendChannel(to, channel, payload),
  }, lessor, {
    minTtlSeconds: minLeaseTtlSeconds(o.electionTimeoutMaxTicks * o.tickMs),
    requestTimeoutMs: o.requestTimeoutMs,
    logger: o.logger,
  });
  lessor.start();
  const unlisten = runtime.onLeadershipChange(() => lessor.leadershipChanged());
  return {
    lessor,
    keeper,
    stop: () => {
      unlisten();
      lessor.stop();
      keeper.close();
    },
  };
}
