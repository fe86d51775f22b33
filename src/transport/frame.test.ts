// Tests of the frame splitter (random chunkings, bounds checked before
// buffering, poisoning), the app payload and the handshake encodings.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CodecError } from '../codec/index.js';
import { nodeId } from '../protocol/ids.js';
import {
  decodeAppPayload, encodeAppPayload, encodeFrame, FrameError, FrameKind, FrameSplitter, type FrameKindCode,
} from './frame.js';
import { checkHello, decodeAck, decodeHello, encodeAck, encodeHello, PROTOCOL_VERSION } from './handshake.js';
import { cutAt } from '../util/test-chunks.js';

const arbKind = fc.constantFrom<FrameKindCode>(FrameKind.hello, FrameKind.ack, FrameKind.raft, FrameKind.app);
const arbFrames = fc.array(fc.record({ kind: arbKind, payload: fc.oneof(fc.uint8Array({ maxLength: 10 }), fc.uint8Array({ maxLength: 3000 })) }), { maxLength: 20 });

test('property: any chunking of a stream of frames yields the same frames, in order', () => {
  fc.assert(fc.property(arbFrames, fc.array(fc.nat(), { maxLength: 40 }), (frames, positions) => {
    const stream = Buffer.concat(frames.map((f) => encodeFrame(f.kind, f.payload)));
    const splitter = new FrameSplitter(4000);
    const got = cutAt(new Uint8Array(stream), positions).flatMap((chunk) => splitter.push(chunk));
    assert.deepEqual(got.map((f) => ({ kind: f.kind, payload: new Uint8Array(f.payload) })), frames.map((f) => ({ kind: f.kind, payload: new Uint8Array(f.payload) })));
    assert.equal(splitter.bufferedBytes, 0);
  }), { numRuns: 1000 });
});

test('byte-at-a-time and all-at-once give the same frames', () => {
  const frames = [encodeFrame(FrameKind.raft, new Uint8Array([1, 2, 3])), encodeFrame(FrameKind.app, new Uint8Array(0)), encodeFrame(FrameKind.ack, new Uint8Array(70000).fill(5))];
  const stream = new Uint8Array(Buffer.concat(frames));
  const s1 = new FrameSplitter(1 << 20);
  const one = [...stream].flatMap((b) => s1.push(new Uint8Array([b])));
  const all = new FrameSplitter(1 << 20).push(stream);
  assert.equal(one.length, 3);
  assert.deepEqual(one.map((f) => [f.kind, f.payload.length]), [[3, 3], [4, 0], [2, 70000]]);
  assert.deepEqual(all.map((f) => [f.kind, f.payload.length]), [[3, 3], [4, 0], [2, 70000]]);
});

test('a length over the bound is rejected from its header alone, before buffering the body', () => {
  const s = new FrameSplitter(100);
  assert.deepEqual(s.push(encodeFrame(FrameKind.raft, new Uint8Array(99))).length, 1); // length 100: at the bound
  const header = encodeFrame(FrameKind.raft, new Uint8Array(100)).subarray(0, 5); // length 101
  assert.throws(() => s.push(header.subarray(0, 3)).concat(s.push(header.subarray(3))), (e: unknown) => e instanceof FrameError && /length 101 exceeds the bound of 100/.test(e.reason));
  assert.equal(s.bufferedBytes, 0);
  assert.throws(() => s.push(new Uint8Array([1])), FrameError, 'a splitter stays poisoned');
  assert.throws(() => new FrameSplitter(100).push(new Uint8Array([0xff, 0xff, 0xff, 0xff, 3])), /exceeds the bound/);
});

test('a zero length and an unknown kind are rejected', () => {
  assert.throws(() => new FrameSplitter(100).push(new Uint8Array([0, 0, 0, 0, 3])), (e: unknown) => e instanceof FrameError && /length 0/.test(e.reason));
  assert.throws(() => new FrameSplitter(100).push(new Uint8Array([1, 0, 0, 0, 9])), (e: unknown) => e instanceof FrameError && /unknown frame kind 9/.test(e.reason));
  assert.throws(() => new FrameSplitter(100).push(new Uint8Array([1, 0, 0, 0, 0])), /unknown frame kind 0/);
});

test('app payload: u16 channel + bytes', () => {
  const p = encodeAppPayload(0xbeef, new Uint8Array([7, 8]));
  assert.deepEqual([...p], [0xef, 0xbe, 7, 8]);
  assert.deepEqual(decodeAppPayload(p), { channel: 0xbeef, payload: new Uint8Array([7, 8]) });
  assert.throws(() => encodeAppPayload(65536, new Uint8Array(0)), RangeError);
  assert.throws(() => encodeAppPayload(-1, new Uint8Array(0)), RangeError);
  assert.throws(() => decodeAppPayload(new Uint8Array([1])), CodecError);
});

test('handshake: hello and ack round trip; checkHello refuses with a reason', () => {
  const a = nodeId('a');
  const b = nodeId('b');
  const hello = { version: PROTOCOL_VERSION, clusterId: 'red', from: a, to: b };
  const bytes = encodeHello(hello);
  assert.deepEqual([...bytes.subarray(0, 6)], [0x51, 0x4c, 0x4f, 0x47, 1, 0]);
  assert.deepEqual(decodeHello(bytes), hello);
  const self = { clusterId: 'red', nodeId: b, peers: new Map([[a, null]]) };
  assert.deepEqual(checkHello(bytes, self), { ok: true, from: a });
  assert.deepEqual(checkHello(encodeHello({ ...hello, clusterId: 'blue' }), self), { ok: false, reason: 'cluster id "blue" does not match ours "red"' });
  assert.deepEqual(checkHello(encodeHello({ ...hello, to: nodeId('c') }), self), { ok: false, reason: 'this is node "b", not "c"' });
  assert.deepEqual(checkHello(encodeHello({ ...hello, from: nodeId('x') }), self), { ok: false, reason: 'node "x" is not a configured peer of "b"' });
  assert.deepEqual(checkHello(encodeHello({ ...hello, from: b }), self), { ok: false, reason: 'node "b" is not a configured peer of "b"' });
  const v2 = bytes.slice();
  v2[4] = 2;
  assert.deepEqual(checkHello(v2, self), { ok: false, reason: 'protocol version 2 is not ours (1)' });
  const badMagic = bytes.slice();
  badMagic[0] = 0x52;
  assert.throws(() => checkHello(badMagic, self), (e: unknown) => e instanceof CodecError && /QLOG/.test(e.message));
  assert.throws(() => checkHello(bytes.subarray(0, bytes.length - 1), self), CodecError);
  assert.throws(() => checkHello(new Uint8Array([...bytes, 0]), self), CodecError);

  assert.deepEqual(decodeAck(encodeAck({ ok: true })), { ok: true });
  assert.deepEqual(decodeAck(encodeAck({ ok: false, reason: 'nope ✗' })), { ok: false, reason: 'nope ✗' });
  assert.ok(encodeAck({ ok: false, reason: 'é'.repeat(5000) }).byteLength <= 3 + 1024);
  assert.throws(() => decodeAck(new Uint8Array([2])), CodecError);
  assert.throws(() => decodeAck(new Uint8Array([0, 0])), CodecError);
});
