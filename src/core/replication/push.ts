// Push replication: classic Raft. The leader tracks each follower's progress
// (probe until the match is found, then replicate with a bounded window of
// in-flight AppendEntries, or send a snapshot when the entries are compacted),
// backs off fast on a mismatch using the follower's conflict hint, and sends
// heartbeats that carry the commit index and the read round.

import type {
  AppendRequest, AppendResponse, HeartbeatRequest, HeartbeatResponse, InstallSnapshotRequest, InstallSnapshotResponse,
} from '../../protocol/messages.js';
import { maybeSendTimeoutNow } from '../election.js';
import type { RaftNode } from '../node.js';
import { counts, hasMajority, noteDirectory } from '../quorum.js';
import * as reads from '../read-index.js';
import type { Leader, Progress } from '../roles.js';
import * as transitions from '../transitions.js';
import { receiveChunk } from './snapshot.js';

// ---- leader side --------------------------------------------------------------

/** Leader's clock: heartbeats, check-quorum, snapshot chunk resends. */
export function tickLeader(n: RaftNode, leader: Leader): void {
  leader.heartbeatElapsedTicks++;
  leader.checkQuorumElapsedTicks++;
  if (leader.checkQuorumElapsedTicks >= n.config.electionTimeoutMinTicks) {
    leader.checkQuorumElapsedTicks = 0;
    if (n.config.checkQuorum) {
      const active = [n.id];
      for (const pr of leader.progress.values()) {
        if (pr.recentActive && counts(n, pr)) active.push(pr.id);
        pr.recentActive = false;
      }
      if (!hasMajority(n, active)) {
        transitions.becomeFollower(n, n.term, null);
        return;
      }
    }
  }
  if (leader.heartbeatElapsedTicks >= n.config.heartbeatIntervalTicks) {
    leader.heartbeatElapsedTicks = 0;
    for (const pr of leader.progress.values()) sendHeartbeat(n, leader, pr);
  }
  for (const pr of leader.progress.values()) {
    const out = pr.outgoingSnapshot;
    if (out !== null && n.now - out.sentTick >= n.config.electionTimeoutMinTicks) sendSnapshotChunk(n, pr);
  }
}

/** Sends new entries (or a moved commit index) to every member that can take them. */
export function broadcast(n: RaftNode, leader: Leader): void {
  for (const pr of leader.progress.values()) {
    if (pr.next <= n.log.lastIndex()) sendAppend(n, pr);
    else if (pr.state === 'replicate' && pr.commitSent < n.log.commit) sendAppend(n, pr);
  }
  reads.confirm(n, leader);
  if (leader.pendingReads.length > 0) {
    // A new read round: ask every voter to echo it.
    for (const pr of leader.progress.values()) if (pr.isVoter && pr.readSeqAcked < leader.readSeq) sendHeartbeat(n, leader, pr);
  }
}

function sendHeartbeat(n: RaftNode, leader: Leader, pr: Progress): void {
  const commit = n.config.plantedBug === 'commitBeyondMatch' ? n.log.commit : Math.min(pr.match, n.log.commit);
  n.send({ type: 'heartbeat', from: n.id, dirId: n.dirId, to: pr.id, term: n.term, commit, readSeq: leader.readSeq });
}

/**
 * Sends AppendEntries to one member as far as its state allows: one probe at
 * a time, or batches until the in-flight window is full.
 */
function sendAppend(n: RaftNode, pr: Progress): void {
  for (;;) {
    if (pr.state === 'snapshot') return;
    if (pr.state === 'probe' && pr.probeSent) return;
    if (pr.state === 'replicate' && pr.inflight.length >= n.config.maxInflightMessages) return;
    const prevIndex = pr.next - 1;
    const prevTerm = n.log.term(prevIndex);
    if (prevTerm === undefined) {
      startSnapshot(n, pr);
      return;
    }
    const entries = pr.next <= n.log.lastIndex() ? n.log.slice(pr.next, n.log.lastIndex() + 1, n.config.maxMessageBytes) : [];
    n.send({ type: 'append', from: n.id, dirId: n.dirId, to: pr.id, term: n.term, prevIndex, prevTerm, entries, commit: n.log.commit });
    pr.commitSent = n.log.commit;
    const last = entries[entries.length - 1];
    if (pr.state === 'probe') {
      pr.probeSent = true;
      return;
    }
    if (last === undefined) return;
    pr.next = last.index + 1;
    pr.inflight.push(last.index);
    if (pr.next > n.log.lastIndex()) return;
  }
}

