// A lost disk on real `quorumlog start` processes, both modes
// (docs/LOST-DISKS.md):
// - every member's data directory id is recorded in the configuration soon
//   after the cluster starts;
// - a follower killed with kill -9 and restarted on an empty data directory
//   (as after a disk replacement) gets a new directory id, says so in one
//   clear error in its log, shows it on /healthz and `quorumlog status`, and
//   does not count: with the third voter down, the leader and the wiped node
//   commit nothing;
// - re-added the documented way (member remove, empty directory, listed as
//   an observer, member add --learner, member promote) it counts again: with
//   another voter down, writes commit through it; no acknowledged write is
//   lost.

import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { runMember } from '../../src/cli/member.js';
import { formatAddress } from '../../src/server/config.js';
import { EtcdTestClient } from './etcd-client.js';
import { TestCluster, until, type TestNode } from './harness.js';



async function member(verb: 'add' | 'remove' | 'promote', endpoints: string[], args: { name: string; peer?: string; client?: string; learner?: boolean }): Promise<number> {
  const out: string[] = [];
  const code = await runMember(verb, { endpoints, timeoutMs: 5000 }, args, (l) => out.push(l));
  if (code !== 0 && process.env['DEBUG_LOST_DISK'] !== undefined) console.log(verb, out.join(' '));
  return code;
}

