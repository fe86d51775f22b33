// The runtime in one process: three NodeRuntimes on real stores (temporary
// directories, fsync on) over an in-memory network that can partition them.
// Checks what the cluster tests cannot aim at precisely: a write through a
// follower resolves with the state machine's own result, a batch of
// concurrent writes shares entries, an isolated old leader never acknowledges
// a write or a read, full queues refuse at once, and deadlines fire.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, test } from 'node:test';
import { pino } from 'pino';
import { nodeId } from '../protocol/ids.js';
import { NodeFileSystem } from '../storage/fs.js';
import { MemoryNetwork, MemoryTransport } from '../transport/memory.js';
import { Prng } from '../util/prng.js';
import { LeaderChangedError, NoLeaderError, RequestTimeoutError, TooManyRequestsError } from './errors.js';
import { ListMachine, startMemoryCluster } from './memory-cluster.js';
import { NodeStorage } from './node-storage.js';
import { NodeRuntime } from './runtime.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function cluster(mode: 'push' | 'pull', opts: { maxPendingRequests?: number; requestTimeoutMs?: number } = {}) {
  const c = await startMemoryCluster(mode, {
    seed: 1, requestTimeoutMs: opts.requestTimeoutMs ?? 2000,
    ...(opts.maxPendingRequests !== undefined ? { maxPendingRequests: opts.maxPendingRequests } : {}),
  });
  cleanups.push(() => c.close());
  return c;
}

for (const mode of ['push', 'pull'] as const) {
  test(`${mode}: a write through a follower resolves with the state machine's result; concurrent writes share entries`, async () => {
    const c = await cluster(mode);
    const l = await c.leader();
    const f = c.nodes.find((n) => n !== l) as (typeof c.nodes)[number];
    assert.equal(await f.runtime.submit(enc('first')), 1);
    assert.equal(await l.runtime.submit(enc('second')), 2);
    const before = l.runtime.metrics.entriesProposedTotal;
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => f.runtime.submit(enc(`w${i}`))));
    assert.deepEqual([...results].sort((x, y) => (x as number) - (y as number)), Array.from({ length: 100 }, (_, i) => i + 3));
    assert.ok(l.runtime.metrics.entriesProposedTotal - before <= 5, 'a hundred concurrent writes should take a few entries');
    await f.runtime.readBarrier();
    assert.equal(f.sm.items.length, 102);
  });

  test(`${mode}: an isolated old leader acknowledges neither writes nor reads`, async () => {
    const c = await cluster(mode, { requestTimeoutMs: 600 });
    const old = await c.leader();
    await old.runtime.submit(enc('before'));
    c.net.isolate(old.id, c.ids);
    const write = old.runtime.submit(enc('lost?'));
    const read = old.runtime.readBarrier();
    await assert.rejects(write, (e: unknown) => e instanceof RequestTimeoutError || e instanceof NoLeaderError || e instanceof LeaderChangedError);
    await assert.rejects(read, (e: unknown) => e instanceof RequestTimeoutError || e instanceof NoLeaderError || e instanceof LeaderChangedError);
    const next = await c.leader([old.id]);
    assert.equal(await next.runtime.submit(enc('after')), 2);
    c.net.heal();
    // Once healed the old leader follows, and its state machine never saw the write it could not commit.
    for (let i = 0; i < 400 && old.sm.items.length < 2; i++) await sleep(5);
    assert.deepEqual(old.sm.items, ['before', 'after']);
  });
}

test('a full queue refuses at once with TooManyRequestsError', async () => {
  const c = await cluster('push', { maxPendingRequests: 5 });
  const l = await c.leader();
  c.net.isolate(l.id, c.ids); // nothing can commit, so the queue and the log fill
  const accepted = Array.from({ length: 5 }, (_, i) => l.runtime.submit(enc(`q${i}`)).catch((e: unknown) => e));
  const refused = await l.runtime.submit(enc('one too many')).catch((e: unknown) => e);
  assert.ok(refused instanceof TooManyRequestsError, String(refused));
  c.net.heal();
  for (const r of await Promise.all(accepted)) assert.ok(typeof r === 'number' || r instanceof Error);
});

