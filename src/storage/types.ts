// The storage interfaces the runtime persists through, per the core's
// persistence contract (src/core/ready.ts). Each has a memory implementation
// (for the simulator and tests) and a durable one (files with fsync).
// All methods are synchronous; see fs.ts for why.

import type { Entry, HardState, SnapshotMeta } from '../protocol/entry.js';
import type { LogIndex, Term } from '../protocol/ids.js';

/**
 * The replicated log on one node.
 * Invariants: indexes are consecutive in [firstIndex(), lastIndex()]; terms
 * never decrease; nothing appended is durable before sync() returns, and
 * everything appended before a sync() that returned survives any crash.
 */
export interface LogStore {
  /** The first index held (1 for a log never compacted); lastIndex() + 1 when empty. */
  firstIndex(): LogIndex;
  /** The last index held; firstIndex() - 1 when empty. */
  lastIndex(): LogIndex;
  /** The term of the entry at `index`, or undefined outside [firstIndex(), lastIndex()]. */
  term(index: LogIndex): Term | undefined;
  /**
   * Appends a batch. `entries[0].index` may be at or below lastIndex() + 1:
   * the suffix from there is cut first (the core hands over such batches when
   * a follower's log diverged).
   */
  append(entries: readonly Entry[]): void;
  /** Removes every entry at or after `index`. */
  truncateSuffix(index: LogIndex): void;
  /**
   * Entries up to `index` are in a durable snapshot: they may be dropped.
   * The store keeps answering term(index) for the last dropped entry.
   */
  compactPrefix(index: LogIndex, term: Term): void;
  /** Entries in [lo, hi), at most `maxBytes` of payload but at least one when the range is not empty. */
  read(lo: LogIndex, hi: LogIndex, maxBytes: number): Entry[];
  /** Makes every append and truncation so far durable (one fdatasync per call: group commit). */
  sync(): void;
  close(): void;
}

/** The term and vote (and commit), replaced atomically. */
export interface StateStore {
  load(): HardState;
  /** Durable when it returns: write a temporary file, fsync, rename, fsync the directory. */
  save(state: HardState): void;
}

/** A snapshot's identity and what the store knows of its bytes. */
export interface StoredSnapshotInfo extends SnapshotMeta {
  readonly sizeBytes: number;
  /** CRC32C of the whole snapshot body. */
  readonly checksum: number;
}

/** Writes one snapshot as a stream; nothing is visible until commit(). */
export interface SnapshotWriter {
  /** Appends the next bytes of the snapshot (in order; memory use is bounded by the chunk). */
  write(chunk: Uint8Array): void;
  /** Checksums, fsyncs, renames into place and fsyncs the directory: durable and current. */
  commit(): StoredSnapshotInfo;
  /** Throws the partial file away. */
  abort(): void;
}

/** Reads a committed snapshot from a byte position, chunk by chunk. */
export interface SnapshotReader {
  readonly info: StoredSnapshotInfo;
  read(position: number, maxBytes: number): Uint8Array;
  close(): void;
}

/** The node's snapshots: the latest is the current one; older ones are removed after a newer one is durable. */
export interface SnapshotStore {
  latest(): StoredSnapshotInfo | null;
  beginWrite(meta: SnapshotMeta): SnapshotWriter;
  /** Opens a committed snapshot; undefined if it no longer exists. */
  open(meta: SnapshotMeta): SnapshotReader | undefined;
  /** Removes every snapshot older than the latest. */
  removeOlder(): void;
}
