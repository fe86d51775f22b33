// Binary encoding of QueueCommands for the replicated log (the bytes after
// the service tag, src/services/machine.ts). Canonical like the key-value
// codec (src/services/kv/codec.ts, whose ByteWriter / ByteReader it uses): one
// command has exactly one encoding, and decoding refuses everything else
// (overlong varints, strings that are not well-formed UTF-8, out-of-range
// numbers, undefined flag bits, unknown tags, trailing bytes). Untrusted bytes
// never give anything but a valid command or a QueueCodecError.
//
// Format (version 1): u8 formatVersion, u8 commandTag, then the fields.
//   int    = zigzag LEB128 varint of a safe integer
//   count  = LEB128 varint
//   str    = count, then that many bytes of well-formed UTF-8 (a BOM is kept as it is)
//   1 declare   str queue, int deliveryLimit, u8 flags (1 has dead-letter queue), [str deadLetterQueue]
//   2 enqueue   str queue, count n, n bytes body
//   3 attach    str consumerId, str queue, str node, int prefetch
//   4 settle    str consumerId, count n, n × int deliveryTag
//   5 return    (as settle)
//   6 discard   (as settle)
//   7 cancel    str consumerId
//   8 nodeDown  str node, int attachedUpTo

import { assertNever } from '../../util/assert.js';
import { ByteReader, ByteWriter, KvCodecError } from '../kv/codec.js';
import { QUEUE_COMMAND_FORMAT_VERSION, QUEUE_LIMITS, type QueueCommand } from './types.js';

/** Thrown by decodeQueueCommand on malformed bytes, and by encodeQueueCommand on a command that breaks the format's rules. */
export class QueueCodecError extends Error {
  override readonly name = 'QueueCodecError';
  /** Byte offset where decoding failed (-1 when encoding). */
  readonly offset: number;
  constructor(message: string, offset: number, options?: ErrorOptions) {
    super(message, options);
    this.offset = offset;
  }
}

const TAGS = { declare: 1, enqueue: 2, attach: 3, settle: 4, return: 5, discard: 6, cancel: 7, nodeDown: 8 } as const;

const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();
/** Matches a lone surrogate (with the u flag, paired surrogates are one code point and do not match). */
const LONE_SURROGATE = /\p{Cs}/u;

/** Why `name` is not a valid queue name, or null when it is (1..255 bytes of UTF-8, no lone surrogates). */
export function queueNameProblem(name: string): string | null {
  return stringProblem(name, QUEUE_LIMITS.nameBytesMax, 'queue name');
}

/** Why `id` is not a valid consumer or node id, or null when it is. */
export function idProblem(id: string, what = 'id'): string | null {
  return stringProblem(id, QUEUE_LIMITS.idBytesMax, what);
}

function stringProblem(s: string, maxBytes: number, what: string): string | null {
  if (typeof s !== 'string') return `${what} is not a string`;
  if (s.length === 0) return `${what} is empty`;
  if (LONE_SURROGATE.test(s)) return `${what} is not well-formed Unicode`;
  const n = utf8Encoder.encode(s).byteLength;
  if (n > maxBytes) return `${what} is ${n} bytes long; at most ${maxBytes}`;
  return null;
}

/** Why `n` is not an integer in [lo, hi], or null. */
function intProblem(n: number, lo: number, hi: number, what: string): string | null {
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < lo || n > hi) return `${what} must be an integer in [${lo}, ${hi}], got ${String(n)}`;
  return null;
}

function check(problem: string | null): void {
  if (problem !== null) throw new QueueCodecError(problem, -1);
}

function writeStr(w: ByteWriter, s: string, maxBytes: number, what: string): void {
  check(stringProblem(s, maxBytes, what));
  w.bytes(utf8Encoder.encode(s));
}

function readStr(r: ByteReader, maxBytes: number, what: string): string {
  const at = r.position;
  const raw = r.bytes();
  if (raw.byteLength === 0) throw new QueueCodecError(`${what} is empty`, at);
  if (raw.byteLength > maxBytes) throw new QueueCodecError(`${what} is ${raw.byteLength} bytes long; at most ${maxBytes}`, at);
  try {
    return utf8Decoder.decode(raw);
  } catch (e) {
    throw new QueueCodecError(`${what} is not well-formed UTF-8`, at, { cause: e });
  }
}

