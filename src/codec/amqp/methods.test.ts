// Tests of the method codec. The method list and argument layouts are checked
// against amqplib's (generated from RabbitMQ's spec JSON, an independent
// source): the same set of methods and ids, and for arbitrary arguments of
// every method, our frame bytes equal amqplib's, we decode amqplib's frames to
// the same values and amqplib decodes ours. Then hand-written byte vectors
// from the spec grammar, round trips both ways, every refusal (truncation at
// every byte, trailing bytes, unknown ids, unused bits, a deliveryTag above
// 2^53 - 1, invalid UTF-8, values the wire cannot carry) and fuzzing.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  AMQP_METHOD_NAMES,
  AmqpCodecError,
  decodeMethod,
  encodeMethodFrame,
  fieldString,
  FrameReader,
  METHOD_HAS_CONTENT,
  methodIds,
  methodName,
  type AmqpMethod,
  type FieldTable,
} from './index.js';
import {
  AMQPLIB_METHODS,
  amqplibDecodedTable,
  amqplibDefs,
  compatTableArb,
  fieldTableArb,
  norm,
  shortstrArb,
  toAmqplibTable,
  type AmqplibMethodInfo,
} from './test-support.js';

const hex = (u: Uint8Array): string => Buffer.from(u).toString('hex');
const ascii = (s: string): Buffer => Buffer.from(s, 'latin1');
const h = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function rejects(fn: () => unknown, code: number, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof AmqpCodecError, `expected AmqpCodecError, got ${String(e)}`);
    assert.equal(e.replyCode, code);
    assert.match(e.message, re);
    return true;
  });
}

/** The method payload inside a frame produced by encodeMethodFrame (checking the frame's envelope on the way). */
function payloadOf(frame: Buffer, channel: number): Buffer {
  assert.equal(frame[0], 1);
  assert.equal(frame.readUInt16BE(1), channel);
  assert.equal(frame.readUInt32BE(3), frame.length - 8);
  assert.equal(frame[frame.length - 1], 0xce);
  return frame.subarray(7, frame.length - 1);
}

// amqplib knows the deprecated access class (30), which RabbitMQ 0-9-1 clients never use; we do not.
const REFERENCE = AMQPLIB_METHODS.filter((m) => m.classId !== 30);

test('the method set and ids are exactly amqplib\'s (less the access class)', () => {
  assert.equal(AMQP_METHOD_NAMES.length, 64);
  assert.equal(REFERENCE.length, AMQP_METHOD_NAMES.length);
  for (const info of REFERENCE) {
    const name = methodName(info.classId, info.methodId);
    assert.ok(name !== undefined, `no method for ${info.name} (${info.classId}, ${info.methodId})`);
    assert.equal(name.replace(/[.-]/g, '').toLowerCase(), info.name.toLowerCase());
    assert.deepEqual(methodIds(name), { classId: info.classId, methodId: info.methodId });
  }
  assert.equal(methodName(30, 10), undefined);
  assert.deepEqual(
    AMQP_METHOD_NAMES.filter(METHOD_HAS_CONTENT),
    ['basic.publish', 'basic.return', 'basic.deliver', 'basic.get-ok'],
  );
});

