// The runtime that drives one node's consensus core in real time: a timer
// ticks it, the transport feeds it messages, and each round runs the Ready
// driver (src/node/ready-loop.ts): send, write (src/node/node-storage.ts),
// apply committed entries to the state machine, answer clients, advance().
// The log's fdatasync runs off the event loop (group commit); when it ends,
// the driver sends what had to wait for the disk and acknowledges the Readies
// it covered (persisted()), and the runtime schedules another round. So while
// one fsync runs, this thread keeps reading requests, proposing, sending and
// committing.
//
// Ticks are replayed, not polled: before the core sees anything (a frame, a
// round, the timer) it gets one tick() per tickMs that has passed, and the
// timer sleeps until the next tick that can act (RaftNode.ticksUntilDue), or
// the next tick while client requests are outstanding. An idle follower
// therefore wakes for the leader's heartbeats only, not 1000 / tickMs times a
// second, and the core sees the same ticks in the same order either way.
//
// Batching: client commands queue while a round runs; the next round packs
// all of them into as few entries as fit `maxEntryBytes` (one fsync for all).
// Nothing waits on a timer: an idle node starts a round as soon as a request
// arrives (setImmediate), so a lone client pays no batching delay.
//
// Bounded queues: at most `maxPendingRequests` commands and
// `maxPendingBytes` bytes wait here (beyond that a client gets
// TooManyRequestsError at once); every request has a deadline
// (RequestTimeoutError); the core's own `maxUncommittedBytes` pushes back
// when followers lag, and the transport bounds each peer's send queue.
//
// Followers forward writes and linearizable reads to the leader
// (src/node/forward.ts) and answer from their own applied state.
//
// Membership (docs/MEMBERSHIP.md): changeMembership() proposes one change on
// the leader and resolves when its configuration entry commits (applies
// here); configuration entries are not state machine commands and are
// skipped by apply() as no-ops are. Observers that setAutoPromote() names are
// promoted by the leader as soon as the core stops refusing (at most one try
// per tick). A node whose committed configuration no longer lists it is
// `removed` (logged once); the server layer stops serving clients then.

import type { Logger } from 'pino';
import {
  BackpressureError, ConfigChangeInProgressError, LeaderNotReadyError, LeaderTransferInProgressError, NotCaughtUpError, NotLeaderError, DirectoryIdConflictError,
} from '../core/errors.js';
import { RaftNode } from '../core/node.js';
import type { RaftConfigInput } from '../core/config.js';
import type { DirIdConflict } from '../core/ready.js';
import type { RoleKind } from '../core/roles.js';
import type { ConfigChange, Configuration, Entry, SnapshotMeta } from '../protocol/entry.js';
import type { LogIndex, NodeId, Term } from '../protocol/ids.js';
import type { Message } from '../protocol/messages.js';
import type { PeerFrame, Transport } from '../transport/types.js';
import { BATCH_HEADER_BYTES, BATCH_ITEM_OVERHEAD_BYTES, decodeBatch, encodeBatch } from './batch.js';
import { LeaderChangedError, NoLeaderError, NodeStoppedError, RequestTimeoutError, TooManyRequestsError } from './errors.js';
import { CHANNEL_MAX, FORWARD_CHANNEL, isServiceChannel, RUNTIME_CHANNEL_MAX } from './channels.js';
import { decodeForward, encodeForward, type ForwardMessage, type ForwardRefusal } from './forward.js';
import type { NodeStorage } from './node-storage.js';
import { ReadyLoop } from './ready-loop.js';

/** The replicated state machine the log feeds. Must be deterministic. */
export interface StateMachine {
  /** Applies one committed command; the result goes back to whoever proposed it. */
  apply(command: Uint8Array, index: LogIndex): unknown;
  /** The whole state, for a snapshot at the last applied index. */
  snapshot(): Uint8Array;
  /** Replaces the state with a snapshot's. */
  restore(data: Uint8Array): void;
}

/** One member's replication progress as the leader sees it (a copy). */
export interface MemberProgress {
  readonly id: NodeId;
  /** Counted in quorums. */
  readonly voter: boolean;
  /** In the configuration (false: a pull-mode fetcher that is not a member). */
  readonly member: boolean;
  /** The highest index known durable on the member and matching the leader's log. */
  readonly match: LogIndex;
  /** Push: the next index to send. */
  readonly next: LogIndex;
}

/** A node's consensus state, copied out of the core: all that src/server, src/broker and the dashboard see of it. */
export interface RuntimeStatus {
  readonly id: NodeId;
  readonly role: RoleKind;
  readonly term: Term;
  readonly leader: NodeId | null;
  readonly commitIndex: LogIndex;
  readonly appliedIndex: LogIndex;
  readonly lastIndex: LogIndex;
  /** The last index durable on this node (the rest is still being synced). */
  readonly stableIndex: LogIndex;
  readonly dirId: number | null;
  /** A voter of the configuration in force (else a learner/observer). */
  readonly isVoter: boolean;
  /** The configuration in force, the index of its entry, and whether that entry is committed. */
  readonly configuration: { readonly index: LogIndex; readonly committed: boolean; readonly config: Configuration };
  /** On the leader: every member's progress; empty elsewhere. */
  readonly progress: readonly MemberProgress[];
  /** Readies handed to the storage writer and not yet durable. */
  readonly inflightReadies: number;
  readonly electionsStarted: number;
  readonly leadersElected: number;
}

/** Counters and gauges for /metrics and `quorumlog status`. */
export interface RuntimeMetrics {
  proposalsTotal: number;
  entriesProposedTotal: number;
  /** Commands per proposed entry, for the batch-size histogram. */
  readonly batchSizes: number[];
  /** fdatasync latencies (ms) since the last collection. */
  readonly fsyncMs: number[];
  /** The last (up to 256) fdatasync latencies (ms), oldest first, for /status percentiles (not drained). */
  readonly fsyncRecentMs: number[];
  roundsTotal: number;
  forwardedWrites: number;
  forwardedReads: number;
  rejectedTooMany: number;
  timedOut: number;
  malformedForwardFrames: number;
  stepErrors: number;
  snapshotsTaken: number;
  snapshotsInstalled: number;
}

