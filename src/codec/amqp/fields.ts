// AMQP 0-9-1 field tables and field arrays (the `arguments` of declares and
// binds, client/server properties, message headers), with the value types and
// tags RabbitMQ uses (its errata to the spec, which every client follows):
//
//   t bool   b int8    B uint8   s int16   u uint16  I int32   i uint32
//   l int64  f float   d double  D decimal (u8 scale + int32)  T timestamp (u64)
//   S long string (u32 length + bytes)   x byte array (u32 length + bytes)
//   F nested table (u32 byte length)     A array (u32 byte length + values)
//   V void
//
// Tables keep their entries in wire order (an array, not an object), so that a
// decoded table re-encodes to the same bytes and duplicate keys survive. 'S'
// values stay raw bytes: RabbitMQ does not require UTF-8 there. Decoding is
// strict (booleans 0/1, UTF-8 keys, exact lengths) and canonical: whatever it
// accepts re-encodes byte for byte (but for the payload bits of a NaN in an
// 'f' or 'd' value, which a JS number need not keep). Nesting is capped at MAX_FIELD_DEPTH so
// that hostile input cannot exhaust the stack. Decoded byte values are views
// of the input, not copies.

import { cannotEncode, syntaxError } from './errors.js';
import { asBuffer, checkInt, Cursor, shortstrSize, writeShortstr } from './wire.js';
import { assertNever } from '../../util/assert.js';

/** A typed field value. Invariant: numbers are within their type's range (checked on encode). */
export type FieldValue =
  | { readonly type: 'bool'; readonly value: boolean }
  | { readonly type: 'int8' | 'uint8' | 'int16' | 'uint16' | 'int32' | 'uint32' | 'float' | 'double'; readonly value: number }
  | { readonly type: 'int64' | 'timestamp'; readonly value: bigint }
  /** The number is value / 10^scale; scale 0..255, value an int32. */
  | { readonly type: 'decimal'; readonly scale: number; readonly value: number }
  /** 'S': raw bytes (not necessarily UTF-8). */
  | { readonly type: 'string'; readonly value: Uint8Array }
  /** 'x'. */
  | { readonly type: 'bytes'; readonly value: Uint8Array }
  | { readonly type: 'array'; readonly value: readonly FieldValue[] }
  | { readonly type: 'table'; readonly value: FieldTable }
  | { readonly type: 'void' };

/** Entries in wire order. Keys are short strings (at most 255 UTF-8 bytes). */
export type FieldTable = ReadonlyArray<readonly [string, FieldValue]>;

/** Tables and arrays nest at most this deep (the outermost table is level 1); deeper is refused with 502. */
export const MAX_FIELD_DEPTH = 32;

const T_BOOL = 0x74; // t
const T_INT8 = 0x62; // b
const T_UINT8 = 0x42; // B
const T_INT16 = 0x73; // s
const T_UINT16 = 0x75; // u
const T_INT32 = 0x49; // I
const T_UINT32 = 0x69; // i
const T_INT64 = 0x6c; // l
const T_FLOAT = 0x66; // f
const T_DOUBLE = 0x64; // d
const T_DECIMAL = 0x44; // D
const T_STRING = 0x53; // S
const T_TIMESTAMP = 0x54; // T
const T_TABLE = 0x46; // F
const T_ARRAY = 0x41; // A
const T_VOID = 0x56; // V
const T_BYTES = 0x78; // x

// ---------------------------------------------------------------- decoding

/** Narrows the cursor to a u32-length-prefixed region; returns the outer end to restore. */
function enter(c: Cursor, what: string): number {
  const at = c.pos;
  const len = c.u32(what);
  if (len > c.end - c.pos) syntaxError(`${what}: length ${len} at byte ${at} exceeds the ${c.end - c.pos} bytes left`);
  const outer = c.end;
  c.end = c.pos + len;
  return outer;
}

function tooDeep(at: number): never {
  return syntaxError(`field table nested deeper than ${MAX_FIELD_DEPTH} levels at byte ${at}`);
}

