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
// This file is the event loop: recovery, start and stop, tick replay and the
// timer, dispatch of peer frames by channel (src/node/channels.ts), the
// round, the Ready driver's host, apply, and the public face. Its parts,
// each driven from here:
//   - src/node/requests.ts: pending client requests, batching, the bounds
//     and deadlines (nothing waits on a timer: a request wakes a round);
//   - src/node/forwarding.ts: followers forward writes and linearizable
//     reads to the leader and answer from their own applied state; the
//     leader's side of it;
//   - src/node/membership-watch.ts: the configuration in force, removal,
//     lost disks, auto-promotion of observers (docs/MEMBERSHIP.md);
//   - src/node/leadership-watch.ts: role, leader and term changes;
//   - src/node/snapshot-policy.ts: when to snapshot and compact;
//   - src/node/runtime-metrics.ts: counters for /metrics and /status.
// A round: replay ticks, propose (or forward) queued commands and reads,
// auto-promote, run the Ready driver, then note configuration, snapshot and
// leadership changes, in that order.

import type { Logger } from 'pino';
import { BackpressureError, LeaderTransferInProgressError, NotLeaderError } from '../core/errors.js';
import { RaftNode } from '../core/node.js';
import type { RaftConfigInput } from '../core/config.js';
import type { DirIdConflict } from '../core/ready.js';
import type { RoleKind } from '../core/roles.js';
import type { ConfigChange, Configuration, Entry, SnapshotMeta } from '../protocol/entry.js';
import type { LogIndex, NodeId, Term } from '../protocol/ids.js';
import type { Message } from '../protocol/messages.js';
import type { PeerFrame, Transport } from '../transport/types.js';
import { applyEntry } from './apply.js';
import { encodeBatch } from './batch.js';
import { CHANNEL_MAX, FORWARD_CHANNEL, isServiceChannel, RUNTIME_CHANNEL_MAX } from './channels.js';
import { NodeStoppedError } from './errors.js';
import { Forwarder } from './forwarding.js';
import { LeadershipWatch, type LeadershipEvent } from './leadership-watch.js';
import { MembershipWatch } from './membership-watch.js';
import type { NodeStorage } from './node-storage.js';
import { ReadyLoop } from './ready-loop.js';
import { PendingRequests, requestIdBase } from './requests.js';
import { newRuntimeMetrics, pushBounded, pushRing, type RuntimeMetrics } from './runtime-metrics.js';
import { SnapshotPolicy } from './snapshot-policy.js';

export type { RuntimeMetrics } from './runtime-metrics.js';

/** The replicated state machine the log feeds. Must be deterministic. */
export interface StateMachine {
  /** Applies one committed command (a view into the entry's bytes: copy what you keep); the result goes back to whoever proposed it. */
  apply(command: Uint8Array, index: LogIndex): unknown;
  /**
   * Optional: applies the command held in data[start, end) exactly as
   * apply(data.subarray(start, end), index) would, without that view (the
   * commit path calls it for every command of an entry). Like apply, it must
   * copy whatever of those bytes it keeps.
   */
  applyAt?(data: Uint8Array, start: number, end: number, index: LogIndex): unknown;
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
  /**
   * How long a write waits for a term that has no leader here any more
   * before it fails with LeaderChangedError('unknown') (src/node/requests.ts).
   * Default: two of the longest election timeouts.
   */
  readonly orphanGraceMs?: number;
}

