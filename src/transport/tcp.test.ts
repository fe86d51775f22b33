// Tests of TcpTransport over real sockets on 127.0.0.1 (ephemeral ports):
// exchange between two and three nodes, handshake refusals, malformed input,
// a restarted peer, the send queue bound, and a throwing handler.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import tls from 'node:tls';
import fc from 'fast-check';
import * as grpc from '@grpc/grpc-js';
import type { Entry } from '../protocol/entry.js';
import { nodeId, type NodeId } from '../protocol/ids.js';
import type { Message } from '../protocol/messages.js';
import { encodeMessage } from '../codec/index.js';
import { encodeFrame, FrameKind, frameHeader } from './frame.js';
import { encodeHello, PROTOCOL_VERSION } from './handshake.js';
import type { HostPort } from './tcp.js';
import { sleep, startCluster, startNode, waitFor, WARN, type TestNode } from './test-util.js';

const hb = (from: NodeId, to: NodeId, readSeq: number): Message => ({ type: 'heartbeat', from, to, term: 1, commit: 0, readSeq });
const seqs = (n: TestNode, from: NodeId): number[] =>
  n.received.filter((r) => r.from === from && r.frame.kind === 'raft').map((r) => (r.frame.kind === 'raft' && r.frame.message.type === 'heartbeat' ? r.frame.message.readSeq : -1));
const warned = (n: TestNode, re: RegExp): boolean => n.lines.some((l) => l.level === WARN && re.test(l.msg));
const closeAll = (nodes: readonly TestNode[]) => () => Promise.all(nodes.map((n) => n.transport.close())).then(() => undefined);

test('two transports exchange raft and app frames, both ways', async (t) => {
  const { nodes } = await startCluster(['a', 'b']);
  t.after(closeAll(nodes));
  const [a, b] = nodes as [TestNode, TestNode];
  const entries: Entry[] = [{ index: 5, term: 2, type: 'data', data: new Uint8Array(600_000).fill(3) }, { index: 6, term: 2, type: 'noop', data: new Uint8Array(0) }];
  const append: Message = { type: 'append', from: b.id, to: a.id, term: 2, prevIndex: 4, prevTerm: 1, entries, commit: 4 };
  assert.equal(a.transport.send(b.id, { kind: 'raft', message: hb(a.id, b.id, 1) }), true);
  assert.equal(a.transport.send(b.id, { kind: 'app', channel: 7, payload: new Uint8Array([1, 2, 3]) }), true);
  assert.equal(b.transport.send(a.id, { kind: 'raft', message: append }), true);
  await waitFor(() => b.received.length === 2 && a.received.length === 1, 'frames both ways');
  assert.deepEqual(b.received, [
    { from: a.id, frame: { kind: 'raft', message: hb(a.id, b.id, 1) } },
    { from: a.id, frame: { kind: 'app', channel: 7, payload: new Uint8Array([1, 2, 3]) } },
  ]);
  assert.deepEqual(a.received, [{ from: b.id, frame: { kind: 'raft', message: append } }]);
  const sa = a.transport.stats();
  assert.equal(sa.framesSent, 2);
  assert.equal(sa.framesReceived, 1);
  assert.ok(sa.bytesReceived > 600_000);
  assert.deepEqual(sa.peers, { b: { connected: true, queuedBytes: 0, queuedFrames: 0, droppedFrames: 0, reconnects: 0 } });
  assert.equal(b.transport.stats().framesReceived, 2);
  assert.equal(sa.malformedFrames + sa.refusedHandshakes, 0);
});

test('three transports: every link delivers every frame, in order', async (t) => {
  const { nodes } = await startCluster(['n1', 'n2', 'n3']);
  t.after(closeAll(nodes));
  const count = 300;
  for (let i = 0; i < count; i++) {
    for (const from of nodes) for (const to of nodes) if (from !== to) from.transport.send(to.id, { kind: 'raft', message: hb(from.id, to.id, i) });
  }
  await waitFor(() => nodes.every((n) => n.received.length === 2 * count), 'all frames');
  const expected = Array.from({ length: count }, (_, i) => i);
  for (const to of nodes) for (const from of nodes) if (from !== to) assert.deepEqual(seqs(to, from.id), expected);
});