function startSnapshot(n: RaftNode, pr: Progress): void {
  pr.state = 'snapshot';
  pr.inflight = [];
  pr.probeSent = false;
  pr.outgoingSnapshot = { meta: n.log.snapshot, offset: 0, sentTick: n.now };
  sendSnapshotChunk(n, pr);
}

function sendSnapshotChunk(n: RaftNode, pr: Progress): void {
  const out = pr.outgoingSnapshot;
  if (out === null) return;
  out.sentTick = n.now;
  const chunk = n.config.snapshotReader?.(out.meta, out.offset, n.config.snapshotChunkBytes);
  if (chunk === undefined) {
    // The snapshot is gone (a newer one replaced it): start over with the current one.
    if (out.meta.index !== n.log.snapshot.index) pr.outgoingSnapshot = { meta: n.log.snapshot, offset: 0, sentTick: n.now };
    n.stats.messagesDropped++;
    return;
  }
  n.send({
    type: 'installSnapshot', from: n.id, dirId: n.dirId, to: pr.id, term: n.term, snapshot: out.meta, offset: out.offset,
    data: chunk.data, done: chunk.done,
  });
}

/** An answer to AppendEntries: move the progress forward or back off. */
export function onAppendResponse(n: RaftNode, m: AppendResponse): void {
  const leader = n.role;
  if (leader.kind !== 'leader') return;
  const pr = leader.progress.get(m.from);
  if (pr === undefined) return;
  noteDirectory(n, pr, m.dirId);
  pr.recentActive = true;
  if (!m.success) {
    if (pr.state === 'snapshot') return;
    // Stale rejections (of messages sent before the progress moved) are ignored.
    if (pr.state === 'replicate' ? m.rejectedIndex <= pr.match : m.rejectedIndex !== pr.next - 1) return;
    let probe = m.hintIndex;
    if (m.hintTerm > 0) probe = n.log.findConflictByTerm(m.hintIndex, m.hintTerm).index;
    pr.next = Math.max(Math.min(m.rejectedIndex, probe + 1), pr.match + 1);
    toProbe(pr);
    sendAppend(n, pr);
    return;
  }
  if (pr.state === 'snapshot') {
    // A late answer from before the snapshot began: note the match, keep sending the snapshot.
    if (m.matchIndex > pr.match) pr.match = m.matchIndex;
    if (pr.next <= pr.match) pr.next = pr.match + 1;
    return;
  }
  if (m.matchIndex > pr.match) {
    pr.match = m.matchIndex;
    while (pr.inflight.length > 0 && (pr.inflight[0] as number) <= pr.match) pr.inflight.shift();
    transitions.onLeaderProgress(n, leader);
    maybeSendTimeoutNow(n, leader);
  }
  if (pr.next <= pr.match) pr.next = pr.match + 1;
  if (pr.state === 'probe') {
    pr.state = 'replicate';
    pr.probeSent = false;
    pr.inflight = [];
  }
  if (pr.next <= n.log.lastIndex()) sendAppend(n, pr);
}

/** A heartbeat answer: confirms reads, unblocks a probe, restarts a stalled window. */
export function onHeartbeatResponse(n: RaftNode, m: HeartbeatResponse): void {
  const leader = n.role;
  if (leader.kind !== 'leader') return;
  const pr = leader.progress.get(m.from);
  if (pr === undefined) return;
  noteDirectory(n, pr, m.dirId);
  pr.recentActive = true;
  if (m.readSeq > pr.readSeqAcked) {
    pr.readSeqAcked = m.readSeq;
    reads.confirm(n, leader);
  }
  if (pr.state === 'snapshot') return;
  if (pr.state === 'probe') {
    pr.probeSent = false;
  } else if (pr.match === pr.matchAtLastHeartbeat && pr.inflight.length > 0) {
    // Nothing acknowledged for a whole heartbeat round while entries are out:
    // they were lost. Probe again from the known match.
    pr.next = pr.match + 1;
    toProbe(pr);
  }
  pr.matchAtLastHeartbeat = pr.match;
  if (pr.match < n.log.lastIndex()) sendAppend(n, pr);
}