function readInt(r: ByteReader, lo: number, hi: number, what: string): number {
  const at = r.position;
  const n = r.int();
  const p = intProblem(n, lo, hi, what);
  if (p !== null) throw new QueueCodecError(p, at);
  return n;
}

function writeInt(w: ByteWriter, n: number, lo: number, hi: number, what: string): void {
  check(intProblem(n, lo, hi, what));
  w.int(n);
}

function writeTags(w: ByteWriter, tags: readonly number[]): void {
  if (!Array.isArray(tags)) throw new QueueCodecError('delivery tags are not an array', -1);
  if (tags.length > QUEUE_LIMITS.tagsPerCommandMax) throw new QueueCodecError(`${tags.length} delivery tags; at most ${QUEUE_LIMITS.tagsPerCommandMax}`, -1);
  w.count(tags.length);
  for (const t of tags) writeInt(w, t, 1, Number.MAX_SAFE_INTEGER, 'delivery tag');
}

function readTags(r: ByteReader): number[] {
  const at = r.position;
  const n = r.count();
  if (n > QUEUE_LIMITS.tagsPerCommandMax) throw new QueueCodecError(`${n} delivery tags; at most ${QUEUE_LIMITS.tagsPerCommandMax}`, at);
  const tags: number[] = [];
  for (let i = 0; i < n; i++) tags.push(readInt(r, 1, Number.MAX_SAFE_INTEGER, 'delivery tag'));
  return tags;
}

function encode(cmd: QueueCommand): Uint8Array {
  const w = new ByteWriter();
  w.u8(QUEUE_COMMAND_FORMAT_VERSION);
  switch (cmd.type) {
    case 'declare':
      w.u8(TAGS.declare);
      writeStr(w, cmd.queue, QUEUE_LIMITS.nameBytesMax, 'queue name');
      writeInt(w, cmd.deliveryLimit, 0, QUEUE_LIMITS.deliveryLimitMax, 'delivery limit');
      if (cmd.deadLetterQueue === null) {
        w.u8(0);
      } else {
        w.u8(1);
        writeStr(w, cmd.deadLetterQueue, QUEUE_LIMITS.nameBytesMax, 'dead-letter queue name');
      }
      break;
    case 'enqueue':
      w.u8(TAGS.enqueue);
      writeStr(w, cmd.queue, QUEUE_LIMITS.nameBytesMax, 'queue name');
      if (!(cmd.body instanceof Uint8Array)) throw new QueueCodecError('the message body is not bytes', -1);
      w.bytes(cmd.body);
      break;
    case 'attach':
      w.u8(TAGS.attach);
      writeStr(w, cmd.consumerId, QUEUE_LIMITS.idBytesMax, 'consumer id');
      writeStr(w, cmd.queue, QUEUE_LIMITS.nameBytesMax, 'queue name');
      writeStr(w, cmd.node, QUEUE_LIMITS.idBytesMax, 'node id');
      writeInt(w, cmd.prefetch, 1, QUEUE_LIMITS.prefetchMax, 'prefetch');
      break;
    case 'settle':
    case 'return':
    case 'discard':
      w.u8(TAGS[cmd.type]);
      writeStr(w, cmd.consumerId, QUEUE_LIMITS.idBytesMax, 'consumer id');
      writeTags(w, cmd.deliveryTags);
      break;
    case 'cancel':
      w.u8(TAGS.cancel);
      writeStr(w, cmd.consumerId, QUEUE_LIMITS.idBytesMax, 'consumer id');
      break;
    case 'nodeDown':
      w.u8(TAGS.nodeDown);
      writeStr(w, cmd.node, QUEUE_LIMITS.idBytesMax, 'node id');
      writeInt(w, cmd.attachedUpTo, 0, Number.MAX_SAFE_INTEGER, 'attachedUpTo');
      break;
    default:
      assertNever(cmd, 'queue command');
  }
  return w.finish();
}

/**
 * Encodes a command for the log (canonical: decodeQueueCommand gives it back,
 * and re-encoding gives the same bytes). Throws QueueCodecError on a command
 * that breaks the format's rules (empty or overlong names, out-of-range
 * numbers, a field missing from an untyped caller's object).
 */
