// Client requests while the leader changes (issue 17; docs/CLUSTER.md,
// "Requests during an election"), on three NodeRuntimes over an in-memory
// network: a request that reaches a follower of a stopped leader is held and
// served by the next leader; a forwarded write whose answer was lost, and a
// write proposed by a leader that was cut off, are settled by the next
// leader's first entry and applied exactly once; a write whose leader is
// gone for longer than the orphan grace fails with LeaderChangedError
// ('unknown') long before its deadline.

import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { LeaderChangedError } from './errors.js';
import { startMemoryCluster } from './memory-cluster.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

/** Client deadline of these tests: long, so that every outcome below comes from the log, never from a time-out. */
const REQUEST_TIMEOUT_MS = 10_000;

async function cluster(mode: 'push' | 'pull', orphanGraceMs: number) {
  const c = await startMemoryCluster(mode, { seed: 21, requestTimeoutMs: REQUEST_TIMEOUT_MS, orphanGraceMs });
  cleanups.push(() => c.close());
  return c;
}

const count = (xs: readonly string[], x: string): number => xs.filter((y) => y === x).length;

for (const mode of ['push', 'pull'] as const) {
  test(`${mode}: a write and a read that reach a follower of a stopped leader are held, then served by the next leader`, async () => {
    const c = await cluster(mode, 60_000);
    const old = await c.leader();
    const f = c.nodes.find((n) => n !== old) as (typeof c.nodes)[number];
    await f.runtime.submit(enc('before'));
    await old.runtime.stop();
    // The follower still takes `old` for its leader, but its connection is down: nothing is forwarded into the void.
    assert.equal(f.runtime.leaderId(), old.id);
    const write = f.runtime.submit(enc('held'));
    const read = f.runtime.readBarrier();
    assert.equal(await write, 2);
    await read;
    const next = await c.leader([old.id]);
    const [a, b] = await c.settled(c.nodes.filter((n) => n !== old));
    assert.deepEqual(a, ['before', 'held']);
    assert.deepEqual(b, a);
    assert.equal(f.runtime.metrics.timedOut + next.runtime.metrics.timedOut, 0);
  });

  test(`${mode}: a write and a read forwarded just before the leader stops are settled by the next leader, the write applied once`, async () => {
    const c = await cluster(mode, 60_000);
    const old = await c.leader();
    const f = c.nodes.find((n) => n !== old) as (typeof c.nodes)[number];
    await f.runtime.submit(enc('before'));
    const forwardedBefore = f.runtime.metrics.forwardedWrites;
    const write = f.runtime.submit(enc('lost answer'));
    const read = f.runtime.readBarrier();
    await turn(); // the follower's round forwards both; their frames are delivered on a later turn...
    assert.equal(f.runtime.metrics.forwardedWrites, forwardedBefore + 1, 'the write was not forwarded before the stop');
    await old.runtime.stop(); // ...to a leader that is gone by then
    assert.equal(await write, 2);
    await read;
    assert.ok(f.runtime.metrics.reproposedWrites >= 1, 'the write was not proposed again');
    const [a, b] = await c.settled(c.nodes.filter((n) => n !== old));
    assert.deepEqual(a, ['before', 'lost answer']);
    assert.deepEqual(b, a);
  });

  test(`${mode}: a forwarded write whose answer the leader could not send is applied exactly once, by the next leader`, async () => {
    const c = await cluster(mode, 60_000);
    const old = await c.leader();
    const [f, g] = c.nodes.filter((n) => n !== old) as [(typeof c.nodes)[number], (typeof c.nodes)[number]];
    await f.runtime.submit(enc('before'));
    // The old leader still hears everyone but reaches nobody: it proposes the forwarded write, and its answer and
    // its entries are lost; the other two elect a leader whose log does not have the write.
    c.net.cutLink(old.id, f.id);
    c.net.cutLink(old.id, g.id);
    const result = await f.runtime.submit(enc('w'));
    assert.equal(result, 2, 'the write is the second command applied');
    assert.ok(f.runtime.metrics.reproposedWrites >= 1, 'the write was not proposed again');
    c.net.heal();
    const lists = await c.settled(c.nodes);
    for (const items of lists) assert.deepEqual(items, ['before', 'w']);
  });

  test(`${mode}: a write on a leader that was cut off is proposed again once it hears of the next leader, and applied once`, async () => {
    const c = await cluster(mode, 60_000);
    const old = await c.leader();
    await old.runtime.submit(enc('before'));
    c.net.isolate(old.id, c.ids);
    const write = old.runtime.submit(enc('w'));
    const next = await c.leader([old.id]);
    assert.equal(await next.runtime.submit(enc('after')), 2);
    c.net.heal();
    assert.equal(await write, 3, 'the write applied after "after"');
    assert.ok(old.runtime.metrics.reproposedWrites >= 1, 'the write was not proposed again');
    const lists = await c.settled(c.nodes);
    for (const items of lists) assert.deepEqual(items, ['before', 'after', 'w']);
  });

  test(`${mode}: a write whose leader is gone for longer than the orphan grace fails with LeaderChangedError('unknown'), not at its deadline`, async () => {
    const c = await cluster(mode, 300);
    const old = await c.leader();
    await old.runtime.submit(enc('before'));
    c.net.isolate(old.id, c.ids);
    const t0 = performance.now();
    const err = await old.runtime.submit(enc('w')).then(() => null, (e: unknown) => e);
    const ms = performance.now() - t0;
    assert.ok(err instanceof LeaderChangedError, `expected LeaderChangedError, got ${String(err)}`);
    assert.equal(err.outcome, 'unknown');
    // Step-down (an election timeout, <= 100 ms here) plus the 300 ms grace; the deadline is 10 s. Half the deadline
    // is a wide margin for a loaded machine that still tells the grace from the deadline.
    assert.ok(ms < REQUEST_TIMEOUT_MS / 2, `failed after ${ms.toFixed(0)} ms`);
    assert.equal(old.runtime.metrics.leaderChangedUnknown, 1);
    assert.equal(old.runtime.metrics.timedOut, 0);
    const next = await c.leader([old.id]);
    await next.runtime.submit(enc('after'));
    c.net.heal();
    // Its outcome was unknown to the client; here the entry was replaced, and nothing proposed it again.
    const lists = await c.settled(c.nodes);
    for (const items of lists) assert.deepEqual(items, ['before', 'after']);
    assert.equal(count(lists[0] ?? [], 'w'), 0);
  });
}
