// The etcd v3 MVCC key-value state machine: applies committed KvCommands
// deterministically (no I/O, clocks or randomness) so every replica holds the
// same keys, revisions and history. Serves KV.Range (also at past revisions),
// watch history (eventsSince / onEvents), compaction and snapshots.
import type { KvCommand, KvEvent, KvResult, RangeRequest, RangeResponse } from './types.js';

/** The MVCC store (skeleton: implementation follows). */
export class KvStore {
  /** The current revision; 1 for an empty store (as etcd). */
  get revision(): number {
    throw new Error('not implemented');
  }

  /** Revisions below this are forgotten; 0 before any compaction. (etcd: compact_revision) */
  get compactRevision(): number {
    throw new Error('not implemented');
  }

  /** Applies one committed command. Deterministic. Never throws for a decodable command: etcd-level failures come back as {type:'error'}. */
  apply(_cmd: KvCommand): KvResult {
    throw new Error('not implemented');
  }

  /** KV.Range at req.revision (0 = current). Throws KvError('compacted' | 'futureRevision'). */
  range(_req: RangeRequest): RangeResponse {
    throw new Error('not implemented');
  }

  /**
   * Watch history: the events of revisions [fromRevision, revision], in revision order, for keys in the range,
   * at most maxEvents but never splitting one revision's events. Throws KvError('compacted') when
   * fromRevision <= compactRevision (fromRevision > 0).
   */
  eventsSince(_fromRevision: number, _key: Uint8Array, _rangeEnd: Uint8Array, _prevKv: boolean, _maxEvents: number): KvEvent[] {
    throw new Error('not implemented');
  }

  /** Called synchronously after every apply that created a revision, with that revision's events. Returns an unsubscribe function. */
  onEvents(_listener: (events: readonly KvEvent[], revision: number) => void): () => void {
    throw new Error('not implemented');
  }

  /** The whole state as bytes; versioned binary format. */
  snapshot(): Uint8Array {
    throw new Error('not implemented');
  }

  /** Replaces this store's state with a snapshot's (listeners stay subscribed). Throws a named error on malformed input. */
  restore(_data: Uint8Array): void {
    throw new Error('not implemented');
  }

  /** Approximate bytes held (for Maintenance.Status db_size). */
  sizeBytes(): number {
    throw new Error('not implemented');
  }
}
