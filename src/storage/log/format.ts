// The on-disk format of the durable log, written by hand (no library), and the
// scanner that verifies a segment. All integers are little-endian.
//
// Log directory:
//   NNNNNNNNNNNNNNNNNNNN.seg  segment files, named by the index of their first
//                             entry, zero-padded to 20 digits, e.g.
//                             00000000000000000001.seg
//   log.meta                  the compaction point (absent until the first
//                             compactPrefix); replaced atomically via
//                             log.meta.tmp (write, fdatasync, rename, fsync dir)
//
// Segment header (SEGMENT_HEADER_BYTES = 20):
//   0  magic      4 bytes  'QLSG'
//   4  version    u16      FORMAT_VERSION (1)
//   6  reserved   u16      0
//   8  firstIndex u64      the index of the segment's first entry (= its name)
//   16 crc32c     u32      CRC32C of bytes [0, 16)
//
// Records follow the header back to back (RECORD_HEADER_BYTES = 8):
//   0  length     u32      bytes of type + payload
//   4  crc32c     u32      CRC32C of the `length` bytes that follow
//   8  type       u8       RECORD_ENTRY (1); 0 is never valid (zero-filled tails)
//   9  payload    length - 1 bytes
//
// Entry payload (RECORD_ENTRY; ENTRY_PAYLOAD_FIXED = 17 bytes + data):
//   0  index      u64
//   8  term       u64
//   16 entryType  u8       0 = data, 1 = noop, 2 = config
//   17 data       the rest (for a config entry: the configuration, encoded as
//                 src/codec/configuration.ts writes it; checked on read)
//
// log.meta (META_BYTES = 28):
//   0  magic 'QLMT' | 4 version u16 | 6 reserved u16 | 8 compactedIndex u64 |
//   16 compactedTerm u64 | 24 crc32c u32 of bytes [0, 24)
//
// Inside a segment, entry indexes are consecutive from firstIndex and terms do
// not decrease; consecutive segments continue each other's indexes.
// u64 fields hold JavaScript safe integers (< 2^53); larger values are malformed.

import { crc32c } from '@node-rs/crc32';
import { encodeConfiguration, decodeConfiguration } from '../../codec/configuration.js';
import { CodecError } from '../../codec/errors.js';
import type { Configuration, Entry } from '../../protocol/entry.js';
import type { LogIndex, Term } from '../../protocol/ids.js';

/** Version written in segment headers and log.meta. */
export const FORMAT_VERSION = 1;
/** Size of a segment header in bytes. */
export const SEGMENT_HEADER_BYTES = 20;
/** Size of the framing before a record's type byte (length, crc32c). */
export const RECORD_HEADER_BYTES = 8;
/** Record type of a log entry. */
export const RECORD_ENTRY = 1;
/** Bytes of an entry payload before its data. */
export const ENTRY_PAYLOAD_FIXED = 17;
/** Smallest valid record `length` (type byte + fixed entry payload). */
export const MIN_RECORD_LENGTH = 1 + ENTRY_PAYLOAD_FIXED;
/** Smallest framed entry record (an entry with empty data). */
export const MIN_FRAME_BYTES = RECORD_HEADER_BYTES + MIN_RECORD_LENGTH;
/** Size of log.meta. */
export const META_BYTES = 28;
/** Name of the compaction-point file in the log directory. */
export const META_FILE = 'log.meta';
/** Temporary name log.meta is written under before the rename. */
export const META_TMP_FILE = 'log.meta.tmp';

const SEGMENT_MAGIC = Buffer.from('QLSG', 'latin1');
const META_MAGIC = Buffer.from('QLMT', 'latin1');
const TWO_32 = 2 ** 32;
const SEGMENT_NAME = /^(\d{20})\.seg$/;

function writeU64(buf: Buffer, off: number, v: number): void {
  buf.writeUInt32LE(v % TWO_32, off);
  buf.writeUInt32LE(Math.floor(v / TWO_32), off + 4);
}

/** Reads a u64; undefined when it is not a safe integer. */
function readU64(buf: Buffer, off: number): number | undefined {
  const hi = buf.readUInt32LE(off + 4);
  if (hi >= 2 ** 21) return undefined;
  return hi * TWO_32 + buf.readUInt32LE(off);
}

