// The durable SnapshotStore: one file per snapshot in a directory (format in
// format.ts), written as a stream under a temporary name, checksummed with
// CRC32C as it goes, fsynced, renamed into place, directory fsynced. Memory
// use is bounded by the chunk size on every path (write, verify, read,
// receive): a 1 GiB snapshot never sits whole in memory.
// Goes through the FileSystem seam only, so the simulator can inject faults.

import { FsyncGuard } from '../fsync-guard.js';
import { crc32c } from '@node-rs/crc32';
import type { SnapshotMeta } from '../../protocol/entry.js';
import { StorageCorruptionError, StoreClosedError } from '../errors.js';
import { joinPath, type FileHandle, type FileSystem } from '../fs.js';
import type { SnapshotReader, SnapshotWriter, StoredSnapshotInfo } from '../types.js';
import {
  decodeSnapshotHeader, encodeSnapshotHeader, isHeaderError, parseSnapshotFileName, RECEIVE_MAGIC, RECEIVE_SUFFIX,
  SNAPSHOT_HEADER_BYTES, SNAPSHOT_MAGIC, snapshotFileName, validateSnapshotMeta, WRITE_TMP_SUFFIX,
} from './format.js';
import { SnapshotTransferMismatchError, type ReceivingSnapshotStore, type SnapshotReceiver } from './receiver.js';

/** Tuning for DurableSnapshotStore. */
export interface DurableSnapshotStoreOptions {
  /** Bytes read at a time when verifying a checksum (default 1 MiB). */
  readonly verifyChunkBytes?: number;
  /** A receiver checkpoints by itself after this many new bytes (default 8 MiB). */
  readonly receiveCheckpointBytes?: number;
}

const MiB = 1024 * 1024;

function sameMeta(a: SnapshotMeta, b: SnapshotMeta): boolean {
  return a.index === b.index && a.term === b.term;
}

function newer(a: SnapshotMeta, than: SnapshotMeta | null): boolean {
  return than === null || a.index > than.index || (a.index === than.index && a.term >= than.term);
}

/**
 * Snapshots in a directory.
 *
 * - At open: temporary files of unfinished writes (`*.snap.tmp`) are removed;
 *   the committed snapshot with the highest index (then term) becomes
 *   latest() after its header, size and body checksum are verified (streamed
 *   in bounded chunks). If it fails, the constructor throws
 *   StorageCorruptionError naming the file and offset (no fallback to an
 *   older snapshot: the log prefix it replaced may be gone).
 * - beginWrite(meta) streams into `<name>.snap.tmp`; commit() writes the
 *   header, fdatasyncs, renames to `<name>.snap`, fsyncs the directory.
 * - removeOlder() removes every other committed snapshot and stale partial
 *   receives; call it only after the new snapshot's commit() returned.
 * - beginReceive(meta): the follower side of a transfer (see receiver.ts);
 *   partial transfers live in `<name>.snap.recv` and survive a restart.
 * - A failed fsync throws FsyncFailedError; after it every call throws
 *   StoreClosedError (never retried as if the data were safe).
 */
export class DurableSnapshotStore implements ReceivingSnapshotStore {
  private readonly fs: FileSystem;
  private readonly dir: string;
  private readonly verifyChunkBytes: number;
  private readonly receiveCheckpointBytes: number;
  private current: StoredSnapshotInfo | null = null;
  private readonly guard = new FsyncGuard();
  /** The receiver that owns the partial transfer, if one is open. */
  private activeReceiver: object | null = null;

