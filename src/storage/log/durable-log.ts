// DurableLogStore: the replicated log on disk, in segment files (format.ts),
// through the FileSystem seam only (the simulator substitutes a
// fault-injecting one). The in-memory index holds, per segment, the file
// offset and the term of each entry; entries themselves are read from the
// files.
//
// Durability protocol
// - append() encodes the whole batch into one buffer and writes it with one
//   write per segment it touches (normally one). Nothing is durable yet.
// - sync() fdatasyncs every file written since the last sync (normally just
//   the active segment: one fdatasync for every append since: group commit),
//   then fsyncs the directory if a file was created there since.
//   syncAsync(done) does the same with the fdatasyncs off the calling thread
//   (FileHandle.syncAsync): appends may go on meanwhile, and are covered by
//   the next sync, not this one. A segment dropped by a truncation while its
//   sync runs no longer matters (its failure is ignored); the directory fsync
//   (after a roll only) stays synchronous.
// - Rolling: when the active segment has reached segmentBytes, the next entry
//   goes to a new segment named by its index. Before the new file is created,
//   the old segment (and the directory) are synced. Hence every segment but
//   the last is entirely durable, and recovery may treat any damage in a
//   segment that is not the last as corruption.
// - truncateSuffix() is durable when it returns: later segments are removed
//   newest first, with a directory fsync after each (a crash leaves a clean
//   prefix, never a gap), then the segment holding the cut is truncated and
//   fdatasynced before anything can be written after the cut (otherwise a
//   crash could persist the new bytes but not the truncation, leaving new
//   records followed by the old ones' remains, which reads as corruption).
// - compactPrefix() first makes log.meta (the compaction point and its term)
//   durable: write log.meta.tmp, fdatasync, rename, fsync the directory. Only
//   then are the segments whose every entry is at or below the point removed
//   (and the directory fsynced). Recovery finishes an interrupted removal.
// - A failed fsync (FileHandle.sync or syncDir) throws FsyncFailedError and
//   the store is failed from then on: every call throws StoreClosedError
//   (fsyncgate: a retried fsync can succeed without the data being on disk).
//   Any other I/O error during a change fails the store too, since the
//   in-memory index may no longer match the files. close() still releases
//   the file handles.
//
// Recovery at open (recovery.ts): every record of every segment is verified.
// Before open returns, the last segment is fdatasynced and the directory
// fsynced, so that entries found in the page cache after a process kill (never
// synced by the process that wrote them) are durable before the node treats
// them as its log and acknowledges them.
// A torn tail of the LAST segment is cut: a record that fails its framing or
// checksum with no valid record anywhere after it in the file, or a
// zero-filled tail (ext4 can leave the size updated but the blocks unwritten).
// A segment file shorter than a header, or all zeros, that is the last one is
// a creation cut by a crash and is removed. Everything else is a
// StorageCorruptionError naming the file and byte offset: a bad record
// followed by a valid one (the bad one was written before something that was
// written later, so it may have been synced), damage in any segment but the
// last (durable by the rolling rule), a bad header, indexes out of sequence, a
// gap between segments (a missing segment), log.meta unreadable.
//
// Why cutting a damaged LAST record is right, and what it cannot cover: a
// crash mid-write leaves exactly that (a record whose length runs past the
// end of the file, or whose checksum fails because only part of it reached
// the disk), and such a record was never synced, so never acknowledged: the
// persistence contract (src/core/ready.ts) sends acknowledgements only after
// sync() returns. A bit flipped by the disk in the last record of the last
// segment, after it was synced, looks the same to the reader, and cutting it
// loses an entry that may have been acknowledged. No format without a
// separately synced "durable up to" mark can tell the two apart, and such a
// mark would cost a second fsync per batch. What limits the damage: the entry
// is only the last one, the hard state's commit index is persisted after the
// entries, so a cut committed entry makes the core refuse to start
// ("restart with commit beyond the durable log end"), and a cut uncommitted
// entry is one that Raft allows a node to lose only if a quorum still holds
// it, which holds unless a second node loses the same entry at the same time.
// Conversely, the heuristic errs on the side of refusing: if a crash left
// unsynced pages persisted out of order (zeros, then data), recovery reports
// corruption rather than guess; check-data shows the details.

