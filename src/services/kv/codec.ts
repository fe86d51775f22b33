// Binary encoding of KvCommands for the Raft log. Every replica decodes the
// same bytes into the same command, so the format is canonical: one command has
// exactly one encoding, and decoding rejects everything else (overlong varints,
// flag bits outside the defined ones, unknown tags, trailing bytes). Untrusted
// bytes never produce anything but a valid command or a KvCodecError.
//
// Format (version 1): u8 formatVersion, u8 commandTag, then the request.
//   int    = zigzag LEB128 varint of a safe integer (at most 8 bytes)
//   count  = LEB128 varint length, at most 5 bytes, never more than the bytes left
//   bytes  = count, then that many bytes
//   put          bytes key, bytes value, int lease, u8 flags (1 prevKv, 2 ignoreValue, 4 ignoreLease)
//   deleteRange  bytes key, bytes rangeEnd, u8 flags (1 prevKv)
//   compact      int revision, u8 flags (1 physical)
//   leaseGrant   int id (nonzero), int ttlSeconds (1..MAX_LEASE_TTL_SECONDS)
//   leaseRevoke  int id (nonzero)
//   leaseExpire  int id (nonzero), int term (>= 1)
//   leaseEpoch   int term (>= 1)
//   txn          count n, n × compare, count n, n × op (success), count n, n × op (failure)
//   compare      u8 target, u8 result, bytes key, bytes rangeEnd, operand (bytes for value, else int)
//   op           u8 tag (1 range, 2 put, 3 deleteRange, 4 txn), then the request
//   range        bytes key, bytes rangeEnd, int limit, int revision, u8 sortOrder, u8 sortTarget,
//                u8 flags (1 serializable, 2 keysOnly, 4 countOnly), int minMod, int maxMod, int minCreate, int maxCreate
// ByteWriter / ByteReader are exported for the store's snapshot format.
import {
  MAX_LEASE_TTL_SECONDS,
  type Compare,
  type CompareResult,
  type DeleteRangeRequest,
  type KvCommand,
  type LeaseGrantRequest,
  type PutRequest,
  type RangeRequest,
  type RequestOp,
  type SortOrder,
  type SortTarget,
  type TxnRequest,
} from './types.js';

/** Thrown by decodeCommand (and ByteReader) on malformed bytes, and by encodeCommand on an unencodable command. */
export class KvCodecError extends Error {
  override readonly name = 'KvCodecError';
  /** Byte offset where decoding failed (-1 when encoding). */
  readonly offset: number;
  constructor(message: string, offset: number, options?: { cause?: unknown }) {
    super(message, options);
    this.offset = offset;
  }
}

/** The command format version written by encodeCommand. */
export const COMMAND_FORMAT_VERSION = 1;
/** Deepest txn nesting the decoder accepts (the store's op budget allows far less; this only bounds recursion). */
export const MAX_TXN_DEPTH = 256;

const COMMAND_TAGS = { put: 1, deleteRange: 2, txn: 3, compact: 4, leaseGrant: 5, leaseRevoke: 6, leaseExpire: 7, leaseEpoch: 8 } as const;
const OP_TAGS = { range: 1, put: 2, deleteRange: 3, txn: 4 } as const;
const SORT_ORDERS: readonly SortOrder[] = ['none', 'ascend', 'descend'];
const SORT_TARGETS: readonly SortTarget[] = ['key', 'version', 'create', 'mod', 'value'];
const COMPARE_RESULTS: readonly CompareResult[] = ['equal', 'greater', 'less', 'notEqual'];
const COMPARE_TARGETS: readonly Compare['target'][] = ['version', 'create', 'mod', 'value', 'lease'];

/** An append-only byte buffer that grows by doubling. Invariant: length <= buf.length. */
export class ByteWriter {
  private buf: Uint8Array;
  private length = 0;

