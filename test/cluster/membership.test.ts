// Membership changes on real `quorumlog start` processes, both modes
// (docs/MEMBERSHIP.md), with writes running all along:
// - grow 3 → 4: `etcdctl member add --learner` (the URL fragment names the
//   node), the new node starts with a config listing the members and itself
//   as an observer, catches up through a snapshot, `etcdctl member promote`;
//   then one original voter is killed and writes still commit, which needs
//   the new voter's acknowledgement (3 of 4);
// - replace a voter: `quorumlog member remove` the killed one; `quorumlog
//   member add n5` (not a learner) is promoted by the leader once caught up;
// - remove the leader (asked through a follower, which forwards): it steps
//   down, another leads, and the removed node refuses clients with etcd's
//   text and says so on /healthz;
// - remove a live follower: it learns of it (push mode: from its peers) and
//   refuses clients too;
// - every acknowledged write is readable afterwards; `quorumlog member list`
//   and `etcdctl member list` agree;
// - a restarted voter finds a member added at run time (not in its config
//   file) through the registry in its log.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runMember } from '../../src/cli/member.js';
import { formatAddress } from '../../src/server/config.js';
import { EtcdTestClient } from './etcd-client.js';
import { runEtcdctl, type EtcdctlRun } from '../../src/server/etcd/test-util.js';
import { TestCluster, until, type TestNode } from './harness.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const etcdctl = (endpoints: readonly string[], ...args: string[]): Promise<EtcdctlRun> => runEtcdctl(endpoints, args, { commandTimeout: '10s' });

