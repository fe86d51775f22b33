// The on-disk format of snapshot files, written by DurableSnapshotStore.
//
// A file is a fixed 40-byte header followed by the snapshot body (the bytes
// the state machine wrote). Little-endian:
//
//   offset  size  field
//   0       4     magic: "QLSN" (committed snapshot) or "QLRV" (receive in progress)
//   4       2     format version (1)
//   6       2     reserved, zero
//   8       8     index (u64)
//   16      8     term (u64)
//   24      8     body size in bytes (u64); for "QLRV": bytes durably received
//   32      4     CRC32C of the body (of the bytes received so far, for "QLRV")
//   36      4     CRC32C of header bytes [0, 36)
//
// The body starts at byte 40; a committed file is exactly 40 + size bytes.
// The header is written last (after the body), so a file whose header is
// still zero was never committed.
//
// File names: `<index>-<term>.snap` with both numbers as 20 decimal digits;
// `.snap.tmp` while the state machine writes it; `.snap.recv` while a
// follower receives it from the leader.

import { crc32c } from '@node-rs/crc32';
import type { SnapshotMeta } from '../../protocol/entry.js';

/** Bytes before the body. */
export const SNAPSHOT_HEADER_BYTES = 40;
/** The only format version written and read. */
export const SNAPSHOT_VERSION = 1;
/** "QLSN": a committed snapshot. */
export const SNAPSHOT_MAGIC = 0x4e534c51; // 'Q','L','S','N' read as a little-endian u32
/** "QLRV": a snapshot being received; size and checksum cover what is durably held. */
export const RECEIVE_MAGIC = 0x56524c51; // 'Q','L','R','V'

/** What a snapshot (or receive) header holds. */
export interface SnapshotHeader {
  readonly magic: number;
  readonly index: number;
  readonly term: number;
  readonly sizeBytes: number;
  readonly checksum: number;
}

/** Encodes a header (with its own checksum). */
export function encodeSnapshotHeader(h: SnapshotHeader): Uint8Array {
  const buf = new Uint8Array(SNAPSHOT_HEADER_BYTES);
  const view = new DataView(buf.buffer);
  view.setUint32(0, h.magic, true);
  view.setUint16(4, SNAPSHOT_VERSION, true);
  view.setUint16(6, 0, true);
  view.setBigUint64(8, BigInt(h.index), true);
  view.setBigUint64(16, BigInt(h.term), true);
  view.setBigUint64(24, BigInt(h.sizeBytes), true);
  view.setUint32(32, h.checksum >>> 0, true);
  view.setUint32(36, crc32c(buf.subarray(0, 36)), true);
  return buf;
}

/** Why a header was rejected, and at which byte of the file. */
export interface HeaderDecodeError {
  readonly offset: number;
  readonly detail: string;
}

/** Decodes a header expecting `magic`; returns the problem instead if it is invalid. */
export function decodeSnapshotHeader(buf: Uint8Array, magic: number): SnapshotHeader | HeaderDecodeError {
  if (buf.byteLength < SNAPSHOT_HEADER_BYTES) {
    return { offset: buf.byteLength, detail: `file is ${buf.byteLength} bytes, shorter than the ${SNAPSHOT_HEADER_BYTES}-byte header` };
  }
  const view = new DataView(buf.buffer, buf.byteOffset, SNAPSHOT_HEADER_BYTES);
  const foundMagic = view.getUint32(0, true);
  if (foundMagic !== magic) return { offset: 0, detail: `bad magic 0x${foundMagic.toString(16)}` };
  const stored = view.getUint32(36, true);
  const actual = crc32c(buf.subarray(0, 36));
  if (stored !== actual) return { offset: 36, detail: `header checksum mismatch (stored ${stored}, computed ${actual})` };
  const version = view.getUint16(4, true);
  if (version !== SNAPSHOT_VERSION) return { offset: 4, detail: `unknown format version ${version}` };
  const max = BigInt(Number.MAX_SAFE_INTEGER);
  const index = view.getBigUint64(8, true);
  const term = view.getBigUint64(16, true);
  const size = view.getBigUint64(24, true);
  if (index > max || term > max || size > max) return { offset: 8, detail: 'index, term or size out of range' };
  return { magic, index: Number(index), term: Number(term), sizeBytes: Number(size), checksum: view.getUint32(32, true) };
}

/** Tells a decoded header from a decode error. */
export function isHeaderError(r: SnapshotHeader | HeaderDecodeError): r is HeaderDecodeError {
  return 'detail' in r;
}

const NAME_RE = /^(\d{20})-(\d{20})\.snap$/;

/** The committed file name for `meta`: `<index>-<term>.snap`, zero-padded to 20 digits. */
export function snapshotFileName(meta: SnapshotMeta): string {
  return `${String(meta.index).padStart(20, '0')}-${String(meta.term).padStart(20, '0')}.snap`;
}

/** The meta a committed file name stands for, or undefined if `name` is not one. */
export function parseSnapshotFileName(name: string): SnapshotMeta | undefined {
  const m = NAME_RE.exec(name);
  if (m === null || m[1] === undefined || m[2] === undefined) return undefined;
  const index = Number(m[1]);
  const term = Number(m[2]);
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(term)) return undefined;
  return { index, term };
}

/** Suffix of a file the state machine is still writing (removed at open). */
export const WRITE_TMP_SUFFIX = '.tmp';
/** Suffix of a file a follower is still receiving (kept at open, to resume). */
export const RECEIVE_SUFFIX = '.recv';

/** Throws a RangeError unless `meta` holds non-negative safe integers. */
export function validateSnapshotMeta(meta: SnapshotMeta): void {
  if (!Number.isSafeInteger(meta.index) || meta.index < 0) throw new RangeError(`bad snapshot index ${meta.index}`);
  if (!Number.isSafeInteger(meta.term) || meta.term < 0) throw new RangeError(`bad snapshot term ${meta.term}`);
}
