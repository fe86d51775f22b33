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
//     result when that entry applies;
//   reads: readQueue → asked (of the core by ctx, or of the leader by reqId)
//     → confirmed at an index → resolved once the applied index reaches it;
//     a read asked of a leader that is no longer ours, or whose connection
//     closed, goes back to readQueue (a read may be asked twice);
//   membership changes: by the index of their configuration entry, resolved
//     when it applies.
// A snapshot that replaces entries here fails their waiters (their outcome
// is unknown). This file keeps the books; the runtime (src/node/runtime.ts)
// and forwarding (src/node/forwarding.ts) decide what moves where.
//
// When the leader changes (docs/CLUSTER.md, "Requests during an election"):
// a write proposed in term T, here or by the leader for us, is settled by
// the log itself once an entry of a later term T' has applied here at index
// j. That entry is committed, so every later leader has it, and no entry of
// term T at an index >= j can ever commit (it would need a log that holds
// both). So a write of term T still waiting at index >= j, or forwarded in
// term T and never seen among the applied entries of term T, was not
// applied and never will be: it goes back to the queue, to be proposed
// again by whoever leads now, within its deadline (exactly once). A
// forwarded batch is recognised among applied entries by its bytes (the
// leader proposes them unchanged, and only in the term it was forwarded
// in); if an equal batch applied, or a snapshot skipped entries, its
// outcome is unknown: LeaderChangedError('unknown'). The new leader's first
// entry settles everything, usually within an election timeout or two of
// the old leader's death. A write whose term has had no leader here for
// `orphanGraceMs` (this node is cut off) fails with
// LeaderChangedError('unknown') instead of waiting out its deadline.

import type { Entry } from '../protocol/entry.js';
import type { LogIndex, NodeId, Term } from '../protocol/ids.js';
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
  readonly waiters: readonly (QueuedCommand | null)[];
}

/** A forwarded batch waiting for the leader's (index, term). */
interface Forwarded {
  readonly waiters: readonly QueuedCommand[];
  readonly deadline: number;
  /** The term it was forwarded in: the leader proposes it in this term or not at all. */
  readonly term: Term;
  /** The batch as sent: the entry's data if the leader proposed it. */
  readonly batch: Uint8Array;
  /** An applied entry of `term` held these very bytes, or a snapshot skipped entries: it may have applied. */
  maybeApplied: boolean;
}

/** Read barriers asked of the core (`local`) or of the leader, under one id. */
interface AskedRead {
  readonly waiters: Waiter[];
  readonly local: boolean;
  /** The leader a forwarded read was asked of (null: local). */
  readonly leader: NodeId | null;
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
  /** True when the entry at `index` is committed here with term `term` (it will apply): its waiters are never failed as orphans. */
  readonly isCommitted: (index: LogIndex, term: Term) => boolean;
  /** How long a write may wait for a term that has no leader here any more before it fails with LeaderChangedError('unknown'). */
  readonly orphanGraceMs: number;
  /** The first id newId() hands out (the runtime: requestIdBase(Date.now())); default 1. */
  readonly firstId?: number;
}

/**
 * Where a process's request ids start: its start time in milliseconds times
 * 1024. The peer transport keeps frames queued for a peer that went away and
 * delivers them when it comes back, possibly to a new process of that node:
 * a leader's late answer to a forwarded request of the previous process must
 * not match a request of the new one. Ids from this base never meet those of
 * an earlier process of the same node unless it handed out more than 1024
 * ids a millisecond over its whole life, and stay exact doubles (below 2^53)
 * until the year 2248.
 */
export function requestIdBase(nowMs: number): number {
  return Math.floor(nowMs) * 1024;
}

/** This node's view of leadership when deadlines are checked (PendingRequests.expire). */
export interface LeadershipView {
  readonly term: Term;
  /** The leader this node knows of in `term` (itself when it leads), or null. */
  readonly leader: NodeId | null;
  /** A leader is known and frames reach it now (it is this node, or its connection is up). */
  readonly reachable: boolean;
}

