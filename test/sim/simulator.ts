// The deterministic simulator: the real core on a virtual clock, a faulty
// network (delay, drop, duplicate, reorder, symmetric and one-way
// partitions), faulty clocks (skewed tick rates) and crashes that lose what
// was not yet durable (including crashes in the middle of persisting). One
// seed fixes the whole run. The checker (invariants.ts) runs after every event.
// Each node runs the production Ready driver (src/node/ready-loop.ts) with
// persistence pipelined: a sync ends a random while after it began, and the
// node meanwhile writes later Readies; crashes land between and inside them.
// Membership changes (docs/MEMBERSHIP.md) come from the workload: the leader
// is asked, at random times, to add, promote, demote or remove one member;
// spare nodes outside the bootstrap configuration are there to be added.
// Lost disks (docs/LOST-DISKS.md): a crashed node may restart on an empty
// disk with a fresh directory id (SimOptions.wipeRate); the workload notices
// the stale node (softState.dirIdConflict) and re-adds it: remove, add as an
// observer, promote once caught up.

import {
  BackpressureError, NotLeaderError, ConfigChangeInProgressError, InvalidConfigChangeError, LeaderNotReadyError, LeaderTransferInProgressError, NotCaughtUpError,
} from '../../src/core/errors.js';
import { RaftNode } from '../../src/core/node.js';
import { recordedDirId, type ConfigChange, type Configuration, type Entry } from '../../src/protocol/entry.js';
import { nodeId, type NodeId } from '../../src/protocol/ids.js';
import type { Message } from '../../src/protocol/messages.js';
import { AssertionError } from '../../src/util/assert.js';
import { Prng } from '../../src/util/prng.js';
import { SimDisk, type NodeDisk } from './disk.js';
import { DurableSimDisk } from './durable-disk.js';
import { FsyncFailedError, StorageCorruptionError } from '../../src/storage/errors.js';
import { EventHeap } from './heap.js';
import { Checker, Violation } from './invariants.js';
import type { SimOptions } from './options.js';
import { DigestStateMachine } from './state-machine.js';
import { ReadyLoop } from '../../src/node/ready-loop.js';
import type { SimApp, SimWorkload } from './workload.js';

type SimEvent =
  | { kind: 'tick'; node: NodeId; incarnation: number }
  | { kind: 'deliver'; msg: Message }
  | { kind: 'crash' }
  | { kind: 'restart'; node: NodeId }
  | { kind: 'partition' }
  | { kind: 'heal' }
  | { kind: 'propose' }
  | { kind: 'read' }
  | { kind: 'compact' }
  | { kind: 'transfer' }
  | { kind: 'membership' }
  | { kind: 'repair' }
  | { kind: 'faultsEnd' }
  | { kind: 'livenessProbe' }
  | { kind: 'synced'; node: NodeId; incarnation: number; done: (err: unknown) => void };

type EventBody = SimEvent;

/** One simulated machine: its disk survives crashes, the rest does not. */
export interface SimNode {
  readonly id: NodeId;
  /** Replaced by an empty one when the node is wiped. */
  disk: NodeDisk;
  /** The id of the data directory on `disk` (RaftConfig.directoryId); a wipe draws a new one. */
  dirId: number;
  readonly random: Prng;
  readonly tickPeriodMs: number;
  core: RaftNode | null;
  /** The Ready driver of the running core (a restart makes a new one). */
  loop: ReadyLoop | null;
  sm: DigestStateMachine;
  /** The workload's state machine (SimOptions.workload), or null. */
  app: SimApp | null;
  incarnation: number;
  /** The next persist of this node crashes part-way. */
  crashDuringPersist: boolean;
  /** Reads waiting for their ReadState: ctx -> the commit index known cluster-wide when asked. */
  readonly reads: Map<number, number>;
  /**
   * Ticks the core last promised would do nothing (ticksUntilDue() - 1, taken
   * after the last input other than a tick, or after the tick that was due):
   * what a runtime that sleeps between due ticks relies on.
   */
  quietTicks: number;
}

/** How a run ended. */
export interface SimResult {
  readonly seed: number;
  readonly options: SimOptions;
  readonly violation: Violation | null;
  readonly events: number;
  readonly virtualMs: number;
  readonly committed: number;
  readonly elections: number;
}

/** Hooks for tests and reports that watch a run. */
export interface SimObserver {
  onEvent?(sim: Simulator, time: number): void;
}

