// The simulator's checker: Raft's safety properties (Raft paper, Figure 3)
// and ours, checked incrementally after every event so that a violation is
// reported at the step that caused it.
//
//   electionSafety      at most one leader per term
//   logMatching         entries with the same index and term have identical prefixes
//   leaderCompleteness  a new leader holds every entry committed before its term
//   stateMachineSafety  no two nodes apply different entries (or reach different states) at one index
//   monotonic           term never goes back on a node; commit and applied never go back within a run of it
//   durableMajority     an entry a leader commits is durable on a majority of the voters of the
//                       leader's configuration in force (the latest in its log), counting a voter
//                       only while its disk is the directory that configuration records for it
//                       (a wiped disk is a lost copy, docs/LOST-DISKS.md)
//   commitRule          a leader moves its commit index only onto an entry of its own term (Raft 5.4.2)
//   persistenceContract votes and acknowledgements leave only once what they promise is durable
//   observerCounted     a node that is not a voter of the configuration in its log never campaigns
//                       once that configuration is committed (before, it may: it may be needed),
//                       and leads only until it commits; a candidate asks only the voters of
//                       the configuration in its log for votes
//   configInForce       a node uses the latest configuration in its log, committed or not
//   snapshotConfig      a snapshot (taken, installed, or recovered at a restart) carries the configuration
//                       committed at its index
//   configChange        a leader appends a configuration only once the previous one and an entry of
//                       its own term are committed, and each changes the voters by one server at most
//   staleNotCounted     a node whose configuration (in its log) records another directory id for it
//                       (its disk was wiped) never grants a vote, campaigns or leads
//   dirIdRecord         a leader records for a member the directory that member runs on now (not one
//                       a removed replica of it ran on: its late packets must not be recorded)
//   staleRead           a linearizable read sees every entry committed before it began
//   liveness            (simulator) after healing, a leader commits a new proposal within a bound
//   storage             (durable disk) recovery refused data it wrote itself as corrupt
//   unexpected          any other exception escaping the node or its disk

import type { Ready } from '../../src/core/ready.js';
import { recordedDirId, sameConfiguration, type Configuration, type Entry } from '../../src/protocol/entry.js';
import type { NodeId } from '../../src/protocol/ids.js';
import type { Message } from '../../src/protocol/messages.js';
import { majority } from '../../src/core/quorum.js';
import type { NodeDisk } from './disk.js';
import type { Simulator, SimNode } from './simulator.js';
import { entryDigest } from './state-machine.js';

/** The names of the rules the checker enforces. */
export type Rule =
  | 'electionSafety' | 'logMatching' | 'leaderCompleteness' | 'stateMachineSafety' | 'monotonic'
  | 'durableMajority' | 'commitRule' | 'persistenceContract' | 'observerCounted' | 'configInForce' | 'configChange' | 'snapshotConfig'
  | 'staleNotCounted' | 'dirIdRecord'
  | 'staleRead' | 'liveness' | 'coreAssertion'
  | 'storage' | 'ticksUntilDue' | 'unexpected';

/** A broken rule, with what broke it. */
export class Violation extends Error {
  override readonly name = 'Violation';
  readonly rule: Rule;

  constructor(rule: Rule, detail: string, options?: ErrorOptions) {
    super(`${rule}: ${detail}`, options);
    this.rule = rule;
  }
}

interface NodeWatch {
  /** The term in memory after the last core call (never goes back while the node runs). */
  term: number;
  /** The term the node has acknowledged durable (persisted()): a restart must not come back below it. */
  durableTerm: number;
  commit: number;
  applied: number;
  wasLeader: boolean;
}

const TERM_BITS = 2 ** 21;

export class Checker {
  private readonly sim: Simulator;
  private readonly leaderOfTerm = new Map<number, NodeId>();
  /**
   * (index, term) -> the entry's digest and the term before it, and the
   * leader that appended it when the checker first saw it in that leader's
   * own Ready (null when first seen elsewhere).
   */
  private readonly entries = new Map<number, { digest: number; prevTerm: number | undefined; author: NodeId | null }>();
  /** index -> digest of the entry committed there. */
  private readonly committed = new Map<number, number>();
  /** index -> the configuration of a committed configuration entry there. */
  private readonly committedConfigs = new Map<number, Configuration>();
  /** index -> state machine digest after applying it. */
  private readonly stateAt = new Map<number, number>();
  private readonly watch = new Map<NodeId, NodeWatch>();
  /** The term at an acknowledged AppendEntries answer's matchIndex when the answer was made. */
  private readonly ackTerms = new WeakMap<Message, number | undefined>();
  /**
   * The disks of wiped directories, by "node/dirId", as they were when lost:
   * what a leader learnt from them before the loss (or from their packets
   * still in flight) was true of a directory that existed.
   */
  private readonly lostDisks = new Map<string, NodeDisk>();
  /** The highest index any node has seen committed. */
  committedIndex = 0;