export function encodeQueueCommand(cmd: QueueCommand): Uint8Array {
  try {
    return encode(cmd);
  } catch (e) {
    if (e instanceof QueueCodecError) throw e;
    throw new QueueCodecError(`unencodable queue command: ${(e as Error).message}`, -1, { cause: e });
  }
}

function decode(r: ByteReader): QueueCommand {
  const version = r.u8();
  if (version !== QUEUE_COMMAND_FORMAT_VERSION) throw new QueueCodecError(`unsupported queue command format version ${version}`, 0);
  const at = r.position;
  const tag = r.u8();
  let cmd: QueueCommand;
  switch (tag) {
    case TAGS.declare: {
      const queue = readStr(r, QUEUE_LIMITS.nameBytesMax, 'queue name');
      const deliveryLimit = readInt(r, 0, QUEUE_LIMITS.deliveryLimitMax, 'delivery limit');
      const hasDlq = r.flags(1) !== 0;
      const deadLetterQueue = hasDlq ? readStr(r, QUEUE_LIMITS.nameBytesMax, 'dead-letter queue name') : null;
      cmd = { type: 'declare', queue, deliveryLimit, deadLetterQueue };
      break;
    }
    case TAGS.enqueue: {
      const queue = readStr(r, QUEUE_LIMITS.nameBytesMax, 'queue name');
      cmd = { type: 'enqueue', queue, body: r.bytes() };
      break;
    }
    case TAGS.attach: {
      const consumerId = readStr(r, QUEUE_LIMITS.idBytesMax, 'consumer id');
      const queue = readStr(r, QUEUE_LIMITS.nameBytesMax, 'queue name');
      const node = readStr(r, QUEUE_LIMITS.idBytesMax, 'node id');
      const prefetch = readInt(r, 1, QUEUE_LIMITS.prefetchMax, 'prefetch');
      cmd = { type: 'attach', consumerId, queue, node, prefetch };
      break;
    }
    case TAGS.settle:
    case TAGS.return:
    case TAGS.discard: {
      const type = tag === TAGS.settle ? 'settle' : tag === TAGS.return ? 'return' : 'discard';
      const consumerId = readStr(r, QUEUE_LIMITS.idBytesMax, 'consumer id');
      cmd = { type, consumerId, deliveryTags: readTags(r) };
      break;
    }
    case TAGS.cancel:
      cmd = { type: 'cancel', consumerId: readStr(r, QUEUE_LIMITS.idBytesMax, 'consumer id') };
      break;
    case TAGS.nodeDown: {
      const node = readStr(r, QUEUE_LIMITS.idBytesMax, 'node id');
      cmd = { type: 'nodeDown', node, attachedUpTo: readInt(r, 0, Number.MAX_SAFE_INTEGER, 'attachedUpTo') };
      break;
    }
    default:
      throw new QueueCodecError(`unknown queue command tag ${tag}`, at);
  }
  r.end();
  return cmd;
}

/**
 * Decodes a command written by encodeQueueCommand. Throws QueueCodecError on
 * anything malformed; never returns a half-valid command. The result owns its
 * bytes (no aliasing of `bytes`).
 */
export function decodeQueueCommand(bytes: Uint8Array): QueueCommand {
  try {
    return decode(new ByteReader(bytes));
  } catch (e) {
    if (e instanceof QueueCodecError) throw e;
    if (e instanceof KvCodecError) throw new QueueCodecError(e.message, e.offset, { cause: e });
    throw new QueueCodecError('malformed queue command', -1, { cause: e });
  }
}

/** Strictly reads a UTF-8 string field (for the state machine's snapshot format). */
export function readQueueString(r: ByteReader, what: string): string {
  return readStr(r, Math.max(QUEUE_LIMITS.nameBytesMax, QUEUE_LIMITS.idBytesMax), what);
}

/** Writes a UTF-8 string field (for the state machine's snapshot format). */
export function writeQueueString(w: ByteWriter, s: string, what: string): void {
  writeStr(w, s, Math.max(QUEUE_LIMITS.nameBytesMax, QUEUE_LIMITS.idBytesMax), what);
}
