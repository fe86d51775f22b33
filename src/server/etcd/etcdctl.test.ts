// etcdctl v3 (Debian's etcd-client, 3.4) against our server on a
// LocalKvBackend. The server runs in this process, so etcdctl is run
// asynchronously (a synchronous exec would block the event loop the server
// needs). A missing etcdctl fails the suite: CI installs it.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { runEtcdctl, startTestServer, waitFor, type TestServer } from './test-util.js';

const INSTALL_HINT = 'etcdctl is not installed: run `apt-get install -y etcd-client` (CI installs it; these tests need it)';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

for (const protocolWorkers of [0, 1]) describe(`etcd API server with etcdctl${protocolWorkers > 0 ? ' (through a protocol worker process)' : ''}`, () => {
  let srv: TestServer;

  const etcdctl = (args: string[], input?: string): Promise<Run> => runEtcdctl([srv.address], args, input !== undefined ? { input } : {});

  async function ok(args: string[], input?: string): Promise<string> {
    const r = await etcdctl(args, input);
    assert.equal(r.code, 0, `etcdctl ${args.join(' ')} failed: ${r.stderr}`);
    return r.stdout;
  }

  before(async () => {
    const probe = spawnSync('etcdctl', ['version'], { env: { ...process.env, ETCDCTL_API: '3' } });
    if (probe.error || probe.status !== 0) throw new Error(INSTALL_HINT);
    srv = await startTestServer({ protocolWorkers });
  });

  after(async () => {
    await srv?.close();
  });

  it('put, get, get --prefix/--limit/--rev, -w json header', async () => {
    assert.equal((await ok(['put', 'ctl/a', '1'])).trim(), 'OK');
    assert.equal((await ok(['put', 'ctl/b', '2'])).trim(), 'OK');
    assert.equal((await ok(['put', 'ctl/a', '3'])).trim(), 'OK');
    assert.equal(await ok(['get', 'ctl/a']), 'ctl/a\n3\n');
    assert.equal(await ok(['get', 'ctl/', '--prefix']), 'ctl/a\n3\nctl/b\n2\n');
    assert.equal(await ok(['get', 'ctl/', '--prefix', '--limit', '1']), 'ctl/a\n3\n');
    assert.equal(await ok(['get', 'ctl/', '--prefix', '--keys-only']), 'ctl/a\n\nctl/b\n\n');
    const json = JSON.parse(await ok(['get', 'ctl/a', '-w', 'json'])) as {
      header: { revision: number; cluster_id: number; member_id: number };
      kvs: { key: string; value: string; create_revision: number; mod_revision: number; version: number }[];
      count: number;
    };
    assert.equal(json.header.revision, srv.backend.store.revision);
    assert.equal(json.count, 1);
    const kv = json.kvs[0];
    assert.ok(kv);
    assert.equal(Buffer.from(kv.key, 'base64').toString(), 'ctl/a');
    assert.equal(kv.version, 2);
    assert.equal(await ok(['get', 'ctl/a', '--rev', String(kv.create_revision)]), 'ctl/a\n1\n');
  });

  it('del --prev-kv', async () => {
    await ok(['put', 'del/x', 'gone']);
    assert.equal(await ok(['del', 'del/x', '--prev-kv']), '1\ndel/x\ngone\n');
    assert.equal(await ok(['get', 'del/x']), '');
  });

  it('txn from stdin: success and failure branches', async () => {
    await ok(['put', 'txn/k', 'v1']);
    const success = await ok(['txn'], 'value("txn/k") = "v1"\n\nput txn/k v2\n\nget txn/k\n\n');
    assert.equal(success, 'SUCCESS\n\nOK\n');
    const failure = await ok(['txn'], 'value("txn/k") = "v1"\n\nput txn/k v3\n\nget txn/k\n\n');
    assert.equal(failure, 'FAILURE\n\ntxn/k\nv2\n');
  });

  it('compaction, then reads below it fail as etcd does', async () => {
    await ok(['put', 'cmp/k', 'a']);
    const rev = srv.backend.store.revision;
    await ok(['put', 'cmp/k', 'b']);
    assert.equal((await ok(['compaction', String(rev)])).trim(), `compacted revision ${rev}`);
    const r = await etcdctl(['get', 'cmp/k', '--rev', String(rev - 1)]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /required revision has been compacted/);
  });

  it('endpoint status, endpoint health, member list', async () => {
    const status = JSON.parse(await ok(['endpoint', 'status', '-w', 'json'])) as {
      Endpoint: string;
      Status: { header: { revision: number }; version: string; leader: number; raftIndex: number };
    }[];
    assert.equal(status.length, 1);
    assert.equal(status[0]?.Status.version, '3.4.0');
    assert.equal(status[0]?.Status.leader, 1);
    const health = await etcdctl(['endpoint', 'health']); // etcdctl 3.4 reports health on stderr
    assert.equal(health.code, 0, health.stderr);
    assert.match(health.stderr, new RegExp(`${srv.address} is healthy: successfully committed proposal`));
    const members = await ok(['member', 'list']);
    assert.match(members, /^1, started, local, , , false/);
  });

  it('watch: history from --rev and live events', async () => {
    await ok(['put', 'wctl/k', 'before']);
    const rev = srv.backend.store.revision;
    const child = spawn('etcdctl', ['--endpoints', srv.address, 'watch', 'wctl/', '--prefix', '--rev', String(rev)], {
      env: { ...process.env, ETCDCTL_API: '3' },
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await waitFor(() => out.includes('before'), 5000, 'history event from etcdctl watch');
      await ok(['put', 'wctl/k', 'after']);
      await ok(['del', 'wctl/k']);
      await waitFor(() => out.endsWith('DELETE\nwctl/k\n\n'), 5000, 'live events from etcdctl watch');
      assert.equal(out, 'PUT\nwctl/k\nbefore\nPUT\nwctl/k\nafter\nDELETE\nwctl/k\n\n'); // a delete's value is empty
    } finally {
      child.kill('SIGTERM');
    }
  });

  it('an empty key is refused with etcd\'s message', async () => {
    const r = await etcdctl(['put', '', 'v']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /key is not provided/);
  });
});
