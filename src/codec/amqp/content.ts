// AMQP 0-9-1 content: the header frame that follows a content-carrying method
// (basic.publish, .deliver, .return, .get-ok) and the body frames after it.
//
//   header payload: class-id u16 | weight u16 (0) | body-size u64 |
//                   property-flags u16 | property list
//
// Only class basic (60) carries content in 0-9-1. Its 14 properties are
// flagged from bit 15 (content-type) down to bit 2 (cluster-id); bit 0 is the
// continuation bit, which would announce another flags word, but basic has no
// 15th property, so a set continuation bit (or bit 1) is refused (502).
//
// A broker mostly passes properties through: decodeContentHeader keeps the raw
// property-list bytes (validated, as a view of the payload) and withHeaders
// rewrites only the headers table (x-delivery-count, x-death), leaving every
// other property byte-identical.

import { AmqpCodecError, cannotEncode, syntaxError } from './errors.js';
import { fieldTableSize, readFieldTable, skipFieldTable, writeFieldTable, type FieldTable } from './fields.js';
import { checkU16, FRAME_BODY, FRAME_END, FRAME_HEADER, FRAME_MIN_SIZE, FRAME_OVERHEAD, writeFrameHeader } from './frames.js';
import { asBuffer, checkInt, Cursor, shortstrSize, writeShortstr } from './wire.js';

/** The only content class of 0-9-1. */
export const CLASS_BASIC = 60;

/**
 * A decoded content header. Invariants: classId === 60; bodySize is a safe
 * integer; propertyFlags has bits 1 and 0 clear; properties is a valid
 * property list for those flags, a view of the frame payload.
 */
export interface ContentHeader {
  readonly classId: number;
  readonly bodySize: number;
  readonly propertyFlags: number;
  /** The raw property list (after the flags), for pass-through. */
  readonly properties: Buffer;
}

/** basic's properties; absent ones are left out. Short strings at most 255 UTF-8 bytes; deliveryMode and priority are octets. */
export interface BasicProperties {
  contentType?: string;
  contentEncoding?: string;
  headers?: FieldTable;
  deliveryMode?: number;
  priority?: number;
  correlationId?: string;
  replyTo?: string;
  expiration?: string;
  messageId?: string;
  timestamp?: bigint;
  type?: string;
  userId?: string;
  appId?: string;
  clusterId?: string;
}

export const FLAG_CONTENT_TYPE = 0x8000;
export const FLAG_CONTENT_ENCODING = 0x4000;
export const FLAG_HEADERS = 0x2000;
export const FLAG_DELIVERY_MODE = 0x1000;
export const FLAG_PRIORITY = 0x0800;
export const FLAG_CORRELATION_ID = 0x0400;
export const FLAG_REPLY_TO = 0x0200;
export const FLAG_EXPIRATION = 0x0100;
export const FLAG_MESSAGE_ID = 0x0080;
export const FLAG_TIMESTAMP = 0x0040;
export const FLAG_TYPE = 0x0020;
export const FLAG_USER_ID = 0x0010;
export const FLAG_APP_ID = 0x0008;
export const FLAG_CLUSTER_ID = 0x0004;
/** Bits 1 (no property) and 0 (continuation: no 15th property exists). */
const FLAG_INVALID = 0x0003;

function checkFlags(flags: number): void {
  if ((flags & FLAG_INVALID) !== 0) {
    syntaxError(`property flags 0x${flags.toString(16)}: ${(flags & 1) !== 0 ? 'continuation bit set, but basic has no more properties' : 'bit 1 names no property'}`);
  }
}

/** Validates the property list for `flags` (as decodeBasicProperties would) without building it. */
function skipBasicProperties(c: Cursor, flags: number): void {
  if (flags & FLAG_CONTENT_TYPE) c.skipShortstr('content-type');
  if (flags & FLAG_CONTENT_ENCODING) c.skipShortstr('content-encoding');
  if (flags & FLAG_HEADERS) skipFieldTable(c, 1);
  if (flags & FLAG_DELIVERY_MODE) c.u8('delivery-mode');
  if (flags & FLAG_PRIORITY) c.u8('priority');
  if (flags & FLAG_CORRELATION_ID) c.skipShortstr('correlation-id');
  if (flags & FLAG_REPLY_TO) c.skipShortstr('reply-to');
  if (flags & FLAG_EXPIRATION) c.skipShortstr('expiration');
  if (flags & FLAG_MESSAGE_ID) c.skipShortstr('message-id');
  if (flags & FLAG_TIMESTAMP) {
    c.need(8, 'timestamp');
    c.pos += 8;
  }
  if (flags & FLAG_TYPE) c.skipShortstr('type');
  if (flags & FLAG_USER_ID) c.skipShortstr('user-id');
  if (flags & FLAG_APP_ID) c.skipShortstr('app-id');
  if (flags & FLAG_CLUSTER_ID) c.skipShortstr('cluster-id');
  c.finish('basic properties');
}

