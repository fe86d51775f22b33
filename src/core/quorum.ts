// Quorum arithmetic: who counts, and where the commit index may move. One
// commit rule for both modes: the highest index durable on a majority of the
// voters, accepted only if its entry belongs to the leader's own term
// (Raft 5.4.2). Observers are never counted.

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

/** Moves the leader's commit index if the majority position allows it; true if it moved. */
export function maybeCommit(n: RaftNode, leader: Leader): boolean {
  const bug = n.config.plantedBug;
  const positions: LogIndex[] = [n.log.stable];
  let counted = 1;
  for (const pr of leader.progress.values()) {
    if (pr.isVoter || bug === 'countObserverTowardCommit') {
      positions.push(pr.match);
      counted++;
    }
  }
  const candidate = quorumIndex(positions, bug === 'countObserverTowardCommit' ? counted : n.config.voters.length);
  if (candidate <= n.log.commit) return false;
  if (n.log.term(candidate) !== n.term && bug !== 'commitOldTermByCounting') return false;
  return n.log.commitTo(candidate);
}

/** True when the given voters (this node included if it votes) form a majority. */
export function hasMajority(n: RaftNode, voters: Iterable<NodeId>): boolean {
  let count = 0;
  for (const v of voters) if (n.config.voters.includes(v)) count++;
  return count >= majority(n.config.voters.length);
}