/** Arbitrary arguments for a method, by amqplib's argument list: [ours, amqplib's]. */
function methodArb(info: AmqplibMethodInfo, tableArb: fc.Arbitrary<FieldTable>): fc.Arbitrary<[AmqpMethod, Record<string, unknown>]> {
  const name = methodName(info.classId, info.methodId)!;
  const parts: Record<string, fc.Arbitrary<unknown>> = {};
  for (const a of info.args) {
    switch (a.type) {
      case 'octet': parts[a.name] = fc.integer({ min: 0, max: 0xff }); break;
      case 'short': parts[a.name] = fc.integer({ min: 0, max: 0xffff }); break;
      case 'long': parts[a.name] = fc.integer({ min: 0, max: 0xffffffff }); break;
      case 'longlong': parts[a.name] = fc.maxSafeNat(); break;
      case 'bit': parts[a.name] = fc.boolean(); break;
      case 'shortstr': parts[a.name] = shortstrArb; break;
      case 'longstr': parts[a.name] = fc.uint8Array({ maxLength: 40 }); break;
      case 'table': parts[a.name] = tableArb; break;
      default: throw new Error(`argument type ${a.type} not covered`);
    }
  }
  return fc.record(parts).map((args) => {
    const theirs: Record<string, unknown> = {};
    for (const a of info.args) {
      const v = args[a.name];
      theirs[a.name] = a.type === 'longstr' ? Buffer.from(v as Uint8Array) : a.type === 'table' ? toAmqplibTable(v as FieldTable) : v;
    }
    return [{ name, ...args } as unknown as AmqpMethod, theirs];
  });
}

/** What amqplib's decoder yields for our method's arguments. */
function amqplibView(info: AmqplibMethodInfo, m: AmqpMethod): unknown {
  const args = m as unknown as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const a of info.args) out[a.name] = a.type === 'table' ? amqplibDecodedTable(args[a.name] as FieldTable) : args[a.name];
  return norm(out);
}

test('for every method, our frame bytes are amqplib\'s, and each side decodes the other\'s', () => {
  for (const info of REFERENCE) {
    fc.assert(
      fc.property(methodArb(info, compatTableArb), fc.integer({ min: 0, max: 0xffff }), ([ours, theirs], channel) => {
        const mine = encodeMethodFrame(channel, ours);
        const ref = amqplibDefs.encodeMethod(info.id, channel, theirs);
        assert.equal(hex(mine), hex(ref), info.name);
        assert.deepEqual(norm(decodeMethod(payloadOf(ref, channel))), norm(ours));
        assert.deepEqual(norm(amqplibDefs.decode(info.id, payloadOf(mine, channel).subarray(4))), amqplibView(info, ours));
      }),
      { numRuns: 15 },
    );
  }
});

test('round trip of every method with any table: decode(encode(m)) == m, encode(decode(bytes)) == bytes', () => {
  for (const info of REFERENCE) {
    fc.assert(
      fc.property(methodArb(info, fieldTableArb), ([m]) => {
        const frame = encodeMethodFrame(7, m);
        const back = decodeMethod(payloadOf(frame, 7));
        assert.deepEqual(norm(back), norm(m));
        assert.equal(hex(encodeMethodFrame(7, back)), hex(frame));
      }),
      { numRuns: 10 },
    );
  }
});

test('hand-written vectors: a RabbitMQ connection.start, basic.publish, basic.deliver, basic.nack', () => {
  const capabilities = Buffer.concat([h('12'), ascii('publisher_confirms'), ascii('t'), h('01')]);
  const serverProperties = Buffer.concat([
    h('07'), ascii('product'), ascii('S'), h('00000008'), ascii('RabbitMQ'),
    h('0c'), ascii('capabilities'), ascii('F'), h('00000015'), capabilities,
  ]);
  const start = Buffer.concat([
    h('000a 000a 00 09 0000003c'), serverProperties,
    h('0000000e'), ascii('PLAIN AMQPLAIN'),
    h('00000005'), ascii('en_US'),
  ]);
  const m = decodeMethod(start);
  assert.deepEqual(norm(m), norm({
    name: 'connection.start',
    versionMajor: 0,
    versionMinor: 9,
    serverProperties: [
      ['product', fieldString('RabbitMQ')],
      ['capabilities', { type: 'table', value: [['publisher_confirms', { type: 'bool', value: true }]] }],
    ],
    mechanisms: ascii('PLAIN AMQPLAIN'),
    locales: ascii('en_US'),
  }));
  assert.equal(hex(payloadOf(encodeMethodFrame(0, m), 0)), hex(start));

  const publish = h('003c 0028 0000 00 02 726b 01');
  assert.deepEqual(decodeMethod(publish), { name: 'basic.publish', ticket: 0, exchange: '', routingKey: 'rk', mandatory: true, immediate: false });
  const deliver = Buffer.concat([h('003c 003c 03'), ascii('ctg'), h('001fffffffffffff 01 00 02'), ascii('rk')]);
  assert.deepEqual(decodeMethod(deliver), { name: 'basic.deliver', consumerTag: 'ctg', deliveryTag: 2 ** 53 - 1, redelivered: true, exchange: '', routingKey: 'rk' });
  assert.deepEqual(decodeMethod(h('003c 0078 0000000000000005 02')), { name: 'basic.nack', deliveryTag: 5, multiple: false, requeue: true });
  // five bits share one octet, least significant first: passive=1, durable=0, exclusive=1, autoDelete=1, nowait=0
  const declare = decodeMethod(h('0032 000a 0000 01 71 0d 00000000'));
  assert.deepEqual(declare, { name: 'queue.declare', ticket: 0, queue: 'q', passive: true, durable: false, exclusive: true, autoDelete: true, nowait: false, arguments: [] });
});

