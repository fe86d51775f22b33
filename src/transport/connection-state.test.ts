// The transports' connection state (isConnected, onConnectionChange), which
// the runtime uses to hold client requests rather than forward them to a
// leader it cannot reach: TCP over real sockets on 127.0.0.1 (a peer that
// dies and comes back, fault injection, removePeer), and the in-memory
// transport (a peer that stops).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NodeId } from '../protocol/ids.js';
import { nodeId } from '../protocol/ids.js';
import type { Message } from '../protocol/messages.js';
import { MemoryNetwork, MemoryTransport } from './memory.js';
import { startCluster, startNode, waitFor, type TestNode } from './test-util.js';

const hb = (from: NodeId, to: NodeId): Message => ({ type: 'heartbeat', from, to, term: 1, commit: 0, readSeq: 0 });

test('TCP: isConnected and the connection events follow the outbound connection, fault injection and removePeer', async (t) => {
  const { nodes, peers } = await startCluster(['a', 'b']);
  const [a, b] = nodes as [TestNode, TestNode];
  const opened: TestNode[] = [a];
  t.after(() => Promise.all(opened.map((n) => n.transport.close())).then(() => undefined));
  const events: string[] = [];
  a.transport.onConnectionChange((peer, up) => events.push(`${peer} ${up ? 'up' : 'down'}`));
  assert.equal(a.transport.isConnected(b.id), false, 'not dialed yet');
  assert.equal(a.transport.isConnected(nodeId('nobody')), false);
  a.transport.send(b.id, { kind: 'raft', message: hb(a.id, b.id) });
  await waitFor(() => events.length === 1, 'the connection comes up');
  assert.deepEqual(events, ['b up']);
  assert.equal(a.transport.isConnected(b.id), true);

  const port = b.transport.address?.port ?? 0;
  await b.transport.close(); // as a kill -9 would: the socket closes
  await waitFor(() => events.length === 2, 'the loss is seen');
  assert.deepEqual(events.slice(1), ['b down']);
  assert.equal(a.transport.isConnected(b.id), false);

  const b2 = await startNode(b.id, peers, {}, port);
  opened.push(b2);
  await waitFor(() => events.length === 3, 'the redial succeeds');
  assert.deepEqual(events.slice(2), ['b up']);

  a.transport.setPartitioned(true);
  assert.equal(a.transport.isConnected(b.id), false);
  a.transport.setPartitioned(true); // no change, no event
  a.transport.setPartitioned(false);
  assert.equal(a.transport.isConnected(b.id), true);
  a.transport.removePeer(b.id);
  assert.equal(a.transport.isConnected(b.id), false);
  assert.deepEqual(events.slice(3), ['b down', 'b up', 'b down']);
});

test('memory: a peer that stops is not connected, and its peers are told; one that starts again is', async () => {
  const net = new MemoryNetwork();
  const [x, y] = [nodeId('x'), nodeId('y')];
  const tx = new MemoryTransport(net, x, [y]);
  let ty = new MemoryTransport(net, y, [x]);
  const events: string[] = [];
  tx.onConnectionChange((peer, up) => events.push(`${peer} ${up ? 'up' : 'down'}`));
  await tx.start();
  assert.equal(tx.isConnected(y), false);
  await ty.start();
  assert.equal(tx.isConnected(y), true);
  net.isolate(x, [x, y]);
  assert.equal(tx.isConnected(y), true, 'a silent partition does not show');
  net.heal();
  await ty.close();
  assert.equal(tx.isConnected(y), false);
  ty = new MemoryTransport(net, y, [x]);
  await ty.start();
  await waitFor(() => events.length === 3, 'the events');
  assert.deepEqual(events, ['y up', 'y down', 'y up']);
  await Promise.all([tx.close(), ty.close()]);
});
