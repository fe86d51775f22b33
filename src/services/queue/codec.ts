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
//   9 attach with flags: as attach, then u8 flags (1 noAck, 2 exclusive; never 0: an attach
//                without flags is tag 3, so that every command keeps one encoding)
//  10 exchangeDeclare  sstr exchange, u8 kind (0 direct, 1 fanout, 2 topic, 3 headers),
//                      u8 flags (1 durable, 2 autoDelete, 4 internal, 8 passive)
//  11 exchangeDelete   sstr exchange, u8 flags (1 ifUnused)
//  12 bind / 13 unbind str queue, sstr exchange, sstr routingKey, u8 flags (1 has arguments), [match]
//  14 publish  sstr exchange, sstr routingKey, u8 flags (1 mandatory, 2 has properties),
//              [int propertyFlags (0..0xffff), count n, n bytes], headers, count n, n bytes body
//  15 declareQueue  str queue, u8 flags (1 durable, 2 passive, 4 has dlx, 8 has dlrk), int deliveryLimit,
//                   [sstr deadLetterExchange], [sstr deadLetterRoutingKey]
//  16 deleteQueue   str queue, u8 flags (1 ifUnused, 2 ifEmpty)
//  17 purge         str queue
//  18 dequeue       str queue, str consumerId, str node, u8 flags (1 noAck)
//   sstr    = str of 0..255 bytes (may be empty: an AMQP shortstr)
//   headers = count n (<= headersMax), n × (sstr key, value)
//   value   = u8 kind, then: 0 string: count n, n bytes of UTF-8 | 1 number: 8 bytes float64
//             little-endian, not NaN | 2 bigint: 8 bytes int64 little-endian | 3 bool: u8 0/1 |
//             4 void: nothing | 5 other: count n, n bytes
//   match   = u8 (0 all, 1 any), headers

import { assertNever } from '../../util/assert.js';
import { ByteReader, ByteWriter, KvCodecError } from '../kv/codec.js';
import {
  QUEUE_COMMAND_FORMAT_VERSION, QUEUE_LIMITS, type ExchangeKind, type Header, type HeaderMatch, type HeaderValue, type MessageProperties, type QueueCommand,
} from './types.js';

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

const TAGS = {
  declare: 1, enqueue: 2, attach: 3, settle: 4, return: 5, discard: 6, cancel: 7, nodeDown: 8, attachFlags: 9, exchangeDeclare: 10,
  exchangeDelete: 11, bind: 12, unbind: 13, publish: 14, declareQueue: 15, deleteQueue: 16, purge: 17, dequeue: 18, detach: 19,
} as const;

/** Exchange kinds by their byte. */
export const EXCHANGE_KINDS: readonly ExchangeKind[] = ['direct', 'fanout', 'topic', 'headers'];
const HEADER_KINDS: readonly HeaderValue['kind'][] = ['string', 'number', 'bigint', 'bool', 'void', 'other'];
const MATCHES: readonly HeaderMatch['match'][] = ['all', 'any'];
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

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

/** Why `s` is not a valid exchange name or routing key (0..255 bytes of UTF-8; '' allowed), or null. */
export function shortStringProblem(s: string, what = 'exchange name'): string | null {
  return stringProblem(s, QUEUE_LIMITS.shortBytesMax, what, 0);
}

