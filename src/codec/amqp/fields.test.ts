// Tests of the field-table codec: hand-written bytes from the RabbitMQ type
// list, round trips of arbitrary tables (every type, nesting, duplicate keys)
// both ways, agreement with amqplib's encoder and decoder where it can
// represent the value, the validating skip agreeing with the decoder, every
// refusal (truncation, unknown tag, bad boolean, depth bomb, huge lengths),
// and fuzzing: arbitrary and mutated bytes only ever throw AmqpCodecError.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  AmqpCodecError,
  decodeFieldTable,
  encodeFieldTable,
  fieldString,
  fieldTableFromPlain,
  fieldTableGet,
  fieldTableToPlain,
  fieldValueFromPlain,
  MAX_FIELD_DEPTH,
  type FieldTable,
  type FieldValue,
} from './index.js';
import { skipFieldTable } from './fields.js';
import { Cursor } from './wire.js';
import {
  amqplibCodec,
  amqplibDecodedTable,
  compatTableArb,
  fieldTableArb,
  norm,
  toAmqplibTable,
} from './test-support.js';

const hex = (u: Uint8Array): string => Buffer.from(u).toString('hex');
const fromHex = (h: string): Buffer => Buffer.from(h.replace(/\s+/g, ''), 'hex');

function rejects(fn: () => unknown, code: number, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof AmqpCodecError, `expected AmqpCodecError, got ${String(e)}`);
    assert.equal(e.replyCode, code);
    assert.match(e.message, re);
    return true;
  });
}

/** Decodes a whole buffer as one table, requiring every byte consumed. */
function decodeAll(b: Uint8Array): FieldTable {
  const { table, end } = decodeFieldTable(b, 0);
  assert.equal(end, b.byteLength);
  return table;
}

test('every RabbitMQ field type, byte for byte', () => {
  const table: FieldTable = [
    ['t', { type: 'bool', value: true }],
    ['b', { type: 'int8', value: -2 }],
    ['B', { type: 'uint8', value: 200 }],
    ['s', { type: 'int16', value: -300 }],
    ['u', { type: 'uint16', value: 60000 }],
    ['I', { type: 'int32', value: -70000 }],
    ['i', { type: 'uint32', value: 4000000000 }],
    ['l', { type: 'int64', value: -5n }],
    ['f', { type: 'float', value: 1.5 }],
    ['d', { type: 'double', value: -0.25 }],
    ['D', { type: 'decimal', scale: 2, value: -12345 }],
    ['S', { type: 'string', value: new Uint8Array([0xff, 0x00]) }],
    ['T', { type: 'timestamp', value: 2n ** 64n - 1n }],
    ['F', { type: 'table', value: [['k', { type: 'void' }]] }],
    ['A', { type: 'array', value: [{ type: 'uint8', value: 1 }, { type: 'bool', value: false }] }],
    ['V', { type: 'void' }],
    ['x', { type: 'bytes', value: new Uint8Array([1, 2]) }],
  ];
  const expected = fromHex(`
    0000007e
    0174 74 01
    0162 62 fe
    0142 42 c8
    0173 73 fed4
    0175 75 ea60
    0149 49 fffeee90
    0169 69 ee6b2800
    016c 6c fffffffffffffffb
    0166 66 3fc00000
    0164 64 bfd0000000000000
    0144 44 02 ffffcfc7
    0153 53 00000002 ff00
    0154 54 ffffffffffffffff
    0146 46 00000003 016b56
    0141 41 00000004 4201 7400
    0156 56
    0178 78 00000002 0102`);
  assert.equal(hex(encodeFieldTable(table)), hex(expected));
  assert.deepEqual(norm(decodeAll(expected)), norm(table));
});

test('decodeFieldTable reads at an offset and returns the end; accepts a plain Uint8Array', () => {
  const t = encodeFieldTable([['a', fieldString('b')]]);
  const framed = new Uint8Array([9, 9, ...t, 7]);
  const { table, end } = decodeFieldTable(framed, 2);
  assert.equal(end, 2 + t.byteLength);
  assert.deepEqual(norm(table), norm([['a', fieldString('b')]]));
});

test('round trip: decode(encode(t)) == t and encode(decode(bytes)) == bytes', () => {
  fc.assert(
    fc.property(fieldTableArb, (t) => {
      const bytes = encodeFieldTable(t);
      const back = decodeAll(bytes);
      assert.deepEqual(norm(back), norm(t));
      assert.equal(hex(encodeFieldTable(back)), hex(bytes));
    }),
    { numRuns: 300 },
  );
});

