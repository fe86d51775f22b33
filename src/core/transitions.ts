// Every role change happens here, and only here. The legal transitions:
//
//   follower     -> preCandidate   election timeout (pre-vote on)
//   follower     -> candidate      election timeout (pre-vote off), TimeoutNow
//   preCandidate -> candidate      pre-votes from a majority
//   preCandidate -> follower       pre-vote lost, or a leader / higher term appears
//   candidate    -> leader         votes from a majority
//   candidate    -> follower       a leader or a higher term appears, or the vote is lost
//   leader       -> follower       a higher term appears; check-quorum (push) or no
//                                  fetches from a majority (pull); transfer done
//   any          -> follower       a higher term (term := m.term, vote := none)
//   observer     -> observer       a new term or leader
//   follower     -> observer       it may no longer elect (RaftNode.mayElect): the configuration in
//                                  its log does not list it as a voter, and is committed (or it was
//                                  not a voter of the one before either)
//   (pre)candidate -> observer     (the same, defensively)
//   observer     -> follower       it may elect again (a promotion; a truncation that cut its demotion)
//   leader       -> observer       its own removal or demotion has committed (it led until then
//                                  without counting itself); it hands over with TimeoutNow
//
// A role change never lowers the term, and sets the vote only on becoming a
// candidate (for itself); election.ts sets it when granting a vote.

import { entryBytes, type Entry } from '../protocol/entry.js';
import type { LogIndex, NodeId, Term } from '../protocol/ids.js';
import { assert } from '../util/assert.js';
import type { RaftNode } from './node.js';
import { maybeCommit } from './quorum.js';
import * as reads from './read-index.js';
import type { FetchState, Follower, Leader, Observer, Progress, Role } from './roles.js';

/** The role a node starts (or restarts) in. */
export function initialRole(n: RaftNode): Role {
  return n.mayElect()
    ? { kind: 'follower', leader: null, incomingSnapshot: null, fetch: newFetchState() }
    : { kind: 'observer', leader: null, incomingSnapshot: null, fetch: newFetchState() };
}

function newFetchState(): FetchState {
  return { inflightSinceTick: null, discoveryCursor: 0, readSeqSeen: 0, claimed: null };
}

/**
 * Accepts `leader` as the leader of the current term (a message from it has
 * arrived): a (pre-)candidate steps back, a follower notes the leader, and
 * the election timer restarts. Returns the replica role, or null if this
 * node itself leads (two leaders in one term cannot happen; the message is dropped).
 */
export function followLeader(n: RaftNode, leader: NodeId): Follower | Observer | null {
  const role = n.role;
  if (role.kind === 'leader') {
    n.stats.messagesDropped++;
    return null;
  }
  if (role.kind === 'follower' || role.kind === 'observer') {
    if (role.leader !== leader) {
      role.leader = leader;
      role.fetch.inflightSinceTick = null;
      role.fetch.readSeqSeen = 0;
      role.fetch.claimed = null;
    }
  } else {
    becomeFollower(n, n.term, leader);
  }
  n.electionElapsedTicks = 0;
  return n.role as Follower | Observer;
}

/** Restarts the election (pull: fetch) timer with a fresh randomized timeout. */
export function resetElectionTimer(n: RaftNode): void {
  n.electionElapsedTicks = 0;
  n.electionTimeoutTicks = n.config.random.int(n.config.electionTimeoutMinTicks, n.config.electionTimeoutMaxTicks);
}

/**
 * Follows `leader` (or nobody yet) in `term`. Raising the term clears the
 * vote. Observers stay observers.
 */
export function becomeFollower(n: RaftNode, term: Term, leader: NodeId | null): void {
  assert(term >= n.term, () => `${n.id}: term would go back from ${n.term} to ${term}`);
  const termChanged = term > n.term;
  if (termChanged) {
    n.term = term;
    n.vote = null;
  }
  leaveRole(n);
  const prev = n.role;
  const keep = (prev.kind === 'follower' || prev.kind === 'observer') ? prev : null;
  const fetch = keep?.fetch ?? newFetchState();
  if (termChanged || keep?.leader !== leader) {
    // Read rounds and fetch answers belong to one leader in one term.
    fetch.inflightSinceTick = null;
    fetch.readSeqSeen = 0;
    fetch.claimed = null;
  }
  n.role = n.mayElect()
    ? { kind: 'follower', leader, incomingSnapshot: keep?.incomingSnapshot ?? null, fetch }
    : { kind: 'observer', leader, incomingSnapshot: keep?.incomingSnapshot ?? null, fetch };
  resetElectionTimer(n);
}