  /** `initialBytes`: the capacity to start with; when the writer ends exactly full, finish() hands its buffer over uncopied. */
  constructor(initialBytes = 64) {
    this.buf = new Uint8Array(Math.max(1, initialBytes));
  }

  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }

  /** One byte, 0..255. */
  u8(value: number): void {
    this.reserve(1);
    this.buf[this.length++] = value & 0xff;
  }

  /** An unsigned LEB128 varint of a non-negative safe integer (lengths and counts). */
  count(value: number): void {
    if (!Number.isSafeInteger(value) || value < 0) throw new KvCodecError(`not a count: ${value}`, -1);
    let v = value;
    while (v >= 0x80) {
      this.u8((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    this.u8(v);
  }

  /** A zigzag LEB128 varint of a safe integer. */
  int(value: number): void {
    if (!Number.isSafeInteger(value)) throw new KvCodecError(`not a safe integer: ${value}`, -1);
    if (value <= 2 ** 52 && value >= -(2 ** 52)) return this.count(value >= 0 ? value * 2 : -value * 2 - 1); // exact in a double
    let z = value >= 0 ? BigInt(value) * 2n : BigInt(-value) * 2n - 1n;
    while (z >= 0x80n) {
      this.u8(Number(z & 0x7fn) | 0x80);
      z >>= 7n;
    }
    this.u8(Number(z));
  }

  /** A length-prefixed byte string. */
  bytes(value: Uint8Array): void {
    this.count(value.length);
    this.reserve(value.length);
    this.buf.set(value, this.length);
    this.length += value.length;
  }

  /** Raw bytes, no length. */
  raw(value: Uint8Array): void {
    this.reserve(value.length);
    this.buf.set(value, this.length);
    this.length += value.length;
  }

  /** What was written: the writer's own buffer when it is exactly full (write nothing after), else a copy. */
  finish(): Uint8Array {
    if (this.length === this.buf.length) return this.buf;
    return this.buf.slice(0, this.length);
  }
}

/**
 * Reads what ByteWriter wrote, rejecting non-canonical or truncated input with KvCodecError. It reads
 * data[start, end); offsets (position, errors) count from `start`. With `views`, bytes() and raw() return views
 * into `data` instead of copies: for a caller that copies whatever it keeps (the state machine's apply path).
 * Invariant: start <= offset <= end <= data.length.
 */
export class ByteReader {
  private offset: number;
  private readonly start: number;
  private readonly limit: number;
  private readonly views: boolean;
  constructor(private readonly data: Uint8Array, start = 0, end = data.length, views = false) {
    if (!(Number.isSafeInteger(start) && Number.isSafeInteger(end) && 0 <= start && start <= end && end <= data.length)) {
      throw new RangeError(`ByteReader over [${start}, ${end}) of ${data.length} bytes`);
    }
    this.offset = start;
    this.start = start;
    this.limit = end;
    this.views = views;
  }

  /** Where the next read starts. */
  get position(): number {
    return this.offset - this.start;
  }

  /** Bytes not yet read. */
  get remaining(): number {
    return this.limit - this.offset;
  }

  /** Throws KvCodecError at the current offset. */
  fail(message: string): never {
    throw new KvCodecError(message, this.offset - this.start);
  }

  u8(): number {
    if (this.offset >= this.limit) this.fail('truncated');
    return this.data[this.offset++] as number;
  }

  /** A byte that must be one of `names`' indexes. */
  enumOf<T>(names: readonly T[], what: string): T {
    const at = this.position;
    const name = names[this.u8()];
    if (name === undefined) throw new KvCodecError(`unknown ${what}`, at);
    return name;
  }

  /** A flags byte with no bits outside `allowed`. */
  flags(allowed: number): number {
    const at = this.position;
    const f = this.u8();
    if ((f & ~allowed) !== 0) throw new KvCodecError(`undefined flag bits 0x${f.toString(16)}`, at);
    return f;
  }

  /** An unsigned LEB128 varint of at most maxBytes bytes, canonical (no overlong form). */
  private varint(maxBytes: number): bigint {
    const at = this.position;
    let value = 0n;
    for (let i = 0; i < maxBytes; i++) {
      const b = this.u8();
      value |= BigInt(b & 0x7f) << BigInt(7 * i);
      if ((b & 0x80) === 0) {
        if (b === 0 && i > 0) throw new KvCodecError('overlong varint', at);
        return value;
      }
    }
    throw new KvCodecError('varint too long', at);
  }

  /** varint() for values below 2^49 (7 bytes) without BigInt; null (offset unchanged) when the varint is longer. */
  private smallVarint(): number | null {
    const at = this.offset;
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 7; i++) {
      const b = this.u8();
      value += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) {
        if (b === 0 && i > 0) throw new KvCodecError('overlong varint', at - this.start);
        return value;
      }
      scale *= 0x80;
    }
    this.offset = at;
    return null;
  }

  /** A count that cannot exceed the bytes left (each counted item takes at least `minItemBytes`). */
  count(minItemBytes = 1): number {
    const at = this.position;
    const small = this.smallVarint();
    const n = small ?? Number(this.varint(5));
    if (n * minItemBytes > this.remaining) throw new KvCodecError(`count ${n} exceeds the bytes left`, at);
    return n;
  }

  int(): number {
    const at = this.position;
    const small = this.smallVarint();
    if (small !== null) return small % 2 === 0 ? small / 2 : -(small + 1) / 2;
    const z = this.varint(8);
    const v = (z & 1n) === 0n ? z >> 1n : -((z + 1n) >> 1n);
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw new KvCodecError('integer out of the safe range', at);
    }
    return Number(v);
  }

  /** A length-prefixed byte string: a copy, or a view with `views`. */
  bytes(): Uint8Array {
    const n = this.count();
    return this.take(n);
  }

  /** Exactly `n` raw bytes: a copy, or a view with `views`. */
  raw(n: number): Uint8Array {
    if (n > this.remaining) this.fail('truncated');
    return this.take(n);
  }

  private take(n: number): Uint8Array {
    const from = this.offset;
    this.offset += n;
    return this.views ? this.data.subarray(from, from + n) : this.data.slice(from, from + n);
  }

  /** Throws unless every byte was read. */
  end(): void {
    if (this.remaining !== 0) this.fail(`${this.remaining} trailing bytes`);
  }
}

