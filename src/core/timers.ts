// When the core's clock next matters. A runtime that ticks the core on every
// tick wakes its process 1000 / tickMs times a second, idle or not; most of
// those ticks only count. ticksUntilDue() says how many ticks may pass before
// one of them can act (send, change role, answer a parked fetch), so that an
// idle runtime sleeps until then and replays the counting ticks in one go
// when it next wakes (src/node/runtime.ts). The core's state is the same
// either way; only the moment a caught-up tick runs differs, and by this
// function's promise no such tick has anything to say.
//
// The promise (checked by the simulator after every tick, test/sim): if
// ticksUntilDue() returns k > 1 and nothing else reaches the node, the next
// k - 1 calls of tick() produce no output and change neither role nor term.
// Waking early is always allowed; the answer may be smaller than necessary,
// never larger.

import { assertNever } from '../util/assert.js';
import type { RaftNode } from './node.js';
import { counts } from './quorum.js';
import type { Follower, Leader, Observer } from './roles.js';

/** Ticks until the first tick() that may act; at least 1; Infinity when no tick ever acts. */
export function ticksUntilDue(n: RaftNode): number {
  const role = n.role;
  let due: number;
  switch (role.kind) {
    case 'leader':
      due = n.config.replication === 'push' ? pushLeaderDue(n, role) : pullLeaderDue(n, role);
      if (role.transfer !== null) due = Math.min(due, n.config.electionTimeoutMinTicks - role.transfer.elapsedTicks);
      break;
    case 'follower':
    case 'observer':
      due = n.config.replication === 'push' ? pushReplicaDue(n, role) : pullReplicaDue(n, role);
      break;
    case 'preCandidate':
    case 'candidate':
      due = electionDue(n);
      break;
    default:
      return assertNever(role, 'role');
  }
  const bug = n.config.plantedBug === 'overstateTicksUntilDue' ? 1 : 0; // read here only
  return Math.max(1, due) + bug;
}

/** Ticks until the election (pull: fetch) timeout fires: it fires once the elapsed count reaches the timeout. */
function electionDue(n: RaftNode): number {
  return n.electionTimeoutTicks - n.electionElapsedTicks;
}

/** Heartbeats, the check-quorum period, snapshot chunks that wait for an answer. */
function pushLeaderDue(n: RaftNode, leader: Leader): number {
  let due = n.config.heartbeatIntervalTicks - leader.heartbeatElapsedTicks;
  if (n.config.checkQuorum) due = Math.min(due, n.config.electionTimeoutMinTicks - leader.checkQuorumElapsedTicks);
  for (const pr of leader.progress.values()) {
    const out = pr.outgoingSnapshot;
    if (out !== null) due = Math.min(due, out.sentTick + n.config.electionTimeoutMinTicks - n.now);
  }
  return due;
}

/**
 * Parked fetches' deadlines; the tick at which too few voters have fetched
 * to keep leading; BeginQuorumEpoch to members that have gone silent.
 */
function pullLeaderDue(n: RaftNode, leader: Leader): number {
  let due = Infinity;
  // A voter counts as heard while now - lastFetchTick < resignAfter, i.e. for
  // the ticks k < lastFetchTick + resignAfter - now. The leader resigns at the
  // first k where itself plus the voters still heard fall short of a majority.
  const resignAfter = Math.floor(1.5 * n.config.electionTimeoutMinTicks);
  const heardFor: number[] = [];
  let silentSoon = Infinity;
  let announceNeeded = false;
  for (const pr of leader.progress.values()) {
    if (counts(n, pr)) heardFor.push(pr.lastFetchTick + resignAfter - n.now); // as pull.tickLeader counts
    if (pr.parked !== null) due = Math.min(due, pr.parked.deadlineTick - n.now);
    if (!pr.member) continue; // non-members are never announced to (they are only forgotten, which is not output)
    const silentAt = pr.lastFetchTick + n.config.electionTimeoutMinTicks - n.now;
    if (!pr.fetchedThisTerm || silentAt <= 0) announceNeeded = true;
    else silentSoon = Math.min(silentSoon, silentAt);
  }
  const othersNeeded = Math.floor(n.membership.config.voters.length / 2) + 1 - (n.isVoter ? 1 : 0);
  if (othersNeeded > 0) {
    heardFor.sort((a, b) => b - a);
    due = Math.min(due, heardFor[othersNeeded - 1] ?? 1);
  }
  due = Math.min(due, announceNeeded ? n.config.heartbeatIntervalTicks - leader.heartbeatElapsedTicks : silentSoon);
  return due;
}

/** A push follower campaigns at its election timeout; a push observer never acts on a tick. */
function pushReplicaDue(n: RaftNode, role: Follower | Observer): number {
  return role.kind === 'follower' ? electionDue(n) : Infinity;
}

/** The fetch retry (or the first fetch, or an observer's search for a leader), and the election timeout. */
function pullReplicaDue(n: RaftNode, role: Follower | Observer): number {
  const f = role.fetch;
  let due = electionDue(n); // a follower campaigns, an observer forgets its leader
  if (f.inflightSinceTick === null) {
    if (role.leader !== null || role.kind === 'observer') due = 1;
  } else {
    due = Math.min(due, f.inflightSinceTick + n.config.fetchMaxWaitTicks + n.config.fetchRetryTicks - n.now);
  }
  return due;
}