/**
 * The bounded bookkeeping of one node's pending requests.
 * Invariants: `queueBytes` is the sum of the queued commands' lengths; every
 * waiter is in exactly one place until it is resolved or rejected, and then
 * in none; ids from newId() are never reused (forwarded writes and reads
 * share them, and the leader's refusal names only the id), nor, with the
 * runtime's firstId (requestIdBase), met by a later process of this node.
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
  /** The highest term of an entry applied here (or of the snapshot installed): terms below it are settled. */
  private appliedTerm: Term = 0;
  /** The last time (now()) this node knew a leader in each recent term, for the orphan grace. */
  private readonly ledAt = new Map<Term, number>();

  constructor(opts: PendingRequestsOptions) {
    this.opts = opts;
    this.nextId = opts.firstId ?? 1;
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

  /**
   * The commands `waiters` are in the entry at (index, term), an index not
   * yet applied here: answered when it applies. If a later term's entry has
   * already applied here, that entry can never commit (see the header): the
   * commands go back to the queue at once.
   */
  inEntry(index: LogIndex, term: Term, waiters: readonly QueuedCommand[]): void {
    if (term < this.appliedTerm) {
      this.notApplied(waiters);
      return;
    }
    if (!this.ledAt.has(term)) this.ledAt.set(term, this.opts.now());
    this.inLog.set(index, { term, waiters });
  }

  /** A batch (`batch`, as sent) went to the leader under `reqId` in `term`; it waits for the leader's (index, term). */
  forwardedAs(reqId: number, waiters: readonly QueuedCommand[], term: Term, batch: Uint8Array): void {
    this.ledAt.set(term, this.opts.now());
    this.forwarded.set(reqId, { waiters, deadline: Math.max(...waiters.map((q) => q.deadline)), term, batch, maybeApplied: false });
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

  /** The barriers `waiters` were asked of the core (`leader` null: local) or of `leader`, under `id`. */
  readAsked(id: number, waiters: Waiter[], leader: NodeId | null): void {
    this.readsAsked.set(id, { waiters, local: leader === null, leader, deadline: Math.max(...waiters.map((w) => w.deadline)) });
  }

  /**
   * Puts back in the queue every forwarded read asked of a leader other than
   * `leader` (the leader changed), or of `lost` (its connection closed): no
   * answer may ever come, and a read is safe to ask again.
   */
  reaskReads(leader: NodeId | null, lost: NodeId | null = null): void {
    if (this.readsAsked.size === 0) return;
    for (const [id, a] of this.readsAsked) {
      if (a.local || (a.leader === leader && a.leader !== lost)) continue;
      this.readsAsked.delete(id);
      this.readQueue = a.waiters.concat(this.readQueue);
      this.opts.wake();
    }
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
    if (e.type === 'data' && this.forwarded.size > 0) {
      for (const f of this.forwarded.values()) if (f.term === e.term && sameBytes(f.batch, e.data)) f.maybeApplied = true;
    }
    if (e.term > this.appliedTerm) this.termSettled(e.index, e.term);
    const w = this.inLog.get(e.index);
    if (w === undefined) return;
    this.inLog.delete(e.index);
    if (w.term !== e.term) {
      this.notApplied(w.waiters); // replaced by another leader's entry: never applied
    } else {
      w.waiters.forEach((x, i) => x?.resolve(results[i]));
    }
  }

  /**
   * An entry of term `term`, above every term applied here before, is
   * committed at `index`: every write of an earlier term still waiting at
   * `index` or beyond, or forwarded and not seen among the applied entries,
   * will never apply (see the header).
   */
  private termSettled(index: LogIndex, term: Term): void {
    this.appliedTerm = term;
    for (const [i, w] of this.inLog) {
      if (w.term >= term || i < index) continue;
      this.inLog.delete(i);
      this.notApplied(w.waiters);
    }
    for (const [id, f] of this.forwarded) {
      if (f.term >= term) continue;
      this.forwarded.delete(id);
      if (f.maybeApplied) {
        this.opts.metrics.leaderChangedUnknown += f.waiters.length;
        for (const q of f.waiters) q.reject(new LeaderChangedError('unknown'));
      } else {
        this.notApplied(f.waiters);
      }
    }
    for (const t of this.ledAt.keys()) if (t < term) this.ledAt.delete(t);
  }

  /** Commands known never to apply: back to the head of the queue, to be proposed again (expired ones are dropped; expire() answers them). */
  private notApplied(waiters: readonly (QueuedCommand | null)[]): void {
    const again = waiters.filter((q): q is QueuedCommand => q !== null);
    if (again.length === 0) return;
    this.opts.metrics.reproposedWrites += again.length;
    this.requeue([again]);
    this.opts.wake();
  }

  /** A snapshot at (index, term) replaced the entries here: whoever waited for one of them learns nothing more. */
  snapshotInstalled(index: LogIndex, term: Term): void {
    // The entries it skipped are not seen: a forwarded batch may be among them.
    for (const f of this.forwarded.values()) f.maybeApplied = true;
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
    if (term > this.appliedTerm) this.termSettled(index, term);
  }

  // ---- time-outs and failures ----------------------------------------------------

  /**
   * Fails every request whose deadline passed. While no leader is reachable
   * (`view.reachable` false), requests that never left the queue (they were
   * never proposed, or are known not to have applied) and reads get
   * NoLeaderError; the others RequestTimeoutError (outcome unknown). Writes
   * of a term that has had no leader here for orphanGraceMs fail with
   * LeaderChangedError('unknown').
   */
  expire(view: LeadershipView): void {
    if (view.leader !== null) this.ledAt.set(view.term, this.opts.now());
    if (!this.hasOutstanding()) return;
    const now = this.opts.now();
    const metrics = this.opts.metrics;
    const noLeader = !view.reachable;
    this.expireOrphans(view, now);
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
        // It reached a leader, or may have: its outcome is unknown whether or not a leader is known now.
        w.reject(new RequestTimeoutError('a forwarded write', this.opts.requestTimeoutMs));
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

  /**
   * Fails the writes of a term that has had no leader here for
   * orphanGraceMs (this node lost its leader and no other has settled the
   * term since: it is likely cut off), unless their entry is committed here.
   */
  private expireOrphans(view: LeadershipView, now: number): void {
    const orphaned = (term: Term): boolean => {
      if (term === view.term && view.leader !== null) return false;
      const led = this.ledAt.get(term);
      return led !== undefined && now - led >= this.opts.orphanGraceMs;
    };
    const fail = (q: Waiter): void => {
      this.opts.metrics.leaderChangedUnknown++;
      q.reject(new LeaderChangedError('unknown'));
    };
    for (const [id, f] of this.forwarded) {
      if (!orphaned(f.term)) continue;
      this.forwarded.delete(id);
      f.waiters.forEach(fail);
    }
    for (const [index, w] of this.inLog) {
      if (!orphaned(w.term) || this.opts.isCommitted(index, w.term)) continue;
      this.inLog.delete(index);
      for (const x of w.waiters) if (x !== null) fail(x);
    }
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

/** Byte equality of two arrays. */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}
