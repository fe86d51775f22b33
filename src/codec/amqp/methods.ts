// AMQP 0-9-1 methods (the payload of a method frame): class-id u16, method-id
// u16, then the arguments in the order the spec lists them. Argument types:
// octet u8, short u16, long u32, longlong u64, bit (consecutive bits packed
// into octets, least significant first), shortstr (u8 length + UTF-8), longstr
// (u32 length + bytes), table (a field table, see fields.ts).
//
// One table, SPEC, lists every method of the classes connection, channel,
// exchange, queue, basic, confirm and tx, with RabbitMQ's extensions
// (basic.nack, confirm.*, connection.blocked/unblocked/update-secret,
// exchange.bind/unbind); the AmqpMethod union is derived from it, so the types
// and the codec cannot drift apart. The deprecated access class (30) is not
// supported: RabbitMQ 0-9-1 clients never send it; it decodes as 540.
//
// Decoding is strict and canonical: truncation, trailing bytes, a longlong
// above 2^53 - 1, invalid UTF-8 in a short string, or a set bit beyond the
// method's bit fields is a 502; an unknown class or method id is a 540.
// Whatever decodes re-encodes to the same bytes (NaN payloads in a table
// aside). Long strings decode to views of the payload (no copy); short
// strings to JS strings.

import { AmqpCodecError, cannotEncode, syntaxError } from './errors.js';
import { fieldTableSize, readFieldTable, writeFieldTable, type FieldTable } from './fields.js';
import { checkU16, FRAME_END, FRAME_METHOD, writeFrameHeader } from './frames.js';
import { checkInt, Cursor, longstrSize, shortstrSize, writeLongstr, writeShortstr } from './wire.js';

/** The argument types of the method grammar. */
type Kind = 'octet' | 'short' | 'long' | 'longlong' | 'bit' | 'shortstr' | 'longstr' | 'table';

/** The JS type each argument type decodes to. */
interface KindValue {
  octet: number;
  short: number;
  long: number;
  /** Read as a JS number: values above 2^53 - 1 are refused (502). */
  longlong: number;
  bit: boolean;
  shortstr: string;
  /** A view of the payload (binary: SASL responses, mechanisms, secrets). */
  longstr: Uint8Array;
  table: FieldTable;
}

type Args = readonly (readonly [string, Kind])[];