  /** Opens (creating if needed) `dir` and verifies its latest snapshot; throws StorageCorruptionError if it is bad. */
  constructor(fs: FileSystem, dir: string, options: DurableSnapshotStoreOptions = {}) {
    this.fs = fs;
    this.dir = dir;
    this.verifyChunkBytes = options.verifyChunkBytes ?? MiB;
    this.receiveCheckpointBytes = options.receiveCheckpointBytes ?? 8 * MiB;
    fs.mkdirp(dir);
    let best: SnapshotMeta | null = null;
    for (const name of fs.list(dir)) {
      if (name.endsWith('.snap' + WRITE_TMP_SUFFIX)) {
        fs.remove(joinPath(dir, name)); // a write that never committed
        continue;
      }
      const meta = parseSnapshotFileName(name);
      if (meta !== undefined && newer(meta, best)) best = meta;
    }
    if (best !== null) this.current = this.verify(best);
    // After kill -9 the page cache may show a rename (or the removal of a
    // temporary file) that is not yet durable; make what we trust durable
    // before the log is compacted against it.
    this.syncDir();
  }

  latest(): StoredSnapshotInfo | null {
    this.checkUsable();
    return this.current;
  }

  beginWrite(meta: SnapshotMeta): SnapshotWriter {
    this.checkUsable();
    validateSnapshotMeta(meta);
    const tmp = this.path(meta) + WRITE_TMP_SUFFIX;
    const h = this.fs.open(tmp, { create: true });
    h.truncate(0);
    let size = 0;
    let crc = 0;
    let done = false;
    const check = (): void => {
      this.checkUsable();
      if (done) throw new StoreClosedError('snapshot writer already committed or aborted');
    };
    return {
      write: (chunk) => {
        check();
        if (chunk.byteLength === 0) return;
        h.write(chunk, SNAPSHOT_HEADER_BYTES + size);
        crc = crc32c(chunk, crc);
        size += chunk.byteLength;
      },
      commit: () => {
        check();
        done = true;
        return this.finish(h, tmp, meta, size, crc);
      },
      abort: () => {
        if (done) return;
        done = true;
        h.close();
        this.fs.remove(tmp);
      },
    };
  }

