// Tests of content headers, basic properties and body frames: round trips of
// arbitrary properties both ways, byte equality with amqplib's header frames
// and cross-decoding, hand-written flag layouts, every refusal of
// decodeContentHeader (class, weight, body size, continuation bit,
// truncation, trailing bytes, bad headers), withHeaders rewriting only the
// headers, body splitting at frame-max - 8, and fuzzing: whatever
// decodeContentHeader accepts, decodeBasicProperties decodes and re-encodes
// to the same bytes; everything else is an AmqpCodecError.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  AmqpCodecError,
  decodeBasicProperties,
  decodeContentHeader,
  encodeBasicProperties,
  encodeBodyFrames,
  encodeContentHeaderFrame,
  fieldString,
  FRAME_MIN_SIZE,
  FrameReader,
  withHeaders,
  type BasicProperties,
  type FieldTable,
} from './index.js';
import { amqplibDecodedTable, amqplibDefs, compatTableArb, fieldTableArb, norm, shortstrArb, toAmqplibTable } from './test-support.js';

const hex = (u: Uint8Array): string => Buffer.from(u).toString('hex');
const h = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function rejects(fn: () => unknown, code: number, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof AmqpCodecError, `expected AmqpCodecError, got ${String(e)}`);
    assert.equal(e.replyCode, code);
    assert.match(e.message, re);
    return true;
  });
}

function propsArb(headers: fc.Arbitrary<FieldTable>, timestamp: fc.Arbitrary<bigint>): fc.Arbitrary<BasicProperties> {
  return fc.record(
    {
      contentType: shortstrArb,
      contentEncoding: shortstrArb,
      headers,
      deliveryMode: fc.integer({ min: 0, max: 255 }),
      priority: fc.integer({ min: 0, max: 255 }),
      correlationId: shortstrArb,
      replyTo: shortstrArb,
      expiration: shortstrArb,
      messageId: shortstrArb,
      timestamp,
      type: shortstrArb,
      userId: shortstrArb,
      appId: shortstrArb,
      clusterId: shortstrArb,
    },
    { requiredKeys: [] },
  );
}
const anyProps = propsArb(fieldTableArb, fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }));
// amqplib takes property timestamps as JS numbers: keep them safe integers.
const compatProps = propsArb(compatTableArb, fc.bigInt({ min: 0n, max: BigInt(Number.MAX_SAFE_INTEGER) }));

function toAmqplibProps(p: BasicProperties): Record<string, unknown> {
  const out: Record<string, unknown> = { ...p };
  if (p.headers !== undefined) out['headers'] = toAmqplibTable(p.headers);
  if (p.timestamp !== undefined) out['timestamp'] = Number(p.timestamp);
  return out;
}

function amqplibPropsView(p: BasicProperties): unknown {
  const out: Record<string, unknown> = { ...p };
  if (p.headers !== undefined) out['headers'] = amqplibDecodedTable(p.headers);
  if (p.timestamp !== undefined) out['timestamp'] = Number(p.timestamp);
  return norm(out);
}

/** The payload of a content header frame made by encodeContentHeaderFrame. */
function headerPayload(frame: Buffer): Buffer {
  assert.equal(frame[0], 2);
  assert.equal(frame.readUInt32BE(3), frame.length - 8);
  assert.equal(frame[frame.length - 1], 0xce);
  return frame.subarray(7, frame.length - 1);
}

test('hand-written property lists: flag bits from content-type (bit 15) down to cluster-id (bit 2)', () => {
  const p: BasicProperties = { contentType: 'a', deliveryMode: 2, timestamp: 1n, clusterId: 'c' };
  const { flags, bytes } = encodeBasicProperties(p);
  assert.equal(flags, 0x8000 | 0x1000 | 0x0040 | 0x0004);
  assert.equal(hex(bytes), '0161' + '02' + '0000000000000001' + '0163');
  assert.deepEqual(encodeBasicProperties({}), { flags: 0, bytes: Buffer.alloc(0) });
  const frame = encodeContentHeaderFrame(5, 60, 2 ** 53 - 1, flags, bytes);
  assert.equal(hex(frame), '02' + '0005' + '0000001b' + '003c' + '0000' + '001fffffffffffff' + '9044' + hex(bytes) + 'ce');
  const ch = decodeContentHeader(headerPayload(frame));
  assert.deepEqual({ ...ch, properties: hex(ch.properties) }, { classId: 60, bodySize: 2 ** 53 - 1, propertyFlags: 0x9044, properties: hex(bytes) });
});