import { ENTRY_OVERHEAD_BYTES, type Entry } from '../../protocol/entry.js';
import type { LogIndex, Term } from '../../protocol/ids.js';
import { FsyncFailedError, StorageCorruptionError, StoreClosedError } from '../errors.js';
import { joinPath, type FileHandle, type FileSystem } from '../fs.js';
import type { LogStore } from '../types.js';
import {
  asBuffer, decodeRecordAt, encodeEntryRecord, encodeMeta, encodeSegmentHeader, META_FILE, META_TMP_FILE,
  MIN_FRAME_BYTES, recordBytes, recordToEntry, SEGMENT_HEADER_BYTES, segmentFileName,
} from './format.js';
import { budgetCount, checkReadRange, validateAppend } from './memory-log.js';
import { analyzeLogDir } from './recovery.js';

/** Options of {@link DurableLogStore.open}. */
export interface DurableLogOptions {
  /** A segment is closed and a new one started once it holds at least this many bytes. */
  readonly segmentBytes: number;
}

interface Segment {
  readonly file: string;
  /** Set when the segment is removed (its file gone, its handle closed). */
  dropped: boolean;
  readonly first: LogIndex;
  readonly handle: FileHandle;
  /** File offset of each record; entry `first + k` is at offsets[k]. */
  readonly offsets: number[];
  readonly terms: number[];
  /** Offset after the last record (the write position). */
  end: number;
}

function segLast(s: Segment): LogIndex {
  return s.first + s.offsets.length - 1;
}

function syncHandle(h: FileHandle): void {
  try {
    h.sync();
  } catch (e) {
    throw new FsyncFailedError(h.path, { cause: e });
  }
}

function syncDirectory(fs: FileSystem, dir: string): void {
  try {
    fs.syncDir(dir);
  } catch (e) {
    throw new FsyncFailedError(dir, { cause: e });
  }
}

/**
 * A LogStore on files: segmented, checksummed, group-committed. Semantics as
 * {@link MemoryLogStore} (see memory-log.ts), plus durability: everything
 * appended or truncated before a sync() that returned survives a crash.
 */
export class DurableLogStore implements LogStore {
  private readonly fs: FileSystem;
  private readonly dir: string;
  private readonly segmentBytes: number;
  private readonly segs: Segment[];
  private compacted: LogIndex;
  private compactedTerm: Term;
  /** Segments written since the last sync. */
  private readonly dirty = new Set<Segment>();
  /** A file was created in the directory since the last directory fsync. */
  private dirDirty = false;
  private failed: unknown = null;
  private closed = false;

  private constructor(fs: FileSystem, dir: string, opts: DurableLogOptions, segs: Segment[], compacted: LogIndex, compactedTerm: Term) {
    this.fs = fs;
    this.dir = dir;
    this.segmentBytes = opts.segmentBytes;
    this.segs = segs;
    this.compacted = compacted;
    this.compactedTerm = compactedTerm;
  }

