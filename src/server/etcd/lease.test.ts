// The Lease service through the etcd3 npm client (and raw gRPC for the
// error statuses), on a LocalKvBackend whose lessor always leads: grant,
// keep-alive, time-to-live with keys, leases, revoke; expiry deletes the
// keys in one revision and a watcher sees it; etcd's errors; and the
// client's lock() and election() helpers, which are built on leases; and
// etcdctl's lease commands.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { spawn } from 'node:child_process';
import * as grpc from '@grpc/grpc-js';
import { Etcd3, EtcdLeaseInvalidError, EtcdLockFailedError, type IKeyValue } from 'etcd3';
import { LocalKvBackend } from './local-backend.js';
import { callUnary, rawClient, startTestServer, waitFor, type TestServer } from './test-util.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function grpcCode(e: unknown): number | undefined {
  return (e as grpc.ServiceError).code;
}

describe('Lease service with the etcd3 client', () => {
  let srv: TestServer;
  let backend: LocalKvBackend;
  let client: Etcd3;
  let lease: grpc.Client;

  before(async () => {
    backend = new LocalKvBackend(undefined, { leaseCheckIntervalMs: 20 });
    srv = await startTestServer({ backend });
    client = new Etcd3({ hosts: srv.address });
    lease = rawClient(srv.address, 'Lease');
  });

  after(async () => {
    client.close();
    lease.close();
    await srv.close();
    backend.close();
  });

  it('grants, keeps alive, reports time-to-live with keys, lists, and revokes (deleting the keys)', async () => {
    const l = client.lease(30, { autoKeepAlive: false });
    const id = await l.grant();
    assert.match(id, /^[1-9]\d*$/, 'a nonzero id picked by the server');
    await l.put('svc/a').value('1');
    await l.put('svc/b').value('2');
    assert.equal((await client.get('svc/a').exec()).kvs[0]?.lease, id);
    const ka = await l.keepaliveOnce();
    assert.equal(ka.TTL, '30');
    assert.equal(ka.ID, id);
    const ttl = await client.leaseClient.leaseTimeToLive({ ID: id, keys: true });
    assert.equal(ttl.grantedTTL, '30');
    assert.ok(Number(ttl.TTL) >= 29 && Number(ttl.TTL) <= 30, ttl.TTL);
    assert.deepEqual(ttl.keys.map((k) => k.toString()), ['svc/a', 'svc/b']);
    const list = await client.leaseClient.leaseLeases();
    assert.ok(list.leases.some((s) => s.ID === id));
    await l.revoke();
    assert.equal(await client.getAll().prefix('svc/').count(), 0);
    const gone = await client.leaseClient.leaseTimeToLive({ ID: id, keys: false });
    assert.equal(gone.TTL, '-1', 'etcd answers TTL -1 for a lease that does not exist');
    assert.ok(!(await client.leaseClient.leaseLeases()).leases.some((s) => s.ID === id));
  });

  it('a client-chosen id is kept; taking it twice is "lease already exists"; a TTL below the minimum is raised', async () => {
    const res = await callUnary<{ ID: string; TTL: string }>(lease, 'LeaseGrant', { ID: 777, TTL: 0 });
    assert.equal(res.ID, '777');
    assert.equal(res.TTL, '1', 'raised to the minimum TTL');
    await assert.rejects(callUnary(lease, 'LeaseGrant', { ID: 777, TTL: 10 }), (e) => {
      assert.equal(grpcCode(e), grpc.status.FAILED_PRECONDITION);
      assert.match((e as Error).message, /etcdserver: lease already exists/);
      return true;
    });
    await assert.rejects(callUnary(lease, 'LeaseGrant', { TTL: '9000000001' }), (e) => {
      assert.equal(grpcCode(e), grpc.status.OUT_OF_RANGE);
      assert.match((e as Error).message, /etcdserver: too large lease TTL/);
      return true;
    });
  });

  it('revoking an unknown lease, or putting with one, is "requested lease not found" (NOT_FOUND)', async () => {
    const kvClient = rawClient(srv.address, 'KV');
    for (const call of [() => callUnary(lease, 'LeaseRevoke', { ID: 4242 }), () => callUnary(kvClient, 'Put', { key: Buffer.from('x'), value: Buffer.from('y'), lease: 4242 })]) {
      await assert.rejects(call(), (e) => {
        assert.equal(grpcCode(e), grpc.status.NOT_FOUND);
        assert.match((e as Error).message, /etcdserver: requested lease not found/);
        return true;
      });
    }
    kvClient.close();
    await assert.rejects(client.put('x').value('y').lease('4242').exec(), EtcdLeaseInvalidError);
  });

  it('a keep-alive of an unknown lease answers TTL 0 (and the client reports the lease lost)', async () => {
    const stream = await client.leaseClient.leaseKeepAlive();
    const res = await new Promise<{ TTL: string; ID: string }>((resolve, reject) => {
      stream.on('data', resolve);
      stream.on('error', reject);
      stream.write({ ID: '31337' });
    });
    stream.end();
    assert.deepEqual([res.ID, res.TTL], ['31337', '0']);
  });

  it('a lease without keep-alives expires after its TTL (not before): its keys go in one revision, and a watcher sees the deletes', async () => {
    const granted = performance.now(); // before the grant is sent: its deadline is at least TTL after this
    const l = client.lease(1, { autoKeepAlive: false });
    const id = await l.grant();
    await l.put('exp/a').value('1');
    await l.put('exp/b').value('2');
    await client.put('exp/other').value('stays');
    const deletes: { key: string; rev: string }[] = [];
    const w = await client.watch().prefix('exp/').create();
    w.on('delete', (kv: IKeyValue) => deletes.push({ key: kv.key.toString(), rev: kv.mod_revision }));
    await waitFor(() => deletes.length >= 2, 5000, 'the expiry deletes');
    const elapsed = performance.now() - granted;
    assert.ok(elapsed >= 1000, `expired after ${elapsed} ms, before its TTL`);
    assert.ok(elapsed < 2000, `expired after ${elapsed} ms`);
    assert.deepEqual(deletes.map((d) => d.key), ['exp/a', 'exp/b']);
    assert.equal(deletes[0]?.rev, deletes[1]?.rev, 'one revision');
    assert.equal(await client.get('exp/other').string(), 'stays');
    assert.equal((await client.leaseClient.leaseTimeToLive({ ID: id, keys: false })).TTL, '-1');
    await w.cancel();
  });

  it('keep-alives keep a short lease alive past its TTL; once released it expires', async () => {
    const l = client.lease(1);
    await l.put('alive/k').value('v');
    await sleep(2200);
    assert.equal(await client.get('alive/k').string(), 'v', 'still there after twice the TTL');
    l.release();
    await waitFor(() => backend.store.range({
      key: Buffer.from('alive/k'), rangeEnd: new Uint8Array(0), limit: 0, revision: 0, sortOrder: 'none', sortTarget: 'key', serializable: true,
      keysOnly: false, countOnly: true, minModRevision: 0, maxModRevision: 0, minCreateRevision: 0, maxCreateRevision: 0,
    }).count === 0, 3000, 'expiry after release');
  });

  it('lock(): one holder at a time; released by revoking its lease', async () => {
    const first = await client.lock('locks/job').ttl(5).acquire();
    await assert.rejects(client.lock('locks/job').ttl(5).acquire(), EtcdLockFailedError);
    await first.release();
    const result = await client.lock('locks/job').ttl(5).do(async () => 'ran');
    assert.equal(result, 'ran');
    assert.equal(await client.getAll().prefix('locks/').count(), 0, 'do() released the lock');
  });

  it('election(): the first campaign leads; the second takes over when it resigns; observers follow', async () => {
    const election = client.election('leader-test', 5);
    const one = election.campaign('one');
    await one.wait();
    const observer = await election.observe();
    assert.equal(observer.leader(), 'one');
    const changes: (string | undefined)[] = [];
    observer.on('change', (v) => changes.push(v));
    const two = election.campaign('two');
    let twoElected = false;
    two.on('elected', () => (twoElected = true));
    await sleep(200);
    assert.equal(twoElected, false, 'a second candidate waits');
    assert.equal(await election.leader(), 'one');
    await one.resign();
    await two.wait();
    assert.equal(await election.leader(), 'two');
    await waitFor(() => changes.includes('two'), 3000, 'the observer to see the new leader');
    await two.resign();
    await observer.cancel();
  });
});