test('a method survives the FrameReader: encodeMethodFrame → FrameReader → decodeMethod', () => {
  const m: AmqpMethod = { name: 'basic.consume', ticket: 0, queue: 'q', consumerTag: 'c', noLocal: false, noAck: true, exclusive: false, nowait: false, arguments: [['x-priority', { type: 'int32', value: 10 }]] };
  const r = new FrameReader(4096);
  r.push(encodeMethodFrame(9, m));
  const f = r.next()!;
  assert.equal(f.channel, 9);
  assert.deepEqual(decodeMethod(f.payload), m);
});

test('every proper prefix of a method is a 502, and a trailing byte is a 502', () => {
  fc.assert(
    fc.property(fc.constantFrom(...REFERENCE).chain((i) => methodArb(i, fieldTableArb)), ([m]) => {
      const payload = payloadOf(encodeMethodFrame(1, m), 1);
      for (let n = 0; n < payload.length; n++) {
        rejects(() => decodeMethod(payload.subarray(0, n)), 502, /truncated|shorter than its 4 id bytes|exceeds the/);
      }
      rejects(() => decodeMethod(Buffer.concat([payload, h('00')])), 502, /1 trailing bytes/);
    }),
    { numRuns: 40 },
  );
});

test('unknown class or method ids are 540', () => {
  rejects(() => decodeMethod(h('001e 000a 00')), 540, /class 30, method 10/); // access.request
  rejects(() => decodeMethod(h('003c 03e7')), 540, /class 60, method 999/);
  rejects(() => decodeMethod(h('0000 0000')), 540, /class 0, method 0/);
  rejects(() => decodeMethod(h('0028 0029')), 540, /class 40, method 41/); // exchange.unbind-ok is 51 in RabbitMQ
});