/** Views any Uint8Array as a Buffer without copying. */
export function asBuffer(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/** The file name of the segment whose first entry is `firstIndex`. */
export function segmentFileName(firstIndex: LogIndex): string {
  return `${String(firstIndex).padStart(20, '0')}.seg`;
}

/** The first index a segment file name stands for; undefined if `name` is not a segment name. */
export function parseSegmentFileName(name: string): LogIndex | undefined {
  const m = SEGMENT_NAME.exec(name);
  if (m === null) return undefined;
  const v = Number(m[1]);
  return Number.isSafeInteger(v) ? v : undefined;
}

/** Encodes a segment header. */
export function encodeSegmentHeader(firstIndex: LogIndex): Buffer {
  const b = Buffer.alloc(SEGMENT_HEADER_BYTES);
  SEGMENT_MAGIC.copy(b, 0);
  b.writeUInt16LE(FORMAT_VERSION, 4);
  b.writeUInt16LE(0, 6);
  writeU64(b, 8, firstIndex);
  b.writeUInt32LE(crc32c(b.subarray(0, 16)), 16);
  return b;
}

/** Decodes a segment header: the first index, or why the header is bad. */
export function decodeSegmentHeader(buf: Buffer): { ok: true; firstIndex: LogIndex } | { ok: false; detail: string } {
  if (buf.length < SEGMENT_HEADER_BYTES) return { ok: false, detail: `segment header cut short (${buf.length} of ${SEGMENT_HEADER_BYTES} bytes)` };
  if (!buf.subarray(0, 4).equals(SEGMENT_MAGIC)) return { ok: false, detail: 'bad segment magic' };
  if (buf.readUInt32LE(16) !== crc32c(buf.subarray(0, 16))) return { ok: false, detail: 'segment header checksum mismatch' };
  const version = buf.readUInt16LE(4);
  if (version !== FORMAT_VERSION) return { ok: false, detail: `unsupported segment format version ${version}` };
  const firstIndex = readU64(buf, 8);
  if (firstIndex === undefined || firstIndex < 1) return { ok: false, detail: 'segment first index out of range' };
  return { ok: true, firstIndex };
}

/** Entry type bytes in a record. */
const ENTRY_TYPE_DATA = 0;
const ENTRY_TYPE_NOOP = 1;
const ENTRY_TYPE_CONFIG = 2;

/** The bytes written after an entry's fixed payload: its data, or its encoded configuration. */
function entryPayload(entry: Entry): Uint8Array {
  return entry.type === 'config' ? encodeConfiguration(entry.config) : entry.data;
}

/** Bytes the framed record of `entry` takes on disk. */
export function recordBytes(entry: Entry): number {
  return RECORD_HEADER_BYTES + MIN_RECORD_LENGTH + entryPayload(entry).byteLength;
}

/** Writes the framed record of `entry` into `buf` at `off`; returns the offset after it. */
export function encodeEntryRecord(buf: Buffer, off: number, entry: Entry): number {
  const payload = entryPayload(entry);
  const len = MIN_RECORD_LENGTH + payload.byteLength;
  buf.writeUInt32LE(len, off);
  buf[off + 8] = RECORD_ENTRY;
  writeU64(buf, off + 9, entry.index);
  writeU64(buf, off + 17, entry.term);
  buf[off + 25] = entry.type === 'noop' ? ENTRY_TYPE_NOOP : entry.type === 'config' ? ENTRY_TYPE_CONFIG : ENTRY_TYPE_DATA;
  buf.set(payload, off + 26);
  buf.writeUInt32LE(crc32c(buf.subarray(off + 8, off + 8 + len)), off + 4);
  return off + 8 + len;
}

/** A record that decoded cleanly. */
export interface DecodedRecord {
  readonly ok: true;
  readonly index: LogIndex;
  readonly term: Term;
  readonly type: Entry['type'];
  /** A config entry's configuration (decoded and checked); null for other types. */
  readonly config: Configuration | null;
  /** Offset of the data within the buffer, and its length. */
  readonly dataOffset: number;
  readonly dataLength: number;
  /** Offset just after the record. */
  readonly end: number;
}

/** A record that did not decode; `checksumOk` tells a malformed-but-intact record from a damaged one. */
export interface BadRecord {
  readonly ok: false;
  readonly detail: string;
  readonly checksumOk: boolean;
  /** Where the record would end if its length is trusted (checksumOk only). */
  readonly end: number;
}

/** Decodes the record at `p` in `buf[0, end)`. */
export function decodeRecordAt(buf: Buffer, p: number, end: number): DecodedRecord | BadRecord {
  const left = end - p;
  if (left < RECORD_HEADER_BYTES) return { ok: false, detail: `partial record header (${left} bytes)`, checksumOk: false, end };
  const len = buf.readUInt32LE(p);
  if (len < MIN_RECORD_LENGTH) return { ok: false, detail: `record length ${len} too small`, checksumOk: false, end };
  if (len > left - RECORD_HEADER_BYTES) return { ok: false, detail: `record length ${len} runs past the end of the file (${left - RECORD_HEADER_BYTES} bytes left)`, checksumOk: false, end };
  const recEnd = p + RECORD_HEADER_BYTES + len;
  if (buf.readUInt32LE(p + 4) !== crc32c(buf.subarray(p + 8, recEnd))) return { ok: false, detail: 'record checksum mismatch', checksumOk: false, end };
  const type = buf[p + 8];
  if (type !== RECORD_ENTRY) return { ok: false, detail: `unknown record type ${String(type)}`, checksumOk: true, end: recEnd };
  const index = readU64(buf, p + 9);
  const term = readU64(buf, p + 17);
  if (index === undefined || index < 1 || term === undefined) return { ok: false, detail: 'entry index or term out of range', checksumOk: true, end: recEnd };
  const et = buf[p + 25];
  const dataLength = len - MIN_RECORD_LENGTH;
  if (et === ENTRY_TYPE_CONFIG) {
    let config: Configuration;
    try {
      config = decodeConfiguration(buf.subarray(p + 26, p + 26 + dataLength));
    } catch (e) {
      if (!(e instanceof CodecError)) throw e;
      return { ok: false, detail: `config entry ${index}: ${e.reason}`, checksumOk: true, end: recEnd };
    }
    return { ok: true, index, term, type: 'config', config, dataOffset: p + 26, dataLength, end: recEnd };
  }
  if (et !== ENTRY_TYPE_DATA && et !== ENTRY_TYPE_NOOP) return { ok: false, detail: `unknown entry type ${String(et)}`, checksumOk: true, end: recEnd };
  return { ok: true, index, term, type: et === ENTRY_TYPE_NOOP ? 'noop' : 'data', config: null, dataOffset: p + 26, dataLength, end: recEnd };
}

/** Turns a decoded record into an Entry, copying its data out of `buf`. */
export function recordToEntry(buf: Buffer, r: DecodedRecord): Entry {
  if (r.type === 'config') {
    if (r.config === null) throw new Error(`internal: config record ${r.index} without its configuration`);
    return { index: r.index, term: r.term, type: 'config', config: r.config, data: new Uint8Array(0) };
  }
  const data = new Uint8Array(r.dataLength); // a plain Uint8Array, not a Buffer view of the read buffer
  data.set(buf.subarray(r.dataOffset, r.dataOffset + r.dataLength));
  return { index: r.index, term: r.term, type: r.type, data };
}

/** Encodes log.meta. */
export function encodeMeta(compactedIndex: LogIndex, compactedTerm: Term): Buffer {
  const b = Buffer.alloc(META_BYTES);
  META_MAGIC.copy(b, 0);
  b.writeUInt16LE(FORMAT_VERSION, 4);
  writeU64(b, 8, compactedIndex);
  writeU64(b, 16, compactedTerm);
  b.writeUInt32LE(crc32c(b.subarray(0, 24)), 24);
  return b;
}

/** Decodes log.meta: the compaction point, or why the file is bad. */
export function decodeMeta(buf: Buffer): { ok: true; index: LogIndex; term: Term } | { ok: false; detail: string } {
  if (buf.length !== META_BYTES) return { ok: false, detail: `log.meta is ${buf.length} bytes, expected ${META_BYTES}` };
  if (!buf.subarray(0, 4).equals(META_MAGIC)) return { ok: false, detail: 'bad log.meta magic' };
  if (buf.readUInt32LE(24) !== crc32c(buf.subarray(0, 24))) return { ok: false, detail: 'log.meta checksum mismatch' };
  if (buf.readUInt16LE(4) !== FORMAT_VERSION) return { ok: false, detail: `unsupported log.meta version ${buf.readUInt16LE(4)}` };
  const index = readU64(buf, 8);
  const term = readU64(buf, 16);
  if (index === undefined || term === undefined) return { ok: false, detail: 'log.meta index or term out of range' };
  return { ok: true, index, term };
}

/** One problem found in a segment by {@link scanSegment}. */
export interface SegmentDamage {
  readonly offset: number;
  readonly detail: string;
  /**
   * True when the damage is a record that failed its framing or checksum and
   * nothing valid follows it in the file (or the rest is zeros): what a crash
   * mid-write leaves. Cuttable only in the last segment.
   */
  readonly tornTail: boolean;
}

/** What {@link scanSegment} learned of a segment. */
export interface SegmentScan {
  /** The header's first index; undefined when the header is bad (then `damages[0]` says why). */
  readonly firstIndex: LogIndex | undefined;
  /** The header is bad because the file is shorter than a header, or all zeros: a creation cut by a crash. */
  readonly tornHeader: boolean;
  /** Offsets and terms of the valid records, in file order. */
  readonly offsets: number[];
  readonly terms: number[];
  /** Index of the last valid record (firstIndex - 1 when none). */
  readonly lastRecordIndex: LogIndex;
  /** Offset after the last valid record that precedes every damage (where a torn tail is cut). */
  readonly goodEnd: number;
  readonly damages: SegmentDamage[];
}

function allZero(buf: Buffer, from: number, end: number): boolean {
  for (let i = from; i < end; i++) if (buf[i] !== 0) return false;
  return true;
}

/**
 * The offset of the first record after `from` that passes every check
 * (framing, checksum, type, an index this segment could hold), or -1.
 * Used to tell a torn tail (nothing valid follows) from corruption.
 */
export function findNextValidRecord(buf: Buffer, from: number, end: number, firstIndex: LogIndex): number {
  const maxIndex = firstIndex + Math.ceil(end / MIN_FRAME_BYTES);
  for (let q = from + 1; q + MIN_FRAME_BYTES <= end; q++) {
    if (buf[q + 8] !== RECORD_ENTRY) continue;
    const len = buf.readUInt32LE(q);
    if (len < MIN_RECORD_LENGTH || len > end - q - RECORD_HEADER_BYTES) continue;
    const idx = readU64(buf, q + 9);
    if (idx === undefined || idx < firstIndex || idx > maxIndex) continue;
    if (decodeRecordAt(buf, q, end).ok) return q;
  }
  return -1;
}

/**
 * Verifies a whole segment held in `buf`: its header (against the first
 * index its name gives) and every record. It reports every damage it finds,
 * resuming after each at the next valid record. It classifies; the caller
 * decides (see recovery.ts).
 */
export function scanSegment(buf: Buffer, nameFirstIndex: LogIndex): SegmentScan {
  const end = buf.length;
  const offsets: number[] = [];
  const terms: number[] = [];
  const damages: SegmentDamage[] = [];
  const header = decodeSegmentHeader(buf.subarray(0, SEGMENT_HEADER_BYTES));
  if (!header.ok || header.firstIndex !== nameFirstIndex) {
    const tornHeader = end < SEGMENT_HEADER_BYTES || allZero(buf, 0, end);
    const detail = header.ok ? `header first index ${header.firstIndex} does not match the file name (${nameFirstIndex})` : header.detail;
    damages.push({ offset: 0, detail: tornHeader ? `${detail} (file of ${end} bytes, nothing written)` : detail, tornTail: false });
    return { firstIndex: undefined, tornHeader, offsets, terms, lastRecordIndex: nameFirstIndex - 1, goodEnd: 0, damages };
  }
  const first = header.firstIndex;
  let expect = first;
  let prevTerm = 0;
  let lastRecordIndex = first - 1;
  let goodEnd = SEGMENT_HEADER_BYTES;
  let p = SEGMENT_HEADER_BYTES;
  let resumed = false;
  while (p < end) {
    const r = decodeRecordAt(buf, p, end);
    if (r.ok) {
      if (resumed && r.index > expect) expect = r.index; // the gap is the damage already reported
      resumed = false;
      if (r.index !== expect) damages.push({ offset: p, detail: `entry index ${r.index} where ${expect} was expected`, tornTail: false });
      else if (r.term < prevTerm) damages.push({ offset: p, detail: `entry ${r.index} has term ${r.term}, below the previous term ${prevTerm}`, tornTail: false });
      offsets.push(p);
      terms.push(r.term);
      expect = r.index + 1;
      prevTerm = r.term;
      lastRecordIndex = r.index;
      p = r.end;
      if (damages.length === 0) goodEnd = p;
      continue;
    }
    if (r.checksumOk) {
      // Intact but malformed: written so, not torn. Skip it by its (checksummed) length.
      damages.push({ offset: p, detail: r.detail, tornTail: false });
      p = r.end;
      continue;
    }
    const next = findNextValidRecord(buf, p, end, first);
    if (next < 0) {
      const detail = allZero(buf, p, end) ? `zero-filled tail (${end - p} bytes)` : `${r.detail}; nothing valid follows (torn write)`;
      damages.push({ offset: p, detail, tornTail: true });
      break;
    }
    damages.push({ offset: p, detail: `${r.detail}; a valid record follows at byte ${next}`, tornTail: false });
    p = next;
    resumed = true;
  }
  return { firstIndex: first, tornHeader: false, offsets, terms, lastRecordIndex, goodEnd, damages };
}
