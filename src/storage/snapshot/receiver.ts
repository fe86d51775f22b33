// The receiving side of a snapshot transfer (a follower or observer taking a
// snapshot from the leader, chunk by chunk, in either replication mode).
//
// Usage: `const rx = store.beginReceive(meta)`; ask `rx.receivedBytes` for the
// byte position to request next (the leader's FetchSnapshot / InstallSnapshot
// position); `rx.write(offset, chunk)` each chunk as it arrives; when the
// leader says it was the last, `rx.commit(expected)` makes it the store's
// latest snapshot. After a restart, `beginReceive(meta)` with the same meta
// reopens the partial transfer and `receivedBytes` says where to resume
// (everything up to the last checkpoint survives a crash in the durable store).

import type { SnapshotMeta } from '../../protocol/entry.js';
import type { SnapshotStore, StoredSnapshotInfo } from '../types.js';

/** A snapshot being received; memory is bounded by the chunk. */
export interface SnapshotReceiver {
  readonly meta: SnapshotMeta;
  /** Bytes held, in order from byte 0: the position to ask the leader for next. */
  readonly receivedBytes: number;
  /**
   * Takes the bytes `chunk` at byte `offset` of the snapshot. Bytes already
   * held are skipped (a resent chunk), a chunk beyond `receivedBytes` (a gap)
   * is ignored. Returns the new `receivedBytes`.
   */
  write(offset: number, chunk: Uint8Array): number;
  /**
   * Makes what is held so far survive a crash, so that a restart resumes at
   * `receivedBytes` instead of 0. (The durable store also does this by itself
   * every few MiB.)
   */
  checkpoint(): void;
  /**
   * Everything is in: checks the size and CRC32C against `expected` (when
   * given, from the leader's snapshot info), then makes it durable and the
   * store's latest snapshot. On a mismatch it throws SnapshotTransferMismatchError
   * and discards the partial file (the transfer restarts at 0).
   */
  commit(expected?: { readonly sizeBytes: number; readonly checksum: number }): StoredSnapshotInfo;
  /** Discards the partial transfer. */
  abort(): void;
  /** Stops receiving for now (after a checkpoint); beginReceive(meta) resumes it. */
  close(): void;
}

/** A SnapshotStore that can also receive snapshots from a leader. */
export interface ReceivingSnapshotStore extends SnapshotStore {
  /**
   * Starts receiving `meta`, or resumes the partial transfer of the same meta
   * left by an earlier receiver (or a restart). Partial transfers of any other
   * snapshot are discarded: only one transfer is kept at a time.
   */
  beginReceive(meta: SnapshotMeta): SnapshotReceiver;
}

/** The received bytes do not match what the leader said the snapshot was. */
export class SnapshotTransferMismatchError extends Error {
  override readonly name = 'SnapshotTransferMismatchError';
  constructor(meta: SnapshotMeta, detail: string) {
    super(`received snapshot ${meta.index}/${meta.term} does not match the leader's: ${detail}`);
  }
}