  constructor(sim: Simulator) {
    this.sim = sim;
  }

  /** The configurations seen committed, by index. */
  committedConfigurations(): ReadonlyMap<number, Configuration> {
    return this.committedConfigs;
  }

  /**
   * The node restarts on an empty disk with a new directory id: its term,
   * commit and applied index start again from zero, which is what a lost
   * disk looks like, not a broken rule. What it must not do then is checked
   * by staleNotCounted, and by the rules on everything committed.
   */
  onWipe(node: SimNode): void {
    this.watch.delete(node.id);
    this.lostDisks.set(`${node.id}/${node.dirId}`, node.disk);
  }

  onStart(node: SimNode): void {
    const core = node.core;
    if (core === null) return;
    const w = this.watch.get(node.id);
    // (A term raised in memory but never made durable may be forgotten: the node never spoke in it.)
    const durable = Math.max(w?.durableTerm ?? 0, node.disk.hardState.term);
    if (core.term < durable) {
      throw new Violation('monotonic', `${node.id} restarted in term ${core.term} after term ${durable} was durable`);
    }
    if (w !== undefined && core.term < w.term) this.forgetUnspokenTerms(node, core.term);
    this.watch.set(node.id, {
      term: core.term, durableTerm: core.persistedHardState().term, commit: core.log.commit, applied: core.log.applied, wasLeader: false,
    });
    // What recovery read back must still carry the configuration (a store that keeps only index and term loses it).
    const snap = node.disk.snapshot;
    if (snap !== null) this.checkSnapshotConfig(node, snap.meta.index, 'recovered');
  }

  /**
   * The node came back in an earlier term than it had reached: the later
   * ones were never durable, so it never spoke in them (persistenceContract),
   * and what it appended as their leader never left it and is gone with them.
   * It may lead such a term again (a lone voter elects itself) and append
   * other entries at the same indexes: those are the first of their kind, not
   * a second version of the forgotten ones.
   */
  private forgetUnspokenTerms(node: SimNode, term: number): void {
    for (const [key, e] of this.entries) if (e.author === node.id && key % TERM_BITS > term) this.entries.delete(key);
  }

  onReady(node: SimNode, r: Ready): void {
    const core = node.core;
    if (core === null) return;
    // What each acknowledgement promises, as the log stood when it was made (it leaves only once the Ready is durable).
    for (const m of r.persistedMessages) {
      if (m.type === 'appendResponse' && m.success) this.ackTerms.set(m, core.log.term(m.matchIndex));
      if (m.type === 'vote' && !core.log.configuration().config.voters.includes(m.to)) {
        throw new Violation('observerCounted', `${node.id} asked ${m.to}, not a voter of the configuration in its log, for a vote`);
      }
    }
    for (const e of r.entries) {
      const key = e.index * TERM_BITS + e.term;
      const digest = entryDigest(e);
      const prevTerm = core.log.term(e.index - 1);
      const known = this.entries.get(key);
      if (known === undefined) {
        this.entries.set(key, { digest, prevTerm, author: r.softState.role === 'leader' && e.term === core.term ? node.id : null });
      } else if (known.digest !== digest ||
        (known.prevTerm !== undefined && prevTerm !== undefined && known.prevTerm !== prevTerm)) {
        throw new Violation('logMatching', `${node.id} holds entry ${e.index}/${e.term} after term ${prevTerm} ` +
          `with digest ${digest}; elsewhere it follows term ${known.prevTerm} with digest ${known.digest}`);
      }
    }
    const s = r.softState;
    const inLog = core.log.configuration();
    if ((s.role === 'preCandidate' || s.role === 'candidate' || s.role === 'leader') && isStale(node)) {
      throw new Violation('staleNotCounted', `${node.id} on directory ${node.dirId} is ${s.role} in term ${s.term}, ` +
        `but the configuration in its log (at ${inLog.index}) records directory ${recordedDirId(inLog.config, node.id)} for it`);
    }
    if (s.role !== 'observer' && !mayElect(node) && !(s.role === 'leader' && inLog.index > core.log.commit)) {
      throw new Violation('observerCounted', `${node.id}, not a voter of the configuration in its log (at ${inLog.index}), is ${s.role} in term ${s.term}`);
    }
    if (s.role === 'leader') this.checkConfigChanges(node, r.entries);
    const w = this.watch.get(node.id) as NodeWatch;
    if (s.role === 'leader') {
      const other = this.leaderOfTerm.get(s.term);
      if (other !== undefined && other !== node.id) {
        throw new Violation('electionSafety', `${node.id} and ${other} both lead term ${s.term}`);
      }
      this.leaderOfTerm.set(s.term, node.id);
      if (!w.wasLeader) this.checkLeaderComplete(node);
    }
    w.wasLeader = s.role === 'leader';
  }