function stringProblem(s: string, maxBytes: number, what: string, minLength = 1): string | null {
  if (typeof s !== 'string') return `${what} is not a string`;
  if (s.length < minLength) return `${what} is empty`;
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

function writeStr(w: ByteWriter, s: string, maxBytes: number, what: string, minLength = 1): void {
  check(stringProblem(s, maxBytes, what, minLength));
  w.bytes(utf8Encoder.encode(s));
}

function readStr(r: ByteReader, maxBytes: number, what: string, minLength = 1): string {
  const at = r.position;
  const raw = r.bytes();
  if (raw.byteLength < minLength) throw new QueueCodecError(`${what} is empty`, at);
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


/** Writes an exchange name or routing key (0..255 bytes). */
export function writeShortString(w: ByteWriter, s: string, what: string): void {
  writeStr(w, s, QUEUE_LIMITS.shortBytesMax, what, 0);
}

/** Reads an exchange name or routing key (0..255 bytes). */
export function readShortString(r: ByteReader, what: string): string {
  return readStr(r, QUEUE_LIMITS.shortBytesMax, what, 0);
}

function flag(b: unknown, what: string): number {
  if (typeof b !== 'boolean') throw new QueueCodecError(`${what} is not a boolean`, -1);
  return b ? 1 : 0;
}

function writeHeaderValue(w: ByteWriter, v: HeaderValue): void {
  if (typeof v !== 'object' || v === null) throw new QueueCodecError('header value is not an object', -1);
  const kind = HEADER_KINDS.indexOf(v.kind);
  if (kind < 0) throw new QueueCodecError(`unknown header value kind ${String(v.kind)}`, -1);
  w.u8(kind);
  switch (v.kind) {
    case 'string':
      writeStr(w, v.value, Number.MAX_SAFE_INTEGER, 'header string', 0);
      return;
    case 'number': {
      if (typeof v.value !== 'number' || Number.isNaN(v.value)) throw new QueueCodecError('header number is not a number (or is NaN)', -1);
      const b = new Uint8Array(8);
      new DataView(b.buffer).setFloat64(0, v.value, true);
      w.raw(b);
      return;
    }
    case 'bigint': {
      if (typeof v.value !== 'bigint' || v.value < INT64_MIN || v.value > INT64_MAX) throw new QueueCodecError('header bigint is not a signed 64-bit integer', -1);
      const b = new Uint8Array(8);
      new DataView(b.buffer).setBigInt64(0, v.value, true);
      w.raw(b);
      return;
    }
    case 'bool':
      w.u8(flag(v.value, 'header bool'));
      return;
    case 'void':
      return;
    case 'other':
      if (!(v.value instanceof Uint8Array)) throw new QueueCodecError('header bytes are not bytes', -1);
      w.bytes(v.value);
      return;
    default:
      assertNever(v, 'header value');
  }
}

function readHeaderValue(r: ByteReader): HeaderValue {
  const kind = r.enumOf(HEADER_KINDS, 'header value kind');
  switch (kind) {
    case 'string': return { kind, value: readStr(r, Number.MAX_SAFE_INTEGER, 'header string', 0) };
    case 'number': {
      const at = r.position;
      const b = r.raw(8);
      const value = new DataView(b.buffer, b.byteOffset, 8).getFloat64(0, true);
      if (Number.isNaN(value)) throw new QueueCodecError('header number is NaN', at);
      return { kind, value };
    }
    case 'bigint': {
      const b = r.raw(8);
      return { kind, value: new DataView(b.buffer, b.byteOffset, 8).getBigInt64(0, true) };
    }
    case 'bool': return { kind, value: r.flags(1) === 1 };
    case 'void': return { kind };
    case 'other': return { kind, value: r.bytes() };
    default: return assertNever(kind, 'header value kind');
  }
}

/** Writes a list of headers (count, then key and value each). */
export function writeHeaders(w: ByteWriter, headers: readonly Header[]): void {
  if (!Array.isArray(headers)) throw new QueueCodecError('headers are not an array', -1);
  if (headers.length > QUEUE_LIMITS.headersMax) throw new QueueCodecError(`${headers.length} headers; at most ${QUEUE_LIMITS.headersMax}`, -1);
  w.count(headers.length);
  for (const h of headers) {
    if (!Array.isArray(h) || h.length !== 2) throw new QueueCodecError('a header is not a [key, value] pair', -1);
    writeShortString(w, h[0], 'header key');
    writeHeaderValue(w, h[1]);
  }
}

/** Reads what writeHeaders wrote. */
export function readHeaders(r: ByteReader): Header[] {
  const at = r.position;
  const n = r.count(2);
  if (n > QUEUE_LIMITS.headersMax) throw new QueueCodecError(`${n} headers; at most ${QUEUE_LIMITS.headersMax}`, at);
  const out: Header[] = [];
  for (let i = 0; i < n; i++) {
    const key = readShortString(r, 'header key');
    out.push([key, readHeaderValue(r)]);
  }
  return out;
}

/** Writes a headers binding's arguments. */
export function writeHeaderMatch(w: ByteWriter, m: HeaderMatch): void {
  if (typeof m !== 'object' || m === null) throw new QueueCodecError('binding arguments are not an object', -1);
  const i = MATCHES.indexOf(m.match);
  if (i < 0) throw new QueueCodecError(`unknown x-match ${String(m.match)}`, -1);
  w.u8(i);
  writeHeaders(w, m.pairs);
}

/** Reads what writeHeaderMatch wrote. */
export function readHeaderMatch(r: ByteReader): HeaderMatch {
  const match = r.enumOf(MATCHES, 'x-match');
  return { match, pairs: readHeaders(r) };
}

/** Writes a message's properties (flags and bytes). */
export function writeProperties(w: ByteWriter, p: MessageProperties): void {
  if (typeof p !== 'object' || p === null || !(p.bytes instanceof Uint8Array)) throw new QueueCodecError('properties are not { flags, bytes }', -1);
  writeInt(w, p.flags, 0, 0xffff, 'property flags');
  w.bytes(p.bytes);
}

/** Reads what writeProperties wrote. */
export function readProperties(r: ByteReader): MessageProperties {
  const flags = readInt(r, 0, 0xffff, 'property flags');
  return { flags, bytes: r.bytes() };
}

function writeName(w: ByteWriter, s: string): void {
  writeStr(w, s, QUEUE_LIMITS.nameBytesMax, 'queue name');
}

function readName(r: ByteReader): string {
  return readStr(r, QUEUE_LIMITS.nameBytesMax, 'queue name');
}

function writeId(w: ByteWriter, s: string, what: string): void {
  writeStr(w, s, QUEUE_LIMITS.idBytesMax, what);
}

function readId(r: ByteReader, what: string): string {
  return readStr(r, QUEUE_LIMITS.idBytesMax, what);
}

function encode(cmd: QueueCommand): Uint8Array {
  // A message's bytes are most of a publish: room for them up front spares the writer its doublings (a copy each).
  const w = new ByteWriter(cmd.type === 'publish' || cmd.type === 'enqueue' ? cmd.body.length + (cmd.type === 'publish' ? (cmd.properties?.bytes.length ?? 0) + 1024 : 300) : 64);
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
    case 'attach': {
      const flags = flag(cmd.noAck, 'noAck') | (flag(cmd.exclusive, 'exclusive') << 1);
      w.u8(flags === 0 ? TAGS.attach : TAGS.attachFlags);
      writeId(w, cmd.consumerId, 'consumer id');
      writeName(w, cmd.queue);
      writeId(w, cmd.node, 'node id');
      writeInt(w, cmd.prefetch, 1, QUEUE_LIMITS.prefetchMax, 'prefetch');
      if (flags !== 0) w.u8(flags);
      break;
    }
    case 'exchangeDeclare': {
      w.u8(TAGS.exchangeDeclare);
      writeShortString(w, cmd.exchange, 'exchange name');
      const kind = EXCHANGE_KINDS.indexOf(cmd.kind);
      if (kind < 0) throw new QueueCodecError(`unknown exchange kind ${String(cmd.kind)}`, -1);
      w.u8(kind);
      w.u8(flag(cmd.durable, 'durable') | (flag(cmd.autoDelete, 'autoDelete') << 1) | (flag(cmd.internal, 'internal') << 2) | (flag(cmd.passive, 'passive') << 3));
      break;
    }
    case 'exchangeDelete':
      w.u8(TAGS.exchangeDelete);
      writeShortString(w, cmd.exchange, 'exchange name');
      w.u8(flag(cmd.ifUnused, 'ifUnused'));
      break;
    case 'bind':
    case 'unbind':
      w.u8(TAGS[cmd.type]);
      writeName(w, cmd.queue);
      writeShortString(w, cmd.exchange, 'exchange name');
      writeShortString(w, cmd.routingKey, 'routing key');
      if (cmd.arguments === null) w.u8(0);
      else {
        w.u8(1);
        writeHeaderMatch(w, cmd.arguments);
      }
      break;
    case 'publish':
      w.u8(TAGS.publish);
      writeShortString(w, cmd.exchange, 'exchange name');
      writeShortString(w, cmd.routingKey, 'routing key');
      w.u8(flag(cmd.mandatory, 'mandatory') | (cmd.properties === null ? 0 : 2));
      if (cmd.properties !== null) writeProperties(w, cmd.properties);
      writeHeaders(w, cmd.headers);
      if (!(cmd.body instanceof Uint8Array)) throw new QueueCodecError('the message body is not bytes', -1);
      w.bytes(cmd.body);
      break;
    case 'declareQueue':
      w.u8(TAGS.declareQueue);
      writeName(w, cmd.queue);
      w.u8(flag(cmd.durable, 'durable') | (flag(cmd.passive, 'passive') << 1) | (cmd.deadLetterExchange === null ? 0 : 4) | (cmd.deadLetterRoutingKey === null ? 0 : 8));
      writeInt(w, cmd.deliveryLimit, 0, QUEUE_LIMITS.deliveryLimitMax, 'delivery limit');
      if (cmd.deadLetterExchange !== null) writeShortString(w, cmd.deadLetterExchange, 'dead-letter exchange');
      if (cmd.deadLetterRoutingKey !== null) writeShortString(w, cmd.deadLetterRoutingKey, 'dead-letter routing key');
      break;
    case 'deleteQueue':
      w.u8(TAGS.deleteQueue);
      writeName(w, cmd.queue);
      w.u8(flag(cmd.ifUnused, 'ifUnused') | (flag(cmd.ifEmpty, 'ifEmpty') << 1));
      break;
    case 'purge':
      w.u8(TAGS.purge);
      writeName(w, cmd.queue);
      break;
    case 'dequeue':
      w.u8(TAGS.dequeue);
      writeName(w, cmd.queue);
      writeId(w, cmd.consumerId, 'consumer id');
      writeId(w, cmd.node, 'node id');
      w.u8(flag(cmd.noAck, 'noAck'));
      break;
    case 'settle':
    case 'return':
    case 'discard':
      w.u8(TAGS[cmd.type]);
      writeStr(w, cmd.consumerId, QUEUE_LIMITS.idBytesMax, 'consumer id');
      writeTags(w, cmd.deliveryTags);
      break;
    case 'cancel':
    case 'detach':
      w.u8(TAGS[cmd.type]);
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
    case TAGS.attach:
    case TAGS.attachFlags: {
      const consumerId = readId(r, 'consumer id');
      const queue = readName(r);
      const node = readId(r, 'node id');
      const prefetch = readInt(r, 1, QUEUE_LIMITS.prefetchMax, 'prefetch');
      let flags = 0;
      if (tag === TAGS.attachFlags) {
        const fat = r.position;
        flags = r.flags(3);
        if (flags === 0) throw new QueueCodecError('attach flags are 0 (that attach is tag 3)', fat);
      }
      cmd = { type: 'attach', consumerId, queue, node, prefetch, noAck: (flags & 1) !== 0, exclusive: (flags & 2) !== 0 };
      break;
    }
    case TAGS.exchangeDeclare: {
      const exchange = readShortString(r, 'exchange name');
      const kind = r.enumOf(EXCHANGE_KINDS, 'exchange kind');
      const f = r.flags(15);
      cmd = { type: 'exchangeDeclare', exchange, kind, durable: (f & 1) !== 0, autoDelete: (f & 2) !== 0, internal: (f & 4) !== 0, passive: (f & 8) !== 0 };
      break;
    }
    case TAGS.exchangeDelete: {
      const exchange = readShortString(r, 'exchange name');
      cmd = { type: 'exchangeDelete', exchange, ifUnused: r.flags(1) !== 0 };
      break;
    }
    case TAGS.bind:
    case TAGS.unbind: {
      const queue = readName(r);
      const exchange = readShortString(r, 'exchange name');
      const routingKey = readShortString(r, 'routing key');
      const args = r.flags(1) !== 0 ? readHeaderMatch(r) : null;
      cmd = { type: tag === TAGS.bind ? 'bind' : 'unbind', queue, exchange, routingKey, arguments: args };
      break;
    }
    case TAGS.publish: {
      const exchange = readShortString(r, 'exchange name');
      const routingKey = readShortString(r, 'routing key');
      const f = r.flags(3);
      const properties = (f & 2) !== 0 ? readProperties(r) : null;
      const headers = readHeaders(r);
      cmd = { type: 'publish', exchange, routingKey, mandatory: (f & 1) !== 0, properties, headers, body: r.bytes() };
      break;
    }
    case TAGS.declareQueue: {
      const queue = readName(r);
      const f = r.flags(15);
      const deliveryLimit = readInt(r, 0, QUEUE_LIMITS.deliveryLimitMax, 'delivery limit');
      const deadLetterExchange = (f & 4) !== 0 ? readShortString(r, 'dead-letter exchange') : null;
      const deadLetterRoutingKey = (f & 8) !== 0 ? readShortString(r, 'dead-letter routing key') : null;
      cmd = { type: 'declareQueue', queue, durable: (f & 1) !== 0, passive: (f & 2) !== 0, deliveryLimit, deadLetterExchange, deadLetterRoutingKey };
      break;
    }
    case TAGS.deleteQueue: {
      const queue = readName(r);
      const f = r.flags(3);
      cmd = { type: 'deleteQueue', queue, ifUnused: (f & 1) !== 0, ifEmpty: (f & 2) !== 0 };
      break;
    }
    case TAGS.purge:
      cmd = { type: 'purge', queue: readName(r) };
      break;
    case TAGS.dequeue: {
      const queue = readName(r);
      const consumerId = readId(r, 'consumer id');
      const node = readId(r, 'node id');
      cmd = { type: 'dequeue', queue, consumerId, node, noAck: r.flags(1) !== 0 };
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
    case TAGS.detach:
      cmd = { type: 'detach', consumerId: readStr(r, QUEUE_LIMITS.idBytesMax, 'consumer id') };
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
