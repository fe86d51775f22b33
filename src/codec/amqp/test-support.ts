// Test-only helpers shared by the AMQP codec's tests (imported by *.test.ts
// files only, never by the codec): fast-check arbitraries for field values,
// tables, methods and properties, and the bridge to amqplib, the reference
// encoder/decoder the tests compare with (its generated lib/defs.js and
// lib/codec.js, loaded by path because its package exports hide them).
//
// amqplib's representation differs from ours, and the bridge says where:
// tables are plain objects (so keys are unique, integer-like keys would be
// reordered by JS, '__proto__' is special, and an object with a '!' key is
// its typed-value notation), 'S' values are JS strings (so
// only valid UTF-8), int64 and timestamp decode to lossy JS numbers, property
// timestamps must be JS numbers, and decimals are written as an unsigned
// 32-bit digits value (the bits are the same as our int32).

import { createRequire } from 'node:module';
import path from 'node:path';
import fc from 'fast-check';
import type { FieldTable, FieldValue } from './fields.js';

const require = createRequire(import.meta.url);
const amqplibDir = path.dirname(require.resolve('amqplib'));

/** The parts of amqplib's generated lib/defs.js the tests use. */
export interface AmqplibDefs {
  encodeMethod(id: number, channel: number, fields: Record<string, unknown>): Buffer;
  decode(id: number, payload: Buffer): Record<string, unknown>;
  encodeProperties(id: number, channel: number, size: number, fields: Record<string, unknown>): Buffer;
  info(id: number): AmqplibMethodInfo;
  [key: string]: unknown;
}
export interface AmqplibMethodInfo {
  id: number;
  classId: number;
  methodId: number;
  name: string;
  args: { type: string; name: string }[];
}
export interface AmqplibCodec {
  encodeTable(buf: Buffer, val: Record<string, unknown>, offset: number): number;
  decodeFields(slice: Buffer): Record<string, unknown>;
}

export const amqplibDefs = require(path.join(amqplibDir, 'lib/defs.js')) as AmqplibDefs;
export const amqplibCodec = require(path.join(amqplibDir, 'lib/codec.js')) as AmqplibCodec;

/** amqplib's method infos (every method it knows, including the access class). */
export const AMQPLIB_METHODS: readonly AmqplibMethodInfo[] = Object.keys(amqplibDefs)
  .filter((k) => k.startsWith('methodInfo'))
  .map((k) => amqplibDefs[k] as AmqplibMethodInfo);

/** Replaces every Uint8Array (Buffers included) by a plain Uint8Array copy, recursively, so deepEqual compares contents only. */
export function norm(x: unknown): unknown {
  if (x instanceof Uint8Array) return Uint8Array.from(x);
  if (Array.isArray(x)) return x.map(norm);
  if (x !== null && typeof x === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(x)) if (v !== undefined) out[k] = norm(v);
    return out;
  }
  return x;
}

/** A short string: at most 255 UTF-8 bytes, well-formed, mostly ASCII. */
export const shortstrArb: fc.Arbitrary<string> = fc
  .oneof(fc.string({ maxLength: 30 }), fc.string({ unit: 'grapheme', maxLength: 12 }), fc.string({ minLength: 250, maxLength: 255 }))
  .filter((s) => Buffer.byteLength(s) <= 255);

const bytesArb = fc.uint8Array({ maxLength: 40 });
const int = (min: number, max: number): fc.Arbitrary<number> => fc.integer({ min, max });

/** Scalar field values of every type (ours, not restricted to what amqplib can represent). */
export const scalarFieldArb: fc.Arbitrary<FieldValue> = fc.oneof(
  fc.boolean().map((value): FieldValue => ({ type: 'bool', value })),
  int(-0x80, 0x7f).map((value): FieldValue => ({ type: 'int8', value })),
  int(0, 0xff).map((value): FieldValue => ({ type: 'uint8', value })),
  int(-0x8000, 0x7fff).map((value): FieldValue => ({ type: 'int16', value })),
  int(0, 0xffff).map((value): FieldValue => ({ type: 'uint16', value })),
  int(-0x80000000, 0x7fffffff).map((value): FieldValue => ({ type: 'int32', value })),
  int(0, 0xffffffff).map((value): FieldValue => ({ type: 'uint32', value })),
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map((value): FieldValue => ({ type: 'int64', value })),
  fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map((value): FieldValue => ({ type: 'timestamp', value })),
  fc.float({ noNaN: true }).map((value): FieldValue => ({ type: 'float', value })),
  fc.double({ noNaN: true }).map((value): FieldValue => ({ type: 'double', value })),
  fc.record({ scale: int(0, 255), value: int(-0x80000000, 0x7fffffff) }).map(({ scale, value }): FieldValue => ({ type: 'decimal', scale, value })),
  bytesArb.map((value): FieldValue => ({ type: 'string', value })),
  bytesArb.map((value): FieldValue => ({ type: 'bytes', value })),
  fc.constant<FieldValue>({ type: 'void' }),
);

