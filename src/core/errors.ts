// Errors the core throws at its API. Rejected votes, log mismatches and stale
// messages are data handled inside the protocol, never exceptions.

import type { ConfigChange } from '../protocol/entry.js';
import type { LogIndex, NodeId, Term } from '../protocol/ids.js';

/** The request needs the leader, and this node is not it. */
export class NotLeaderError extends Error {
  override readonly name = 'NotLeaderError';
  /** The node this one believes leads, if any: retry there. */
  readonly leaderHint: NodeId | null;

  constructor(leaderHint: NodeId | null, options?: ErrorOptions) {
    super(leaderHint === null ? 'not the leader; no leader known' : `not the leader; try ${leaderHint}`, options);
    this.leaderHint = leaderHint;
  }
}

/** The leader is handing leadership over and accepts no proposals meanwhile. */
export class LeaderTransferInProgressError extends Error {
  override readonly name = 'LeaderTransferInProgressError';
  readonly target: NodeId;

  constructor(target: NodeId) {
    super(`leadership is being transferred to ${target}; retry on the new leader`);
    this.target = target;
  }
}

/** The leader has too many uncommitted bytes; retry once the cluster catches up. */
export class BackpressureError extends Error {
  override readonly name = 'BackpressureError';
  readonly uncommittedBytes: number;
  readonly limitBytes: number;

  constructor(uncommittedBytes: number, limitBytes: number) {
    super(`${uncommittedBytes} bytes are uncommitted, over the limit of ${limitBytes}; retry later`);
    this.uncommittedBytes = uncommittedBytes;
    this.limitBytes = limitBytes;
  }
}

/** A call that the core's contract forbids (for example, stepping between ready() and advance()). */
export class ApiMisuseError extends Error {
  override readonly name = 'ApiMisuseError';
}

/** A leader transfer was asked for a node that cannot lead (not a voter of this cluster). */
export class TransferTargetError extends Error {
  override readonly name = 'TransferTargetError';
  readonly target: NodeId;

  constructor(target: NodeId) {
    super(`${target} is not a voter, so leadership cannot move to it`);
    this.target = target;
  }
}

/**
 * A membership change was asked while an earlier one is not yet committed:
 * one server at a time (Raft dissertation 4.1). Retry once it commits.
 */
export class ConfigChangeInProgressError extends Error {
  override readonly name = 'ConfigChangeInProgressError';
  /** The index of the configuration entry still waiting to commit. */
  readonly pendingIndex: LogIndex;

  constructor(pendingIndex: LogIndex) {
    super(`the configuration change at index ${pendingIndex} has not committed yet; one change at a time`);
    this.pendingIndex = pendingIndex;
  }
}

/**
 * A new leader has not yet committed an entry of its own term (its no-op), so
 * it may not change the configuration yet (the dissertation's fix for the
 * single-server change bug). Retry shortly.
 */
export class LeaderNotReadyError extends Error {
  override readonly name = 'LeaderNotReadyError';
  readonly term: Term;

  constructor(term: Term) {
    super(`the leader has not yet committed an entry of its term ${term}; retry shortly`);
    this.term = term;
  }
}

/** An observer cannot be promoted before it has caught up with the leader's log. */
export class NotCaughtUpError extends Error {
  override readonly name = 'NotCaughtUpError';
  readonly node: NodeId;
  /** The last index known to match on that node. */
  readonly match: LogIndex;
  readonly leaderLastIndex: LogIndex;

  constructor(node: NodeId, match: LogIndex, leaderLastIndex: LogIndex) {
    super(`${node} has not caught up (it holds up to ${match}, the leader's log ends at ${leaderLastIndex}); retry once it has`);
    this.node = node;
    this.match = match;
    this.leaderLastIndex = leaderLastIndex;
  }
}

/** A membership change that does not apply to the configuration in force (adding a member twice, removing the last voter, …). */
export class InvalidConfigChangeError extends Error {
  override readonly name = 'InvalidConfigChangeError';
  readonly change: ConfigChange;

  constructor(change: ConfigChange, reason: string) {
    super(`cannot ${change.kind} ${change.node}: ${reason}`);
    this.change = change;
  }
}

/**
 * What a runtime reports when its core's `dirIdConflict()` is not null
 * (docs/LOST-DISKS.md): the configuration records another data directory for
 * this node, so its disk was lost or replaced since it last acknowledged
 * anything. The core does not throw it: the node keeps receiving the log but
 * never votes, campaigns or counts until an operator removes it and adds it
 * again.
 */
export class DirectoryIdConflictError extends Error {
  override readonly name = 'DirectoryIdConflictError';
  readonly node: NodeId;
  /** The directory id the configuration records for this node. */
  readonly recorded: number;
  /** This node's own directory id, or null when it has none. */
  readonly mine: number | null;

  constructor(node: NodeId, recorded: number, mine: number | null) {
    super(`${node} runs on data directory ${mine ?? '(none)'}, but the cluster's configuration records directory ${recorded} ` +
      `for it: its data directory was lost or replaced, so it may have forgotten votes and entries it acknowledged. ` +
      `It will not vote or count until it is re-added: remove ${node} from the cluster, then add it again ` +
      `(as an observer, then promote it once it has caught up). See docs/LOST-DISKS.md.`);
    this.node = node;
    this.recorded = recorded;
    this.mine = mine;
  }
}