/** Reads a u32-length-prefixed table at `c.pos`; `depth` is this table's nesting level (1 for a top-level table). */
export function readFieldTable(c: Cursor, depth: number): FieldTable {
  if (depth > MAX_FIELD_DEPTH) tooDeep(c.pos);
  const outer = enter(c, 'field table');
  const out: (readonly [string, FieldValue])[] = [];
  while (c.pos < c.end) {
    const key = c.shortstr('field name');
    out.push([key, readFieldValue(c, depth)]);
  }
  c.end = outer;
  return out;
}

function readFieldArray(c: Cursor, depth: number): FieldValue[] {
  if (depth > MAX_FIELD_DEPTH) tooDeep(c.pos);
  const outer = enter(c, 'field array');
  const out: FieldValue[] = [];
  while (c.pos < c.end) out.push(readFieldValue(c, depth));
  c.end = outer;
  return out;
}

function readFieldValue(c: Cursor, depth: number): FieldValue {
  const at = c.pos;
  const tag = c.u8('field type');
  const b = c.buf;
  switch (tag) {
    case T_BOOL:
      return { type: 'bool', value: c.bool('bool field') };
    case T_INT8:
      c.need(1, 'int8 field');
      return { type: 'int8', value: b.readInt8(c.pos++) };
    case T_UINT8:
      return { type: 'uint8', value: c.u8('uint8 field') };
    case T_INT16:
      c.need(2, 'int16 field');
      c.pos += 2;
      return { type: 'int16', value: b.readInt16BE(c.pos - 2) };
    case T_UINT16:
      return { type: 'uint16', value: c.u16('uint16 field') };
    case T_INT32:
      c.need(4, 'int32 field');
      c.pos += 4;
      return { type: 'int32', value: b.readInt32BE(c.pos - 4) };
    case T_UINT32:
      return { type: 'uint32', value: c.u32('uint32 field') };
    case T_INT64:
      c.need(8, 'int64 field');
      c.pos += 8;
      return { type: 'int64', value: b.readBigInt64BE(c.pos - 8) };
    case T_FLOAT:
      c.need(4, 'float field');
      c.pos += 4;
      return { type: 'float', value: b.readFloatBE(c.pos - 4) };
    case T_DOUBLE:
      c.need(8, 'double field');
      c.pos += 8;
      return { type: 'double', value: b.readDoubleBE(c.pos - 8) };
    case T_DECIMAL: {
      c.need(5, 'decimal field');
      const scale = b[c.pos] as number;
      const value = b.readInt32BE(c.pos + 1);
      c.pos += 5;
      return { type: 'decimal', scale, value };
    }
    case T_STRING:
      return { type: 'string', value: c.longstr('string field') };
    case T_TIMESTAMP:
      c.need(8, 'timestamp field');
      c.pos += 8;
      return { type: 'timestamp', value: b.readBigUInt64BE(c.pos - 8) };
    case T_TABLE:
      return { type: 'table', value: readFieldTable(c, depth + 1) };
    case T_ARRAY:
      return { type: 'array', value: readFieldArray(c, depth + 1) };
    case T_VOID:
      return { type: 'void' };
    case T_BYTES:
      return { type: 'bytes', value: c.longstr('bytes field') };
    default:
      return syntaxError(`unknown field type 0x${tag.toString(16).padStart(2, '0')} at byte ${at}`);
  }
}

const FIXED_SIZE = new Int8Array(256).fill(-1);
FIXED_SIZE[T_INT8] = 1;
FIXED_SIZE[T_UINT8] = 1;
FIXED_SIZE[T_INT16] = 2;
FIXED_SIZE[T_UINT16] = 2;
FIXED_SIZE[T_INT32] = 4;
FIXED_SIZE[T_UINT32] = 4;
FIXED_SIZE[T_INT64] = 8;
FIXED_SIZE[T_FLOAT] = 4;
FIXED_SIZE[T_DOUBLE] = 8;
FIXED_SIZE[T_DECIMAL] = 5;
FIXED_SIZE[T_TIMESTAMP] = 8;
FIXED_SIZE[T_VOID] = 0;

/**
 * Validates a table exactly as {@link readFieldTable} would, without building
 * it (no allocation): used to check message headers that are passed through.
 */
export function skipFieldTable(c: Cursor, depth: number): void {
  if (depth > MAX_FIELD_DEPTH) tooDeep(c.pos);
  const outer = enter(c, 'field table');
  while (c.pos < c.end) {
    c.skipShortstr('field name');
    skipFieldValue(c, depth);
  }
  c.end = outer;
}

