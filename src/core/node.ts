// The consensus core of one node, as a deterministic state machine:
//   tick()  — one logical clock step;   step(m) — a message from a peer;
//   propose(data), proposeConfigChange(change), readIndex(ctx), transferLeadership(to),
//   compact(i) — local requests;
//   ready() — what the runtime must do now;  advance(r) — the runtime took it;
//   persisted(r) — what r asked to persist is durable (asynchronous storage
//   writes: several Readies may be in flight, acknowledged in order).
// No I/O, timers, clocks, randomness or Promises: the runtime (src/node) and
// the simulator (test/sim) drive it. The term rules common to every message
// live here; per-message handling lives in election.ts and replication/*.

import {
  entryBytes, recordedDirId, sameConfiguration, type ConfigChange, type Configuration, type Entry, type HardState, type SnapshotMeta,
} from '../protocol/entry.js';
import type { LogIndex, NodeId, Term } from '../protocol/ids.js';
import type { Message } from '../protocol/messages.js';
import { assert, assertNever } from '../util/assert.js';
import { makeConfig, type RaftConfig, type RaftConfigInput } from './config.js';
import { ApiMisuseError, BackpressureError, LeaderTransferInProgressError, NotLeaderError } from './errors.js';
import * as election from './election.js';
import { RaftLog, type ConfigurationAt } from './log.js';
import * as membership from './membership.js';
import * as push from './replication/push.js';
import * as pull from './replication/pull.js';
import * as reads from './read-index.js';
import { directoryCounts } from './quorum.js';
import type { DirIdConflict, Ready, ReadState, SnapshotChunk } from './ready.js';
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
  /**
   * This node's data directory id (RaftConfig.directoryId), or undefined:
   * every message the core builds carries it (docs/LOST-DISKS.md).
   */
  readonly dirId: number | undefined;
  /**
   * The configuration in force: the latest in this node's log, committed or
   * not (docs/MEMBERSHIP.md). Invariant: equals log.configuration() after
   * every call into the core.
   */
  membership: ConfigurationAt;
  /** True when this node is a voter of `membership`: it counts in quorums. */
  isVoter: boolean;
  /** The log's configVersion that `membership` reflects. */
  private configVersionSeen: number;
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
  /** The hard state last handed out in a Ready (to persist, maybe not yet durable). */
  private emittedHardState: HardState;
  /** The hard state the runtime has acknowledged durable (persisted()). Never ahead of emittedHardState. */
  private durableHardState: HardState;
  private readyInProgress = false;
  /**
   * Readies advance()d whose persistence is not yet acknowledged, oldest
   * first. Invariant: at most config.maxInflightReadies; persisted() takes
   * them in this order; while one carries a snapshot, it is the last.
   */
  private readonly inflight: Ready[] = [];
  /** The newest Ready in flight installs a snapshot (then it is the only one that can be). */
  private inflightSnapshot = false;
  private nextReadySeq = 1;

  constructor(input: RaftConfigInput, persisted: PersistedState = EMPTY_STATE) {
    this.config = makeConfig(input);
    this.id = this.config.id;
    this.dirId = this.config.directoryId;
    this.term = persisted.hardState.term;
    this.vote = persisted.hardState.vote;
    this.emittedHardState = persisted.hardState;
    this.durableHardState = persisted.hardState;
    this.log = new RaftLog(persisted.snapshot ?? { index: 0, term: 0 }, persisted.entries, persisted.hardState.commit,
      { voters: this.config.voters, observers: this.config.observers });
    if (this.config.plantedBug === 'termFromLogOnRestart') this.term = this.log.lastTerm(); // read here only
    this.membership = this.log.configuration();
    this.configVersionSeen = this.log.configVersion;
    this.isVoter = this.membership.config.voters.includes(this.id);
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
        if (this.config.plantedBug === 'candidateNeverRetries') break; // read here only
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
    // A vote request is answered whether or not its candidate is a voter of
    // this node's configuration (dissertation 4.1: this node's configuration
    // may be the stale one). A removed server that never learnt of its
    // removal is kept from disrupting by the leader lease (election.ts).
    if (m.term > this.term) {
      if (!this.onHigherTerm(m)) {
        this.afterInput();
        return;
      }
    } else if (m.term < this.term) {
      this.onLowerTerm(m);
      return;
    }
    this.dispatch(m);
    this.afterInput();
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
   * Appends a membership change (one server at a time) to the leader's log
   * and returns its index; the new configuration is in force at once, and the
   * change is done when that index commits. Throws {@link NotLeaderError},
   * {@link LeaderTransferInProgressError}, and the errors of
   * membership.proposeChange: ConfigChangeInProgressError, LeaderNotReadyError,
   * NotCaughtUpError, InvalidConfigChangeError.
   */
  proposeConfigChange(change: ConfigChange): LogIndex {
    this.checkNotInReady('proposeConfigChange');
    const leader = this.requireLeader();
    if (leader.transfer !== null) throw new LeaderTransferInProgressError(leader.transfer.target);
    return membership.proposeChange(this, leader, change);
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

  /**
   * The id a snapshot of the state machine at `index` (not yet compacted)
   * must be stored and sent with: index, term, and the configuration in force
   * there. The runtime writes the snapshot under it, then calls compact(index).
   */
  snapshotMeta(index: LogIndex): SnapshotMeta {
    const meta = this.log.snapshotMetaAt(index);
    if (this.config.plantedBug === 'snapshotLatestConfig') return { ...meta, config: this.log.configuration().config }; // read here only
    return meta;
  }

  // ---- outputs ------------------------------------------------------------

  /**
   * True when ready() has something for the runtime and may be called: not
   * while maxInflightReadies are not yet acknowledged by persisted(), nor while a Ready that
   * installs a snapshot does (the state machine must be restored from it
   * before anything after it is applied).
   */
  hasReady(): boolean {
    if (this.readyBlocked()) return false;
    if (this.role.kind === 'leader' && this.role.replicationDue) return true;
    return this.outNow.length > 0 || this.outAfterPersist.length > 0 || this.readStates.length > 0 ||
      this.readsAborted.length > 0 || this.snapshotChunks.length > 0 || this.snapshotToInstall !== null ||
      this.log.unstableFrom <= this.log.lastIndex() || this.log.applied < this.log.appliableTo() ||
      this.hardStateChanged();
  }

  /** Readies handed out whose persistence is not yet acknowledged. */
  inflightReadies(): number {
    return this.inflight.length;
  }

  /** True when ready() may not be called now: the in-flight bound is reached, or a snapshot install awaits persisted(). */
  private readyBlocked(): boolean {
    const inflight = this.inflight.length;
    return inflight >= this.config.maxInflightReadies || (inflight > 0 && this.inflightSnapshot);
  }


  /** Collects what the runtime must do now (see ready.ts for the contract). */
  ready(): Ready {
    this.checkNotInReady('ready');
    if (this.readyBlocked()) {
      throw new ApiMisuseError(`ready() while ${this.inflight.length} Readies are not yet acknowledged by persisted()${this.inflightSnapshot ? ', one of them a snapshot install' : ''}`);
    }
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
    if (hardState !== null) this.emittedHardState = hardState;
    const r: Ready = {
      seq: this.nextReadySeq++,
      hardState,
      entries: this.log.takeUnstable(),
      snapshot: this.snapshotToInstall,
      snapshotChunks: takeAll(this.snapshotChunks),
      messages,
      persistedMessages,
      committed: this.log.nextCommitted(this.config.maxMessageBytes * 4),
      readStates: takeAll(this.readStates),
      readsAborted: takeAll(this.readsAborted),
      softState: {
        role: this.role.kind, term: this.term, leader: this.leaderId(),
        configuration: this.membership.config, configurationIndex: this.membership.index,
        dirIdConflict: this.dirIdConflict(),
      },
    };
    this.snapshotToInstall = null;
    this.readyInProgress = true;
    return r;
  }

  /**
   * The runtime has taken `r`: sent its `messages`, queued its persistence
   * (in order after the Readies before it), applied its `committed` entries
   * and noted its reads. The core may be driven again (and ready() called
   * again) before `r` is durable; persisted(r) says when it is.
   */
  advance(r: Ready): void {
    if (!this.readyInProgress) throw new ApiMisuseError('advance() without a ready()');
    this.readyInProgress = false;
    this.inflight.push(r);
    this.inflightSnapshot = r.snapshot !== null;
    const applied = r.committed[r.committed.length - 1];
    if (applied !== undefined && applied.index > this.log.applied) this.log.appliedTo(applied.index);
    // Nothing else moved (the log, the commit and the roles are as ready() left them): no afterInput() needed.
    if (this.config.plantedBug === 'countOwnBeforeDurable' && this.markDurable(r)) this.afterInput(); // read here only
  }

  /**
   * What `r` asked to persist (snapshot chunks, snapshot, entries, hard
   * state) is durable, and so is everything the Readies before it asked:
   * acknowledgements arrive in the order the Readies were handed out. Only
   * now does a leader count the entries toward commit, and only now does the
   * runtime send r.persistedMessages (the contract, ready.ts).
   */
  persisted(r: Ready): void {
    this.checkNotInReady('persisted');
    const oldest = this.inflight[0];
    if (oldest !== r) {
      throw new ApiMisuseError(oldest === undefined ? `persisted(${r.seq}) with no Ready in flight` : `persisted(${r.seq}) before persisted(${oldest.seq})`);
    }
    this.inflight.shift();
    if (this.inflight.length === 0) this.inflightSnapshot = false;
    if (r.hardState !== null) this.durableHardState = r.hardState;
    if (this.markDurable(r)) this.afterInput();
  }

  /**
   * r's entries are durable: the log's stable index moves (if they are still
   * the log's), and a leader counts them. True when r had entries.
   */
  private markDurable(r: Ready): boolean {
    const last = r.entries[r.entries.length - 1];
    if (last === undefined) return false;
    // A later Ready may have cut them already (a conflict): then the term no longer matches and nothing moves.
    this.log.stableTo(last.index, last.term);
    if (this.role.kind === 'leader') transitions.onLeaderProgress(this, this.role);
    return true;
  }

  /**
   * After an input: adopt the log's latest configuration, and let a leader
   * whose removal (or demotion) has committed step down.
   */
  private afterInput(): void {
    this.syncConfiguration();
    const role = this.role;
    if (role.kind === 'leader') {
      if (!this.isVoter && this.membership.index <= this.log.commit) transitions.stepDownRemoved(this, role);
      else membership.maybeRecordDirIds(this, role);
    } else {
      transitions.settleReplicaRole(this);
    }
  }

  /**
   * True when this node may vote and campaign: it is a voter of its
   * configuration in force, or that configuration (which demotes or removes
   * it) is not yet committed as far as it knows, and it was a voter of the
   * one before. Until the change commits it may still be needed to elect a
   * leader (dissertation 4.1: a server not in its latest configuration still
   * votes and campaigns until that configuration is committed; its own vote
   * then does not count for itself).
   */
  mayElect(): boolean {
    if (this.isStale()) return false;
    if (this.isVoter || this.config.plantedBug === 'observerCampaigns') return true; // read here only
    const m = this.membership;
    if (m.index <= this.log.commit || m.index <= this.log.snapshot.index) return false;
    return this.log.configurationAt(m.index - 1).config.voters.includes(this.id);
  }

  /**
   * True when this node's data directory was lost or replaced: the
   * configuration in force records another directory id for it
   * (docs/LOST-DISKS.md). It then never campaigns, refuses every vote, and is
   * counted by nobody, but keeps receiving the log.
   */
  isStale(): boolean {
    return !directoryCounts(this, this.id, this.dirId);
  }

  // ---- queries ------------------------------------------------------------

  /**
   * The recorded directory id and this node's own when they differ (its disk
   * was lost or replaced: see {@link isStale}), else null. The runtime should
   * report it (DirectoryIdConflictError) until an operator re-adds the node.
   */
  dirIdConflict(): DirIdConflict | null {
    const recorded = recordedDirId(this.membership.config, this.id);
    const mine = this.dirId ?? null;
    return recorded === undefined || recorded === mine ? null : { recorded, mine };
  }

  /**
   * The configuration in force on this node: the latest in its log (index 0
   * for the bootstrap configuration), and whether that entry is committed.
   */
  configuration(): { readonly index: LogIndex; readonly config: Configuration; readonly committed: boolean } {
    return { index: this.membership.index, config: this.membership.config, committed: this.membership.index <= this.log.commit };
  }

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

  /** The hard state as the runtime last acknowledged it durable (persisted()). */
  persistedHardState(): HardState {
    return this.durableHardState;
  }

  /**
   * Checks the core's own invariants; the simulator calls this after every
   * event. Log entries are checked in the last `tailEntries` (all by default).
   */
  checkInvariants(tailEntries = Infinity): void {
    this.log.checkInvariants(tailEntries);
    assert(this.term >= this.emittedHardState.term && this.emittedHardState.term >= this.durableHardState.term, 'term went backwards');
    if (this.inflight.length > this.config.maxInflightReadies) assert(false, `${this.inflight.length} Readies in flight`);
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
    const bug = this.config.plantedBug;
    if (bug !== 'keepTruncatedConfig' && bug !== 'configBeforeAppend') {
      const logConfig = this.log.configuration();
      if (!sameConfiguration(logConfig.config, this.membership.config)) {
        assert(false, `${this.id} uses a configuration other than the latest in its log (at ${logConfig.index})`);
      }
    }
    if (this.isVoter !== this.membership.config.voters.includes(this.id)) assert(false, `${this.id}: isVoter is stale`);
    if (role.kind === 'leader') {
      const config = this.membership.config;
      for (const pr of role.progress.values()) {
        const voter = config.voters.includes(pr.id);
        const member = voter || config.observers.includes(pr.id);
        if (bug !== 'countRemovedVoter' && (pr.isVoter !== voter || pr.member !== member)) {
          assert(false, `leader ${this.id} tracks ${pr.id} as ${pr.isVoter ? 'voter' : pr.member ? 'observer' : 'non-member'}`);
        }
      }
      for (const id of this.replicas()) if (!role.progress.has(id)) assert(false, `leader ${this.id} does not track member ${id}`);
      if (!this.isVoter && this.membership.index <= this.log.commit) assert(false, `leader ${this.id} leads on after its removal committed`);
    } else if (!this.mayElect() && role.kind !== 'observer') {
      assert(false, `non-voter ${this.id} in role ${role.kind}`);
    } else if (this.mayElect() && role.kind === 'observer') {
      assert(false, `voter ${this.id} in role observer`);
    }
  }

  // ---- internals shared by the modules -------------------------------------

  /**
   * Queues a message. A leader's replication traffic may leave before
   * persisting, once its term is durable (acknowledged by persisted()) (a single voter wins its election
   * in the same step that raised its term, before any ready()).
   */
  send(m: Message): void {
    if (this.role.kind === 'leader' && this.durableHardState.term === this.term) this.outNow.push(m);
    else this.outAfterPersist.push(m);
  }

  /** The voters of the configuration in force, other than this node. */
  otherVoters(): NodeId[] {
    return this.membership.config.voters.filter((v) => v !== this.id);
  }

  /** Every member a leader sends the log to: the other voters and observers of the configuration in force. */
  replicas(): NodeId[] {
    return this.otherVoters().concat(this.membership.config.observers.filter((o) => o !== this.id));
  }

  /**
   * Adopts the latest configuration in the log if the log's configuration
   * entries changed (an append, a truncation, a snapshot); called after every
   * input that can change the log.
   */
  syncConfiguration(): void {
    if (this.log.configVersion === this.configVersionSeen) return;
    this.configVersionSeen = this.log.configVersion;
    const latest = this.log.configuration();
    // Planted bug: a truncation that cut the configuration in force leaves it in force.
    if (this.config.plantedBug === 'keepTruncatedConfig' && latest.index < this.membership.index) return; // read here only
    this.adopt(latest);
  }

  /**
   * Only with the planted bug 'configBeforeAppend' (read here only): takes
   * the configuration of entries that were received but not appended.
   */
  adoptUnlogged(entries: readonly Entry[]): void {
    if (this.config.plantedBug !== 'configBeforeAppend') return;
    for (let i = entries.length - 1; i >= 0; i--) {
      const e = entries[i] as Entry;
      if (e.type === 'config') {
        if (!sameConfiguration(e.config, this.membership.config)) this.adopt({ index: e.index, config: e.config });
        return;
      }
    }
  }

  private adopt(at: ConfigurationAt): void {
    const changed = !sameConfiguration(at.config, this.membership.config);
    this.membership = at;
    this.isVoter = at.config.voters.includes(this.id);
    if (changed) transitions.onConfigurationChanged(this);
  }

  private requireLeader(): Leader {
    if (this.role.kind !== 'leader') throw new NotLeaderError(this.leaderId());
    return this.role;
  }

  private hardStateChanged(): boolean {
    const h = this.emittedHardState;
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
    const elapsed = this.electionElapsedTicks;
    transitions.becomeFollower(this, m.term, leader);
    // A vote request restarts the election timer only if the vote is granted
    // (Raft, Figure 2), not by raising the term: else a candidate that cannot
    // win, with a faster clock, keeps the one that can from ever campaigning.
    if (m.type === 'vote') this.electionElapsedTicks = elapsed;
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
        this.send({ type: 'heartbeatResponse', from: this.id, dirId: this.dirId, to: m.from, term: this.term, readSeq: 0 });
        break;
      case 'vote':
        if (m.preVote) this.send({ type: 'voteResponse', from: this.id, dirId: this.dirId, to: m.from, term: this.term, preVote: true, granted: false });
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