describe('Lease service with etcdctl', () => {
  let srv: TestServer;
  let backend: LocalKvBackend;

  before(async () => {
    backend = new LocalKvBackend(undefined, { leaseCheckIntervalMs: 20 });
    srv = await startTestServer({ backend });
  });

  after(async () => {
    await srv.close();
    backend.close();
  });

  function etcdctl(...args: string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      const child = spawn('etcdctl', ['--endpoints', srv.address, '--dial-timeout', '3s', '--command-timeout', '5s', ...args], {
        env: { ...process.env, ETCDCTL_API: '3' },
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', reject);
      child.on('close', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`etcdctl ${args.join(' ')} exited ${code}: ${stderr}`))));
      child.stdin.end();
    });
  }

  it('lease grant, put --lease, timetolive --keys, list, keep-alive --once, revoke', async () => {
    const granted = await etcdctl('lease', 'grant', '60');
    const m = /^lease ([0-9a-f]+) granted with TTL\(60s\)$/m.exec(granted);
    assert.ok(m, granted);
    const hex = m[1] as string;
    assert.equal((await etcdctl('put', '--lease', hex, 'ctl/leased', 'v')).trim(), 'OK');
    assert.match(await etcdctl('lease', 'timetolive', hex, '--keys'), new RegExp(`^lease ${hex} granted with TTL\\(60s\\), remaining\\((59|60)s\\), attached keys\\(\\[ctl/leased\\]\\)$`, 'm'));
    assert.match(await etcdctl('lease', 'list'), new RegExp(`found 1 leases\\n${hex}\\n`));
    assert.match(await etcdctl('lease', 'keep-alive', '--once', hex), new RegExp(`lease ${hex} keepalived with TTL\\(60\\)`));
    assert.match(await etcdctl('lease', 'revoke', hex), new RegExp(`lease ${hex} revoked`));
    assert.equal(await etcdctl('get', 'ctl/leased'), '');
    assert.match(await etcdctl('lease', 'timetolive', hex), /already expired/);
  });
});
