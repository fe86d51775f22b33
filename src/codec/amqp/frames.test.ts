// Tests of framing: the protocol header check, encodeFrame's layout, and the
// incremental FrameReader: every split point of a multi-frame stream, one
// byte at a time, payloads as views of the input, frame-max enforced from the
// header alone (before the payload is buffered), bad frame-end, unknown frame
// type, a heartbeat with a payload, sticky failure, and fuzzing (random
// streams only ever yield frames or throw AmqpCodecError).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  AmqpCodecError,
  checkProtocolHeader,
  encodeFrame,
  FRAME_BODY,
  FRAME_HEADER,
  FRAME_HEARTBEAT,
  FRAME_METHOD,
  FRAME_MIN_SIZE,
  FrameReader,
  HEARTBEAT_FRAME,
  PROTOCOL_HEADER,
  type Frame,
} from './index.js';

function rejects(fn: () => unknown, code: number, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof AmqpCodecError, `expected AmqpCodecError, got ${String(e)}`);
    assert.equal(e.replyCode, code);
    assert.match(e.message, re);
    return true;
  });
}

const plain = (f: Frame): { type: number; channel: number; payload: string } => ({ type: f.type, channel: f.channel, payload: f.payload.toString('hex') });

function drain(r: FrameReader): Frame[] {
  const out: Frame[] = [];
  for (let f = r.next(); f !== null; f = r.next()) out.push(f);
  return out;
}

const FRAMES: readonly Frame[] = [
  { type: FRAME_METHOD, channel: 1, payload: Buffer.from('003c002800000000', 'hex') },
  { type: FRAME_HEADER, channel: 1, payload: Buffer.alloc(14, 0) },
  { type: FRAME_BODY, channel: 65535, payload: Buffer.from('hello') },
  { type: FRAME_BODY, channel: 2, payload: Buffer.alloc(0) },
  { type: FRAME_HEARTBEAT, channel: 0, payload: Buffer.alloc(0) },
  { type: FRAME_BODY, channel: 3, payload: Buffer.alloc(FRAME_MIN_SIZE, 7) },
];
const STREAM = Buffer.concat(FRAMES.map((f) => encodeFrame(f.type, f.channel, f.payload)));

test('protocol header: ok, incomplete prefix, wrong', () => {
  assert.equal(PROTOCOL_HEADER.toString('latin1'), 'AMQP\0\0\x09\x01');
  assert.equal(checkProtocolHeader(Buffer.from('AMQP\0\0\x09\x01extra', 'latin1')), 'ok');
  assert.equal(checkProtocolHeader(Buffer.from('AMQ', 'latin1')), 'incomplete');
  assert.equal(checkProtocolHeader(Buffer.alloc(0)), 'incomplete');
  assert.equal(checkProtocolHeader(Buffer.from('AMQP\0\0\x09\x00', 'latin1')), 'wrong'); // 0-9-0
  assert.equal(checkProtocolHeader(Buffer.from('AMQP\x01\x01\x00\x0a', 'latin1')), 'wrong'); // 1.0
  assert.equal(checkProtocolHeader(Buffer.from('GET / HTTP/1.1', 'latin1')), 'wrong');
  assert.equal(checkProtocolHeader(Buffer.from('X', 'latin1')), 'wrong');
});

test('encodeFrame layout and the heartbeat frame', () => {
  assert.equal(encodeFrame(3, 0x0102, Buffer.from('ab')).toString('hex'), '03010200000002' + '6162' + 'ce');
  assert.equal(HEARTBEAT_FRAME.toString('hex'), '08' + '0000' + '00000000' + 'ce');
  rejects(() => encodeFrame(1, 65536, Buffer.alloc(0)), 502, /channel 65536/);
  rejects(() => encodeFrame(256, 0, Buffer.alloc(0)), 502, /frame type 256/);
});

test('a whole stream in one chunk gives every frame, payloads as views of the chunk', () => {
  const r = new FrameReader(FRAME_MIN_SIZE);
  r.push(STREAM);
  const got = drain(r);
  assert.deepEqual(got.map(plain), FRAMES.map(plain));
  assert.equal(r.buffered, 0);
  assert.equal(got[0]!.payload.buffer, STREAM.buffer, 'payload should alias the pushed chunk');
});

test('the stream split at every byte boundary, and fed one byte at a time, gives the same frames', () => {
  const expected = FRAMES.map(plain);
  const small = STREAM.subarray(0, STREAM.length - (FRAME_MIN_SIZE + 8)); // all but the big frame, to keep this quick
  const smallExpected = expected.slice(0, -1);
  for (let cut = 0; cut <= small.length; cut++) {
    const r = new FrameReader(FRAME_MIN_SIZE);
    const got: Frame[] = [];
    r.push(Buffer.from(small.subarray(0, cut)));
    got.push(...drain(r));
    r.push(Buffer.from(small.subarray(cut)));
    got.push(...drain(r));
    assert.deepEqual(got.map(plain), smallExpected, `split at ${cut}`);
    assert.equal(r.buffered, 0);
  }
  const r = new FrameReader(FRAME_MIN_SIZE);
  const got: Frame[] = [];
  for (let i = 0; i < STREAM.length; i++) {
    r.push(STREAM.subarray(i, i + 1));
    got.push(...drain(r));
  }
  assert.deepEqual(got.map(plain), expected);
  assert.equal(r.buffered, 0);
});

