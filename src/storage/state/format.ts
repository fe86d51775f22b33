// The on-disk format of the hard-state file (term, vote, commit), written by
// DurableStateStore. Little-endian throughout:
//
//   offset  size  field
//   0       4     magic "QLHS"
//   4       2     format version (1)
//   6       8     term (u64)
//   14      2     vote length in bytes (0 = no vote)
//   16      n     vote: the node id, UTF-8
//   16+n    8     commit index (u64)
//   24+n    4     CRC32C of bytes [0, 24+n)
//
// The file is exactly 28+n bytes long; any other length, a wrong magic,
// version or checksum is corruption.

import { crc32c } from '@node-rs/crc32';
import { TextDecoder, TextEncoder } from 'node:util';
import type { HardState } from '../../protocol/entry.js';
import { nodeId } from '../../protocol/ids.js';

/** "QLHS": quorumlog hard state. */
export const STATE_MAGIC = Uint8Array.of(0x51, 0x4c, 0x48, 0x53);
/** The only format version written and read. */
export const STATE_VERSION = 1;
/** Bytes of a state file with an empty vote. */
export const STATE_FIXED_BYTES = 28;
/** The longest vote (node id) the format holds, in UTF-8 bytes. */
export const VOTE_MAX_BYTES = 0xffff;

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** Throws a RangeError unless `state` can be stored: non-negative safe integers, a non-empty vote. */
export function validateHardState(state: HardState): void {
  if (!Number.isSafeInteger(state.term) || state.term < 0) throw new RangeError(`bad term ${state.term}`);
  if (!Number.isSafeInteger(state.commit) || state.commit < 0) throw new RangeError(`bad commit ${state.commit}`);
  if (state.vote !== null) {
    if (state.vote.length === 0) throw new RangeError('a vote must name a node (empty id)');
    if (encoder.encode(state.vote).byteLength > VOTE_MAX_BYTES) throw new RangeError('vote id too long');
  }
}

/** Encodes `state` as a complete state file. */
export function encodeHardState(state: HardState): Uint8Array {
  validateHardState(state);
  const vote = state.vote === null ? new Uint8Array(0) : encoder.encode(state.vote);
  const buf = new Uint8Array(STATE_FIXED_BYTES + vote.byteLength);
  const view = new DataView(buf.buffer);
  buf.set(STATE_MAGIC, 0);
  view.setUint16(4, STATE_VERSION, true);
  view.setBigUint64(6, BigInt(state.term), true);
  view.setUint16(14, vote.byteLength, true);
  buf.set(vote, 16);
  view.setBigUint64(16 + vote.byteLength, BigInt(state.commit), true);
  const crcAt = 24 + vote.byteLength;
  view.setUint32(crcAt, crc32c(buf.subarray(0, crcAt)), true);
  return buf;
}

/** Why a state file was rejected, and where. */
export interface HardStateDecodeError {
  readonly offset: number;
  readonly detail: string;
}

/** Decodes a complete state file; returns the problem (offset and detail) instead of a state if it is invalid. */
export function decodeHardState(buf: Uint8Array): HardState | HardStateDecodeError {
  if (buf.byteLength < STATE_FIXED_BYTES) {
    return { offset: buf.byteLength, detail: `file is ${buf.byteLength} bytes, shorter than the minimum ${STATE_FIXED_BYTES}` };
  }
  for (let i = 0; i < STATE_MAGIC.length; i++) {
    if (buf[i] !== STATE_MAGIC[i]) return { offset: 0, detail: 'bad magic (not a quorumlog state file)' };
  }
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const voteBytes = view.getUint16(14, true);
  const expected = STATE_FIXED_BYTES + voteBytes;
  if (buf.byteLength !== expected) {
    return { offset: 14, detail: `vote length ${voteBytes} implies a ${expected}-byte file, found ${buf.byteLength} bytes` };
  }
  const crcAt = 24 + voteBytes;
  const stored = view.getUint32(crcAt, true);
  const actual = crc32c(buf.subarray(0, crcAt));
  if (stored !== actual) {
    return { offset: crcAt, detail: `checksum mismatch (stored ${stored}, computed ${actual})` };
  }
  const version = view.getUint16(4, true);
  if (version !== STATE_VERSION) return { offset: 4, detail: `unknown format version ${version}` };
  const term = view.getBigUint64(6, true);
  if (term > BigInt(Number.MAX_SAFE_INTEGER)) return { offset: 6, detail: `term ${term} out of range` };
  const commit = view.getBigUint64(16 + voteBytes, true);
  if (commit > BigInt(Number.MAX_SAFE_INTEGER)) return { offset: 16 + voteBytes, detail: `commit ${commit} out of range` };
  let vote: string | null = null;
  if (voteBytes > 0) {
    try {
      vote = decoder.decode(buf.subarray(16, 16 + voteBytes));
    } catch {
      return { offset: 16, detail: 'vote is not valid UTF-8' };
    }
  }
  return { term: Number(term), vote: vote === null ? null : nodeId(vote), commit: Number(commit) };
}

/** Tells a decoded state from a decode error. */
export function isDecodeError(r: HardState | HardStateDecodeError): r is HardStateDecodeError {
  return 'detail' in r;
}
