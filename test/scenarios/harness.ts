// A small, deterministic, hand-driven cluster for scenario tests (etcd raft's
// `network` in spirit). Nothing here is random except each core's seeded
// election timeouts: the test decides when each node ticks and which messages
// are delivered, dropped, held or reordered. Each node has an in-memory disk
// (test/sim's SimDisk) that survives crash() and feeds restart(), and a tiny
// state machine: the list of applied payloads, snapshotted as JSON.
//
// Every core call is followed by draining ready() through the production
// Ready driver (src/node/ready-loop.ts) with a disk that syncs at once:
// `messages` are queued, the disk is written, `committed` entries applied in
// order, advance(), then the sync ends: `persistedMessages` are queued, a
// snapshot restored, persisted(); checkInvariants() runs after each.

import { RaftNode } from '../../src/core/node.js';
import type { RaftConfigInput } from '../../src/core/config.js';
import type { PlantedBug } from '../../src/core/planted-bugs.js';
import type { ReadState, SoftState } from '../../src/core/ready.js';
import type { ConfigChange, Entry } from '../../src/protocol/entry.js';
import { nodeId, type NodeId } from '../../src/protocol/ids.js';
import type { Message } from '../../src/protocol/messages.js';
import { Prng } from '../../src/util/prng.js';
import { SimDisk } from '../sim/disk.js';
import { ReadyLoop } from '../../src/node/ready-loop.js';

/** The two replication modes; most scenarios run in both. */
export type Mode = 'push' | 'pull';
export const MODES: readonly Mode[] = ['push', 'pull'];

/** Config fields a scenario may override (identity, membership and randomness are the harness's). */
export type ConfigOverrides = Partial<Omit<RaftConfigInput, 'id' | 'voters' | 'observers' | 'replication' | 'random'>>;

/** The shape of a test cluster. Voters are named n1..nN, observers o1..oM. */
export interface ClusterOptions {
  readonly mode: Mode;
  readonly voters: number;
  readonly observers?: number;
  /** Nodes s1..sK outside the bootstrap configuration (to be added by membership changes). */
  readonly spares?: number;
  /** Seeds every node's election-timeout generator (default 1). */
  readonly seed?: number;
  readonly config?: ConfigOverrides;
  /** Snapshots are padded to at least this many bytes, so transfers take several chunks. */
  readonly snapshotPadBytes?: number;
  /**
   * Give every node a data directory id (RaftConfig.directoryId): 101, 102, …
   * in creation order; a wipe() draws the next one. Without it nodes have
   * none, as before issue 7.
   */
  readonly directoryIds?: boolean;
}

/** A predicate over messages, for delivering, dropping or counting. */
export type MessageFilter = (m: Message) => boolean;

/**
 * To prove the scenarios can fail, QUORUMLOG_PLANTED_BUG=<name> (see
 * src/core/planted-bugs.ts) switches one deliberate core bug on in every node.
 */
const plantedBug = process.env['QUORUMLOG_PLANTED_BUG'] as PlantedBug | undefined;

/** One machine: its disk survives a crash; its core, state machine and outputs do not. */
export class TestNode {
  readonly id: NodeId;
  /** Replaced by an empty one by Cluster.wipe(). */
  disk = new SimDisk();
  /** The id of the data directory on `disk`, if the cluster gives them (ClusterOptions.directoryIds). */
  dirId: number | undefined;
  /** The soft state of the last Ready. */
  softState: SoftState | null = null;
  readonly random: Prng;
  core: RaftNode | null = null;
  /** The Ready driver of `core`. */
  loop: ReadyLoop | null = null;
  /** The state machine: data payloads applied, in log order (no-ops leave no trace). */
  applied: string[] = [];
  appliedIndex = 0;
  /** Every ReadState and aborted read ctx released since the last (re)start. */
  readStates: ReadState[] = [];
  readsAborted: number[] = [];
  /** Set by Cluster.crashBeforePersist: the next Ready's `messages` leave, then the node dies. */
  crashBeforePersist = false;

  constructor(id: NodeId, random: Prng) {
    this.id = id;
    this.random = random;
  }
}

const enc = new TextEncoder();
const dec = new TextDecoder();

/** The entries a message carries (AppendEntries or a fetch answer), else none. */
export function entriesOf(m: Message): readonly Entry[] {
  if (m.type === 'append') return m.entries;
  if (m.type === 'fetchResponse' && m.result.kind === 'entries') return m.result.entries;
  return [];
}