/** One node: a RaftNode driven in real time over real storage and transport. */
export class NodeRuntime {
  readonly id: NodeId;
  readonly core: RaftNode;
  readonly metrics: RuntimeMetrics = newRuntimeMetrics();
  /** The last (up to 64) changes of this node's role, leader or term, oldest first (wall-clock ms), for /status and the dashboard. */
  readonly leadershipEvents: LeadershipEvent[];
  private readonly opts: Required<Omit<RuntimeOptions, 'onFatal' | 'orphanGraceMs'>> & Pick<RuntimeOptions, 'onFatal' | 'orphanGraceMs'>;
  private readonly log: Logger;
  private readonly sm: StateMachine;
  private readonly storage: NodeStorage;
  private readonly transport: Transport;
  private readonly loop: ReadyLoop;
  private readonly requests: PendingRequests;
  private readonly forwarding: Forwarder;
  private readonly membership: MembershipWatch;
  private readonly leadership: LeadershipWatch;
  private readonly snapshots: SnapshotPolicy;
  /** Entries were written since the last sync began (for the fsync latency metrics). */
  private entriesUnsynced = false;
  /** Service channels (onChannel). */
  private readonly channels = new Map<number, (from: NodeId, payload: Uint8Array) => void>();
  /** performance.now() of the last frame from each peer (lastHeardFrom). */
  private readonly heardAt = new Map<NodeId, number>();
  private applied: LogIndex;
  private scheduled = false;
  /** Ticks replayed since start. */
  private ticks = 0;
  /** performance.now() of the last tick replayed into the core. */
  private lastTickAt = 0;
  private lastExpireTick = 0;
  private readonly ticksPerSecond: number;
  private readonly ticksPerExpiry: number;
  private timer: NodeJS.Timeout | null = null;
  /** When the armed timer fires (performance.now() scale), or Infinity. */
  private timerAt = Infinity;
  private stopped = false;

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
    this.core = new RaftNode({ ...opts.raft, snapshotReader: this.storage.coreSnapshotReader }, persisted);
    this.id = this.core.id;
    const now = (): number => performance.now();
    this.requests = new PendingRequests({
      now, metrics: this.metrics, requestTimeoutMs: this.opts.requestTimeoutMs, maxPendingRequests: this.opts.maxPendingRequests,
      maxPendingBytes: this.opts.maxPendingBytes, maxEntryBytes: this.opts.maxEntryBytes, wake: () => this.schedule(),
      isCommitted: (index, term) => index <= this.core.log.commit && this.core.log.term(index) === term,
      // Two of the longest election timeouts: a term settles within one election after its leader is lost, unless
      // this node is cut off from the majority.
      orphanGraceMs: this.opts.orphanGraceMs ?? 2 * this.core.config.electionTimeoutMaxTicks * this.opts.tickMs,
      // Not 1: a leader's late answer to the previous process of this node must not match a request of this one.
      firstId: requestIdBase(Date.now()),
    });
    this.forwarding = new Forwarder({
      core: this.core, transport: this.transport, log: this.log, metrics: this.metrics, requests: this.requests,
      tickMs: this.opts.tickMs, now, applied: () => this.applied,
    });
    this.membership = new MembershipWatch({ core: this.core, log: this.log, bootstrapVoters: this.opts.raft.voters });
    this.leadership = new LeadershipWatch(this.core, this.log);
    this.leadershipEvents = this.leadership.events;
    this.snapshots = new SnapshotPolicy({
      core: this.core, storage: this.storage, stateMachine: this.sm, log: this.log, metrics: this.metrics,
      everyEntries: this.opts.snapshotEveryEntries, everyBytes: this.opts.snapshotEveryBytes, snapshotIndex: this.applied, now,
    });
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
      readState: (rs) => {
        if (!this.forwarding.readConfirmed(rs.ctx, rs.index)) this.requests.readConfirmed(rs.ctx, rs.index);
      },
      readAborted: (ctx) => {
        // Leadership was lost before the read was confirmed: a local one is asked again of whoever leads next.
        if (!this.forwarding.readAborted(ctx)) this.requests.readAborted(ctx);
      },
      restoreSnapshot: (meta) => this.restoreSnapshot(meta),
      afterCoreCall: () => this.requests.resolveReads(this.applied),
      onPersisted: () => {
        // A round only if the acknowledgement gave the core something to do (a commit, a message).
        if (this.core.hasReady()) this.schedule();
      },
      onFatal: (e) => this.fatal(e),
    });
    this.log.info({ term: persisted.hardState.term, commit: persisted.hardState.commit, snapshot: persisted.snapshot,
      lastIndex: this.core.log.lastIndex() }, 'recovered from disk');
  }

  /** Starts ticking and listening. */
  async start(): Promise<void> {
    this.transport.onFrame((from, frame) => this.onFrame(from, frame));
    this.transport.onConnectionChange((peer, up) => this.onConnectionChange(peer, up));
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
    this.requests.failAll(new NodeStoppedError());
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
    return this.requests.submit(command);
  }

  /** Resolves once the state machine reflects every write committed before the call (ReadIndex). */
  readBarrier(): Promise<void> {
    if (this.stopped) return Promise.reject(new NodeStoppedError());
    return this.requests.readBarrier();
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
    return this.leadership.onChange(listener);
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
    const p = this.requests.awaitConfigEntry(index, this.core.term);
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
    return this.membership.onChange(listener);
  }

  /**
   * Names the observers that the leader promotes as soon as they have caught
   * up (the members registry's promoteWhenCaughtUp): while this node leads
   * and no change is pending, it tries once per tick; NotCaughtUpError and
   * the other "not now" refusals just wait for the next tick.
   */
  setAutoPromote(pred: (node: NodeId) => boolean): void {
    this.membership.setAutoPromote(pred);
    this.schedule();
  }

  /**
   * True once this node's committed configuration no longer lists it, after
   * it was a member (a voter of the bootstrap configuration, or listed by
   * the configuration just before the one in force). Such a node no longer
   * campaigns (the core) and should serve no clients.
   */
  get removed(): boolean {
    return this.membership.removed;
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
    this.membership.confirmRemoved(index, by);
  }

  /** The lost-disk conflict in force here (docs/LOST-DISKS.md), or null. */
  get lostDisk(): DirIdConflict | null {
    return this.membership.lostDisk;
  }

  /** Hands leadership to `target` (leader only). */
  transferLeadership(target: NodeId): void {
    this.catchUpTicks();
    this.core.transferLeadership(target);
    this.schedule();
  }

  // ---- the event loop side -------------------------------------------------

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
    if (this.core.hasReady() || this.requests.hasQueued()) this.schedule();
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
      const leader = this.core.leaderId();
      this.requests.expire({ term: this.core.term, leader, reachable: this.reachable(leader) });
    }
  }

  /**
   * True when `leader` is known and takes frames now: this node, or a peer
   * whose connection is up. Client requests are forwarded only to such a
   * leader; otherwise they wait (bounded by their deadlines), so that a
   * request that reaches a follower of a dead leader is not sent into a
   * queue that nobody will read.
   */
  private reachable(leader: NodeId | null): boolean {
    return leader !== null && (leader === this.id || this.transport.isConnected(leader));
  }

  /**
   * A peer's connection came up or went down. Reads forwarded to a peer
   * whose connection went down are asked again (no answer may come); when
   * the leader becomes reachable, the requests held for it go now.
   */
  private onConnectionChange(peer: NodeId, up: boolean): void {
    if (this.stopped) return;
    if (!up) this.requests.reaskReads(this.core.leaderId(), peer);
    if (this.requests.hasQueued()) this.schedule();
  }

  /** Arms the timer for the next tick that matters, unless it already fires by then. */
  private armTimer(): void {
    if (this.stopped) return;
    const ticks = this.requests.hasOutstanding() ? 1 : Math.min(this.core.ticksUntilDue(), this.ticksPerSecond);
    const at = this.lastTickAt + ticks * this.opts.tickMs;
    if (this.timer !== null && this.timerAt <= at) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => this.onTimer(), Math.max(0, at - performance.now()));
  }

  /** A frame from a peer: Raft messages to the core, forwarding frames to forwarding, the rest to their service's handler. */
  private onFrame(from: NodeId, frame: PeerFrame): void {
    if (this.stopped) return;
    this.catchUpTicks();
    if (this.stopped) return;
    this.heardAt.set(from, performance.now());
    if (frame.kind === 'raft') {
      this.stepMessage(from, frame.message);
      // A round only if the message gave the core something to do (most acknowledgements that
      // do not yet make a quorum give it nothing), or client work waits for one.
      if (this.core.hasReady() || this.requests.hasQueued()) this.schedule();
      return;
    } else if (frame.channel === FORWARD_CHANNEL) {
      this.forwarding.onFrame(from, frame.payload);
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
      this.requests.reaskReads(this.core.leaderId()); // reads asked of a leader that is no longer ours
      this.flushProposals();
      this.flushReads();
      this.membership.maybeAutoPromote(this.ticks);
      this.loop.run(16);
      this.membership.note(); // before a snapshot may compact away the configuration before the one in force
      this.snapshots.maybeSnapshot(this.applied);
      this.leadership.note();
      if (this.core.hasReady()) this.schedule();
      this.armTimer();
    } catch (e) {
      this.fatal(e);
    }
  }

  /**
   * Proposes the queued commands, packed into batches, as entries (leader)
   * or forwards them (follower). With no leader known, or a leader whose
   * connection is down, they wait for an election or the connection
   * (bounded by their deadlines); when the core pushes back they go back to
   * the queue, to be retried after the next commit.
   */
  private flushProposals(): void {
    if (!this.requests.hasQueuedCommands()) return;
    const leader = this.core.leaderId();
    if (leader === null || !this.reachable(leader)) return;
    const batches = this.requests.packQueue();
    if (leader !== this.id) {
      this.forwarding.forwardWrites(leader, this.core.term, batches);
      return;
    }
    for (const [i, b] of batches.entries()) {
      try {
        const index = this.core.propose([encodeBatch(b.map((q) => q.command))]);
        this.requests.inEntry(index, this.core.term, b);
        this.metrics.proposalsTotal += b.length;
        this.metrics.entriesProposedTotal++;
        pushBounded(this.metrics.batchSizes, b.length);
      } catch (e) {
        if (e instanceof BackpressureError || e instanceof LeaderTransferInProgressError) {
          this.requests.requeue(batches.slice(i)); // retried after the next commit, bounded by deadlines
          return;
        }
        throw e;
      }
    }
  }

  /** Asks for one ReadIndex covering every queued read barrier: of the core (leader) or of the leader (follower). */
  private flushReads(): void {
    if (!this.requests.hasQueuedReads()) return;
    const leader = this.core.leaderId();
    if (leader === null || !this.reachable(leader)) return;
    const waiters = this.requests.takeReads();
    const id = this.requests.newId();
    if (leader !== this.id) {
      this.forwarding.forwardRead(leader, id, waiters);
      return;
    }
    try {
      this.core.readIndex(id);
    } catch (e) {
      if (e instanceof NotLeaderError) {
        this.requests.requeueReads(waiters);
        return;
      }
      throw e;
    }
    this.requests.readAsked(id, waiters, null);
  }

  private sendRaft(m: Message): void {
    this.transport.send(m.to, { kind: 'raft', message: m });
  }

  private restoreSnapshot(meta: SnapshotMeta): void {
    this.sm.restore(this.storage.readSnapshot(meta));
    this.metrics.snapshotsInstalled++;
    this.log.info({ index: meta.index, term: meta.term }, 'installed a snapshot from the leader');
    this.applied = meta.index;
    this.snapshots.snapshotInstalled(meta.index);
    this.requests.snapshotInstalled(meta.index, meta.term);
  }

  private apply(entries: readonly Entry[]): void {
    for (const e of entries) {
      if (e.index <= this.applied) continue;
      // 'noop' and 'config' entries have no commands (no results); a config entry ends a membership change.
      const results = applyEntry(this.sm, e, this.onMalformedBatch);
      this.applied = e.index;
      this.snapshots.entryApplied(e.data.byteLength);
      this.requests.entryApplied(e, results);
    }
  }

  /** A committed entry's batch did not parse: skipped alike on every replica (see applyEntry). */
  private readonly onMalformedBatch = (err: Error, index: LogIndex): void => {
    this.log.error({ index, err }, 'skipped a committed entry whose batch does not parse');
  };

  private fatal(e: unknown): void {
    this.log.fatal({ err: e }, 'stopping: the node cannot go on safely (storage failure or a broken invariant)');
    this.stopped = true;
    this.loop.stop();
    if (this.timer !== null) clearTimeout(this.timer);
    this.requests.failAll(new NodeStoppedError({ cause: e }));
    void this.transport.close();
    this.opts.onFatal?.(e);
  }
}
