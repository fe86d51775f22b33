// The consensus core of one node, as a deterministic state machine:
//   tick()  — one logical clock step;   step(m) — a message from a peer;
//   propose(data), readIndex(ctx), transferLeadership(to), compact(i) — local requests;
//   ready() — what the runtime must do now;  advance(r) — the runtime did it.
// No I/O, timers, clocks, randomness or Promises: the runtime (src/node) and
// the simulator (test/sim) drive it. The term rules common to every message
// live here; per-message handling lives in election.ts and replication/*.

import { entryBytes, type Entry, type HardState, type SnapshotMeta } from '../protocol/entry.js';
import type { LogIndex, NodeId, Term } from '../protocol/ids.js';
import type { Message } from '../protocol/messages.js';
import { assert, assertNever } from '../util/assert.js';
import { makeConfig, type RaftConfig, type RaftConfigInput } from './config.js';
import { ApiMisuseError, BackpressureError, LeaderTransferInProgressError, NotLeaderError } from './errors.js';
import * as election from './election.js';
import { RaftLog } from './log.js';
import * as push from './replication/push.js';
import * as pull from './replication/pull.js';
import * as reads from './read-index.js';
import type { Ready, ReadState, SnapshotChunk } from './ready.js';
import type { Leader, Role } from './roles.js';
import * as timers from './timers.js';
import * as transitions from './transitions.js';

/** What a node recovered from its disk at start-up. */
export interface PersistedState {
  readonly hardState: HardState;
  readonly snapshot: SnapshotMeta | null;
  /** The durable entries after the snapshot. */
  readonly entries: readonly Entry[];
}

/** A fresh node's persisted state: term 0, no vote, empty log. */
export const EMPTY_STATE: PersistedState = {
  hardState: { term: 0, vote: null, commit: 0 },
  snapshot: null,
  entries: [],
};

/** Counters for reports and metrics. */
export interface CoreStats {
  electionsStarted: number;
  leadersElected: number;
  messagesDropped: number;
}

/**
 * One node's Raft state machine. Fields are readable by the rest of src/core
 * and by tests; only src/core changes them.
 */
export class RaftNode {
  readonly config: RaftConfig;
  readonly id: NodeId;
  readonly isVoter: boolean;
  /** Current term. Never decreases. */
  term: Term;
  /** Whom this node voted for in `term`. Set at most once per term. */
  vote: NodeId | null;
  readonly log: RaftLog;
  role: Role;
  /** Ticks since this node started: the core's only notion of time. */
  now = 0;
  /** Ticks since the last sign of a live leader (or since the campaign began). */
  electionElapsedTicks = 0;
  /** This period's randomized election (pull: fetch) timeout. */
  electionTimeoutTicks: number;
  readonly stats: CoreStats = { electionsStarted: 0, leadersElected: 0, messagesDropped: 0 };

  // Outputs gathered for the next ready().
  /** Messages that may go out at once (leader replication traffic). */
  readonly outNow: Message[] = [];
  /** Messages that may go out only after this ready's state is durable. */
  readonly outAfterPersist: Message[] = [];
  readonly readStates: ReadState[] = [];
  readonly readsAborted: number[] = [];
  readonly snapshotChunks: SnapshotChunk[] = [];
  /** A received snapshot that has replaced the log prefix and must be persisted and restored. */
  snapshotToInstall: SnapshotMeta | null = null;
  private lastHardState: HardState;
  private readyInProgress = false;

  constructor(input: RaftConfigInput, persisted: PersistedState = EMPTY_STATE) {
    this.config = makeConfig(input);
    this.id = this.config.id;
    this.isVoter = this.config.voters.includes(this.id);
    this.term = persisted.hardState.term;
    this.vote = persisted.hardState.vote;
    this.lastHardState = persisted.hardState;
    this.log = new RaftLog(persisted.snapshot ?? { index: 0, term: 0 }, persisted.entries, persisted.hardState.commit);
    this.electionTimeoutTicks = this.config.electionTimeoutMinTicks;
    this.role = transitions.initialRole(this);
    transitions.resetElectionTimer(this);
  }

  // ---- inputs -------------------------------------------------------------