function indexIn<T>(names: readonly T[], value: T, what: string): number {
  const i = names.indexOf(value);
  if (i < 0) throw new KvCodecError(`unknown ${what}: ${String(value)}`, -1);
  return i;
}

function writeRange(w: ByteWriter, r: RangeRequest): void {
  w.bytes(r.key);
  w.bytes(r.rangeEnd);
  w.int(r.limit);
  w.int(r.revision);
  w.u8(indexIn(SORT_ORDERS, r.sortOrder, 'sort order'));
  w.u8(indexIn(SORT_TARGETS, r.sortTarget, 'sort target'));
  w.u8((r.serializable ? 1 : 0) | (r.keysOnly ? 2 : 0) | (r.countOnly ? 4 : 0));
  w.int(r.minModRevision);
  w.int(r.maxModRevision);
  w.int(r.minCreateRevision);
  w.int(r.maxCreateRevision);
}

function writePut(w: ByteWriter, r: PutRequest): void {
  w.bytes(r.key);
  w.bytes(r.value);
  w.int(r.lease);
  w.u8((r.prevKv ? 1 : 0) | (r.ignoreValue ? 2 : 0) | (r.ignoreLease ? 4 : 0));
}

function writeDelete(w: ByteWriter, r: DeleteRangeRequest): void {
  w.bytes(r.key);
  w.bytes(r.rangeEnd);
  w.u8(r.prevKv ? 1 : 0);
}

