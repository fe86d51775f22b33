// Issue 19, item 2: users, roles and permissions live in the replicated log
// as a service with its own snapshot section, so they survive what the log
// goes through, in push and pull mode, on real processes. One cluster per
// mode, with auth on (root, and a reader who may read /app/* only):
// 1. snapshots: while a follower is stopped, auth changes (a grant, a user
//    deleted) and enough writes follow that the others snapshot and compact
//    their logs; the follower comes back, catches up by a snapshot install
//    (counted), and there the reader reads what it may and is refused the
//    rest, logs in, an old token of its holds, and the deleted user's does not;
// 3. membership: adding and removing a member need root (etcdctl and
//    quorumlog refuse anyone else with etcd's words); the added member,
//    once caught up, applies the same permissions and accepts a token an
//    old member issued;
// 2. backup and restore: `quorumlog backup` needs root; a new cluster
//    restored from the backup has auth on with the same users, roles and
//    passwords, a token issued before the backup holds there, and stops
//    holding once auth is disabled and enabled again (a new key).
// (Membership runs before the backup so the old cluster can be closed
// before the restored one starts: 2 cores.)

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { CLI_PATH } from '../../src/cli/cluster.js';
import { runRestore } from '../../src/cli/backup.js';
import { formatAddress } from '../../src/server/config.js';
import { rawClient, runEtcdctl, type EtcdctlRun } from '../../src/server/etcd/test-util.js';
import { TestCluster, until, type TestNode } from './harness.js';

type Obj = Record<string, unknown>;
type UnaryFn = (req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: Obj) => void) => void;

const ROOT = 'root:rootpw';
const READER = 'reader:readpw';
const DENIED = 'etcdserver: permission denied';
const NO_USER = 'etcdserver: user name is empty';
const BAD_TOKEN = 'etcdserver: invalid auth token';
const b = (s: string): Buffer => Buffer.from(s, 'utf8');

/** etcd's KV and Auth services on one node, raw: a call carries `token` as its metadata, as etcd's clients send it. */
class Node {
  private readonly kvc: grpc.Client;
  private readonly authc: grpc.Client;
  constructor(readonly endpoint: string) {
    this.kvc = rawClient(endpoint, 'KV');
    this.authc = rawClient(endpoint, 'Auth');
  }

  private call(client: grpc.Client, method: string, req: object, token?: string): Promise<Obj> {
    const md = new grpc.Metadata();
    if (token !== undefined) md.set('token', token);
    const fn = (client as unknown as Record<string, UnaryFn>)[method] as UnaryFn;
    return new Promise((resolve, reject) => fn.call(client, req, md, { deadline: Date.now() + 10_000 }, (err, res) => (err !== null ? reject(err) : resolve(res))));
  }

  async login(name: string, password: string): Promise<string> {
    const r = await this.call(this.authc, 'Authenticate', { name, password });
    assert.equal(typeof r['token'], 'string');
    return r['token'] as string;
  }

  /** The key's value read with `token` (linearizable), or null when absent. */
  async get(key: string, token: string): Promise<string | null> {
    const r = await this.call(this.kvc, 'Range', { key: b(key) }, token) as { kvs?: { value: Buffer }[] };
    return r.kvs?.[0]?.value.toString() ?? null;
  }

  async put(key: string, value: string, token: string): Promise<void> {
    await this.call(this.kvc, 'Put', { key: b(key), value: b(value) }, token);
  }

  close(): void {
    this.kvc.close();
    this.authc.close();
  }
}

/** Asserts that `p` fails with etcd's `message` (and `code` when given). */
async function rejects(p: Promise<unknown>, message: string, code?: grpc.status): Promise<void> {
  await assert.rejects(p, (e: grpc.ServiceError) => {
    assert.equal(e.details, message);
    if (code !== undefined) assert.equal(e.code, code);
    return true;
  });
}

