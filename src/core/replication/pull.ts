// Pull replication: Kafka's KRaft. Followers and observers Fetch from the
// leader; a valid fetch acknowledges every entry before its offset, so the
// leader learns each member's progress from the fetches themselves. With
// nothing to send, the leader parks a fetch until new entries arrive, the
// commit index moves, a read round needs echoing, or maxWait runs out. There
// are no heartbeats: a voter that completes no fetch for an election timeout
// campaigns, and a leader that hears no fetches from a majority for 1.5 x the
// minimum election timeout steps down. Nodes outside the configuration may
// fetch too (as Kafka's brokers do): the leader tracks them as non-members,
// never counts them, never announces itself to them, and forgets them once
// they have been silent for two maximum election timeouts.

import type {
  BeginQuorumEpoch, FetchRequest, FetchResponse, FetchResult, FetchSnapshotRequest, FetchSnapshotResponse,
} from '../../protocol/messages.js';
import { assert } from '../../util/assert.js';
import { maybeSendTimeoutNow } from '../election.js';
import type { NodeId } from '../../protocol/ids.js';
import type { RaftNode } from '../node.js';
import { counts, hasMajority, noteDirectory } from '../quorum.js';
import * as reads from '../read-index.js';
import type { Follower, Leader, Observer, Progress } from '../roles.js';
import * as transitions from '../transitions.js';
import { beginReceiving, receiveChunk } from './snapshot.js';

// ---- leader side --------------------------------------------------------------

/** Leader's clock: expire parked fetches, repeat BeginQuorumEpoch, resign without fetches. */
export function tickLeader(n: RaftNode, leader: Leader): void {
  const resignAfterTicks = Math.floor(1.5 * n.config.electionTimeoutMinTicks);
  const heard = [n.id];
  for (const pr of leader.progress.values()) {
    if (counts(n, pr) && n.now - pr.lastFetchTick < resignAfterTicks) heard.push(pr.id);
  }
  if (!hasMajority(n, heard)) {
    transitions.becomeFollower(n, n.term, null);
    return;
  }
  leader.heartbeatElapsedTicks++;
  const announce = leader.heartbeatElapsedTicks >= n.config.heartbeatIntervalTicks;
  if (announce) leader.heartbeatElapsedTicks = 0;
  for (const pr of leader.progress.values()) {
    if (pr.parked !== null && n.now >= pr.parked.deadlineTick) answer(n, leader, pr, pr.parked.request);
    if (!pr.member) {
      if (pr.parked === null && n.now - pr.lastFetchTick >= 2 * n.config.electionTimeoutMaxTicks) leader.progress.delete(pr.id);
      continue;
    }
    // Announce ourselves to members that have not fetched in this term, or not
    // for an election timeout (they may have restarted and forgotten us).
    const silent = !pr.fetchedThisTerm || n.now - pr.lastFetchTick >= n.config.electionTimeoutMinTicks;
    if (announce && silent) n.send({ type: 'beginQuorumEpoch', from: n.id, dirId: n.dirId, to: pr.id, term: n.term });
  }
}

/**
 * Wakes parked fetches that now have something to carry: new entries, a moved
 * commit index, or a read round to echo. Called once per ready(), so that many
 * proposals travel in one answer.
 */
export function answerParked(n: RaftNode, leader: Leader): void {
  reads.confirm(n, leader);
  for (const pr of leader.progress.values()) {
    const p = pr.parked;
    if (p !== null && hasNews(n, leader, p.request)) answer(n, leader, pr, p.request);
  }
}

function hasNews(n: RaftNode, leader: Leader, m: FetchRequest): boolean {
  return m.fetchOffset <= n.log.lastIndex() || m.commit < n.log.commit ||
    (leader.pendingReads.length > 0 && m.readSeq < leader.readSeq);
}

/** Answers a valid fetch with entries from its offset (possibly none). */
function answer(n: RaftNode, leader: Leader, pr: Progress, m: FetchRequest): void {
  pr.parked = null;
  const entries = m.fetchOffset <= n.log.lastIndex()
    ? n.log.slice(m.fetchOffset, n.log.lastIndex() + 1, Math.min(m.maxBytes, n.config.maxMessageBytes))
    : [];
  reply(n, m, { kind: 'entries', entries, commit: n.log.commit }, leader.readSeq);
}

function reply(n: RaftNode, m: FetchRequest | FetchSnapshotRequest, result: FetchResult, readSeq: number): void {
  n.send({
    type: 'fetchResponse', from: n.id, dirId: n.dirId, to: m.from, term: n.term,
    fetchOffset: m.type === 'fetch' ? m.fetchOffset : 0, lastFetchedTerm: m.type === 'fetch' ? m.lastFetchedTerm : 0, result, readSeq,
  });
}

