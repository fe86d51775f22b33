// A node's data directory: where each store lives inside it, and a read-only
// check of the whole directory (what `quorumlog check-data DIR` runs).
//
//   DIR/log/        segment files (storage/log)
//   DIR/state/      term, vote and commit (storage/state)
//   DIR/snapshots/  snapshots (storage/snapshot)

import { crc32c } from '@node-rs/crc32';
import type { FileSystem } from './fs.js';
import { joinPath } from './fs.js';
import { checkLogDir, type LogCheckReport } from './log/check.js';
import {
  decodeSnapshotHeader, isHeaderError, parseSnapshotFileName, RECEIVE_SUFFIX, SNAPSHOT_HEADER_BYTES, SNAPSHOT_MAGIC,
  WRITE_TMP_SUFFIX,
} from './snapshot/format.js';
import { STATE_FILE_NAME } from './state/durable-state-store.js';
import { decodeHardState, isDecodeError } from './state/format.js';

/** The store directories inside a data directory. */
export function dataDirLayout(dir: string): { log: string; state: string; snapshots: string } {
  return { log: joinPath(dir, 'log'), state: joinPath(dir, 'state'), snapshots: joinPath(dir, 'snapshots') };
}

/** One finding: a file, a byte offset, and what is wrong (or what recovery would repair). */
export interface Finding {
  readonly file: string;
  readonly offset: number;
  readonly detail: string;
}

/** The result of {@link checkDataDir}. */
export interface DataCheckReport {
  /** Corruption: the node will refuse to start while there is any. */
  readonly problems: Finding[];
  /** What a start-up would clean up after a crash (torn tails, temporary files): normal, not problems. */
  readonly repairs: Finding[];
  readonly log: LogCheckReport;
  readonly snapshots: number;
}

/** Verifies every store in `dir` without changing anything, and reports every problem found. */
export function checkDataDir(fs: FileSystem, dir: string, chunkBytes = 1 << 20): DataCheckReport {
  const layout = dataDirLayout(dir);
  const problems: Finding[] = [];
  const repairs: Finding[] = [];
  if (!fs.exists(dir)) problems.push({ file: dir, offset: 0, detail: 'data directory does not exist' });
  const log = checkLogDir(fs, layout.log);
  problems.push(...log.problems);
  repairs.push(...log.repairs);
  checkState(fs, layout.state, problems, repairs);
  const snapshots = checkSnapshots(fs, layout.snapshots, chunkBytes, problems, repairs);
  return { problems, repairs, log, snapshots };
}

function checkState(fs: FileSystem, dir: string, problems: Finding[], repairs: Finding[]): void {
  if (!fs.exists(dir)) return; // a node that never voted has no state yet
  const file = joinPath(dir, STATE_FILE_NAME);
  for (const name of fs.list(dir)) {
    if (name.endsWith('.tmp')) repairs.push({ file: joinPath(dir, name), offset: 0, detail: 'temporary file of an interrupted save: removed at start-up' });
  }
  if (!fs.exists(file)) return;
  const h = fs.open(file, { create: false });
  try {
    const r = decodeHardState(h.read(h.size(), 0));
    if (isDecodeError(r)) problems.push({ file, offset: r.offset, detail: r.detail });
  } finally {
    h.close();
  }
}

function checkSnapshots(fs: FileSystem, dir: string, chunkBytes: number, problems: Finding[], repairs: Finding[]): number {
  if (!fs.exists(dir)) return 0;
  let count = 0;
  for (const name of fs.list(dir).sort()) {
    const file = joinPath(dir, name);
    if (name.endsWith(WRITE_TMP_SUFFIX)) {
      repairs.push({ file, offset: 0, detail: 'snapshot write that never committed: removed at start-up' });
      continue;
    }
    if (name.endsWith(RECEIVE_SUFFIX)) {
      repairs.push({ file, offset: 0, detail: 'partially received snapshot: resumed or discarded at start-up' });
      continue;
    }
    const meta = parseSnapshotFileName(name);
    if (meta === undefined) continue;
    count++;
    const h = fs.open(file, { create: false });
    try {
      const header = decodeSnapshotHeader(h.read(SNAPSHOT_HEADER_BYTES, 0), SNAPSHOT_MAGIC);
      if (isHeaderError(header)) {
        problems.push({ file, offset: header.offset, detail: header.detail });
        continue;
      }
      if (header.index !== meta.index || header.term !== meta.term) {
        problems.push({ file, offset: 8, detail: `header says ${header.index}/${header.term}, file name says ${meta.index}/${meta.term}` });
        continue;
      }
      const size = h.size();
      const expected = SNAPSHOT_HEADER_BYTES + header.sizeBytes;
      if (size !== expected) {
        problems.push({ file, offset: Math.min(size, expected), detail: `file holds ${size} bytes, header says ${expected}` });
        continue;
      }
      let crc = 0;
      for (let pos = 0; pos < header.sizeBytes;) {
        const chunk = h.read(Math.min(chunkBytes, header.sizeBytes - pos), SNAPSHOT_HEADER_BYTES + pos);
        if (chunk.byteLength === 0) break;
        crc = crc32c(chunk, crc);
        pos += chunk.byteLength;
      }
      if ((crc >>> 0) !== header.checksum) {
        problems.push({ file, offset: SNAPSHOT_HEADER_BYTES, detail: `body checksum mismatch (stored ${header.checksum}, computed ${crc >>> 0})` });
      }
    } finally {
      h.close();
    }
  }
  return count;
}