for (const mode of ['push', 'pull'] as const) {
  test(`lost disk: a wiped node neither votes nor counts until re-added (${mode})`, { timeout: 120_000 }, async () => {
    const c = await TestCluster.start({ nodes: 3, mode });
    const clients: EtcdTestClient[] = [];
    const client = (n: TestNode, ms = 3000): EtcdTestClient => {
      const cl = new EtcdTestClient(n.endpoint, ms);
      clients.push(cl);
      return cl;
    };
    try {
      const leader = await c.waitForLeader();
      const lc = client(leader);
      for (let i = 0; i < 30; i++) await lc.put(`before/${i}`, `v${i}`);
      // Every member's directory id is recorded, and the record has committed.
      const ids = await Promise.all(c.nodes.map(async (n) => (await n.status())?.dirId));
      assert.ok(ids.every((x) => typeof x === 'number'), `directory ids: ${JSON.stringify(ids)}`);
      await c.waitFor(leader, (s) => s.configuration.committed && c.nodes.every((n, i) => s.configuration.dirIds[n.id] === ids[i]), 10_000,
        'the leader recording every directory id');

      // ---- wipe a follower and restart it as it was ----
      const wiped = c.nodes.find((n) => n !== leader) as TestNode;
      const other = c.nodes.find((n) => n !== leader && n !== wiped) as TestNode;
      await wiped.kill9();
      rmSync(join(c.dir, wiped.id, 'data'), { recursive: true, force: true });
      wiped.start();
      const s = await c.waitFor(wiped, (x) => x.lostDisk !== null, 15_000, `${wiped.id} noticing its lost disk`);
      assert.equal(s.lostDisk?.recorded, ids[c.nodes.indexOf(wiped)]);
      assert.notEqual(s.lostDisk?.mine, s.lostDisk?.recorded);
      const log = readFileSync(join(c.dir, wiped.id, 'node.log'), 'utf8');
      assert.match(log, new RegExp(`${wiped.id} runs on data directory \\d+, but the cluster's configuration records directory \\d+ for it`));
      assert.match(log, new RegExp(`quorumlog member remove ${wiped.id}`));
      const health = await fetch(`http://${formatAddress(wiped.member.metrics)}/healthz`);
      assert.equal(health.status, 503);
      assert.match(((await health.json()) as { error?: string }).error ?? '', /re-add this member/);

      // It does not count: with the third voter down, the leader and the wiped node commit nothing.
      await other.kill9();
      const cur = await c.waitForLeader(20_000, [other.id]).catch(() => null);
      const before = await c.waitFor(leader, () => true, 5000, `${leader.id}'s status`);
      // The deadline is past the server's own request timeout (5 s), so the answer is the server's, not the client giving up:
      // a write that cannot commit times out on the server (its outcome unknown, as in etcd), finds no leader, or, once its
      // term has had no leader for the orphan grace (docs/CLUSTER.md, "Requests during an election"), fails as leader changed.
      const probe = client(cur ?? leader, 15_000);
      await assert.rejects(probe.put('must/not/commit', 'x'), (e: { code?: number; details?: string }) => {
        assert.equal(e.code, grpc.status.UNAVAILABLE, `a write with a wiped node counted failed with ${e.code} ${e.details}`);
        assert.match(e.details ?? '', /^etcdserver: (request timed out|no leader|leader changed)$/);
        return true;
      }, 'a write committed with a wiped node counted');
      // Nothing committed while the third voter was down: the commit point stayed, and neither node applied the write.
      // (Its outcome is unknown, as for any timed-out etcd write: the entry may commit once the third voter is back.)
      const st = await c.waitFor(wiped, () => true, 5000, `${wiped.id}'s status`);
      assert.notEqual(st.role, 'leader', 'the wiped node leads');
      const now0 = await c.waitFor(leader, () => true, 5000, `${leader.id}'s status`);
      assert.equal(now0.commitIndex, before.commitIndex, `${leader.id} committed with a wiped node counted`);
      for (const n of [leader, wiped]) {
        assert.equal(await client(n, 5000).get('must/not/commit', { serializable: true }), null, `${n.id} applied a write that needed the wiped node`);
      }
      other.start();
      const back = await c.waitForLeader(20_000);
      await until('writes again with the third voter back', async () => (await client(back).put('after/heal', 'ok')) > 0 ? true : null);

      // ---- re-add it: remove, empty directory, observer in its own config, add --learner, promote ----
      const eps = [leader.endpoint, other.endpoint];
      await until(`member remove ${wiped.id}`, async () => (await member('remove', eps, { name: wiped.id })) === 0 ? true : null);
      await wiped.kill9();
      rmSync(join(c.dir, wiped.id, 'data'), { recursive: true, force: true });
      const cfgPath = c.layout.configPath(wiped.id);
      const cfg = JSON.parse(readFileSync(cfgPath, 'utf8')) as { members: { id: string; role: string }[] };
      for (const m of cfg.members) if (m.id === wiped.id) m.role = 'observer';
      writeFileSync(cfgPath, JSON.stringify(cfg, null, 2) + '\n');
      await until(`member add ${wiped.id} --learner`, async () => (await member('add', eps, {
        name: wiped.id, peer: formatAddress(wiped.member.peer), client: wiped.endpoint, learner: true,
      })) === 0 ? true : null);
      wiped.start();
      await until(`member promote ${wiped.id}`, async () => (await member('promote', eps, { name: wiped.id })) === 0 ? true : null, 30_000);
      const now = await c.waitForLeader();
      const rec = await c.waitFor(now, (x) => x.configuration.voters.includes(wiped.id) && x.configuration.committed && x.configuration.dirIds[wiped.id] !== undefined, 10_000, 'the re-added node recorded as a voter');
      const ws = await c.waitFor(wiped, (x) => x.lostDisk === null && x.dirId === rec.configuration.dirIds[wiped.id], 10_000, `${wiped.id} at peace with its new directory`);
      assert.equal(ws.lostDisk, null);

      // It counts: with another voter down, writes commit through it.
      const down = c.nodes.find((n) => n !== wiped && n !== now) as TestNode;
      await down.kill9();
      const l2 = await c.waitForLeader(20_000, [down.id]);
      await until('a write with the re-added node counting', async () => (await client(l2).put('counts/re-added', 'yes')) > 0 ? true : null, 20_000);
      const rc = client(l2, 5000);
      for (let i = 0; i < 30; i++) assert.equal(await rc.get(`before/${i}`), `v${i}`);
      assert.equal(await rc.get('after/heal'), 'ok');
    } finally {
      for (const cl of clients) cl.close();
      await c.close();
    }
  });
}
