// The runtime's pending requests: every client command, read barrier and
// membership change between its arrival and its answer, with the bounds and
// deadlines that keep them from piling up.
//
// Batching: client commands queue while a round runs; the next round packs
// all of them into as few entries as fit `maxEntryBytes` (packQueue; one
// fsync for all). Nothing waits on a timer: a command that joins the queue
// wakes the event loop (setImmediate), so a lone client pays no batching
// delay.
//
// Bounded queues: at most `maxPendingRequests` commands and
// `maxPendingBytes` bytes wait here (beyond that a client gets
// TooManyRequestsError at once); every request has a deadline (expire():
// RequestTimeoutError, or NoLeaderError while no leader is known); the
// core's own `maxUncommittedBytes` pushes back when followers lag, and the
// transport bounds each peer's send queue.
//
// Where a request waits, in order:
//   commands: queue → inLog by the index of the entry that holds them (on
//     the leader at once; on a follower once the leader answered a forwarded
//     batch, meanwhile in `forwarded`) → resolved with the state machine's
//     result when that entry applies, or LeaderChangedError when the entry
//     applied there has another term (it was replaced);
//   reads: readQueue → asked (of the core by ctx, or of the leader by reqId)
//     → confirmed at an index → resolved once the applied index reaches it;
//   membership changes: by the index of their configuration entry, resolved
//     when it applies.
// A snapshot that replaces entries here fails their waiters (their outcome
// is unknown). This file keeps the books; the runtime (src/node/runtime.ts)
// and forwarding (src/node/forwarding.ts) decide what moves where.

import type { Entry } from '../protocol/entry.js';
import type { LogIndex, Term } from '../protocol/ids.js';
import { BATCH_HEADER_BYTES, BATCH_ITEM_OVERHEAD_BYTES } from './batch.js';
import { LeaderChangedError, NoLeaderError, RequestTimeoutError, TooManyRequestsError } from './errors.js';
import type { RuntimeMetrics } from './runtime-metrics.js';

/** A client waiting for an answer, until `deadline` (performance.now() scale). */
export interface Waiter {
  readonly resolve: (result: unknown) => void;
  readonly reject: (err: Error) => void;
  readonly deadline: number;
}

/** A client command not yet in an entry. */
export interface QueuedCommand extends Waiter {
  readonly command: Uint8Array;
}

/** Commands in one entry that was proposed (here, or by the leader for us): resolved when that entry applies. */
interface InLog {
  readonly term: Term;
  /** One per command of the entry, in order; null where the command's client has already been answered (timed out). */
  readonly waiters: readonly (Waiter | null)[];
}

/** A forwarded batch waiting for the leader's (index, term). */
interface Forwarded {
  readonly waiters: readonly QueuedCommand[];
  readonly deadline: number;
}

/** Read barriers asked of the core (`local`) or of the leader, under one id. */
interface AskedRead {
  readonly waiters: Waiter[];
  readonly local: boolean;
  readonly deadline: number;
}

/** Read barriers confirmed at `index`: answered once the applied index reaches it. */
interface ConfirmedRead {
  readonly index: LogIndex;
  readonly waiters: Waiter[];
}

/** The bounds and the clock of the pending requests. */
export interface PendingRequestsOptions {
  /** The clock of deadlines (performance.now()). */
  readonly now: () => number;
  /** Counts rejections and time-outs. */
  readonly metrics: RuntimeMetrics;
  readonly requestTimeoutMs: number;
  readonly maxPendingRequests: number;
  readonly maxPendingBytes: number;
  /** Largest batch packQueue() packs into one entry. */
  readonly maxEntryBytes: number;
  /** Asks the event loop for a round: a command or a read barrier joined the queue. */
  readonly wake: () => void;
}

/**
 * The bounded bookkeeping of one node's pending requests.
 * Invariants: `queueBytes` is the sum of the queued commands' lengths; every
 * waiter is in exactly one place until it is resolved or rejected, and then
 * in none; ids from newId() are never reused (forwarded writes and reads
 * share them, and the leader's refusal names only the id).
 */
