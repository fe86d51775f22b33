// gRPC framing of the workers' lean path: a unary body split anywhere gives
// back its message; oversized, compressed, short, long and doubled bodies are
// refused with the status grpc-js would send; grpc-message survives any text.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { encodeGrpcMessage, frameMessage, GrpcFrameError, GRPC_STATUS, UnaryBody } from './grpc-frame.js';
import { cutAt } from '../../util/test-chunks.js';

/** Undoes encodeGrpcMessage, as a client reads grpc-message. */
export function decodeGrpcMessage(text: string): string {
  if (!text.includes('%')) return text;
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '%' && /^[0-9A-Fa-f]{2}$/.test(text.slice(i + 1, i + 3))) {
      bytes.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(text.charCodeAt(i));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

test('a framed message split into any chunks reads back whole', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), fc.array(fc.nat(), { maxLength: 6 }), (msg, cuts) => {
    const body = new UnaryBody(1024);
    for (const chunk of cutAt(frameMessage(msg), cuts)) body.push(chunk);
    assert.deepEqual(new Uint8Array(body.finish()), msg);
  }));
});

function refusedWith(code: number, run: () => void): void {
  assert.throws(run, (e: unknown) => e instanceof GrpcFrameError && e.code === code);
}

test('bodies that are not one uncompressed message within the limit are refused with grpc-js\'s statuses', () => {
  // Larger than the limit: refused from the prefix alone, before the bytes arrive.
  const big = Buffer.from([0, 0, 0, 4, 1]);
  refusedWith(GRPC_STATUS.RESOURCE_EXHAUSTED, () => new UnaryBody(1024).push(big));
  // Compressed flag without an encoding.
  refusedWith(GRPC_STATUS.UNIMPLEMENTED, () => new UnaryBody(1024).push(Buffer.from([1, 0, 0, 0, 0])));
  // Shorter than a prefix; shorter than announced; two messages.
  refusedWith(GRPC_STATUS.INTERNAL, () => {
    const b = new UnaryBody(1024);
    b.push(Buffer.from([0, 0]));
    b.finish();
  });
  refusedWith(GRPC_STATUS.INTERNAL, () => {
    const b = new UnaryBody(1024);
    b.push(Buffer.from([0, 0, 0, 0, 9, 1, 2]));
    b.finish();
  });
  refusedWith(GRPC_STATUS.INTERNAL, () => new UnaryBody(1024).push(Buffer.concat([frameMessage(Buffer.from('ab')), frameMessage(Buffer.from('c'))])));
  // An empty message is a valid (all-defaults) request.
  const empty = new UnaryBody(1024);
  empty.push(frameMessage(new Uint8Array(0)));
  assert.equal(empty.finish().length, 0);
});

test('grpc-message: printable ASCII goes as it is; anything else round-trips through percent-encoding', () => {
  assert.equal(encodeGrpcMessage('etcdserver: key is not provided'), 'etcdserver: key is not provided');
  assert.equal(encodeGrpcMessage('100% sure\n'), '100%25 sure%0A');
  fc.assert(fc.property(fc.string({ unit: 'grapheme', maxLength: 40 }), (text) => {
    const wire = encodeGrpcMessage(text);
    assert.match(wire, /^[\x20-\x7e]*$/);
    assert.equal(decodeGrpcMessage(wire), text);
  }));
});