async function metric(n: TestNode, name: string): Promise<number> {
  const text = await (await fetch(`http://${formatAddress(n.member.metrics)}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name + '{') || l.startsWith(name + ' '));
  return line === undefined ? NaN : Number(line.split(' ').pop());
}

/** The index of the newest snapshot file in a node's data directory (dataDir/snapshots/<index>-<term>.snap), 0 without one. */
function snapshotIndex(c: TestCluster, n: TestNode): number {
  const names = readdirSync(join(c.dir, n.id, 'data', 'snapshots')).filter((f) => f.endsWith('.snap'));
  return Math.max(0, ...names.map((f) => Number(f.split('-')[0])));
}

/** etcdctl against `endpoints`, as `user` when given. */
function etcdctl(endpoints: readonly string[], args: string[], user?: string): Promise<EtcdctlRun> {
  return runEtcdctl(endpoints, [...(user !== undefined ? ['--user', user] : []), ...args], { commandTimeout: '10s' });
}

async function ok(p: Promise<EtcdctlRun>): Promise<string> {
  const r = await p;
  assert.equal(r.code, 0, `etcdctl failed: ${r.stderr}`);
  return r.stdout;
}

async function refused(p: Promise<EtcdctlRun>, message: string): Promise<void> {
  const r = await p;
  assert.notEqual(r.code, 0, `etcdctl should have failed with "${message}", printed ${r.stdout}`);
  assert.ok(r.stderr.includes(message), r.stderr);
}

/** The `quorumlog` program, as an operator runs it. */
function quorumlog(args: string[]): { code: number | null; out: string } {
  const r = spawnSync(process.execPath, [CLI_PATH, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, out: `${r.stdout}${r.stderr}`.trim() };
}

/** What the reader may and may not do on `n`, by password (etcdctl logs in there) and, when given, by an old token. */
async function readerHolds(n: TestNode, token?: string): Promise<void> {
  assert.equal(await ok(etcdctl([n.endpoint], ['get', '/app/config', '--print-value-only'], READER)), 'v1\n', `${n.id}: the reader reads /app/`);
  await refused(etcdctl([n.endpoint], ['get', '/secret/key'], READER), DENIED);
  await refused(etcdctl([n.endpoint], ['put', '/app/config', 'hacked'], READER), DENIED);
  await refused(etcdctl([n.endpoint], ['get', '/app/config']), NO_USER);
  if (token !== undefined) {
    const raw = new Node(n.endpoint);
    try {
      assert.equal(await raw.get('/app/config', token), 'v1');
      await rejects(raw.get('/secret/key', token), DENIED, grpc.status.PERMISSION_DENIED);
    } finally {
      raw.close();
    }
  }
}

for (const mode of ['push', 'pull'] as const) {
  test(`auth survives snapshots, membership changes, backup and restore (${mode} mode)`, { timeout: 240_000 }, async () => {
    // bcrypt at its lowest cost keeps logins quick; snapshots every 50 entries make the log compact within the test.
    const extra = { bcryptCost: 4, snapshotEveryEntries: 50 };
    const c = await TestCluster.start({ nodes: 3, mode, spares: 1, extra });
    const backupDir = mkdtempSync(join(tmpdir(), 'quorumlog-auth-backup-'));
    let restored: TestCluster | null = null;
    const raws: Node[] = [];
    const raw = (n: TestNode): Node => {
      const r = new Node(n.endpoint);
      raws.push(r);
      return r;
    };
    try {
      const leader = await c.waitForLeader();
      const running = (): string[] => c.nodes.filter((n) => n.running).map((n) => n.endpoint);
      await ok(etcdctl(running(), ['put', '/app/config', 'v1']));
      await ok(etcdctl(running(), ['put', '/secret/key', 's1']));
      for (const args of [['user', 'add', 'root', '--new-user-password', 'rootpw'], ['user', 'add', 'reader', '--new-user-password', 'readpw'],
        ['user', 'add', 'temp', '--new-user-password', 'temppw'], ['role', 'add', 'reader'],
        ['role', 'grant-permission', 'reader', 'read', '/app/', '--prefix=true'], ['user', 'grant-role', 'reader', 'reader'],
        ['user', 'grant-role', 'temp', 'reader'], ['auth', 'enable']]) await ok(etcdctl(running(), args));
      const lr = raw(leader);
      const readerToken = await lr.login('reader', 'readpw');
      const tempToken = await lr.login('temp', 'temppw');

      // ---- 1. snapshots: a follower stopped while auth changes and the others compact their logs --------------------
      const follower = c.nodes.find((n) => n !== leader) as TestNode;
      const other = c.nodes.find((n) => n !== leader && n !== follower) as TestNode;
      const enabledAt = (await leader.status())?.commitIndex ?? 0;
      const stoppedAt = (await c.waitFor(follower, (s) => s.appliedIndex >= enabledAt, 10_000, 'applying auth enable')).appliedIndex;
      await follower.stop();
      // Changed while it is away: the reader may now read /pub/ too, and temp is deleted (its token stops holding).
      await ok(etcdctl(running(), ['role', 'grant-permission', 'reader', 'read', '/pub/', '--prefix=true'], ROOT));
      await ok(etcdctl(running(), ['user', 'delete', 'temp'], ROOT));
      const rootToken = await lr.login('root', 'rootpw');
      for (let i = 0; i < 130; i++) await lr.put(i === 0 ? '/pub/news' : `/load/${i % 20}`, `v${i}`, rootToken);
      const compacted = await until('the running nodes snapshotting past the stopped follower', async () => {
        const idx = [snapshotIndex(c, leader), snapshotIndex(c, other)];
        return idx.every((i) => i > stoppedAt + 50) ? idx : null;
      });
      for (const n of [leader, other]) assert.ok(await metric(n, 'quorumlog_snapshots_taken_total') >= 1, `${n.id} took no snapshot`);

      follower.start();
      const target = (await leader.status())?.commitIndex ?? 0;
      await c.waitFor(follower, (s) => s.appliedIndex >= target, 30_000, 'catching up');
      assert.ok(await metric(follower, 'quorumlog_snapshots_installed_total') >= 1,
        `${follower.id} caught up without a snapshot install (the others' snapshots: ${compacted.join(', ')}; it stopped at ${stoppedAt})`);
      await readerHolds(follower, readerToken);
      const fr = raw(follower);
      assert.equal(await fr.get('/pub/news', readerToken), 'v0', 'the grant made while it was away holds');
      assert.equal(await fr.get('/secret/key', rootToken), 's1');
      await rejects(fr.get('/app/config', tempToken), BAD_TOKEN, grpc.status.UNAUTHENTICATED);
      await refused(etcdctl([follower.endpoint], ['get', '/app/config'], 'temp:temppw'), 'etcdserver: authentication failed, invalid user ID or password');
      await fr.put('/app/by-root', 'r', rootToken);

      // ---- 3. membership: add and remove need root; the new member applies the same permissions ------------------
      const n4 = c.join('n4');
      const peerUrl = `http://${formatAddress(n4.member.peer)}#n4`;
      await refused(etcdctl(running(), ['member', 'add', 'n4', '--peer-urls', peerUrl]), NO_USER);
      await refused(etcdctl(running(), ['member', 'add', 'n4', '--peer-urls', peerUrl], READER), DENIED);
      assert.equal((await ok(etcdctl(running(), ['member', 'list'], ROOT))).split('\n').filter((l) => l !== '').length, 3, 'nothing was added');
      const added = await ok(etcdctl(running(), ['member', 'add', 'n4', '--peer-urls', peerUrl], ROOT));
      assert.match(added, /Member\s+[0-9a-f]+ added to cluster/);
      n4.start();
      const target4 = (await (await c.waitForLeader()).status())?.commitIndex ?? 0;
      await c.waitFor(n4, (s) => s.appliedIndex >= target4, 30_000, 'n4 catching up');
      await readerHolds(n4, readerToken); // a token issued by the first leader, before n4 existed
      const r4 = raw(n4);
      assert.equal(await r4.get('/pub/news', readerToken), 'v0');
      assert.equal(await r4.get('/app/by-root', rootToken), 'r');
      await rejects(r4.get('/app/config', tempToken), BAD_TOKEN, grpc.status.UNAUTHENTICATED);
      const eps = running().join(',');
      const anonRemove = quorumlog(['member', 'remove', 'n4', '--endpoints', eps]);
      assert.equal(anonRemove.code, 1, anonRemove.out);
      assert.ok(anonRemove.out.includes(NO_USER), anonRemove.out);
      const readerRemove = quorumlog(['member', 'remove', 'n4', '--endpoints', eps, '--user', READER]);
      assert.equal(readerRemove.code, 1, readerRemove.out);
      assert.ok(readerRemove.out.includes(DENIED), readerRemove.out);
      assert.match(await ok(etcdctl(running(), ['member', 'list'], ROOT)), /n4/, 'n4 is still a member');
      const removed = quorumlog(['member', 'remove', 'n4', '--endpoints', eps, '--user', ROOT]);
      assert.equal(removed.code, 0, removed.out);
      await c.waitFor(n4, (s) => s.removed, 15_000, 'n4 knowing it was removed');
      await n4.kill9();

      // ---- 2. backup (root only) and restore into a new cluster ----------------------------------------------------
      const file = join(backupDir, 'auth.backup');
      const backupAt = [follower.endpoint];
      const anon = quorumlog(['backup', '--out', file, '--endpoints', backupAt.join(',')]);
      assert.equal(anon.code, 1, anon.out);
      assert.match(anon.out, /^backup: etcdserver: user name is empty$/m);
      const asReader = quorumlog(['backup', '--out', file, '--endpoints', backupAt.join(','), '--user', READER]);
      assert.equal(asReader.code, 1, asReader.out);
      assert.match(asReader.out, /^backup: etcdserver: permission denied$/m);
      const tokenBeforeBackup = await fr.login('reader', 'readpw');
      const saved = quorumlog(['backup', '--out', file, '--endpoints', backupAt.join(','), '--user', ROOT]);
      assert.equal(saved.code, 0, saved.out);
      // The old cluster's work is done: close it before the new one starts (2 cores).
      for (const r of raws.splice(0)) r.close();
      await c.close();

      restored = await TestCluster.start({ nodes: 3, mode, extra, start: false });
      for (const n of restored.nodes) {
        const out: string[] = [];
        assert.equal(runRestore(file, restored.layout.configPath(n.id), (l) => out.push(l)), 0, out.join('\n'));
      }
      for (const n of restored.nodes) n.start();
      await restored.waitForLeader(30_000);
      const all = restored.nodes.map((n) => n.endpoint);
      // Auth is on: anonymous requests are refused, root logs in with its password and may do everything.
      await refused(etcdctl(all, ['get', '/secret/key']), NO_USER);
      assert.equal(await ok(etcdctl(all, ['get', '/secret/key', '--print-value-only'], ROOT)), 's1\n');
      assert.equal(await ok(etcdctl(all, ['user', 'list'], ROOT)), 'reader\nroot\n');
      for (const n of restored.nodes) await readerHolds(n, tokenBeforeBackup);
      const rr = raw(restored.nodes[0] as TestNode);
      assert.equal(await rr.get('/pub/news', readerToken), 'v0', 'a token from the first minutes of the old cluster');
      await rejects(rr.get('/app/config', tempToken), BAD_TOKEN, grpc.status.UNAUTHENTICATED);
      // A new key with the next enable: tokens from before stop holding; a new login works.
      await ok(etcdctl(all, ['auth', 'disable'], ROOT));
      assert.match(await ok(etcdctl(all, ['auth', 'enable'])), /Authentication Enabled/);
      await rejects(rr.get('/app/config', tokenBeforeBackup), BAD_TOKEN, grpc.status.UNAUTHENTICATED);
      assert.equal(await rr.get('/app/config', await rr.login('reader', 'readpw')), 'v1');
    } finally {
      for (const r of raws) r.close();
      await restored?.close();
      await c.close();
      rmSync(backupDir, { recursive: true, force: true });
    }
  });
}