function writeCompare(w: ByteWriter, c: Compare): void {
  w.u8(indexIn(COMPARE_TARGETS, c.target, 'compare target'));
  w.u8(indexIn(COMPARE_RESULTS, c.result, 'compare result'));
  w.bytes(c.key);
  w.bytes(c.rangeEnd);
  switch (c.target) {
    case 'version': return w.int(c.version);
    case 'create': return w.int(c.createRevision);
    case 'mod': return w.int(c.modRevision);
    case 'lease': return w.int(c.lease);
    case 'value': return w.bytes(c.value);
  }
}

function writeOp(w: ByteWriter, op: RequestOp, depth: number): void {
  switch (op.type) {
    case 'range': w.u8(OP_TAGS.range); return writeRange(w, op.request);
    case 'put': w.u8(OP_TAGS.put); return writePut(w, op.request);
    case 'deleteRange': w.u8(OP_TAGS.deleteRange); return writeDelete(w, op.request);
    case 'txn': w.u8(OP_TAGS.txn); return writeTxn(w, op.request, depth + 1);
    default: throw new KvCodecError(`unknown op type: ${String((op as { type: unknown }).type)}`, -1);
  }
}

/** Why a lease grant's fields cannot be logged, or null. */
function leaseGrantProblem(id: number, ttlSeconds: number): string | null {
  if (!Number.isSafeInteger(id) || id === 0) return `lease id ${id} is not a nonzero integer`;
  if (!Number.isSafeInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > MAX_LEASE_TTL_SECONDS) return `lease TTL ${ttlSeconds} outside [1, ${MAX_LEASE_TTL_SECONDS}]`;
  return null;
}

function writeLeaseGrant(w: ByteWriter, g: LeaseGrantRequest): void {
  const problem = leaseGrantProblem(g.id, g.ttlSeconds);
  if (problem !== null) throw new KvCodecError(problem, -1);
  w.int(g.id);
  w.int(g.ttlSeconds);
}

function writeLeaseId(w: ByteWriter, id: number): void {
  if (!Number.isSafeInteger(id) || id === 0) throw new KvCodecError(`lease id ${id} is not a nonzero integer`, -1);
  w.int(id);
}

function writeTerm(w: ByteWriter, term: number): void {
  if (!Number.isSafeInteger(term) || term < 1) throw new KvCodecError(`term ${term} is not a positive integer`, -1);
  w.int(term);
}

function writeTxn(w: ByteWriter, t: TxnRequest, depth: number): void {
  if (depth > MAX_TXN_DEPTH) throw new KvCodecError(`txn nested deeper than ${MAX_TXN_DEPTH}`, -1);
  w.count(t.compare.length);
  for (const c of t.compare) writeCompare(w, c);
  w.count(t.success.length);
  for (const op of t.success) writeOp(w, op, depth);
  w.count(t.failure.length);
  for (const op of t.failure) writeOp(w, op, depth);
}

/** Encodes a command for the log (canonical: decodeCommand gives it back, and re-encoding gives the same bytes). Throws KvCodecError on an unencodable command (unsafe integers, unknown enum values). */
export function encodeCommand(cmd: KvCommand): Uint8Array {
  try {
    return encode(cmd);
  } catch (err) {
    if (err instanceof KvCodecError) throw err;
    throw new KvCodecError('unencodable command', -1, { cause: err }); // e.g. a field missing from an untyped caller's object
  }
}

/** Bytes of count(value) for a non-negative safe integer. */
function countBytes(value: number): number {
  let n = 1;
  for (let v = value; v >= 0x80; v = Math.floor(v / 0x80)) n++;
  return n;
}

/** The exact size of a put command, so that its writer never grows and finish() does not copy (an estimate is enough for correctness). */
function putCommandBytes(r: PutRequest): number {
  const lease = Math.abs(r.lease) <= 2 ** 52 ? countBytes(r.lease >= 0 ? r.lease * 2 : -r.lease * 2 - 1) : 8;
  return 2 + countBytes(r.key.length) + r.key.length + countBytes(r.value.length) + r.value.length + lease + 1;
}

