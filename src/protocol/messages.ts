// The messages nodes exchange, as one tagged union. Election messages are
// shared; `append*`, `heartbeat*` and `installSnapshot*` belong to push mode;
// `beginQuorumEpoch`, `fetch*` belong to pull mode. Every message carries the
// sender's term, and the generic term rules in src/core/node.ts run before any
// per-type handling.

import type { Entry, SnapshotMeta } from './entry.js';
import type { LogIndex, NodeId, Term } from './ids.js';

interface Envelope {
  readonly from: NodeId;
  readonly to: NodeId;
  /** The sender's current term. */
  readonly term: Term;
  /**
   * The id of the sender's data directory (docs/LOST-DISKS.md), an integer in
   * [1, 2^48). The core sets it on everything it builds (RaftConfig.directoryId);
   * absent or undefined: the sender has none (or the message was built by
   * hand), and it counts only where no directory id is recorded for the sender.
   */
  readonly dirId?: number | undefined;
}

/** RequestVote (and PreVote when `preVote`): asks for a vote in `term`. */
export interface VoteRequest extends Envelope {
  readonly type: 'vote';
  readonly preVote: boolean;
  readonly lastIndex: LogIndex;
  readonly lastTerm: Term;
  /** Sent by a leader-transfer target: voters skip their leader-lease check. */
  readonly transfer: boolean;
}

/** The answer to a {@link VoteRequest}. For a pre-vote, `term` is the proposed term. */
export interface VoteResponse extends Envelope {
  readonly type: 'voteResponse';
  readonly preVote: boolean;
  readonly granted: boolean;
}

/** Push mode: entries after (prevIndex, prevTerm), and the leader's commit. */
export interface AppendRequest extends Envelope {
  readonly type: 'append';
  readonly prevIndex: LogIndex;
  readonly prevTerm: Term;
  readonly entries: readonly Entry[];
  readonly commit: LogIndex;
}

/**
 * Push mode: on success, `matchIndex` is the last index now durable and known
 * to match the leader. On rejection, (`hintIndex`, `hintTerm`) is the
 * follower's conflict hint: its last index at or below the probe whose term is
 * at most the probe's term, so the leader can skip a whole term at once.
 */
export interface AppendResponse extends Envelope {
  readonly type: 'appendResponse';
  readonly success: boolean;
  readonly matchIndex: LogIndex;
  readonly rejectedIndex: LogIndex;
  readonly hintIndex: LogIndex;
  readonly hintTerm: Term;
}

/** Push mode: keeps followers from campaigning; carries the commit and a read round. */
export interface HeartbeatRequest extends Envelope {
  readonly type: 'heartbeat';
  readonly commit: LogIndex;
  readonly readSeq: number;
}

/** Push mode: echoes the heartbeat's read round. */
export interface HeartbeatResponse extends Envelope {
  readonly type: 'heartbeatResponse';
  readonly readSeq: number;
}

/** Push mode: one chunk [offset, offset + data.length) of a snapshot. */
export interface InstallSnapshotRequest extends Envelope {
  readonly type: 'installSnapshot';
  readonly snapshot: SnapshotMeta;
  readonly offset: number;
  readonly data: Uint8Array;
  readonly done: boolean;
}

/**
 * Push mode: the follower holds [0, nextOffset) of the snapshot durably; when
 * `installed`, the snapshot has replaced its log prefix.
 */
export interface InstallSnapshotResponse extends Envelope {
  readonly type: 'installSnapshotResponse';
  readonly snapshot: SnapshotMeta;
  readonly nextOffset: number;
  readonly installed: boolean;
}

/** Leader transfer: the target should campaign at once. */
export interface TimeoutNow extends Envelope {
  readonly type: 'timeoutNow';
}

/** Pull mode: a new leader announces itself so that voters start fetching from it. */
export interface BeginQuorumEpoch extends Envelope {
  readonly type: 'beginQuorumEpoch';
}

/**
 * Pull mode: asks for entries from `fetchOffset`; the follower's log ends at
 * (fetchOffset - 1, lastFetchedTerm), durably. A valid fetch acknowledges
 * every entry before `fetchOffset`. `commit` is what the follower already
 * knows of the commit index, `readSeq` the newest read round it has seen.
 */
export interface FetchRequest extends Envelope {
  readonly type: 'fetch';
  readonly fetchOffset: LogIndex;
  readonly lastFetchedTerm: Term;
  readonly maxWaitTicks: number;
  readonly maxBytes: number;
  readonly commit: LogIndex;
  readonly readSeq: number;
}

/** The outcome of a fetch, by kind. */
export type FetchResult =
  /** Entries from the fetch offset (possibly none) and the leader's commit. */
  | { readonly kind: 'entries'; readonly entries: readonly Entry[]; readonly commit: LogIndex }
  /** The follower's log diverges: truncate to at most `endOffset` (exclusive) for `divergingTerm`. */
  | { readonly kind: 'diverging'; readonly divergingTerm: Term; readonly endOffset: LogIndex }
  /** The entries were compacted: pull this snapshot with FetchSnapshot. */
  | { readonly kind: 'snapshot'; readonly snapshot: SnapshotMeta }
  /** The receiver is not the leader of `term`; `leader` is its hint, if any. */
  | { readonly kind: 'notLeader'; readonly leader: NodeId | null };

/** Pull mode: the answer to a {@link FetchRequest}. */
export interface FetchResponse extends Envelope {
  readonly type: 'fetchResponse';
  /** The fetch's position, echoed: an answer applies only while the fetcher's log still ends there. */
  readonly fetchOffset: LogIndex;
  readonly lastFetchedTerm: Term;
  readonly result: FetchResult;
  readonly readSeq: number;
}

/** Pull mode: asks for [position, position + maxBytes) of a snapshot. */
export interface FetchSnapshotRequest extends Envelope {
  readonly type: 'fetchSnapshot';
  readonly snapshot: SnapshotMeta;
  readonly position: number;
  readonly maxBytes: number;
}

/** Pull mode: a chunk of the snapshot, or `missing` when the leader no longer has it. */
export interface FetchSnapshotResponse extends Envelope {
  readonly type: 'fetchSnapshotResponse';
  readonly snapshot: SnapshotMeta;
  readonly position: number;
  readonly data: Uint8Array;
  readonly done: boolean;
  readonly missing: boolean;
}

/** Every message a node may send or receive. */
export type Message =
  | VoteRequest
  | VoteResponse
  | AppendRequest
  | AppendResponse
  | HeartbeatRequest
  | HeartbeatResponse
  | InstallSnapshotRequest
  | InstallSnapshotResponse
  | TimeoutNow
  | BeginQuorumEpoch
  | FetchRequest
  | FetchResponse
  | FetchSnapshotRequest
  | FetchSnapshotResponse;

/** The `type` tag of every message. */
export type MessageType = Message['type'];