/** [class-id, method-id, arguments in wire order, carries content]. */
const SPEC = {
  'connection.start': [10, 10, [['versionMajor', 'octet'], ['versionMinor', 'octet'], ['serverProperties', 'table'], ['mechanisms', 'longstr'], ['locales', 'longstr']]],
  'connection.start-ok': [10, 11, [['clientProperties', 'table'], ['mechanism', 'shortstr'], ['response', 'longstr'], ['locale', 'shortstr']]],
  'connection.secure': [10, 20, [['challenge', 'longstr']]],
  'connection.secure-ok': [10, 21, [['response', 'longstr']]],
  'connection.tune': [10, 30, [['channelMax', 'short'], ['frameMax', 'long'], ['heartbeat', 'short']]],
  'connection.tune-ok': [10, 31, [['channelMax', 'short'], ['frameMax', 'long'], ['heartbeat', 'short']]],
  'connection.open': [10, 40, [['virtualHost', 'shortstr'], ['capabilities', 'shortstr'], ['insist', 'bit']]],
  'connection.open-ok': [10, 41, [['knownHosts', 'shortstr']]],
  'connection.close': [10, 50, [['replyCode', 'short'], ['replyText', 'shortstr'], ['classId', 'short'], ['methodId', 'short']]],
  'connection.close-ok': [10, 51, []],
  'connection.blocked': [10, 60, [['reason', 'shortstr']]],
  'connection.unblocked': [10, 61, []],
  'connection.update-secret': [10, 70, [['newSecret', 'longstr'], ['reason', 'shortstr']]],
  'connection.update-secret-ok': [10, 71, []],

  'channel.open': [20, 10, [['outOfBand', 'shortstr']]],
  'channel.open-ok': [20, 11, [['channelId', 'longstr']]],
  'channel.flow': [20, 20, [['active', 'bit']]],
  'channel.flow-ok': [20, 21, [['active', 'bit']]],
  'channel.close': [20, 40, [['replyCode', 'short'], ['replyText', 'shortstr'], ['classId', 'short'], ['methodId', 'short']]],
  'channel.close-ok': [20, 41, []],

  'exchange.declare': [40, 10, [['ticket', 'short'], ['exchange', 'shortstr'], ['type', 'shortstr'], ['passive', 'bit'], ['durable', 'bit'], ['autoDelete', 'bit'], ['internal', 'bit'], ['nowait', 'bit'], ['arguments', 'table']]],
  'exchange.declare-ok': [40, 11, []],
  'exchange.delete': [40, 20, [['ticket', 'short'], ['exchange', 'shortstr'], ['ifUnused', 'bit'], ['nowait', 'bit']]],
  'exchange.delete-ok': [40, 21, []],
  'exchange.bind': [40, 30, [['ticket', 'short'], ['destination', 'shortstr'], ['source', 'shortstr'], ['routingKey', 'shortstr'], ['nowait', 'bit'], ['arguments', 'table']]],
  'exchange.bind-ok': [40, 31, []],
  'exchange.unbind': [40, 40, [['ticket', 'short'], ['destination', 'shortstr'], ['source', 'shortstr'], ['routingKey', 'shortstr'], ['nowait', 'bit'], ['arguments', 'table']]],
  // 51, not 41: RabbitMQ's extension numbers it so.
  'exchange.unbind-ok': [40, 51, []],

  'queue.declare': [50, 10, [['ticket', 'short'], ['queue', 'shortstr'], ['passive', 'bit'], ['durable', 'bit'], ['exclusive', 'bit'], ['autoDelete', 'bit'], ['nowait', 'bit'], ['arguments', 'table']]],
  'queue.declare-ok': [50, 11, [['queue', 'shortstr'], ['messageCount', 'long'], ['consumerCount', 'long']]],
  'queue.bind': [50, 20, [['ticket', 'short'], ['queue', 'shortstr'], ['exchange', 'shortstr'], ['routingKey', 'shortstr'], ['nowait', 'bit'], ['arguments', 'table']]],
  'queue.bind-ok': [50, 21, []],
  'queue.purge': [50, 30, [['ticket', 'short'], ['queue', 'shortstr'], ['nowait', 'bit']]],
  'queue.purge-ok': [50, 31, [['messageCount', 'long']]],
  'queue.delete': [50, 40, [['ticket', 'short'], ['queue', 'shortstr'], ['ifUnused', 'bit'], ['ifEmpty', 'bit'], ['nowait', 'bit']]],
  'queue.delete-ok': [50, 41, [['messageCount', 'long']]],
  'queue.unbind': [50, 50, [['ticket', 'short'], ['queue', 'shortstr'], ['exchange', 'shortstr'], ['routingKey', 'shortstr'], ['arguments', 'table']]],
  'queue.unbind-ok': [50, 51, []],

  'basic.qos': [60, 10, [['prefetchSize', 'long'], ['prefetchCount', 'short'], ['global', 'bit']]],
  'basic.qos-ok': [60, 11, []],
  'basic.consume': [60, 20, [['ticket', 'short'], ['queue', 'shortstr'], ['consumerTag', 'shortstr'], ['noLocal', 'bit'], ['noAck', 'bit'], ['exclusive', 'bit'], ['nowait', 'bit'], ['arguments', 'table']]],
  'basic.consume-ok': [60, 21, [['consumerTag', 'shortstr']]],
  'basic.cancel': [60, 30, [['consumerTag', 'shortstr'], ['nowait', 'bit']]],
  'basic.cancel-ok': [60, 31, [['consumerTag', 'shortstr']]],
  'basic.publish': [60, 40, [['ticket', 'short'], ['exchange', 'shortstr'], ['routingKey', 'shortstr'], ['mandatory', 'bit'], ['immediate', 'bit']]],
  'basic.return': [60, 50, [['replyCode', 'short'], ['replyText', 'shortstr'], ['exchange', 'shortstr'], ['routingKey', 'shortstr']]],
  'basic.deliver': [60, 60, [['consumerTag', 'shortstr'], ['deliveryTag', 'longlong'], ['redelivered', 'bit'], ['exchange', 'shortstr'], ['routingKey', 'shortstr']]],
  'basic.get': [60, 70, [['ticket', 'short'], ['queue', 'shortstr'], ['noAck', 'bit']]],
  'basic.get-ok': [60, 71, [['deliveryTag', 'longlong'], ['redelivered', 'bit'], ['exchange', 'shortstr'], ['routingKey', 'shortstr'], ['messageCount', 'long']]],
  'basic.get-empty': [60, 72, [['clusterId', 'shortstr']]],
  'basic.ack': [60, 80, [['deliveryTag', 'longlong'], ['multiple', 'bit']]],
  'basic.reject': [60, 90, [['deliveryTag', 'longlong'], ['requeue', 'bit']]],
  'basic.recover-async': [60, 100, [['requeue', 'bit']]],
  'basic.recover': [60, 110, [['requeue', 'bit']]],
  'basic.recover-ok': [60, 111, []],
  'basic.nack': [60, 120, [['deliveryTag', 'longlong'], ['multiple', 'bit'], ['requeue', 'bit']]],

  'confirm.select': [85, 10, [['nowait', 'bit']]],
  'confirm.select-ok': [85, 11, []],

  'tx.select': [90, 10, []],
  'tx.select-ok': [90, 11, []],
  'tx.commit': [90, 20, []],
  'tx.commit-ok': [90, 21, []],
  'tx.rollback': [90, 30, []],
  'tx.rollback-ok': [90, 31, []],
} as const satisfies Record<string, readonly [number, number, Args]>;