function encode(cmd: KvCommand): Uint8Array {
  const w = new ByteWriter(cmd.type === 'put' ? putCommandBytes(cmd.request) : 64);
  w.u8(COMMAND_FORMAT_VERSION);
  switch (cmd.type) {
    case 'put': w.u8(COMMAND_TAGS.put); writePut(w, cmd.request); break;
    case 'deleteRange': w.u8(COMMAND_TAGS.deleteRange); writeDelete(w, cmd.request); break;
    case 'txn': w.u8(COMMAND_TAGS.txn); writeTxn(w, cmd.request, 1); break;
    case 'compact': w.u8(COMMAND_TAGS.compact); w.int(cmd.request.revision); w.u8(cmd.request.physical ? 1 : 0); break;
    case 'leaseGrant': w.u8(COMMAND_TAGS.leaseGrant); writeLeaseGrant(w, cmd.request); break;
    case 'leaseRevoke': w.u8(COMMAND_TAGS.leaseRevoke); writeLeaseId(w, cmd.request.id); break;
    case 'leaseExpire': w.u8(COMMAND_TAGS.leaseExpire); writeLeaseId(w, cmd.request.id); writeTerm(w, cmd.request.term); break;
    case 'leaseEpoch': w.u8(COMMAND_TAGS.leaseEpoch); writeTerm(w, cmd.request.term); break;
    default: throw new KvCodecError(`unknown command type: ${String((cmd as { type: unknown }).type)}`, -1);
  }
  return w.finish();
}

function readRange(r: ByteReader): RangeRequest {
  const key = r.bytes();
  const rangeEnd = r.bytes();
  const limit = r.int();
  const revision = r.int();
  const sortOrder = r.enumOf(SORT_ORDERS, 'sort order');
  const sortTarget = r.enumOf(SORT_TARGETS, 'sort target');
  const f = r.flags(7);
  return {
    key, rangeEnd, limit, revision, sortOrder, sortTarget,
    serializable: (f & 1) !== 0, keysOnly: (f & 2) !== 0, countOnly: (f & 4) !== 0,
    minModRevision: r.int(), maxModRevision: r.int(), minCreateRevision: r.int(), maxCreateRevision: r.int(),
  };
}

function readPut(r: ByteReader): PutRequest {
  const key = r.bytes();
  const value = r.bytes();
  const lease = r.int();
  const f = r.flags(7);
  return { key, value, lease, prevKv: (f & 1) !== 0, ignoreValue: (f & 2) !== 0, ignoreLease: (f & 4) !== 0 };
}

function readDelete(r: ByteReader): DeleteRangeRequest {
  const key = r.bytes();
  const rangeEnd = r.bytes();
  return { key, rangeEnd, prevKv: r.flags(1) !== 0 };
}

function readCompare(r: ByteReader): Compare {
  const target = r.enumOf(COMPARE_TARGETS, 'compare target');
  const result = r.enumOf(COMPARE_RESULTS, 'compare result');
  const key = r.bytes();
  const rangeEnd = r.bytes();
  switch (target) {
    case 'version': return { target, result, key, rangeEnd, version: r.int() };
    case 'create': return { target, result, key, rangeEnd, createRevision: r.int() };
    case 'mod': return { target, result, key, rangeEnd, modRevision: r.int() };
    case 'lease': return { target, result, key, rangeEnd, lease: r.int() };
    case 'value': return { target, result, key, rangeEnd, value: r.bytes() };
  }
}

function readOp(r: ByteReader, depth: number): RequestOp {
  const at = r.position;
  switch (r.u8()) {
    case OP_TAGS.range: return { type: 'range', request: readRange(r) };
    case OP_TAGS.put: return { type: 'put', request: readPut(r) };
    case OP_TAGS.deleteRange: return { type: 'deleteRange', request: readDelete(r) };
    case OP_TAGS.txn: return { type: 'txn', request: readTxn(r, depth + 1) };
    default: throw new KvCodecError('unknown op tag', at);
  }
}