  /** Advances logical time by one tick. */
  tick(): void {
    this.checkNotInReady('tick');
    this.now++;
    const role = this.role;
    switch (role.kind) {
      case 'leader':
        if (this.config.replication === 'push') push.tickLeader(this, role);
        else pull.tickLeader(this, role);
        election.tickTransfer(this, role);
        break;
      case 'follower':
      case 'observer':
        this.electionElapsedTicks++;
        if (this.config.replication === 'pull') pull.tickReplica(this, role);
        if (role.kind === 'follower' && this.electionElapsedTicks >= this.electionTimeoutTicks) {
          election.startElection(this, { transfer: false });
        }
        break;
      case 'preCandidate':
      case 'candidate':
        this.electionElapsedTicks++;
        if (this.electionElapsedTicks >= this.electionTimeoutTicks) election.startElection(this, { transfer: false });
        break;
      default:
        assertNever(role, 'role');
    }
  }

  /** Handles a message from a peer. Messages not meant for this node are dropped. */
  step(m: Message): void {
    this.checkNotInReady('step');
    if (m.to !== this.id) {
      this.stats.messagesDropped++;
      return;
    }
    if (m.term > this.term) {
      if (!this.onHigherTerm(m)) return;
    } else if (m.term < this.term) {
      this.onLowerTerm(m);
      return;
    }
    this.dispatch(m);
  }

  /**
   * Appends proposals to the leader's log; they travel to followers in the
   * next ready(), batched. Returns the index of the first. Throws
   * {@link NotLeaderError} on a non-leader, {@link LeaderTransferInProgressError}
   * during a transfer, and {@link BackpressureError} while more than
   * `maxUncommittedBytes` wait to commit.
   */
  propose(batch: readonly Uint8Array[]): LogIndex {
    this.checkNotInReady('propose');
    const leader = this.requireLeader();
    if (leader.transfer !== null) throw new LeaderTransferInProgressError(leader.transfer.target);
    if (leader.uncommittedBytes > 0 && leader.uncommittedBytes >= this.config.maxUncommittedBytes) {
      throw new BackpressureError(leader.uncommittedBytes, this.config.maxUncommittedBytes);
    }
    const first = this.log.lastIndex() + 1;
    const entries: Entry[] = [];
    for (let i = 0; i < batch.length; i++) {
      const entry: Entry = { index: first + i, term: this.term, type: 'data', data: batch[i] as Uint8Array };
      leader.uncommittedBytes += entryBytes(entry);
      entries.push(entry);
    }
    this.log.append(entries);
    leader.replicationDue = true;
    return first;
  }

  /**
   * Starts a linearizable read; `ctx` comes back in a ReadState once a quorum
   * has confirmed this node still leads. Throws {@link NotLeaderError}.
   */
  readIndex(ctx: number): void {
    this.checkNotInReady('readIndex');
    reads.request(this, this.requireLeader(), ctx);
  }

  /** Hands leadership to `target` once it is up to date. Throws {@link NotLeaderError}, or {@link TransferTargetError} for a non-voter. */
  transferLeadership(target: NodeId): void {
    this.checkNotInReady('transferLeadership');
    election.beginTransfer(this, this.requireLeader(), target);
  }

  /**
   * The runtime has durably written a snapshot of the state machine at
   * `index` (at most the applied index): drop the log up to it.
   */
  compact(index: LogIndex): SnapshotMeta {
    this.checkNotInReady('compact');
    return this.log.compact(index);
  }

  // ---- outputs ------------------------------------------------------------

  /** True when ready() has something for the runtime. */
  hasReady(): boolean {
    if (this.role.kind === 'leader' && this.role.replicationDue) return true;
    return this.outNow.length > 0 || this.outAfterPersist.length > 0 || this.readStates.length > 0 ||
      this.readsAborted.length > 0 || this.snapshotChunks.length > 0 || this.snapshotToInstall !== null ||
      this.log.unstableFrom <= this.log.lastIndex() || this.log.applied < this.log.commit ||
      this.hardStateChanged();
  }

