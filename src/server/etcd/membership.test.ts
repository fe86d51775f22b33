// The Cluster API's member changes and their errors, over a fake membership
// backend: each refusal maps to etcd's own status (rpctypes), etcdctl's
// `member add --learner` / `promote` / `list` work against it, URLs name the
// member by their fragment, and a removed member refuses everything but Status.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { ConfigChangeInProgressError, InvalidConfigChangeError, LeaderNotReadyError, NotCaughtUpError, NotLeaderError } from '../../core/errors.js';
import { nodeId } from '../../protocol/ids.js';
import { idFromName } from '../ids.js';
import { MembershipError, parsePeerUrl, parseFrame } from '../membership.js';
import type { ClusterMembership, MemberInfo } from './backend.js';
import { etcdStatusOf } from './errors.js';
import { LocalKvBackend } from './local-backend.js';
import { callUnary, rawClient, runEtcdctl, startTestServer, type EtcdctlRun, type TestServer } from './test-util.js';

/** A membership backend whose members live in a list; `fail` makes the next change throw. */
class FakeBackend extends LocalKvBackend {
  list: MemberInfo[] = [{ id: idFromName('c', 'n1'), name: 'n1', peerURLs: ['http://127.0.0.1:1'], clientURLs: ['http://127.0.0.1:2'], isLearner: false }];
  fail: Error | null = null;
  isRemoved = false;
  added: { peerURLs: readonly string[]; isLearner: boolean }[] = [];
  readonly membership: ClusterMembership;
  constructor() {
    super();
    const check = (): void => {
      const f = this.fail;
      this.fail = null;
      if (f !== null) throw f;
    };
    const find = (id: bigint): MemberInfo => {
      const m = this.list.find((x) => x.id === id);
      if (m === undefined) throw new MembershipError('memberNotFound', 'no such member');
      return m;
    };
    this.membership = {
      add: async (peerURLs, isLearner) => {
        check();
        this.added.push({ peerURLs, isLearner });
        const p = parsePeerUrl(peerURLs[0] ?? '');
        const name = p.nodeId ?? 'm-0';
        const m = { id: idFromName('c', name), name, peerURLs: [`http://${p.address}`], clientURLs: [], isLearner: true };
        this.list.push(m);
        return m;
      },
      remove: async (id) => {
        check();
        find(id);
        this.list = this.list.filter((x) => x.id !== id);
      },
      promote: async (id) => {
        check();
        const m = find(id);
        if (!m.isLearner) throw new MembershipError('notLearner', 'a voter');
        this.list = this.list.map((x) => (x.id === id ? { ...x, isLearner: false } : x));
      },
      update: async (id, urls) => {
        check();
        find(id);
        this.list = this.list.map((x) => (x.id === id ? { ...x, peerURLs: [...urls] } : x));
      },
    };
  }
  override members(): readonly MemberInfo[] {
    return this.list;
  }
  removed(): boolean {
    return this.isRemoved;
  }
}



describe('membership errors and URLs', () => {
  it('etcdStatusOf maps membership refusals to etcd\'s statuses', () => {
    const cases: [Error, grpc.status, string][] = [
      [new MembershipError('memberNotFound', 'x'), grpc.status.NOT_FOUND, 'etcdserver: member not found'],
      [new MembershipError('memberExists', 'x'), grpc.status.FAILED_PRECONDITION, 'etcdserver: member ID already exist'],
      [new MembershipError('peerUrlExists', 'x'), grpc.status.FAILED_PRECONDITION, 'etcdserver: Peer URLs already exists'],
      [new MembershipError('notLearner', 'x'), grpc.status.FAILED_PRECONDITION, 'etcdserver: can only promote a learner member'],
      [new MembershipError('badUrls', 'x'), grpc.status.INVALID_ARGUMENT, 'etcdserver: given member URLs are invalid'],
      [new NotCaughtUpError(nodeId('n4'), 1, 100), grpc.status.FAILED_PRECONDITION, 'etcdserver: can only promote a learner member which is in sync with leader'],
      [new NotLeaderError(null), grpc.status.FAILED_PRECONDITION, 'etcdserver: not leader'],
    ];
    for (const [err, code, message] of cases) assert.deepEqual(etcdStatusOf(err), { code, message }, err.message);
    const retry = etcdStatusOf(new ConfigChangeInProgressError(7));
    assert.equal(retry?.code, grpc.status.UNAVAILABLE);
    assert.match(retry?.message ?? '', /^etcdserver: the configuration change at index 7 has not committed yet/);
    assert.equal(etcdStatusOf(new LeaderNotReadyError(3))?.code, grpc.status.UNAVAILABLE);
    const invalid = etcdStatusOf(new InvalidConfigChangeError({ kind: 'remove', node: nodeId('n1') }, 'the last voter'));
    assert.equal(invalid?.code, grpc.status.FAILED_PRECONDITION);
  });

  it('peer URLs: http(s)://host:port, the fragment names the node', () => {
    assert.deepEqual(parsePeerUrl('http://127.0.0.1:7004#n4'), { address: '127.0.0.1:7004', nodeId: 'n4' });
    assert.deepEqual(parsePeerUrl('https://[::1]:7004'), { address: '[::1]:7004', nodeId: null });
    assert.deepEqual(parsePeerUrl('http://node-4.example:7004/'), { address: 'node-4.example:7004', nodeId: null });
    for (const bad of ['127.0.0.1:7004', 'http://127.0.0.1', 'ftp://a:1', 'http://a:1/path', 'http://a:1#bad/id', 'http://a:1?x=1']) {
      assert.throws(() => parsePeerUrl(bad), (e: unknown) => e instanceof MembershipError && e.code === 'badUrls', bad);
    }
  });

  it('membership channel frames are checked field by field', () => {
    const enc = (o: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(o));
    assert.deepEqual(parseFrame(enc({ t: 'removed?', index: 3 })), { t: 'removed?', index: 3 });
    assert.deepEqual(parseFrame(enc({ t: 'req', id: 1, op: 'promote', args: { id: 'n4' } })), { t: 'req', id: 1, op: 'promote', args: { id: 'n4' } });
    for (const bad of [{ t: 'req', id: 1, op: 'drop', args: {} }, { t: 'res', id: -1, ok: true }, { t: 'removedAt', index: 'x' }, [1], 'x', { t: 'res', id: 1, ok: false, code: 5 }]) {
      assert.equal(parseFrame(enc(bad)), null, JSON.stringify(bad));
    }
    assert.equal(parseFrame(Uint8Array.of(0xff, 0xfe)), null);
  });
});