  /** A leader's own new configuration entries follow the one-server-at-a-time rules. */
  private checkConfigChanges(node: SimNode, entries: readonly Entry[]): void {
    const core = node.core;
    if (core === null) return;
    for (const e of entries) {
      if (e.type !== 'config' || e.term !== core.term) continue;
      const prev = core.log.configurationAt(e.index - 1);
      const prevEntry = core.log.entry(prev.index);
      // (The leader's own commit index counts: it may append right after the
      // answer that moved it, before the checker has seen that commit.)
      const prevCommitted = prev.index <= core.log.snapshot.index || prev.index <= core.log.commit ||
        (prev.index <= this.committedIndex && prevEntry !== undefined && this.committed.get(prev.index) === entryDigest(prevEntry));
      if (!prevCommitted) {
        throw new Violation('configChange', `${node.id}, leader of term ${core.term}, appended a configuration at ${e.index} ` +
          `while the one at ${prev.index} is not committed (committed up to ${this.committedIndex})`);
      }
      if (core.log.term(core.log.commit) !== core.term) {
        throw new Violation('configChange', `${node.id} appended a configuration at ${e.index} before committing an entry of its term ${core.term}`);
      }
      const changed = votersChanged(prev.config, e.config);
      if (changed > 1) {
        throw new Violation('configChange', `${node.id} changed ${changed} voters at once at ${e.index}`);
      }
      // A new record names the member's directory as it is now. (A member is
      // wiped only once its directory is recorded, and recorded ids are never
      // replaced, so no wipe can fall between the replica's message and this.)
      for (const r of e.config.dirIds ?? []) {
        if (recordedDirId(prev.config, r.node) !== undefined) continue;
        const current = this.sim.nodes.get(r.node)?.dirId;
        if (current !== undefined && current !== r.dirId) {
          throw new Violation('dirIdRecord', `${node.id} recorded directory ${r.dirId} for ${r.node} at ${e.index}, ` +
            `but ${r.node} runs on directory ${current} (a removed replica's late message was taken for the member's)`);
        }
      }
    }
  }

  private checkLeaderComplete(node: SimNode): void {
    const core = node.core;
    if (core === null) return;
    for (let i = core.log.snapshot.index + 1; i <= this.committedIndex; i++) {
      const want = this.committed.get(i);
      const e = core.log.entry(i);
      if (want === undefined) continue;
      if (e === undefined || entryDigest(e) !== want) {
        throw new Violation('leaderCompleteness', `${node.id} leads term ${core.term} without committed entry ${i}`);
      }
    }
  }

  onReceive(_node: SimNode, _m: Message): void {
    // Messages are checked where they are sent (the persistence contract).
  }

  /**
   * Every message, as it leaves: what it promises (a vote, an acknowledged
   * prefix) must already be on disk. Messages the contract lets out before
   * persisting promise nothing of the sort, so this holds for all of them.
   */
  onSend(node: SimNode, m: Message): void {
    const disk = node.disk;
    // A node speaks in a term only once that term is durable (pre-votes name
    // the term they propose, which is not yet anyone's).
    const preVote = (m.type === 'vote' || m.type === 'voteResponse') && m.preVote;
    if (!preVote && disk.hardState.term < m.term) {
      throw new Violation('persistenceContract', `${node.id} sent ${m.type} in term ${m.term} with term ${disk.hardState.term} on disk`);
    }
    switch (m.type) {
      case 'vote':
        // Checked as the request is made (onReady): it may leave after the configuration changed.
        return;
      case 'voteResponse':
        if (!m.granted) return;
        if (isStale(node)) {
          throw new Violation('staleNotCounted', `${node.id} on directory ${node.dirId} granted a ${m.preVote ? 'pre-' : ''}vote to ${m.to} ` +
            `in term ${m.term}, but the configuration in its log records directory ` +
            `${node.core === null ? '?' : recordedDirId(node.core.log.configuration().config, node.id)} for it`);
        }
        // Any node may grant a vote (docs/MEMBERSHIP.md); what must hold is that
        // candidates count only their voters' votes, which electionSafety and
        // leaderCompleteness check by their consequences.
        // (The disk may have moved to a later term since: a vote of a past term can no longer be taken back.)
        if (!m.preVote && (disk.hardState.term < m.term || (disk.hardState.term === m.term && disk.hardState.vote !== m.to))) {
          throw new Violation('persistenceContract', `${node.id} granted its term-${m.term} vote to ${m.to} ` +
            `but its disk says term ${disk.hardState.term} vote ${disk.hardState.vote}`);
        }
        return;
      case 'appendResponse':
        if (m.success) {
          const term = this.ackTerms.has(m) ? this.ackTerms.get(m) : node.core?.log.term(m.matchIndex);
          this.checkDurable(node, m.matchIndex, term, `acknowledged ${m.matchIndex}`);
        }
        return;
      case 'fetch':
        this.checkDurable(node, m.fetchOffset - 1, m.lastFetchedTerm, `fetched from ${m.fetchOffset}`);
        return;
      default:
        return;
    }
  }

