// Tests of the in-memory transport: asynchronous delivery through the codec,
// partitions and healing, unknown peers and closed nodes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as tick } from 'node:timers/promises';
import { nodeId, type NodeId } from '../protocol/ids.js';
import type { Message } from '../protocol/messages.js';
import { CodecError } from '../codec/index.js';
import { MemoryNetwork, MemoryTransport } from './memory.js';
import type { PeerFrame } from './types.js';

const ids = ['a', 'b', 'c'].map(nodeId) as [NodeId, NodeId, NodeId];
const hb = (from: NodeId, to: NodeId, readSeq: number): Message => ({ type: 'heartbeat', from, to, term: 1, commit: 0, readSeq });

async function cluster(): Promise<{ net: MemoryNetwork; ts: MemoryTransport[]; got: { to: NodeId; from: NodeId; frame: PeerFrame }[] }> {
  const net = new MemoryNetwork();
  const got: { to: NodeId; from: NodeId; frame: PeerFrame }[] = [];
  const ts = ids.map((id) => new MemoryTransport(net, id, ids));
  for (const t of ts) {
    t.onFrame((from, frame) => got.push({ to: t.nodeId, from, frame }));
    await t.start();
  }
  return { net, ts, got };
}

test('frames arrive asynchronously, in order, as copies through the codec', async () => {
  const { ts, got } = await cluster();
  const [a] = ts as [MemoryTransport];
  const data = new Uint8Array([1, 2]);
  assert.equal(a.send(ids[1], { kind: 'raft', message: { type: 'append', from: ids[0], to: ids[1], term: 1, prevIndex: 0, prevTerm: 0, commit: 0, entries: [{ index: 1, term: 1, type: 'data', data }] } }), true);
  assert.equal(a.send(ids[2], { kind: 'app', channel: 3, payload: data }), true);
  assert.equal(got.length, 0, 'not synchronous');
  data.fill(9);
  await tick();
  assert.equal(got.length, 2);
  const first = got[0]!.frame;
  assert.ok(first.kind === 'raft' && first.message.type === 'append');
  assert.deepEqual(first.message.entries[0]!.data, new Uint8Array([1, 2]), 'the receiver does not share the sender\'s buffer');
  assert.deepEqual(got[1], { to: ids[2], from: ids[0], frame: { kind: 'app', channel: 3, payload: new Uint8Array([1, 2]) } });
  assert.equal(a.stats().framesSent, 2);
  assert.equal(ts[1]!.stats().framesReceived, 1);
  assert.throws(() => a.send(ids[1], { kind: 'raft', message: { ...hb(ids[0], ids[1], 1), term: -1 } }), CodecError);
});

test('partition, one-way cut, heal', async () => {
  const { net, ts, got } = await cluster();
  const [a, b, c] = ts as [MemoryTransport, MemoryTransport, MemoryTransport];
  net.isolate(ids[0], ids);
  assert.equal(a.send(ids[1], { kind: 'raft', message: hb(ids[0], ids[1], 1) }), true, 'loss is silent');
  b.send(ids[0], { kind: 'raft', message: hb(ids[1], ids[0], 1) });
  c.send(ids[1], { kind: 'raft', message: hb(ids[2], ids[1], 1) });
  await tick();
  assert.deepEqual(got.map((g) => [g.from, g.to]), [[ids[2], ids[1]]]);
  assert.equal(a.stats().peers['b']?.droppedFrames, 1);
  assert.equal(a.stats().peers['b']?.connected, false);
  net.heal();
  net.cutLink(ids[1], ids[2]);
  b.send(ids[2], { kind: 'raft', message: hb(ids[1], ids[2], 2) });
  c.send(ids[1], { kind: 'raft', message: hb(ids[2], ids[1], 2) });
  a.send(ids[1], { kind: 'raft', message: hb(ids[0], ids[1], 2) });
  // a frame in flight when the link is cut is lost too
  a.send(ids[2], { kind: 'raft', message: hb(ids[0], ids[2], 2) });
  net.cutLink(ids[0], ids[2]);
  await tick();
  assert.deepEqual(got.slice(1).map((g) => [g.from, g.to]), [[ids[2], ids[1]], [ids[0], ids[1]]]);
});

test('unknown peers are refused; a closed node neither sends nor receives', async () => {
  const { ts, got } = await cluster();
  const [a, b] = ts as [MemoryTransport, MemoryTransport];
  assert.equal(a.send(nodeId('zz'), { kind: 'app', channel: 0, payload: new Uint8Array() }), false);
  assert.equal(a.send(ids[0], { kind: 'app', channel: 0, payload: new Uint8Array() }), false, 'self is not a peer');
  assert.equal(a.stats().unknownPeerFrames, 2);
  assert.equal(a.send(ids[1], { kind: 'raft', message: hb(ids[2], ids[1], 1) }), false, 'not from this node');
  assert.equal(a.stats().peers['b']?.droppedFrames, 1);
  a.send(ids[1], { kind: 'raft', message: hb(ids[0], ids[1], 1) });
  await b.close();
  await tick();
  assert.equal(got.length, 0);
  assert.equal(b.send(ids[0], { kind: 'raft', message: hb(ids[1], ids[0], 1) }), false);
  assert.equal(a.address, null);
  await assert.rejects(b.start(), { message: /called twice or after close/ });
});