/** An answer to a snapshot chunk: send the next, or resume replication once installed. */
export function onInstallSnapshotResponse(n: RaftNode, m: InstallSnapshotResponse): void {
  const leader = n.role;
  if (leader.kind !== 'leader') return;
  const pr = leader.progress.get(m.from);
  if (pr === undefined) return;
  noteDirectory(n, pr, m.dirId);
  pr.recentActive = true;
  const out = pr.outgoingSnapshot;
  if (pr.state !== 'snapshot' || out === null || out.meta.index !== m.snapshot.index || out.meta.term !== m.snapshot.term) return;
  if (m.installed) {
    pr.outgoingSnapshot = null;
    if (m.snapshot.index > pr.match) pr.match = m.snapshot.index;
    pr.next = pr.match + 1;
    toProbe(pr);
    transitions.onLeaderProgress(n, leader);
    maybeSendTimeoutNow(n, leader);
    sendAppend(n, pr);
    return;
  }
  out.offset = m.nextOffset;
  sendSnapshotChunk(n, pr);
}

function toProbe(pr: Progress): void {
  pr.state = 'probe';
  pr.probeSent = false;
  pr.inflight = [];
}

// ---- follower and observer side ------------------------------------------------

/** AppendEntries from the leader: check the previous entry, append, learn the commit. */
export function onAppend(n: RaftNode, m: AppendRequest): void {
  const role = transitions.followLeader(n, m.from);
  if (role === null) return;
  const bug = n.config.plantedBug;
  let prevIndex = m.prevIndex;
  let prevTerm = m.prevTerm;
  let entries = m.entries;
  const reply = (success: boolean, matchIndex: number, hint: { index: number; term: number }): void =>
    n.send({
      type: 'appendResponse', from: n.id, dirId: n.dirId, to: m.from, term: n.term, success, matchIndex,
      rejectedIndex: m.prevIndex, hintIndex: hint.index, hintTerm: hint.term,
    });
  if (prevIndex < n.log.commit) {
    // The start overlaps what is committed here, which matches any leader's log.
    const skip = n.log.commit - prevIndex;
    if (skip >= entries.length) {
      reply(true, n.log.commit, { index: 0, term: 0 });
      return;
    }
    entries = entries.slice(skip);
    prevIndex = n.log.commit;
    prevTerm = n.log.term(prevIndex) as number;
  }
  const matches = n.log.matchTerm(prevIndex, prevTerm) || (bug === 'skipPrevLogCheck' && prevIndex <= n.log.lastIndex());
  if (!matches) {
    n.adoptUnlogged(entries); // planted bug only
    reply(false, 0, n.log.findConflictByTerm(Math.min(prevIndex, n.log.lastIndex()), prevTerm));
    return;
  }
  const lastNew = n.log.appendFromLeader(entries, prevIndex);
  n.log.commitTo(Math.min(m.commit, bug === 'commitBeyondMatch' ? n.log.lastIndex() : lastNew));
  reply(true, lastNew, { index: 0, term: 0 });
}

/** A heartbeat: the leader lives; its commit index (capped at our match) applies here. */
export function onHeartbeat(n: RaftNode, m: HeartbeatRequest): void {
  const role = transitions.followLeader(n, m.from);
  if (role === null) return;
  n.log.commitTo(Math.min(m.commit, n.log.lastIndex()));
  n.send({ type: 'heartbeatResponse', from: n.id, dirId: n.dirId, to: m.from, term: n.term, readSeq: m.readSeq });
}

/** A snapshot chunk from the leader. */
export function onInstallSnapshot(n: RaftNode, m: InstallSnapshotRequest): void {
  const role = transitions.followLeader(n, m.from);
  if (role === null) return;
  const outcome = receiveChunk(n, role, m.snapshot, m.offset, m.data, m.done);
  n.send({
    type: 'installSnapshotResponse', from: n.id, dirId: n.dirId, to: m.from, term: n.term, snapshot: m.snapshot,
    nextOffset: outcome.nextOffset, installed: outcome.installed,
  });
}
