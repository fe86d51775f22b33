// What the quorum queue gRPC service (src/server/queue/server.ts) needs from
// the node it runs in, and an unreplicated implementation for in-process
// tests and single-process embedding. The replicated one is
// RuntimeQueueBackend (src/server/queue/runtime-backend.ts).

import { decodeQueueCommand, encodeQueueCommand } from '../../services/queue/codec.js';
import { QueueStateMachine } from '../../services/queue/state-machine.js';
import type { AuthStamp } from '../../services/auth/codec.js';
import type { AuthDeniedResult } from '../../services/auth/types.js';
import type { QueueCommand, QueueResult } from '../../services/queue/types.js';

export interface QueueBackend {
  /** This node's id: the `node` of the consumers it serves. */
  readonly nodeId: string;
  /** This node's applied queue state; its events drive the deliveries of this node's consumers. */
  readonly machine: QueueStateMachine;
  /**
   * Submits a command through the log and resolves with its result once this
   * node has applied it (a follower forwards it to the leader). Rejects with
   * the runtime's errors (src/node/errors.ts: NoLeaderError,
   * RequestTimeoutError, ...) when the outcome is unknown or the command was
   * not taken; a command's own failure is an `{type: 'error'}` result. With
   * `stamp` the command goes into the log stamped (src/services/auth/gate.ts),
   * and the result may be the gate's refusal.
   */
  write(cmd: QueueCommand, stamp?: AuthStamp | null): Promise<QueueResult | AuthDeniedResult>;
  /** Resolves once `machine` reflects every write committed before the call (ReadIndex). */
  readBarrier(): Promise<void>;
  /** Whether this node leads now. */
  isLeader(): boolean;
  /**
   * Resolves once this node may attach consumers: the consumers of its
   * previous run (same node id) have been released through the log. Rejects
   * only when the node stops.
   */
  whenReady(): Promise<void>;
}

/**
 * A single-copy QueueBackend: each write goes through the codec (encode,
 * decode) and is applied at once, at log index 1, 2, 3, ...; reads need no
 * barrier. Invariant: `appliedIndex` counts the commands applied.
 */
export class LocalQueueBackend implements QueueBackend {
  readonly machine: QueueStateMachine;
  readonly nodeId: string;
  appliedIndex = 0;

  constructor(opts: { nodeId?: string; machine?: QueueStateMachine } = {}) {
    this.nodeId = opts.nodeId ?? 'local';
    this.machine = opts.machine ?? new QueueStateMachine();
  }

  write(cmd: QueueCommand): Promise<QueueResult> {
    try {
      const decoded = decodeQueueCommand(encodeQueueCommand(cmd));
      return Promise.resolve(this.machine.applyCommand(decoded, ++this.appliedIndex));
    } catch (e) {
      return Promise.reject(e as Error);
    }
  }

  readBarrier(): Promise<void> {
    return Promise.resolve();
  }

  isLeader(): boolean {
    return true;
  }

  whenReady(): Promise<void> {
    return Promise.resolve();
  }
}