test('the handshake refuses a wrong cluster id: both sides log and count it, and the dialer backs off', async (t) => {
  const peers = new Map<NodeId, HostPort>([[nodeId('a'), { host: '127.0.0.1', port: 0 }], [nodeId('b'), { host: '127.0.0.1', port: 0 }]]);
  const a = await startNode(nodeId('a'), peers, { clusterId: 'red' });
  const b = await startNode(nodeId('b'), peers, { clusterId: 'blue' });
  t.after(closeAll([a, b]));
  assert.equal(b.transport.send(a.id, { kind: 'raft', message: hb(b.id, a.id, 1) }), true);
  await waitFor(() => b.transport.stats().refusedHandshakes >= 1 && a.transport.stats().refusedHandshakes >= 1, 'refusals');
  assert.ok(warned(b, /^peer a refused: cluster id "blue" does not match ours "red"$/), 'dialer warns with the reason');
  assert.ok(warned(a, /refused a connection from 127\.0\.0\.1:\d+: cluster id "blue" does not match ours "red"/), 'acceptor warns with the reason');
  await sleep(200);
  assert.equal(a.received.length, 0);
  const s = b.transport.stats();
  assert.equal(s.peers['a']?.connected, false);
  assert.equal(s.peers['a']?.queuedFrames, 1, 'the frame waits in the queue');
  // backoff 10 ms doubling to a 100 ms cap, jittered: a handful of attempts in 200 ms, not a spin
  assert.ok(s.refusedHandshakes <= 8, `${s.refusedHandshakes} refusals in 200 ms`);
  assert.ok((s.peers['a']?.reconnects ?? 0) >= 1);
});

test('the handshake refuses a node id that is not a configured peer', async (t) => {
  const aPeers = new Map<NodeId, HostPort>([[nodeId('a'), { host: '127.0.0.1', port: 0 }], [nodeId('b'), { host: '127.0.0.1', port: 1 }]]);
  const a = await startNode(nodeId('a'), aPeers);
  const cPeers = new Map<NodeId, HostPort>([[nodeId('a'), a.transport.address!], [nodeId('c'), { host: '127.0.0.1', port: 0 }]]);
  const c = await startNode(nodeId('c'), cPeers);
  t.after(closeAll([a, c]));
  c.transport.send(a.id, { kind: 'app', channel: 1, payload: new Uint8Array(1) });
  await waitFor(() => c.transport.stats().refusedHandshakes >= 1 && a.transport.stats().refusedHandshakes >= 1, 'refusals');
  assert.ok(warned(c, /^peer a refused: node "c" is not a configured peer of "a"$/));
  assert.ok(warned(a, /node "c" is not a configured peer of "a"/));
  assert.equal(a.received.length, 0);
});

/** A raw client that completes the handshake as `from` (unless `hello` is false). */
async function rawClient(to: TestNode, from: string, hello = true): Promise<{ sock: net.Socket; closed: Promise<unknown> }> {
  const sock = net.connect(to.transport.address!);
  sock.on('error', () => {});
  const closed = once(sock, 'close');
  await once(sock, 'connect');
  if (hello) {
    sock.write(encodeFrame(FrameKind.hello, encodeHello({ version: PROTOCOL_VERSION, clusterId: 'red', from: nodeId(from), to: to.id })));
    const [ack] = (await once(sock, 'data')) as [Buffer];
    assert.deepEqual([...ack], [...encodeFrame(FrameKind.ack, new Uint8Array([0]))]);
  }
  return { sock, closed };
}

