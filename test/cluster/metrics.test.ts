// Observability and batching on a real cluster: many concurrent clients'
// writes share few log entries (the batch histogram and counters say so),
// /metrics exposes what operators need, garbage sent to the peer port is
// counted and harms nothing, and a cluster restarted from snapshots plus log
// has every write.

import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { test } from 'node:test';
import { formatAddress } from '../../src/server/config.js';
import { EtcdTestClient } from './etcd-client.js';
import { TestCluster, type TestNode } from './harness.js';

async function scrape(n: TestNode): Promise<string> {
  return (await fetch(`http://${formatAddress(n.member.metrics)}/metrics`)).text();
}

function value(text: string, name: string): number {
  return text.split('\n').filter((l) => l.startsWith(name + '{') || l.startsWith(name + ' '))
    .reduce((s, l) => s + Number(l.split(' ').pop()), 0);
}

test('batching, metrics, malformed peer frames and a restart from snapshots', { timeout: 120_000 }, async () => {
  const c = await TestCluster.start({ nodes: 3, mode: 'push', extra: { snapshotEveryEntries: 4 } });
  const clients: EtcdTestClient[] = [];
  try {
    const leader = await c.waitForLeader();
    for (let i = 0; i < 64; i++) clients.push(new EtcdTestClient(leader.endpoint, 10_000));
    await Promise.all(clients.map(async (cl, i) => {
      for (let j = 0; j < 10; j++) await cl.put(`m/${i}/${j}`, 'x'.repeat(100));
    }));
    const text = await scrape(leader);
    for (const name of ['quorumlog_term', 'quorumlog_role', 'quorumlog_commit_index', 'quorumlog_applied_index', 'quorumlog_proposals_total',
      'quorumlog_batch_commands_bucket', 'quorumlog_fsync_duration_seconds_bucket', 'quorumlog_peer_replication_lag_entries',
      'quorumlog_peer_inflight_bytes', 'quorumlog_malformed_frames_total', 'process_cpu_seconds_total',
      'quorumlog_leases', 'quorumlog_lessor_deciding', 'quorumlog_lease_epochs_proposed_total']) {
      assert.match(text, new RegExp(`^${name}[{ ]`, 'm'), `missing metric ${name}`);
    }
    const proposals = value(text, 'quorumlog_proposals_total');
    const entries = value(text, 'quorumlog_entries_proposed_total');
    assert.ok(proposals >= 640, `proposals ${proposals}`);
    assert.ok(entries < proposals, `640 concurrent writes took ${entries} entries: no batching`);
    console.log(`640 writes from 64 concurrent clients: ${entries} entries (${(proposals / entries).toFixed(1)} commands per entry)`);
    assert.ok(value(text, 'quorumlog_snapshots_taken_total') >= 1, 'no snapshot was taken');
    assert.equal(value(text, 'quorumlog_lessor_deciding'), 1, 'the leader decides lease expiry');
    assert.equal((await fetch(`http://${formatAddress(leader.member.metrics)}/healthz`)).status, 200);

    // Garbage on the peer port: counted, the connection closed, nothing else happens.
    const follower = c.nodes.find((n) => n !== leader) as TestNode;
    await new Promise<void>((resolve) => {
      const s = connect(follower.member.peer.port, '127.0.0.1', () => s.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n' + 'z'.repeat(100))));
      s.on('error', () => resolve());
      s.on('close', () => resolve());
      setTimeout(() => { s.destroy(); resolve(); }, 3000);
    });
    const after = await scrape(follower);
    assert.ok(value(after, 'quorumlog_malformed_frames_total') + value(after, 'quorumlog_refused_handshakes_total') >= 1, 'the garbage was not counted');
    assert.equal(await clients[0]?.put('after-garbage', 'ok') !== undefined, true);

    // kill -9 everything and restart: each node restores its snapshot and replays the log after it.
    await Promise.all(c.nodes.map((n) => n.kill9()));
    for (const n of c.nodes) n.start();
    await c.waitForLeader();
    for (const n of c.nodes) {
      const cl = new EtcdTestClient(n.endpoint, 10_000);
      clients.push(cl);
      const deadline = Date.now() + 15_000;
      let count = -1;
      while (Date.now() < deadline) {
        count = await cl.countPrefix('m/').catch(() => -1);
        if (count === 640) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(count, 640, `${n.id} after restart`);
      assert.equal(await cl.get('after-garbage'), 'ok');
    }
  } finally {
    for (const cl of clients) cl.close();
    await c.close();
  }
});

test('/status carries what the dashboard draws; a node outside `quorumlog cluster` has no controls and no fault injection', { timeout: 60_000 }, async () => {
  const c = await TestCluster.start({ nodes: 3, mode: 'pull' });
  try {
    const leader = await c.waitForLeader();
    const client = new EtcdTestClient(leader.endpoint, 10_000);
    try {
      for (let i = 0; i < 5; i++) await client.put(`d/${i}`, 'v');
    } finally {
      client.close();
    }
    const s = await c.waitFor(leader, (x) => x.proposalsTotal >= 5, 10_000, 'proposals counted');
    assert.ok(s.fsync.samples > 0 && s.fsync.p50Ms !== null && s.fsync.p99Ms !== null && (s.fsync.p99Ms ?? 0) >= (s.fsync.p50Ms ?? 0), JSON.stringify(s.fsync));
    assert.ok(Math.abs(s.now - Date.now()) < 5000);
    const last = s.leadershipEvents.at(-1);
    assert.equal(last?.role, 'leader');
    assert.equal(last?.leader, leader.id);
    assert.equal(last?.term, s.term);
    assert.equal(s.partitioned, false);
    assert.equal(s.replication.length, 2, 'the leader reports lag per member in pull mode too');
    const base = `http://${formatAddress(leader.member.metrics)}`;
    assert.equal((await fetch(`${base}/dashboard`)).status, 200);
    assert.equal((await fetch(`${base}/debug/partition`, { method: 'POST' })).status, 404);
    assert.equal((await fetch(`${base}/dashboard/control/kill?node=${leader.id}`, { method: 'POST' })).status, 404);
    assert.equal((await c.waitForLeader()).id, leader.id);
  } finally {
    await c.close();
  }
});