function skipFieldValue(c: Cursor, depth: number): void {
  const at = c.pos;
  const tag = c.u8('field type');
  const fixed = FIXED_SIZE[tag] as number;
  if (fixed >= 0) {
    c.need(fixed, 'field value');
    c.pos += fixed;
    return;
  }
  switch (tag) {
    case T_BOOL:
      c.bool('bool field');
      return;
    case T_STRING:
    case T_BYTES: {
      const outer = enter(c, 'string field');
      c.pos = c.end;
      c.end = outer;
      return;
    }
    case T_TABLE:
      skipFieldTable(c, depth + 1);
      return;
    case T_ARRAY: {
      if (depth + 1 > MAX_FIELD_DEPTH) tooDeep(c.pos);
      const outer = enter(c, 'field array');
      while (c.pos < c.end) skipFieldValue(c, depth + 1);
      c.end = outer;
      return;
    }
    default:
      syntaxError(`unknown field type 0x${tag.toString(16).padStart(2, '0')} at byte ${at}`);
  }
}

/**
 * Decodes a field table (with its u32 length prefix) starting at `offset` in
 * `buf`; returns it and the offset just past it. Byte values in the result are
 * views of `buf`. Throws AmqpCodecError(502) on anything malformed.
 */
export function decodeFieldTable(buf: Uint8Array, offset: number): { table: FieldTable; end: number } {
  const b = asBuffer(buf);
  if (!Number.isInteger(offset) || offset < 0 || offset > b.length) syntaxError(`field table offset ${offset} outside the ${b.length} bytes`);
  const c = new Cursor(b, offset, b.length);
  const table = readFieldTable(c, 1);
  return { table, end: c.pos };
}

// ---------------------------------------------------------------- encoding

/** Encoded size of a table including its 4-byte length prefix; validates every value (502 "cannot encode"). */
export function fieldTableSize(t: FieldTable, depth = 1): number {
  if (depth > MAX_FIELD_DEPTH) cannotEncode(`field table nested deeper than ${MAX_FIELD_DEPTH} levels`);
  if (!Array.isArray(t)) cannotEncode('field table: expected an array of [key, value] entries');
  let n = 4;
  for (const entry of t) {
    n += shortstrSize(entry[0], 'field name') + fieldValueSize(entry[1], depth);
  }
  if (n - 4 > 0xffffffff) cannotEncode(`field table of ${n - 4} bytes exceeds 2^32 - 1`);
  return n;
}

function fieldArraySize(a: readonly FieldValue[], depth: number): number {
  if (depth > MAX_FIELD_DEPTH) cannotEncode(`field array nested deeper than ${MAX_FIELD_DEPTH} levels`);
  if (!Array.isArray(a)) cannotEncode('field array: expected an array');
  let n = 4;
  for (const v of a) n += fieldValueSize(v, depth);
  if (n - 4 > 0xffffffff) cannotEncode(`field array of ${n - 4} bytes exceeds 2^32 - 1`);
  return n;
}

function checkFloat(v: unknown, what: string): void {
  if (typeof v !== 'number') cannotEncode(`${what}: expected a number`);
}

function checkBigint(v: unknown, lo: bigint, hi: bigint, what: string): void {
  if (typeof v !== 'bigint' || v < lo || v > hi) cannotEncode(`${what}: ${String(v)} is not a bigint in [${lo}, ${hi}]`);
}

function checkBytes(v: unknown, what: string): number {
  if (!(v instanceof Uint8Array)) cannotEncode(`${what}: expected a Uint8Array`);
  return v.byteLength;
}

