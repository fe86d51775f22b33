// Linearizable reads with ReadIndex (Raft dissertation 6.4), in both modes.
// A read records the commit index and a new read round; it may be served once
// a majority of voters has echoed that round, proving that this node still
// led after the read arrived, and once the state machine has applied the
// recorded index. Push mode carries the round in heartbeats; pull mode in
// fetch answers, echoed by the followers' next fetch.

import type { RaftNode } from './node.js';
import { counts, majority } from './quorum.js';
import type { Leader } from './roles.js';

/** Registers a read with context `ctx` on the leader. */
export function request(n: RaftNode, leader: Leader, ctx: number): void {
  if (n.log.term(n.log.commit) !== n.term && n.config.plantedBug !== 'readBeforeTermCommit') { // read here only
    // Until an entry of this term commits, the commit index may lag behind
    // what earlier leaders committed: wait for the no-op.
    leader.readsAwaitingCommit.push(ctx);
    return;
  }
  leader.readSeq++;
  leader.pendingReads.push({ ctx, index: n.log.commit, seq: leader.readSeq });
  leader.replicationDue = true;
  confirm(n, leader);
}

/** The commit index moved: reads that waited for this term's first commit may start. */
export function onCommit(n: RaftNode, leader: Leader): void {
  if (leader.readsAwaitingCommit.length === 0 || n.log.term(n.log.commit) !== n.term) return;
  for (const ctx of leader.readsAwaitingCommit.splice(0)) request(n, leader, ctx);
}

/** Releases every read whose round a majority has echoed. */
export function confirm(n: RaftNode, leader: Leader): void {
  if (leader.pendingReads.length === 0) return;
  const newest = leader.pendingReads[leader.pendingReads.length - 1];
  if (newest === undefined) return;
  // Find the newest round acknowledged by a majority of the voters in force
  // (the leader itself only if it is one): sort the echoed rounds.
  const rounds: number[] = n.isVoter && !n.isStale() ? [leader.readSeq] : [];
  for (const pr of leader.progress.values()) if (counts(n, pr)) rounds.push(pr.readSeqAcked);
  rounds.sort((a, b) => b - a);
  const confirmed = rounds[majority(n.membership.config.voters.length) - 1] ?? 0;
  let released = 0;
  for (const r of leader.pendingReads) {
    if (r.seq > confirmed) break;
    n.readStates.push({ ctx: r.ctx, index: r.index });
    released++;
  }
  if (released > 0) leader.pendingReads.splice(0, released);
}

/** Leadership is lost: every waiting read must be answered NotLeader. */
export function abortAll(n: RaftNode, leader: Leader): void {
  for (const r of leader.pendingReads.splice(0)) n.readsAborted.push(r.ctx);
  n.readsAborted.push(...leader.readsAwaitingCommit.splice(0));
}