  /**
   * Opens (creating if needed) the log in `dir`, verifying every record.
   * Cuts a torn tail and finishes interrupted removals (durably) before it
   * returns. Throws StorageCorruptionError (the first problem; checkLogDir
   * lists them all) without changing anything when the log is corrupt, and
   * FsyncFailedError if making a repair durable fails.
   */
  static open(fs: FileSystem, dir: string, opts: DurableLogOptions): DurableLogStore {
    if (!(opts.segmentBytes > 0)) throw new RangeError(`segmentBytes must be positive, got ${opts.segmentBytes}`);
    if (!fs.exists(dir)) {
      fs.mkdirp(dir);
      syncDirectory(fs, dir);
    }
    const a = analyzeLogDir(fs, dir);
    const p = a.problems[0];
    if (p !== undefined) {
      const more = a.problems.length > 1 ? ` (and ${a.problems.length - 1} more; run check-data)` : '';
      throw new StorageCorruptionError(p.file, p.offset, p.detail + more);
    }
    let dirChanged = false;
    for (const r of a.repairs) {
      if (r.kind === 'truncate') {
        const h = fs.open(r.file, { create: false });
        try {
          h.truncate(r.offset);
          syncHandle(h);
        } finally {
          h.close();
        }
      } else {
        fs.remove(r.file);
        dirChanged = true;
      }
    }
    if (dirChanged) syncDirectory(fs, dir);
    const segs: Segment[] = [];
    try {
      for (const s of a.segments) {
        segs.push({ file: s.file, first: s.firstIndex, handle: fs.open(s.file, { create: false }), offsets: s.offsets, terms: s.terms, end: s.end, dropped: false });
      }
    } catch (e) {
      for (const s of segs) s.handle.close();
      throw e;
    }
    // Make what recovery found durable before anyone acts on it: after a
    // process kill (the machine stayed up) the page cache may hold appends,
    // a segment creation or a rename that were never synced, and the node
    // will take the whole log as its durable log. Only the last segment can
    // hold unsynced bytes (rolling syncs the others).
    try {
      const tail = segs[segs.length - 1];
      if (tail !== undefined) syncHandle(tail.handle);
      syncDirectory(fs, dir);
    } catch (e) {
      for (const s of segs) s.handle.close();
      throw e;
    }
    return new DurableLogStore(fs, dir, opts, segs, a.compactedIndex, a.compactedTerm);
  }

  firstIndex(): LogIndex {
    this.check();
    return this.compacted + 1;
  }

  lastIndex(): LogIndex {
    this.check();
    return this.last();
  }

  term(index: LogIndex): Term | undefined {
    this.check();
    if (index === this.compacted) return this.compactedTerm;
    if (index <= this.compacted || index > this.last()) return undefined;
    const s = this.segFor(index);
    return s?.terms[index - s.first];
  }

  append(entries: readonly Entry[]): void {
    this.check();
    validateAppend(entries, this.compacted + 1, this.last(), (i) => this.term(i));
    const head = entries[0];
    if (head === undefined) return;
    this.mutate(() => {
      if (head.index <= this.last()) this.truncateFrom(head.index);
      let total = 0;
      for (const e of entries) total += recordBytes(e);
      const buf = Buffer.allocUnsafe(total);
      let pos = 0;
      let i = 0;
      while (i < entries.length) {
        let seg = this.segs[this.segs.length - 1];
        const next = entries[i] as Entry;
        if (seg === undefined || (seg.offsets.length > 0 && seg.end >= this.segmentBytes)) seg = this.roll(next.index);
        if (segLast(seg) + 1 !== next.index) throw new Error(`internal: segment ${seg.file} ends at ${segLast(seg)}, appending ${next.index}`);
        const start = pos;
        let end = seg.end;
        const offsets: number[] = [];
        const terms: number[] = [];
        while (i < entries.length && !(seg.offsets.length + offsets.length > 0 && end >= this.segmentBytes)) {
          const e = entries[i] as Entry;
          const after = encodeEntryRecord(buf, pos, e);
          offsets.push(end);
          terms.push(e.term);
          end += after - pos;
          pos = after;
          i++;
        }
        seg.handle.write(buf.subarray(start, pos), seg.end);
        this.dirty.add(seg);
        seg.end = end;
        for (const o of offsets) seg.offsets.push(o);
        for (const t of terms) seg.terms.push(t);
      }
    });
  }

