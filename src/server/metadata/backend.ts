// What the metadata gRPC service needs from the node it runs in: the applied
// metadata state (image, retained records, change events) and a way to write
// a record through the log. The runtime backend (runtime-backend.ts) writes
// through the replicated log; the local one (local-backend.ts) applies at
// once, for in-process tests and for embedding without replication.

import type { MetadataStateMachine } from '../../services/metadata/state-machine.js';
import type { AuthStamp } from '../../services/auth/codec.js';
import type { AcceptedRecord, MetadataRecord } from '../../services/metadata/types.js';

export interface MetadataBackend {
  /** This node's applied metadata state. */
  readonly machine: MetadataStateMachine;
  /**
   * Completes and validates `record` against the image (the controller's
   * pre-append check), appends it, and resolves once this node has applied
   * it. Rejects with MetadataRejectedError (refused before append, or at
   * apply), MetadataCodecError (unencodable), MetadataUnavailableError, or
   * the runtime's errors (NoLeaderError, RequestTimeoutError, ...).
   */
  write(record: MetadataRecord, stamp?: AuthStamp | null): Promise<AcceptedRecord>;
  /** Resolves once `machine` reflects every record committed before the call (ReadIndex). */
  readBarrier(): Promise<void>;
}

/** The cluster's state machine has no metadata service (its nodes were started without it). */
export class MetadataUnavailableError extends Error {
  override readonly name = 'MetadataUnavailableError';
}