  /**
   * What an acknowledgement promises, (index, term), is on disk as it leaves.
   * Unless the node has since cut that entry from its log (a conflict with a
   * newer leader, written after the Ready that made the acknowledgement):
   * then the acknowledgement is one Raft allows a network to deliver late
   * (it was true when made, in the order of this node's writes), and what
   * it may still cause is checked where it matters, by durableMajority.
   */
  private checkDurable(node: SimNode, index: number, term: number | undefined, what: string): void {
    const disk = node.disk;
    const snap = disk.snapshot?.meta.index ?? 0;
    if (index <= snap) return;
    const core = node.core;
    if (core !== null && term !== undefined && index > core.log.snapshot.index && core.log.term(index) !== term) return;
    if (term === undefined || disk.term(index) !== term) {
      throw new Violation('persistenceContract', `${node.id} ${what} but its disk has term ${disk.term(index)} at ${index}, not ${term}`);
    }
  }

  onApply(node: SimNode, e: Entry): void {
    if (e.index !== node.sm.applied + 1) {
      throw new Violation('stateMachineSafety', `${node.id} applies ${e.index} after ${node.sm.applied}`);
    }
    const digest = entryDigest(e);
    const want = this.committed.get(e.index);
    if (want !== undefined && want !== digest) {
      throw new Violation('stateMachineSafety', `${node.id} applies a different entry at ${e.index}`);
    }
    this.committed.set(e.index, digest);
    const state = Math.imul(node.sm.digest ^ digest, 0x01000193) >>> 0;
    const s = this.stateAt.get(e.index);
    if (s !== undefined && s !== state) {
      throw new Violation('stateMachineSafety', `${node.id} reaches a different state at ${e.index}`);
    }
    this.stateAt.set(e.index, state);
  }

  /** The snapshot on the node's disk carries the configuration committed at its index (the bootstrap one when none was). */
  private checkSnapshotConfig(node: SimNode, index: number, what: string): void {
    const meta = node.disk.snapshot?.meta;
    if (meta === undefined || meta.index !== index) return;
    let best = -1;
    let want: Configuration | undefined;
    for (const [i, c] of this.committedConfigs) {
      if (i <= index && i > best) {
        best = i;
        want = c;
      }
    }
    const bootstrap: Configuration = { voters: this.sim.voterIds, observers: this.sim.observerIds };
    const expected = want ?? bootstrap;
    const got = meta.config ?? bootstrap;
    if (!sameConfiguration(expected, got)) {
      throw new Violation('snapshotConfig', `${node.id} ${what} a snapshot at ${index} with ${describe(got)}, ` +
        `but the configuration committed there (at ${best < 0 ? 'bootstrap' : best}) is ${describe(expected)}`);
    }
  }

  onSnapshotRestored(node: SimNode, index: number): void {
    this.checkSnapshotConfig(node, index, 'installed');
    const s = this.stateAt.get(index);
    if (s !== undefined && s !== node.sm.digest) {
      throw new Violation('stateMachineSafety', `${node.id} installed a snapshot at ${index} with a different state`);
    }
  }

  onCompact(node: SimNode, index: number): void {
    this.checkSnapshotConfig(node, index, 'took');
    // Compaction only drops what a durable snapshot holds; the core asserts the bounds.
  }

  onReadState(node: SimNode, index: number, committedAtStart: number): void {
    if (index < committedAtStart) {
      throw new Violation('staleRead', `${node.id} served a read at ${index}, but ${committedAtStart} was committed before it began`);
    }
  }