  truncateSuffix(index: LogIndex): void {
    this.check();
    if (index <= this.compacted) throw new RangeError(`truncateSuffix(${index}): below the first index ${this.compacted + 1}`);
    if (index > this.last()) return;
    this.mutate(() => this.truncateFrom(index));
  }

  compactPrefix(index: LogIndex, term: Term): void {
    this.check();
    if (index <= this.compacted) return;
    this.mutate(() => {
      // A snapshot that disagrees with the log replaces all of it.
      if (index <= this.last() && this.term(index) !== term && index + 1 <= this.last()) this.truncateFrom(index + 1);
      this.writeMeta(index, term);
      this.compacted = index;
      this.compactedTerm = term;
      let removed = false;
      let s = this.segs[0];
      while (s !== undefined && segLast(s) <= index) {
        this.segs.shift();
        this.dropSegment(s);
        removed = true;
        s = this.segs[0];
      }
      if (removed) this.syncDir();
    });
  }

  read(lo: LogIndex, hi: LogIndex, maxBytes: number): Entry[] {
    this.check();
    checkReadRange(lo, hi, this.compacted + 1, this.last());
    if (lo === hi) return [];
    const n = budgetCount(lo, hi, maxBytes, (i) => this.recordSize(i) - MIN_FRAME_BYTES + ENTRY_OVERHEAD_BYTES);
    const out: Entry[] = [];
    let i = lo;
    const stop = lo + n;
    while (i < stop) {
      const s = this.segFor(i) as Segment;
      const j = Math.min(stop, segLast(s) + 1);
      const from = s.offsets[i - s.first] as number;
      const to = j - s.first < s.offsets.length ? (s.offsets[j - s.first] as number) : s.end;
      const buf = asBuffer(s.handle.read(to - from, from));
      let p = 0;
      for (let k = i; k < j; k++) {
        const r = decodeRecordAt(buf, p, buf.length);
        if (!r.ok || r.index !== k) {
          throw new StorageCorruptionError(s.file, from + p, r.ok ? `read entry ${r.index} where ${k} was expected` : `on read: ${r.detail}`);
        }
        out.push(recordToEntry(buf, r));
        p = r.end;
      }
      i = j;
    }
    return out;
  }

  sync(): void {
    this.check();
    this.mutate(() => this.flush());
  }

  /**
   * Group commit without blocking: fdatasyncs every segment written since
   * the last sync, off the calling thread, and calls `done(null)` once every
   * append made before this call is durable, or `done(err)` (the store is
   * then failed, as after a failed sync()). Appends may continue meanwhile.
   */
  syncAsync(done: (err: unknown) => void): void {
    try {
      this.check();
    } catch (e) {
      done(e);
      return;
    }
    const segs = [...this.dirty];
    this.dirty.clear();
    let left = segs.length;
    let failure: unknown = null;
    const finish = (): void => {
      if (failure === null && this.failed === null && this.dirDirty) {
        try {
          this.mutate(() => this.syncDir());
        } catch (e) {
          failure = e;
        }
      }
      if (failure !== null && this.failed === null) this.failed = failure;
      done(failure ?? this.failed);
    };
    if (left === 0) {
      finish();
      return;
    }
    for (const s of segs) {
      const after = (err: Error | null): void => {
        if (err !== null && !s.dropped && failure === null) failure = new FsyncFailedError(s.handle.path, { cause: err });
        if (--left === 0) finish();
      };
      if (s.handle.syncAsync !== undefined) {
        s.handle.syncAsync(after);
      } else {
        let err: Error | null = null;
        try {
          s.handle.sync();
        } catch (e) {
          err = e instanceof Error ? e : new Error(String(e));
        }
        after(err);
      }
    }
  }

