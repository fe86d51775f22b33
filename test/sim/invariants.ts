// The simulator's checker: Raft's safety properties (Raft paper, Figure 3)
// and ours, checked incrementally after every event so that a violation is
// reported at the step that caused it.
//
//   electionSafety      at most one leader per term
//   logMatching         entries with the same index and term have identical prefixes
//   leaderCompleteness  a new leader holds every entry committed before its term
//   stateMachineSafety  no two nodes apply different entries (or reach different states) at one index
//   monotonic           term never goes back on a node; commit and applied never go back within a run of it
//   durableMajority     an entry a leader commits is durable on a majority of voters
//   commitRule          a leader moves its commit index only onto an entry of its own term (Raft 5.4.2)
//   persistenceContract votes and acknowledgements leave only once what they promise is durable
//   observerCounted     observers never campaign, vote, or lead
//   staleRead           a linearizable read sees every entry committed before it began
//   liveness            (simulator) after healing, a leader commits a new proposal within a bound
//   storage             (durable disk) recovery refused data it wrote itself as corrupt
//   unexpected          any other exception escaping the node or its disk

import type { Ready } from '../../src/core/ready.js';
import type { Entry } from '../../src/protocol/entry.js';
import type { NodeId } from '../../src/protocol/ids.js';
import type { Message } from '../../src/protocol/messages.js';
import { majority } from '../../src/core/quorum.js';
import type { Simulator, SimNode } from './simulator.js';
import { entryDigest } from './state-machine.js';

/** The names of the rules the checker enforces. */
export type Rule =
  | 'electionSafety' | 'logMatching' | 'leaderCompleteness' | 'stateMachineSafety' | 'monotonic'
  | 'durableMajority' | 'commitRule' | 'persistenceContract' | 'observerCounted' | 'staleRead' | 'liveness' | 'coreAssertion'
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
  term: number;
  commit: number;
  applied: number;
  wasLeader: boolean;
}

const TERM_BITS = 2 ** 21;

export class Checker {
  private readonly sim: Simulator;
  private readonly leaderOfTerm = new Map<number, NodeId>();
  /** (index, term) -> the entry's digest and the term before it. */
  private readonly entries = new Map<number, { digest: number; prevTerm: number | undefined }>();
  /** index -> digest of the entry committed there. */
  private readonly committed = new Map<number, number>();
  /** index -> state machine digest after applying it. */
  private readonly stateAt = new Map<number, number>();
  private readonly watch = new Map<NodeId, NodeWatch>();
  /** The highest index any node has seen committed. */
  committedIndex = 0;

  constructor(sim: Simulator) {
    this.sim = sim;
  }

  onStart(node: SimNode): void {
    const core = node.core;
    if (core === null) return;
    const w = this.watch.get(node.id);
    if (w !== undefined && core.term < w.term) {
      throw new Violation('monotonic', `${node.id} restarted in term ${core.term} after term ${w.term}`);
    }
    this.watch.set(node.id, { term: core.term, commit: core.log.commit, applied: core.log.applied, wasLeader: false });
  }

  onReady(node: SimNode, r: Ready): void {
    const core = node.core;
    if (core === null) return;
    for (const e of r.entries) {
      const key = e.index * TERM_BITS + e.term;
      const digest = entryDigest(e);
      const prevTerm = core.log.term(e.index - 1);
      const known = this.entries.get(key);
      if (known === undefined) {
        this.entries.set(key, { digest, prevTerm });
      } else if (known.digest !== digest ||
        (known.prevTerm !== undefined && prevTerm !== undefined && known.prevTerm !== prevTerm)) {
        throw new Violation('logMatching', `${node.id} holds entry ${e.index}/${e.term} after term ${prevTerm} ` +
          `with digest ${digest}; elsewhere it follows term ${known.prevTerm} with digest ${known.digest}`);
      }
    }
    const s = r.softState;
    if (!node.isVoter && s.role !== 'observer') {
      throw new Violation('observerCounted', `observer ${node.id} became ${s.role} in term ${s.term}`);
    }
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
      case 'voteResponse':
        if (!m.granted) return;
        if (!node.isVoter) throw new Violation('observerCounted', `observer ${node.id} granted a vote to ${m.to}`);
        if (!m.preVote && (disk.hardState.term !== m.term || disk.hardState.vote !== m.to)) {
          throw new Violation('persistenceContract', `${node.id} granted its term-${m.term} vote to ${m.to} ` +
            `but its disk says term ${disk.hardState.term} vote ${disk.hardState.vote}`);
        }
        return;
      case 'appendResponse':
        if (m.success) this.checkDurable(node, m.matchIndex, node.core?.log.term(m.matchIndex), `acknowledged ${m.matchIndex}`);
        return;
      case 'fetch':
        this.checkDurable(node, m.fetchOffset - 1, m.lastFetchedTerm, `fetched from ${m.fetchOffset}`);
        return;
      default:
        return;
    }
  }

  private checkDurable(node: SimNode, index: number, term: number | undefined, what: string): void {
    const disk = node.disk;
    const snap = disk.snapshot?.meta.index ?? 0;
    if (index <= snap) return;
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

  onSnapshotRestored(node: SimNode, index: number): void {
    const s = this.stateAt.get(index);
    if (s !== undefined && s !== node.sm.digest) {
      throw new Violation('stateMachineSafety', `${node.id} installed a snapshot at ${index} with a different state`);
    }
  }

  onCompact(_node: SimNode, _index: number): void {
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
    if (core.log.commit > w.commit) {
      for (let i = Math.max(w.commit + 1, core.log.snapshot.index + 1); i <= core.log.commit; i++) {
        const e = core.log.entry(i) as Entry;
        const digest = entryDigest(e);
        const want = this.committed.get(i);
        if (want !== undefined && want !== digest) {
          throw new Violation('stateMachineSafety', `${node.id} commits a different entry at ${i}`);
        }
        this.committed.set(i, digest);
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
    w.commit = core.log.commit;
    w.applied = core.log.applied;
    core.checkInvariants(64);
  }

  private checkDurableOnMajority(node: SimNode, index: number): void {
    const term = node.core?.log.term(index);
    let durable = 0;
    for (const id of this.sim.voterIds) {
      const disk = (this.sim.nodes.get(id) as SimNode).disk;
      if ((disk.snapshot !== null && disk.snapshot.meta.index >= index) || disk.term(index) === term) durable++;
    }
    if (durable < majority(this.sim.voterIds.length)) {
      throw new Violation('durableMajority', `${node.id} committed ${index} (term ${term}) durable on only ${durable} of ${this.sim.voterIds.length} voters`);
    }
  }

  afterEvent(): void {
    // Every rule is checked where its state changes; nothing global is left.
  }
}