  afterAdvance(node: SimNode): void {
    const core = node.core;
    if (core === null) return;
    const w = this.watch.get(node.id) as NodeWatch;
    if (core.term < w.term) throw new Violation('monotonic', `${node.id} term went from ${w.term} to ${core.term}`);
    if (core.log.commit < w.commit) throw new Violation('monotonic', `${node.id} commit went from ${w.commit} to ${core.log.commit}`);
    if (core.log.applied < w.applied) throw new Violation('monotonic', `${node.id} applied went from ${w.applied} to ${core.log.applied}`);
    const inLog = core.log.configuration();
    if (!sameConfiguration(inLog.config, core.membership.config)) {
      throw new Violation('configInForce', `${node.id} uses ${describe(core.membership.config)} but the latest configuration in its log ` +
        `(at ${inLog.index}) is ${describe(inLog.config)}`);
    }
    if (core.log.commit > w.commit) {
      for (let i = Math.max(w.commit + 1, core.log.snapshot.index + 1); i <= core.log.commit; i++) {
        const e = core.log.entry(i) as Entry;
        const digest = entryDigest(e);
        const want = this.committed.get(i);
        if (want !== undefined && want !== digest) {
          throw new Violation('stateMachineSafety', `${node.id} commits a different entry at ${i}`);
        }
        this.committed.set(i, digest);
        if (e.type === 'config') this.committedConfigs.set(i, e.config);
      }
      if (core.role.kind === 'leader') {
        const t = core.log.term(core.log.commit);
        if (t !== core.term) {
          throw new Violation('commitRule', `${node.id}, leader of term ${core.term}, committed up to ${core.log.commit}, an entry of term ${t}`);
        }
        this.checkDurableOnMajority(node, core.log.commit);
      }
      if (core.log.commit > this.committedIndex) this.committedIndex = core.log.commit;
    }
    w.term = core.term;
    w.durableTerm = core.persistedHardState().term;
    w.commit = core.log.commit;
    w.applied = core.log.applied;
    core.checkInvariants(64);
  }

  private checkDurableOnMajority(node: SimNode, index: number): void {
    const core = node.core;
    if (core === null) return;
    const term = core.log.term(index);
    const config = core.log.configuration().config;
    const voters = config.voters;
    let durable = 0;
    for (const id of voters) {
      const voter = this.sim.nodes.get(id) as SimNode;
      // Only the directory recorded for the voter counts. When the voter's
      // disk is another one, the recorded one was lost: its copy counts as
      // it was when lost (the leader may still be using an acknowledgement
      // that directory sent before), never the new disk's.
      const recorded = recordedDirId(config, id);
      const disk = recorded === undefined || recorded === voter.dirId ? voter.disk : this.lostDisks.get(`${id}/${recorded}`);
      if (disk === undefined) continue;
      if ((disk.snapshot !== null && disk.snapshot.meta.index >= index) || disk.term(index) === term) durable++;
    }
    if (durable < majority(voters.length)) {
      throw new Violation('durableMajority', `${node.id} committed ${index} (term ${term}) durable on only ${durable} of the ${voters.length} voters ${voters.join(',')}`);
    }
  }

  afterEvent(): void {
    // Every rule is checked where its state changes; nothing global is left.
  }
}

/**
 * True when the configuration in the node's log lets it vote and campaign: it
 * is a voter of it, or it is uncommitted and the node was a voter of the one
 * before (dissertation 4.1).
 */
function mayElect(node: SimNode): boolean {
  const core = node.core;
  if (core === null) return false;
  const inLog = core.log.configuration();
  if (inLog.config.voters.includes(node.id)) return true;
  if (inLog.index <= core.log.commit || inLog.index <= core.log.snapshot.index) return false;
  return core.log.configurationAt(inLog.index - 1).config.voters.includes(node.id);
}

/** True when the configuration in the node's log records a directory id for it other than its disk's. */
function isStale(node: SimNode): boolean {
  const core = node.core;
  if (core === null) return false;
  const recorded = recordedDirId(core.log.configuration().config, node.id);
  return recorded !== undefined && recorded !== node.dirId;
}

/** How many nodes are voters of exactly one of `a` and `b`. */
function votersChanged(a: Configuration, b: Configuration): number {
  let n = 0;
  for (const id of a.voters) if (!b.voters.includes(id)) n++;
  for (const id of b.voters) if (!a.voters.includes(id)) n++;
  return n;
}

function describe(c: Configuration): string {
  return `voters [${c.voters.join(',')}] observers [${c.observers.join(',')}]`;
}