describe('Cluster API member changes', () => {
  let srv: TestServer;
  let backend: FakeBackend;
  let client: grpc.Client;
  before(async () => {
    backend = new FakeBackend();
    srv = await startTestServer({ backend });
    client = rawClient(srv.address, 'Cluster');
  });
  after(async () => {
    client.close();
    await srv.close();
  });

  const etcdctl = (args: string[]): Promise<EtcdctlRun> => runEtcdctl([srv.address], args);

  it('etcdctl member add --learner names the member by the URL fragment; promote and list', async () => {
    const add = await etcdctl(['member', 'add', 'n4', '--learner', '--peer-urls', 'http://127.0.0.1:7004#n4']);
    assert.equal(add.code, 0, add.stderr);
    assert.match(add.stdout, new RegExp(`Member\\s+${idFromName('c', 'n4').toString(16)} added to cluster`));
    assert.deepEqual(backend.added, [{ peerURLs: ['http://127.0.0.1:7004#n4'], isLearner: true }]);
    backend.fail = new NotCaughtUpError(nodeId('n4'), 0, 10);
    const early = await etcdctl(['member', 'promote', idFromName('c', 'n4').toString(16)]);
    assert.notEqual(early.code, 0);
    assert.match(early.stderr, /etcdserver: can only promote a learner member which is in sync with leader/);
    const ok = await etcdctl(['member', 'promote', idFromName('c', 'n4').toString(16)]);
    assert.equal(ok.code, 0, ok.stderr);
    const list = await etcdctl(['member', 'list']);
    assert.match(list.stdout, /, n4, http:\/\/127\.0\.0\.1:7004, , false/);
    const again = await etcdctl(['member', 'promote', idFromName('c', 'n4').toString(16)]);
    assert.match(again.stderr, /etcdserver: can only promote a learner member$/m);
  });

  it('raw calls: not found, bad URLs, a change in progress', async () => {
    await assert.rejects(callUnary(client, 'MemberRemove', { ID: '12345' }), { code: grpc.status.NOT_FOUND, details: 'etcdserver: member not found' });
    await assert.rejects(callUnary(client, 'MemberAdd', { peerURLs: ['127.0.0.1:9'] }), { code: grpc.status.INVALID_ARGUMENT, details: 'etcdserver: given member URLs are invalid' });
    backend.fail = new MembershipError('peerUrlExists', 'taken');
    await assert.rejects(callUnary(client, 'MemberAdd', { peerURLs: ['http://127.0.0.1:1'] }), { code: grpc.status.FAILED_PRECONDITION, details: 'etcdserver: Peer URLs already exists' });
    backend.fail = new ConfigChangeInProgressError(9);
    await assert.rejects(callUnary(client, 'MemberUpdate', { ID: idFromName('c', 'n1').toString(), peerURLs: ['http://127.0.0.1:3'] }), { code: grpc.status.UNAVAILABLE });
    const res = await callUnary<{ members: { name: string }[] }>(client, 'MemberRemove', { ID: idFromName('c', 'n4').toString() });
    assert.deepEqual(res.members.map((m) => m.name), ['n1']);
  });

  it('a removed member refuses requests (but answers Status) with etcd\'s text', async () => {
    backend.isRemoved = true;
    try {
      await assert.rejects(callUnary(rawClient(srv.address, 'KV'), 'Range', { key: Buffer.from('a') }),
        { code: grpc.status.FAILED_PRECONDITION, details: 'etcdserver: the member has been permanently removed from the cluster' });
      await assert.rejects(callUnary(client, 'MemberList', {}), { details: 'etcdserver: the member has been permanently removed from the cluster' });
      await callUnary(rawClient(srv.address, 'Maintenance'), 'Status', {});
    } finally {
      backend.isRemoved = false;
    }
  });
});