test('skipFieldTable accepts exactly what decodeFieldTable accepts, and ends at the same byte', () => {
  const check = (b: Buffer): void => {
    let decoded: number | string;
    try {
      decoded = decodeFieldTable(b, 0).end;
    } catch (e) {
      assert.ok(e instanceof AmqpCodecError);
      decoded = 'refused';
    }
    let skipped: number | string;
    const c = new Cursor(b, 0, b.length);
    try {
      skipFieldTable(c, 1);
      skipped = c.pos;
    } catch (e) {
      assert.ok(e instanceof AmqpCodecError);
      skipped = 'refused';
    }
    assert.equal(skipped, decoded);
  };
  fc.assert(
    fc.property(fieldTableArb, fc.nat(), fc.integer({ min: 0, max: 255 }), (t, at, byte) => {
      const bytes = Buffer.from(encodeFieldTable(t));
      check(bytes);
      const i = at % bytes.length;
      bytes[i] = byte;
      check(bytes);
    }),
    { numRuns: 300 },
  );
});

test('our encoder writes the bytes amqplib writes, for tables it can represent', () => {
  const scratch = Buffer.alloc(1 << 16);
  fc.assert(
    fc.property(compatTableArb, (t) => {
      const n = amqplibCodec.encodeTable(scratch, toAmqplibTable(t), 0);
      assert.equal(hex(encodeFieldTable(t)), hex(scratch.subarray(0, n)));
    }),
    { numRuns: 200 },
  );
});

test("we decode amqplib's tables to the values it encoded, and amqplib decodes ours", () => {
  const scratch = Buffer.alloc(1 << 16);
  fc.assert(
    fc.property(compatTableArb, (t) => {
      const n = amqplibCodec.encodeTable(scratch, toAmqplibTable(t), 0);
      assert.deepEqual(norm(decodeAll(scratch.subarray(0, n))), norm(t));
      const ours = encodeFieldTable(t);
      assert.deepEqual(norm(amqplibCodec.decodeFields(ours.subarray(4))), norm(amqplibDecodedTable(t)));
    }),
    { numRuns: 200 },
  );
});

test('known difference: amqplib reads a negative decimal as unsigned digits (RabbitMQ too); we read the int32 of the errata', () => {
  const bytes = encodeFieldTable([['d', { type: 'decimal', scale: 1, value: -1 }]]);
  assert.deepEqual(amqplibCodec.decodeFields(bytes.subarray(4)), { d: { '!': 'decimal', value: { places: 1, digits: 0xffffffff } } });
  assert.deepEqual(decodeAll(bytes), [['d', { type: 'decimal', scale: 1, value: -1 }]]);
});

test('refusals: truncation, unknown tag, non-0/1 boolean, invalid UTF-8 key, lengths beyond the bytes', () => {
  rejects(() => decodeFieldTable(fromHex('000000'), 0), 502, /field table: truncated/);
  rejects(() => decodeFieldTable(fromHex('00000006 01 61 49 0000'), 0), 502, /length 6 at byte 0 exceeds the 5 bytes left/);
  rejects(() => decodeFieldTable(fromHex('00000004 01 61 49 00'), 0), 502, /int32 field: truncated/);
  rejects(() => decodeFieldTable(fromHex('00000003 01 61 7a'), 0), 502, /unknown field type 0x7a/);
  rejects(() => decodeFieldTable(fromHex('00000004 01 61 74 02'), 0), 502, /boolean octet 2/);
  rejects(() => decodeFieldTable(fromHex('00000003 01 ff 56'), 0), 502, /invalid UTF-8/);
  rejects(() => decodeFieldTable(fromHex('00000002 05 61'), 0), 502, /field name: truncated/);
  // a 4 GiB string announced in 12 bytes: refused before anything is allocated
  rejects(() => decodeFieldTable(fromHex('00000007 01 61 53 ffffffff'), 0), 502, /length 4294967295 .* exceeds the 0 bytes left/);
  // an inner length that overruns the outer table's own length
  rejects(() => decodeFieldTable(fromHex('00000008 01 61 46 00000005 0000'), 0), 502, /length 5 at byte 7 exceeds the 1 bytes left/);
  rejects(() => decodeFieldTable(fromHex('00'), 5), 502, /offset 5 outside/);
});