export interface RuntimeOptions {
  /** The core's configuration (random is supplied by the caller). */
  readonly raft: RaftConfigInput;
  readonly storage: NodeStorage;
  readonly transport: Transport;
  readonly stateMachine: StateMachine;
  readonly logger: Logger;
  /** Real milliseconds per core tick. */
  readonly tickMs: number;
  readonly requestTimeoutMs?: number;
  readonly maxPendingRequests?: number;
  readonly maxPendingBytes?: number;
  /** Largest batch packed into one entry. */
  readonly maxEntryBytes?: number;
  /** Take a snapshot and compact the log after this many applied entries... */
  readonly snapshotEveryEntries?: number;
  /** ...or this many bytes of applied entries, whichever comes first (the core keeps the log since the last snapshot in memory). */
  readonly snapshotEveryBytes?: number;
  /** Called once when the node must stop (a storage failure): the process should exit. */
  readonly onFatal?: (err: unknown) => void;
}

interface Waiter {
  readonly resolve: (result: unknown) => void;
  readonly reject: (err: Error) => void;
  readonly deadline: number;
}

interface QueuedCommand extends Waiter {
  readonly command: Uint8Array;
}

/** Commands in one entry that was proposed (here, or by the leader for us): resolved when that entry applies. */
interface InLog {
  readonly term: Term;
  readonly waiters: readonly (Waiter | null)[];
}

/** A forwarded batch waiting for the leader's (index, term). */
interface Forwarded {
  readonly waiters: readonly Waiter[];
  readonly deadline: number;
}

/** Why the leader (or this node) cannot take a request now. */
function refusalError(reason: ForwardRefusal): Error {
  switch (reason) {
    case 'notLeader': return new NoLeaderError();
    case 'backpressure': return new TooManyRequestsError('the leader is pushing back: too many uncommitted bytes');
    case 'transfer': return new NoLeaderError();
  }
}

/** One node: a RaftNode driven in real time over real storage and transport. */
export class NodeRuntime {
  readonly id: NodeId;
  readonly core: RaftNode;
  readonly metrics: RuntimeMetrics = {
    proposalsTotal: 0, entriesProposedTotal: 0, batchSizes: [], fsyncMs: [], fsyncRecentMs: [], roundsTotal: 0, forwardedWrites: 0,
    forwardedReads: 0, rejectedTooMany: 0, timedOut: 0, malformedForwardFrames: 0, stepErrors: 0,
    snapshotsTaken: 0, snapshotsInstalled: 0,
  };
  private readonly opts: Required<Omit<RuntimeOptions, 'onFatal'>> & Pick<RuntimeOptions, 'onFatal'>;
  private readonly log: Logger;
  private readonly sm: StateMachine;
  private readonly storage: NodeStorage;
  private readonly transport: Transport;
  private readonly loop: ReadyLoop;
  /** Entries were written since the last sync began (for the fsync latency metrics). */
  private entriesUnsynced = false;

  private queue: QueuedCommand[] = [];
  private queueBytes = 0;
  private readonly inLog = new Map<LogIndex, InLog>();
  private readonly forwarded = new Map<number, Forwarded>();
  /** Service channels (onChannel). */
  private readonly channels = new Map<number, (from: NodeId, payload: Uint8Array) => void>();
  /** The last (up to 64) changes of this node's role, leader or term, oldest first (wall-clock ms), for /status and the dashboard. */
  readonly leadershipEvents: { at: number; term: number; leader: string | null; role: string }[] = [];
  /** Listeners of role, leader or term changes (onLeadershipChange). */
  private readonly leadershipListeners: (() => void)[] = [];
  /** performance.now() of the last frame from each peer (lastHeardFrom). */
  private readonly heardAt = new Map<NodeId, number>();
  /** Read barriers not yet sent to the core or the leader. */
  private readQueue: Waiter[] = [];
  /** Read barriers asked of the core (ctx) or of the leader (reqId), by id. */
  private readonly readsAsked = new Map<number, { waiters: Waiter[]; local: boolean; deadline: number }>();
  /** Confirmed reads waiting for the applied index, in no particular order. */
  private readsConfirmed: { index: LogIndex; waiters: Waiter[] }[] = [];
  /** Reads the leader runs for followers: ctx → (peer, reqId). */
  private readonly remoteReads = new Map<number, { peer: NodeId; reqId: number }>();
  private nextId = 1;
  private applied: LogIndex;
  private lastSnapshotIndex: LogIndex;
  /** Bytes of entries applied since the last snapshot. */
  private bytesSinceSnapshot = 0;
  private scheduled = false;
  /** Ticks replayed since start. */
  private ticks = 0;
  /** performance.now() of the last tick replayed into the core. */
  private lastTickAt = 0;
  private lastExpireTick = 0;
  private readonly ticksPerSecond: number;
  private readonly ticksPerExpiry: number;
  /** After the leader refused forwarded writes (it no longer leads): wait for a tick before forwarding again. */
  private forwardHoldUntil = 0;
  private timer: NodeJS.Timeout | null = null;
  /** When the armed timer fires (performance.now() scale), or Infinity. */
  private timerAt = Infinity;
  private stopped = false;
  private lastRole: RoleKind | null = null;
  private lastLeader: NodeId | null = null;
  private lastTerm: Term = -1;
  /** Membership changes proposed here, by the index of their configuration entry: resolved when it applies. */
  private readonly configWaiters = new Map<LogIndex, Waiter & { readonly term: Term }>();
  /** Listeners of configuration changes (onConfigurationChange). */
  private readonly configListeners: (() => void)[] = [];
  /** The configuration last reported to listeners: its index and whether it was committed. */
  private lastConfigIndex = -1;
  private lastConfigCommitted = false;
  /** Which observers the leader promotes once caught up (setAutoPromote). */
  private autoPromote: (node: NodeId) => boolean = () => false;
  private lastAutoPromoteTick = -1;
  private isRemoved = false;
  /** The directory-id conflict last logged (noteLostDisk), or null. */
  private lostDiskConflict: DirIdConflict | null = null;
  /** The configuration in force at the last noteConfiguration() came from the log or a snapshot (index > 0) and listed this node. */
  private listedInLog = false;

