// Issue 19: the `quorumlog` verbs with `--user name:password` against a real
// 3-node cluster with etcd auth on (set up with etcdctl, as an operator
// would). put/get/del/watch/member/backup/status work as root; a verb
// without a user gets etcd's "user name is empty" and exits 1; a wrong
// password gets etcd's message, exits 1, and is never printed; `status`
// answers root alone and says so; $QUORUMLOG_USER stands for --user. Then
// /metrics counts the refusals by reason, and names no user.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CLI_PATH } from '../../src/cli/cluster.js';
import { formatAddress } from '../../src/server/config.js';
import { runEtcdctl } from '../../src/server/etcd/test-util.js';
import { TestCluster } from './harness.js';

const ROOT_PW = 'r00t-Secret';
const READER_PW = 'r3ader-Secret';

/** Sums a metric's samples whose labels include `labels` (e.g. 'reason="user_empty"'). */
function sample(text: string, name: string, labels = ''): number {
  return text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `)).filter((l) => l.includes(labels))
    .reduce((s, l) => s + Number(l.split(' ').pop()), 0);
}

test('quorumlog verbs with --user against a cluster with auth on; /metrics counts the refusals', { timeout: 150_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'quorumlog-cli-auth-'));
  const c = await TestCluster.start({ nodes: 3, mode: 'push', extra: { bcryptCost: 4 } });
  try {
    const leader = await c.waitForLeader();
    const eps = c.endpoints.join(',');
    const q = (args: string[], env: NodeJS.ProcessEnv = {}): { code: number | null; out: string; err: string } => {
      const r = spawnSync(process.execPath, [CLI_PATH, ...args, '--endpoints', eps], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, ...env } });
      assert.ok(!`${r.stdout}${r.stderr}`.includes(ROOT_PW) && !`${r.stdout}${r.stderr}`.includes(READER_PW), `a password was printed: ${r.stdout}${r.stderr}`);
      return { code: r.status, out: r.stdout, err: r.stderr };
    };
    const ok = (args: string[], env: NodeJS.ProcessEnv = {}): string => {
      const r = q(args, env);
      assert.equal(r.code, 0, `quorumlog ${args.join(' ')}: ${r.out}${r.err}`);
      return r.out;
    };
    const refused = (args: string[], line: string): void => {
      const r = q(args);
      assert.equal(r.code, 1, `quorumlog ${args.join(' ')} should have failed: ${r.out}${r.err}`);
      assert.equal(r.err.trim(), line);
    };
    const root = ['--user', `root:${ROOT_PW}`];

    // While auth is off, --user is harmless (Authenticate says auth is off; the verb goes on without a token, as etcdctl).
    assert.match(ok(['put', '/app/a', 'before', ...root]), /^OK/);
    for (const args of [['user', 'add', 'root', '--new-user-password', ROOT_PW], ['user', 'add', 'reader', '--new-user-password', READER_PW],
      ['role', 'add', 'reader'], ['role', 'grant-permission', 'reader', 'read', '/app/', '--prefix=true'], ['user', 'grant-role', 'reader', 'reader'],
      ['auth', 'enable']]) {
      const r = await runEtcdctl(c.endpoints, args);
      assert.equal(r.code, 0, `etcdctl ${args[0] ?? ''}: ${r.stderr}`);
    }

    // Root may do everything; the token goes on every call, unary and stream.
    const watcher = spawn(process.execPath, [CLI_PATH, 'watch', '/app/', '--prefix', '--endpoints', leader.endpoint, '--user', `reader:${READER_PW}`]);
    let watched = '';
    watcher.stdout.on('data', (d: Buffer) => { watched += d.toString(); });
    watcher.stderr.on('data', (d: Buffer) => { watched += d.toString(); });
    await new Promise((r) => setTimeout(r, 1000));
    assert.match(ok(['put', '/app/a', 'one', ...root]), /^OK \(revision \d+\)/);
    assert.equal(ok(['get', '/app/a', ...root]), '/app/a\none\n');
    assert.equal(ok(['get', '/app/a', '--user', 'root', '--password', ROOT_PW]), '/app/a\none\n');
    assert.equal(ok(['get', '/app/a'], { QUORUMLOG_USER: 'reader', QUORUMLOG_PASSWORD: READER_PW }), '/app/a\none\n');
    assert.equal(ok(['get', '/app/a'], { QUORUMLOG_USER: `reader:${READER_PW}` }), '/app/a\none\n');
    assert.match(ok(['member', 'list', ...root]), /n1/);
    const backup = join(dir, 'b.backup');
    ok(['backup', '--out', backup, ...root]);
    assert.ok(statSync(backup).size > 0);
    assert.match(ok(['status', ...root]), /replication, as leader n[123] sees it/);
    assert.equal(ok(['del', '/app/a', ...root]), '1\n');
    const wdeadline = Date.now() + 10_000;
    while (!watched.includes('DELETE') && Date.now() < wdeadline) await new Promise((r) => setTimeout(r, 100));
    watcher.kill('SIGINT');
    assert.equal(watched, 'PUT\n/app/a\none\nDELETE\n/app/a\n', 'the reader\'s watch, opened with its token');

    // Refusals, each in etcd's words on one line, exit 1.
    refused(['get', '/app/a'], 'quorumlog get: etcdserver: user name is empty');
    refused(['put', '/app/a', 'x'], 'quorumlog put: etcdserver: user name is empty');
    const noBackup = q(['backup', '--out', join(dir, 'no.backup')]);
    assert.deepEqual([noBackup.code, noBackup.out.trim()], [1, 'backup: etcdserver: user name is empty']);
    refused(['get', '/app/a', '--user', 'root:wrong-password'], 'quorumlog get: etcdserver: authentication failed, invalid user ID or password');
    refused(['put', '/app/a', 'x', '--user', 'nobody:pw'], 'quorumlog put: etcdserver: authentication failed, invalid user ID or password');
    refused(['put', '/app/a', 'x', '--user', `reader:${READER_PW}`], 'quorumlog put: etcdserver: permission denied');
    refused(['get', '/secret', '--user', `reader:${READER_PW}`], 'quorumlog get: etcdserver: permission denied');
    // status: root alone, and the line says what to do.
    const statusAnon = q(['status']);
    assert.equal(statusAnon.code, 1, statusAnon.out + statusAnon.err);
    assert.match(statusAnon.err.trim(), /^quorumlog status: 127\.0\.0\.1:\d+: etcdserver: user name is empty \(while auth is on, status answers the root user alone: give --user root\)$/);
    const statusReader = q(['status', '--user', `reader:${READER_PW}`]);
    assert.equal(statusReader.code, 1);
    assert.match(statusReader.err, /etcdserver: permission denied \(while auth is on, status answers the root user alone/);
    // A name without a password and no terminal to ask on: refused before anything is sent.
    const noPw = q(['get', '/app/a', '--user', 'root']);
    assert.equal(noPw.code, 2);
    assert.match(noPw.err, /no password for user "root"/);

    // /metrics: what was refused, by reason, on the nodes together; counts only, no names.
    const scrapes = await Promise.all(c.nodes.map(async (n) => (await fetch(`http://${formatAddress(n.member.metrics)}/metrics`)).text()));
    const total = (name: string, labels = ''): number => scrapes.reduce((s, t) => s + sample(t, name, labels), 0);
    assert.equal(total('quorumlog_auth_enabled'), 3);
    assert.equal(total('quorumlog_auth_users'), 6, 'root and reader, on each of 3 nodes');
    assert.equal(total('quorumlog_auth_roles'), 6, 'root and reader, on each of 3 nodes');
    assert.ok(total('quorumlog_auth_revision') >= 3 * 6);
    assert.ok(total('quorumlog_auth_refused_total', 'reason="user_empty"') >= 4, scrapes.join('\n').split('\n').filter((l) => l.startsWith('quorumlog_auth')).join('\n'));
    assert.ok(total('quorumlog_auth_refused_total', 'reason="auth_failed"') >= 2);
    assert.ok(total('quorumlog_auth_refused_total', 'reason="permission_denied"') >= 3);
    assert.equal(total('quorumlog_auth_refused_total', 'reason="busy"'), 0);
    for (const t of scrapes) {
      const auth = t.split('\n').filter((l) => l.startsWith('quorumlog_auth'));
      assert.ok(auth.length >= 4 + 7);
      // Only the node label and the reasons: no user name, no token, no password.
      for (const l of auth) assert.match(l, /^quorumlog_auth_[a-z_]+\{(?:reason="[a-z_]+",)?node="n\d"\} \d+$/, l);
    }
  } finally {
    await c.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