function readTxn(r: ByteReader, depth: number): TxnRequest {
  if (depth > MAX_TXN_DEPTH) r.fail(`txn nested deeper than ${MAX_TXN_DEPTH}`);
  const compare: Compare[] = [];
  for (let n = r.count(); n > 0; n--) compare.push(readCompare(r));
  const success: RequestOp[] = [];
  for (let n = r.count(); n > 0; n--) success.push(readOp(r, depth));
  const failure: RequestOp[] = [];
  for (let n = r.count(); n > 0; n--) failure.push(readOp(r, depth));
  return { compare, success, failure };
}

function readLeaseGrant(r: ByteReader): LeaseGrantRequest {
  const at = r.position;
  const id = r.int();
  const ttlSeconds = r.int();
  const problem = leaseGrantProblem(id, ttlSeconds);
  if (problem !== null) throw new KvCodecError(problem, at);
  return { id, ttlSeconds };
}

function readLeaseId(r: ByteReader): number {
  const at = r.position;
  const id = r.int();
  if (id === 0) throw new KvCodecError('lease id 0', at);
  return id;
}

function readTerm(r: ByteReader): number {
  const at = r.position;
  const term = r.int();
  if (term < 1) throw new KvCodecError(`term ${term} is not positive`, at);
  return term;
}

function decode(r: ByteReader): KvCommand {
  const version = r.u8();
  if (version !== COMMAND_FORMAT_VERSION) throw new KvCodecError(`unsupported command format version ${version}`, 0);
  const at = r.position;
  let cmd: KvCommand;
  switch (r.u8()) {
    case COMMAND_TAGS.put: cmd = { type: 'put', request: readPut(r) }; break;
    case COMMAND_TAGS.deleteRange: cmd = { type: 'deleteRange', request: readDelete(r) }; break;
    case COMMAND_TAGS.txn: cmd = { type: 'txn', request: readTxn(r, 1) }; break;
    case COMMAND_TAGS.compact: {
      const revision = r.int();
      cmd = { type: 'compact', request: { revision, physical: r.flags(1) !== 0 } };
      break;
    }
    case COMMAND_TAGS.leaseGrant: cmd = { type: 'leaseGrant', request: readLeaseGrant(r) }; break;
    case COMMAND_TAGS.leaseRevoke: cmd = { type: 'leaseRevoke', request: { id: readLeaseId(r) } }; break;
    case COMMAND_TAGS.leaseExpire: {
      const id = readLeaseId(r);
      cmd = { type: 'leaseExpire', request: { id, term: readTerm(r) } };
      break;
    }
    case COMMAND_TAGS.leaseEpoch: cmd = { type: 'leaseEpoch', request: { term: readTerm(r) } }; break;
    default: throw new KvCodecError('unknown command tag', at);
  }
  r.end();
  return cmd;
}

/** Decodes a command written by encodeCommand. Throws KvCodecError on anything malformed; never returns a half-valid command. The result owns its bytes (no aliasing of `bytes`). */
export function decodeCommand(bytes: Uint8Array): KvCommand {
  try {
    return decode(new ByteReader(bytes));
  } catch (err) {
    if (err instanceof KvCodecError) throw err;
    // Defence in depth: nothing else should escape, but a bug must not crash a replica with a foreign error type.
    throw new KvCodecError('malformed command', -1, { cause: err });
  }
}

/**
 * Decodes the command in bytes[start, end) as decodeCommand does (same checks, same errors, offsets counted from
 * `start`), except that its byte strings are views into `bytes`, not copies. For the state machine's apply path:
 * KvStore.apply copies exactly the bytes it keeps, so a committed entry's bytes are copied once, not twice.
 */
export function decodeCommandView(bytes: Uint8Array, start = 0, end = bytes.length): KvCommand {
  try {
    return decode(new ByteReader(bytes, start, end, true));
  } catch (err) {
    if (err instanceof KvCodecError) throw err;
    throw new KvCodecError('malformed command', -1, { cause: err });
  }
}