/** Any field table: every type, nesting, duplicate and non-ASCII keys. */
export const fieldTableArb: fc.Arbitrary<FieldTable> = fc.letrec<{ table: FieldTable; value: FieldValue }>((tie) => ({
  table: fc.array(fc.tuple(shortstrArb, tie('value')), { maxLength: 5 }),
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    scalarFieldArb,
    fc.array(tie('value'), { maxLength: 4 }).map((value): FieldValue => ({ type: 'array', value })),
    tie('table').map((value): FieldValue => ({ type: 'table', value })),
  ),
})).table;

// ----------------------------------------------------------------- amqplib's subset

// '!' marks amqplib's typed-value notation, so a table with that key is not a table to it.
const plainKeyArb = shortstrArb.filter((k) => k !== '__proto__' && k !== '!' && !/^(0|[1-9][0-9]*)$/.test(k));
const utf8 = new TextEncoder();

const compatScalarArb: fc.Arbitrary<FieldValue> = fc.oneof(
  scalarFieldArb.filter((v) => v.type !== 'string' && v.type !== 'timestamp' && v.type !== 'int64'),
  fc.string({ unit: 'grapheme', maxLength: 20 }).map((s): FieldValue => ({ type: 'string', value: utf8.encode(s) })),
  // amqplib decodes int64 and timestamp to JS numbers: keep them exact.
  fc.bigInt({ min: BigInt(Number.MIN_SAFE_INTEGER), max: BigInt(Number.MAX_SAFE_INTEGER) }).map((value): FieldValue => ({ type: 'int64', value })),
  fc.bigInt({ min: 0n, max: BigInt(Number.MAX_SAFE_INTEGER) }).map((value): FieldValue => ({ type: 'timestamp', value })),
);

function uniqueKeys(entries: (readonly [string, FieldValue])[]): FieldTable {
  const seen = new Set<string>();
  return entries.filter(([k]) => !seen.has(k) && seen.add(k) !== undefined);
}

/** Tables amqplib can represent: unique, non-index keys; UTF-8 'S' values; safe int64/timestamps. */
export const compatTableArb: fc.Arbitrary<FieldTable> = fc.letrec<{ table: FieldTable; value: FieldValue }>((tie) => ({
  table: fc.array(fc.tuple(plainKeyArb, tie('value')), { maxLength: 5 }).map(uniqueKeys),
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    compatScalarArb,
    fc.array(tie('value'), { maxLength: 4 }).map((value): FieldValue => ({ type: 'array', value })),
    tie('table').map((value): FieldValue => ({ type: 'table', value })),
  ),
})).table;

/** Our value as amqplib's encoder input (its `{'!': type, value}` notation). */
export function toAmqplibValue(v: FieldValue): unknown {
  switch (v.type) {
    case 'bool':
      return v.value;
    case 'int8':
    case 'uint8':
    case 'int16':
    case 'uint16':
    case 'int32':
    case 'uint32':
    case 'int64':
    case 'timestamp':
    case 'float':
      return { '!': v.type, value: v.value };
    case 'double':
      return { '!': 'double', value: v.value };
    case 'decimal':
      // amqplib (and RabbitMQ) write the digits unsigned; the bits of our int32 are the same.
      return { '!': 'decimal', value: { places: v.scale, digits: v.value >>> 0 } };
    case 'string':
      return Buffer.from(v.value).toString('utf8');
    case 'bytes':
      return Buffer.from(v.value);
    case 'array':
      return v.value.map(toAmqplibValue);
    case 'table':
      return toAmqplibTable(v.value);
    case 'void':
      return null;
  }
}

export function toAmqplibTable(t: FieldTable): Record<string, unknown> {
  return Object.fromEntries(t.map(([k, v]) => [k, toAmqplibValue(v)]));
}

/** What amqplib's decoder yields for our value (its lossy, untyped view). */
export function amqplibDecodedValue(v: FieldValue): unknown {
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
      return v.value;
    case 'int64':
      return Number(v.value);
    case 'timestamp':
      return { '!': 'timestamp', value: Number(v.value) };
    case 'decimal':
      return { '!': 'decimal', value: { places: v.scale, digits: v.value >>> 0 } };
    case 'string':
      return Buffer.from(v.value).toString('utf8');
    case 'bytes':
      return Uint8Array.from(v.value);
    case 'array':
      return v.value.map(amqplibDecodedValue);
    case 'table':
      return amqplibDecodedTable(v.value);
    case 'void':
      return null;
  }
}

export function amqplibDecodedTable(t: FieldTable): Record<string, unknown> {
  return Object.fromEntries(t.map(([k, v]) => [k, amqplibDecodedValue(v)]));
}