export class Simulator {
  readonly opts: SimOptions;
  readonly rng: Prng;
  readonly nodes = new Map<NodeId, SimNode>();
  readonly voterIds: NodeId[] = [];
  readonly observerIds: NodeId[] = [];
  /** Nodes outside the bootstrap configuration. */
  readonly spareIds: NodeId[] = [];
  readonly checker: Checker;
  /** Membership changes the leaders accepted, and those they refused (by error name). */
  readonly membershipStats = { accepted: 0, refused: new Map<string, number>() };
  /** Lost disks: nodes wiped, re-added (their new directory recorded), and stale nodes seen reporting the conflict. */
  readonly wipeStats = { wiped: 0, readded: 0, conflictsReported: 0 };
  /** The node wiped and not yet re-added (at most one at a time), and whether it was a voter. */
  private wiped: { id: NodeId; wasVoter: boolean; conflictSeen: boolean; rewiped: boolean } | null = null;
  private dirIdRng: Prng | null = null;
  /** The repair's own draws (whether the operator resets a removed node's directory), so that the run's other draws stay as they were. */
  private repairRng: Prng | null = null;
  /** The last message each node sent to each other ("from>to"), for the late copy a reset node's network may still deliver. */
  private readonly lastSent = new Map<string, Message>();
  now = 0;
  events = 0;
  private seq = 0;
  private readonly heap = new EventHeap<SimEvent>();
  /** Directed links that drop everything: "a>b". */
  private readonly blocked = new Set<string>();
  private faultsActive = true;
  private readCtx = 0;
  private proposalSeq = 0;
  private livenessMarker: string | null = null;
  private readonly workload: SimWorkload | null;
  private livenessStart = 0;
  /** Set when the healed cluster has committed the marker. */
  livenessMet = false;
  /** With SimOptions.settleMs: the run goes on (healed, without new proposals) until this virtual time. */
  private settleUntil = -Infinity;

  constructor(opts: SimOptions) {
    this.opts = opts;
    this.rng = new Prng(opts.seed);
    for (let i = 1; i <= opts.voters; i++) this.voterIds.push(nodeId(`n${i}`));
    for (let i = 1; i <= opts.observers; i++) this.observerIds.push(nodeId(`o${i}`));
    for (let i = 1; i <= opts.spares; i++) this.spareIds.push(nodeId(`s${i}`));
    this.checker = new Checker(this);
    this.workload = opts.workload?.() ?? null;
    for (const id of [...this.voterIds, ...this.observerIds, ...this.spareIds]) {
      const skew = (this.rng.float() * 2 - 1) * opts.clockSkew;
      const node: SimNode = {
        id,
        disk: this.newDisk(),
        dirId: this.newDirId(),
        random: this.rng.fork(),
        tickPeriodMs: opts.tickMs * (1 + skew), core: null, loop: null, sm: new DigestStateMachine(), app: null, incarnation: 0,
        crashDuringPersist: false, reads: new Map(), quietTicks: 0,
      };
      this.nodes.set(id, node);
      this.start(node);
    }
    this.schedule(opts.faultPhaseMs, { kind: 'faultsEnd' });
    this.scheduleNext('propose', opts.proposeEveryMs);
    this.scheduleNext('read', opts.readEveryMs);
    this.scheduleNext('compact', opts.compactEveryMs);
    this.scheduleNext('transfer', opts.transferEveryMs);
    this.scheduleNext('crash', opts.crashEveryMs);
    this.scheduleNext('partition', opts.partitionEveryMs);
    this.scheduleNext('membership', opts.membershipEveryMs);
    if (opts.wipeRate > 0) this.schedule(REPAIR_EVERY_MS, { kind: 'repair' });
  }

  private newDisk(rng: Prng = this.rng): NodeDisk {
    const o = this.opts;
    return o.durableDisk
      ? new DurableSimDisk(rng.fork(), {
        segmentBytes: o.segmentBytes, syncFailureProbability: o.diskSyncFailureRate, killRate: 0.5, now: () => this.now,
      })
      : new SimDisk(rng.fork());
  }

  /** A fresh directory id in [2^16, 2^47), from a stream of its own (so that the run's other draws stay as they were). */
  private newDirId(): number {
    this.dirIdRng ??= new Prng(this.opts.seed ^ 0x0d1d);
    return this.dirIdRng.int(1, 2 ** 31) * 2 ** 16 + this.dirIdRng.int(0, 2 ** 16);
  }