/** Encoded size of a tagged value (tag included); `depth` is the level of the table or array holding it. */
function fieldValueSize(v: FieldValue, depth: number): number {
  switch (v.type) {
    case 'bool':
      if (typeof v.value !== 'boolean') cannotEncode('bool field: expected a boolean');
      return 2;
    case 'int8':
      checkInt(v.value, -0x80, 0x7f, 'int8 field');
      return 2;
    case 'uint8':
      checkInt(v.value, 0, 0xff, 'uint8 field');
      return 2;
    case 'int16':
      checkInt(v.value, -0x8000, 0x7fff, 'int16 field');
      return 3;
    case 'uint16':
      checkInt(v.value, 0, 0xffff, 'uint16 field');
      return 3;
    case 'int32':
      checkInt(v.value, -0x80000000, 0x7fffffff, 'int32 field');
      return 5;
    case 'uint32':
      checkInt(v.value, 0, 0xffffffff, 'uint32 field');
      return 5;
    case 'float':
      checkFloat(v.value, 'float field');
      return 5;
    case 'double':
      checkFloat(v.value, 'double field');
      return 9;
    case 'int64':
      checkBigint(v.value, -(2n ** 63n), 2n ** 63n - 1n, 'int64 field');
      return 9;
    case 'timestamp':
      checkBigint(v.value, 0n, 2n ** 64n - 1n, 'timestamp field');
      return 9;
    case 'decimal':
      checkInt(v.scale, 0, 0xff, 'decimal scale');
      checkInt(v.value, -0x80000000, 0x7fffffff, 'decimal value');
      return 6;
    case 'string':
      return 5 + checkBytes(v.value, 'string field');
    case 'bytes':
      return 5 + checkBytes(v.value, 'bytes field');
    case 'array':
      return 1 + fieldArraySize(v.value, depth + 1);
    case 'table':
      return 1 + fieldTableSize(v.value, depth + 1);
    case 'void':
      return 1;
    default:
      return cannotEncode(`unknown field value type ${JSON.stringify((v as { type?: unknown }).type)}`);
  }
}

/** Writes a table validated by {@link fieldTableSize} at `pos` (length prefix included); returns the new position. */
export function writeFieldTable(buf: Buffer, pos: number, t: FieldTable): number {
  const start = pos;
  pos += 4;
  for (const [key, v] of t) {
    pos = writeShortstr(buf, pos, key);
    pos = writeFieldValue(buf, pos, v);
  }
  buf.writeUInt32BE(pos - start - 4, start);
  return pos;
}

function writeFieldValue(buf: Buffer, pos: number, v: FieldValue): number {
  switch (v.type) {
    case 'bool':
      buf[pos] = T_BOOL;
      buf[pos + 1] = v.value ? 1 : 0;
      return pos + 2;
    case 'int8':
      buf[pos] = T_INT8;
      return buf.writeInt8(v.value, pos + 1);
    case 'uint8':
      buf[pos] = T_UINT8;
      return buf.writeUInt8(v.value, pos + 1);
    case 'int16':
      buf[pos] = T_INT16;
      return buf.writeInt16BE(v.value, pos + 1);
    case 'uint16':
      buf[pos] = T_UINT16;
      return buf.writeUInt16BE(v.value, pos + 1);
    case 'int32':
      buf[pos] = T_INT32;
      return buf.writeInt32BE(v.value, pos + 1);
    case 'uint32':
      buf[pos] = T_UINT32;
      return buf.writeUInt32BE(v.value, pos + 1);
    case 'float':
      buf[pos] = T_FLOAT;
      return buf.writeFloatBE(v.value, pos + 1);
    case 'double':
      buf[pos] = T_DOUBLE;
      return buf.writeDoubleBE(v.value, pos + 1);
    case 'int64':
      buf[pos] = T_INT64;
      return buf.writeBigInt64BE(v.value, pos + 1);
    case 'timestamp':
      buf[pos] = T_TIMESTAMP;
      return buf.writeBigUInt64BE(v.value, pos + 1);
    case 'decimal':
      buf[pos] = T_DECIMAL;
      buf[pos + 1] = v.scale;
      return buf.writeInt32BE(v.value, pos + 2);
    case 'string':
    case 'bytes':
      buf[pos] = v.type === 'string' ? T_STRING : T_BYTES;
      buf.writeUInt32BE(v.value.byteLength, pos + 1);
      buf.set(v.value, pos + 5);
      return pos + 5 + v.value.byteLength;
    case 'array': {
      buf[pos] = T_ARRAY;
      const start = pos + 1;
      pos = start + 4;
      for (const x of v.value) pos = writeFieldValue(buf, pos, x);
      buf.writeUInt32BE(pos - start - 4, start);
      return pos;
    }
    case 'table':
      buf[pos] = T_TABLE;
      return writeFieldTable(buf, pos + 1, v.value);
    case 'void':
      buf[pos] = T_VOID;
      return pos + 1;
    default:
      return assertNever(v, 'field value');
  }
}