test('a malformed frame closes only its connection, is counted and logged, and the node keeps working', async (t) => {
  const { nodes } = await startCluster(['a', 'b', 'c'], { maxFrameBytes: 1 << 20 });
  t.after(closeAll(nodes));
  const [a, b, c] = nodes as [TestNode, TestNode, TestNode];
  b.transport.send(a.id, { kind: 'raft', message: hb(b.id, a.id, 0) });
  await waitFor(() => a.received.length === 1, 'b → a before');

  const cases: [string, Uint8Array, RegExp][] = [
    ['unknown kind', new Uint8Array([1, 0, 0, 0, 9]), /unknown frame kind 9/],
    ['over the bound', frameHeader(FrameKind.raft, 1 << 20), /exceeds the bound/],
    ['zero length', new Uint8Array([0, 0, 0, 0, 3]), /length 0/],
    ['codec error', encodeFrame(FrameKind.raft, new Uint8Array([99, 1, 2])), /unknown tag 99/],
    ['forged sender', encodeFrame(FrameKind.raft, encodeMessage(hb(b.id, a.id, 1))), /from "b" to "a" on the connection of peer "c"/],
    ['second hello', encodeFrame(FrameKind.hello, encodeHello({ version: 1, clusterId: 'red', from: c.id, to: a.id })), /frame kind 1 after the handshake/],
    ['short app frame', encodeFrame(FrameKind.app, new Uint8Array([1])), /has no channel/],
  ];
  let expected = 0;
  for (const [name, bytes, re] of cases) {
    const raw = await rawClient(a, 'c');
    raw.sock.write(bytes);
    await raw.closed;
    expected++;
    assert.equal(a.transport.stats().malformedFrames, expected, name);
    assert.ok(warned(a, re), `${name}: warn line matching ${re}`);
  }
  // a frame before the handshake
  const early = await rawClient(a, 'c', false);
  early.sock.write(encodeFrame(FrameKind.raft, encodeMessage(hb(c.id, a.id, 1))));
  await early.closed;
  assert.equal(a.transport.stats().malformedFrames, expected + 1);
  assert.ok(warned(a, /frame kind 3 before the handshake/));
  // garbage instead of a hello
  const garbage = await rawClient(a, 'c', false);
  garbage.sock.write(encodeFrame(FrameKind.hello, new Uint8Array([1, 2, 3])));
  await garbage.closed;
  assert.equal(a.transport.stats().malformedFrames, expected + 2);

  // the good connections were not touched
  b.transport.send(a.id, { kind: 'raft', message: hb(b.id, a.id, 1) });
  c.transport.send(a.id, { kind: 'raft', message: hb(c.id, a.id, 1) });
  a.transport.send(b.id, { kind: 'raft', message: hb(a.id, b.id, 1) });
  await waitFor(() => a.received.length === 3 && b.received.length === 1, 'traffic after the malformed frames');
  assert.deepEqual(seqs(a, b.id), [0, 1]);
  assert.equal(a.received.filter((r) => r.from === c.id).length, 1, 'nothing from the bad connections was delivered');
  assert.equal(b.transport.stats().peers['a']?.reconnects, 0);
});

test('a peer that restarts on the same port is reconnected to; frames queued meanwhile are delivered', async (t) => {
  const { nodes, peers } = await startCluster(['a', 'b']);
  const [a, b] = nodes as [TestNode, TestNode];
  const opened: TestNode[] = [a];
  t.after(() => closeAll(opened)());
  a.transport.send(b.id, { kind: 'raft', message: hb(a.id, b.id, 0) });
  await waitFor(() => b.received.length === 1, 'first frame');
  const port = b.transport.address!.port;
  await b.transport.close();
  await waitFor(() => a.transport.stats().peers['b']?.connected === false, 'a notices the loss');
  for (let i = 1; i <= 5; i++) assert.equal(a.transport.send(b.id, { kind: 'raft', message: hb(a.id, b.id, i) }), true);
  assert.equal(a.transport.stats().peers['b']?.queuedFrames, 5);
  await sleep(50);
  const b2 = await startNode(b.id, peers, {}, port);
  opened.push(b2);
  await waitFor(() => b2.received.length === 5, 'queued frames after the restart');
  assert.deepEqual(seqs(b2, a.id), [1, 2, 3, 4, 5]);
  const s = a.transport.stats().peers['b'];
  assert.equal(s?.connected, true);
  assert.ok((s?.reconnects ?? 0) >= 1);
  assert.ok(warned(a, /connection to peer b lost/));
});