async function metric(n: TestNode, name: string): Promise<number> {
  const text = await (await fetch(`http://${formatAddress(n.member.metrics)}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name + '{') || l.startsWith(name + ' '));
  return line === undefined ? NaN : Number(line.split(' ').pop());
}

async function memberList(endpoint: string): Promise<{ ID: string; name: string; isLearner: boolean; clientURLs: string[] }[]> {
  const out: string[] = [];
  assert.equal(await runMember('list', { endpoints: [endpoint], timeoutMs: 5000 }, { json: true }, (l) => out.push(l)), 0, out.join('\n'));
  return JSON.parse(out.join('\n')) as { ID: string; name: string; isLearner: boolean; clientURLs: string[] }[];
}


for (const mode of ['push', 'pull'] as const) {
  test(`membership: grow with a learner, replace a voter, remove the leader; writes survive (${mode})`, { timeout: 120_000 }, async () => {
    const c = await TestCluster.start({ nodes: 3, mode, spares: 2, extra: { logLevel: 'info', snapshotEveryEntries: 20 } });
    const live = new Set(c.nodes.map((n) => n.endpoint));
    const acked = new Map<string, string>();
    let writing = true;
    const clients = new Map<string, EtcdTestClient>();
    const client = (e: string): EtcdTestClient => clients.get(e) ?? (clients.set(e, new EtcdTestClient(e, 3000)), clients.get(e) as EtcdTestClient);
    const leader = await c.waitForLeader();
    const writer = (async () => {
      for (let i = 0; writing; i++) {
        const eps = [...live];
        const e = eps[i % eps.length] as string;
        const key = `w/${String(i).padStart(5, '0')}`;
        try {
          await client(e).put(key, `v${i}`);
          acked.set(key, `v${i}`);
        } catch {
          // unknown outcome: not counted
        }
        await sleep(20);
      }
    })();
    try {
      const lc = new EtcdTestClient(leader.endpoint, 3000);
      for (let i = 0; i < 40; i++) await lc.put(`pre/${i}`, `p${i}`);
      lc.close();

      // ---- grow 3 → 4 with a learner -------------------------------------
      const n4 = c.join('n4');
      const add = await etcdctl([...live], 'member', 'add', 'n4', '--learner', '--peer-urls', `http://${formatAddress(n4.member.peer)}#n4`);
      assert.equal(add.code, 0, add.stderr);
      assert.match(add.stdout, /Member\s+[0-9a-f]+ added to cluster/);
      let list = await memberList(leader.endpoint);
      const n4Id = (list.find((m) => m.name === 'n4') as { ID: string }).ID;
      assert.equal(list.find((m) => m.name === 'n4')?.isLearner, true);
      n4.start();
      const target = (await leader.status())?.commitIndex ?? 0;
      await c.waitFor(n4, (s) => s.appliedIndex >= target, 30_000, 'n4 catching up');
      assert.ok(await metric(n4, 'quorumlog_snapshots_installed_total') >= 1, 'n4 did not catch up through a snapshot');
      await until('etcdctl member promote n4', async () => {
        const r = await etcdctl([...live], 'member', 'promote', n4Id);
        if (r.code === 0) return true;
        assert.match(r.stderr, /can only promote a learner member which is in sync with leader|in progress|not committed/);
        return null;
      });
      live.add(n4.endpoint);
      list = await memberList(leader.endpoint);
      assert.deepEqual(list.map((m) => [m.name, m.isLearner]), [['n1', false], ['n2', false], ['n3', false], ['n4', false]]);
      // n4 published its client address (etcdctl's MemberAdd has none)
      assert.deepEqual(list.find((m) => m.name === 'n4')?.clientURLs, [`http://${n4.endpoint}`]);

      // The new voter counts: with one original voter down, 2 originals are no majority of 4; a write needs n4.
      const current = await c.waitForLeader();
      const victim = c.nodes.find((n) => n.id !== current.id && n.id !== 'n4') as TestNode;
      live.delete(victim.endpoint);
      await victim.kill9();
      await until('a write with one original voter down', async () => (await client(current.endpoint).put('counts/n4', 'yes')) > 0 ? true : null, 15_000);

      // ---- replace a voter: remove the dead one, add n5 (promoted once caught up) ----
      const out: string[] = [];
      assert.equal(await runMember('remove', { endpoints: [...live], timeoutMs: 10_000 }, { name: victim.id }, (l) => out.push(l)), 0, out.join('\n'));
      assert.match(out.join('\n'), /^Member [0-9a-f]+ removed from cluster [0-9a-f]+$/m);
      const n5 = c.join('n5');
      out.length = 0;
      assert.equal(await runMember('add', { endpoints: [...live], timeoutMs: 10_000 }, {
        name: 'n5', peer: formatAddress(n5.member.peer), client: n5.endpoint, metrics: formatAddress(n5.member.metrics),
      }, (l) => out.push(l)), 0, out.join('\n'));
      assert.match(out.join('\n'), /"id": "n5", "role": "observer"/);
      n5.start();
      await until('n5 promoted once caught up', async () => ((await memberList(current.endpoint)).find((m) => m.name === 'n5')?.isLearner === false ? true : null), 30_000);
      live.add(n5.endpoint);

      // ---- remove the leader, asked through a follower --------------------------------
      const old = await c.waitForLeader();
      const via = c.nodes.find((n) => n !== old && live.has(n.endpoint)) as TestNode;
      live.delete(old.endpoint);
      out.length = 0;
      assert.equal(await runMember('remove', { endpoints: [via.endpoint], timeoutMs: 10_000 }, { name: old.id }, (l) => out.push(l)), 0, out.join('\n'));
      const next = await c.waitForLeader(20_000, [old.id]);
      assert.notEqual(next.id, old.id);
      await c.waitFor(old, (s) => s.removed && s.role !== 'leader', 10_000, 'the old leader knowing it was removed');
      const refused = await etcdctl([old.endpoint], 'get', 'pre/1');
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /etcdserver: the member has been permanently removed from the cluster/);
      const health = await fetch(`http://${formatAddress(old.member.metrics)}/healthz`);
      assert.equal(health.status, 503);
      assert.equal(((await health.json()) as { removed?: boolean }).removed, true);

      // ---- remove a live follower: in push mode it never hears of it from the leader, and asks its peers ----
      const follower = c.nodes.find((n) => n !== next && live.has(n.endpoint)) as TestNode;
      live.delete(follower.endpoint);
      out.length = 0;
      assert.equal(await runMember('remove', { endpoints: [next.endpoint], timeoutMs: 10_000 }, { name: follower.id }, (l) => out.push(l)), 0, out.join('\n'));
      await c.waitFor(follower, (s) => s.removed, 15_000, `${follower.id} knowing it was removed`);
      const refused2 = await etcdctl([follower.endpoint], 'put', 'x', 'y');
      assert.match(refused2.stderr, /etcdserver: the member has been permanently removed from the cluster/);

      // ---- the writes, and the two member lists --------------------------------------
      await sleep(300);
      writing = false;
      await writer;
      const nc = client(next.endpoint);
      assert.ok(acked.size > 20, `only ${acked.size} writes acknowledged`);
      for (const [k, v] of acked) assert.equal(await nc.get(k), v, `acknowledged write ${k} lost`);
      assert.equal(await nc.get('counts/n4'), 'yes');
      const ours: string[] = [];
      assert.equal(await runMember('list', { endpoints: [next.endpoint], timeoutMs: 5000 }, {}, (l) => ours.push(l)), 0);
      const theirs = await etcdctl([next.endpoint], 'member', 'list');
      assert.equal(theirs.code, 0, theirs.stderr);
      assert.deepEqual(ours.sort(), theirs.stdout.trim().split('\n').sort());
      const names = (await memberList(next.endpoint)).map((m) => m.name).sort();
      assert.deepEqual(names, ['n1', 'n2', 'n3', 'n4', 'n5'].filter((n) => n !== victim.id && n !== old.id && n !== follower.id));

      // ---- a restart: the two voters left need each other; the restarted one finds the other through the registry in its log ----
      const l2 = await c.waitForLeader();
      const partner = c.node(names.find((n) => n !== l2.id) as string);
      await partner.kill9();
      partner.start();
      const lc2 = client(l2.endpoint);
      await until('a write after the restart (2 of 2 voters)', async () => (await lc2.put('after/restart', 'ok')) > 0 ? true : null, 20_000);
      assert.equal(await lc2.get('after/restart'), 'ok');
    } finally {
      writing = false;
      await writer;
      for (const cl of clients.values()) cl.close();
      await c.close();
    }
  });
}