/** A fetch or fetchSnapshot reached a node that does not lead this term (or the fetcher is fenced). */
export function answerNotLeader(n: RaftNode, m: FetchRequest | FetchSnapshotRequest): void {
  reply(n, m, { kind: 'notLeader', leader: n.leaderId() }, 0);
}

/** A fetch: validate the offset (KRaft's order of checks), then answer, or park it. */
export function onFetch(n: RaftNode, m: FetchRequest): void {
  const leader = n.role;
  if (leader.kind !== 'leader') {
    answerNotLeader(n, m);
    return;
  }
  const pr = progressOf(n, leader, m.from);
  noteDirectory(n, pr, m.dirId);
  pr.lastFetchTick = n.now;
  pr.fetchedThisTerm = true;
  pr.recentActive = true;
  pr.parked = null;
  if (m.readSeq > pr.readSeqAcked && m.readSeq <= leader.readSeq) {
    pr.readSeqAcked = m.readSeq;
    if (pr.isVoter) reads.confirm(n, leader);
  }
  const prev = m.fetchOffset - 1;
  if (prev < n.log.snapshot.index) {
    reply(n, m, { kind: 'snapshot', snapshot: n.log.snapshot }, leader.readSeq);
    return;
  }
  if (n.log.term(prev) !== m.lastFetchedTerm) {
    const end = n.log.endOffsetForTerm(m.lastFetchedTerm);
    const result: FetchResult = end === undefined
      ? { kind: 'snapshot', snapshot: n.log.snapshot }
      : { kind: 'diverging', divergingTerm: end.term, endOffset: end.endOffset };
    reply(n, m, result, leader.readSeq);
    return;
  }
  // Valid: everything in [1, prev] is durable on the fetcher and matches our log.
  if (prev > pr.match) {
    pr.match = prev;
    pr.next = prev + 1;
    transitions.onLeaderProgress(n, leader);
    maybeSendTimeoutNow(n, leader);
  }
  if (hasNews(n, leader, m) || m.maxWaitTicks <= 0) {
    answer(n, leader, pr, m);
  } else {
    pr.parked = { request: m, deadlineTick: n.now + Math.min(m.maxWaitTicks, n.config.fetchMaxWaitTicks) };
  }
}

/** The leader's record of a fetcher: a member's, or a new one for a node outside the configuration. */
function progressOf(n: RaftNode, leader: Leader, from: NodeId): Progress {
  let pr = leader.progress.get(from);
  if (pr === undefined) {
    pr = transitions.newProgress(n, from, false, false, n.log.lastIndex() + 1);
    leader.progress.set(from, pr);
  }
  return pr;
}

/** A chunk of the current snapshot for a member that fell behind the log start. */
export function onFetchSnapshot(n: RaftNode, m: FetchSnapshotRequest): void {
  const leader = n.role;
  if (leader.kind !== 'leader') {
    answerNotLeader(n, m);
    return;
  }
  const pr = progressOf(n, leader, m.from);
  noteDirectory(n, pr, m.dirId);
  pr.lastFetchTick = n.now;
  pr.fetchedThisTerm = true;
  pr.recentActive = true;
  const chunk = n.config.snapshotReader?.(m.snapshot, m.position, Math.min(m.maxBytes, n.config.snapshotChunkBytes));
  const response: FetchSnapshotResponse = {
    type: 'fetchSnapshotResponse', from: n.id, dirId: n.dirId, to: m.from, term: n.term, snapshot: m.snapshot, position: m.position,
    data: chunk?.data ?? new Uint8Array(0), done: chunk?.done ?? false, missing: chunk === undefined,
  };
  n.send(response);
}

// ---- follower and observer side ------------------------------------------------

/** Replica's clock: resend a lost fetch; an observer without a leader looks for one. */
export function tickReplica(n: RaftNode, role: Follower | Observer): void {
  const f = role.fetch;
  if (role.kind === 'observer' && n.electionElapsedTicks >= n.electionTimeoutTicks) {
    // No answer from the leader for an election timeout: look for a new one.
    role.leader = null;
    transitions.resetElectionTimer(n);
  }
  const waitTicks = n.config.fetchMaxWaitTicks + n.config.fetchRetryTicks;
  if (f.inflightSinceTick !== null && n.now - f.inflightSinceTick < waitTicks) return;
  if (role.leader !== null) {
    sendFetch(n, role);
  } else if (role.kind === 'observer') {
    // Ask the voters in turn; a non-leader answers with its leader hint.
    const voters = n.membership.config.voters;
    const to = voters[f.discoveryCursor++ % voters.length];
    if (to !== undefined) sendFetchTo(n, role, to);
  }
}

/** BeginQuorumEpoch: a new leader; start fetching from it. */
export function onBeginQuorumEpoch(n: RaftNode, m: BeginQuorumEpoch): void {
  const role = transitions.followLeader(n, m.from);
  if (role !== null && role.fetch.inflightSinceTick === null) sendFetch(n, role);
}

function sendFetch(n: RaftNode, role: Follower | Observer): void {
  if (role.leader !== null) sendFetchTo(n, role, role.leader);
}