type Spec = typeof SPEC;
type Simplify<T> = { [K in keyof T]: T[K] } & {};
type ArgsOf<A extends Args> = { readonly [E in A[number] as E[0]]: KindValue[E[1]] };

/**
 * Every AMQP 0-9-1 method, tagged by `name` ('class.method' as the spec
 * spells it, e.g. 'basic.get-ok'), with its arguments in camelCase.
 */
export type AmqpMethod = { [N in keyof Spec]: Simplify<{ readonly name: N } & ArgsOf<Spec[N][2]>> }[keyof Spec];
/** The name of a method, e.g. 'basic.publish'. */
export type AmqpMethodName = AmqpMethod['name'];
/** The method named N, e.g. `MethodOf<'basic.publish'>`. */
export type MethodOf<N extends AmqpMethodName> = Extract<AmqpMethod, { readonly name: N }>;

/** Every method name, in SPEC order. */
export const AMQP_METHOD_NAMES: readonly AmqpMethodName[] = Object.keys(SPEC) as AmqpMethodName[];

const K_OCTET = 0;
const K_SHORT = 1;
const K_LONG = 2;
const K_LONGLONG = 3;
const K_BIT = 4;
const K_SHORTSTR = 5;
const K_LONGSTR = 6;
const K_TABLE = 7;
const KIND_CODE: Record<Kind, number> = { octet: K_OCTET, short: K_SHORT, long: K_LONG, longlong: K_LONGLONG, bit: K_BIT, shortstr: K_SHORTSTR, longstr: K_LONGSTR, table: K_TABLE };

/** A method compiled for the codec loops. Invariant: names.length === kinds.length. */
interface Descriptor {
  readonly name: AmqpMethodName;
  readonly classId: number;
  readonly methodId: number;
  /** The 4 id bytes as one u32: classId << 16 | methodId. */
  readonly id: number;
  readonly names: readonly string[];
  readonly kinds: Uint8Array;
  /** "connection.start.serverProperties", for error messages without building strings on the hot path. */
  readonly labels: readonly string[];
}

