// Errors the core throws at its API. Rejected votes, log mismatches and stale
// messages are data handled inside the protocol, never exceptions.

import type { NodeId } from '../protocol/ids.js';

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
