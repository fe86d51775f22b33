// A slow follower must not make the leader's memory grow without bound: one
// follower is stopped (SIGSTOP) while 48 MiB of writes go through the other
// two. The leader keeps committing, what it holds for the stopped follower
// stays within the transport's per-peer bound, its resident memory stays
// bounded, and the follower catches up after SIGCONT.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatAddress } from '../../src/server/config.js';
import { EtcdTestClient } from './etcd-client.js';
import { TestCluster, type TestNode } from './harness.js';

async function metric(n: TestNode, name: string, label?: string): Promise<number> {
  const text = await (await fetch(`http://${formatAddress(n.member.metrics)}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name) && (label === undefined || l.includes(label)));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

for (const mode of ['push', 'pull'] as const) {
  test(`a stopped follower costs the leader bounded memory (${mode} mode)`, { timeout: 120_000 }, async () => {
    const c = await TestCluster.start({ nodes: 3, mode });
    const clients: EtcdTestClient[] = [];
    try {
      const leader = await c.waitForLeader();
      const slow = c.nodes.find((n) => n !== leader) as TestNode;
      slow.pause();
      const value = 'x'.repeat(64 << 10);
      let maxQueued = 0;
      let maxRss = 0;
      for (let i = 0; i < 8; i++) clients.push(new EtcdTestClient(leader.endpoint, 20_000));
      for (let round = 0; round < 12; round++) {
        await Promise.all(clients.map((cl, i) => Promise.all(Array.from({ length: 8 }, (_, j) => cl.put(`big/${round}/${i}/${j}`, value)))));
        maxQueued = Math.max(maxQueued, await metric(leader, 'quorumlog_peer_inflight_bytes', `peer="${slow.id}"`));
        maxRss = Math.max(maxRss, await metric(leader, 'process_resident_memory_bytes'));
      }
      console.log(`${mode}: 48 MiB written with ${slow.id} stopped; leader's queue to it peaked at ${(maxQueued / 2 ** 20).toFixed(1)} MiB, its RSS at ${(maxRss / 2 ** 20).toFixed(0)} MiB`);
      assert.ok(maxQueued <= 64 * 2 ** 20 + (1 << 20), `queue to the stopped follower reached ${maxQueued} bytes`);
      assert.ok(maxRss < 600 * 2 ** 20, `leader RSS reached ${maxRss} bytes`);
      slow.resume();
      const target = (await leader.status())?.commitIndex ?? 0;
      const t0 = Date.now();
      await c.waitFor(slow, (s) => s.appliedIndex >= target, 60_000, 'the stopped follower catching up');
      console.log(`${mode}: ${slow.id} caught up ${target} entries in ${Date.now() - t0} ms after SIGCONT`);
      const sc = new EtcdTestClient(slow.endpoint, 10_000);
      clients.push(sc);
      assert.equal(await sc.countPrefix('big/', { serializable: true }), 12 * 64);
    } finally {
      for (const cl of clients) cl.close();
      await c.close();
    }
  });
}