test('round trip of arbitrary properties, through a header frame, both ways', () => {
  fc.assert(
    fc.property(anyProps, fc.maxSafeNat(), (p, size) => {
      const { flags, bytes } = encodeBasicProperties(p);
      const ch = decodeContentHeader(headerPayload(encodeContentHeaderFrame(1, 60, size, flags, bytes)));
      assert.equal(ch.bodySize, size);
      assert.equal(ch.propertyFlags, flags);
      assert.equal(hex(ch.properties), hex(bytes));
      const back = decodeBasicProperties(ch.propertyFlags, ch.properties);
      assert.deepEqual(norm(back), norm(p));
      assert.equal(hex(encodeBasicProperties(back).bytes), hex(bytes));
    }),
    { numRuns: 300 },
  );
});

test("header frames are byte-equal to amqplib's, and each side decodes the other's", () => {
  fc.assert(
    fc.property(compatProps, fc.maxSafeNat(), fc.integer({ min: 0, max: 0xffff }), (p, size, channel) => {
      const { flags, bytes } = encodeBasicProperties(p);
      const mine = encodeContentHeaderFrame(channel, 60, size, flags, bytes);
      const ref = amqplibDefs.encodeProperties(60, channel, size, toAmqplibProps(p));
      assert.equal(hex(mine), hex(ref));
      const ch = decodeContentHeader(headerPayload(ref));
      assert.deepEqual(norm(decodeBasicProperties(ch.propertyFlags, ch.properties)), norm(p));
      assert.deepEqual(norm(amqplibDefs.decode(60, headerPayload(mine).subarray(12))), amqplibPropsView(p));
    }),
    { numRuns: 200 },
  );
});

test('decodeContentHeader refusals', () => {
  const ok = headerPayload(encodeContentHeaderFrame(1, 60, 3, 0x8000, h('0161')));
  assert.equal(decodeContentHeader(ok).bodySize, 3);
  rejects(() => decodeContentHeader(h('0032 0000 0000000000000000 0000')), 505, /class 50: only basic/);
  rejects(() => decodeContentHeader(h('003c 0001 0000000000000000 0000')), 502, /weight is 1/);
  rejects(() => decodeContentHeader(h('003c 0000 0020000000000000 0000')), 502, /body-size: u64 at byte 4 exceeds 2\^53 - 1/);
  rejects(() => decodeContentHeader(h('003c 0000 0000000000000000 0001 0000')), 502, /continuation bit set/);
  rejects(() => decodeContentHeader(h('003c 0000 0000000000000000 0002')), 502, /bit 1 names no property/);
  rejects(() => decodeContentHeader(Buffer.concat([ok, h('00')])), 502, /1 trailing bytes/);
  rejects(() => decodeContentHeader(h('003c 0000 0000000000000000 2000 00000003 0161 7a')), 502, /unknown field type 0x7a/);
  rejects(() => decodeContentHeader(h('003c 0000 0000000000000000 8000 01 ff')), 502, /content-type: invalid UTF-8/);
  for (let n = 0; n < ok.length; n++) rejects(() => decodeContentHeader(ok.subarray(0, n)), 502, /truncated/);
  rejects(() => decodeBasicProperties(0x0001, new Uint8Array(0)), 502, /continuation/);
  rejects(() => decodeBasicProperties(0x8000, h('0261')), 502, /content-type: truncated/);
  rejects(() => decodeBasicProperties(0x0000, h('00')), 502, /trailing/);
});

test('encode refusals for properties and header frames', () => {
  rejects(() => encodeBasicProperties({ priority: 256 }), 502, /cannot encode: priority: 256/);
  rejects(() => encodeBasicProperties({ messageId: 'm'.repeat(256) }), 502, /messageId: 256 UTF-8 bytes/);
  rejects(() => encodeBasicProperties({ timestamp: 2n ** 64n }), 502, /timestamp/);
  rejects(() => encodeContentHeaderFrame(1, 60, 2 ** 53, 0, new Uint8Array(0)), 502, /body-size/);
  rejects(() => encodeContentHeaderFrame(70000, 60, 0, 0, new Uint8Array(0)), 502, /channel 70000/);
});