export class PendingRequests {
  private readonly opts: PendingRequestsOptions;
  private queue: QueuedCommand[] = [];
  private queueBytes = 0;
  private readonly inLog = new Map<LogIndex, InLog>();
  private readonly forwarded = new Map<number, Forwarded>();
  /** Read barriers not yet sent to the core or the leader. */
  private readQueue: Waiter[] = [];
  /** Read barriers asked of the core (ctx) or of the leader (reqId), by id. */
  private readonly readsAsked = new Map<number, AskedRead>();
  /** Confirmed reads waiting for the applied index, in no particular order. */
  private readsConfirmed: ConfirmedRead[] = [];
  /** Membership changes proposed here, by the index of their configuration entry: resolved when it applies. */
  private readonly configWaiters = new Map<LogIndex, Waiter & { readonly term: Term }>();
  private nextId = 1;

  constructor(opts: PendingRequestsOptions) {
    this.opts = opts;
  }

  /** A fresh id for a forwarded request or a core read context. */
  newId(): number {
    return this.nextId++;
  }

  private deadline(): number {
    return this.opts.now() + this.opts.requestTimeoutMs;
  }

  // ---- arrivals ----------------------------------------------------------------

  /** Queues one command (or rejects at once with TooManyRequestsError when the queue is full). */
  submit(command: Uint8Array): Promise<unknown> {
    if (this.queue.length >= this.opts.maxPendingRequests || this.queueBytes + command.byteLength > this.opts.maxPendingBytes) {
      this.opts.metrics.rejectedTooMany++;
      return Promise.reject(new TooManyRequestsError(`${this.queue.length} commands (${this.queueBytes} bytes) already wait to be proposed`));
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ command, resolve, reject, deadline: this.deadline() });
      this.queueBytes += command.byteLength;
      this.opts.wake();
    });
  }

  /** Queues one read barrier (or rejects at once with TooManyRequestsError when too many wait). */
  readBarrier(): Promise<void> {
    if (this.readQueue.length >= this.opts.maxPendingRequests) {
      this.opts.metrics.rejectedTooMany++;
      return Promise.reject(new TooManyRequestsError('too many reads wait for a barrier'));
    }
    return new Promise((resolve, reject) => {
      this.readQueue.push({ resolve: () => resolve(), reject, deadline: this.deadline() });
      this.opts.wake();
    });
  }

  /** Waits for the configuration entry proposed at (index, term) to apply; resolves with its index. */
  awaitConfigEntry(index: LogIndex, term: Term): Promise<{ index: LogIndex }> {
    return new Promise<{ index: LogIndex }>((resolve, reject) => {
      this.configWaiters.set(index, { term, resolve: () => resolve({ index }), reject, deadline: this.deadline() });
    });
  }

  // ---- what waits --------------------------------------------------------------

  /** Commands wait to be proposed or forwarded. */
  hasQueuedCommands(): boolean {
    return this.queue.length > 0;
  }

  /** Read barriers wait to be asked. */
  hasQueuedReads(): boolean {
    return this.readQueue.length > 0;
  }

  /** Client work waiting for a round (not for the cluster). */
  hasQueued(): boolean {
    return this.queue.length > 0 || this.readQueue.length > 0;
  }

  /** Requests anywhere between arrival and answer: their deadlines need the clock. */
  hasOutstanding(): boolean {
    return this.queue.length > 0 || this.readQueue.length > 0 || this.inLog.size > 0 || this.forwarded.size > 0 ||
      this.readsAsked.size > 0 || this.readsConfirmed.length > 0 || this.configWaiters.size > 0;
  }

  // ---- commands ----------------------------------------------------------------

  /** Takes the whole queue, cut into batches of at most maxEntryBytes. */
  packQueue(): QueuedCommand[][] {
    const out: QueuedCommand[][] = [];
    let cur: QueuedCommand[] = [];
    let bytes = BATCH_HEADER_BYTES;
    for (const q of this.queue) {
      const size = q.command.byteLength + BATCH_ITEM_OVERHEAD_BYTES;
      if (cur.length > 0 && bytes + size > this.opts.maxEntryBytes) {
        out.push(cur);
        cur = [];
        bytes = BATCH_HEADER_BYTES;
      }
      cur.push(q);
      bytes += size;
    }
    if (cur.length > 0) out.push(cur);
    this.queue = [];
    this.queueBytes = 0;
    return out;
  }

  /** Puts batches taken by packQueue() back at the head of the queue, in order. */
  requeue(batches: readonly (readonly QueuedCommand[])[]): void {
    const back = batches.flat();
    this.queue = back.concat(this.queue);
    this.queueBytes = this.queue.reduce((s, q) => s + q.command.byteLength, 0);
  }

  /** The commands `waiters` are in the entry at (index, term): answered when it applies. */
  inEntry(index: LogIndex, term: Term, waiters: readonly (Waiter | null)[]): void {
    this.inLog.set(index, { term, waiters });
  }

  /** A batch went to the leader under `reqId`; it waits for the leader's (index, term). */
  forwardedAs(reqId: number, waiters: readonly QueuedCommand[]): void {
    this.forwarded.set(reqId, { waiters, deadline: Math.max(...waiters.map((q) => q.deadline)) });
  }

  /** Takes the commands forwarded under `reqId` (the leader answered), or undefined. */
  takeForwarded(reqId: number): readonly QueuedCommand[] | undefined {
    const f = this.forwarded.get(reqId);
    if (f === undefined) return undefined;
    this.forwarded.delete(reqId);
    return f.waiters;
  }

  // ---- reads -------------------------------------------------------------------

  /** Takes every queued read barrier. */
  takeReads(): Waiter[] {
    const waiters = this.readQueue;
    this.readQueue = [];
    return waiters;
  }

  /** Puts read barriers back at the head of the queue (to be asked again, of whoever leads then). */
  requeueReads(waiters: Waiter[]): void {
    this.readQueue = waiters.concat(this.readQueue);
  }

  /** The barriers `waiters` were asked of the core (`local`) or of the leader, under `id`. */
  readAsked(id: number, waiters: Waiter[], local: boolean): void {
    this.readsAsked.set(id, { waiters, local, deadline: Math.max(...waiters.map((w) => w.deadline)) });
  }

  /** The core confirmed the read `ctx` at `index`. */
  readConfirmed(ctx: number, index: LogIndex): void {
    const asked = this.readsAsked.get(ctx);
    if (asked === undefined) return;
    this.readsAsked.delete(ctx);
    this.readsConfirmed.push({ index, waiters: asked.waiters });
  }

  /** The core will never confirm the read `ctx` (leadership was lost): it is asked again of whoever leads next. */
  readAborted(ctx: number): void {
    const asked = this.readsAsked.get(ctx);
    if (asked === undefined) return;
    this.readsAsked.delete(ctx);
    this.readQueue = asked.waiters.concat(this.readQueue);
  }

  /** The leader confirmed the forwarded read `reqId` at `index`; false when no such read waits (it timed out). */
  forwardedReadConfirmed(reqId: number, index: LogIndex): boolean {
    const asked = this.readsAsked.get(reqId);
    if (asked === undefined || asked.local) return false;
    this.readsAsked.delete(reqId);
    this.readsConfirmed.push({ index, waiters: asked.waiters });
    return true;
  }

  /** The leader refused the forwarded read `reqId`: it is asked again. */
  forwardedReadRefused(reqId: number): void {
    const asked = this.readsAsked.get(reqId);
    if (asked === undefined || asked.local) return;
    this.readsAsked.delete(reqId);
    this.readQueue = asked.waiters.concat(this.readQueue);
  }

  /** Answers the confirmed reads whose index the state machine has reached. */
  resolveReads(applied: LogIndex): void {
    if (this.readsConfirmed.length === 0) return;
    const still: ConfirmedRead[] = [];
    for (const r of this.readsConfirmed) {
      if (r.index <= applied) for (const w of r.waiters) w.resolve(undefined);
      else still.push(r);
    }
    this.readsConfirmed = still;
  }

  // ---- the log moves on ----------------------------------------------------------

  /**
   * Entry `e` has applied, with `results` for its commands (none for no-op
   * and configuration entries): answers the membership change and the
   * commands that waited for it.
   */
  entryApplied(e: Entry, results: readonly unknown[]): void {
    if (e.type === 'config') {
      const cw = this.configWaiters.get(e.index);
      if (cw !== undefined) {
        this.configWaiters.delete(e.index);
        if (cw.term === e.term) cw.resolve(undefined);
        else cw.reject(new LeaderChangedError());
      }
    }
    const w = this.inLog.get(e.index);
    if (w === undefined) return;
    this.inLog.delete(e.index);
    if (w.term !== e.term) {
      for (const x of w.waiters) x?.reject(new LeaderChangedError());
    } else {
      w.waiters.forEach((x, i) => x?.resolve(results[i]));
    }
  }

  /** A snapshot up to `index` replaced the entries here: whoever waited for one of them learns nothing more. */
  snapshotInstalled(index: LogIndex): void {
    for (const [i, w] of this.inLog) {
      if (i > index) continue;
      this.inLog.delete(i);
      for (const x of w.waiters) x?.reject(new RequestTimeoutError('a request whose entry a snapshot replaced', 0));
    }
    for (const [i, w] of this.configWaiters) {
      if (i > index) continue;
      this.configWaiters.delete(i);
      w.reject(new RequestTimeoutError('a membership change whose entry a snapshot replaced', 0));
    }
  }

  // ---- time-outs and failures ----------------------------------------------------

  /**
   * Fails every request whose deadline passed; their outcome is unknown to
   * the client. While `noLeader`, requests that never reached a leader get
   * NoLeaderError instead of RequestTimeoutError.
   */
  expire(noLeader: boolean): void {
    if (!this.hasOutstanding()) return;
    const now = this.opts.now();
    const metrics = this.opts.metrics;
    for (const [index, w] of this.configWaiters) {
      if (w.deadline > now) continue;
      this.configWaiters.delete(index);
      metrics.timedOut++;
      w.reject(new RequestTimeoutError('a membership change', this.opts.requestTimeoutMs));
    }
    const timeout = (what: string): Error => noLeader ? new NoLeaderError() : new RequestTimeoutError(what, this.opts.requestTimeoutMs);
    if (this.queue.some((q) => q.deadline <= now)) {
      const keep: QueuedCommand[] = [];
      for (const q of this.queue) {
        if (q.deadline <= now) {
          metrics.timedOut++;
          q.reject(timeout('a write'));
        } else keep.push(q);
      }
      this.queue = keep;
      this.queueBytes = keep.reduce((s, q) => s + q.command.byteLength, 0);
    }
    for (const [id, f] of this.forwarded) {
      if (f.deadline > now) continue;
      this.forwarded.delete(id);
      for (const w of f.waiters) {
        metrics.timedOut++;
        w.reject(timeout('a forwarded write'));
      }
    }
    for (const [index, w] of this.inLog) {
      const live = w.waiters.filter((x) => x !== null && x.deadline > now);
      if (live.length === w.waiters.filter((x) => x !== null).length) continue;
      const waiters = w.waiters.map((x) => {
        if (x === null || x.deadline > now) return x;
        metrics.timedOut++;
        x.reject(new RequestTimeoutError('a write', this.opts.requestTimeoutMs));
        return null;
      });
      if (waiters.every((x) => x === null)) this.inLog.delete(index);
      else this.inLog.set(index, { term: w.term, waiters });
    }
    const expireWaiters = (ws: Waiter[]): Waiter[] => ws.filter((w) => {
      if (w.deadline > now) return true;
      metrics.timedOut++;
      w.reject(timeout('a linearizable read'));
      return false;
    });
    this.readQueue = expireWaiters(this.readQueue);
    for (const [id, a] of this.readsAsked) {
      if (a.deadline > now) continue;
      this.readsAsked.delete(id);
      expireWaiters(a.waiters);
    }
    this.readsConfirmed = this.readsConfirmed.map((r) => ({ index: r.index, waiters: expireWaiters(r.waiters) }))
      .filter((r) => r.waiters.length > 0);
  }

  /** Fails every pending request with `err` (the node stops). */
  failAll(err: Error): void {
    for (const q of this.queue) q.reject(err);
    this.queue = [];
    this.queueBytes = 0;
    for (const f of this.forwarded.values()) for (const w of f.waiters) w.reject(err);
    this.forwarded.clear();
    for (const w of this.inLog.values()) for (const x of w.waiters) x?.reject(err);
    this.inLog.clear();
    for (const w of this.readQueue) w.reject(err);
    this.readQueue = [];
    for (const a of this.readsAsked.values()) for (const w of a.waiters) w.reject(err);
    this.readsAsked.clear();
    for (const r of this.readsConfirmed) for (const w of r.waiters) w.reject(err);
    this.readsConfirmed = [];
    for (const w of this.configWaiters.values()) w.reject(err);
    this.configWaiters.clear();
  }
}