  /** Collects what the runtime must do now (see ready.ts for the contract). */
  ready(): Ready {
    this.checkNotInReady('ready');
    if (this.role.kind === 'leader' && this.role.replicationDue) {
      this.role.replicationDue = false;
      if (this.config.replication === 'push') push.broadcast(this, this.role);
      else pull.answerParked(this, this.role);
    }
    const hardState = this.hardStateChanged() ? { term: this.term, vote: this.vote, commit: this.log.commit } : null;
    let messages = takeAll(this.outNow);
    let persistedMessages = takeAll(this.outAfterPersist);
    const bug = this.config.plantedBug;
    if (bug === 'voteBeforePersist' || bug === 'ackBeforePersist') {
      const early = persistedMessages.filter((m) =>
        bug === 'voteBeforePersist' ? m.type === 'voteResponse' : m.type === 'appendResponse' || m.type === 'fetch');
      persistedMessages = persistedMessages.filter((m) => !early.includes(m));
      messages = messages.concat(early);
    }
    const r: Ready = {
      hardState,
      entries: this.log.takeUnstable(),
      snapshot: this.snapshotToInstall,
      snapshotChunks: takeAll(this.snapshotChunks),
      messages,
      persistedMessages,
      committed: this.log.nextCommitted(this.config.maxMessageBytes * 4),
      readStates: takeAll(this.readStates),
      readsAborted: takeAll(this.readsAborted),
      softState: { role: this.role.kind, term: this.term, leader: this.leaderId() },
    };
    this.snapshotToInstall = null;
    this.readyInProgress = true;
    return r;
  }

  /** The runtime has done everything `r` asked. */
  advance(r: Ready): void {
    if (!this.readyInProgress) throw new ApiMisuseError('advance() without a ready()');
    this.readyInProgress = false;
    if (r.hardState !== null) this.lastHardState = r.hardState;
    const last = r.entries[r.entries.length - 1];
    if (last !== undefined) this.log.stableTo(last.index, last.term);
    const applied = r.committed[r.committed.length - 1];
    if (applied !== undefined && applied.index > this.log.applied) this.log.appliedTo(applied.index);
    if (this.role.kind === 'leader') {
      // The leader's own entries count toward commit only now that they are durable.
      if (last !== undefined) transitions.onLeaderProgress(this, this.role);
    }
  }

  // ---- queries ------------------------------------------------------------

  /** The leader this node knows of, or null. */
  leaderId(): NodeId | null {
    const role = this.role;
    switch (role.kind) {
      case 'leader': return this.id;
      case 'follower':
      case 'observer': return role.leader;
      case 'preCandidate':
      case 'candidate': return null;
      default: return assertNever(role, 'role');
    }
  }

  /**
   * How many ticks may pass before one of them can act (see timers.ts): a
   * runtime with nothing else to do may sleep that long and then call tick()
   * once per tick that passed. At least 1; Infinity when no tick ever acts.
   */
  ticksUntilDue(): number {
    return timers.ticksUntilDue(this);
  }

  /** The hard state as the runtime last persisted it. */
  persistedHardState(): HardState {
    return this.lastHardState;
  }

  /**
   * Checks the core's own invariants; the simulator calls this after every
   * event. Log entries are checked in the last `tailEntries` (all by default).
   */
  checkInvariants(tailEntries = Infinity): void {
    this.log.checkInvariants(tailEntries);
    assert(this.term >= this.lastHardState.term, 'term went backwards');
    const role = this.role;
    if (role.kind === 'leader') {
      if (this.vote !== this.id) assert(false, `leader ${this.id} of term ${this.term} did not vote for itself`);
      if (role.uncommittedBytes < 0) assert(false, `leader ${this.id} counts ${role.uncommittedBytes} uncommitted bytes`);
      const last = this.log.lastIndex();
      for (const pr of role.progress.values()) {
        if (pr.match >= pr.next) assert(false, `progress of ${pr.id}: match ${pr.match} >= next ${pr.next}`);
        if (pr.match > last) assert(false, `progress of ${pr.id}: match ${pr.match} beyond the log end ${last}`);
      }
    }
    if (!this.isVoter && role.kind !== 'observer') assert(false, `observer ${this.id} in role ${role.kind}`);
  }

  // ---- internals shared by the modules -------------------------------------

  /**
   * Queues a message. A leader's replication traffic may leave before
   * persisting, once its term is durable (a single voter wins its election
   * in the same step that raised its term, before any ready()).
   */
  send(m: Message): void {
    if (this.role.kind === 'leader' && this.lastHardState.term === this.term) this.outNow.push(m);
    else this.outAfterPersist.push(m);
  }

