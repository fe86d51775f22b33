// Issue 19: etcd's auth against a real 3-node cluster, in push and pull mode,
// driven by Debian's etcdctl 3.4 as an operator would. Users, roles and
// permissions; a reader who may read /app/* and nothing else, refused with
// etcd's own errors; tokens issued by one member that hold on the others and
// on the next leader after the leader is killed with kill -9; auth disable.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { runEtcdctl } from '../../src/server/etcd/test-util.js';
import { TestCluster, type TestNode } from './harness.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

for (const mode of ['push', 'pull'] as const) {
  test(`etcdctl: users, roles and permissions on a 3-node cluster, across a leader's kill -9 (${mode} mode)`, { timeout: 180_000 }, async () => {
    // bcrypt at its lowest cost keeps the test quick; the cost does not change what is checked. Debug logs: the most
    // a node ever writes, searched at the end for passwords and tokens.
    const c = await TestCluster.start({ nodes: 3, mode, extra: { bcryptCost: 4, logLevel: 'debug' } });
    try {
      const leader = await c.waitForLeader();
      const all = (): string[] => c.nodes.filter((n) => n.process !== null).map((n) => n.endpoint);
      const on = (n: TestNode, args: string[], user?: string): Promise<Run> =>
        runEtcdctl([n.endpoint], [...(user !== undefined ? ['--user', user] : []), ...args]);
      const any = (args: string[], user?: string): Promise<Run> => runEtcdctl(all(), [...(user !== undefined ? ['--user', user] : []), ...args]);
      const ok = async (p: Promise<Run>): Promise<string> => {
        const r = await p;
        assert.equal(r.code, 0, `etcdctl failed: ${r.stderr}`);
        return r.stdout;
      };
      const refused = async (p: Promise<Run>, message: string): Promise<void> => {
        const r = await p;
        assert.notEqual(r.code, 0, `etcdctl should have failed with "${message}", printed ${r.stdout}`);
        assert.match(r.stderr, new RegExp(message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')), r.stderr);
      };
      const follower = c.nodes.find((n) => n !== leader) as TestNode;

      // Before auth: data to protect, and the users and roles an operator sets up.
      await ok(any(['put', '/app/config', 'v1']));
      await ok(any(['put', '/secret/key', 's1']));
      assert.equal((await ok(any(['user', 'add', 'root', '--new-user-password', 'rootpw']))).trim(), 'User root created');
      await ok(any(['user', 'add', 'reader', '--new-user-password', 'readpw']));
      assert.equal((await ok(any(['role', 'add', 'reader']))).trim(), 'Role reader created');
      await ok(any(['role', 'grant-permission', 'reader', 'read', '/app/', '--prefix=true']));
      await ok(any(['user', 'grant-role', 'reader', 'reader']));
      // etcdctl auth enable adds the root role and grants it to root when they are missing (etcd's own dance)
      assert.match(await ok(on(follower, ['auth', 'enable'])), /Authentication Enabled/);

      // Anonymous requests are refused; root may do everything, on any member.
      await refused(on(leader, ['get', '/app/config']), 'etcdserver: user name is empty');
      await refused(on(follower, ['put', '/app/config', 'x']), 'etcdserver: user name is empty');
      await refused(on(follower, ['get', '/app/config'], 'root:wrongpw-7f3a'), 'etcdserver: authentication failed, invalid user ID or password');
      await refused(on(follower, ['get', '/app/config'], 'nobody:pw'), 'etcdserver: authentication failed, invalid user ID or password');
      for (const n of c.nodes) assert.equal(await ok(on(n, ['get', '/secret/key', '--print-value-only'], 'root:rootpw')), 's1\n');
      await ok(on(follower, ['put', '/app/config', 'v2'], 'root:rootpw'));

      // The reader reads /app/*, and nothing else; it writes nothing.
      for (const n of c.nodes) assert.equal(await ok(on(n, ['get', '/app/config', '--print-value-only'], 'reader:readpw')), 'v2\n');
      assert.equal(await ok(on(follower, ['get', '/app/', '--prefix', '--keys-only'], 'reader:readpw')), '/app/config\n\n');
      await refused(on(follower, ['get', '/secret/key'], 'reader:readpw'), 'etcdserver: permission denied');
      await refused(on(leader, ['get', '', '--from-key'], 'reader:readpw'), 'etcdserver: permission denied');
      await refused(on(follower, ['put', '/app/config', 'hacked'], 'reader:readpw'), 'etcdserver: permission denied');
      await refused(on(leader, ['del', '/app/config'], 'reader:readpw'), 'etcdserver: permission denied');
      await refused(on(leader, ['user', 'add', 'mallory', '--new-user-password', 'x'], 'reader:readpw'), 'etcdserver: permission denied');
      await refused(on(leader, ['auth', 'disable'], 'reader:readpw'), 'etcdserver: permission denied');
      await refused(on(leader, ['compaction', '1'], 'reader:readpw'), 'etcdserver: permission denied');
      // ...and nothing changed
      assert.equal(await ok(on(leader, ['get', '/app/config', '--print-value-only'], 'root:rootpw')), 'v2\n');
      await refused(on(leader, ['user', 'get', 'mallory'], 'root:rootpw'), 'etcdserver: user name not found');

      // What root sees of users and roles, as etcdctl prints it.
      assert.equal(await ok(on(follower, ['user', 'list'], 'root:rootpw')), 'reader\nroot\n');
      assert.match(await ok(on(follower, ['role', 'get', 'reader'], 'root:rootpw')), /Read:\s*\n\s*\[\/app\/, \/app0\) \(prefix \/app\/\)/);
      assert.match(await ok(on(follower, ['user', 'get', 'reader'], 'root:rootpw')), /Roles: reader/);

      // The leader dies: the survivors elect another, and users, roles and permissions hold there.
      await leader.kill9();
      const next = await c.waitForLeader();
      assert.notEqual(next, leader);
      assert.equal(await ok(on(next, ['get', '/app/config', '--print-value-only'], 'reader:readpw')), 'v2\n');
      await refused(on(next, ['get', '/secret/key'], 'reader:readpw'), 'etcdserver: permission denied');
      await refused(on(next, ['put', '/app/x', '1'], 'reader:readpw'), 'etcdserver: permission denied');
      await ok(on(next, ['put', '/app/x', '1'], 'root:rootpw'));
      // The dead member comes back and catches up: the same users and permissions there.
      leader.start();
      await c.waitFor(leader, (s) => s.leader !== null, 20_000, `${leader.id} back`);
      const back = async (): Promise<void> => {
        const deadline = Date.now() + 20_000;
        for (;;) {
          const r = await on(leader, ['get', '/app/x', '--print-value-only'], 'reader:readpw');
          if (r.code === 0 && r.stdout === '1\n') return;
          if (Date.now() > deadline) assert.fail(`${leader.id} did not serve the reader after its restart: ${r.stderr}`);
          await new Promise((r2) => setTimeout(r2, 200));
        }
      };
      await back();
      await refused(on(leader, ['get', '/secret/key'], 'reader:readpw'), 'etcdserver: permission denied');

      // Revoking the role takes the reader's access at once, on every member.
      await ok(any(['user', 'revoke-role', 'reader', 'reader'], 'root:rootpw'));
      for (const n of c.nodes) await refused(on(n, ['get', '/app/config'], 'reader:readpw'), 'etcdserver: permission denied');

      // auth disable: anyone may again.
      assert.match(await ok(any(['auth', 'disable'], 'root:rootpw')), /Authentication Disabled/);
      assert.equal(await ok(any(['get', '/secret/key', '--print-value-only'])), 's1\n');

      // Passwords and tokens never reach a log line (a token begins with its user's name in base64url).
      const secrets = ['rootpw', 'readpw', 'wrongpw-7f3a', `${Buffer.from('root').toString('base64url')}.`, `${Buffer.from('reader').toString('base64url')}.`];
      for (const n of c.nodes) {
        const log = readFileSync(join(c.dir, n.id, 'node.log'), 'utf8');
        assert.ok(log.length > 0 && log.includes('"level":20'), `${n.id} wrote debug lines`);
        for (const secret of secrets) assert.ok(!log.includes(secret), `${n.id}'s log holds "${secret}"`);
      }
    } finally {
      await c.close();
    }
  });
}