/** Starts a pre-vote: asks for votes for term + 1 without raising the term. */
export function becomePreCandidate(n: RaftNode): void {
  assert(n.mayElect(), () => `observer ${n.id} cannot campaign`);
  assert(n.role.kind !== 'leader', () => `leader ${n.id} cannot pre-campaign`);
  leaveRole(n);
  n.role = { kind: 'preCandidate', votes: new Map([[n.id, true]]) };
  resetElectionTimer(n);
}

/** Starts an election: raises the term and votes for itself. */
export function becomeCandidate(n: RaftNode): void {
  assert(n.mayElect(), () => `observer ${n.id} cannot campaign`);
  assert(n.role.kind !== 'leader', () => `leader ${n.id} cannot campaign`);
  leaveRole(n);
  n.term += 1;
  n.vote = n.id;
  n.role = { kind: 'candidate', votes: new Map([[n.id, true]]) };
  n.stats.electionsStarted++;
  resetElectionTimer(n);
}

/**
 * Takes the lead in the current term: starts tracking every other member and
 * appends a no-op so that an entry of this term can commit (which also lets
 * earlier entries commit, Raft 5.4.2, and makes reads safe).
 */
export function becomeLeader(n: RaftNode): void {
  assert(n.role.kind === 'candidate', () => `${n.id} becomes leader from ${n.role.kind}`);
  assert(n.vote === n.id, 'a leader voted for itself');
  const next = n.log.lastIndex() + 1;
  const progress = new Map<NodeId, Progress>();
  const voters = n.membership.config.voters;
  for (const id of n.replicas()) progress.set(id, newProgress(n, id, voters.includes(id), true, next));
  const leader: Leader = {
    kind: 'leader', progress, replicationDue: true, uncommittedBytes: 0, heartbeatElapsedTicks: 0, checkQuorumElapsedTicks: 0,
    readSeq: 0, pendingReads: [], readsAwaitingCommit: [], transfer: null,
  };
  n.role = leader;
  n.stats.leadersElected++;
  const noop: Entry = { index: next, term: n.term, type: 'noop', data: new Uint8Array(0) };
  n.log.append([noop]);
  for (let i = n.log.commit + 1; i <= noop.index; i++) leader.uncommittedBytes += entryBytes(n.log.entry(i) as Entry);
  if (n.config.replication === 'pull') {
    for (const id of n.replicas()) n.send({ type: 'beginQuorumEpoch', from: n.id, dirId: n.dirId, to: id, term: n.term });
  }
}

/** A leader's fresh record of a member (or, in pull mode, of a fetcher that is not one). */
export function newProgress(n: RaftNode, id: NodeId, isVoter: boolean, member: boolean, next: LogIndex): Progress {
  return {
    id, isVoter, member, match: 0, next, state: 'probe', probeSent: false, inflight: [],
    commitSent: 0, matchAtLastHeartbeat: 0, outgoingSnapshot: null, recentActive: true, lastFetchTick: n.now,
    fetchedThisTerm: false, parked: null, readSeqAcked: 0, dirId: undefined,
  };
}

/**
 * Called when the leader learns that more of its log is durable somewhere
 * (its own disk or a member's): moves the commit index, then lets waiting
 * reads and followers know. (A leader that is not a voter of its own
 * configuration steps down once that configuration has committed: the node
 * checks after each input, so that no handler runs on as leader after it.)
 */
export function onLeaderProgress(n: RaftNode, leader: Leader): void {
  const before = n.log.commit;
  if (maybeCommit(n, leader)) {
    for (let i = before + 1; i <= n.log.commit; i++) leader.uncommittedBytes -= entryBytes(n.log.entry(i) as Entry);
    leader.replicationDue = true;
    reads.onCommit(n, leader);
  }
}