test(`nesting deeper than ${MAX_FIELD_DEPTH} levels is refused on decode and on encode, by table or by array`, () => {
  const nest = (levels: number, array: boolean): FieldTable => {
    let v: FieldValue = { type: 'void' };
    for (let i = 1; i < levels; i++) v = array ? { type: 'array', value: [v] } : { type: 'table', value: [['k', v]] };
    return [['k', v]];
  };
  for (const array of [false, true]) {
    const ok = encodeFieldTable(nest(MAX_FIELD_DEPTH, array));
    assert.equal(decodeAll(ok).length, 1);
    rejects(() => encodeFieldTable(nest(MAX_FIELD_DEPTH + 1, array)), 502, /cannot encode: field (table|array) nested deeper than 32/);
  }
  // hostile: 100000 levels of 'A' arrays, each announcing the rest of the input
  const levels = 100000;
  const bomb = Buffer.alloc(4 + levels * 5 + 2);
  bomb.writeUInt32BE(bomb.length - 4, 0);
  bomb[4] = 1;
  bomb[5] = 0x6b;
  for (let i = 0; i < levels; i++) {
    bomb[6 + i * 5] = 0x41;
    bomb.writeUInt32BE(bomb.length - (6 + i * 5 + 5), 6 + i * 5 + 1);
  }
  rejects(() => decodeFieldTable(bomb, 0), 502, /nested deeper than 32/);
});

test('encode refuses what the wire cannot carry', () => {
  rejects(() => encodeFieldTable([['k', { type: 'int8', value: 128 }]]), 502, /cannot encode: int8 field: 128/);
  rejects(() => encodeFieldTable([['k', { type: 'uint32', value: 1.5 }]]), 502, /uint32 field/);
  rejects(() => encodeFieldTable([['k', { type: 'int64', value: 2n ** 63n }]]), 502, /int64 field/);
  rejects(() => encodeFieldTable([['k', { type: 'timestamp', value: -1n }]]), 502, /timestamp field/);
  rejects(() => encodeFieldTable([['k', { type: 'decimal', scale: 256, value: 0 }]]), 502, /decimal scale/);
  rejects(() => encodeFieldTable([['x'.repeat(256), { type: 'void' }]]), 502, /field name: 256 UTF-8 bytes/);
  rejects(() => encodeFieldTable([['\ud800', { type: 'void' }]]), 502, /lone surrogate/);
});

test('fuzz: random bytes and mutations of valid tables decode or throw AmqpCodecError, and what decodes re-encodes to the same value', () => {
  const probe = (b: Uint8Array): void => {
    let t: FieldTable;
    try {
      t = decodeFieldTable(b, 0).table;
    } catch (e) {
      assert.ok(e instanceof AmqpCodecError, `not an AmqpCodecError: ${String(e)}`);
      return;
    }
    assert.deepEqual(norm(decodeAll(encodeFieldTable(t))), norm(t));
  };
  fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), (b) => probe(b)), { numRuns: 500 });
  fc.assert(
    fc.property(fieldTableArb, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), fc.nat(), (t, edits, cut) => {
      const b = Buffer.from(encodeFieldTable(t));
      for (const [at, v] of edits) b[at % b.length] = v;
      probe(b);
      probe(b.subarray(0, cut % (b.length + 1)));
    }),
    { numRuns: 300 },
  );
});

test('helpers: get, plain conversions and client-style inference', () => {
  const t = fieldTableFromPlain({ a: 1, b: 300, c: 70000, d: 2 ** 40, e: 1.5, f: 'x', g: true, h: null, i: [1], j: { k: 2n }, u: undefined });
  assert.deepEqual(
    t.map(([k, v]) => [k, v.type]),
    [['a', 'int8'], ['b', 'int16'], ['c', 'int32'], ['d', 'int64'], ['e', 'double'], ['f', 'string'], ['g', 'bool'], ['h', 'void'], ['i', 'array'], ['j', 'table']],
  );
  assert.deepEqual(fieldTableGet(t, 'f'), fieldString('x'));
  assert.equal(fieldTableGet(t, 'zz'), undefined);
  assert.deepEqual(fieldTableToPlain(t), { a: 1, b: 300, c: 70000, d: 2n ** 40n, e: 1.5, f: 'x', g: true, h: null, i: [1], j: { k: 2n } });
  assert.deepEqual(fieldValueFromPlain(new Uint8Array([1])), { type: 'bytes', value: new Uint8Array([1]) });
  rejects(() => fieldValueFromPlain(undefined), 502, /no field type for a undefined/);
  // same inference as amqplib: same bytes
  const scratch = Buffer.alloc(256);
  const plain = { a: 1, b: -300, c: 70000, d: 2 ** 40, e: 1.5, f: 'x', g: true, h: null, i: [1, 'y'], j: { k: -1 } };
  const n = amqplibCodec.encodeTable(scratch, plain, 0);
  assert.equal(hex(encodeFieldTable(fieldTableFromPlain(plain))), hex(scratch.subarray(0, n)));
});