  /** Runs until the liveness check passes or fails, or a violation is found. */
  run(): SimResult {
    const endMs = this.opts.faultPhaseMs + this.opts.livenessBoundTicks * this.opts.tickMs * 1.5 + 1000;
    let violation: Violation | null = null;
    try {
      while (this.heap.size > 0 && (!this.livenessMet || this.heap.peekTime() as number <= this.settleUntil)) {
        this.now = this.heap.peekTime() as number;
        const ev = this.heap.pop() as SimEvent;
        if (this.now > endMs) break;
        this.events++;
        this.handle(ev);
      }
      if (!this.livenessMet) {
        throw new Violation('liveness', `no leader committed a proposal made after healing within ${this.opts.livenessBoundTicks} ticks`);
      }
    } catch (err) {
      if (err instanceof Violation) violation = err;
      else if (err instanceof AssertionError) violation = new Violation('coreAssertion', err.message, { cause: err });
      else if (err instanceof StorageCorruptionError) violation = new Violation('storage', err.message, { cause: err });
      else if (err instanceof Error) violation = new Violation('unexpected', `${err.name}: ${err.message}`, { cause: err });
      else throw err;
    }
    let committed = 0;
    let elections = 0;
    for (const n of this.nodes.values()) {
      committed = Math.max(committed, n.core?.log.commit ?? 0);
      elections += n.core?.stats.electionsStarted ?? 0;
    }
    return { seed: this.opts.seed, options: this.opts, violation, events: this.events, virtualMs: this.now, committed, elections };
  }

  // ---- node lifecycle ------------------------------------------------------------

  private start(node: SimNode): void {
    node.incarnation++;
    const o = this.opts;
    let persisted;
    try {
      persisted = node.disk.load();
    } catch (e) {
      if (!(e instanceof FsyncFailedError)) throw e;
      this.crash(node); // recovery could not make its findings durable: stop, reboot, retry
      return;
    }
    node.core = new RaftNode({
      id: node.id, voters: this.voterIds, observers: this.observerIds, replication: o.mode, random: node.random, directoryId: node.dirId,
      electionTimeoutMinTicks: o.electionTimeoutMinTicks, electionTimeoutMaxTicks: o.electionTimeoutMaxTicks,
      heartbeatIntervalTicks: o.heartbeatIntervalTicks, fetchMaxWaitTicks: o.fetchMaxWaitTicks,
      maxMessageBytes: o.maxMessageBytes, maxInflightMessages: o.maxInflightMessages, maxUncommittedBytes: o.maxUncommittedBytes,
      snapshotChunkBytes: o.snapshotChunkBytes, preVote: o.preVote, checkQuorum: o.checkQuorum, maxInflightReadies: o.maxInflightReadies,
      snapshotReader: (meta, position, maxBytes) => node.disk.readSnapshotChunk(meta, position, maxBytes),
      ...(o.plantedBug === undefined ? {} : { plantedBug: o.plantedBug }),
    }, persisted);
    node.sm = node.disk.snapshot === null ? new DigestStateMachine() : DigestStateMachine.restore(node.disk.snapshot.data);
    node.app = this.workload?.create(node.id, this.appBytes(node.disk.snapshot?.data ?? null)) ?? null;
    node.loop = this.newLoop(node, node.core);
    node.reads.clear();
    node.quietTicks = 0;
    this.checker.onStart(node);
    this.schedule(node.tickPeriodMs, { kind: 'tick', node: node.id, incarnation: node.incarnation });
  }

  private crash(node: SimNode): void {
    node.loop?.stop();
    node.loop = null;
    node.core = null;
    node.crashDuringPersist = false;
    node.disk.crash();
    this.schedule(1 + this.rng.int(0, this.opts.restartMaxMs), { kind: 'restart', node: node.id });
  }

  // ---- events ----------------------------------------------------------------------