test('the send queue bound drops and counts frames while a peer is down; unknown peers and a closed transport refuse', async (t) => {
  const probe = net.createServer();
  probe.listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const deadPort = (probe.address() as net.AddressInfo).port;
  await new Promise((r) => probe.close(r));
  const peers = new Map<NodeId, HostPort>([[nodeId('a'), { host: '127.0.0.1', port: 0 }], [nodeId('b'), { host: '127.0.0.1', port: deadPort }]]);
  const a = await startNode(nodeId('a'), peers, { sendQueueMaxBytes: 10_000 });
  let closed = false;
  t.after(async () => {
    if (!closed) await a.transport.close();
  });
  const b = nodeId('b');
  const payload = new Uint8Array(993); // 1000 bytes with the app header (2) and the frame header (5)
  let accepted = 0;
  while (a.transport.send(b, { kind: 'app', channel: 0, payload })) accepted++;
  assert.equal(accepted, 10);
  assert.equal(a.transport.send(b, { kind: 'app', channel: 0, payload }), false);
  let s = a.transport.stats();
  assert.deepEqual({ ...s.peers['b'], reconnects: 0 }, { connected: false, queuedBytes: 10_000, queuedFrames: 10, droppedFrames: 2, reconnects: 0 });
  await waitFor(() => (a.transport.stats().peers['b']?.reconnects ?? 0) >= 2, 'redials with backoff');
  assert.equal(a.transport.send(nodeId('zz'), { kind: 'raft', message: hb(a.id, nodeId('zz'), 1) }), false);
  assert.equal(a.transport.send(a.id, { kind: 'raft', message: hb(a.id, a.id, 1) }), false, 'self is not a peer');
  s = a.transport.stats();
  assert.equal(s.unknownPeerFrames, 2);
  assert.equal(s.framesSent, 0);
  await a.transport.close();
  closed = true;
  assert.equal(a.transport.address, null);
  assert.equal(a.transport.send(b, { kind: 'app', channel: 0, payload }), false);
  assert.equal(a.transport.stats().peers['b']?.queuedBytes, 0, 'close drops the queue');
});

test('a throwing handler is logged; the connection and later frames survive', async (t) => {
  const { nodes } = await startCluster(['a', 'b']);
  t.after(closeAll(nodes));
  const [a, b] = nodes as [TestNode, TestNode];
  let calls = 0;
  a.transport.onFrame(() => {
    calls++;
    throw new Error('handler bug');
  });
  b.transport.send(a.id, { kind: 'raft', message: hb(b.id, a.id, 1) });
  b.transport.send(a.id, { kind: 'raft', message: hb(b.id, a.id, 2) });
  await waitFor(() => calls === 2, 'both frames reach the handler');
  assert.ok(a.lines.some((l) => l.level === 50 && /handler threw/.test(l.msg)));
  assert.equal(a.transport.stats().malformedFrames, 0);
});

test('start() on a taken port fails with TransportListenError', async (t) => {
  const { nodes } = await startCluster(['a']);
  t.after(closeAll(nodes));
  const taken = nodes[0]!.transport.address!.port;
  await assert.rejects(startNode(nodeId('x'), new Map(), {}, taken), (e: unknown) => e instanceof Error && e.name === 'TransportListenError' && e.cause instanceof Error);
});

test('bulk traffic goes through socket backpressure intact and in order', async (t) => {
  const { nodes } = await startCluster(['a', 'b']);
  t.after(closeAll(nodes));
  const [a, b] = nodes as [TestNode, TestNode];
  const count = 100;
  for (let i = 0; i < count; i++) {
    const payload = new Uint8Array(256 * 1024).fill(i);
    new DataView(payload.buffer).setUint32(0, i);
    assert.equal(a.transport.send(b.id, { kind: 'app', channel: 1, payload }), true);
  }
  await waitFor(() => b.received.length === count, '25 MiB of frames', 10_000);
  b.received.forEach((r, i) => {
    assert.ok(r.frame.kind === 'app' && r.frame.payload.length === 256 * 1024);
    const p = r.frame.payload;
    assert.equal(new DataView(p.buffer, p.byteOffset).getUint32(0), i);
    assert.equal(p[p.length - 1], i);
  });
  const s = a.transport.stats();
  assert.equal(s.framesSent, count);
  assert.equal(s.peers['b']?.queuedBytes, 0);
});

