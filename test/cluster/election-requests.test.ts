// Requests that reach the cluster while it elects (issue 17, README step 3):
// kill -9 of the leader, then at once a put through a follower (our own
// one-endpoint client with a 5 s deadline, on a connection opened before the
// kill) and, separately, `etcdctl put` with every endpoint, as the README's
// tour does. In both modes the put must succeed as soon as a new leader
// exists, and the value must be readable from that leader.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { runEtcdctl } from '../../src/server/etcd/test-util.js';
import { EtcdTestClient } from './etcd-client.js';
import { retry, TestCluster, type TestNode } from './harness.js';

/**
 * The bound on a put sent right after the kill: the client's deadline is 5 s
 * and a new leader is elected 0.5-1.5 s after the kill (election timeout
 * 500-1000 ms, a pre-vote round, then the vote). 4 s leaves 2.5 s for a slow,
 * shared machine and still fails if the put waits out the deadline.
 */
const PUT_AFTER_KILL_MAX_MS = 4000;

/** The client's deadline, etcdctl's default --command-timeout. */
const CLIENT_DEADLINE_MS = 5000;

for (const mode of ['push', 'pull'] as const) {
  describe(`requests during an election, ${mode} mode`, { concurrency: false }, () => {
    test('a put and a linearizable read through a follower sent right after kill -9 of the leader are held and then served by the new leader', { timeout: 120_000 }, async (t) => {
      const c = await TestCluster.start({ nodes: 3, mode });
      const clients = new Map<string, EtcdTestClient>(c.nodes.map((n) => [n.id, new EtcdTestClient(n.endpoint, CLIENT_DEADLINE_MS)]));
      const client = (n: TestNode): EtcdTestClient => clients.get(n.id) as EtcdTestClient;
      try {
        const leader = await c.waitForLeader();
        const follower = c.nodes.find((n) => n !== leader) as TestNode;
        // Warm the follower's connection and its forwarding path, so the measured put leaves at once.
        await retry('put before the kill', () => client(follower).put('hello', 'world'));
        assert.equal(await client(follower).get('hello'), 'world');

        await leader.kill9();
        const t0 = performance.now();
        const put = client(follower).put('hello', 'again').then(() => performance.now() - t0);
        const read = client(follower).get('hello').then((v) => ({ v, ms: performance.now() - t0 }));
        const putMs = await put;
        const r = await read;
        t.diagnostic(`${mode}: put acknowledged ${putMs.toFixed(0)} ms after the kill, read answered after ${r.ms.toFixed(0)} ms`);
        assert.ok(putMs < PUT_AFTER_KILL_MAX_MS, `the put took ${putMs.toFixed(0)} ms (client deadline ${CLIENT_DEADLINE_MS} ms)`);
        // The read was sent after the put, so it sees either value, but never fails and never anything else.
        assert.ok(r.v === 'world' || r.v === 'again', `the read after the kill returned ${String(r.v)}`);

        const next = await c.waitForLeader(20_000, [leader.id]);
        assert.notEqual(next.id, leader.id);
        assert.equal(await client(next).get('hello'), 'again', 'the new leader does not have the write');
        assert.equal(await client(follower).get('hello'), 'again');
      } finally {
        for (const cl of clients.values()) cl.close();
        await c.close();
      }
    });

    test('etcdctl put with every endpoint, right after kill -9 of the leader, succeeds (README step 3)', { timeout: 120_000 }, async (t) => {
      const probe = spawnSync('etcdctl', ['version'], { env: { ...process.env, ETCDCTL_API: '3' } });
      if (probe.error !== undefined || probe.status !== 0) throw new Error('etcdctl is not installed: run scripts/system-deps.sh');
      const c = await TestCluster.start({ nodes: 3, mode });
      try {
        const leader = await c.waitForLeader();
        const put0 = await retry('etcdctl put before the kill', async () => {
          const r = await runEtcdctl(c.endpoints, ['put', 'hello', 'world']);
          if (r.code !== 0) throw new Error(r.stderr);
          return r;
        });
        assert.equal(put0.stdout.trim(), 'OK');

        await leader.kill9();
        const t0 = performance.now();
        const r = await runEtcdctl(c.endpoints, ['put', 'hello', 'again'], { commandTimeout: `${CLIENT_DEADLINE_MS / 1000}s` });
        const ms = performance.now() - t0;
        t.diagnostic(`${mode}: etcdctl put exited ${String(r.code)} after ${ms.toFixed(0)} ms (process start included): ${r.stdout.trim()} ${r.stderr.trim()}`);
        assert.equal(r.code, 0, `etcdctl put failed after ${ms.toFixed(0)} ms: ${r.stderr}`);
        assert.equal(r.stdout.trim(), 'OK');
        // etcdctl's own start-up is in this figure too, hence the same wide bound as above.
        assert.ok(ms < PUT_AFTER_KILL_MAX_MS, `etcdctl put took ${ms.toFixed(0)} ms`);

        const next = await c.waitForLeader(20_000, [leader.id]);
        const got = await runEtcdctl([next.endpoint], ['get', 'hello', '--print-value-only']);
        assert.equal(got.code, 0, got.stderr);
        assert.equal(got.stdout.trim(), 'again', 'the new leader does not have the write');
      } finally {
        await c.close();
      }
    });
  });
}