  private handle(ev: SimEvent): void {
    switch (ev.kind) {
      case 'tick': {
        const node = this.nodes.get(ev.node) as SimNode;
        if (node.core === null || node.incarnation !== ev.incarnation) return;
        try {
          node.disk.tick?.();
        } catch (e) {
          if (!(e instanceof FsyncFailedError)) throw e;
          this.crash(node); // its restart schedules the next incarnation's ticks
          break;
        }
        const promised = node.quietTicks;
        const before = promised > 0 ? tickSignature(node.core) : '';
        node.core.tick();
        if (promised > 0 && tickSignature(node.core) !== before) {
          throw new Violation('ticksUntilDue', `${node.id}: a tick promised quiet acted (${before} -> ${tickSignature(node.core)})`);
        }
        this.drain(node);
        if (promised > 0) node.quietTicks = promised - 1; // the promise stands until its due tick
        const jitter = this.opts.clockSkew > 0 ? this.rng.float() * this.opts.clockSkew * this.opts.tickMs : 0;
        this.schedule(node.tickPeriodMs + jitter, { kind: 'tick', node: node.id, incarnation: node.incarnation });
        break;
      }
      case 'deliver': {
        const node = this.nodes.get(ev.msg.to);
        if (node?.core == null) return;
        // (A wiped machine's packets from before the wipe may still arrive:
        // the lost directory really did hold what they acknowledge.)
        this.checker.onReceive(node, ev.msg);
        node.core.step(ev.msg);
        this.drain(node);
        break;
      }
      case 'crash': {
        if (!this.faultsActive) return;
        const alive = [...this.nodes.values()].filter((n) => n.core !== null);
        if (alive.length > 0) {
          // Leaders are the interesting victims (Figure 8 needs them to fall mid-replication).
          const leader = this.leader();
          const victim = leader !== null && this.rng.chance(0.5) ? this.nodes.get(leader) as SimNode : this.rng.pick(alive);
          if (this.rng.chance(this.opts.crashMidPersistRate)) victim.crashDuringPersist = true;
          else this.crash(victim);
        }
        this.scheduleNext('crash', this.opts.crashEveryMs);
        break;
      }
      case 'restart': {
        const node = this.nodes.get(ev.node) as SimNode;
        if (node.core !== null) break;
        if (this.faultsActive && this.opts.wipeRate > 0 && this.rng.chance(this.opts.wipeRate) && this.mayWipe(node)) this.wipe(node);
        this.start(node);
        break;
      }
      case 'repair':
        this.repair();
        this.schedule(REPAIR_EVERY_MS, { kind: 'repair' });
        break;
      case 'partition': {
        if (!this.faultsActive) return;
        this.partition();
        this.schedule(1 + this.rng.int(0, this.opts.partitionMaxMs), { kind: 'heal' });
        this.scheduleNext('partition', this.opts.partitionEveryMs);
        break;
      }
      case 'heal':
        this.blocked.clear();
        break;
      case 'propose':
        if (!this.faultsActive) return; // after healing, only the liveness marker is proposed
        ++this.proposalSeq;
        this.propose(this.workload === null ? `p${this.proposalSeq}`
          : this.workload.nextProposal(this.rng, this.nodes.get(this.leader() ?? ('' as NodeId))?.app ?? null));
        this.scheduleNext('propose', this.opts.proposeEveryMs);
        break;
      case 'read':
        this.read();
        this.scheduleNext('read', this.opts.readEveryMs);
        break;
      case 'compact':
        this.compact();
        this.scheduleNext('compact', this.opts.compactEveryMs);
        break;
      case 'transfer': {
        if (!this.faultsActive) return;
        const leader = this.leader();
        const node = leader === null ? undefined : this.nodes.get(leader);
        const target = node?.core == null ? undefined : this.rng.pick(node.core.membership.config.voters);
        if (node?.core != null && target !== undefined && target !== leader) {
          node.core.transferLeadership(target);
          this.drain(node);
        }
        this.scheduleNext('transfer', this.opts.transferEveryMs);
        break;
      }
      case 'membership':
        if (!this.faultsActive) return;
        this.changeMembership();
        this.scheduleNext('membership', this.opts.membershipEveryMs);
        break;
      case 'faultsEnd':
        this.faultsActive = false;
        this.blocked.clear();
        for (const n of this.nodes.values()) {
          n.crashDuringPersist = false;
          if (n.core === null) this.start(n);
        }
        this.livenessStart = this.now;
        this.livenessMarker = `liveness-${this.opts.seed}`;
        this.schedule(0, { kind: 'livenessProbe' });
        break;
      case 'synced': {
        const node = this.nodes.get(ev.node) as SimNode;
        if (node.core === null || node.incarnation !== ev.incarnation) return;
        ev.done(null);
        this.drain(node);
        break;
      }
      case 'livenessProbe': {
        if (this.livenessMarker === null || this.livenessMet) return;
        if (this.now - this.livenessStart > this.opts.livenessBoundTicks * this.opts.tickMs) {
          throw new Violation('liveness', `after healing at ${this.livenessStart} ms, nothing committed by ${this.now} ms (bound ${this.opts.livenessBoundTicks} ticks)`);
        }
        this.propose(this.livenessMarker);
        this.schedule(this.opts.tickMs * 5, { kind: 'livenessProbe' });
        break;
      }
      default: {
        const never: never = ev;
        throw new Error(`unknown event ${JSON.stringify(never)}`);
      }
    }
    this.checker.afterEvent();
  }