test('send() refuses, counts and logs a frame over the frame bound, and a message with the wrong ends', async (t) => {
  const { nodes } = await startCluster(['a', 'b'], { maxFrameBytes: 1000 });
  t.after(closeAll(nodes));
  const [a, b] = nodes as [TestNode, TestNode];
  assert.equal(a.transport.send(b.id, { kind: 'app', channel: 0, payload: new Uint8Array(997) }), true); // 1 + 2 + 997 = 1000
  assert.equal(a.transport.send(b.id, { kind: 'app', channel: 0, payload: new Uint8Array(998) }), false);
  assert.equal(a.transport.stats().peers['b']?.droppedFrames, 1);
  assert.ok(warned(a, /over the frame bound of 1000 bytes/));
  assert.equal(a.transport.send(b.id, { kind: 'raft', message: hb(b.id, a.id, 1) }), false, 'not from this node');
  assert.equal(a.transport.send(b.id, { kind: 'raft', message: hb(a.id, nodeId('c'), 1) }), false, 'not to that peer');
  assert.equal(a.transport.stats().peers['b']?.droppedFrames, 3);
  await waitFor(() => b.received.length === 1, 'the frame at the bound');
});

test('a peer that stops reading is deemed dead after the write stall timeout, and redialed', async (t) => {
  // A fake acceptor: answers the handshake, then never reads again.
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  const fake = net.createServer((sock) => {
    sockets.add(sock);
    accepted++;
    sock.on('error', () => {});
    sock.once('data', () => {
      sock.write(encodeFrame(FrameKind.ack, new Uint8Array([0])));
      sock.pause();
    });
  });
  fake.listen(0, '127.0.0.1');
  await once(fake, 'listening');
  const peers = new Map<NodeId, HostPort>([[nodeId('a'), { host: '127.0.0.1', port: 0 }], [nodeId('b'), { host: '127.0.0.1', port: (fake.address() as net.AddressInfo).port }]]);
  const a = await startNode(nodeId('a'), peers, { writeStallTimeoutMs: 200 });
  t.after(async () => {
    await a.transport.close();
    for (const s of sockets) s.destroy();
    await new Promise((r) => fake.close(r));
  });
  const payload = new Uint8Array(1 << 20);
  for (let i = 0; i < 48; i++) a.transport.send(nodeId('b'), { kind: 'app', channel: 0, payload });
  await waitFor(() => warned(a, /connection to peer b lost: no write progress for 200 ms/), 'the stall is detected', 5000);
  await waitFor(() => accepted >= 2, 'a redial');
  assert.ok((a.transport.stats().peers['b']?.reconnects ?? 0) >= 1);
});

test('fuzz: random bytes, before or after a handshake, never crash a node; only the handshaken peer is heard', async (t) => {
  const { nodes } = await startCluster(['a', 'b', 'c']);
  t.after(closeAll(nodes));
  const [a, b] = nodes as [TestNode, TestNode, TestNode];
  const streams = fc.sample(fc.array(fc.uint8Array({ minLength: 1, maxLength: 64 }), { minLength: 1, maxLength: 4 }), { numRuns: 40, seed: 42 });
  for (const [i, chunks] of streams.entries()) {
    const raw = await rawClient(a, 'c', i % 2 === 0);
    for (const chunk of chunks) raw.sock.write(chunk);
    raw.sock.end();
    await raw.closed;
  }
  assert.ok(a.received.every((r) => r.from === nodeId('c')), 'only frames from the handshaken peer c');
  for (const r of a.received) if (r.frame.kind === 'raft') assert.equal(r.frame.message.from, 'c');
  b.transport.send(a.id, { kind: 'raft', message: hb(b.id, a.id, 1) });
  await waitFor(() => seqs(a, b.id).length === 1, 'the node still works');
});

test('handshake timeouts: a silent dialer is closed; a silent acceptor is redialed', async (t) => {
  const silent = net.createServer((sock) => sock.on('error', () => {}));
  const held = new Set<net.Socket>();
  silent.on('connection', (s) => held.add(s));
  silent.listen(0, '127.0.0.1');
  await once(silent, 'listening');
  const peers = new Map<NodeId, HostPort>([[nodeId('a'), { host: '127.0.0.1', port: 0 }], [nodeId('b'), { host: '127.0.0.1', port: (silent.address() as net.AddressInfo).port }]]);
  const a = await startNode(nodeId('a'), peers, { handshakeTimeoutMs: 100 });
  t.after(async () => {
    await a.transport.close();
    for (const s of held) s.destroy();
    await new Promise((r) => silent.close(r));
  });
  const mute = await rawClient(a, 'b', false);
  await mute.closed;
  assert.ok(warned(a, /no hello from 127\.0\.0\.1:\d+ within 100 ms/));
  a.transport.send(nodeId('b'), { kind: 'app', channel: 0, payload: new Uint8Array(1) });
  await waitFor(() => (a.transport.stats().peers['b']?.reconnects ?? 0) >= 1, 'a redial after the handshake timeout');
  assert.ok(a.lines.some((l) => /cannot connect to peer b: no handshake within 100 ms/.test(l.msg)));
});

