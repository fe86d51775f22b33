// Quorum arithmetic: who counts, and where the commit index may move. One
// commit rule for both modes: the highest index durable on a majority of the
// voters, accepted only if its entry belongs to the leader's own term
// (Raft 5.4.2). Observers are never counted. The voters are those of the
// configuration in force on the leader (docs/MEMBERSHIP.md). A voter counts
// only through its recorded data directory (docs/LOST-DISKS.md): when the
// configuration records a directory id for it, its votes, acknowledgements
// and read confirmations count only from messages that carry that id.

import { recordedDirId } from '../protocol/entry.js';
import type { LogIndex, NodeId } from '../protocol/ids.js';
import type { RaftNode } from './node.js';
import type { Leader, Progress } from './roles.js';

/**
 * True when a message from `id` carrying directory id `dirId` may count in a
 * quorum of this node's configuration in force: it records no directory id
 * for `id`, or exactly `dirId` (docs/LOST-DISKS.md). A node applies it to
 * itself too: when its own does not count, its disk was lost (RaftNode.isStale).
 */
export function directoryCounts(n: RaftNode, id: NodeId, dirId: number | undefined): boolean {
  if (n.config.plantedBug === 'wipedNodeVotes') return true; // read here only
  const recorded = recordedDirId(n.membership.config, id);
  return recorded === undefined || recorded === dirId;
}

/**
 * True when the leader counts `pr` in its quorums: a voter whose latest
 * message came from its recorded directory, or that has sent none yet in this
 * term (then it has acknowledged nothing, and only the grace periods of
 * check-quorum and pull mode's resignation count it).
 */
export function counts(n: RaftNode, pr: Progress): boolean {
  return pr.isVoter && (pr.dirId === undefined || directoryCounts(n, pr.id, pr.dirId ?? undefined));
}

/**
 * The leader heard from `pr` through a message carrying `dirId`. A directory
 * other than the one it heard from before is a new replica (the old disk was
 * lost or replaced): what the old one acknowledged (match, read rounds) is
 * forgotten, and replication starts over by probing.
 */
export function noteDirectory(n: RaftNode, pr: Progress, dirId: number | undefined): void {
  const from = dirId ?? null;
  if (pr.dirId === from) return;
  const known = pr.dirId !== undefined;
  pr.dirId = from;
  if (!known) return;
  pr.match = 0;
  pr.next = n.log.lastIndex() + 1;
  pr.state = 'probe';
  pr.probeSent = false;
  pr.inflight = [];
  pr.commitSent = 0;
  pr.matchAtLastHeartbeat = 0;
  pr.outgoingSnapshot = null;
  pr.readSeqAcked = 0;
}

/** The number of voters that make a majority. */
export function majority(voterCount: number): number {
  return Math.floor(voterCount / 2) + 1;
}

/** The index durable on a majority of the given positions. */
export function quorumIndex(positions: LogIndex[], voterCount: number): LogIndex {
  positions.sort((a, b) => b - a);
  return positions[majority(voterCount) - 1] ?? 0;
}

/**
 * Moves the leader's commit index if the majority position allows it; true if
 * it moved. The voters are those of the leader's configuration in force (its
 * latest, committed or not); a leader that is not one of them does not count
 * itself.
 */
export function maybeCommit(n: RaftNode, leader: Leader): boolean {
  const bug = n.config.plantedBug;
  const positions: LogIndex[] = n.isVoter && !n.isStale() ? [n.log.stable] : [];
  let counted = positions.length;
  for (const pr of leader.progress.values()) {
    if (counts(n, pr) || (bug === 'countObserverTowardCommit' && pr.member)) {
      positions.push(pr.match);
      counted++;
    }
  }
  const candidate = quorumIndex(positions, bug === 'countObserverTowardCommit' ? counted : n.membership.config.voters.length);
  if (candidate <= n.log.commit) return false;
  if (n.log.term(candidate) !== n.term && bug !== 'commitOldTermByCounting') return false;
  return n.log.commitTo(candidate);
}

/** True when the given nodes include a majority of the voters of the configuration in force. */
export function hasMajority(n: RaftNode, nodes: Iterable<NodeId>): boolean {
  const voters = n.membership.config.voters;
  let count = 0;
  for (const v of nodes) if (voters.includes(v)) count++;
  return count >= majority(voters.length);
}