  /** The voters other than this node. */
  otherVoters(): NodeId[] {
    return this.config.voters.filter((v) => v !== this.id);
  }

  /** Everyone who receives the log from a leader: other voters and observers. */
  replicas(): NodeId[] {
    return this.otherVoters().concat(this.config.observers.filter((o) => o !== this.id));
  }

  private requireLeader(): Leader {
    if (this.role.kind !== 'leader') throw new NotLeaderError(this.leaderId());
    return this.role;
  }

  private hardStateChanged(): boolean {
    const h = this.lastHardState;
    return h.term !== this.term || h.vote !== this.vote || h.commit !== this.log.commit;
  }

  private checkNotInReady(call: string): void {
    if (this.readyInProgress) throw new ApiMisuseError(`${call}() between ready() and advance()`);
  }

  /**
   * A message from a higher term. Returns false when it must be ignored: a
   * pre-vote (which never raises terms), a vote request while this node still
   * hears from a live leader (the lease that check-quorum buys), or a granted
   * pre-vote response (which carries the proposed term).
   */
  private onHigherTerm(m: Message): boolean {
    if (m.type === 'vote') {
      if (election.inLeaderLease(this) && !m.transfer) return false;
      if (m.preVote) return true;
    }
    if (m.type === 'voteResponse' && m.preVote && m.granted) return true;
    const leader = m.type === 'append' || m.type === 'heartbeat' || m.type === 'installSnapshot' ||
      m.type === 'beginQuorumEpoch' ? m.from : m.type === 'fetchResponse' && m.result.kind === 'notLeader' ? m.result.leader : null;
    transitions.becomeFollower(this, m.term, leader);
    return true;
  }

  /** A message from a lower term: tell a stale sender our term where that helps it move on. */
  private onLowerTerm(m: Message): void {
    switch (m.type) {
      case 'append':
      case 'heartbeat':
      case 'installSnapshot':
      case 'beginQuorumEpoch':
        // A deposed leader learns of the new term from the answer.
        this.send({ type: 'heartbeatResponse', from: this.id, to: m.from, term: this.term, readSeq: 0 });
        break;
      case 'vote':
        if (m.preVote) this.send({ type: 'voteResponse', from: this.id, to: m.from, term: this.term, preVote: true, granted: false });
        break;
      case 'fetch':
      case 'fetchSnapshot':
        // Fenced: the fetcher is behind; tell it the term and the leader we know.
        pull.answerNotLeader(this, m);
        break;
      case 'voteResponse':
      case 'appendResponse':
      case 'heartbeatResponse':
      case 'installSnapshotResponse':
      case 'timeoutNow':
      case 'fetchResponse':
      case 'fetchSnapshotResponse':
        break;
      default:
        assertNever(m, 'message');
    }
  }

  /** Routes a message of the current term to its handler. */
  private dispatch(m: Message): void {
    switch (m.type) {
      case 'vote': election.onVoteRequest(this, m); break;
      case 'voteResponse': election.onVoteResponse(this, m); break;
      case 'timeoutNow': election.onTimeoutNow(this, m); break;
      case 'append': push.onAppend(this, m); break;
      case 'appendResponse': push.onAppendResponse(this, m); break;
      case 'heartbeat': push.onHeartbeat(this, m); break;
      case 'heartbeatResponse': push.onHeartbeatResponse(this, m); break;
      case 'installSnapshot': push.onInstallSnapshot(this, m); break;
      case 'installSnapshotResponse': push.onInstallSnapshotResponse(this, m); break;
      case 'beginQuorumEpoch': pull.onBeginQuorumEpoch(this, m); break;
      case 'fetch': pull.onFetch(this, m); break;
      case 'fetchResponse': pull.onFetchResponse(this, m); break;
      case 'fetchSnapshot': pull.onFetchSnapshot(this, m); break;
      case 'fetchSnapshotResponse': pull.onFetchSnapshotResponse(this, m); break;
      default: assertNever(m, 'message');
    }
  }
}

const NOTHING: readonly never[] = Object.freeze([]);

/** Empties `list` and returns what it held (a shared empty array when it held nothing). */
function takeAll<T>(list: T[]): readonly T[] {
  return list.length === 0 ? NOTHING : list.splice(0);
}