test('random chunkings of random frames give the frames back', () => {
  const frameArb = fc.record({
    type: fc.constantFrom(FRAME_METHOD, FRAME_HEADER, FRAME_BODY),
    channel: fc.integer({ min: 0, max: 0xffff }),
    payload: fc.uint8Array({ maxLength: 300 }).map((u) => Buffer.from(u)),
  });
  fc.assert(
    fc.property(fc.array(frameArb, { maxLength: 8 }), fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1 }), (frames, sizes) => {
      const stream = Buffer.concat(frames.map((f) => encodeFrame(f.type, f.channel, f.payload)));
      const r = new FrameReader(FRAME_MIN_SIZE);
      const got: Frame[] = [];
      let off = 0;
      for (let i = 0; off < stream.length; i++) {
        const n = sizes[i % sizes.length]!;
        r.push(stream.subarray(off, off + n));
        off += n;
        got.push(...drain(r));
      }
      assert.deepEqual(got.map(plain), frames.map(plain));
      assert.equal(r.buffered, 0);
    }),
    { numRuns: 200 },
  );
});

test('a frame over frame-max is refused from its 7 header bytes, before its payload arrives', () => {
  const r = new FrameReader(FRAME_MIN_SIZE);
  const header = Buffer.from('03000100001001', 'hex'); // body, channel 1, payload 4097 bytes
  r.push(header.subarray(0, 6));
  assert.equal(r.next(), null);
  r.push(header.subarray(6));
  rejects(() => r.next(), 501, /payload of 4097 bytes exceeds frame-max 4096/);
  // a 4 GiB announcement, likewise
  const r2 = new FrameReader(FRAME_MIN_SIZE);
  r2.push(Buffer.from('010000ffffffff', 'hex'));
  rejects(() => r2.next(), 501, /4294967295 bytes exceeds frame-max/);
  // exactly frame-max bytes of payload pass (RabbitMQ's fudge for clients that count frame-max as payload)
  const r3 = new FrameReader(FRAME_MIN_SIZE);
  r3.push(encodeFrame(FRAME_BODY, 1, Buffer.alloc(FRAME_MIN_SIZE)));
  assert.equal(r3.next()?.payload.length, FRAME_MIN_SIZE);
});

test('setFrameMax raises the limit for later frames; a frame-max below 4096 is refused', () => {
  const r = new FrameReader(FRAME_MIN_SIZE);
  const big = encodeFrame(FRAME_BODY, 1, Buffer.alloc(10000, 1));
  r.setFrameMax(131072);
  r.push(big);
  assert.equal(r.next()?.payload.length, 10000);
  rejects(() => new FrameReader(0), 503, /frame-max 0/);
  rejects(() => r.setFrameMax(4095), 503, /frame-max 4095/);
});

test('bad frame-end, unknown frame type, heartbeat with payload: 501, and the reader stays failed', () => {
  const bad = Buffer.from(encodeFrame(FRAME_METHOD, 1, Buffer.from('00140028', 'hex')));
  bad[bad.length - 1] = 0xcd;
  const r = new FrameReader(FRAME_MIN_SIZE);
  r.push(bad);
  rejects(() => r.next(), 501, /frame-end octet is 0xcd/);
  rejects(() => r.next(), 501, /frame-end octet is 0xcd/);
  rejects(() => r.push(HEARTBEAT_FRAME), 501, /frame-end/);
  // split so that the frame-end comes from the copying path too
  const r1 = new FrameReader(FRAME_MIN_SIZE);
  r1.push(bad.subarray(0, 5));
  r1.push(bad.subarray(5));
  rejects(() => r1.next(), 501, /frame-end octet is 0xcd/);
  for (const type of [0, 4, 9, 65, 255]) {
    const r2 = new FrameReader(FRAME_MIN_SIZE);
    r2.push(Buffer.from([type, 0, 0, 0, 0, 0, 0]));
    rejects(() => r2.next(), 501, new RegExp(`unknown frame type ${type}`));
  }
  const r3 = new FrameReader(FRAME_MIN_SIZE);
  r3.push(encodeFrame(FRAME_HEARTBEAT, 0, Buffer.from([1])));
  rejects(() => r3.next(), 501, /heartbeat frame with a 1-byte payload/);
});

test('many tiny chunks into one large frame: linear, not quadratic', () => {
  const payload = Buffer.alloc(1 << 20, 5);
  const frame = encodeFrame(FRAME_BODY, 1, payload);
  const r = new FrameReader(2 << 20);
  const t0 = process.hrtime.bigint();
  let got: Frame | null = null;
  for (let off = 0; off < frame.length; off += 16) {
    r.push(frame.subarray(off, off + 16));
    got = r.next() ?? got;
  }
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  assert.ok(got !== null && got.payload.equals(payload));
  assert.equal(r.buffered, 0);
  assert.ok(ms < 2000, `65536 chunks took ${ms} ms`);
});

test('fuzz: random streams, and mutated valid streams, yield frames or throw AmqpCodecError, and terminate', () => {
  const run = (b: Buffer, step: number): void => {
    const r = new FrameReader(FRAME_MIN_SIZE);
    try {
      for (let off = 0; off < b.length; off += step) {
        r.push(b.subarray(off, off + step));
        for (let f = r.next(); f !== null; f = r.next()) {
          assert.ok([1, 2, 3, 8].includes(f.type));
          assert.ok(f.payload.length <= FRAME_MIN_SIZE);
        }
      }
    } catch (e) {
      assert.ok(e instanceof AmqpCodecError, `not an AmqpCodecError: ${String(e)}`);
      assert.equal(e.replyCode, 501);
    }
  };
  fc.assert(fc.property(fc.uint8Array({ maxLength: 100 }), fc.integer({ min: 1, max: 16 }), (b, step) => run(Buffer.from(b), step)), { numRuns: 300 });
  const small = STREAM.subarray(0, 60);
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 }), fc.integer({ min: 1, max: 16 }), (edits, step) => {
      const b = Buffer.from(small);
      for (const [at, v] of edits) b[at % b.length] = v;
      run(b, step);
    }),
    { numRuns: 300 },
  );
});