  /** Releases the file handles. Does not sync: unsynced appends may be lost. Allowed after a failure. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.segs) {
      try {
        s.handle.close();
      } catch {
        // closing is best effort; the store is unusable either way
      }
    }
  }

  private last(): LogIndex {
    const s = this.segs[this.segs.length - 1];
    return s === undefined ? this.compacted : segLast(s);
  }

  /** The segment holding `index` (the last whose first index is at or below it). */
  private segFor(index: LogIndex): Segment | undefined {
    let lo = 0;
    let hi = this.segs.length - 1;
    let found: Segment | undefined;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const s = this.segs[mid] as Segment;
      if (s.first <= index) {
        found = s;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return found;
  }

  /** Bytes of the framed record of `index` on disk. */
  private recordSize(index: LogIndex): number {
    const s = this.segFor(index) as Segment;
    const k = index - s.first;
    const end = k + 1 < s.offsets.length ? (s.offsets[k + 1] as number) : s.end;
    return end - (s.offsets[k] as number);
  }

  /** fdatasyncs every segment written since the last sync, then the directory if it changed. */
  private flush(): void {
    for (const s of this.dirty) {
      syncHandle(s.handle);
      this.dirty.delete(s);
    }
    if (this.dirDirty) this.syncDir();
  }

  private syncDir(): void {
    syncDirectory(this.fs, this.dir);
    this.dirDirty = false;
  }

  /** Starts a new segment at `first`, after making everything before it durable. */
  private roll(first: LogIndex): Segment {
    // The segment being closed is synced here even if a syncAsync covering
    // it is still running: the rule is that it is durable before the next exists.
    const prev = this.segs[this.segs.length - 1];
    if (prev !== undefined) this.dirty.add(prev);
    this.flush();
    const file = joinPath(this.dir, segmentFileName(first));
    const handle = this.fs.open(file, { create: true });
    if (handle.size() > 0) handle.truncate(0);
    handle.write(encodeSegmentHeader(first), 0);
    const seg: Segment = { file, first, handle, offsets: [], terms: [], end: SEGMENT_HEADER_BYTES, dropped: false };
    this.segs.push(seg);
    this.dirty.add(seg);
    this.dirDirty = true;
    return seg;
  }

  private dropSegment(s: Segment): void {
    s.dropped = true;
    this.dirty.delete(s);
    s.handle.close();
    this.fs.remove(s.file);
  }

  /** Cuts every entry at or after `index` (> compacted, <= last), durably. */
  private truncateFrom(index: LogIndex): void {
    // Whole segments go: those from the cut on, and all of them when nothing
    // after the compaction point remains (a segment holding only compacted
    // entries is not kept, as at open).
    const all = index === this.compacted + 1;
    let s = this.segs[this.segs.length - 1];
    while (s !== undefined && (all || s.first >= index)) {
      this.segs.pop();
      this.dropSegment(s);
      this.syncDir();
      s = this.segs[this.segs.length - 1];
    }
    if (s === undefined || index > segLast(s)) return;
    const k = index - s.first;
    const off = s.offsets[k] as number;
    s.handle.truncate(off);
    syncHandle(s.handle);
    this.dirty.delete(s);
    s.offsets.length = k;
    s.terms.length = k;
    s.end = off;
  }

  /** Replaces log.meta atomically and durably. */
  private writeMeta(index: LogIndex, term: Term): void {
    const tmp = joinPath(this.dir, META_TMP_FILE);
    const h = this.fs.open(tmp, { create: true });
    try {
      h.truncate(0);
      h.write(encodeMeta(index, term), 0);
      syncHandle(h);
    } finally {
      h.close();
    }
    this.fs.rename(tmp, joinPath(this.dir, META_FILE));
    this.syncDir();
  }

  /** Runs a change; any error in it fails the store for good. */
  private mutate(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.failed = e;
      throw e;
    }
  }

  private check(): void {
    if (this.failed !== null) {
      const why = this.failed instanceof Error ? this.failed.message : String(this.failed);
      throw new StoreClosedError(`log store failed earlier and must be reopened after a restart: ${why}`, { cause: this.failed });
    }
    if (this.closed) throw new StoreClosedError('log store is closed');
  }
}