test('strictness: longlong above 2^53 - 1, unused bits, invalid UTF-8', () => {
  rejects(() => decodeMethod(h('003c 0050 0020000000000000 00')), 502, /basic\.ack\.deliveryTag: u64 at byte 4 exceeds 2\^53 - 1/);
  rejects(() => decodeMethod(h('003c 0050 0000000000000001 02')), 502, /bits beyond the method's 1 bit fields/);
  rejects(() => decodeMethod(h('003c 0078 0000000000000001 04')), 502, /bits beyond the method's 2 bit fields/);
  rejects(() => decodeMethod(h('003c 0028 0000 00 02 c328 00')), 502, /basic\.publish\.routingKey: invalid UTF-8/);
  rejects(() => decodeMethod(h('0032 000a 0000 01 71 00 00000001 00')), 502, /field name: truncated|field type: truncated/);
});

test('encode refuses what the wire cannot carry', () => {
  const publish = { name: 'basic.publish', ticket: 0, exchange: '', routingKey: 'rk', mandatory: false, immediate: false } as const;
  rejects(() => encodeMethodFrame(1, { ...publish, routingKey: 'r'.repeat(256) }), 502, /cannot encode: basic\.publish\.routingKey: 256 UTF-8 bytes/);
  rejects(() => encodeMethodFrame(1, { ...publish, ticket: 65536 }), 502, /basic\.publish\.ticket: 65536/);
  rejects(() => encodeMethodFrame(65536, publish), 502, /channel 65536/);
  rejects(() => encodeMethodFrame(1, { name: 'basic.ack', deliveryTag: 2 ** 53, multiple: false }), 502, /deliveryTag/);
  rejects(() => encodeMethodFrame(1, { name: 'basic.ack', multiple: false } as unknown as AmqpMethod), 502, /deliveryTag: undefined/);
  rejects(() => encodeMethodFrame(1, { name: 'basic.nope' } as unknown as AmqpMethod), 540, /unknown method basic\.nope/);
  rejects(() => encodeMethodFrame(1, { name: 'basic.qos', prefetchSize: 0, prefetchCount: 1, global: 1 } as unknown as AmqpMethod), 502, /basic\.qos\.global: expected a boolean/);
});

test('fuzz: random argument bytes after every method id, and mutated valid methods, decode canonically or throw AmqpCodecError', () => {
  const probe = (b: Buffer): void => {
    let m: AmqpMethod;
    try {
      m = decodeMethod(b);
    } catch (e) {
      assert.ok(e instanceof AmqpCodecError, `not an AmqpCodecError: ${String(e)}`);
      assert.ok(e.replyCode === 502 || e.replyCode === 540);
      return;
    }
    const again = decodeMethod(payloadOf(encodeMethodFrame(0, m), 0));
    assert.deepEqual(norm(again), norm(m));
  };
  fc.assert(
    fc.property(fc.constantFrom(...REFERENCE), fc.uint8Array({ maxLength: 48 }), (info, args) => {
      probe(Buffer.concat([h(info.classId.toString(16).padStart(4, '0') + info.methodId.toString(16).padStart(4, '0')), args]));
    }),
    { numRuns: 600 },
  );
  fc.assert(fc.property(fc.uint8Array({ maxLength: 40 }), (b) => probe(Buffer.from(b))), { numRuns: 200 });
  fc.assert(
    fc.property(
      fc.constantFrom(...REFERENCE).chain((i) => methodArb(i, fieldTableArb)),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 }),
      ([m], edits) => {
        const b = Buffer.from(payloadOf(encodeMethodFrame(0, m), 0));
        for (const [at, v] of edits) b[at % b.length] = v;
        probe(b);
      },
    ),
    { numRuns: 400 },
  );
});

test('the short-string cache never returns a string for other bytes, even when the input buffer is reused', () => {
  const b = h('003c 0028 0000 00 03 616263 00');
  assert.equal((decodeMethod(b) as { routingKey: string }).routingKey, 'abc');
  b[10] = 0x64; // the caller reuses its buffer: 'abd'
  assert.equal((decodeMethod(b) as { routingKey: string }).routingKey, 'abd');
  b[10] = 0x63;
  assert.equal((decodeMethod(b) as { routingKey: string }).routingKey, 'abc');
  b[10] = 0xff; // invalid UTF-8 is refused even though 'abc' is cached
  rejects(() => decodeMethod(b), 502, /invalid UTF-8/);
  fc.assert(
    fc.property(fc.array(fc.string({ unit: 'grapheme', maxLength: 6 }), { minLength: 1, maxLength: 50 }), (keys) => {
      for (const k of keys) {
        const m: AmqpMethod = { name: 'basic.publish', ticket: 0, exchange: '', routingKey: k, mandatory: false, immediate: false };
        assert.equal((decodeMethod(payloadOf(encodeMethodFrame(1, m), 1)) as { routingKey: string }).routingKey, k);
      }
    }),
    { numRuns: 50 },
  );
});
