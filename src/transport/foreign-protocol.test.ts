// foreign-protocol.ts: the first bytes of an HTTP/2 client, an HTTP/1
// request and a TLS ClientHello are recognised; no hello frame ever is
// (property: any ids up to the 255-byte bound, any cut of the stream);
// the log line says this is the peer port and where clients connect.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { nodeId } from '../protocol/ids.js';
import { FOREIGN_SIGNATURE_BYTES, foreignProtocol, foreignProtocolMessage } from './foreign-protocol.js';
import { encodeFrame, FrameKind } from './frame.js';
import { encodeHello, PROTOCOL_VERSION } from './handshake.js';

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

test('recognises HTTP/2, HTTP/1 and TLS by their first bytes', () => {
  assert.equal(foreignProtocol(bytes('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')), 'http2');
  assert.equal(foreignProtocol(bytes('GET /dashboard HTTP/1.1\r\n')), 'http1');
  assert.equal(foreignProtocol(bytes('POST /v3/kv/put HTTP/1.1\r\n')), 'http1');
  assert.equal(foreignProtocol(new Uint8Array([0x16, 0x03, 0x01, 0x00, 0xc4, 0x01])), 'tls'); // a ClientHello record of 196 bytes
  assert.equal(foreignProtocol(new Uint8Array([0x16, 0x03, 0x01, 0x02])), 'tls');
  assert.equal(foreignProtocol(bytes('SSH-2.0-OpenSSH')), null);
  assert.equal(foreignProtocol(new Uint8Array(0)), null);
  assert.equal(foreignProtocol(bytes('PR')), null, 'too short to tell');
});

test('never takes a hello frame, or any prefix of one, for a foreign client', () => {
  const id = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 60 }).filter((s) => new TextEncoder().encode(s).byteLength <= 255);
  fc.assert(fc.property(id, id, id, fc.nat(FOREIGN_SIGNATURE_BYTES), (clusterId, from, to, cut) => {
    const frame = encodeFrame(FrameKind.hello, encodeHello({ version: PROTOCOL_VERSION, clusterId, from: nodeId(from), to: nodeId(to) }));
    assert.equal(foreignProtocol(frame.subarray(0, Math.max(cut, FOREIGN_SIGNATURE_BYTES))), null);
  }), { numRuns: 300, seed: 17 });
  // The longest hello there can be: three 255-byte ids.
  const long = 'x'.repeat(255);
  const frame = encodeFrame(FrameKind.hello, encodeHello({ version: PROTOCOL_VERSION, clusterId: long, from: nodeId(long), to: nodeId(long) }));
  assert.equal(foreignProtocol(frame), null);
});

test('the log line says this is the peer port and where clients connect', () => {
  const m = foreignProtocolMessage('http2', '127.0.0.1:50000', { client: '127.0.0.1:2379', metrics: '127.0.0.1:2579' });
  assert.match(m, /^a gRPC \(HTTP\/2\) client at 127\.0\.0\.1:50000 connected to the peer port: this is the peer port; clients connect to 127\.0\.0\.1:2379; closing/);
  assert.match(foreignProtocolMessage('http1', 'r', { client: 'c:1', metrics: 'm:2' }), /this is the peer port; clients connect to c:1, the dashboard and metrics are on http:\/\/m:2\//);
  assert.match(foreignProtocolMessage('tls', 'r', {}), /this is the peer port; clients connect to the client port \(or it is a node with peer TLS/);
});