test('setPeer adds a peer at run time: its handshake is accepted from then on, and it is dialed', async (t) => {
  const aPeers = new Map<NodeId, HostPort>([[nodeId('a'), { host: '127.0.0.1', port: 0 }]]);
  const a = await startNode(nodeId('a'), aPeers);
  const c = await startNode(nodeId('c'), new Map<NodeId, HostPort>([[nodeId('a'), a.transport.address!]]));
  t.after(closeAll([a, c]));
  assert.equal(a.transport.send(c.id, { kind: 'raft', message: hb(a.id, c.id, 1) }), false, 'unknown before setPeer');
  c.transport.send(a.id, { kind: 'raft', message: hb(c.id, a.id, 1) });
  await waitFor(() => a.transport.stats().refusedHandshakes >= 1, 'refused before setPeer');
  a.transport.setPeer(c.id, c.transport.address!);
  assert.deepEqual(a.transport.peerIds(), [c.id]);
  await waitFor(() => seqs(a, c.id).length === 1, 'c heard after setPeer (c redials with backoff)', 5000);
  assert.equal(a.transport.send(c.id, { kind: 'raft', message: hb(a.id, c.id, 2) }), true);
  await waitFor(() => seqs(c, a.id).length === 1, 'a dials c');
  assert.deepEqual(seqs(c, a.id), [2]);
});

test('setPeer moves a peer: frames queued for the old address go to the new one', async (t) => {
  const b = await startNode(nodeId('b'), new Map<NodeId, HostPort>([[nodeId('a'), { host: '127.0.0.1', port: 1 }]]));
  const a = await startNode(nodeId('a'), new Map<NodeId, HostPort>([[nodeId('b'), { host: '127.0.0.1', port: 1 }]]));
  t.after(closeAll([a, b]));
  for (let i = 0; i < 3; i++) a.transport.send(b.id, { kind: 'raft', message: hb(a.id, b.id, i) });
  await sleep(50);
  assert.equal(b.received.length, 0);
  a.transport.setPeer(b.id, b.transport.address!);
  await waitFor(() => seqs(b, a.id).length === 3, 'queued frames delivered at the new address');
  assert.deepEqual(seqs(b, a.id), [0, 1, 2]);
  a.transport.setPeer(b.id, b.transport.address!); // unchanged: no reconnect
  a.transport.send(b.id, { kind: 'raft', message: hb(a.id, b.id, 3) });
  await waitFor(() => seqs(b, a.id).length === 4, 'still connected');
  assert.equal(a.transport.stats().peers['b']?.connected, true);
});

test('removePeer forgets a peer: sends refused, its connections closed, its handshakes refused', async (t) => {
  const { nodes } = await startCluster(['a', 'b']);
  t.after(closeAll(nodes));
  const [a, b] = nodes as [TestNode, TestNode];
  a.transport.send(b.id, { kind: 'raft', message: hb(a.id, b.id, 1) });
  b.transport.send(a.id, { kind: 'raft', message: hb(b.id, a.id, 1) });
  await waitFor(() => a.received.length === 1 && b.received.length === 1, 'connected both ways');
  a.transport.removePeer(b.id);
  assert.equal(a.transport.send(b.id, { kind: 'raft', message: hb(a.id, b.id, 2) }), false);
  assert.equal(a.transport.stats().peers['b'], undefined);
  assert.deepEqual(a.transport.peerIds(), []);
  // b's connection to a was closed; its redial is refused (the frame may have gone down the closing socket)
  await waitFor(() => b.transport.stats().peers['a']?.connected === false, 'b sees its connection closed');
  b.transport.send(a.id, { kind: 'raft', message: hb(b.id, a.id, 2) });
  await waitFor(() => a.transport.stats().refusedHandshakes >= 1, 'b refused after removal');
  assert.equal(a.received.length, 1);
  // and back again: the queued frame goes through once a knows b
  a.transport.setPeer(b.id, b.transport.address!);
  await waitFor(() => a.received.length === 2, 'b heard again after setPeer', 5000);
});