for (const mode of ['push', 'pull'] as const) {
  test(`${mode}: changeMembership adds an observer, setAutoPromote promotes it once caught up, a removed node knows it`, async () => {
    const ids = ['a', 'b', 'c', 'd'].map(nodeId);
    const voters = ids.slice(0, 3);
    const net = new MemoryNetwork();
    const dir = mkdtempSync(join(tmpdir(), 'quorumlog-runtime-members-'));
    const nodes = ids.map((id, i) => {
      const runtime = new NodeRuntime({
        // d joins: it lists itself as an observer, never as a voter (docs/MEMBERSHIP.md)
        raft: { id, voters, ...(id === 'd' ? { observers: [id] } : {}), replication: mode, random: new Prng(i + 11), electionTimeoutMinTicks: 10, electionTimeoutMaxTicks: 20, heartbeatIntervalTicks: 2, fetchMaxWaitTicks: 4 },
        storage: new NodeStorage(new NodeFileSystem(), join(dir, id)),
        transport: new MemoryTransport(net, id, ids.filter((x) => x !== id)),
        stateMachine: new ListMachine(),
        logger: pino({ level: 'silent' }),
        tickMs: 5,
        requestTimeoutMs: 3000,
      });
      return { id, runtime };
    });
    await Promise.all(nodes.map((n) => n.runtime.start()));
    cleanups.push(async () => {
      await Promise.all(nodes.map((n) => n.runtime.stop()));
      rmSync(dir, { recursive: true, force: true });
    });
    let leader = nodes[0] as (typeof nodes)[number];
    for (let i = 0; i < 400; i++) {
      const l = nodes.find((n) => n.runtime.core.role.kind === 'leader');
      if (l !== undefined) { leader = l; break; }
      await sleep(5);
    }
    assert.equal(leader.runtime.core.role.kind, 'leader');
    await leader.runtime.submit(enc('x')); // the leader has committed an entry of its term
    const follower = nodes.find((n) => n.id !== leader.id && n.id !== 'd') as (typeof nodes)[number];
    await assert.rejects(follower.runtime.changeMembership({ kind: 'addObserver', node: nodeId('d') }), { name: 'NotLeaderError' });
    const configs: number[] = [];
    leader.runtime.onConfigurationChange(() => configs.push(leader.runtime.configuration().index));
    const added = leader.runtime.changeMembership({ kind: 'addObserver', node: nodeId('d') });
    await assert.rejects(leader.runtime.changeMembership({ kind: 'remove', node: follower.id }), { name: 'ConfigChangeInProgressError' });
    const { index } = await added;
    assert.ok(leader.runtime.core.log.commit >= index);
    assert.deepEqual(leader.runtime.configuration().config.observers, ['d']);
    assert.ok(configs.includes(index));
    leader.runtime.setAutoPromote((n) => n === 'd');
    for (let i = 0; i < 400 && !leader.runtime.configuration().config.voters.includes(nodeId('d')); i++) await sleep(5);
    assert.deepEqual([...leader.runtime.configuration().config.voters].sort(), ['a', 'b', 'c', 'd']);
    for (let i = 0; i < 400 && !leader.runtime.configuration().committed; i++) await sleep(5);
    await assert.rejects(leader.runtime.changeMembership({ kind: 'promote', node: nodeId('d') }), { name: 'InvalidConfigChangeError' });
    await leader.runtime.changeMembership({ kind: 'remove', node: follower.id });
    if (mode === 'push') {
      // the leader no longer sends to it, so it never learns of the removal: a member tells it (src/server/membership.ts)
      await sleep(100);
      assert.equal(follower.runtime.removed, false);
      follower.runtime.confirmRemoved(follower.runtime.configuration().index - 1, leader.id);
      assert.equal(follower.runtime.removed, false, 'not for a configuration older than its own');
      follower.runtime.confirmRemoved(leader.runtime.configuration().index, leader.id);
    }
    for (let i = 0; i < 400 && !follower.runtime.removed; i++) await sleep(5);
    assert.equal(follower.runtime.removed, true, `${follower.id} knows it was removed`);
    assert.equal(leader.runtime.removed, false);
    assert.equal((nodes[3] as (typeof nodes)[number]).runtime.removed, false);
  });
}