  /**
   * The node's Ready driver, over its disk: write now (a crash may land part-way),
   * sync now but acknowledge a random while later (the node goes on meanwhile).
   */
  private newLoop(node: SimNode, core: RaftNode): ReadyLoop {
    const incarnation = node.incarnation;
    return new ReadyLoop(core, {
      onReady: (r) => {
        this.checker.onReady(node, r);
        if (r.softState.dirIdConflict !== null && this.wiped?.id === node.id && !this.wiped.conflictSeen) {
          this.wiped.conflictSeen = true;
          this.wipeStats.conflictsReported++;
        }
      },
      send: (m) => {
        this.checker.onSend(node, m);
        this.send(m);
      },
      flushSends: () => undefined,
      write: (r) => {
        const steps = r.snapshotChunks.length + (r.snapshot ? 1 : 0) + r.entries.length + (r.hardState ? 1 : 0);
        try {
          if (node.crashDuringPersist) {
            node.disk.write(r, this.rng.int(0, steps + 1));
            this.crash(node);
            return;
          }
          node.disk.write(r, Infinity);
        } catch (e) {
          // An fsync failed (a snapshot install syncs at once): the node stops (never retry as if the data were safe).
          if (!(e instanceof FsyncFailedError)) throw e;
          this.crash(node);
        }
      },
      sync: (done) => {
        try {
          node.disk.sync();
        } catch (e) {
          if (!(e instanceof FsyncFailedError)) throw e;
          this.crash(node);
          return;
        }
        this.schedule(this.rng.float() * this.opts.syncDelayMaxMs, { kind: 'synced', node: node.id, incarnation, done });
      },
      apply: (entries) => {
        for (const e of entries) this.apply(node, e);
      },
      readState: (rs) => {
        const knownAtStart = node.reads.get(rs.ctx);
        if (knownAtStart !== undefined) this.checker.onReadState(node, rs.index, knownAtStart);
        node.reads.delete(rs.ctx);
      },
      readAborted: (ctx) => {
        node.reads.delete(ctx);
      },
      restoreSnapshot: (meta) => {
        const snap = node.disk.snapshot as { data: Uint8Array };
        node.sm = DigestStateMachine.restore(snap.data);
        node.app = this.workload?.create(node.id, this.appBytes(snap.data)) ?? null;
        this.checker.onSnapshotRestored(node, meta.index);
      },
      afterCoreCall: () => this.checker.afterAdvance(node),
      onFatal: (e) => {
        throw e;
      },
    });
  }

  /** Runs the node's Ready driver until the core has nothing more (or the node crashed). */
  private drain(node: SimNode): void {
    const loop = node.loop;
    if (loop === null) return;
    if (loop.run(1000) >= 1000 && node.core?.hasReady() === true) {
      throw new Violation('coreAssertion', `${node.id}: ready() never runs dry`);
    }
    if (node.core === null) return;
    // Also when no Ready could be taken (maxInflightReadies reached, or a
    // snapshot install in flight): the input may have moved the commit index,
    // and the checker must see it under the configuration of that moment.
    this.checker.afterAdvance(node);
    node.quietTicks = node.core.ticksUntilDue() - 1;
  }

  private apply(node: SimNode, e: Entry): void {
    if (e.index <= node.sm.applied) return;
    this.checker.onApply(node, e);
    node.sm.apply(e);
    node.app?.apply(e);
    if (this.livenessMarker !== null && !this.livenessMet && e.type === 'data' && decode(e.data) === this.livenessMarker) {
      this.livenessMet = true;
      if ((this.opts.settleMs ?? 0) > 0) this.settleUntil = this.now + (this.opts.settleMs ?? 0);
    }
  }