test('setPartitioned (fault injection) drops frames both ways until healed', async (t) => {
  const { nodes } = await startCluster(['a', 'b']);
  t.after(closeAll(nodes));
  const [a, b] = nodes as [TestNode, TestNode];
  a.transport.send(b.id, { kind: 'raft', message: hb(a.id, b.id, 1) });
  await waitFor(() => b.received.length === 1, 'first frame');
  a.transport.setPartitioned(true);
  assert.equal(a.transport.partitioned, true);
  assert.equal(a.transport.send(b.id, { kind: 'raft', message: hb(a.id, b.id, 2) }), true, 'a partition loses frames silently');
  b.transport.send(a.id, { kind: 'raft', message: hb(b.id, a.id, 3) });
  await sleep(200);
  assert.deepEqual(seqs(b, a.id), [1]);
  assert.equal(a.received.length, 0);
  assert.equal(a.transport.stats().peers['b']?.droppedFrames, 1);
  a.transport.setPartitioned(false);
  a.transport.send(b.id, { kind: 'raft', message: hb(a.id, b.id, 4) });
  b.transport.send(a.id, { kind: 'raft', message: hb(b.id, a.id, 5) });
  await waitFor(() => seqs(b, a.id).length === 2 && a.received.length === 1, 'frames after healing');
  assert.deepEqual(seqs(b, a.id), [1, 4]);
  assert.deepEqual(seqs(a, b.id), [5]);
});

test('a gRPC client, a browser or a TLS client on the peer port: one line saying where clients go, counted, closed; peers unaffected', async (t) => {
  const { nodes } = await startCluster(['a', 'b'], { hints: { client: '127.0.0.1:2379', metrics: '127.0.0.1:2579' } });
  t.after(closeAll(nodes));
  const [a, b] = nodes as [TestNode, TestNode];
  const addr = a.transport.address as HostPort;
  const peerPort = `${addr.host}:${addr.port}`;
  // A real gRPC client (what etcdctl and the etcd3 client are), pointed at the peer port.
  const client = new grpc.Client(peerPort, grpc.credentials.createInsecure());
  const err = await new Promise<grpc.ServiceError | null>((resolve) => client.makeUnaryRequest('/etcdserverpb.KV/Range', (x: Buffer) => x, (x: Buffer) => x,
    Buffer.alloc(0), { deadline: Date.now() + 5000 }, (e) => resolve(e)));
  client.close();
  assert.equal(err?.code, grpc.status.UNAVAILABLE, 'the gRPC call fails: the connection is closed');
  await waitFor(() => warned(a, /gRPC/), 'the gRPC line');
  const grpcLines = a.lines.filter((l) => /gRPC \(HTTP\/2\) client at 127\.0\.0\.1:\d+ connected to the peer port: this is the peer port; clients connect to 127\.0\.0\.1:2379/.test(l.msg));
  const connections = a.transport.stats().malformedFrames;
  assert.ok(connections >= 1);
  assert.equal(grpcLines.length, connections, 'one line per connection, each counted as malformed input');
  assert.ok(!a.lines.some((l) => /length \d+/.test(l.msg)), 'no "malformed frame … length" line');

  const http = net.connect(addr.port, addr.host);
  http.write('GET /dashboard HTTP/1.1\r\nHost: x\r\n\r\n');
  await once(http, 'close');
  assert.ok(warned(a, /an HTTP\/1 request from .* on the peer port: this is the peer port; clients connect to 127\.0\.0\.1:2379, the dashboard and metrics are on http:\/\/127\.0\.0\.1:2579\//));
  const tlsSock = tls.connect({ host: addr.host, port: addr.port, rejectUnauthorized: false });
  tlsSock.on('error', () => {}); // the handshake fails: expected
  await new Promise((resolve) => tlsSock.once('close', resolve));
  assert.ok(warned(a, /a TLS client at .* connected to the peer port, which speaks plain text/));
  assert.equal(a.transport.stats().malformedFrames, connections + 2);

  b.transport.send(a.id, { kind: 'raft', message: hb(b.id, a.id, 7) });
  await waitFor(() => seqs(a, b.id).includes(7), 'the peer still gets through');
});
