// Backups on real processes (src/server/backup.ts, docs/OPERATIONS.md):
// `etcdctl snapshot save` against a follower and `quorumlog backup` both
// write a backup that holds every acknowledged write; `quorumlog restore`
// seeds the three data directories of a new cluster (another cluster id,
// other ports, the other replication mode) from it, which starts, elects,
// serves every key at its revision, and takes new writes; a damaged backup
// is refused and writes nothing.

import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { runBackup, runRestore } from '../../src/cli/backup.js';
import { decodeBackup } from '../../src/server/backup.js';
import { runEtcdctl } from '../../src/server/etcd/test-util.js';
import { EtcdTestClient } from './etcd-client.js';
import { TestCluster, until, type TestNode } from './harness.js';

test('backup with etcdctl snapshot save or quorumlog backup; restore into a new cluster', { timeout: 120_000 }, async () => {
  const old = await TestCluster.start({ nodes: 3, mode: 'push', extra: { snapshotEveryEntries: 50 } });
  let fresh: TestCluster | null = null;
  const clients: EtcdTestClient[] = [];
  const client = (n: TestNode): EtcdTestClient => {
    const c = new EtcdTestClient(n.endpoint, 5000);
    clients.push(c);
    return c;
  };
  try {
    const leader = await old.waitForLeader();
    const lc = client(leader);
    for (let i = 0; i < 120; i++) await lc.put(`k/${String(i).padStart(3, '0')}`, `v${i}`);
    await lc.put('k/000', 'overwritten');
    const revision = await lc.put('last', 'written before the backup');
    const follower = old.nodes.find((n) => n !== leader) as TestNode;

    // etcdctl writes what Maintenance.Snapshot streams; the follower's read barrier makes it hold every write above.
    const viaEtcdctl = join(old.dir, 'etcdctl.backup');
    const saved = await runEtcdctl([follower.endpoint], ['snapshot', 'save', viaEtcdctl], { commandTimeout: '30s' });
    assert.equal(saved.code, 0, saved.stderr);
    const viaQuorumlog = join(old.dir, 'quorumlog.backup');
    const lines: string[] = [];
    assert.equal(await runBackup([follower.endpoint], viaQuorumlog, 30_000, (l) => lines.push(l)), 0, lines.join('\n'));
    assert.match(lines.join('\n'), /backup of cluster .* from n\d at index \d+/);
    for (const f of [viaEtcdctl, viaQuorumlog]) {
      const h = decodeBackup(readFileSync(f)).header;
      assert.equal(h.nodeId, follower.id);
      assert.ok(h.index > 120, `index ${h.index}`);
    }

    // A damaged copy is refused, and leaves the data directory alone.
    fresh = await TestCluster.start({ nodes: 3, mode: 'pull', start: false });
    const damaged = join(old.dir, 'damaged.backup');
    const bytes = readFileSync(viaEtcdctl);
    bytes.writeUInt8((bytes.readUInt8(bytes.length >> 1) ^ 0xff), bytes.length >> 1);
    writeFileSync(damaged, bytes);
    const first = fresh.nodes[0] as TestNode;
    const out: string[] = [];
    assert.equal(runRestore(damaged, fresh.layout.configPath(first.id), (l) => out.push(l)), 1);
    assert.match(out.join('\n'), /SHA-256 does not match/);
    assert.equal(existsSync(join(fresh.dir, first.id, 'data', 'snapshots')), false);

    // Restore every node of the new cluster from the etcdctl file, then start them.
    for (const n of fresh.nodes) {
      out.length = 0;
      assert.equal(runRestore(viaEtcdctl, fresh.layout.configPath(n.id), (l) => out.push(l)), 0, out.join('\n'));
    }
    for (const n of fresh.nodes) n.start();
    const l2 = await fresh.waitForLeader(30_000);
    const c2 = client(l2);
    assert.equal(await c2.get('k/000'), 'overwritten');
    assert.equal(await c2.get('k/119'), 'v119');
    assert.equal(await c2.get('last'), 'written before the backup');
    assert.equal(await c2.countPrefix('k/'), 120);
    const next = await until('a write to the restored cluster', async () => client(l2).put('after', 'restore'));
    assert.ok(next > revision, `revisions go on from the backup's (${next} after ${revision})`);
    for (const n of fresh.nodes) {
      assert.equal(await until(`${n.id} applying it`, async () => (await client(n).get('after', { serializable: true })) ?? null), 'restore');
    }
    // The old cluster is untouched by all this.
    assert.equal(await lc.get('last'), 'written before the backup');
  } finally {
    for (const c of clients) c.close();
    await fresh?.close();
    await old.close();
  }
});
