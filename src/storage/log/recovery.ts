// Start-up analysis of a log directory, shared by DurableLogStore.open (which
// refuses to start on any problem and applies the repairs) and checkLogDir
// (which only reports). It reads; it never writes.
//
// Rules (see durable-log.ts for why they are safe):
// - log.meta, when present, must decode; it gives the compaction point K.
// - Segments are sorted by the first index in their names. A segment followed
//   by one whose first index is <= K + 1 lies wholly within the compaction
//   point: it is left over from an interrupted compactPrefix and is removed
//   without being read.
// - Every other segment is read whole and every record verified.
// - The LAST segment file may end in a torn tail (a record that fails framing
//   or checksum with nothing valid after it, or zeros): cut at the end of the
//   last good record. It may also be a creation cut short (shorter than a
//   header, or all zeros): removed.
// - Anything else is a problem (corruption): a damaged record that a valid one
//   follows, any damage in a segment that is not the last, a bad header, an
//   index out of sequence, a gap or overlap between segments (a missing
//   segment), or a first segment that starts after K + 1.
// - Segments whose entries are all <= K are removed (compaction completed).
// "A valid record follows" means: at some later byte offset, a record passes
// framing, CRC32C, type and an index this segment could hold. Entry data that
// itself contains such a record inside a torn tail would be read as
// corruption (refusal, never loss); the CRC and index checks make that
// vanishingly rare.

import type { LogIndex, Term } from '../../protocol/ids.js';
import type { FileSystem } from '../fs.js';
import { joinPath } from '../fs.js';
import { asBuffer, decodeMeta, META_FILE, META_TMP_FILE, parseSegmentFileName, scanSegment } from './format.js';

/** A problem or repair, located by file and byte offset. */
export interface LogFinding {
  readonly file: string;
  readonly offset: number;
  readonly detail: string;
}

/** A change that recovery makes: cut a torn tail, or remove a file. */
export type LogRepair =
  | (LogFinding & { readonly kind: 'truncate' })
  | (LogFinding & { readonly kind: 'remove' });

/** A segment that survives recovery, with its in-memory index. */
export interface RecoveredSegment {
  readonly file: string;
  readonly firstIndex: LogIndex;
  /** Offsets of its records (consecutive indexes from firstIndex). */
  readonly offsets: number[];
  readonly terms: number[];
  /** Offset after the last good record (the file size once torn tails are cut). */
  readonly end: number;
  /** The last index the segment's records reach, damaged or not (for the continuity check). */
  readonly reach: LogIndex;
}

/** What a log directory holds, what is wrong with it, and what recovery would change. */
export interface LogAnalysis {
  readonly compactedIndex: LogIndex;
  readonly compactedTerm: Term;
  /** Corruption: the store refuses to open while there is any. */
  readonly problems: LogFinding[];
  /** Changes recovery makes (torn tails, aborted creations, finished compactions). */
  readonly repairs: LogRepair[];
  /** Segments kept, in index order (meaningful when there are no problems). */
  readonly segments: RecoveredSegment[];
  /** Entries in (compactedIndex, lastIndex]. */
  readonly entries: number;
  readonly firstIndex: LogIndex;
  readonly lastIndex: LogIndex;
}

function readWhole(fs: FileSystem, file: string): Buffer {
  const h = fs.open(file, { create: false });
  try {
    return asBuffer(h.read(h.size(), 0));
  } finally {
    h.close();
  }
}