/** A hand-driven cluster; see the file header. */
export class Cluster {
  readonly mode: Mode;
  readonly nodes = new Map<string, TestNode>();
  readonly voterIds: NodeId[] = [];
  readonly observerIds: NodeId[] = [];
  /** Messages sent and not yet delivered or dropped, oldest first. */
  queue: Message[] = [];
  /** Every message ever sent, with the harness tick count at sending. */
  readonly sent: Array<{ readonly tick: number; readonly msg: Message }> = [];
  /** Rounds of tickAll() so far (the harness's clock for `sent`). */
  ticks = 0;
  private readonly blocked = new Set<string>();
  private dropRules: MessageFilter[] = [];
  private readonly opts: ClusterOptions;
  private nextDirId = 101;

  constructor(opts: ClusterOptions) {
    this.opts = opts;
    this.mode = opts.mode;
    const root = new Prng(opts.seed ?? 1);
    for (let i = 1; i <= opts.voters; i++) this.voterIds.push(nodeId(`n${i}`));
    for (let i = 1; i <= (opts.observers ?? 0); i++) this.observerIds.push(nodeId(`o${i}`));
    const spareIds = Array.from({ length: opts.spares ?? 0 }, (_, i) => nodeId(`s${i + 1}`));
    for (const id of [...this.voterIds, ...this.observerIds, ...spareIds]) {
      const node = new TestNode(id, root.fork());
      if (opts.directoryIds === true) node.dirId = this.nextDirId++;
      this.nodes.set(id, node);
      this.start(node);
    }
  }

  // ---- nodes -----------------------------------------------------------------------

  /** The node named `id` (throws on an unknown name). */
  node(id: string): TestNode {
    const n = this.nodes.get(id);
    if (n === undefined) throw new Error(`no node ${id}`);
    return n;
  }

  /** The live core of `id` (throws if it is crashed). */
  core(id: string): RaftNode {
    const c = this.node(id).core;
    if (c === null) throw new Error(`${id} is crashed`);
    return c;
  }

  /** Loses everything but the disk. Messages already sent stay in flight. */
  crash(id: string): void {
    const n = this.node(id);
    n.loop?.stop();
    n.loop = null;
    n.core = null;
  }

  /**
   * The next time `id` has a Ready, it sends `messages` (allowed before
   * persisting) and crashes before anything reaches its disk.
   */
  crashBeforePersist(id: string): void {
    this.node(id).crashBeforePersist = true;
  }

  /** Starts a fresh core from what the disk holds (Raft's restart). */
  restart(id: string): void {
    const n = this.node(id);
    if (n.core !== null) throw new Error(`${id} is running`);
    this.start(n);
  }

  /**
   * A crashed node's data directory is lost: it gets an empty disk and a new
   * directory id (when the cluster gives them). restart() then starts it on it.
   */
  wipe(id: string): void {
    const n = this.node(id);
    if (n.core !== null) throw new Error(`${id} is running`);
    n.disk = new SimDisk();
    if (n.dirId !== undefined) n.dirId = this.nextDirId++;
  }

  private start(n: TestNode): void {
    n.core = new RaftNode({
      ...this.opts.config, id: n.id, voters: this.voterIds, observers: this.observerIds, replication: this.mode,
      ...(n.dirId === undefined ? {} : { directoryId: n.dirId }),
      random: n.random, ...(plantedBug === undefined ? {} : { plantedBug }),
      snapshotReader: (meta, position, maxBytes) => {
        const s = n.disk.snapshot;
        if (s === null || s.meta.index !== meta.index || s.meta.term !== meta.term) return undefined;
        const end = Math.min(s.data.byteLength, position + maxBytes);
        return { data: s.data.subarray(position, end), done: end >= s.data.byteLength };
      },
    }, n.disk.load());
    n.loop = this.newLoop(n, n.core);
    this.restoreStateMachine(n);
    n.readStates = [];
    n.readsAborted = [];
    n.core.checkInvariants();
  }

  /** The node's Ready driver: the harness's network, the node's memory disk (synced at once), its list state machine. */
  private newLoop(n: TestNode, core: RaftNode): ReadyLoop {
    return new ReadyLoop(core, {
      onReady: (r) => {
        n.softState = r.softState;
      },
      send: (m) => this.send([m]),
      flushSends: () => undefined,
      write: (r) => {
        if (n.crashBeforePersist) {
          n.crashBeforePersist = false;
          this.crash(n.id);
          return;
        }
        n.disk.write(r, Infinity);
      },
      sync: (done) => {
        n.disk.sync();
        done(null);
      },
      apply: (entries) => {
        for (const e of entries) {
          if (e.index <= n.appliedIndex) continue;
          if (e.index !== n.appliedIndex + 1) throw new Error(`${n.id} applies ${e.index} after ${n.appliedIndex}`);
          n.appliedIndex = e.index;
          if (e.type === 'data') n.applied.push(dec.decode(e.data));
        }
      },
      readState: (rs) => {
        n.readStates.push(rs);
      },
      readAborted: (ctx) => {
        n.readsAborted.push(ctx);
      },
      restoreSnapshot: () => this.restoreStateMachine(n),
      afterCoreCall: () => core.checkInvariants(),
      onFatal: (e) => {
        throw e;
      },
    });
  }

