// Automatic compaction keeps the key-value history bounded: with a retention
// of 50 revisions, after 300 writes the leader has compacted through the log,
// reads at an old revision get etcd's "compacted" error on every node, and
// recent revisions are still readable.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { EtcdTestClient } from './etcd-client.js';
import { TestCluster } from './harness.js';

test('the leader compacts the key-value history past the retention', { timeout: 60_000 }, async () => {
  const c = await TestCluster.start({ nodes: 3, mode: 'pull', extra: { historyRetentionRevisions: 50 } });
  const clients: EtcdTestClient[] = [];
  try {
    const leader = await c.waitForLeader();
    const lc = new EtcdTestClient(leader.endpoint);
    clients.push(lc);
    let revision = 0;
    for (let i = 0; i < 300; i++) revision = await lc.put(`h${i % 10}`, `v${i}`);
    const get = (endpoint: string, rev: number): ReturnType<typeof spawnSync> => spawnSync('etcdctl', ['--endpoints', endpoint, 'get', 'h1', '--rev', String(rev)],
      { env: { ...process.env, ETCDCTL_API: '3' }, encoding: 'utf8', timeout: 10_000 });
    const deadline = Date.now() + 15_000;
    let old = get(leader.endpoint, 5);
    while (old.status === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      old = get(leader.endpoint, 5);
    }
    assert.match(String(old.stderr), /required revision has been compacted/);
    for (const n of c.nodes) {
      assert.match(String(get(n.endpoint, 5).stderr), /required revision has been compacted/, `${n.id} still has revision 5`);
      const recent = get(n.endpoint, revision - 20);
      assert.equal(recent.status, 0, String(recent.stderr));
    }
  } finally {
    for (const x of clients) x.close();
    await c.close();
  }
});