/**
 * Decodes a content header frame's payload, validating the property list
 * without building it. Throws AmqpCodecError: 505 for a class other than basic,
 * 502 for a non-zero weight, a body size above 2^53 - 1, bad flags, a property
 * list that does not parse or trailing bytes.
 */
export function decodeContentHeader(payload: Buffer): ContentHeader {
  const c = new Cursor(payload, 0, payload.length);
  const classId = c.u16('content class-id');
  if (classId !== CLASS_BASIC) throw new AmqpCodecError(505, `content header for class ${classId}: only basic (60) carries content`);
  const weight = c.u16('content weight');
  if (weight !== 0) syntaxError(`content weight is ${weight}, must be 0`);
  const bodySize = c.u64Safe('content body-size');
  const propertyFlags = c.u16('property flags');
  checkFlags(propertyFlags);
  const start = c.pos;
  skipBasicProperties(c, propertyFlags);
  return { classId, bodySize, propertyFlags, properties: payload.subarray(start) };
}

/** Decodes basic's property list for `flags`. Throws AmqpCodecError(502) if it does not parse exactly. */
export function decodeBasicProperties(flags: number, properties: Uint8Array): BasicProperties {
  if (!Number.isInteger(flags) || flags < 0 || flags > 0xffff) syntaxError(`property flags ${flags} are not a u16`);
  checkFlags(flags);
  const b = asBuffer(properties);
  const c = new Cursor(b, 0, b.length);
  const p: BasicProperties = {};
  if (flags & FLAG_CONTENT_TYPE) p.contentType = c.shortstr('content-type');
  if (flags & FLAG_CONTENT_ENCODING) p.contentEncoding = c.shortstr('content-encoding');
  if (flags & FLAG_HEADERS) p.headers = readFieldTable(c, 1);
  if (flags & FLAG_DELIVERY_MODE) p.deliveryMode = c.u8('delivery-mode');
  if (flags & FLAG_PRIORITY) p.priority = c.u8('priority');
  if (flags & FLAG_CORRELATION_ID) p.correlationId = c.shortstr('correlation-id');
  if (flags & FLAG_REPLY_TO) p.replyTo = c.shortstr('reply-to');
  if (flags & FLAG_EXPIRATION) p.expiration = c.shortstr('expiration');
  if (flags & FLAG_MESSAGE_ID) p.messageId = c.shortstr('message-id');
  if (flags & FLAG_TIMESTAMP) {
    c.need(8, 'timestamp');
    p.timestamp = b.readBigUInt64BE(c.pos);
    c.pos += 8;
  }
  if (flags & FLAG_TYPE) p.type = c.shortstr('type');
  if (flags & FLAG_USER_ID) p.userId = c.shortstr('user-id');
  if (flags & FLAG_APP_ID) p.appId = c.shortstr('app-id');
  if (flags & FLAG_CLUSTER_ID) p.clusterId = c.shortstr('cluster-id');
  c.finish('basic properties');
  return p;
}

/** The short-string properties in wire order after headers (flag, key). */
const LATE_SHORTSTRS = [
  [FLAG_CORRELATION_ID, 'correlationId'],
  [FLAG_REPLY_TO, 'replyTo'],
  [FLAG_EXPIRATION, 'expiration'],
  [FLAG_MESSAGE_ID, 'messageId'],
] as const;
const LAST_SHORTSTRS = [
  [FLAG_TYPE, 'type'],
  [FLAG_USER_ID, 'userId'],
  [FLAG_APP_ID, 'appId'],
  [FLAG_CLUSTER_ID, 'clusterId'],
] as const;

/**
 * Encodes basic's properties: the flags word and the property list, in one
 * allocation. Throws AmqpCodecError(502, "cannot encode ...") for a value the
 * wire cannot carry.
 */