const BY_NAME = new Map<string, Descriptor>();
const BY_ID = new Map<number, Descriptor>();
for (const name of AMQP_METHOD_NAMES) {
  const [classId, methodId, args]: readonly [number, number, Args] = SPEC[name];
  const d: Descriptor = {
    name,
    classId,
    methodId,
    id: classId * 0x10000 + methodId,
    names: args.map((a) => a[0]),
    kinds: Uint8Array.from(args, (a) => KIND_CODE[a[1]]),
    labels: args.map((a) => `${name}.${a[0]}`),
  };
  BY_NAME.set(name, d);
  BY_ID.set(d.id, d);
}

/** The class and method ids of a method name. */
export function methodIds(name: AmqpMethodName): { classId: number; methodId: number } {
  const d = BY_NAME.get(name);
  if (d === undefined) throw new AmqpCodecError(540, `unknown method ${String(name)}`);
  return { classId: d.classId, methodId: d.methodId };
}

/** The method name for class and method ids, or undefined if there is none (the connection layer closes with 540). */
export function methodName(classId: number, methodId: number): AmqpMethodName | undefined {
  return BY_ID.get(classId * 0x10000 + methodId)?.name;
}

/** Whether the method is followed by a content header and body frames (basic.publish, .return, .deliver, .get-ok). */
export const METHOD_HAS_CONTENT = (name: AmqpMethodName): boolean =>
  name === 'basic.publish' || name === 'basic.return' || name === 'basic.deliver' || name === 'basic.get-ok';

/**
 * Decodes a method frame's payload. Throws AmqpCodecError: 540 for an unknown
 * class or method id, 502 for anything malformed (truncated, trailing bytes, a
 * longlong above 2^53 - 1, invalid UTF-8, unused bits set, a bad field table).
 */
export function decodeMethod(payload: Buffer): AmqpMethod {
  if (payload.length < 4) syntaxError(`method payload of ${payload.length} bytes is shorter than its 4 id bytes`);
  const classId = ((payload[0] as number) << 8) | (payload[1] as number);
  const methodId = ((payload[2] as number) << 8) | (payload[3] as number);
  const d = BY_ID.get(classId * 0x10000 + methodId);
  if (d === undefined) throw new AmqpCodecError(540, `unknown method: class ${classId}, method ${methodId}`);
  const c = new Cursor(payload, 4, payload.length);
  const m: Record<string, unknown> = { name: d.name };
  const { kinds, names, labels } = d;
  let bits = 0; // the current bit octet
  let bit = 8; // next bit index in it; 8 = none open
  for (let i = 0; i < kinds.length; i++) {
    const kind = kinds[i] as number;
    const label = labels[i] as string;
    if (kind === K_BIT) {
      if (bit === 8) {
        bits = c.u8(label);
        bit = 0;
      }
      m[names[i] as string] = ((bits >> bit) & 1) === 1;
      bit++;
      continue;
    }
    if (bit !== 8) {
      checkUnusedBits(bits, bit, labels[i - 1] as string);
      bit = 8;
    }
    switch (kind) {
      case K_OCTET:
        m[names[i] as string] = c.u8(label);
        break;
      case K_SHORT:
        m[names[i] as string] = c.u16(label);
        break;
      case K_LONG:
        m[names[i] as string] = c.u32(label);
        break;
      case K_LONGLONG:
        m[names[i] as string] = c.u64Safe(label);
        break;
      case K_SHORTSTR:
        m[names[i] as string] = c.shortstr(label);
        break;
      case K_LONGSTR:
        m[names[i] as string] = c.longstr(label);
        break;
      default: // K_TABLE
        m[names[i] as string] = readFieldTable(c, 1);
        break;
    }
  }
  if (bit !== 8) checkUnusedBits(bits, bit, labels[kinds.length - 1] as string);
  c.finish(d.name);
  return m as AmqpMethod;
}

function checkUnusedBits(bits: number, used: number, label: string): void {
  if (bits >> used !== 0) syntaxError(`${label}: bits beyond the method's ${used} bit fields are set (octet 0x${bits.toString(16)})`);
}