/** Reads and verifies the log in `dir` (which must exist) without changing anything. */
export function analyzeLogDir(fs: FileSystem, dir: string): LogAnalysis {
  const problems: LogFinding[] = [];
  const repairs: LogRepair[] = [];
  let compactedIndex = 0;
  let compactedTerm = 0;
  let metaOk = true;
  const names = fs.list(dir);

  const metaPath = joinPath(dir, META_FILE);
  if (names.includes(META_FILE)) {
    const m = decodeMeta(readWhole(fs, metaPath));
    if (m.ok) {
      compactedIndex = m.index;
      compactedTerm = m.term;
    } else {
      metaOk = false;
      problems.push({ file: metaPath, offset: 0, detail: m.detail });
    }
  }
  if (names.includes(META_TMP_FILE)) {
    repairs.push({ kind: 'remove', file: joinPath(dir, META_TMP_FILE), offset: 0, detail: 'leftover temporary file of an interrupted compaction' });
  }

  const files: Array<{ name: string; first: LogIndex }> = [];
  for (const name of names) {
    const first = parseSegmentFileName(name);
    if (first !== undefined) files.push({ name, first });
  }
  files.sort((a, b) => a.first - b.first);

  const segments: RecoveredSegment[] = [];
  for (let i = 0; i < files.length; i++) {
    const f = files[i] as { name: string; first: LogIndex };
    const file = joinPath(dir, f.name);
    const next = files[i + 1];
    if (next !== undefined && next.first <= compactedIndex + 1) {
      repairs.push({ kind: 'remove', file, offset: 0, detail: `segment below the compaction point ${compactedIndex}` });
      continue;
    }
    const isLast = next === undefined;
    const scan = scanSegment(readWhole(fs, file), f.first);
    if (scan.firstIndex === undefined) {
      const d = scan.damages[0];
      const detail = d?.detail ?? 'bad segment header';
      if (isLast && scan.tornHeader) repairs.push({ kind: 'remove', file, offset: 0, detail: `creation cut short: ${detail}` });
      else problems.push({ file, offset: 0, detail });
      continue;
    }
    let damaged = false;
    for (const d of scan.damages) {
      if (!(d.tornTail && isLast)) damaged = true;
      if (d.tornTail && isLast) repairs.push({ kind: 'truncate', file, offset: d.offset, detail: `torn tail cut: ${d.detail}` });
      else if (d.tornTail) problems.push({ file, offset: d.offset, detail: `${d.detail} in a segment that is not the last (its end was durable)` });
      else problems.push({ file, offset: d.offset, detail: d.detail });
    }
    segments.push({
      file,
      firstIndex: scan.firstIndex,
      offsets: scan.offsets.slice(0, indexCount(scan.offsets, scan.goodEnd)),
      terms: scan.terms.slice(0, indexCount(scan.offsets, scan.goodEnd)),
      end: scan.goodEnd,
      reach: damaged ? scan.lastRecordIndex : scan.firstIndex + indexCount(scan.offsets, scan.goodEnd) - 1,
    });
  }

  // Continuity between segments, and with the compaction point.
  let prev: RecoveredSegment | undefined;
  for (const s of segments) {
    if (prev === undefined) {
      if (metaOk && s.firstIndex > compactedIndex + 1) {
        problems.push({ file: s.file, offset: 0, detail: `entries ${compactedIndex + 1}..${s.firstIndex - 1} are missing before this segment (a segment file lost?)` });
      }
    } else {
      const prevLast = prev.reach;
      if (s.firstIndex > prevLast + 1) {
        problems.push({ file: s.file, offset: 0, detail: `entries ${prevLast + 1}..${s.firstIndex - 1} are missing before this segment (a segment file lost?)` });
      } else if (s.firstIndex < prevLast + 1) {
        problems.push({ file: s.file, offset: 0, detail: `segment starts at ${s.firstIndex}, overlapping the previous one, which ends at ${prevLast}` });
      }
      const prevTerm = prev.terms[prev.terms.length - 1];
      const firstTerm = s.terms[0];
      if (prevTerm !== undefined && firstTerm !== undefined && firstTerm < prevTerm) {
        problems.push({ file: s.file, offset: s.offsets[0] ?? 0, detail: `first term ${firstTerm} below the previous segment's last term ${prevTerm}` });
      }
    }
    prev = s;
  }

  // Report in log order: log.meta, then the segments by index, each by offset.
  const rank = new Map<string, number>(files.map((f, i) => [joinPath(dir, f.name), i]));
  const rankOf = (file: string) => rank.get(file) ?? -1;
  problems.sort((x, y) => rankOf(x.file) - rankOf(y.file) || x.offset - y.offset);

  // Segments whose every entry is within the compaction point go.
  const kept: RecoveredSegment[] = [];
  for (const s of segments) {
    const last = s.firstIndex + s.offsets.length - 1;
    if (last <= compactedIndex) repairs.push({ kind: 'remove', file: s.file, offset: 0, detail: `every entry is at or below the compaction point ${compactedIndex}` });
    else kept.push(s);
  }
  const tail = kept[kept.length - 1];
  const lastIndex = tail === undefined ? compactedIndex : tail.firstIndex + tail.offsets.length - 1;
  return {
    compactedIndex, compactedTerm, problems, repairs, segments: kept,
    entries: lastIndex - compactedIndex, firstIndex: compactedIndex + 1, lastIndex,
  };
}

/** How many of `offsets` start before `end`. */
function indexCount(offsets: readonly number[], end: number): number {
  let n = offsets.length;
  while (n > 0 && (offsets[n - 1] as number) >= end) n--;
  return n;
}