  constructor(opts: RuntimeOptions) {
    this.opts = {
      requestTimeoutMs: 5000, maxPendingRequests: 20_000, maxPendingBytes: 64 << 20, maxEntryBytes: 256 << 10,
      snapshotEveryEntries: 10_000, snapshotEveryBytes: 64 << 20, ...opts,
    };
    this.log = opts.logger;
    this.ticksPerSecond = Math.max(1, Math.round(1000 / this.opts.tickMs));
    this.ticksPerExpiry = Math.max(1, Math.round(50 / this.opts.tickMs));
    this.sm = opts.stateMachine;
    this.storage = opts.storage;
    this.transport = opts.transport;
    const persisted = this.storage.recover();
    if (persisted.snapshot !== null) this.sm.restore(this.storage.readSnapshot(persisted.snapshot));
    this.applied = persisted.snapshot?.index ?? 0;
    this.lastSnapshotIndex = this.applied;
    this.core = new RaftNode({ ...opts.raft, snapshotReader: this.storage.coreSnapshotReader }, persisted);
    this.id = this.core.id;
    this.loop = new ReadyLoop(this.core, {
      send: (m) => this.sendRaft(m),
      flushSends: () => this.transport.flush(),
      write: (r) => {
        this.metrics.roundsTotal++;
        if (r.entries.length > 0) this.entriesUnsynced = true;
        this.storage.write(r);
      },
      sync: (done) => {
        const t0 = performance.now();
        // Only a sync that had entries to flush is an fdatasync worth timing (the others end at once).
        const timed = this.entriesUnsynced;
        this.entriesUnsynced = false;
        this.storage.sync((err) => {
          if (timed && (err === null || err === undefined)) {
            const ms = performance.now() - t0;
            pushBounded(this.metrics.fsyncMs, ms);
            pushRing(this.metrics.fsyncRecentMs, ms, 256);
          }
          done(err);
        });
      },
      apply: (entries) => this.apply(entries),
      readState: (rs) => this.onReadState(rs.ctx, rs.index),
      readAborted: (ctx) => this.onReadAborted(ctx),
      restoreSnapshot: (meta) => this.restoreSnapshot(meta),
      afterCoreCall: () => this.resolveReads(),
      onPersisted: () => this.schedule(),
      onFatal: (e) => this.fatal(e),
    });
    this.log.info({ term: persisted.hardState.term, commit: persisted.hardState.commit, snapshot: persisted.snapshot,
      lastIndex: this.core.log.lastIndex() }, 'recovered from disk');
  }

  /** Starts ticking and listening. */
  async start(): Promise<void> {
    this.transport.onFrame((from, frame) => this.onFrame(from, frame));
    await this.transport.start();
    this.lastTickAt = performance.now();
    this.armTimer();
    this.schedule();
  }

  /** Stops the node: pending requests fail with NodeStoppedError, the stores close. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.loop.stop();
    if (this.timer !== null) clearTimeout(this.timer);
    this.failAll(new NodeStoppedError());
    await this.transport.close();
    this.storage.close();
  }

  /** The index up to which the state machine has applied. */
  get appliedIndex(): LogIndex {
    return this.applied;
  }

  // ---- the narrow face: what everything above src/node may know of the core ----
  // Servers, brokers, metrics and the dashboard read these (a lint rule keeps
  // them off `core`), so a change to the core's roles stays inside src/node.

  /** True while this node leads. */
  isLeader(): boolean {
    return this.core.role.kind === 'leader';
  }

  /** The leader this node knows of (itself when it leads), or null. */
  leaderId(): NodeId | null {
    return this.core.leaderId();
  }

  /** The current term. */
  get term(): Term {
    return this.core.term;
  }

  /** The highest index known committed. */
  get commitIndex(): LogIndex {
    return this.core.log.commit;
  }

  /** The term of the entry at `index` in this node's log (the snapshot's at its index), or undefined. */
  termAt(index: LogIndex): Term | undefined {
    return this.core.log.term(index);
  }

  /** A copy of the node's consensus state, taken now (for status pages and metrics; not for hot paths). */
  status(): RuntimeStatus {
    const core = this.core;
    const role = core.role;
    const cfg = core.configuration();
    return {
      id: this.id, role: role.kind, term: core.term, leader: core.leaderId(), commitIndex: core.log.commit,
      appliedIndex: this.applied, lastIndex: core.log.lastIndex(), stableIndex: core.log.stable, dirId: core.dirId ?? null,
      isVoter: core.isVoter, configuration: { index: cfg.index, committed: cfg.committed, config: cfg.config },
      progress: role.kind === 'leader'
        ? [...role.progress.values()].map((p) => ({ id: p.id, voter: p.isVoter, member: p.member, match: p.match, next: p.next }))
        : [],
      inflightReadies: core.inflightReadies(), electionsStarted: core.stats.electionsStarted, leadersElected: core.stats.leadersElected,
    };
  }