test('withHeaders replaces only the headers: the result equals encoding the properties with the new headers', () => {
  fc.assert(
    fc.property(anyProps, fieldTableArb, (p, next) => {
      const { flags, bytes } = encodeBasicProperties(p);
      let seen: FieldTable | undefined;
      const out = withHeaders(flags, bytes, (old) => {
        seen = old;
        return next;
      });
      assert.deepEqual(norm(seen), norm(p.headers ?? []));
      const expected: BasicProperties = p.headers === undefined && next.length === 0 ? p : { ...p, headers: next };
      const enc = encodeBasicProperties(expected);
      assert.equal(out.flags, enc.flags);
      assert.equal(hex(out.bytes), hex(enc.bytes));
    }),
    { numRuns: 300 },
  );
});

test('withHeaders adds x-delivery-count to a message from amqplib, leaving the other properties as they were', () => {
  const p = { contentType: 'text/plain', headers: { a: 'b' }, deliveryMode: 2, messageId: 'm1', appId: 'app' };
  const payload = headerPayload(amqplibDefs.encodeProperties(60, 1, 10, p));
  const ch = decodeContentHeader(payload);
  const out = withHeaders(ch.propertyFlags, ch.properties, (old) => [...old, ['x-delivery-count', { type: 'int64', value: 1n }]]);
  const back = decodeBasicProperties(out.flags, out.bytes);
  assert.deepEqual(norm(back), norm({ contentType: 'text/plain', headers: [['a', fieldString('b')], ['x-delivery-count', { type: 'int64', value: 1n }]], deliveryMode: 2, messageId: 'm1', appId: 'app' }));
  // without headers before, and nothing to add: the very same bytes
  const plain = encodeBasicProperties({ messageId: 'x' });
  assert.equal(withHeaders(plain.flags, plain.bytes, (old) => old).bytes, plain.bytes);
});

test('body frames: split at frame-max - 8, none for an empty body, reassembled by FrameReader', () => {
  assert.deepEqual(encodeBodyFrames(1, new Uint8Array(0), FRAME_MIN_SIZE), []);
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 20000 }), fc.integer({ min: FRAME_MIN_SIZE, max: 9000 }), (size, frameMax) => {
      const body = Buffer.alloc(size);
      for (let i = 0; i < size; i++) body[i] = i * 7;
      const frames = encodeBodyFrames(3, body, frameMax);
      assert.equal(frames.length, Math.ceil(size / (frameMax - 8)));
      const r = new FrameReader(frameMax);
      const parts: Buffer[] = [];
      for (const f of frames) {
        assert.ok(f.length <= frameMax);
        r.push(f);
        const got = r.next()!;
        assert.equal(got.type, 3);
        assert.equal(got.channel, 3);
        parts.push(got.payload);
      }
      assert.ok(Buffer.concat(parts).equals(body));
    }),
    { numRuns: 40 },
  );
  rejects(() => encodeBodyFrames(1, new Uint8Array(1), 100), 502, /frame-max/);
});

test('fuzz: header payloads decode consistently or throw AmqpCodecError', () => {
  const probe = (b: Buffer): void => {
    let flags: number;
    let raw: Buffer;
    try {
      const ch = decodeContentHeader(b);
      flags = ch.propertyFlags;
      raw = ch.properties;
    } catch (e) {
      assert.ok(e instanceof AmqpCodecError, `not an AmqpCodecError: ${String(e)}`);
      return;
    }
    const props = decodeBasicProperties(flags, raw); // accepted by the validating scan ⇒ decodes
    assert.deepEqual(norm(decodeBasicProperties(flags, encodeBasicProperties(props).bytes)), norm(props));
  };
  fc.assert(fc.property(fc.uint8Array({ maxLength: 60 }), (b) => probe(Buffer.concat([h('003c0000'), b]))), { numRuns: 300 });
  fc.assert(
    fc.property(anyProps, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 }), fc.nat(), (p, edits, cut) => {
      const { flags, bytes } = encodeBasicProperties(p);
      const b = Buffer.from(headerPayload(encodeContentHeaderFrame(1, 60, 0, flags, bytes)));
      for (const [at, v] of edits) b[at % b.length] = v;
      probe(b);
      probe(b.subarray(0, cut % (b.length + 1)));
    }),
    { numRuns: 300 },
  );
});