  private send(m: Message): void {
    if (this.opts.wipeRate > 0) this.lastSent.set(`${m.from}>${m.to}`, m);
    if (this.faultsActive) {
      if (this.blocked.has(`${m.from}>${m.to}`)) return;
      if (this.rng.chance(this.opts.dropRate)) return;
    }
    const copies = this.faultsActive && this.rng.chance(this.opts.duplicateRate) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const delay = this.opts.delayMinMs + this.rng.float() * (this.opts.delayMaxMs - this.opts.delayMinMs);
      this.schedule(delay, { kind: 'deliver', msg: m });
    }
  }

  private partition(): void {
    const ids = [...this.nodes.keys()];
    const kind = this.rng.int(0, 4);
    if (kind === 0) {
      // Symmetric split into two sides.
      const side = new Set(ids.filter(() => this.rng.chance(0.5)));
      for (const a of ids) for (const b of ids) if (side.has(a) !== side.has(b)) this.blocked.add(`${a}>${b}`);
    } else if (kind === 1) {
      // Isolate one node (often the leader).
      const leader = this.leader();
      const victim = leader !== null && this.rng.chance(0.6) ? leader : this.rng.pick(ids);
      for (const b of ids) if (b !== victim) { this.blocked.add(`${victim}>${b}`); this.blocked.add(`${b}>${victim}`); }
    } else if (kind === 2) {
      // One-way: a node can send but not receive, or the reverse.
      const victim = this.leader() ?? this.rng.pick(ids);
      const inbound = this.rng.chance(0.5);
      for (const b of ids) if (b !== victim) this.blocked.add(inbound ? `${b}>${victim}` : `${victim}>${b}`);
    } else {
      // Random one-way links.
      for (const a of ids) for (const b of ids) if (a !== b && this.rng.chance(0.2)) this.blocked.add(`${a}>${b}`);
    }
  }

  /** The id of a node that currently believes it leads (the newest term wins). */
  leader(): NodeId | null {
    let best: RaftNode | null = null;
    for (const n of this.nodes.values()) {
      const c = n.core;
      if (c !== null && c.role.kind === 'leader' && (best === null || c.term > best.term)) best = c;
    }
    return best?.id ?? null;
  }

  /** A client sends one proposal to the node it believes leads (sometimes to a random one). */
  propose(payload: string | Uint8Array): boolean {
    const target = this.clientTarget();
    const core = target?.core;
    if (target === null || core == null || core.role.kind !== 'leader') return false;
    try {
      core.propose([typeof payload === 'string' ? encode(payload) : payload]);
    } catch (e) {
      // Only the refusals a client may get; anything else (a core assertion) is a finding.
      if (!(e instanceof NotLeaderError || e instanceof LeaderTransferInProgressError || e instanceof BackpressureError)) throw e;
      return false;
    }
    this.drain(target);
    return true;
  }

  private read(): void {
    const target = this.clientTarget();
    const core = target?.core;
    if (target === null || core == null || core.role.kind !== 'leader') return;
    const ctx = ++this.readCtx;
    target.reads.set(ctx, this.checker.committedIndex);
    try {
      core.readIndex(ctx);
    } catch (e) {
      if (!(e instanceof NotLeaderError)) throw e;
      target.reads.delete(ctx);
      return;
    }
    this.drain(target);
  }

  private clientTarget(): SimNode | null {
    const leader = this.leader();
    if (leader !== null && this.rng.chance(0.9)) return this.nodes.get(leader) ?? null;
    return this.rng.pick([...this.nodes.values()]);
  }

  private compact(): void {
    const alive = [...this.nodes.values()].filter((n) => n.core !== null);
    if (alive.length === 0) return;
    const node = this.rng.pick(alive);
    const core = node.core as RaftNode;
    const index = Math.min(node.sm.applied, core.log.stable);
    if (index <= core.log.snapshot.index || index !== node.sm.applied) return;
    const meta = core.snapshotMeta(index);
    try {
      const digest = node.sm.snapshot(this.opts.snapshotPadBytes);
      const app = node.app?.snapshot();
      node.disk.installSnapshot({ meta, data: app === undefined ? digest : concat(digest, app) });
    } catch (e) {
      if (!(e instanceof FsyncFailedError)) throw e;
      this.crash(node);
      return;
    }
    core.compact(index);
    this.checker.onCompact(node, index);
  }

  /**
   * Asks the leader for one random membership change that applies to its
   * configuration: add a node outside it as an observer, promote or remove an
   * observer, demote or remove a voter. The leader may refuse (a change in
   * flight, a new leader without a commit in its term, an observer that has
   * not caught up); that is counted, not an error.
   */
  private changeMembership(): void {
    const leader = this.leader();
    const node = leader === null ? undefined : this.nodes.get(leader);
    const core = node?.core;
    if (node === undefined || core == null) return;
    const config = core.membership.config;
    const changes: ConfigChange[] = [];
    for (const id of this.nodes.keys()) {
      if (!config.voters.includes(id) && !config.observers.includes(id)) changes.push({ kind: 'addObserver', node: id });
    }
    for (const id of config.observers) {
      // The wiped node's promotion is the repair's (it must be re-added first).
      if (id !== this.wiped?.id) changes.push({ kind: 'promote', node: id }, { kind: 'promote', node: id });
      changes.push({ kind: 'remove', node: id });
    }
    // While a wiped voter is stale it does not count: removing or demoting
    // another voter then could leave no majority at all (an operator's
    // mistake the core cannot prevent), so the workload does not.
    if (config.voters.length > 1 && this.wiped === null) {
      for (const id of config.voters) changes.push({ kind: 'demote', node: id }, { kind: 'remove', node: id });
    }
    if (changes.length === 0) return;
    const change = this.rng.pick(changes);
    try {
      core.proposeConfigChange(change);
      this.membershipStats.accepted++;
    } catch (e) {
      if (!(e instanceof ConfigChangeInProgressError || e instanceof LeaderNotReadyError || e instanceof NotCaughtUpError ||
        e instanceof InvalidConfigChangeError || e instanceof LeaderTransferInProgressError)) throw e;
      this.membershipStats.refused.set(e.name, (this.membershipStats.refused.get(e.name) ?? 0) + 1);
      return;
    }
    this.drain(node);
  }

  /** The latest configuration the checker has seen committed, and its index (-1 and the bootstrap one when none). */
  private committedConfiguration(): { index: number; config: Configuration } {
    let index = -1;
    let config: Configuration = { voters: this.voterIds, observers: this.observerIds };
    for (const [i, c] of this.checker.committedConfigurations()) {
      if (i > index) {
        index = i;
        config = c;
      }
    }
    return { index, config };
  }

  /**
   * True when wiping `node` stays within what quorumlog promises
   * (docs/LOST-DISKS.md): no other node is wiped and not yet re-added; the
   * node's current directory id is recorded in the latest committed
   * configuration; every other voter of it is up and holds that
   * configuration durably and committed (so that no voter can count the
   * wiped node's new directory as an unrecorded one); no change is in
   * flight on any node that is up (so the voters cannot shrink under it);
   * the other voters are a majority without it (else no leader could ever
   * re-add it); and it is not the only voter of the bootstrap configuration
   * (restarted empty, it would elect itself there).
   */
  private mayWipe(node: SimNode): boolean {
    if (this.wiped !== null) return false;
    // Restarted empty, it starts from the bootstrap configuration: if that
    // makes it a majority alone, it elects itself (the residual).
    if (this.voterIds.length === 1 && this.voterIds[0] === node.id) return false;
    const { index, config } = this.committedConfiguration();
    if (index < 0 || recordedDirId(config, node.id) !== node.dirId) return false;
    const isVoter = config.voters.includes(node.id);
    if (isVoter && config.voters.length - 1 < Math.floor(config.voters.length / 2) + 1) return false;
    for (const id of config.voters) {
      if (id === node.id) continue;
      const core = this.nodes.get(id)?.core;
      if (core == null || core.log.commit < index || core.log.stable < index) return false;
    }
    for (const other of this.nodes.values()) if (other.core != null && other.core.membership.index > index) return false;
    return true;
  }

  /** The machine comes back with an empty disk and a fresh directory id. */
  private wipe(node: SimNode): void {
    const { config } = this.committedConfiguration();
    this.wiped = { id: node.id, wasVoter: config.voters.includes(node.id), conflictSeen: false, rewiped: false };
    this.wipeStats.wiped++;
    this.checker.onWipe(node);
    node.disk = this.newDisk();
    node.dirId = this.newDirId();
  }

  /**
   * Re-adds the wiped node once it has reported its conflict: the leader
   * removes it, adds it back as an observer, and promotes it once it has
   * caught up if it was a voter; its new directory id is then recorded by the
   * leader on its own. Done when a committed configuration records the new
   * id (with the node a voter again if it was one). Runs after the faults
   * too, so that liveness does not depend on the random membership changes.
   */
  private repair(): void {
    const w = this.wiped;
    if (w === null) return;
    const node = this.nodes.get(w.id) as SimNode;
    const done = this.committedConfiguration().config;
    if (recordedDirId(done, w.id) === node.dirId && (!w.wasVoter || done.voters.includes(w.id))) {
      this.wiped = null;
      this.wipeStats.readded++;
      return;
    }
    const leader = this.leader();
    const ln = leader === null ? undefined : this.nodes.get(leader);
    const core = ln?.core;
    if (ln === undefined || core == null || leader === w.id) return;
    const config = core.membership.config;
    const member = config.voters.includes(w.id) || config.observers.includes(w.id);
    const recorded = recordedDirId(config, w.id);
    // The operator acts on the node's report (softState.dirIdConflict) of a record it no longer matches.
    if (member && recorded !== undefined && recorded !== node.dirId && !w.conflictSeen) return;
    let change: ConfigChange | null = null;
    if (member && recorded !== undefined && recorded !== node.dirId) change = { kind: 'remove', node: w.id };
    else if (!member) {
      this.maybeResetRemoved(w, node);
      change = { kind: 'addObserver', node: w.id };
    }
    else if (w.wasVoter && config.observers.includes(w.id)) change = { kind: 'promote', node: w.id };
    if (change === null) return;
    try {
      core.proposeConfigChange(change);
    } catch (e) {
      if (!(e instanceof ConfigChangeInProgressError || e instanceof LeaderNotReadyError || e instanceof NotCaughtUpError ||
        e instanceof InvalidConfigChangeError || e instanceof LeaderTransferInProgressError)) throw e;
      return;
    }
    this.drain(ln);
  }

  /**
   * Half the time, once its removal has committed, the operator resets the
   * removed node's directory before adding it back (as `quorumlog member
   * remove`, wipe, `member add` do): the removed replica's packets still in
   * flight then name a directory that no longer runs, and must not be
   * recorded for the member added back (the rule dirIdRecord).
   */
  private maybeResetRemoved(w: NonNullable<Simulator['wiped']>, node: SimNode): void {
    if (w.rewiped) return;
    const committed = this.committedConfiguration().config;
    if (committed.voters.includes(node.id) || committed.observers.includes(node.id)) return;
    w.rewiped = true;
    this.repairRng ??= new Prng(this.opts.seed ^ 0x5e7d);
    if (!this.repairRng.chance(0.5)) return;
    const running = node.core !== null;
    if (running) {
      node.loop?.stop();
      node.loop = null;
      node.core = null;
      node.crashDuringPersist = false;
    }
    this.checker.onWipe(node);
    // TCP may retransmit what the dead process last sent the leader well after it died.
    const leader = this.leader();
    const last = leader === null ? undefined : this.lastSent.get(`${node.id}>${leader}`);
    if (last !== undefined) this.schedule(this.repairRng.float() * 4 * this.opts.delayMaxMs, { kind: 'deliver', msg: last });
    node.disk = this.newDisk(this.repairRng);
    node.dirId = this.newDirId();
    if (running) this.start(node); // (a crashed node's restart is scheduled already)
  }

  /** The workload's part of a snapshot: what follows the digest machine's bytes (12 + pad); null without a snapshot. */
  private appBytes(data: Uint8Array | null): Uint8Array | null {
    return data === null ? null : data.subarray(12 + this.opts.snapshotPadBytes);
  }

  private schedule(delayMs: number, body: EventBody): void {
    this.heap.push(this.now + delayMs, this.seq++, body);
  }

  private scheduleNext(kind: 'propose' | 'read' | 'compact' | 'crash' | 'partition' | 'transfer' | 'membership', meanMs: number): void {
    if (meanMs <= 0) return;
    const delay = -Math.log(1 - this.rng.float()) * meanMs;
    this.schedule(delay, { kind } as EventBody);
  }
}

/** How often the workload looks for a wiped node to re-add (virtual ms). */
const REPAIR_EVERY_MS = 50;

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();
function encode(s: string): Uint8Array {
  return textEncoder.encode(s);
}
function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.byteLength + b.byteLength);
  out.set(a);
  out.set(b, a.byteLength);
  return out;
}
function decode(b: Uint8Array): string {
  return textDecoder.decode(b);
}

/** What a tick can change that a runtime would have to act on: role, term and every output list. */
function tickSignature(core: RaftNode): string {
  const due = core.role.kind === 'leader' && core.role.replicationDue;
  return `${core.role.kind}/${core.term}/${core.outNow.length}/${core.outAfterPersist.length}/${core.readStates.length}/` +
    `${core.readsAborted.length}/${core.snapshotChunks.length}/${core.snapshotToInstall !== null}/${due}`;
}