  private restoreStateMachine(n: TestNode): void {
    const s = n.disk.snapshot;
    n.applied = s === null ? [] : (JSON.parse(dec.decode(s.data)) as string[]);
    n.appliedIndex = s === null ? 0 : s.meta.index;
  }

  /** Live nodes that believe they lead, newest term first. */
  leaders(): TestNode[] {
    return [...this.nodes.values()]
      .filter((n) => n.core?.role.kind === 'leader')
      .sort((a, b) => (b.core as RaftNode).term - (a.core as RaftNode).term);
  }

  /** The id of the newest-term live leader, or null. */
  leader(): NodeId | null {
    return this.leaders()[0]?.id ?? null;
  }

  /** The data payloads `id` has applied, in order. */
  applied(id: string): string[] {
    return this.node(id).applied.slice();
  }

  // ---- local requests (each followed by draining ready) ------------------------------

  /** One tick on `id`, `times` times (no delivery). */
  tick(id: string, times = 1): void {
    for (let i = 0; i < times; i++) this.withCore(id, (c) => c.tick());
  }

  /** One tick on every live node, `times` rounds (no delivery). */
  tickAll(times = 1): void {
    for (let i = 0; i < times; i++) {
      this.ticks++;
      for (const n of this.nodes.values()) if (n.core !== null) this.withCore(n.id, (c) => c.tick());
    }
  }

  /**
   * Proposes each payload with its own propose() call, then drains ready()
   * once (so they may batch). Returns the index of the first; core errors propagate.
   */
  propose(id: string, ...payloads: string[]): number {
    const core = this.core(id);
    let first = -1;
    try {
      for (const p of payloads) {
        const i = core.propose([enc.encode(p)]);
        if (first < 0) first = i;
      }
    } finally {
      this.drain(this.node(id));
    }
    return first;
  }

  /** Asks the leader `id` for a membership change; returns the configuration entry's index (core errors propagate). */
  changeConfig(id: string, change: ConfigChange): number {
    const core = this.core(id);
    try {
      return core.proposeConfigChange(change);
    } finally {
      this.drain(this.node(id));
    }
  }

  /** Starts a linearizable read on `id`. */
  readIndex(id: string, ctx: number): void {
    this.withCore(id, (c) => c.readIndex(ctx));
  }

  /** Asks the leader `id` to hand leadership to `target`. */
  transferLeadership(id: string, target: string): void {
    this.withCore(id, (c) => c.transferLeadership(nodeId(target)));
  }

  /** Snapshots `id`'s state machine at its applied index (padded), writes it to disk, compacts the log. */
  compact(id: string): number {
    const n = this.node(id);
    const core = this.core(id);
    const index = n.appliedIndex;
    const json = JSON.stringify(n.applied);
    const data = enc.encode(json.padEnd(Math.max(json.length, this.opts.snapshotPadBytes ?? 0), ' '));
    n.disk.installSnapshot({ meta: core.snapshotMeta(index), data });
    this.withCore(id, (c) => c.compact(index));
    return index;
  }

  private withCore(id: string, f: (c: RaftNode) => void): void {
    const n = this.node(id);
    f(this.core(id));
    this.drain(n);
  }

  /** Processes every Ready of `n` in contract order (see the file header). */
  private drain(n: TestNode): void {
    const loop = n.loop;
    if (loop === null) return;
    if (loop.run(1000) >= 1000 && n.core?.hasReady() === true) throw new Error(`${n.id}: ready() never runs dry`);
  }

  private send(ms: readonly Message[]): void {
    for (const m of ms) {
      this.queue.push(m);
      this.sent.push({ tick: this.ticks, msg: m });
    }
  }

  // ---- the network -----------------------------------------------------------------

  /** Puts a message on the wire as if a node had sent it (e.g. a duplicate, or etcd's MsgHup stand-in). */
  inject(m: Message): void {
    this.send([m]);
  }

