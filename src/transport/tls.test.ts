// Mutual TLS between TcpTransports, with a CA and per-node certificates made
// by openssl for this test: nodes with certificates of the cluster's CA talk;
// a dialer whose certificate comes from another CA is refused, and the
// listener logs and counts it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nodeId, type NodeId } from '../protocol/ids.js';
import type { HostPort } from './tcp.js';
import { makePki, sleep, startNode, waitFor, WARN } from './test-util.js';

test('mutual TLS: nodes of one CA exchange frames; a dialer with another CA\'s certificate is refused', async (t) => {
  const pki = makePki(['a', 'b']);
  const rogue = makePki(['c']);
  const tlsOf = (cert: { cert: string; key: string } | undefined) => ({ ca: pki.ca, cert: cert!.cert, key: cert!.key });
  const peers = new Map<NodeId, HostPort>(['a', 'b', 'c'].map((n) => [nodeId(n), { host: '127.0.0.1', port: 0 }]));
  const a = await startNode(nodeId('a'), peers, { tls: tlsOf(pki.certs.get('a')) });
  const b = await startNode(nodeId('b'), peers, { tls: tlsOf(pki.certs.get('b')) });
  // c trusts the cluster's CA (so it accepts a's server certificate) but presents a certificate of another CA
  const c = await startNode(nodeId('c'), peers, { tls: tlsOf(rogue.certs.get('c')) });
  t.after(() => Promise.all([a, b, c].map((n) => n.transport.close())).then(() => undefined));

  a.transport.send(b.id, { kind: 'raft', message: { type: 'timeoutNow', from: a.id, to: b.id, term: 3 } });
  b.transport.send(a.id, { kind: 'app', channel: 2, payload: new Uint8Array([4, 2]) });
  await waitFor(() => a.received.length === 1 && b.received.length === 1, 'frames over TLS');
  assert.deepEqual(b.received, [{ from: a.id, frame: { kind: 'raft', message: { type: 'timeoutNow', from: a.id, to: b.id, term: 3 } } }]);
  assert.deepEqual(a.received, [{ from: b.id, frame: { kind: 'app', channel: 2, payload: new Uint8Array([4, 2]) } }]);
  assert.equal(a.transport.stats().peers['b']?.connected, true);

  c.transport.send(a.id, { kind: 'raft', message: { type: 'timeoutNow', from: c.id, to: a.id, term: 3 } });
  await waitFor(() => a.transport.stats().refusedHandshakes >= 1, 'the listener refuses the rogue certificate');
  assert.ok(a.lines.some((l) => l.level === WARN && /refused a TLS connection from .*TLS handshake failed/.test(l.msg)));
  await sleep(100);
  assert.equal(a.received.length, 1, 'nothing from c');
  assert.equal(c.transport.stats().peers['a']?.connected, false);
  assert.ok(c.lines.some((l) => l.level === WARN && /cannot connect to peer a: closed by the peer before the handshake completed/.test(l.msg)));
  assert.ok((c.transport.stats().peers['a']?.reconnects ?? 0) >= 1, 'c keeps backing off and retrying');
});

test('a plain TCP dialer cannot talk to a TLS listener', async (t) => {
  const pki = makePki(['a']);
  const peers = new Map<NodeId, HostPort>(['a', 'b'].map((n) => [nodeId(n), { host: '127.0.0.1', port: 0 }]));
  const a = await startNode(nodeId('a'), peers, { tls: { ca: pki.ca, ...pki.certs.get('a')! } });
  const b = await startNode(nodeId('b'), peers);
  t.after(() => Promise.all([a, b].map((n) => n.transport.close())).then(() => undefined));
  b.transport.send(a.id, { kind: 'raft', message: { type: 'timeoutNow', from: b.id, to: a.id, term: 1 } });
  await waitFor(() => a.transport.stats().refusedHandshakes >= 1, 'the TLS listener refuses plain TCP');
  assert.equal(a.received.length, 0);
  assert.equal(b.transport.stats().peers['a']?.connected, false);
});

test('verifyNodeIds: a cluster certificate cannot speak for another node, on either side', async (t) => {
  const pki = makePki(['a', 'b']);
  const tlsOf = (name: string) => ({ ca: pki.ca, ...pki.certs.get(name)!, verifyNodeIds: true });
  const peers = new Map<NodeId, HostPort>(['a', 'b', 'c'].map((n) => [nodeId(n), { host: '127.0.0.1', port: 0 }]));
  const a = await startNode(nodeId('a'), peers, { tls: tlsOf('a') });
  const b = await startNode(nodeId('b'), peers, { tls: tlsOf('b') });
  const c = await startNode(nodeId('c'), peers, { tls: tlsOf('b') }); // node c holding b's certificate
  t.after(() => Promise.all([a, b, c].map((n) => n.transport.close())).then(() => undefined));

  a.transport.send(b.id, { kind: 'raft', message: { type: 'timeoutNow', from: a.id, to: b.id, term: 1 } });
  await waitFor(() => b.received.length === 1, 'a → b with matching certificates');

  c.transport.send(a.id, { kind: 'raft', message: { type: 'timeoutNow', from: c.id, to: a.id, term: 1 } });
  await waitFor(() => a.transport.stats().refusedHandshakes >= 1 && c.transport.stats().refusedHandshakes >= 1, 'a refuses c as a dialer, and c hears why');
  assert.ok(a.lines.some((l) => l.level === WARN && /refused a connection from .*: the TLS certificate names \["b","localhost"\], not node "c"/.test(l.msg)));
  assert.ok(c.lines.some((l) => l.level === WARN && /^peer a refused: the TLS certificate names/.test(l.msg)));

  a.transport.send(c.id, { kind: 'raft', message: { type: 'timeoutNow', from: a.id, to: c.id, term: 1 } });
  await waitFor(() => a.lines.some((l) => l.level === WARN && /^refused peer c: the TLS certificate names \["b","localhost"\], not node "c"$/.test(l.msg)), 'a refuses c as a listener');
  await sleep(50);
  assert.equal(c.received.length, 0);
  assert.equal(a.received.length, 0);
});
