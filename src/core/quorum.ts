// Quorum arithmetic: who counts, and where the commit index may move. One
// commit rule for both modes: the highest index durable on a majority of the
// voters, accepted only if its entry belongs to the leader's own term
// (Raft 5.4.2). Observers are never counted. The voters are those of the
// configuration in force on the leader (docs/MEMBERSHIP.md).

import type { LogIndex, NodeId } from '../protocol/ids.js';
import type { RaftNode } from './node.js';
import type { Leader } from './roles.js';

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
  const positions: LogIndex[] = n.isVoter ? [n.log.stable] : [];
  let counted = positions.length;
  for (const pr of leader.progress.values()) {
    if (pr.isVoter || (bug === 'countObserverTowardCommit' && pr.member)) {
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
