// The roles a node can hold, one union member each, holding only that role's
// fields. Transitions between them happen only in transitions.ts.

import type { SnapshotMeta } from '../protocol/entry.js';
import type { LogIndex, NodeId } from '../protocol/ids.js';
import type { FetchRequest } from '../protocol/messages.js';

/**
 * A snapshot being received from the leader (both modes): the bytes in
 * [0, nextOffset) have been handed to the runtime to write.
 */
export interface IncomingSnapshot {
  readonly meta: SnapshotMeta;
  nextOffset: number;
}

/**
 * The replica side of pull mode, kept by followers and observers: whether a
 * fetch is out and since when.
 */
export interface FetchState {
  /** The tick at which the outstanding fetch (or fetchSnapshot) was sent, or null. */
  inflightSinceTick: number | null;
  /** Observers without a leader ask the voters in turn; this is the next one. */
  discoveryCursor: number;
  /** The newest read round seen in a fetch answer from the current leader. */
  readSeqSeen: number;
  /** Only with the planted bug 'skipDivergingTruncation': the position claimed instead of truncating. */
  claimed: { offset: number; term: number } | null;
}

/** A voter that follows a leader (or waits for one). */
export interface Follower {
  readonly kind: 'follower';
  leader: NodeId | null;
  incomingSnapshot: IncomingSnapshot | null;
  readonly fetch: FetchState;
}

/** A non-voting member: receives the log, never votes, never counts. */
export interface Observer {
  readonly kind: 'observer';
  leader: NodeId | null;
  incomingSnapshot: IncomingSnapshot | null;
  readonly fetch: FetchState;
}

/** A voter asking whether it could win an election, without raising its term. */
export interface PreCandidate {
  readonly kind: 'preCandidate';
  /** Votes received for the proposed term (term + 1): true granted, false rejected. */
  readonly votes: Map<NodeId, boolean>;
}

/** A voter campaigning in its current term. */
export interface Candidate {
  readonly kind: 'candidate';
  readonly votes: Map<NodeId, boolean>;
}

/**
 * Push mode's per-follower replication state (etcd's Progress):
 * - probe: one AppendEntries at a time until the follower's match is found;
 * - replicate: optimistic, up to `maxInflightMessages` in flight;
 * - snapshot: sending a snapshot, chunk by chunk.
 */
export type PushState = 'probe' | 'replicate' | 'snapshot';

/**
 * What a leader knows of one other member. Invariants: `match < next`;
 * `match` never decreases within a term; `isVoter` and `member` follow the
 * leader's configuration in force (a voter is a member).
 */
export interface Progress {
  readonly id: NodeId;
  /** A voter of the leader's configuration in force: counted in quorums. */
  isVoter: boolean;
  /** In the configuration; false for a pull-mode fetcher that is not a member (tracked, never counted, forgotten when silent). */
  member: boolean;
  /** The highest index known to be durable on the member and to match ours. */
  match: LogIndex;
  /** Push: the next index to send. */
  next: LogIndex;
  /** Push: see {@link PushState}. */
  state: PushState;
  /** Push, probe: a probe is out; wait for its answer or a heartbeat answer. */
  probeSent: boolean;
  /** Push, replicate: the last index of each AppendEntries in flight, oldest first. */
  inflight: LogIndex[];
  /** Push: the commit index last sent to this member. */
  commitSent: LogIndex;
  /** Push: `match` at the previous heartbeat answer, to spot a stalled window. */
  matchAtLastHeartbeat: LogIndex;
  /** Push, snapshot: the snapshot being sent and how far it has been acknowledged. */
  outgoingSnapshot: { meta: SnapshotMeta; offset: number; sentTick: number } | null;
  /** Push: heard from in the current check-quorum period. */
  recentActive: boolean;
  /** Pull: the tick of the last fetch received from this member. */
  lastFetchTick: number;
  /** Pull: has fetched at least once in this term (else BeginQuorumEpoch is resent). */
  fetchedThisTerm: boolean;
  /** Pull: a fetch with nothing to answer yet, and the tick it must be answered by. */
  parked: { request: FetchRequest; deadlineTick: number } | null;
  /** Both: the newest read round this member has echoed. */
  readSeqAcked: number;
  /**
   * The directory id on this member's latest message: undefined until one
   * arrives, null when it carried none. Everything above was learnt from that
   * directory: a message from another one starts the record afresh
   * (quorum.noteDirectory).
   */
  dirId: number | null | undefined;
}

/** A linearizable read waiting for its round to be confirmed by a quorum. */
export interface PendingRead {
  readonly ctx: number;
  readonly index: LogIndex;
  readonly seq: number;
}

/** The leader of the current term. */
export interface Leader {
  readonly kind: 'leader';
  readonly progress: Map<NodeId, Progress>;
  /** New entries or a moved commit index not yet sent to followers. */
  replicationDue: boolean;
  /** Bytes (entryBytes) of the entries after the commit index: back pressure's measure. */
  uncommittedBytes: number;
  heartbeatElapsedTicks: number;
  checkQuorumElapsedTicks: number;
  /** The current read round; reads are tagged with it. */
  readSeq: number;
  /** Reads whose round has not yet been confirmed by a quorum. */
  readonly pendingReads: PendingRead[];
  /** Reads that arrived before an entry of this term was committed. */
  readonly readsAwaitingCommit: number[];
  /** A leader transfer under way: target and ticks since it began. */
  transfer: { target: NodeId; elapsedTicks: number; timeoutNowSent: boolean } | null;
}

/** Every role. */
export type Role = Follower | Observer | PreCandidate | Candidate | Leader;

/** The role's name, for reports. */
export type RoleKind = Role['kind'];