/**
 * The leader's removal (or demotion) has committed: it stops leading and
 * campaigning, after telling the most up-to-date voter to campaign at once
 * (TimeoutNow) so that the cluster does not wait an election timeout.
 */
export function stepDownRemoved(n: RaftNode, leader: Leader): void {
  let best: Progress | null = null;
  for (const pr of leader.progress.values()) {
    if (pr.isVoter && pr.match === n.log.lastIndex() && (best === null || pr.match > best.match)) best = pr;
  }
  if (best !== null) n.send({ type: 'timeoutNow', from: n.id, dirId: n.dirId, to: best.id, term: n.term });
  becomeFollower(n, n.term, null);
}

/**
 * The configuration in force has changed (n.membership and n.isVoter are
 * already updated): a replica takes the role its membership implies; a
 * leader tracks the new members and stops tracking (push) or demotes to
 * non-member (pull) the removed ones.
 */
export function onConfigurationChanged(n: RaftNode): void {
  const role = n.role;
  switch (role.kind) {
    case 'leader': {
      const config = n.membership.config;
      const next = n.log.lastIndex() + 1;
      for (const id of n.replicas()) {
        const pr = role.progress.get(id);
        if (pr === undefined || !pr.member) {
          // A fetcher outside the configuration (pull) that is added starts afresh: what it acknowledged, and the
          // directory it fetched from, belong to a replica that was not a member (perhaps a lost disk's, long gone),
          // and must neither count nor be recorded for the new member (docs/LOST-DISKS.md).
          role.progress.set(id, newProgress(n, id, config.voters.includes(id), true, next));
        } else {
          pr.isVoter = config.voters.includes(id);
          pr.member = true;
        }
      }
      for (const pr of role.progress.values()) {
        if (pr.member && pr.id !== n.id && !config.voters.includes(pr.id) && !config.observers.includes(pr.id)) {
          if (n.config.plantedBug === 'countRemovedVoter' && pr.isVoter) continue; // read here only
          pr.member = false;
          pr.isVoter = false;
          if (n.config.replication === 'push') role.progress.delete(pr.id);
        }
      }
      if (role.transfer !== null && !(role.progress.get(role.transfer.target)?.isVoter ?? false)) role.transfer = null;
      break;
    }
    case 'follower':
    case 'observer':
    case 'preCandidate':
    case 'candidate':
      settleReplicaRole(n);
      break;
    default: {
      const never: never = role;
      return never;
    }
  }
}

/**
 * Gives a non-leader the role its membership implies (RaftNode.mayElect):
 * a follower or (pre)candidate that may no longer elect becomes an observer;
 * an observer that may becomes a follower. Called after every input.
 */
export function settleReplicaRole(n: RaftNode): void {
  const role = n.role;
  const may = n.mayElect();
  switch (role.kind) {
    case 'follower':
      if (!may) n.role = { kind: 'observer', leader: role.leader, incomingSnapshot: role.incomingSnapshot, fetch: role.fetch };
      break;
    case 'observer':
      if (may) {
        n.role = { kind: 'follower', leader: role.leader, incomingSnapshot: role.incomingSnapshot, fetch: role.fetch };
        resetElectionTimer(n);
      }
      break;
    case 'preCandidate':
    case 'candidate':
      if (!may) becomeFollower(n, n.term, null);
      break;
    case 'leader':
      break;
    default: {
      const never: never = role;
      return never;
    }
  }
}

/** Cleans up the role being left: a leader's parked fetches and reads. */
function leaveRole(n: RaftNode): void {
  const role = n.role;
  if (role.kind !== 'leader') return;
  for (const pr of role.progress.values()) {
    if (pr.parked !== null) {
      n.send({
        type: 'fetchResponse', from: n.id, dirId: n.dirId, to: pr.id, term: n.term, fetchOffset: pr.parked.request.fetchOffset,
        lastFetchedTerm: pr.parked.request.lastFetchedTerm,
        result: { kind: 'notLeader', leader: null }, readSeq: 0,
      });
      pr.parked = null;
    }
  }
  reads.abortAll(n, role);
}