/** Encodes a table with its u32 length prefix, in one allocation. Throws AmqpCodecError(502) on a value the wire cannot carry. */
export function encodeFieldTable(table: FieldTable): Buffer {
  const buf = Buffer.allocUnsafe(fieldTableSize(table));
  writeFieldTable(buf, 0, table);
  return buf;
}

// ---------------------------------------------------------------- helpers

/** The value of the first entry named `key`, or undefined. */
export function fieldTableGet(table: FieldTable, key: string): FieldValue | undefined {
  for (const [k, v] of table) if (k === key) return v;
  return undefined;
}

const utf8 = new TextEncoder();
const lossyUtf8 = new TextDecoder('utf-8', { fatal: false });

/** A long-string ('S') field value holding the UTF-8 bytes of `s`. */
export function fieldString(s: string): FieldValue {
  return { type: 'string', value: utf8.encode(s) };
}

/**
 * A plain JS rendering, for logs and tests: numbers, bigints (int64,
 * timestamp), booleans, null (void), strings ('S' decoded as UTF-8, lossily),
 * Uint8Array ('x'), `{ scale, value }` (decimal), arrays and objects (tables;
 * the first of duplicate keys wins).
 */
export function fieldValueToPlain(v: FieldValue): unknown {
  switch (v.type) {
    case 'bool':
    case 'int8':
    case 'uint8':
    case 'int16':
    case 'uint16':
    case 'int32':
    case 'uint32':
    case 'float':
    case 'double':
    case 'int64':
    case 'timestamp':
    case 'bytes':
      return v.value;
    case 'decimal':
      return { scale: v.scale, value: v.value };
    case 'string':
      return lossyUtf8.decode(v.value);
    case 'array':
      return v.value.map(fieldValueToPlain);
    case 'table':
      return fieldTableToPlain(v.value);
    case 'void':
      return null;
    default:
      return assertNever(v, 'field value');
  }
}

/** A table as a plain object (see {@link fieldValueToPlain}); the first of duplicate keys wins. */
export function fieldTableToPlain(t: FieldTable): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of t) if (!Object.hasOwn(out, k)) out[k] = fieldValueToPlain(v);
  return out;
}

/**
 * Infers a typed value from a plain JS one, as AMQP clients do (amqplib's
 * rules): boolean → bool; integer → the smallest of int8/int16/int32/int64
 * that holds it; other numbers → double; bigint → int64; string → 'S' (UTF-8);
 * Uint8Array → 'x'; null → void; array → array; object → table. Throws
 * AmqpCodecError(502) for anything else (undefined, functions, symbols).
 */
export function fieldValueFromPlain(x: unknown): FieldValue {
  switch (typeof x) {
    case 'boolean':
      return { type: 'bool', value: x };
    case 'number':
      if (Number.isInteger(x)) {
        if (x >= -0x80 && x <= 0x7f) return { type: 'int8', value: x };
        if (x >= -0x8000 && x <= 0x7fff) return { type: 'int16', value: x };
        if (x >= -0x80000000 && x <= 0x7fffffff) return { type: 'int32', value: x };
        if (x >= -(2 ** 63) && x < 2 ** 63) return { type: 'int64', value: BigInt(x) };
      }
      return { type: 'double', value: x };
    case 'bigint':
      return { type: 'int64', value: x };
    case 'string':
      return fieldString(x);
    case 'object':
      if (x === null) return { type: 'void' };
      if (x instanceof Uint8Array) return { type: 'bytes', value: x };
      if (Array.isArray(x)) return { type: 'array', value: x.map(fieldValueFromPlain) };
      return { type: 'table', value: fieldTableFromPlain(x as Record<string, unknown>) };
    default:
      return cannotEncode(`no field type for a ${typeof x}`);
  }
}

/** A plain object as a table (entries in key order; undefined values skipped, as clients do). */
export function fieldTableFromPlain(o: Readonly<Record<string, unknown>>): FieldTable {
  const out: (readonly [string, FieldValue])[] = [];
  for (const k of Object.keys(o)) {
    const v = o[k];
    if (v !== undefined) out.push([k, fieldValueFromPlain(v)]);
  }
  return out;
}
