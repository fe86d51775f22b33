// Issue 19, items 4 and 5: every check of the key-value, lease, watch,
// maintenance, cluster and auth calls against real node processes, through
// raw gRPC where etcdctl cannot say the request. Each refusal is asserted
// with etcd's exact code and message, and the store read back as root
// afterwards (revision and values) to show it changed nothing; each has an
// allowed counterpart, so the test fails both ways. Then tokens (forged,
// expired, of a deleted user, after a password change or a re-enable, from
// another member), the login throttle and a login storm, fuzzing of
// Authenticate and the user and role calls, and the etcd3 client's `auth`.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect, createServer, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { Etcd3, EtcdPermissionDeniedError } from 'etcd3';
import fc from 'fast-check';
import { signToken } from '../../src/server/auth/tokens.js';
import { rawClient } from '../../src/server/etcd/test-util.js';
import { TestCluster, type TestNode } from './harness.js';

type Obj = Record<string, unknown>;
type Callback = (err: grpc.ServiceError | null, res: Obj) => void;
type UnaryFn = (req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: Callback) => void;
const SERVICES = ['KV', 'Watch', 'Lease', 'Cluster', 'Maintenance', 'Auth'] as const;
type Service = (typeof SERVICES)[number];

const { PERMISSION_DENIED, UNAUTHENTICATED, INVALID_ARGUMENT, RESOURCE_EXHAUSTED, FAILED_PRECONDITION, INTERNAL, UNKNOWN, OK } = grpc.status;
const DENIED = 'etcdserver: permission denied';
const BAD_TOKEN = 'etcdserver: invalid auth token';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const b = (s: string): Buffer => Buffer.from(s, 'utf8');
/** The end of the range of keys starting with `prefix` (etcd's --prefix). */
function prefixEnd(prefix: string): Buffer {
  const e = b(prefix);
  e[e.length - 1] = (e[e.length - 1] as number) + 1;
  return e;
}

/** Every etcd service on one address, as raw grpc-js clients; a call carries `token` as metadata when given. */
class Etcd {
  private readonly clients: Record<Service, grpc.Client>;
  constructor(readonly address: string) {
    this.clients = Object.fromEntries(SERVICES.map((s) => [s, rawClient(address, s)])) as Record<Service, grpc.Client>;
  }

  static metadata(token: string | undefined): grpc.Metadata {
    const md = new grpc.Metadata();
    if (token !== undefined) md.set('token', token);
    return md;
  }

  call(service: Service, method: string, req: object, token?: string, deadlineMs = 10_000): Promise<Obj> {
    const client = this.clients[service];
    const fn = (client as unknown as Record<string, UnaryFn>)[method];
    if (fn === undefined) throw new Error(`no method ${service}.${method}`);
    return new Promise((resolve, reject) => {
      fn.call(client, req, Etcd.metadata(token), { deadline: Date.now() + deadlineMs }, (err, res) => (err !== null ? reject(err) : resolve(res)));
    });
  }

  kv(method: string, req: object, token?: string): Promise<Obj> {
    return this.call('KV', method, req, token);
  }

  auth(method: string, req: object, token?: string): Promise<Obj> {
    return this.call('Auth', method, req, token);
  }

  async login(name: string, password: string): Promise<string> {
    const r = await this.auth('Authenticate', { name, password });
    assert.equal(typeof r['token'], 'string');
    return r['token'] as string;
  }

  /** A Watch stream opened with `token`; its responses are collected in `responses`. */
  watch(token: string | undefined): { stream: grpc.ClientDuplexStream<object, Obj>; responses: Obj[]; error: () => grpc.ServiceError | null } {
    const client = this.clients.Watch as unknown as { Watch: (md: grpc.Metadata) => grpc.ClientDuplexStream<object, Obj> };
    const stream = client.Watch(Etcd.metadata(token));
    const responses: Obj[] = [];
    let error: grpc.ServiceError | null = null;
    stream.on('data', (r: Obj) => responses.push(r));
    stream.on('error', (e: grpc.ServiceError) => { error = e; });
    return { stream, responses, error: () => error };
  }

  /** Snapshot (a backup) as `token`: the bytes streamed, or the error. */
  snapshot(token: string | undefined): Promise<Buffer> {
    const client = this.clients.Maintenance as unknown as { Snapshot: (req: object, md: grpc.Metadata) => grpc.ClientReadableStream<Obj> };
    const stream = client.Snapshot({}, Etcd.metadata(token));
    const chunks: Buffer[] = [];
    return new Promise((resolve, reject) => {
      stream.on('data', (r: Obj) => chunks.push(r['blob'] as Buffer));
      stream.on('error', reject);
      stream.on('end', () => resolve(Buffer.concat(chunks)));
    });
  }

  close(): void {
    for (const c of Object.values(this.clients)) c.close();
  }
}

/** Asserts that `p` fails with exactly this gRPC code and etcd message. */
async function refused(p: Promise<unknown>, code: grpc.status, message: string | RegExp, what: string): Promise<void> {
  await assert.rejects(p, (e: grpc.ServiceError) => {
    assert.equal(e.code, code, `${what}: code ${e.code} (${e.details}), expected ${code}`);
    if (typeof message === 'string') assert.equal(e.details, message, what);
    else assert.match(e.details, message, what);
    return true;
  }, `${what} should have been refused`);
}

/**
 * A TCP relay on 127.0.0.1 whose connections reach `port` from `localAddress`
 * (any 127.x.y.z works on Linux loopback): the node sees that client address.
 */
