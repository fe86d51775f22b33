// The connection handshake. The dialer's first frame is a hello:
//   'QLOG' | u16 protocol version | clusterId | fromNodeId | toNodeId
// (strings as u8 length + UTF-8). The acceptor checks the version, the cluster
// id, that `to` is itself and that `from` is a configured peer, and answers an
// ack: u8 0 (ok), or u8 1 + u16 length + UTF-8 reason (refused). No other
// frame is accepted on a connection before its handshake succeeded.

import { ByteReader, ByteWriter, shortStringUtf8 } from '../codec/bytes.js';
import type { NodeId } from '../protocol/ids.js';

/** The version this build speaks; a peer with another version is refused. */
export const PROTOCOL_VERSION = 1;
const MAGIC = [0x51, 0x4c, 0x4f, 0x47]; // 'QLOG'
const MAX_REASON_BYTES = 1024;

/** What a dialer says about itself. Invariant: ids are non-empty and at most 255 UTF-8 bytes. */
export interface Hello {
  readonly version: number;
  readonly clusterId: string;
  readonly from: NodeId;
  readonly to: NodeId;
}

/** The acceptor's answer. */
export type Ack = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/** Encodes a hello payload. Throws CodecError for an empty or over-long id. */
export function encodeHello(h: Hello): Uint8Array {
  const cluster = shortStringUtf8('clusterId', h.clusterId);
  const from = shortStringUtf8('from', h.from);
  const to = shortStringUtf8('to', h.to);
  const w = new ByteWriter(4 + 2 + 3 + cluster.byteLength + from.byteLength + to.byteLength);
  for (const b of MAGIC) w.u8(b);
  w.u16(h.version);
  w.shortString(cluster);
  w.shortString(from);
  w.shortString(to);
  return w.bytes;
}

/**
 * Decodes a hello payload. Throws CodecError on a bad magic or a malformed
 * body. A hello of another protocol version is returned with only its version
 * meaningful (its layout may differ): check the version first.
 */
export function decodeHello(payload: Uint8Array): Hello | { readonly version: number; readonly foreign: true } {
  const r: ByteReader = new ByteReader(payload);
  for (const b of MAGIC) {
    if (r.u8('magic') !== b) r.fail('magic', 'not a quorumlog hello (expected "QLOG")', 0);
  }
  const version = r.u16('version');
  if (version !== PROTOCOL_VERSION) return { version, foreign: true };
  const clusterId = r.shortString('clusterId', false);
  const from = r.shortString('from', false) as NodeId;
  const to = r.shortString('to', false) as NodeId;
  r.end('hello');
  return { version, clusterId, from, to };
}

/** What the acceptor checks a hello against. */
export interface AcceptorIdentity {
  readonly clusterId: string;
  readonly nodeId: NodeId;
  readonly peers: ReadonlyMap<NodeId, unknown>;
}

/**
 * Decides a handshake: the peer's id, or why it is refused (a sentence for both
 * sides' logs). Throws CodecError when the hello is malformed.
 */
export function checkHello(payload: Uint8Array, self: AcceptorIdentity): { ok: true; from: NodeId } | { ok: false; reason: string } {
  const h = decodeHello(payload);
  if ('foreign' in h) return { ok: false, reason: `protocol version ${h.version} is not ours (${PROTOCOL_VERSION})` };
  if (h.clusterId !== self.clusterId) {
    return { ok: false, reason: `cluster id ${JSON.stringify(h.clusterId)} does not match ours ${JSON.stringify(self.clusterId)}` };
  }
  if (h.to !== self.nodeId) return { ok: false, reason: `this is node ${JSON.stringify(self.nodeId)}, not ${JSON.stringify(h.to)}` };
  if (h.from === self.nodeId || !self.peers.has(h.from)) {
    return { ok: false, reason: `node ${JSON.stringify(h.from)} is not a configured peer of ${JSON.stringify(self.nodeId)}` };
  }
  return { ok: true, from: h.from };
}

const utf8 = new TextEncoder();

/** Encodes an ack payload; a long reason is cut to 1 KiB (at a character boundary). */
export function encodeAck(ack: Ack): Uint8Array {
  if (ack.ok) return new Uint8Array([0]);
  let reason = ack.reason;
  let bytes = utf8.encode(reason);
  while (bytes.byteLength > MAX_REASON_BYTES) {
    reason = reason.slice(0, Math.floor(reason.length * 0.9));
    bytes = utf8.encode(reason);
  }
  const w = new ByteWriter(3 + bytes.byteLength);
  w.u8(1);
  w.u16(bytes.byteLength);
  w.raw(bytes);
  return w.bytes;
}

const utf8Lenient = new TextDecoder('utf-8');

/** Decodes an ack payload. Throws CodecError when malformed. */
export function decodeAck(payload: Uint8Array): Ack {
  const r: ByteReader = new ByteReader(payload);
  const status = r.u8('ack status');
  if (status === 0) {
    r.end('ack');
    return { ok: true };
  }
  if (status !== 1) r.fail('ack status', `unknown status ${status}`, 0);
  const n = r.u16('ack reason length');
  const reason = utf8Lenient.decode(r.view('ack reason', n));
  r.end('ack');
  return { ok: false, reason };
}