/** Size of the method's arguments; validates every value (502 "cannot encode"). */
function argsSize(d: Descriptor, m: Record<string, unknown>): number {
  const { kinds, names, labels } = d;
  let n = 0;
  let bit = 8;
  for (let i = 0; i < kinds.length; i++) {
    const kind = kinds[i] as number;
    const v = m[names[i] as string];
    const label = labels[i] as string;
    if (kind === K_BIT) {
      if (typeof v !== 'boolean') cannotEncode(`${label}: expected a boolean`);
      if (bit === 8) {
        n++;
        bit = 0;
      }
      bit++;
      continue;
    }
    bit = 8;
    switch (kind) {
      case K_OCTET:
        checkInt(v, 0, 0xff, label);
        n += 1;
        break;
      case K_SHORT:
        checkInt(v, 0, 0xffff, label);
        n += 2;
        break;
      case K_LONG:
        checkInt(v, 0, 0xffffffff, label);
        n += 4;
        break;
      case K_LONGLONG:
        checkInt(v, 0, Number.MAX_SAFE_INTEGER, label);
        n += 8;
        break;
      case K_SHORTSTR:
        n += shortstrSize(v, label);
        break;
      case K_LONGSTR:
        n += longstrSize(v, label);
        break;
      default:
        n += fieldTableSize(v as FieldTable);
        break;
    }
  }
  return n;
}

function writeArgs(d: Descriptor, m: Record<string, unknown>, buf: Buffer, pos: number): number {
  const { kinds, names } = d;
  let bitPos = -1; // position of the open bit octet
  let bit = 8;
  for (let i = 0; i < kinds.length; i++) {
    const kind = kinds[i] as number;
    const v = m[names[i] as string];
    if (kind === K_BIT) {
      if (bit === 8) {
        bitPos = pos++;
        buf[bitPos] = 0;
        bit = 0;
      }
      if (v === true) buf[bitPos] = (buf[bitPos] as number) | (1 << bit);
      bit++;
      continue;
    }
    bit = 8;
    switch (kind) {
      case K_OCTET:
        buf[pos++] = v as number;
        break;
      case K_SHORT:
        buf[pos++] = (v as number) >>> 8;
        buf[pos++] = (v as number) & 0xff;
        break;
      case K_LONG:
        pos = buf.writeUInt32BE(v as number, pos);
        break;
      case K_LONGLONG:
        pos = buf.writeUInt32BE(Math.floor((v as number) / 0x100000000), pos);
        pos = buf.writeUInt32BE((v as number) % 0x100000000, pos);
        break;
      case K_SHORTSTR:
        pos = writeShortstr(buf, pos, v as string);
        break;
      case K_LONGSTR:
        pos = writeLongstr(buf, pos, v as Uint8Array);
        break;
      default:
        pos = writeFieldTable(buf, pos, v as FieldTable);
        break;
    }
  }
  return pos;
}

/**
 * The whole method frame (type 1, channel, size, payload, frame-end) for `m`,
 * in one allocation. Throws AmqpCodecError(502, "cannot encode ...") for a
 * value the wire cannot carry (a short string over 255 bytes, a number out of
 * range, a missing argument) and 540 for an unknown method name.
 */
export function encodeMethodFrame(channel: number, m: AmqpMethod): Buffer {
  const d = BY_NAME.get(m.name);
  if (d === undefined) throw new AmqpCodecError(540, `cannot encode: unknown method ${String(m.name)}`);
  checkU16(channel, 'channel');
  const args = m as unknown as Record<string, unknown>;
  const size = 4 + argsSize(d, args);
  const buf = Buffer.allocUnsafe(size + 8);
  writeFrameHeader(buf, 0, FRAME_METHOD, channel, size);
  buf.writeUInt32BE(d.id, 7);
  const end = writeArgs(d, args, buf, 11);
  buf[end] = FRAME_END;
  return buf;
}