function sendFetchTo(n: RaftNode, role: Follower | Observer, to: typeof n.id): void {
  const inc = role.incomingSnapshot;
  if (inc !== null) {
    n.send({
      type: 'fetchSnapshot', from: n.id, dirId: n.dirId, to, term: n.term, snapshot: inc.meta, position: inc.nextOffset,
      maxBytes: n.config.snapshotChunkBytes,
    });
  } else {
    const claimed = role.fetch.claimed;
    n.send({
      type: 'fetch', from: n.id, dirId: n.dirId, to, term: n.term,
      fetchOffset: claimed?.offset ?? n.log.lastIndex() + 1,
      lastFetchedTerm: claimed?.term ?? n.log.lastTerm(),
      maxWaitTicks: n.config.fetchMaxWaitTicks, maxBytes: n.config.maxMessageBytes,
      commit: n.log.commit, readSeq: role.fetch.readSeqSeen,
    });
  }
  role.fetch.inflightSinceTick = n.now;
}

/** True when an answer was computed for the log as it stands now (the same end position). */
function isCurrent(n: RaftNode, role: Follower | Observer, m: FetchResponse): boolean {
  const claimed = role.fetch.claimed;
  return claimed === null
    ? m.fetchOffset === n.log.lastIndex() + 1 && m.lastFetchedTerm === n.log.lastTerm()
    : m.fetchOffset === claimed.offset && m.lastFetchedTerm === claimed.term;
}

/** The leader's answer to a fetch. */
export function onFetchResponse(n: RaftNode, m: FetchResponse): void {
  const result = m.result;
  if (result.kind === 'notLeader') {
    const role = n.role;
    if ((role.kind === 'follower' || role.kind === 'observer') && (role.leader === m.from || role.leader === null)) {
      // A hint naming the sender comes from the leader of a newer term that
      // fenced our stale fetch (the term rule has already made it our leader).
      role.leader = result.leader === n.id ? null : result.leader;
      role.fetch.inflightSinceTick = null;
      if (role.leader !== null) sendFetch(n, role);
    }
    return;
  }
  const current = n.role;
  if ((current.kind === 'follower' || current.kind === 'observer') && current.leader === m.from && !isCurrent(n, current, m)) {
    if (result.kind === 'entries') n.adoptUnlogged(result.entries); // planted bug only
    return; // an answer to an older fetch; the retry timer covers a lost newer one
  }
  const role = transitions.followLeader(n, m.from);
  if (role === null) return;
  if (!isCurrent(n, role, m)) {
    if (result.kind === 'entries') n.adoptUnlogged(result.entries); // planted bug only
    return;
  }
  role.fetch.inflightSinceTick = null;
  if (m.readSeq > role.fetch.readSeqSeen) role.fetch.readSeqSeen = m.readSeq;
  switch (result.kind) {
    case 'entries': {
      const first = result.entries[0];
      assert(first === undefined || first.index === m.fetchOffset, 'fetch answer starts at the fetch offset');
      const claimed = role.fetch.claimed;
      role.fetch.claimed = null;
      const last = claimed === null
        ? n.log.appendFromLeader(result.entries, m.fetchOffset - 1)
        : n.log.appendFromLeader(result.entries, Math.min(m.fetchOffset - 1, n.log.lastIndex()));
      n.log.commitTo(Math.min(result.commit, last));
      break;
    }
    case 'diverging': {
      if (n.config.plantedBug === 'skipDivergingTruncation') {
        role.fetch.claimed = { offset: result.endOffset, term: result.divergingTerm };
        break;
      }
      const own = n.log.endOffsetForTerm(result.divergingTerm);
      assert(own !== undefined, () => `${n.id}: diverging term ${result.divergingTerm} lies inside the snapshot`);
      n.log.truncateFrom(Math.min(own.endOffset, result.endOffset));
      break;
    }
    case 'snapshot':
      if (result.snapshot.index > n.log.commit) beginReceiving(role, result.snapshot);
      break;
    default: {
      const never: never = result;
      return never;
    }
  }
  sendFetch(n, role);
}

/** A snapshot chunk from the leader: write it, then ask for the next (or resume fetching). */
export function onFetchSnapshotResponse(n: RaftNode, m: FetchSnapshotResponse): void {
  const role = n.role;
  if ((role.kind !== 'follower' && role.kind !== 'observer') || role.leader !== m.from) return;
  const inc = role.incomingSnapshot;
  if (inc === null || inc.meta.index !== m.snapshot.index || inc.meta.term !== m.snapshot.term || m.position !== inc.nextOffset) return;
  n.electionElapsedTicks = 0;
  role.fetch.inflightSinceTick = null;
  if (m.missing) role.incomingSnapshot = null;
  else receiveChunk(n, role, m.snapshot, m.position, m.data, m.done);
  sendFetch(n, role);
}
