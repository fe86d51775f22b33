// Election, shared by both replication modes: pre-vote, RequestVote with the
// up-to-date check (Raft 5.4.1), the leader lease that check-quorum buys, and
// leader transfer (the leader brings the target up to date, then tells it to
// campaign at once with TimeoutNow).

import type { NodeId } from '../protocol/ids.js';
import type { TimeoutNow, VoteRequest, VoteResponse } from '../protocol/messages.js';
import { TransferTargetError } from './errors.js';
import type { RaftNode } from './node.js';
import { directoryCounts, majority } from './quorum.js';
import type { Leader } from './roles.js';
import * as transitions from './transitions.js';

/**
 * True while this node believes a leader is alive: it is the leader, or it
 * heard from one within the minimum election timeout. Vote requests from
 * higher terms are then ignored, so that a node that was cut off cannot
 * depose a healthy leader when it returns.
 */
export function inLeaderLease(n: RaftNode): boolean {
  // The lease is sound only where a leader that loses its majority steps
  // down: always in pull mode, with check-quorum in push mode (as in etcd).
  if (n.config.replication === 'push' && !n.config.checkQuorum) return false;
  if (n.role.kind === 'leader') return true;
  const leader = n.leaderId();
  return leader !== null && n.electionElapsedTicks < n.config.electionTimeoutMinTicks;
}

/** Starts a campaign: a pre-vote first unless disabled or this is a transfer. */
export function startElection(n: RaftNode, opts: { transfer: boolean }): void {
  if (!n.mayElect() || n.role.kind === 'leader') return;
  if (n.config.preVote && !opts.transfer) {
    transitions.becomePreCandidate(n);
    requestVotes(n, true, false);
  } else {
    transitions.becomeCandidate(n);
    requestVotes(n, false, opts.transfer);
  }
}

function requestVotes(n: RaftNode, preVote: boolean, transfer: boolean): void {
  if (tally(n)) return;
  const term = preVote ? n.term + 1 : n.term;
  for (const to of n.otherVoters()) {
    n.send({
      type: 'vote', from: n.id, dirId: n.dirId, to, term, preVote, transfer,
      lastIndex: n.log.lastIndex(), lastTerm: n.log.lastTerm(),
    });
  }
}

/** Grants or rejects a (pre-)vote. The term rules in node.ts have already run. */
export function onVoteRequest(n: RaftNode, m: VoteRequest): void {
  const bug = n.config.plantedBug;
  const leaderKnown = n.leaderId() !== null;
  // Any node answers, voter or not (etcd raft does the same since its PR
  // #10998): a node may have been promoted by an entry it has not received
  // yet, and the only candidate that can win may need its vote
  // (docs/MEMBERSHIP.md). A candidate counts only the votes of the voters of
  // its own configuration, and nobody asks a node it does not count.
  const canVote = (
    n.vote === m.from ||
    (n.vote === null && !leaderKnown) ||
    (m.preVote && m.term > n.term) ||
    (bug === 'doubleVote' && !m.preVote && n.role.kind === 'follower'));
  const upToDate = m.lastTerm > n.log.lastTerm() ||
    (m.lastTerm === n.log.lastTerm() && m.lastIndex >= n.log.lastIndex()) ||
    bug === 'skipUpToDateCheck';
  // A node whose configuration records another data directory for it lost
  // its disk, and with it the votes it cast: it must not vote again until it
  // is re-added (docs/LOST-DISKS.md).
  const granted = canVote && upToDate && !n.isStale();
  if (granted && !m.preVote) {
    n.vote = m.from;
    transitions.resetElectionTimer(n);
  }
  n.send({
    type: 'voteResponse', from: n.id, dirId: n.dirId, to: m.from, term: granted && m.preVote ? m.term : n.term,
    preVote: m.preVote, granted,
  });
}

/** Counts a vote; wins or loses the (pre-)election when a majority has spoken. */
export function onVoteResponse(n: RaftNode, m: VoteResponse): void {
  const role = n.role;
  // A vote from a directory other than the one recorded for its sender does not count (docs/LOST-DISKS.md).
  if (!directoryCounts(n, m.from, m.dirId)) return;
  if (role.kind === 'preCandidate' && m.preVote) {
    role.votes.set(m.from, m.granted);
  } else if (role.kind === 'candidate' && !m.preVote) {
    role.votes.set(m.from, m.granted);
  } else {
    return;
  }
  tally(n);
}

/** Moves on if the votes decide the election. True when it was won. */
function tally(n: RaftNode): boolean {
  const role = n.role;
  if (role.kind !== 'preCandidate' && role.kind !== 'candidate') return false;
  // The voters of this node's configuration in force (its log cannot change while it campaigns).
  const voters = n.membership.config.voters;
  let granted = 0;
  let rejected = 0;
  for (const [id, g] of role.votes) {
    if (!voters.includes(id)) continue;
    if (g) granted++;
    else rejected++;
  }
  const need = majority(voters.length);
  if (granted >= need) {
    if (role.kind === 'preCandidate') {
      transitions.becomeCandidate(n);
      requestVotes(n, false, false);
    } else {
      transitions.becomeLeader(n);
    }
    return true;
  }
  if (rejected >= need) transitions.becomeFollower(n, n.term, null);
  return false;
}

/** The leader asked this node to campaign at once (leader transfer). */
export function onTimeoutNow(n: RaftNode, _m: TimeoutNow): void {
  if (n.role.kind === 'leader' || !n.mayElect()) return;
  startElection(n, { transfer: true });
}

/** Begins a leader transfer to `target` (a voter other than this node). */
export function beginTransfer(n: RaftNode, leader: Leader, target: NodeId): void {
  if (target === n.id) return;
  const pr = leader.progress.get(target);
  if (pr === undefined || !pr.isVoter) throw new TransferTargetError(target);
  leader.transfer = { target, elapsedTicks: 0, timeoutNowSent: false };
  maybeSendTimeoutNow(n, leader);
  leader.replicationDue = true;
}

/** Sends TimeoutNow once the transfer target has the whole log. */
export function maybeSendTimeoutNow(n: RaftNode, leader: Leader): void {
  const t = leader.transfer;
  if (t === null || t.timeoutNowSent) return;
  const pr = leader.progress.get(t.target);
  if (pr !== undefined && pr.match === n.log.lastIndex()) {
    t.timeoutNowSent = true;
    n.send({ type: 'timeoutNow', from: n.id, dirId: n.dirId, to: t.target, term: n.term });
  }
}

/** Gives up a transfer that has not finished within an election timeout. */
export function tickTransfer(n: RaftNode, leader: Leader): void {
  const t = leader.transfer;
  if (t === null) return;
  t.elapsedTicks++;
  if (t.elapsedTicks >= n.config.electionTimeoutMinTicks) leader.transfer = null;
}