  /**
   * Cuts the cluster into groups that cannot talk to each other. Nodes not
   * named form one more group together.
   */
  partition(...groups: string[][]): void {
    const all = [...this.nodes.keys()];
    const named = new Set(groups.flat());
    const sides = [...groups, all.filter((id) => !named.has(id))];
    const side = (id: string): number => sides.findIndex((g) => g.includes(id));
    for (const a of all) for (const b of all) if (side(a) !== side(b)) this.blocked.add(`${a}>${b}`);
  }

  /** Cuts `id` off from everyone, both ways. */
  isolate(id: string): void {
    this.partition([id]);
  }

  /** Cuts the one-way link from `from` to `to`. */
  blockLink(from: string, to: string): void {
    this.blocked.add(`${from}>${to}`);
  }

  /** Restores the one-way link from `from` to `to`. */
  unblockLink(from: string, to: string): void {
    this.blocked.delete(`${from}>${to}`);
  }

  /** Restores every link (drop rules stay). */
  heal(): void {
    this.blocked.clear();
  }

  /** Drops, at delivery, every message matching `f` until the returned function is called. */
  addDropRule(f: MessageFilter): () => void {
    this.dropRules.push(f);
    return () => { this.dropRules = this.dropRules.filter((g) => g !== f); };
  }

  /** True when `m` would be lost if delivered now. */
  wouldDrop(m: Message): boolean {
    return this.blocked.has(`${m.from}>${m.to}`) || this.dropRules.some((f) => f(m)) || this.nodes.get(m.to)?.core == null;
  }

  /**
   * One pass over the queue as it stands: messages matching `only` (default:
   * all) are delivered or dropped; the others stay queued. Messages sent in
   * response are queued after. Returns how many were taken off the queue.
   */
  deliver(only: MessageFilter = () => true): number {
    const batch = this.queue;
    this.queue = [];
    let taken = 0;
    const keep: Message[] = [];
    for (const m of batch) {
      if (!only(m)) {
        keep.push(m);
        continue;
      }
      taken++;
      if (this.wouldDrop(m)) continue;
      this.withCore(m.to, (c) => c.step(m));
    }
    this.queue = keep.concat(this.queue);
    return taken;
  }

  /** Delivers passes until nothing matching `only` is left in the queue. */
  deliverAll(only: MessageFilter = () => true): void {
    for (let pass = 0; this.deliver(only) > 0; pass++) {
      if (pass > 10_000) throw new Error('deliverAll: the cluster never goes quiet');
    }
  }

  /** Removes and returns the queued messages matching `f` (to hold, inspect or re-inject later). */
  take(f: MessageFilter): Message[] {
    const out = this.queue.filter(f);
    this.queue = this.queue.filter((m) => !f(m));
    return out;
  }

  /** How many messages matching `f` were sent since tick `sinceTick` (default: ever). */
  countSent(f: MessageFilter, sinceTick = 0): number {
    return this.sent.filter((s) => s.tick >= sinceTick && f(s.msg)).length;
  }

  // ---- time and elections ------------------------------------------------------------

  /** `rounds` times: tick every live node once, then deliver everything. */
  run(rounds: number): void {
    for (let i = 0; i < rounds; i++) {
      this.tickAll();
      this.deliverAll();
    }
  }

  /** Runs rounds until `cond` holds; returns the rounds it took. Throws after `maxRounds`. */
  runUntil(cond: () => boolean, maxRounds: number, what = 'condition'): number {
    for (let i = 0; i <= maxRounds; i++) {
      if (cond()) return i;
      this.run(1);
    }
    throw new Error(`${what} not reached within ${maxRounds} rounds`);
  }

  /**
   * Lets `id` win an election the natural way: ticks only `id` until its
   * election timer fires, then delivers everything. Works when the other
   * voters know no live leader (a cold start, or after their restart).
   */
  elect(id: string): void {
    const core = this.core(id);
    for (let i = 0; core.role.kind === 'follower'; i++) {
      if (i > core.config.electionTimeoutMaxTicks) throw new Error(`${id} never campaigned`);
      this.tick(id);
    }
    this.deliverAll();
    if (this.core(id).role.kind !== 'leader') throw new Error(`${id} did not win: ${this.core(id).role.kind}`);
  }

  /**
   * Makes `id` campaign at once, like etcd's MsgHup: injects a TimeoutNow (a
   * leader-transfer order, so it skips pre-vote and voters skip their lease),
   * then delivers everything. Returns true if `id` leads afterwards.
   */
  forceCampaign(id: string): boolean {
    const core = this.core(id);
    this.inject({ type: 'timeoutNow', from: core.id, to: core.id, term: core.term });
    this.deliverAll();
    return this.node(id).core?.role.kind === 'leader';
  }
}