export function encodeBasicProperties(p: BasicProperties): { flags: number; bytes: Buffer } {
  let flags = 0;
  let n = 0;
  if (p.contentType !== undefined) {
    flags |= FLAG_CONTENT_TYPE;
    n += shortstrSize(p.contentType, 'content-type');
  }
  if (p.contentEncoding !== undefined) {
    flags |= FLAG_CONTENT_ENCODING;
    n += shortstrSize(p.contentEncoding, 'content-encoding');
  }
  if (p.headers !== undefined) {
    flags |= FLAG_HEADERS;
    n += fieldTableSize(p.headers);
  }
  if (p.deliveryMode !== undefined) {
    flags |= FLAG_DELIVERY_MODE;
    checkInt(p.deliveryMode, 0, 0xff, 'delivery-mode');
    n += 1;
  }
  if (p.priority !== undefined) {
    flags |= FLAG_PRIORITY;
    checkInt(p.priority, 0, 0xff, 'priority');
    n += 1;
  }
  for (const [flag, key] of LATE_SHORTSTRS) {
    const v = p[key];
    if (v !== undefined) {
      flags |= flag;
      n += shortstrSize(v, key);
    }
  }
  if (p.timestamp !== undefined) {
    if (typeof p.timestamp !== 'bigint' || p.timestamp < 0n || p.timestamp >= 2n ** 64n) cannotEncode(`timestamp: ${String(p.timestamp)} is not a u64 bigint`);
    flags |= FLAG_TIMESTAMP;
    n += 8;
  }
  for (const [flag, key] of LAST_SHORTSTRS) {
    const v = p[key];
    if (v !== undefined) {
      flags |= flag;
      n += shortstrSize(v, key);
    }
  }
  const buf = Buffer.allocUnsafe(n);
  let pos = 0;
  if (p.contentType !== undefined) pos = writeShortstr(buf, pos, p.contentType);
  if (p.contentEncoding !== undefined) pos = writeShortstr(buf, pos, p.contentEncoding);
  if (p.headers !== undefined) pos = writeFieldTable(buf, pos, p.headers);
  if (p.deliveryMode !== undefined) buf[pos++] = p.deliveryMode;
  if (p.priority !== undefined) buf[pos++] = p.priority;
  for (const [, key] of LATE_SHORTSTRS) {
    const v = p[key];
    if (v !== undefined) pos = writeShortstr(buf, pos, v);
  }
  if (p.timestamp !== undefined) pos = buf.writeBigUInt64BE(p.timestamp, pos);
  for (const [, key] of LAST_SHORTSTRS) {
    const v = p[key];
    if (v !== undefined) pos = writeShortstr(buf, pos, v);
  }
  return { flags, bytes: buf };
}

/**
 * A whole content header frame, in one allocation. Throws AmqpCodecError(502,
 * "cannot encode ...") for a channel, class, flags word or body size out of range.
 */
export function encodeContentHeaderFrame(channel: number, classId: number, bodySize: number, flags: number, properties: Uint8Array): Buffer {
  checkU16(channel, 'channel');
  checkInt(classId, 0, 0xffff, 'class-id');
  checkInt(bodySize, 0, Number.MAX_SAFE_INTEGER, 'body-size');
  checkInt(flags, 0, 0xffff, 'property flags');
  const size = 14 + properties.byteLength;
  const buf = Buffer.allocUnsafe(size + FRAME_OVERHEAD);
  writeFrameHeader(buf, 0, FRAME_HEADER, channel, size);
  buf.writeUInt16BE(classId, 7);
  buf.writeUInt16BE(0, 9);
  buf.writeUInt32BE(Math.floor(bodySize / 0x100000000), 11);
  buf.writeUInt32BE(bodySize % 0x100000000, 15);
  buf.writeUInt16BE(flags, 19);
  buf.set(properties, 21);
  buf[21 + properties.byteLength] = FRAME_END;
  return buf;
}

/**
 * The body frames for `body`, each carrying at most frameMax - 8 bytes (an
 * empty body has no body frames). Throws AmqpCodecError(502) for a frameMax
 * below FRAME_MIN_SIZE or a bad channel.
 */
export function encodeBodyFrames(channel: number, body: Uint8Array, frameMax: number): Buffer[] {
  checkU16(channel, 'channel');
  checkInt(frameMax, FRAME_MIN_SIZE, 0xffffffff, 'frame-max');
  const step = frameMax - FRAME_OVERHEAD;
  const frames: Buffer[] = [];
  for (let off = 0; off < body.byteLength; off += step) {
    const n = Math.min(step, body.byteLength - off);
    const buf = Buffer.allocUnsafe(n + FRAME_OVERHEAD);
    writeFrameHeader(buf, 0, FRAME_BODY, channel, n);
    buf.set(body.subarray(off, off + n), 7);
    buf[7 + n] = FRAME_END;
    frames.push(buf);
  }
  return frames;
}

/**
 * Re-encodes a property list with its headers table replaced by
 * `set(current headers, or [] if absent)`, every other property byte-identical.
 * The headers flag ends up set if it was set or the new table is non-empty.
 * Throws AmqpCodecError(502) if the property list does not parse up to the
 * headers, or the new table cannot be encoded.
 */
export function withHeaders(flags: number, properties: Uint8Array, set: (h: FieldTable) => FieldTable): { flags: number; bytes: Uint8Array } {
  checkFlags(flags);
  const b = asBuffer(properties);
  const c = new Cursor(b, 0, b.length);
  if (flags & FLAG_CONTENT_TYPE) c.skipShortstr('content-type');
  if (flags & FLAG_CONTENT_ENCODING) c.skipShortstr('content-encoding');
  const headersStart = c.pos;
  const had = (flags & FLAG_HEADERS) !== 0;
  const old = had ? readFieldTable(c, 1) : [];
  const headersEnd = c.pos;
  const next = set(old);
  if (!had && next.length === 0) return { flags, bytes: properties };
  const tableSize = fieldTableSize(next);
  const out = Buffer.allocUnsafe(headersStart + tableSize + (b.length - headersEnd));
  b.copy(out, 0, 0, headersStart);
  const pos = writeFieldTable(out, headersStart, next);
  b.copy(out, pos, headersEnd);
  return { flags: flags | FLAG_HEADERS, bytes: out };
}