async function relayFrom(localAddress: string, port: number): Promise<{ address: string; close(): void }> {
  const sockets = new Set<Socket>();
  const server = createServer((inbound) => {
    const out = connect({ host: '127.0.0.1', port, localAddress });
    for (const s of [inbound, out]) {
      sockets.add(s);
      s.on('error', () => { inbound.destroy(); out.destroy(); });
      s.on('close', () => { inbound.destroy(); out.destroy(); sockets.delete(s); });
    }
    inbound.pipe(out);
    out.pipe(inbound);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const relayPort = (server.address() as { port: number }).port;
  return {
    address: `127.0.0.1:${relayPort}`,
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

/**
 * Users and data before auth is enabled: root; alice with READWRITE on /a/
 * (role a-rw) and WRITE alone on /w/ (role w-only); bob and carol with a-rw
 * (their tokens are invalidated later); keys /a/1, /b/x and /w/k.
 */
async function setUp(e: Etcd): Promise<void> {
  for (const [name, password] of [['root', 'rootpw'], ['alice', 'alicepw'], ['bob', 'bobpw'], ['carol', 'carolpw']] as const) {
    await e.auth('UserAdd', { name, password });
  }
  await e.auth('RoleAdd', { name: 'root' });
  await e.auth('UserGrantRole', { user: 'root', role: 'root' });
  await e.auth('RoleAdd', { name: 'a-rw' });
  await e.auth('RoleGrantPermission', { name: 'a-rw', perm: { permType: 'READWRITE', key: b('/a/'), range_end: prefixEnd('/a/') } });
  await e.auth('RoleAdd', { name: 'w-only' });
  await e.auth('RoleGrantPermission', { name: 'w-only', perm: { permType: 'WRITE', key: b('/w/'), range_end: prefixEnd('/w/') } });
  for (const u of ['alice', 'bob', 'carol']) await e.auth('UserGrantRole', { user: u, role: 'a-rw' });
  await e.auth('UserGrantRole', { user: 'alice', role: 'w-only' });
  await e.kv('Put', { key: b('/a/1'), value: b('one') });
  await e.kv('Put', { key: b('/b/x'), value: b('secret') });
  await e.kv('Put', { key: b('/w/k'), value: b('w0') });
  await e.auth('AuthEnable', {});
}

describe('etcd auth: every check, tokens, logins, fuzzing (3 real nodes)', { timeout: 120_000 }, () => {
  let c: TestCluster;
  let leader: TestNode;
  let e: Etcd; // the leader's endpoint
  let others: Etcd[]; // the followers'
  let root: string;
  let alice: string;

  /** The whole key space as root: revision and every key's value and mod revision. */
  async function kvState(): Promise<{ revision: string; kvs: string[] }> {
    const r = await e.kv('Range', { key: Buffer.from([0]), range_end: Buffer.from([0]) }, root);
    const kvs = (r['kvs'] as { key: Buffer; value: Buffer; mod_revision: string }[]).map((kv) => `${kv.key.toString()}=${kv.value.toString()}@${kv.mod_revision}`);
    return { revision: (r['header'] as Obj)['revision'] as string, kvs };
  }

  /** Refused as PERMISSION_DENIED (or `code`/`message`), and the store as it was. */
  async function deniedNoChange(what: string, p: () => Promise<unknown>, code: grpc.status = PERMISSION_DENIED, message = DENIED): Promise<void> {
    const before = await kvState();
    await refused(p(), code, message, what);
    assert.deepEqual(await kvState(), before, `${what} changed the store`);
  }

  async function authState(): Promise<string> {
    const st = await e.auth('AuthStatus', {}, root);
    const users = await e.auth('UserList', {}, root);
    const roles = await e.auth('RoleList', {}, root);
    const perms = [];
    for (const role of roles['roles'] as string[]) perms.push(JSON.stringify(await e.auth('RoleGet', { role }, root).then((r) => r['perm'])));
    const grants = [];
    for (const name of users['users'] as string[]) grants.push(JSON.stringify(await e.auth('UserGet', { name }, root).then((r) => r['roles'])));
    return JSON.stringify({ enabled: st['enabled'], rev: st['authRevision'], users: users['users'], roles: roles['roles'], perms, grants });
  }

  before(async () => {
    c = await TestCluster.start({ nodes: 3, mode: 'push', extra: { bcryptCost: 4 } });
    leader = await c.waitForLeader();
    e = new Etcd(leader.endpoint);
    others = c.nodes.filter((n) => n !== leader).map((n) => new Etcd(n.endpoint));
    await setUp(e);
    root = await e.login('root', 'rootpw');
    alice = await e.login('alice', 'alicepw');
  });

  after(async () => {
    e?.close();
    for (const o of others ?? []) o.close();
    await c?.close();
  });

  it('Range, Put, DeleteRange: refused outside the grant, with etcd\'s error, changing nothing', async () => {
    // allowed
    const got = await e.kv('Range', { key: b('/a/'), range_end: prefixEnd('/a/') }, alice);
    assert.deepEqual((got['kvs'] as { value: Buffer }[]).map((kv) => kv.value.toString()), ['one']);
    await e.kv('Put', { key: b('/a/2'), value: b('two') }, alice);
    await e.kv('Put', { key: b('/w/k'), value: b('w1') }, alice); // WRITE without READ: a plain put is fine
    await e.kv('DeleteRange', { key: b('/a/2') }, alice);
    // refused
    await deniedNoChange('Range outside', () => e.kv('Range', { key: b('/b/x') }, alice));
    await deniedNoChange('Range straddling the grant', () => e.kv('Range', { key: b('/a/'), range_end: b('/b0') }, alice));
    await deniedNoChange('Range of a write-only key', () => e.kv('Range', { key: b('/w/k') }, alice));
    await deniedNoChange('Put outside', () => e.kv('Put', { key: b('/b/x'), value: b('hacked') }, alice));
    await deniedNoChange('Put with prev_kv, WRITE without READ', () => e.kv('Put', { key: b('/w/k'), value: b('w2'), prev_kv: true }, alice));
    await deniedNoChange('DeleteRange outside', () => e.kv('DeleteRange', { key: b('/b/x') }, alice));
    await deniedNoChange('DeleteRange of everything', () => e.kv('DeleteRange', { key: Buffer.from([0]), range_end: Buffer.from([0]) }, alice));
    await deniedNoChange('DeleteRange with prev_kv, WRITE without READ', () => e.kv('DeleteRange', { key: b('/w/k'), prev_kv: true }, alice));
    await deniedNoChange('Put without a token', () => e.kv('Put', { key: b('/a/1'), value: b('anon') }), INVALID_ARGUMENT, 'etcdserver: user name is empty');
    await deniedNoChange('Range without a token', () => e.kv('Range', { key: b('/a/1') }), INVALID_ARGUMENT, 'etcdserver: user name is empty');
    // the allowed counterpart of the prev_kv refusal: with READ too (as root), it answers the previous value
    const put = await e.kv('Put', { key: b('/w/k'), value: b('w3'), prev_kv: true }, root);
    assert.equal((put['prev_kv'] as { value: Buffer }).value.toString(), 'w1');
  });

  it('Txn: a compare, a success op, a failure op (compare failing) or a nested op outside is refused', async () => {
    const put = (key: string, value: string): object => ({ request_put: { key: b(key), value: b(value) } });
    const cmp = (key: string, value: string): object => ({ result: 'EQUAL', target: 'VALUE', key: b(key), value: b(value) });
    // allowed: everything inside /a/, in both branches
    const ok = await e.kv('Txn', { compare: [cmp('/a/1', 'one')], success: [put('/a/t', 'yes')], failure: [{ request_range: { key: b('/a/1') } }] }, alice);
    assert.equal(ok['succeeded'], true);
    const nestedOk = await e.kv('Txn', { compare: [], success: [{ request_txn: { compare: [], success: [put('/a/n', '1')], failure: [] } }], failure: [] }, alice);
    assert.equal(nestedOk['succeeded'], true);
    await deniedNoChange('Txn with a compare outside', () =>
      e.kv('Txn', { compare: [cmp('/b/x', 'secret')], success: [put('/a/t', 'no')], failure: [] }, alice));
    await deniedNoChange('Txn with a success op outside', () =>
      e.kv('Txn', { compare: [cmp('/a/1', 'one')], success: [put('/b/x', 'no')], failure: [] }, alice));
    await deniedNoChange('Txn with a failure op outside, the compare failing', () =>
      e.kv('Txn', { compare: [cmp('/a/1', 'not it')], success: [put('/a/t', 'no')], failure: [put('/b/x', 'no')] }, alice));
    await deniedNoChange('Txn with a failure-branch read outside (a read-only txn)', () =>
      e.kv('Txn', { compare: [cmp('/a/1', 'not it')], success: [], failure: [{ request_range: { key: b('/b/x') } }] }, alice));
    await deniedNoChange('Txn with a nested txn op outside', () =>
      e.kv('Txn', { compare: [], success: [{ request_txn: { compare: [], success: [put('/a/n', '2')], failure: [{ request_delete_range: { key: b('/b/x') } }] } }], failure: [] }, alice));
  });

  it('Leases: a put onto, a revoke of, and the keys of a lease that holds a key outside the grant are refused', async () => {
    const lease = (await e.call('Lease', 'LeaseGrant', { TTL: '60' }, root))['ID'] as string;
    await e.kv('Put', { key: b('/b/leased'), value: b('l'), lease }, root);
    const own = (await e.call('Lease', 'LeaseGrant', { TTL: '60' }, alice))['ID'] as string;
    // allowed: alice's own lease, with her own keys
    await e.kv('Put', { key: b('/a/leased'), value: b('l'), lease: own }, alice);
    const ttlOwn = await e.call('Lease', 'LeaseTimeToLive', { ID: own, keys: true }, alice);
    assert.deepEqual((ttlOwn['keys'] as Buffer[]).map(String), ['/a/leased']);
    const noKeys = await e.call('Lease', 'LeaseTimeToLive', { ID: lease }, alice); // without keys: a valid identity is enough
    assert.ok(Number(noKeys['TTL']) > 0);
    const leases = await e.call('Lease', 'LeaseLeases', {}, alice);
    assert.ok((leases['leases'] as { ID: string }[]).some((l) => l.ID === lease));
    // refused
    await deniedNoChange('Put attaching a key to a lease that holds a key outside', () => e.kv('Put', { key: b('/a/x'), value: b('v'), lease }, alice));
    await deniedNoChange('LeaseRevoke of a lease with a key outside', () => e.call('Lease', 'LeaseRevoke', { ID: lease }, alice));
    await deniedNoChange('LeaseTimeToLive with keys outside', () => e.call('Lease', 'LeaseTimeToLive', { ID: lease, keys: true }, alice));
    await deniedNoChange('LeaseGrant without a token', () => e.call('Lease', 'LeaseGrant', { TTL: '60' }), INVALID_ARGUMENT, 'etcdserver: user name is empty');
    const ttl = await e.call('Lease', 'LeaseTimeToLive', { ID: lease, keys: true }, root);
    assert.ok(Number(ttl['TTL']) > 0, 'the lease was revoked');
    assert.deepEqual((ttl['keys'] as Buffer[]).map(String), ['/b/leased']);
    // allowed: alice revokes her own lease (its key goes with it); root revokes the other
    await e.call('Lease', 'LeaseRevoke', { ID: own }, alice);
    assert.equal((await e.kv('Range', { key: b('/a/leased') }, alice))['count'], '0');
    await e.call('Lease', 'LeaseRevoke', { ID: lease }, root);
    assert.equal((await e.kv('Range', { key: b('/b/leased') }, root))['count'], '0');
  });

  it('Watch: a watch outside is cancelled at creation; a watch whose permission is revoked is cancelled with the reason, and sees no more', async () => {
    const w = e.watch(alice);
    try {
      w.stream.write({ create_request: { key: b('/b/x') } });
      const until = async (pred: () => boolean, what: string): Promise<void> => {
        const deadline = Date.now() + 5000;
        while (!pred()) {
          if (Date.now() > deadline) assert.fail(`${what}; got ${JSON.stringify(w.responses)}`);
          await sleep(20);
        }
      };
      await until(() => w.responses.length >= 1, 'no answer to the create');
      const refusedCreate = w.responses[0] as Obj;
      assert.equal(refusedCreate['canceled'], true);
      assert.equal(refusedCreate['cancel_reason'], DENIED);
      // allowed: a watch on /a/ sees alice's put
      w.stream.write({ create_request: { key: b('/a/'), range_end: prefixEnd('/a/') } });
      await until(() => w.responses.some((r) => r['created'] === true && r['canceled'] !== true), 'the watch on /a/ was not created');
      const id = (w.responses.find((r) => r['created'] === true && r['canceled'] !== true) as Obj)['watch_id'];
      await e.kv('Put', { key: b('/a/w'), value: b('1') }, root);
      const events = (): string[] => w.responses.flatMap((r) => ((r['events'] ?? []) as { kv: { key: Buffer; value: Buffer } }[]).map((ev) => `${ev.kv.key.toString()}=${ev.kv.value.toString()}`));
      await until(() => events().includes('/a/w=1'), 'the put on /a/w was not seen');
      // alice loses a-rw: the watcher is cancelled with the reason, and later puts reach it no more
      await e.auth('UserRevokeRole', { name: 'alice', role: 'a-rw' }, root);
      await until(() => w.responses.some((r) => r['watch_id'] === id && r['canceled'] === true), 'the watcher was not cancelled');
      assert.equal((w.responses.find((r) => r['watch_id'] === id && r['canceled'] === true) as Obj)['cancel_reason'], DENIED);
      await e.kv('Put', { key: b('/a/w'), value: b('2') }, root);
      await sleep(300);
      assert.deepEqual(events(), ['/a/w=1']);
      assert.equal(w.error(), null);
    } finally {
      w.stream.cancel();
      await e.auth('UserGrantRole', { user: 'alice', role: 'a-rw' }, root);
    }
  });

  it('Compact, Maintenance and Cluster calls need root', async () => {
    const rev = Number((await kvState()).revision);
    await deniedNoChange('Compact', () => e.kv('Compact', { revision: String(rev - 1) }, alice));
    // not compacted: root still reads the revision before
    await e.kv('Range', { key: b('/a/1'), revision: String(rev - 1) }, root);
    await deniedNoChange('Status', () => e.call('Maintenance', 'Status', {}, alice));
    await deniedNoChange('Snapshot', () => e.snapshot(alice));
    const st = await e.call('Maintenance', 'Status', {}, root);
    const leaderId = st['leader'] as string;
    const members = (): Promise<string> => e.call('Cluster', 'MemberList', {}, alice).then((r) => JSON.stringify(r['members']));
    const before = await members(); // anyone may list
    const target = (JSON.parse(before) as { ID: string }[]).find((m) => m.ID !== leaderId)?.ID as string;
    await deniedNoChange('MoveLeader', () => e.call('Maintenance', 'MoveLeader', { targetID: target }, alice));
    await deniedNoChange('MemberAdd', () => e.call('Cluster', 'MemberAdd', { peerURLs: ['http://127.0.0.1:9#n9'], isLearner: true }, alice));
    await deniedNoChange('MemberRemove', () => e.call('Cluster', 'MemberRemove', { ID: target }, alice));
    await deniedNoChange('MemberPromote', () => e.call('Cluster', 'MemberPromote', { ID: target }, alice));
    await deniedNoChange('MemberUpdate', () => e.call('Cluster', 'MemberUpdate', { ID: target, peerURLs: ['http://127.0.0.1:9'] }, alice));
    assert.equal(await members(), before);
    assert.equal((await e.call('Maintenance', 'Status', {}, root))['leader'], leaderId);
    // root may: a backup, a learner added, updated, refused promotion for not being caught up (past the auth check), removed
    assert.ok((await e.snapshot(root)).byteLength > 0);
    const added = await e.call('Cluster', 'MemberAdd', { peerURLs: ['http://127.0.0.1:9#n9'], isLearner: true }, root);
    const n9 = (added['member'] as { ID: string }).ID;
    await e.call('Cluster', 'MemberUpdate', { ID: n9, peerURLs: ['http://127.0.0.1:10'] }, root);
    await refused(e.call('Cluster', 'MemberPromote', { ID: n9 }, root), FAILED_PRECONDITION, 'etcdserver: can only promote a learner member which is in sync with leader', 'promoting a learner that never ran');
    await e.call('Cluster', 'MemberRemove', { ID: n9 }, root);
    assert.equal(await members(), before);
    await e.kv('Compact', { revision: String(rev - 1) }, root);
    await refused(e.kv('Range', { key: b('/a/1'), revision: String(rev - 2) }, root), grpc.status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision has been compacted', 'a read below the compaction');
    // MoveLeader last: the leader moves, and the other tests ask any node
    await e.call('Maintenance', 'MoveLeader', { targetID: target }, root);
    assert.equal((await e.call('Maintenance', 'Status', {}, root))['leader'], target);
  });

  it('every Auth write (and the user and role lists) by a non-root user is refused and changes nothing', async () => {
    const before = await authState();
    const calls: [string, object][] = [
      ['AuthEnable', {}], ['AuthDisable', {}],
      ['UserAdd', { name: 'mallory', password: 'x' }], ['UserDelete', { name: 'bob' }], ['UserChangePassword', { name: 'root', password: 'x' }],
      ['UserGrantRole', { user: 'alice', role: 'root' }], ['UserRevokeRole', { name: 'bob', role: 'a-rw' }],
      ['RoleAdd', { name: 'evil' }], ['RoleDelete', { role: 'w-only' }],
      ['RoleGrantPermission', { name: 'a-rw', perm: { permType: 'READWRITE', key: Buffer.from([0]), range_end: Buffer.from([0]) } }],
      ['RoleRevokePermission', { role: 'a-rw', key: b('/a/'), range_end: prefixEnd('/a/') }],
      ['UserList', {}], ['RoleList', {}], ['UserGet', { name: 'root' }], ['RoleGet', { role: 'root' }],
    ];
    for (const [method, req] of calls) await deniedNoChange(`${method} by alice`, () => e.auth(method, req, alice));
    assert.equal(await authState(), before);
    // allowed: alice looks at herself and her own roles
    assert.deepEqual(((await e.auth('UserGet', { name: 'alice' }, alice))['roles'] as string[]).sort(), ['a-rw', 'w-only']);
    assert.equal(((await e.auth('RoleGet', { role: 'a-rw' }, alice))['perm'] as unknown[]).length, 1);
  });

  it('tokens: forged, of a deleted user, after a password change, after auth disable and enable: invalid; one member\'s token holds on the others', async () => {
    // A token from one member holds on the others.
    for (const o of others) assert.equal(((await o.kv('Range', { key: b('/a/1') }, alice))['kvs'] as unknown[]).length, 1);
    const fromOther = await (others[0] as Etcd).login('alice', 'alicepw');
    await e.kv('Range', { key: b('/a/1') }, fromOther);
    await (others[1] as Etcd).kv('Range', { key: b('/a/1') }, fromOther);

    const bad = (token: string, what: string): Promise<void> => refused(e.kv('Range', { key: b('/a/1') }, token), UNAUTHENTICATED, BAD_TOKEN, what);
    const cut = alice.lastIndexOf('.');
    const mac = alice.slice(cut + 1);
    const i = 5;
    const tampered = alice.slice(0, cut + 1) + mac.slice(0, i) + (mac[i] === 'A' ? 'B' : 'A') + mac.slice(i + 1);
    await bad(tampered, 'a token with a tampered mac');
    const [, rev, exp, nonce] = alice.slice(0, cut).split('.') as [string, string, string, string];
    await bad([Buffer.from('root').toString('base64url'), rev, exp, nonce, mac].join('.'), 'alice\'s token with its user changed to root');
    await bad(signToken(randomBytes(32), { user: 'root', passwordRevision: 1, expiresAtMs: Date.now() + 60_000 }), 'a token signed with another key');
    await bad(signToken(randomBytes(32), { user: 'alice', passwordRevision: Number(rev), expiresAtMs: Date.now() + 60_000 }), 'alice\'s claims signed with another key');
    await bad('nonsense', 'a token that is no token');
    await bad('x'.repeat(5000), 'an oversized token');

    // A user deleted while its token lives; re-added under the same name and password, the old token still does not hold.
    const bob = await e.login('bob', 'bobpw');
    await e.kv('Put', { key: b('/a/bob'), value: b('1') }, bob);
    await e.auth('UserDelete', { name: 'bob' }, root);
    await deniedNoChange('a put with a deleted user\'s token', () => e.kv('Put', { key: b('/a/bob'), value: b('2') }, bob), UNAUTHENTICATED, BAD_TOKEN);
    await e.auth('UserAdd', { name: 'bob', password: 'bobpw' }, root);
    await e.auth('UserGrantRole', { user: 'bob', role: 'a-rw' }, root);
    await deniedNoChange('the old token of a re-added user', () => e.kv('Put', { key: b('/a/bob'), value: b('2') }, bob), UNAUTHENTICATED, BAD_TOKEN);
    await e.kv('Put', { key: b('/a/bob'), value: b('2') }, await e.login('bob', 'bobpw'));

    // A password changed.
    const carol = await e.login('carol', 'carolpw');
    await e.kv('Range', { key: b('/a/1') }, carol);
    await e.auth('UserChangePassword', { name: 'carol', password: 'newpw' }, root);
    await deniedNoChange('a token from before a password change', () => e.kv('Put', { key: b('/a/c'), value: b('1') }, carol), UNAUTHENTICATED, BAD_TOKEN);
    await refused(e.login('carol', 'carolpw'), INVALID_ARGUMENT, 'etcdserver: authentication failed, invalid user ID or password', 'the old password');
    await e.kv('Range', { key: b('/a/1') }, await e.login('carol', 'newpw'));

    // Auth disabled and enabled again: a new key, and no token from before holds.
    const aliceBefore = alice;
    await e.auth('AuthDisable', {}, root);
    await e.auth('AuthEnable', {});
    await bad(aliceBefore, 'a token from before auth was disabled and enabled');
    await bad(root, 'root\'s token from before auth was disabled and enabled');
    root = await e.login('root', 'rootpw');
    alice = await e.login('alice', 'alicepw');
    await e.kv('Range', { key: b('/a/1') }, alice);
  });

  it('logins: failures from one address are slowed down while another address logs in at once; a storm is answered and puts go on', async (t) => {
    const port = leader.member.client.port;
    const r2 = await relayFrom('127.0.0.2', port);
    const r3 = await relayFrom('127.0.0.3', port);
    const from2 = new Etcd(r2.address);
    const from3 = new Etcd(r3.address);
    try {
      const failed = 'etcdserver: authentication failed, invalid user ID or password';
      for (let k = 0; k < 3; k++) await refused(from3.login('alice', 'wrong'), INVALID_ARGUMENT, failed, `wrong password ${k + 1}`);
      await refused(from3.login('alice', 'wrong'), RESOURCE_EXHAUSTED, /^etcdserver: too many failed authentication attempts from this client; retry in \d+ s$/, 'a 4th wrong password at once');
      await refused(from3.login('alice', 'alicepw'), RESOURCE_EXHAUSTED, /too many failed authentication attempts/, 'even the right password, at once');
      const t0 = Date.now();
      await e.kv('Range', { key: b('/a/1') }, await from2.login('alice', 'alicepw'));
      assert.ok(Date.now() - t0 < 2000, 'another address was slowed down');
    } finally {
      from2.close();
      from3.close();
      r2.close();
      r3.close();
    }

    // A storm of 300 logins from 100 addresses (3 each: under the throttle, so they reach the hasher's queue).
    const relays = await Promise.all(Array.from({ length: 100 }, (_, k) => relayFrom(`127.0.1.${k + 1}`, port)));
    const clients = relays.map((r) => new Etcd(r.address));
    try {
      let storming = true;
      const puts = (async () => {
        let n = 0;
        while (storming || n < 10) await e.kv('Put', { key: b(`/a/storm-${n}`), value: b(String(n++)) }, root);
        return n;
      })();
      const answers = await Promise.all(clients.flatMap((cl) => [0, 1, 2].map(() => cl.auth('Authenticate', { name: 'alice', password: 'alicepw' }).then(
        () => 'ok',
        (err: grpc.ServiceError) => `${err.code} ${err.details}`,
      ))));
      storming = false;
      const counts = new Map<string, number>();
      for (const a of answers) counts.set(a, (counts.get(a) ?? 0) + 1);
      for (const a of counts.keys()) assert.ok(a === 'ok' || a === `${RESOURCE_EXHAUSTED} etcdserver: too many requests`, `a storm login answered ${a}: ${JSON.stringify([...counts])}`);
      assert.ok((counts.get('ok') ?? 0) > 0, 'no login of the storm succeeded');
      const n = await puts;
      assert.ok(n >= 10);
      t.diagnostic(`storm answers: ${JSON.stringify([...counts])}; puts meanwhile: ${n}`);
    } finally {
      for (const cl of clients) cl.close();
      for (const r of relays) r.close();
    }
  });

  it('bad names and passwords, wrong passwords and unknown users: a clear error, and nothing changes', async () => {
    const before = await authState();
    const malformed = (what: string): RegExp => new RegExp(`^etcdserver: malformed request: ${what}`);
    const cases: [string, string, object, grpc.status, string | RegExp][] = [
      ['a 256-byte user name', 'UserAdd', { name: 'é'.repeat(128), password: 'pw' }, INVALID_ARGUMENT, malformed('user name is 256 bytes long; at most 255$')],
      ['a huge user name', 'UserAdd', { name: 'n'.repeat(1 << 20), password: 'pw' }, INVALID_ARGUMENT, malformed('user name is 1048576 bytes long; at most 255$')],
      ['a user name with a lone surrogate', 'UserAdd', { name: 'x\uD800', password: 'pw' }, INVALID_ARGUMENT, malformed('name is not well-formed UTF-8$')],
      ['a password with a lone surrogate', 'UserAdd', { name: 'dave', password: 'pw\uDFFF' }, INVALID_ARGUMENT, malformed('password is not well-formed UTF-8$')],
      ['an empty user name', 'UserAdd', { name: '', password: 'pw' }, INVALID_ARGUMENT, 'etcdserver: user name is empty'],
      ['a password over 72 bytes', 'UserAdd', { name: 'dave', password: 'p'.repeat(73) }, INVALID_ARGUMENT, malformed('password is longer than 72 bytes')],
      ['a 2 KB password', 'UserChangePassword', { name: 'alice', password: 'p'.repeat(2048) }, INVALID_ARGUMENT, malformed('password is longer than 1024 bytes')],
      ['an empty role name', 'RoleAdd', { name: '' }, INVALID_ARGUMENT, 'etcdserver: role name is empty'],
      ['a 256-byte role name', 'RoleAdd', { name: 'r'.repeat(256) }, INVALID_ARGUMENT, malformed('role name is 256 bytes long; at most 255$')],
      ['a role name with a lone surrogate', 'UserGrantRole', { user: 'alice', role: '\uDC00' }, INVALID_ARGUMENT, malformed('role is not well-formed UTF-8$')],
      ['a permission type out of range', 'RoleGrantPermission', { name: 'a-rw', perm: { permType: 7, key: b('/z') } }, INVALID_ARGUMENT, malformed('unknown permission type 7$')],
      ['a permission resource out of range', 'RoleGrantPermission', { name: 'a-rw', perm: { permType: 'READ', key: b('/z'), resource: 9 } }, INVALID_ARGUMENT, malformed('unknown permission resource 9$')],
      ['a permission key over 4096 bytes', 'RoleGrantPermission', { name: 'a-rw', perm: { permType: 'READ', key: Buffer.alloc(4097, 0x61) } }, INVALID_ARGUMENT, malformed('permission key is 4097 bytes long; at most 4096$')],
      ['no permission', 'RoleGrantPermission', { name: 'a-rw' }, INVALID_ARGUMENT, malformed('no permission given$')],
      ['an unknown user', 'UserGrantRole', { user: 'nobody', role: 'a-rw' }, FAILED_PRECONDITION, 'etcdserver: user name not found'],
      ['an unknown role', 'UserGrantRole', { user: 'alice', role: 'nothing' }, FAILED_PRECONDITION, 'etcdserver: role name not found'],
      ['deleting root while auth is on', 'UserDelete', { name: 'root' }, INVALID_ARGUMENT, 'etcdserver: invalid auth management'],
      ['revoking root\'s root role while auth is on', 'UserRevokeRole', { name: 'root', role: 'root' }, INVALID_ARGUMENT, 'etcdserver: invalid auth management'],
    ];
    for (const [what, method, req, code, message] of cases) await refused(e.auth(method, req, root), code, message, what);
    // Logins: a wrong password and an unknown user read alike; a malformed name is refused before it is looked up.
    const failed = 'etcdserver: authentication failed, invalid user ID or password';
    await refused(e.login('alice', 'wrong'), INVALID_ARGUMENT, failed, 'a wrong password');
    await refused(e.login('nobody', 'alicepw'), INVALID_ARGUMENT, failed, 'an unknown user');
    await refused(e.login('é'.repeat(128), 'pw'), INVALID_ARGUMENT, malformed('user name is 256 bytes long; at most 255$'), 'an oversized name at login');
    await refused(e.login('alice', 'p'.repeat(2048)), INVALID_ARGUMENT, malformed('password is longer than 1024 bytes'), 'a 2 KB password at login');
    await refused(e.login('alice\uD800', 'alicepw'), INVALID_ARGUMENT, malformed('name is not well-formed UTF-8$'), 'a name with a lone surrogate at login');
    assert.equal(await authState(), before);
    // the allowed counterpart at the limit: a 255-byte name, and 72-byte password, log in
    const longest = 'é'.repeat(127) + 'e';
    await e.auth('UserAdd', { name: longest, password: 'p'.repeat(72) }, root);
    await e.auth('UserGrantRole', { user: longest, role: 'a-rw' }, root);
    await e.kv('Range', { key: b('/a/1') }, await e.login(longest, 'p'.repeat(72)));
    await e.auth('UserDelete', { name: longest }, root);
    // anyone may: the member list, the auth status
    assert.ok(((await e.call('Cluster', 'MemberList', {}))['members'] as unknown[]).length >= 3);
    assert.equal((await e.auth('AuthStatus', {}))['enabled'], true);
  });

  it('fuzzing Authenticate and every user and role call: never INTERNAL, and the node keeps answering', async (t) => {
    const port = leader.member.client.port;
    const relay = await relayFrom('127.0.0.5', port); // failed logins throttle this address, not the test's
    const f = new Etcd(relay.address);
    try {
      const anyChar = fc.integer({ min: 0, max: 0xffff }).map((u) => String.fromCharCode(u)); // control characters, lone surrogates
      const name = fc.oneof(
        fc.constantFrom('', 'alice', 'root', 'a-rw', 'w-only', 'nobody', '\uD800', 'x\uDC00y', '\u0000\n\t', 'é'.repeat(128), 'é'.repeat(127) + 'e'),
        fc.string({ maxLength: 12 }),
        fc.string({ unit: anyChar, maxLength: 40 }),
        fc.integer({ min: 250, max: 300 }).map((n) => 'n'.repeat(n)),
        fc.constant('h'.repeat(200_000)),
      );
      const maybe = <T>(a: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.option(a, { nil: undefined });
      const password = fc.oneof(
        fc.constantFrom('', 'p', 'p'.repeat(72), 'p'.repeat(73), 'é'.repeat(36), 'é'.repeat(37), 'p'.repeat(2048), '\uD800'),
        fc.string({ unit: anyChar, maxLength: 80 }),
      );
      const key = fc.oneof(fc.uint8Array({ maxLength: 12 }).map((u) => Buffer.from(u)), fc.constant(Buffer.alloc(5000, 1)), fc.constant(Buffer.alloc(0)));
      const enumValue = fc.oneof(fc.constantFrom(0, 1, 2, 3, 'READ', 'WRITE', 'READWRITE', 'KV', 'QUEUE', 'METADATA'), fc.integer({ min: -3, max: 1 << 20 }));
      const perm = fc.option(fc.record({ permType: enumValue, key, range_end: key, resource: enumValue }, { requiredKeys: [] }), { nil: null });
      const requests: [string, fc.Arbitrary<object>][] = [
        ['Authenticate', fc.record({ name: maybe(name), password: maybe(password) })],
        ['UserAdd', fc.record({ name: maybe(name), password: maybe(password), options: fc.option(fc.record({ no_password: fc.boolean() }), { nil: null }) })],
        ['UserGet', fc.record({ name: maybe(name) })],
        ['UserList', fc.constant({})],
        ['UserDelete', fc.record({ name: maybe(name) })],
        ['UserChangePassword', fc.record({ name: maybe(name.filter((n) => n !== 'root')), password: maybe(password) })],
        ['UserGrantRole', fc.record({ user: maybe(name), role: maybe(name) })],
        ['UserRevokeRole', fc.record({ name: maybe(name), role: maybe(name) })],
        ['RoleAdd', fc.record({ name: maybe(name) })],
        ['RoleGet', fc.record({ role: maybe(name), all_resources: fc.boolean() })],
        ['RoleList', fc.constant({})],
        ['RoleDelete', fc.record({ role: maybe(name) })],
        ['RoleGrantPermission', fc.record({ name: maybe(name), perm })],
        ['RoleRevokePermission', fc.record({ role: maybe(name), key: maybe(key), range_end: maybe(key), resource: maybe(enumValue) })],
      ];
      const who = fc.constantFrom<'root' | 'alice' | 'none' | 'forged'>('root', 'root', 'alice', 'none', 'forged');
      const answers = new Map<string, number>();
      for (const [method, req] of requests) {
        await fc.assert(fc.asyncProperty(req, who, async (r, as) => {
          const token = as === 'root' ? root : as === 'alice' ? alice : as === 'forged' ? `${alice}x` : undefined;
          const code = await f.auth(method, r, token).then(() => OK, (err: grpc.ServiceError) => {
            assert.ok(err.code !== INTERNAL && err.code !== UNKNOWN, `${method} ${JSON.stringify(r).slice(0, 300)} as ${as}: ${err.code} ${err.details}`);
            assert.match(err.details, /^etcdserver: /);
            return err.code;
          });
          answers.set(`${method} ${code}`, (answers.get(`${method} ${code}`) ?? 0) + 1);
        }), { numRuns: 22 });
      }
      // Every node is up and answers, and root is still root (tokens from before the fuzzing may have gone with a password change).
      for (const n of c.nodes) assert.notEqual(n.process, null, `${n.id} died`);
      root = await e.login('root', 'rootpw');
      for (const o of [e, ...others]) await o.kv('Put', { key: b('/a/after-fuzz'), value: b('1') }, root);
      assert.ok([...answers.keys()].some((k) => k.endsWith(` ${OK}`)), 'no fuzzed call succeeded');
      t.diagnostic(`answers (method, gRPC code): ${JSON.stringify([...answers].sort())}`);
    } finally {
      f.close();
      relay.close();
    }
  });
});

describe('etcd auth with short-lived tokens (1 node, authTokenTtlSeconds 2)', { timeout: 60_000 }, () => {
  let c: TestCluster;
  let e: Etcd;

  before(async () => {
    c = await TestCluster.start({ nodes: 1, mode: 'push', extra: { bcryptCost: 4, authTokenTtlSeconds: 2 } });
    const n = await c.waitForLeader();
    e = new Etcd(n.endpoint);
    await setUp(e);
  });

  after(async () => {
    e?.close();
    await c?.close();
  });

  it('an expired token is "invalid auth token"; the etcd3 client with `auth` authenticates again and keeps working', async () => {
    const token = await e.login('alice', 'alicepw');
    await e.kv('Put', { key: b('/a/e'), value: b('1') }, token);
    const client = new Etcd3({ hosts: e.address, auth: { username: 'alice', password: 'alicepw' } });
    try {
      await client.put('/a/etcd3').value('v1');
      assert.equal(await client.get('/a/etcd3').string(), 'v1');
      await assert.rejects(client.put('/b/x').value('hacked').exec(), EtcdPermissionDeniedError);
      await assert.rejects(client.get('/b/x').string(), EtcdPermissionDeniedError);
      await sleep(2500); // past the TTL
      await refused(e.kv('Put', { key: b('/a/e'), value: b('2') }, token), UNAUTHENTICATED, BAD_TOKEN, 'an expired token');
      await client.put('/a/etcd3').value('v2');
      assert.equal(await client.get('/a/etcd3').string(), 'v2');
      const rootToken = await e.login('root', 'rootpw');
      assert.equal(((await e.kv('Range', { key: b('/b/x') }, rootToken))['kvs'] as { value: Buffer }[])[0]?.value.toString(), 'secret');
      assert.equal(((await e.kv('Range', { key: b('/a/e') }, rootToken))['kvs'] as { value: Buffer }[])[0]?.value.toString(), '1');
    } finally {
      client.close();
    }
  });
});