  open(meta: SnapshotMeta): SnapshotReader | undefined {
    this.checkUsable();
    const file = this.path(meta);
    if (!this.fs.exists(file)) return undefined;
    const h = this.fs.open(file, { create: false });
    let info: StoredSnapshotInfo;
    try {
      info = this.readHeader(h, meta);
    } catch (e) {
      h.close();
      throw e;
    }
    let closed = false;
    return {
      info,
      read: (position, maxBytes) => {
        if (closed) throw new StoreClosedError('snapshot reader closed');
        if (!Number.isSafeInteger(position) || position < 0 || position > info.sizeBytes) {
          throw new RangeError(`read position ${position} outside [0, ${info.sizeBytes}]`);
        }
        if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) throw new RangeError(`bad maxBytes ${maxBytes}`);
        const n = Math.min(maxBytes, info.sizeBytes - position);
        if (n === 0) return new Uint8Array(0);
        const got = h.read(n, SNAPSHOT_HEADER_BYTES + position);
        if (got.byteLength !== n) {
          throw new StorageCorruptionError(h.path, SNAPSHOT_HEADER_BYTES + position + got.byteLength, 'file shorter than its header says');
        }
        return got;
      },
      close: () => {
        if (closed) return;
        closed = true;
        h.close();
      },
    };
  }

  removeOlder(): void {
    this.checkUsable();
    const cur = this.current;
    if (cur === null) return;
    let removed = false;
    for (const name of this.fs.list(this.dir)) {
      const committed = parseSnapshotFileName(name);
      if (committed !== undefined && !sameMeta(committed, cur)) {
        this.fs.remove(joinPath(this.dir, name));
        removed = true;
      }
      if (name.endsWith(RECEIVE_SUFFIX)) {
        const partial = parseSnapshotFileName(name.slice(0, -RECEIVE_SUFFIX.length));
        if (partial !== undefined && partial.index <= cur.index) {
          this.fs.remove(joinPath(this.dir, name));
          removed = true;
        }
      }
    }
    if (removed) this.syncDir();
  }

  beginReceive(meta: SnapshotMeta): SnapshotReceiver {
    this.checkUsable();
    validateSnapshotMeta(meta);
    const file = this.path(meta) + RECEIVE_SUFFIX;
    for (const name of this.fs.list(this.dir)) {
      // One transfer at a time: a partial receive of another snapshot is dropped.
      if (name.endsWith(RECEIVE_SUFFIX) && joinPath(this.dir, name) !== file) this.fs.remove(joinPath(this.dir, name));
    }
    // A new file's name is made durable by the first checkpoint (a directory fsync).
    let nameDurable = this.fs.exists(file);
    const h = this.fs.open(file, { create: true });
    let held = 0;
    let crc = 0;
    const resumed = this.resumePoint(h, meta);
    if (resumed !== null) {
      held = resumed.sizeBytes;
      crc = resumed.checksum;
    }
    h.truncate(SNAPSHOT_HEADER_BYTES + held); // drops any tail written after the last checkpoint
    let sinceCheckpoint = 0;
    let done = false;
    const token = {};
    this.activeReceiver = token;
    const check = (): void => {
      this.checkUsable();
      if (done || this.activeReceiver !== token) throw new StoreClosedError('snapshot receiver closed or superseded');
    };
    const checkpoint = (): void => {
      // Data first, then the header that vouches for it: two fsyncs, so a
      // crash never leaves a header claiming bytes that are not on disk; and
      // once, a directory fsync, so that the file's name survives too.
      this.sync(h);
      h.write(encodeSnapshotHeader({ magic: RECEIVE_MAGIC, index: meta.index, term: meta.term, sizeBytes: held, checksum: crc }), 0);
      this.sync(h);
      if (!nameDurable) {
        this.syncDir();
        nameDurable = true;
      }
      sinceCheckpoint = 0;
    };
    const end = (): void => {
      done = true;
      if (this.activeReceiver === token) this.activeReceiver = null;
      h.close();
    };
    return {
      meta,
      get receivedBytes() {
        return held;
      },
      write: (offset, chunk) => {
        check();
        if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError(`bad offset ${offset}`);
        if (offset > held || offset + chunk.byteLength <= held) return held; // a gap, or bytes already held
        const fresh = chunk.subarray(held - offset);
        h.write(fresh, SNAPSHOT_HEADER_BYTES + held);
        crc = crc32c(fresh, crc);
        held += fresh.byteLength;
        sinceCheckpoint += fresh.byteLength;
        if (sinceCheckpoint >= this.receiveCheckpointBytes) checkpoint();
        return held;
      },
      checkpoint: () => {
        check();
        checkpoint();
      },
      commit: (expected) => {
        check();
        if (expected !== undefined && (expected.sizeBytes !== held || expected.checksum >>> 0 !== crc >>> 0)) {
          end();
          this.fs.remove(file);
          throw new SnapshotTransferMismatchError(meta, `expected ${expected.sizeBytes} bytes crc ${expected.checksum >>> 0}, got ${held} bytes crc ${crc >>> 0}`);
        }
        done = true;
        if (this.activeReceiver === token) this.activeReceiver = null;
        return this.finish(h, file, meta, held, crc);
      },
      abort: () => {
        if (done) return;
        end();
        this.fs.remove(file);
      },
      close: () => {
        if (done) return;
        try {
          if (!this.guard.tripped && sinceCheckpoint > 0) checkpoint();
        } finally {
          end();
        }
      },
    };
  }

  /** Writes the committed header, fsyncs, renames `from` into place, fsyncs the directory. */
  private finish(h: FileHandle, from: string, meta: SnapshotMeta, size: number, crc: number): StoredSnapshotInfo {
    const info: StoredSnapshotInfo = { index: meta.index, term: meta.term, sizeBytes: size, checksum: crc >>> 0 };
    try {
      h.write(encodeSnapshotHeader({ magic: SNAPSHOT_MAGIC, ...info }), 0);
      this.sync(h);
    } finally {
      h.close();
    }
    this.fs.rename(from, this.path(meta));
    this.syncDir();
    if (newer(meta, this.current)) this.current = info;
    return info;
  }

  /** The progress a `.recv` file vouches for, verified; null to start from byte 0. */
  private resumePoint(h: FileHandle, meta: SnapshotMeta): StoredSnapshotInfo | null {
    const size = h.size();
    const head = h.read(SNAPSHOT_HEADER_BYTES, 0);
    let header = decodeSnapshotHeader(head, RECEIVE_MAGIC);
    // A crash inside commit(), after the final header but before the rename, leaves a complete one.
    if (isHeaderError(header)) header = decodeSnapshotHeader(head, SNAPSHOT_MAGIC);
    if (isHeaderError(header) || !sameMeta(header, meta)) return null; // never checkpointed
    if (size < SNAPSHOT_HEADER_BYTES + header.sizeBytes) return null;
    // Not corruption of anything acknowledged: a partial transfer that does
    // not check out is simply fetched again from byte 0.
    if (this.bodyChecksum(h, header.sizeBytes) !== header.checksum) return null;
    return { index: meta.index, term: meta.term, sizeBytes: header.sizeBytes, checksum: header.checksum };
  }

  /** Verifies a committed snapshot file completely; throws StorageCorruptionError naming the file and offset. */
  private verify(meta: SnapshotMeta): StoredSnapshotInfo {
    const h = this.fs.open(this.path(meta), { create: false });
    try {
      const info = this.readHeader(h, meta);
      const actual = this.bodyChecksum(h, info.sizeBytes);
      if (actual !== info.checksum) {
        throw new StorageCorruptionError(h.path, SNAPSHOT_HEADER_BYTES,
          `body checksum mismatch over bytes [${SNAPSHOT_HEADER_BYTES}, ${SNAPSHOT_HEADER_BYTES + info.sizeBytes}) (stored ${info.checksum}, computed ${actual})`);
      }
      this.sync(h); // the bytes just verified may be only in the page cache
      return info;
    } finally {
      h.close();
    }
  }

  /** Reads and checks a committed header against the file name and the file size. */
  private readHeader(h: FileHandle, meta: SnapshotMeta): StoredSnapshotInfo {
    const header = decodeSnapshotHeader(h.read(SNAPSHOT_HEADER_BYTES, 0), SNAPSHOT_MAGIC);
    if (isHeaderError(header)) throw new StorageCorruptionError(h.path, header.offset, header.detail);
    if (!sameMeta(header, meta)) {
      throw new StorageCorruptionError(h.path, 8, `header says ${header.index}/${header.term}, file name says ${meta.index}/${meta.term}`);
    }
    const size = h.size();
    const expected = SNAPSHOT_HEADER_BYTES + header.sizeBytes;
    if (size !== expected) {
      throw new StorageCorruptionError(h.path, Math.min(size, expected),
        size < expected ? `truncated: header says ${expected} bytes, file holds ${size}` : `${size - expected} bytes after the end of the snapshot`);
    }
    return { index: header.index, term: header.term, sizeBytes: header.sizeBytes, checksum: header.checksum };
  }

  /** CRC32C of body bytes [0, sizeBytes), streamed in bounded chunks. */
  private bodyChecksum(h: FileHandle, sizeBytes: number): number {
    let crc = 0;
    for (let pos = 0; pos < sizeBytes;) {
      const chunk = h.read(Math.min(this.verifyChunkBytes, sizeBytes - pos), SNAPSHOT_HEADER_BYTES + pos);
      if (chunk.byteLength === 0) {
        throw new StorageCorruptionError(h.path, SNAPSHOT_HEADER_BYTES + pos, 'file ended early');
      }
      crc = crc32c(chunk, crc);
      pos += chunk.byteLength;
    }
    return crc >>> 0;
  }

  private path(meta: SnapshotMeta): string {
    return joinPath(this.dir, snapshotFileName(meta));
  }

  private sync(h: FileHandle): void {
    this.guard.syncFile(h);
  }

  private syncDir(): void {
    this.guard.syncDir(this.fs, this.dir);
  }

  private checkUsable(): void {
    this.guard.checkUsable('snapshot store');
  }
}