  /**
   * Submits one command for the log; resolves with the state machine's
   * result for it once this node has applied it.
   */
  submit(command: Uint8Array): Promise<unknown> {
    if (this.stopped) return Promise.reject(new NodeStoppedError());
    if (this.queue.length >= this.opts.maxPendingRequests || this.queueBytes + command.byteLength > this.opts.maxPendingBytes) {
      this.metrics.rejectedTooMany++;
      return Promise.reject(new TooManyRequestsError(`${this.queue.length} commands (${this.queueBytes} bytes) already wait to be proposed`));
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ command, resolve, reject, deadline: this.deadline() });
      this.queueBytes += command.byteLength;
      this.schedule();
    });
  }

  /** Resolves once the state machine reflects every write committed before the call (ReadIndex). */
  readBarrier(): Promise<void> {
    if (this.stopped) return Promise.reject(new NodeStoppedError());
    if (this.readQueue.length >= this.opts.maxPendingRequests) {
      this.metrics.rejectedTooMany++;
      return Promise.reject(new TooManyRequestsError('too many reads wait for a barrier'));
    }
    return new Promise((resolve, reject) => {
      this.readQueue.push({ resolve: () => resolve(), reject, deadline: this.deadline() });
      this.schedule();
    });
  }

  /**
   * Lets a service above the runtime talk to its peers on its own transport
   * channel (leases forward keep-alives to the leader this way). Channels are
   * numbered in src/node/channels.ts; those up to RUNTIME_CHANNEL_MAX are the
   * runtime's own (forwarding); a channel can have one handler. The
   * handler gets untrusted bytes from `from` and must not throw on them.
   */
  onChannel(channel: number, handler: (from: NodeId, payload: Uint8Array) => void): void {
    if (!isServiceChannel(channel)) throw new RangeError(`channel ${channel} is reserved or out of range (${RUNTIME_CHANNEL_MAX + 1}..${CHANNEL_MAX})`);
    if (this.channels.has(channel)) throw new Error(`channel ${channel} already has a handler`);
    this.channels.set(channel, handler);
  }

  /** Sends bytes to a peer on a service channel; false when the peer's send queue is full (the frame was not queued). */
  sendChannel(to: NodeId, channel: number, payload: Uint8Array): boolean {
    if (this.stopped) return false;
    return this.transport.send(to, { kind: 'app', channel, payload });
  }

  /**
   * Calls `listener` (after the round in which it happened) whenever this
   * node's role, its leader or its term changes, so that services that act
   * only on the leader (lease expiry, queue liveness) need not poll.
   */
  onLeadershipChange(listener: () => void): () => void {
    this.leadershipListeners.push(listener);
    return () => {
      const i = this.leadershipListeners.indexOf(listener);
      if (i >= 0) this.leadershipListeners.splice(i, 1);
    };
  }

  /**
   * When this node last received anything from `peer` (performance.now()
   * scale), or null. A leader hears from every live member several times an
   * election timeout (heartbeat answers, or fetches in pull mode), so this is
   * a failure detector that costs no extra messages.
   */
  lastHeardFrom(peer: NodeId): number | null {
    return this.heardAt.get(peer) ?? null;
  }

  /**
   * Proposes one membership change (docs/MEMBERSHIP.md) and resolves with the
   * index of its configuration entry once that entry has committed (and this
   * node has passed it). Leader only: on a follower it rejects with
   * NotLeaderError (its leaderHint says where to go; src/server/membership.ts
   * forwards). Rejects at once with the core's named errors
   * (ConfigChangeInProgressError, LeaderNotReadyError, NotCaughtUpError,
   * InvalidConfigChangeError, LeaderTransferInProgressError), later with
   * LeaderChangedError (the entry was replaced), RequestTimeoutError or
   * NodeStoppedError.
   */
  changeMembership(change: ConfigChange): Promise<{ index: LogIndex }> {
    if (this.stopped) return Promise.reject(new NodeStoppedError());
    this.catchUpTicks();
    let index: LogIndex;
    try {
      index = this.core.proposeConfigChange(change);
    } catch (e) {
      return Promise.reject(e as Error);
    }
    this.log.info({ change, index }, `proposed membership change: ${change.kind} ${change.node}`);
    const term = this.core.term;
    const p = new Promise<{ index: LogIndex }>((resolve, reject) => {
      this.configWaiters.set(index, { term, resolve: () => resolve({ index }), reject, deadline: this.deadline() });
    });
    this.schedule();
    return p;
  }

  /** The configuration in force here (the core's), for the server layer. */
  configuration(): { readonly index: LogIndex; readonly config: Configuration; readonly committed: boolean } {
    return this.core.configuration();
  }

  /**
   * Calls `listener` after the round in which this node's configuration in
   * force changed or became committed (peers to connect, removal).
   */
  onConfigurationChange(listener: () => void): () => void {
    this.configListeners.push(listener);
    return () => {
      const i = this.configListeners.indexOf(listener);
      if (i >= 0) this.configListeners.splice(i, 1);
    };
  }

  /**
   * Names the observers that the leader promotes as soon as they have caught
   * up (the members registry's promoteWhenCaughtUp): while this node leads
   * and no change is pending, it tries once per tick; NotCaughtUpError and
   * the other "not now" refusals just wait for the next tick.
   */
  setAutoPromote(pred: (node: NodeId) => boolean): void {
    this.autoPromote = pred;
    this.schedule();
  }

  /**
   * True once this node's committed configuration no longer lists it, after
   * it was a member (a voter of the bootstrap configuration, or listed by
   * the configuration just before the one in force). Such a node no longer
   * campaigns (the core) and should serve no clients.
   */
  get removed(): boolean {
    return this.isRemoved;
  }

  /**
   * Another member says that its committed configuration at `index` no
   * longer lists this node. In push mode a removed follower never learns
   * that its removal committed (the leader stops sending to it once the
   * entry is in its log), so the server layer asks the peers
   * (src/server/membership.ts); it may not even have the entry. Taken only
   * when the configuration in force here is not newer than `index` (a
   * committed configuration is the same on every member, and one that
   * re-added this node would list it).
   */
  confirmRemoved(index: LogIndex, by: NodeId): void {
    const cfg = this.core.configuration();
    if (this.isRemoved || cfg.index > index) return;
    this.isRemoved = true;
    this.log.warn({ configurationIndex: index, by },
      'this node has been removed from the cluster (a member confirmed the removal committed): it serves no clients any more');
    for (const l of [...this.configListeners]) {
      try {
        l();
      } catch (e) {
        this.log.error({ err: e }, 'a configuration listener failed');
      }
    }
  }

  /** Hands leadership to `target` (leader only). */
  transferLeadership(target: NodeId): void {
    this.catchUpTicks();
    this.core.transferLeadership(target);
    this.schedule();
  }

  // ---- the event loop side -------------------------------------------------

  private deadline(): number {
    return performance.now() + this.opts.requestTimeoutMs;
  }

  /**
   * The timer: replays the ticks that passed, then sleeps until the next one
   * that matters. With client work outstanding that is the next tick (its
   * deadlines are checked on ticks); otherwise it is what the core says
   * (RaftNode.ticksUntilDue: an idle follower sleeps until its election
   * timeout, an idle leader until its next heartbeat), at most a second.
   */
  private onTimer(): void {
    this.timer = null;
    this.timerAt = Infinity;
    if (this.stopped) return;
    this.catchUpTicks();
    if (this.stopped) return;
    if (this.core.hasReady() || this.hasQueuedWork()) this.schedule();
    this.armTimer();
  }

  /**
   * Calls tick() once for every tick that has passed since the last one, so
   * the core's clock is right before it sees anything else. After a long
   * stall (SIGSTOP, a swapped-out process) at most an election timeout's
   * worth of ticks is replayed; the rest are dropped, as an interval timer
   * would drop them.
   */
  private catchUpTicks(): void {
    const now = performance.now();
    let n = Math.floor((now - this.lastTickAt) / this.opts.tickMs);
    if (n <= 0) return;
    const max = this.core.config.electionTimeoutMaxTicks + 1;
    if (n > max) {
      this.lastTickAt += (n - max) * this.opts.tickMs;
      n = max;
    }
    for (let i = 0; i < n; i++) {
      this.lastTickAt += this.opts.tickMs;
      this.ticks++;
      if (this.ticks % this.ticksPerSecond === 0) {
        try {
          this.storage.flushHardState(); // a commit index held back by the lazy save
        } catch (e) {
          this.fatal(e);
          return;
        }
      }
      this.core.tick();
    }
    // Deadlines are checked every few ticks while requests are outstanding.
    if (this.ticks - this.lastExpireTick >= this.ticksPerExpiry) {
      this.lastExpireTick = this.ticks;
      this.expire();
    }
  }

  /** Arms the timer for the next tick that matters, unless it already fires by then. */
  private armTimer(): void {
    if (this.stopped) return;
    const ticks = this.hasOutstandingWork() ? 1 : Math.min(this.core.ticksUntilDue(), this.ticksPerSecond);
    const at = this.lastTickAt + ticks * this.opts.tickMs;
    if (this.timer !== null && this.timerAt <= at) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => this.onTimer(), Math.max(0, at - performance.now()));
  }

  /** Requests anywhere between arrival and answer: their deadlines need the clock. */
  private hasOutstandingWork(): boolean {
    return this.queue.length > 0 || this.readQueue.length > 0 || this.inLog.size > 0 || this.forwarded.size > 0 ||
      this.readsAsked.size > 0 || this.readsConfirmed.length > 0 || this.configWaiters.size > 0;
  }

  /** Client work waiting for a round (not for the cluster). */
  private hasQueuedWork(): boolean {
    return this.queue.length > 0 || this.readQueue.length > 0;
  }

  private onFrame(from: NodeId, frame: PeerFrame): void {
    if (this.stopped) return;
    this.catchUpTicks();
    if (this.stopped) return;
    this.heardAt.set(from, performance.now());
    if (frame.kind === 'raft') {
      this.stepMessage(from, frame.message);
    } else if (frame.channel === FORWARD_CHANNEL) {
      let m: ForwardMessage;
      try {
        m = decodeForward(frame.payload);
      } catch (e) {
        this.metrics.malformedForwardFrames++;
        this.log.warn({ peer: from, err: (e as Error).message }, 'dropped a malformed forwarding frame');
        return;
      }
      this.onForward(from, m);
    } else {
      const handler = this.channels.get(frame.channel);
      if (handler !== undefined) {
        try {
          handler(from, frame.payload);
        } catch (e) {
          this.metrics.malformedForwardFrames++;
          this.log.warn({ peer: from, channel: frame.channel, err: (e as Error).message }, 'a service channel handler failed on a frame');
        }
      } else {
        this.metrics.malformedForwardFrames++;
        this.log.warn({ peer: from, channel: frame.channel }, 'dropped a frame on an unknown channel');
      }
    }
    this.schedule();
  }

  private stepMessage(from: NodeId, m: Message): void {
    if (m.from !== from || m.to !== this.id) {
      this.metrics.stepErrors++;
      this.log.warn({ peer: from, claimedFrom: m.from, to: m.to, type: m.type }, 'dropped a message with a wrong sender or receiver');
      return;
    }
    try {
      this.core.step(m);
    } catch (e) {
      this.metrics.stepErrors++;
      this.log.error({ peer: from, type: m.type, err: e }, 'the core refused a message');
    }
  }

  private schedule(): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.round();
    });
  }

  /** One round: propose what queued, then run the core's Ready cycle until it has nothing. */
  private round(): void {
    if (this.stopped) return;
    try {
      this.catchUpTicks();
      if (this.stopped) return;
      this.flushProposals();
      this.flushReads();
      this.maybeAutoPromote();
      this.loop.run(16);
      this.noteConfiguration(); // before a snapshot may compact away the configuration before the one in force
      this.maybeSnapshot();
      this.noteLeadership();
      if (this.core.hasReady()) this.schedule();
      this.armTimer();
    } catch (e) {
      this.fatal(e);
    }
  }

  private sendRaft(m: Message): void {
    this.transport.send(m.to, { kind: 'raft', message: m });
  }

  private restoreSnapshot(meta: SnapshotMeta): void {
    this.sm.restore(this.storage.readSnapshot(meta));
    this.metrics.snapshotsInstalled++;
    this.log.info({ index: meta.index, term: meta.term }, 'installed a snapshot from the leader');
    this.applied = meta.index;
    this.lastSnapshotIndex = meta.index;
    this.bytesSinceSnapshot = 0;
    for (const [index, w] of this.inLog) {
      if (index > meta.index) continue;
      this.inLog.delete(index);
      for (const x of w.waiters) x?.reject(new RequestTimeoutError('a request whose entry a snapshot replaced', 0));
    }
    for (const [index, w] of this.configWaiters) {
      if (index > meta.index) continue;
      this.configWaiters.delete(index);
      w.reject(new RequestTimeoutError('a membership change whose entry a snapshot replaced', 0));
    }
  }

  private apply(entries: readonly Entry[]): void {
    for (const e of entries) {
      if (e.index <= this.applied) continue;
      let results: unknown[] = [];
      if (e.type === 'data') {
        let commands: Uint8Array[];
        try {
          commands = decodeBatch(e.data);
        } catch (err) {
          // Only a bug or corruption can put a bad batch in a committed entry;
          // every replica skips it alike, so the state machines stay equal.
          this.log.error({ index: e.index, err }, 'skipped a committed entry whose batch does not parse');
          commands = [];
        }
        results = commands.map((c) => this.sm.apply(c, e.index));
      }
      // 'noop' and 'config' entries are not state machine commands; a config entry ends a membership change.
      this.applied = e.index;
      this.bytesSinceSnapshot += e.data.byteLength;
      if (e.type === 'config') {
        const cw = this.configWaiters.get(e.index);
        if (cw !== undefined) {
          this.configWaiters.delete(e.index);
          if (cw.term === e.term) cw.resolve(undefined);
          else cw.reject(new LeaderChangedError());
        }
      }
      const w = this.inLog.get(e.index);
      if (w === undefined) continue;
      this.inLog.delete(e.index);
      if (w.term !== e.term) {
        for (const x of w.waiters) x?.reject(new LeaderChangedError());
      } else {
        w.waiters.forEach((x, i) => x?.resolve(results[i]));
      }
    }
  }

  // ---- proposals -------------------------------------------------------------

  private flushProposals(): void {
    if (this.queue.length === 0) return;
    const leader = this.core.leaderId();
    if (leader === null) return; // wait for an election (bounded by the deadline)
    const batches = this.packQueue();
    if (leader === this.id) {
      for (let i = 0; i < batches.length; i++) {
        const b = batches[i] as QueuedCommand[];
        try {
          const index = this.core.propose([encodeBatch(b.map((q) => q.command))]);
          this.inLog.set(index, { term: this.core.term, waiters: b });
          this.metrics.proposalsTotal += b.length;
          this.metrics.entriesProposedTotal++;
          pushBounded(this.metrics.batchSizes, b.length);
        } catch (e) {
          if (e instanceof BackpressureError || e instanceof LeaderTransferInProgressError) {
            this.requeue(batches.slice(i)); // retried after the next commit, bounded by deadlines
            return;
          }
          throw e;
        }
      }
    } else {
      if (performance.now() < this.forwardHoldUntil) {
        this.requeue(batches);
        return;
      }
      for (const b of batches) {
        const reqId = this.nextId++;
        const batch = encodeBatch(b.map((q) => q.command));
        if (!this.transport.send(leader, { kind: 'app', channel: FORWARD_CHANNEL, payload: encodeForward({ type: 'propose', reqId, batch }) })) {
          for (const q of b) q.reject(new TooManyRequestsError('the connection to the leader is congested'));
          continue;
        }
        this.metrics.forwardedWrites += b.length;
        this.forwarded.set(reqId, { waiters: b, deadline: Math.max(...b.map((q) => q.deadline)) });
      }
    }
  }

  /** Takes the whole queue, cut into batches of at most maxEntryBytes. */
  private packQueue(): QueuedCommand[][] {
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

  private requeue(batches: QueuedCommand[][]): void {
    const back = batches.flat();
    this.queue = back.concat(this.queue);
    this.queueBytes = this.queue.reduce((s, q) => s + q.command.byteLength, 0);
  }

  // ---- reads -----------------------------------------------------------------

  private flushReads(): void {
    if (this.readQueue.length === 0) return;
    const leader = this.core.leaderId();
    if (leader === null) return;
    const waiters = this.readQueue;
    this.readQueue = [];
    const id = this.nextId++;
    const deadline = Math.max(...waiters.map((w) => w.deadline));
    if (leader === this.id) {
      try {
        this.core.readIndex(id);
      } catch (e) {
        if (e instanceof NotLeaderError) {
          this.readQueue = waiters.concat(this.readQueue);
          return;
        }
        throw e;
      }
      this.readsAsked.set(id, { waiters, local: true, deadline });
    } else {
      if (!this.transport.send(leader, { kind: 'app', channel: FORWARD_CHANNEL, payload: encodeForward({ type: 'read', reqId: id }) })) {
        for (const w of waiters) w.reject(new TooManyRequestsError('the connection to the leader is congested'));
        return;
      }
      this.metrics.forwardedReads += waiters.length;
      this.readsAsked.set(id, { waiters, local: false, deadline });
    }
  }

  private onReadState(ctx: number, index: LogIndex): void {
    const remote = this.remoteReads.get(ctx);
    if (remote !== undefined) {
      this.remoteReads.delete(ctx);
      this.sendForward(remote.peer, { type: 'readIndex', reqId: remote.reqId, index });
      return;
    }
    const asked = this.readsAsked.get(ctx);
    if (asked === undefined) return;
    this.readsAsked.delete(ctx);
    this.readsConfirmed.push({ index, waiters: asked.waiters });
  }

  private onReadAborted(ctx: number): void {
    const remote = this.remoteReads.get(ctx);
    if (remote !== undefined) {
      this.remoteReads.delete(ctx);
      this.sendForward(remote.peer, { type: 'refused', reqId: remote.reqId, reason: 'notLeader' });
      return;
    }
    const asked = this.readsAsked.get(ctx);
    if (asked === undefined) return;
    this.readsAsked.delete(ctx);
    // Leadership was lost before the read was confirmed: try again with whoever leads next.
    this.readQueue = asked.waiters.concat(this.readQueue);
  }

  private resolveReads(): void {
    if (this.readsConfirmed.length === 0) return;
    const still: { index: LogIndex; waiters: Waiter[] }[] = [];
    for (const r of this.readsConfirmed) {
      if (r.index <= this.applied) for (const w of r.waiters) w.resolve(undefined);
      else still.push(r);
    }
    this.readsConfirmed = still;
  }

  // ---- forwarding --------------------------------------------------------------

  private sendForward(to: NodeId, m: ForwardMessage): void {
    this.transport.send(to, { kind: 'app', channel: FORWARD_CHANNEL, payload: encodeForward(m) });
  }

  private onForward(from: NodeId, m: ForwardMessage): void {
    switch (m.type) {
      case 'propose': {
        if (this.core.leaderId() !== this.id) {
          this.sendForward(from, { type: 'refused', reqId: m.reqId, reason: 'notLeader' });
          return;
        }
        try {
          decodeBatch(m.batch); // a malformed batch must never reach the log
          const index = this.core.propose([m.batch]);
          this.metrics.entriesProposedTotal++;
          this.sendForward(from, { type: 'proposed', reqId: m.reqId, index, term: this.core.term });
        } catch (e) {
          const reason: ForwardRefusal = e instanceof BackpressureError ? 'backpressure'
            : e instanceof LeaderTransferInProgressError ? 'transfer' : 'notLeader';
          if (!(e instanceof BackpressureError || e instanceof LeaderTransferInProgressError || e instanceof NotLeaderError)) {
            this.metrics.malformedForwardFrames++;
            this.log.warn({ peer: from, err: (e as Error).message }, 'refused a forwarded batch that does not parse');
          }
          this.sendForward(from, { type: 'refused', reqId: m.reqId, reason });
        }
        return;
      }
      case 'read': {
        if (this.core.leaderId() !== this.id) {
          this.sendForward(from, { type: 'refused', reqId: m.reqId, reason: 'notLeader' });
          return;
        }
        const ctx = this.nextId++;
        this.core.readIndex(ctx);
        this.remoteReads.set(ctx, { peer: from, reqId: m.reqId });
        return;
      }
      case 'proposed': {
        const f = this.forwarded.get(m.reqId);
        if (f === undefined) return;
        this.forwarded.delete(m.reqId);
        if (m.index <= this.applied) {
          // Already applied here before the answer came: the outcome is not known any more.
          for (const w of f.waiters) w.reject(new RequestTimeoutError('a forwarded write whose answer came late', 0));
          return;
        }
        this.inLog.set(m.index, { term: m.term, waiters: f.waiters });
        return;
      }
      case 'readIndex': {
        const asked = this.readsAsked.get(m.reqId);
        if (asked === undefined || asked.local) return;
        this.readsAsked.delete(m.reqId);
        this.readsConfirmed.push({ index: m.index, waiters: asked.waiters });
        this.resolveReads();
        return;
      }
      case 'refused': {
        const f = this.forwarded.get(m.reqId);
        if (f !== undefined) {
          this.forwarded.delete(m.reqId);
          if (m.reason === 'backpressure') for (const w of f.waiters) w.reject(refusalError(m.reason));
          else {
            // A new leader will take them; not before the next tick, or a stale hint would spin.
            this.forwardHoldUntil = performance.now() + this.opts.tickMs;
            this.requeueCommands(f.waiters as QueuedCommand[]);
          }
          return;
        }
        const asked = this.readsAsked.get(m.reqId);
        if (asked !== undefined && !asked.local) {
          this.readsAsked.delete(m.reqId);
          this.readQueue = asked.waiters.concat(this.readQueue);
        }
        return;
      }
    }
  }

  private requeueCommands(cmds: readonly QueuedCommand[]): void {
    this.requeue([cmds.slice()]);
  }

  // ---- time-outs, snapshots, failures ------------------------------------------

  /** Fails every request whose deadline passed; their outcome is unknown to the client. */
  private expire(): void {
    if (this.queue.length === 0 && this.forwarded.size === 0 && this.inLog.size === 0 && this.readQueue.length === 0 &&
      this.readsAsked.size === 0 && this.readsConfirmed.length === 0 && this.configWaiters.size === 0) return;
    const now = performance.now();
    for (const [index, w] of this.configWaiters) {
      if (w.deadline > now) continue;
      this.configWaiters.delete(index);
      this.metrics.timedOut++;
      w.reject(new RequestTimeoutError('a membership change', this.opts.requestTimeoutMs));
    }
    const noLeader = this.core.leaderId() === null;
    const timeout = (what: string): Error => noLeader ? new NoLeaderError() : new RequestTimeoutError(what, this.opts.requestTimeoutMs);
    if (this.queue.some((q) => q.deadline <= now)) {
      const keep: QueuedCommand[] = [];
      for (const q of this.queue) {
        if (q.deadline <= now) {
          this.metrics.timedOut++;
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
        this.metrics.timedOut++;
        w.reject(timeout('a forwarded write'));
      }
    }
    for (const [index, w] of this.inLog) {
      const live = w.waiters.filter((x) => x !== null && x.deadline > now);
      if (live.length === w.waiters.filter((x) => x !== null).length) continue;
      const waiters = w.waiters.map((x) => {
        if (x === null || x.deadline > now) return x;
        this.metrics.timedOut++;
        x.reject(new RequestTimeoutError('a write', this.opts.requestTimeoutMs));
        return null;
      });
      if (waiters.every((x) => x === null)) this.inLog.delete(index);
      else this.inLog.set(index, { term: w.term, waiters });
    }
    const expireWaiters = (ws: Waiter[]): Waiter[] => ws.filter((w) => {
      if (w.deadline > now) return true;
      this.metrics.timedOut++;
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

  /** After enough applied entries: snapshot the state machine, make it durable, compact the log. */
  private maybeSnapshot(): void {
    if (this.applied === this.lastSnapshotIndex) return;
    if (this.applied - this.lastSnapshotIndex < this.opts.snapshotEveryEntries && this.bytesSinceSnapshot < this.opts.snapshotEveryBytes) return;
    const index = this.applied;
    const term = this.core.log.term(index);
    if (term === undefined) return;
    const meta = this.core.snapshotMeta(index); // with the configuration in force there, stored with the snapshot
    const t0 = performance.now();
    const data = this.sm.snapshot();
    this.storage.saveSnapshot(meta, data);
    this.core.compact(index);
    this.storage.compactTo(meta);
    this.lastSnapshotIndex = index;
    this.bytesSinceSnapshot = 0;
    this.metrics.snapshotsTaken++;
    this.log.info({ index, term, bytes: data.byteLength, ms: Math.round(performance.now() - t0) }, 'took a snapshot and compacted the log');
  }

  /** Leader: promotes one observer that setAutoPromote names, if the core accepts it now (once per tick). */
  private maybeAutoPromote(): void {
    if (this.core.role.kind !== 'leader' || this.ticks === this.lastAutoPromoteTick) return;
    const cfg = this.core.configuration();
    if (!cfg.committed) return;
    const candidates = cfg.config.observers.filter((o) => this.autoPromote(o));
    if (candidates.length === 0) return;
    this.lastAutoPromoteTick = this.ticks;
    // Each candidate in turn (a refusal changes nothing), so that one that never catches up holds up no other.
    for (const node of candidates) {
      try {
        const index = this.core.proposeConfigChange({ kind: 'promote', node });
        this.log.info({ node, index }, `promoting ${node}: it has caught up`);
        return;
      } catch (e) {
        if (e instanceof NotCaughtUpError) continue;
        if (e instanceof ConfigChangeInProgressError || e instanceof LeaderNotReadyError || e instanceof LeaderTransferInProgressError ||
          e instanceof NotLeaderError) return;
        this.log.warn({ node, err: (e as Error).message }, `cannot promote ${node}`);
      }
    }
  }

  /**
   * Says once, loudly, when the configuration in force records another
   * directory id for this node than its own (docs/LOST-DISKS.md): its data
   * directory was lost or replaced, and the core will not let it vote or
   * count until it is re-added.
   */
  private noteLostDisk(): void {
    const conflict = this.core.dirIdConflict();
    if (conflict === null) {
      if (this.lostDiskConflict !== null) this.log.info({ dirId: this.core.dirId }, 'this node\'s data directory is the one its configuration records again: it votes and counts');
      this.lostDiskConflict = null;
      return;
    }
    if (this.lostDiskConflict !== null && this.lostDiskConflict.recorded === conflict.recorded) return;
    this.lostDiskConflict = conflict;
    const err = new DirectoryIdConflictError(this.id, conflict.recorded, conflict.mine);
    this.log.error({ recorded: conflict.recorded, dirId: conflict.mine, err: err.name },
      `${err.message} With the quorumlog CLI: \`quorumlog member remove ${this.id}\`, stop this node, empty its data directory, list it as an observer ` +
      `in its own config, \`quorumlog member add ${this.id} --learner --peer HOST:PORT --client HOST:PORT\`, start it, and ` +
      `\`quorumlog member promote ${this.id}\` once it has caught up.`);
  }

  /** The lost-disk conflict in force here (docs/LOST-DISKS.md), or null. */
  get lostDisk(): DirIdConflict | null {
    return this.lostDiskConflict;
  }

  /** Tells configuration listeners about a new (or newly committed) configuration, and notices this node's removal. */
  private noteConfiguration(): void {
    const cfg = this.core.configuration();
    if (cfg.index === this.lastConfigIndex && cfg.committed === this.lastConfigCommitted) return;
    this.lastConfigIndex = cfg.index;
    this.lastConfigCommitted = cfg.committed;
    this.noteLostDisk();
    const listed = (c: Configuration): boolean => c.voters.includes(this.id) || c.observers.includes(this.id);
    const wasListedInLog = this.listedInLog;
    this.listedInLog = cfg.index > 0 && listed(cfg.config);
    if (listed(cfg.config)) {
      this.isRemoved = false;
    } else if (cfg.committed && cfg.index > 0 && !this.isRemoved) {
      // It was a member: a bootstrap voter, or listed by the configuration before this one (as seen here, or in the log).
      // (A node that joins lists itself in its bootstrap configuration, but replays older configurations without it.)
      const before = cfg.index - 1 >= this.core.log.snapshot.index ? this.core.log.configurationAt(cfg.index - 1) : null;
      if (this.opts.raft.voters.includes(this.id) || wasListedInLog || (before !== null && before.index > 0 && listed(before.config))) {
        this.isRemoved = true;
        this.log.warn({ configurationIndex: cfg.index, configuration: cfg.config },
          'this node has been removed from the cluster (its committed configuration no longer lists it): it serves no clients any more');
      }
    }
    for (const l of [...this.configListeners]) {
      try {
        l();
      } catch (e) {
        this.log.error({ err: e }, 'a configuration listener failed');
      }
    }
  }

  private noteLeadership(): void {
    const role = this.core.role.kind;
    const leader = this.core.leaderId();
    if (role === this.lastRole && leader === this.lastLeader && this.core.term === this.lastTerm) return;
    if (leader !== this.lastLeader || role !== this.lastRole) {
      this.log.info({ role, term: this.core.term, leader }, role === 'leader' ? 'became leader' : 'role or leader changed');
    }
    this.lastRole = role;
    this.lastLeader = leader;
    this.lastTerm = this.core.term;
    pushRing(this.leadershipEvents, { at: Date.now(), term: this.core.term, leader, role }, 64);
    for (const l of [...this.leadershipListeners]) {
      try {
        l();
      } catch (e) {
        this.log.error({ err: e }, 'a leadership listener failed');
      }
    }
  }

  private failAll(err: Error): void {
    for (const q of this.queue) q.reject(err);
    this.queue = [];
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

  private fatal(e: unknown): void {
    this.log.fatal({ err: e }, 'stopping: the node cannot go on safely (storage failure or a broken invariant)');
    this.stopped = true;
    this.loop.stop();
    if (this.timer !== null) clearTimeout(this.timer);
    this.failAll(new NodeStoppedError({ cause: e }));
    void this.transport.close();
    this.opts.onFatal?.(e);
  }
}

/** Keeps a sample buffer bounded (collected and emptied by the metrics exporter). */
function pushBounded(xs: number[], x: number, max = 10_000): void {
  if (xs.length < max) xs.push(x);
}

/** Keeps the last `max` items: the oldest is dropped when full. */
function pushRing<T>(xs: T[], x: T, max: number): void {
  if (xs.length >= max) xs.shift();
  xs.push(x);
}
