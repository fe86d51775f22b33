// Leader transfer on real processes, both modes: `quorumlog transfer-leader
// --to ID` and etcd's Maintenance.MoveLeader (etcdctl move-leader) hand
// leadership to the named voter and answer once it leads; asked of a
// follower, MoveLeader says "not leader"; an unknown target is refused.

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { runTransferLeader } from '../../src/cli/transfer-leader.js';
import { TestCluster } from './harness.js';

for (const mode of ['push', 'pull'] as const) {
  test(`transfer-leader and etcdctl move-leader hand leadership to the named voter (${mode})`, { timeout: 90_000 }, async () => {
    const c = await TestCluster.start({ nodes: 3, mode, extra: { logLevel: 'warn' } });
    try {
      const first = await c.waitForLeader();
      const target = c.nodes.find((n) => n.id !== first.id) as (typeof c.nodes)[number];
      const lines: string[] = [];
      assert.equal(await runTransferLeader(c.endpoints, target.id, 10_000, (l) => lines.push(l)), 0, lines.join('\n'));
      assert.deepEqual(lines, [`leader is now ${target.id}`]);
      assert.equal((await c.waitForLeader()).id, target.id);

      // etcdctl: member ids in hex from `member list`; move-leader finds the leader among the endpoints.
      const ctl = (...args: string[]): ReturnType<typeof spawnSync> => spawnSync('etcdctl', ['--endpoints', c.endpoints.join(','), ...args],
        { env: { ...process.env, ETCDCTL_API: '3' }, encoding: 'utf8', timeout: 20_000 });
      const list = execFileSync('etcdctl', ['--endpoints', c.endpoints.join(','), 'member', 'list'], { env: { ...process.env, ETCDCTL_API: '3' }, encoding: 'utf8' });
      const hexOf = (name: string): string => {
        const line = list.split('\n').find((l) => l.split(', ')[2] === name);
        assert.ok(line !== undefined, `${name} not in member list:\n${list}`);
        return line.split(', ')[0] as string;
      };
      const back = ctl('move-leader', hexOf(first.id));
      assert.equal(back.status, 0, `${String(back.stdout)}${String(back.stderr)}`);
      assert.equal((await c.waitForLeader()).id, first.id);

      // Asked of a follower directly: not leader. An unknown member: refused.
      const follower = c.nodes.find((n) => n.id !== first.id) as (typeof c.nodes)[number];
      const notLeader = spawnSync('etcdctl', ['--endpoints', follower.endpoint, 'move-leader', hexOf(target.id)],
        { env: { ...process.env, ETCDCTL_API: '3' }, encoding: 'utf8', timeout: 20_000 });
      assert.notEqual(notLeader.status, 0);
      const out: string[] = [];
      assert.equal(await runTransferLeader(c.endpoints, 'nobody', 5000, (l) => out.push(l)), 1);
      assert.match(out.join('\n'), /no member named nobody/);
    } finally {
      await c.close();
    }
  });
}
