// An observer (a non-voting member) that starts late with an empty data
// directory catches up — through a snapshot, since the leader has compacted
// its log — in both modes, then follows new writes and serves reads. Also:
// etcdctl and the etcd3 npm client work against a running cluster.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { Etcd3 } from 'etcd3';
import { fetchStatus } from '../../src/cli/cluster.js';
import { formatAddress } from '../../src/server/config.js';
import { EtcdTestClient } from './etcd-client.js';
import { TestCluster, type TestNode } from './harness.js';

async function metric(n: TestNode, name: string): Promise<number> {
  const res = await fetch(`http://${formatAddress(n.member.metrics)}/metrics`);
  const text = await res.text();
  const line = text.split('\n').find((l) => l.startsWith(name + '{') || l.startsWith(name + ' '));
  return line === undefined ? NaN : Number(line.split(' ').pop());
}

for (const mode of ['push', 'pull'] as const) {
  test(`a late observer with an empty data directory catches up through a snapshot (${mode} mode)`, { timeout: 120_000 }, async () => {
    const c = await TestCluster.start({ nodes: 3, mode, observers: 1, extra: { snapshotEveryEntries: 20 } });
    const leaderClient = new EtcdTestClient(c.nodes[0]?.endpoint ?? '');
    const clients: EtcdTestClient[] = [leaderClient];
    try {
      const leader = await c.waitForLeader();
      const lc = new EtcdTestClient(leader.endpoint);
      clients.push(lc);
      for (let i = 0; i < 120; i++) await lc.put(`obs/${String(i).padStart(3, '0')}`, `v${i}`);
      assert.ok(await metric(leader, 'quorumlog_snapshots_taken_total') >= 1, 'the leader never compacted its log');
      const observer = c.node('o1');
      observer.start();
      const target = (await leader.status())?.commitIndex ?? 0;
      await c.waitFor(observer, (s) => s.appliedIndex >= target, 30_000, 'the observer catching up');
      assert.ok(await metric(observer, 'quorumlog_snapshots_installed_total') >= 1, 'the observer did not catch up through a snapshot');
      const oc = new EtcdTestClient(observer.endpoint);
      clients.push(oc);
      assert.equal(await oc.countPrefix('obs/', { serializable: true }), 120);
      // It keeps following, and a linearizable read through it sees the newest write.
      await lc.put('obs/new', 'fresh');
      assert.equal(await oc.get('obs/new'), 'fresh');
      const st = await fetchStatus(observer.member);
      assert.equal(st?.role, 'observer');
      const ls = await leader.status();
      assert.ok(ls?.replication.some((r) => r.id === 'o1' && !r.voter), 'the leader does not track the observer');
    } finally {
      for (const cl of clients) cl.close();
      await c.close();
    }
  });
}

test('etcdctl and the etcd3 npm client work against a cluster', { timeout: 120_000 }, async () => {
  const c = await TestCluster.start({ nodes: 3, mode: 'pull' });
  const etcd = new Etcd3({ hosts: c.endpoints.map((e) => `http://${e}`) });
  try {
    await c.waitForLeader();
    const ctl = (...args: string[]): string => execFileSync('etcdctl', ['--endpoints', c.endpoints.join(','), ...args],
      { env: { ...process.env, ETCDCTL_API: '3' }, encoding: 'utf8', timeout: 20_000 });
    assert.match(ctl('put', 'greeting', 'hello'), /OK/);
    assert.equal(ctl('get', 'greeting', '--print-value-only').trim(), 'hello');
    const members = ctl('member', 'list');
    for (const n of c.nodes) assert.match(members, new RegExp(`\\b${n.id}\\b`));
    const status = ctl('endpoint', 'status', '-w', 'json');
    assert.equal((JSON.parse(status) as unknown[]).length, 3);
    ctl('endpoint', 'health');
    assert.equal(await etcd.get('greeting').string(), 'hello');
    await etcd.put('counter').value('1');
    const res = await etcd.if('counter', 'Value', '==', '1').then(etcd.put('counter').value('2')).commit();
    assert.equal(res.succeeded, true);
    assert.equal(ctl('get', 'counter', '--print-value-only').trim(), '2');
    // A watch on a follower sees writes made through the leader, as they are applied there.
    const leader = await c.waitForLeader();
    const follower = c.nodes.find((n) => n !== leader) as TestNode;
    const onFollower = new Etcd3({ hosts: [`http://${follower.endpoint}`] });
    try {
      const watcher = await onFollower.watch().prefix('events/').create();
      const seen: string[] = [];
      const done = new Promise<void>((resolve) => {
        watcher.on('put', (kv) => { seen.push(`put ${kv.key.toString()}=${kv.value.toString()}`); if (seen.length === 3) resolve(); });
        watcher.on('delete', (kv) => { seen.push(`delete ${kv.key.toString()}`); if (seen.length === 3) resolve(); });
      });
      ctl('put', 'events/a', '1');
      ctl('put', 'events/b', '2');
      ctl('del', 'events/a');
      await done;
      assert.deepEqual(seen, ['put events/a=1', 'put events/b=2', 'delete events/a']);
      await watcher.cancel();
    } finally {
      onFollower.close();
    }
  } finally {
    etcd.close();
    await c.close();
  }
});
