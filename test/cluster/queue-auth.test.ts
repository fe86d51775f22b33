// Issue 19, item 4: permissions on the quorum queues and the metadata log,
// against a real 3-node cluster in push and pull mode. Roles are set up as an
// operator would: users and roles with etcdctl, queue and metadata
// permissions with `quorumlog role` (etcdctl cannot name those resources). A
// publisher may publish to and declare queues `orders.*` and append to the
// metadata log, but not consume or follow; a consumer may consume `orders.*`
// and follow the log, but not publish, declare or append. Each denied request
// is refused with etcd's status and text, and changes nothing (the queues'
// stats and the metadata image, read as root, are the same before and
// after). A consumer, and a follower of the log, whose permission is revoked
// while its stream is open sees the stream end, and its unacknowledged
// message goes back to the queue. Over AMQP (issue 20) the same users log in
// with PLAIN and the same permissions hold; wrong passwords and guest are
// refused.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import amqp from 'amqplib';
import { formatAddress } from '../../src/server/config.js';
import { CLI_PATH } from '../../src/cli/cluster.js';
import { loadEtcdProtos } from '../../src/server/etcd/server.js';
import { runEtcdctl } from '../../src/server/etcd/test-util.js';
import { metadataServiceClient } from '../../src/server/metadata/service.js';
import { queueServiceClient } from '../../src/server/queue/proto.js';
import { TestCluster, type TestNode } from './harness.js';

type Callback = (err: grpc.ServiceError | null, res: Record<string, unknown>) => void;
type Unary = (req: unknown, meta: grpc.Metadata, opts: grpc.CallOptions, cb: Callback) => void;
type Streaming = (req: unknown, meta: grpc.Metadata) => grpc.ClientReadableStream<Record<string, unknown>>;
type AnyClient = grpc.Client & Record<string, Unary & Streaming>;

const DEADLINE_MS = 10_000;

/** A client of one node's queue, metadata and auth services, as one user (its token; null: none; a string: that token). */
class Caller {
  private readonly queue: AnyClient;
  private readonly metadata: AnyClient;
  constructor(readonly endpoint: string, private readonly token: string | null) {
    const creds = grpc.credentials.createInsecure();
    this.queue = new (queueServiceClient())(endpoint, creds) as unknown as AnyClient;
    this.metadata = new (metadataServiceClient())(endpoint, creds) as unknown as AnyClient;
  }

  private meta(): grpc.Metadata {
    const m = new grpc.Metadata();
    if (this.token !== null) m.set('token', this.token);
    return m;
  }

  private unary(c: AnyClient, method: string, req: unknown): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      (c[method] as Unary).call(c, req, this.meta(), { deadline: Date.now() + DEADLINE_MS }, (err, res) => (err !== null ? reject(err) : resolve(res)));
    });
  }

  q(method: 'Declare' | 'Publish' | 'Ack' | 'Nack' | 'Stats', req: unknown): Promise<Record<string, unknown>> {
    return this.unary(this.queue, method, req);
  }

  md(method: 'Write' | 'GetImage', req: unknown): Promise<Record<string, unknown>> {
    return this.unary(this.metadata, method, req);
  }

  consume(queue: string): Stream {
    return new Stream((this.queue['Consume'] as Streaming).call(this.queue, { queue, prefetch: 10 }, this.meta()));
  }

  follow(fromOffset: number): Stream {
    return new Stream((this.metadata['Follow'] as Streaming).call(this.metadata, { from_offset: fromOffset }, this.meta()));
  }

  close(): void {
    this.queue.close();
    this.metadata.close();
  }
}

/** A server stream's messages as they come, and how it ended. */
class Stream {
  readonly messages: Record<string, unknown>[] = [];
  ended: grpc.ServiceError | 'ok' | null = null;
  private waiters: (() => void)[] = [];
  constructor(readonly call: grpc.ClientReadableStream<Record<string, unknown>>) {
    call.on('data', (m: Record<string, unknown>) => this.poke(() => this.messages.push(m)));
    call.on('error', (e: grpc.ServiceError) => this.poke(() => (this.ended ??= e)));
    call.on('end', () => this.poke(() => (this.ended ??= 'ok')));
  }

  private poke(f: () => void): void {
    f();
    for (const w of this.waiters.splice(0)) w();
  }

  /** Resolves once `cond` holds (checked on every event), or fails after `ms`. */
  async until(what: string, cond: () => boolean, ms = DEADLINE_MS): Promise<void> {
    const deadline = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}; messages ${JSON.stringify(this.messages)}, ended ${String(this.ended)}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 100);
      });
    }
  }

  /** The error the stream ended with (waits for it). */
  async error(): Promise<grpc.ServiceError> {
    await this.until('the stream to end', () => this.ended !== null);
    assert.notEqual(this.ended, 'ok', 'the stream ended without an error');
    return this.ended as grpc.ServiceError;
  }
}

/** A token for name:password from the etcd Auth service of `endpoint`. */
function authenticate(endpoint: string, name: string, password: string): Promise<string> {
  const Auth = (loadEtcdProtos()['etcdserverpb'] as grpc.GrpcObject)['Auth'] as grpc.ServiceClientConstructor;
  const c = new Auth(endpoint, grpc.credentials.createInsecure()) as unknown as AnyClient;
  return new Promise<string>((resolve, reject) => {
    (c['Authenticate'] as Unary).call(c, { name, password }, new grpc.Metadata(), { deadline: Date.now() + DEADLINE_MS }, (err, res) => {
      c.close();
      if (err !== null) reject(err);
      else resolve(String(res['token']));
    });
  });
}

/** Runs the quorumlog CLI; resolves with its exit code and output. */
function quorumlog(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI_PATH, ...args], { encoding: 'utf8', timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr });
    });
  });
}

/** Asserts that `p` fails with `code` and etcd's `message`. */
async function refused(p: Promise<unknown>, code: grpc.status, message: string, what: string): Promise<void> {
  await assert.rejects(p, (e: grpc.ServiceError) => {
    assert.equal(e.code, code, `${what}: ${e.code} ${e.details}`);
    assert.equal(e.details, message, what);
    return true;
  }, what);
}

const DENIED = 'etcdserver: permission denied';
const topic = (name: string): object => ({ record: { create_topic: { name, partitions: 1, configs: [] } } });

for (const mode of ['push', 'pull'] as const) {
  test(`queue and metadata permissions on a 3-node cluster: a denied request is refused and changes nothing; a revoked consumer's stream ends (${mode} mode)`, { timeout: 180_000 }, async () => {
    // bcrypt at its lowest cost keeps the test quick; the cost does not change what is checked.
    const c = await TestCluster.start({ nodes: 3, mode, extra: { bcryptCost: 4 } });
    const callers: Caller[] = [];
    try {
      const leader = await c.waitForLeader();
      const follower = c.nodes.find((n) => n !== leader) as TestNode;
      const ep = c.endpoints.join(',');
      const etcdctl = async (args: string[]): Promise<void> => {
        const r = await runEtcdctl(c.endpoints, args);
        assert.equal(r.code, 0, `etcdctl ${args.join(' ')}: ${r.stderr}`);
      };
      const cli = async (args: string[]): Promise<string> => {
        const r = await quorumlog([...args, '--endpoints', ep]);
        assert.equal(r.code, 0, `quorumlog ${args.join(' ')}: ${r.stdout}${r.stderr}`);
        return r.stdout;
      };

      // Users and roles (etcdctl); queue and metadata permissions (quorumlog role, while auth is still off).
      for (const [user, pw] of [['root', 'rootpw'], ['pub', 'pubpw'], ['sub', 'subpw']]) await etcdctl(['user', 'add', user as string, '--new-user-password', pw as string]);
      for (const role of ['publisher', 'consumer']) await etcdctl(['role', 'add', role]);
      assert.equal((await cli(['role', 'grant-permission', 'publisher', 'write', 'orders.', '--prefix', '--queue'])).trim(), 'Role publisher updated');
      await cli(['role', 'grant-permission', 'publisher', 'write', '--metadata']);
      await cli(['role', 'grant-permission', 'consumer', 'read', 'orders.', '--prefix', '--queue']);
      await cli(['role', 'grant-permission', 'consumer', 'read', '--metadata']);
      await etcdctl(['user', 'grant-role', 'pub', 'publisher']);
      await etcdctl(['user', 'grant-role', 'sub', 'consumer']);
      await etcdctl(['auth', 'enable']);
      // What the roles hold, on every resource (root only, now that auth is on).
      const shown = await cli(['role', 'get', 'publisher', '--user', 'root:rootpw']);
      assert.match(shown, /Queue Write:\n\t\[orders\., orders\/\) \(prefix orders\.\)\n/, shown);
      assert.match(shown, /Metadata Write:\n\tthe whole log\n/, shown);
      assert.match(shown, /Queue Read:\nQueue Write:/, 'the publisher reads no queue');
      const anonymous = await quorumlog(['role', 'get', 'publisher', '--endpoints', ep]);
      assert.equal(anonymous.code, 1);
      assert.match(anonymous.stdout, /etcdserver: user name is empty/);

      const as = async (n: TestNode, user: string | null, pw = `${user ?? ''}pw`): Promise<Caller> => {
        const caller = new Caller(n.endpoint, user === null ? null : await authenticate(n.endpoint, user, pw));
        callers.push(caller);
        return caller;
      };
      const root = await as(leader, 'root', 'rootpw');
      const pub = await as(follower, 'pub');
      const sub = await as(follower, 'sub');
      const anon = await as(follower, null);
      const forged = new Caller(follower.endpoint, 'not-a-token');
      callers.push(forged);

      // Allowed: root declares; the publisher declares and publishes under orders.; the consumer consumes it.
      await root.q('Declare', { queue: 'orders.new' });
      await root.q('Declare', { queue: 'billing' });
      assert.deepEqual(await pub.q('Declare', { queue: 'orders.paid', delivery_limit: 2, dead_letter_queue: 'orders.dead' }), { created: true });
      await root.q('Declare', { queue: 'orders.dead' });
      await pub.q('Publish', { queue: 'orders.new', body: Buffer.from('m1') });
      const consumer = sub.consume('orders.new');
      await consumer.until('the delivery of m1', () => consumer.messages.some((m) => m['delivery'] !== undefined));
      const consumerId = String((consumer.messages[0]?.['started'] as { consumer_id: string }).consumer_id);
      await pub.md('Write', topic('orders'));
      const follow = sub.follow(1);
      await follow.until('the record', () => follow.messages.length >= 1);

      // Stats of every queue: only what the caller may read.
      const names = (r: Record<string, unknown>): string[] => (r['queues'] as { queue: string }[]).map((q) => q.queue);
      assert.deepEqual(names(await sub.q('Stats', {})), ['orders.dead', 'orders.new', 'orders.paid']);
      assert.deepEqual(names(await pub.q('Stats', {})), []);
      assert.deepEqual(names(await root.q('Stats', {})), ['billing', 'orders.dead', 'orders.new', 'orders.paid']);

      const state = async (): Promise<string> => JSON.stringify([await root.q('Stats', {}), await root.md('GetImage', {})]);
      const before = await state();

      // Denied: each refused with etcd's status and text...
      await refused(pub.q('Publish', { queue: 'billing', body: Buffer.from('x') }), grpc.status.PERMISSION_DENIED, DENIED, 'publish outside orders.');
      await refused(pub.q('Declare', { queue: 'billing.x' }), grpc.status.PERMISSION_DENIED, DENIED, 'declare outside orders.');
      await refused(pub.q('Declare', { queue: 'orders.x', dead_letter_queue: 'billing' }), grpc.status.PERMISSION_DENIED, DENIED, 'declare with a dead-letter queue outside orders.');
      await refused(sub.q('Publish', { queue: 'orders.new', body: Buffer.from('x') }), grpc.status.PERMISSION_DENIED, DENIED, 'publish by the consumer');
      await refused(sub.q('Declare', { queue: 'orders.y' }), grpc.status.PERMISSION_DENIED, DENIED, 'declare by the consumer');
      await refused(pub.q('Ack', { consumer_id: consumerId, delivery_tags: [1] }), grpc.status.PERMISSION_DENIED, DENIED, 'ack by the publisher');
      await refused(pub.q('Nack', { consumer_id: consumerId, delivery_tags: [1] }), grpc.status.PERMISSION_DENIED, DENIED, 'nack by the publisher');
      await refused(pub.q('Nack', { consumer_id: consumerId, delivery_tags: [1], discard: true }), grpc.status.PERMISSION_DENIED, DENIED, 'nack (discard) by the publisher');
      await refused(pub.q('Stats', { queue: 'orders.new' }), grpc.status.PERMISSION_DENIED, DENIED, 'stats by the publisher');
      await refused(sub.q('Stats', { queue: 'billing' }), grpc.status.PERMISSION_DENIED, DENIED, 'stats outside orders.');
      await refused(sub.q('Stats', { queue: 'billing.nonexistent' }), grpc.status.PERMISSION_DENIED, DENIED, 'stats of a queue that does not exist: refused before its existence is told');
      const pubConsume = pub.consume('orders.new');
      const e1 = await pubConsume.error();
      assert.equal(e1.code, grpc.status.PERMISSION_DENIED);
      assert.equal(e1.details, DENIED);
      const subConsumeBilling = sub.consume('billing');
      assert.equal((await subConsumeBilling.error()).code, grpc.status.PERMISSION_DENIED);
      await refused(sub.md('Write', topic('payments')), grpc.status.PERMISSION_DENIED, DENIED, 'metadata write by the consumer');
      await refused(pub.md('GetImage', {}), grpc.status.PERMISSION_DENIED, DENIED, 'metadata image by the publisher');
      const pubFollow = pub.follow(1);
      const e2 = await pubFollow.error();
      assert.equal(e2.code, grpc.status.PERMISSION_DENIED);
      assert.equal(e2.details, DENIED);
      assert.equal(pubFollow.messages.length, 0, 'no record reached a follower without READ');
      // ...and without an identity, or with a forged token.
      await refused(anon.q('Publish', { queue: 'orders.new', body: Buffer.from('x') }), grpc.status.INVALID_ARGUMENT, 'etcdserver: user name is empty', 'anonymous publish');
      await refused(anon.q('Stats', {}), grpc.status.INVALID_ARGUMENT, 'etcdserver: user name is empty', 'anonymous stats');
      await refused(anon.md('Write', topic('anon')), grpc.status.INVALID_ARGUMENT, 'etcdserver: user name is empty', 'anonymous metadata write');
      assert.equal((await anon.follow(1).error()).details, 'etcdserver: user name is empty');
      await refused(forged.q('Publish', { queue: 'orders.new', body: Buffer.from('x') }), grpc.status.UNAUTHENTICATED, 'etcdserver: invalid auth token', 'forged token');
      assert.equal(await state(), before, 'no denied request changed the queues or the metadata image');
      assert.equal(consumer.ended, null, 'the consumer that may read is still served');

      // AMQP (issue 20): the same users log in with PLAIN on a follower, and the same permissions hold there.
      const amqpAt = (user: string, pw: string): string => `amqp://${user}:${pw}@${formatAddress(follower.member.amqp!)}`;
      const pubConn = await amqp.connect(amqpAt('pub', 'pubpw'));
      const subConn = await amqp.connect(amqpAt('sub', 'subpw'));
      for (const conn of [pubConn, subConn]) conn.on('error', () => undefined);
      try {
        const pch = await pubConn.createConfirmChannel();
        pch.on('error', () => undefined);
        await pch.assertQueue('orders.amqp', { durable: true });
        pch.sendToQueue('orders.amqp', Buffer.from('via amqp'));
        await pch.waitForConfirms();
        const deniedDeclare = await pch.assertQueue('billing.amqp', { durable: true }).then(() => null, (err: { code: number; message: string }) => err);
        assert.equal(deniedDeclare?.code, 403);
        assert.match(String(deniedDeclare?.message), /ACCESS_REFUSED - access to queue 'billing\.amqp' in vhost '\/' refused for user 'pub'/);
        const sch = await subConn.createConfirmChannel();
        sch.on('error', () => undefined);
        const got = await sch.get('orders.amqp', { noAck: true });
        assert.equal(got === false ? null : got.content.toString(), 'via amqp', 'the consumer role reads orders.amqp over AMQP');
        sch.sendToQueue('orders.amqp', Buffer.from('not allowed'));
        await assert.rejects(sch.waitForConfirms(), 'the consumer role may not publish: its channel is closed 403 and the publish nacked');
        const after = ((await root.q('Stats', { queue: 'orders.amqp' }))['queues'] as { enqueued: number | string }[])[0];
        assert.equal(Number(after?.enqueued), 1, 'only the allowed publish reached the queue');
      } finally {
        await pubConn.close().catch(() => undefined);
        await subConn.close().catch(() => undefined);
      }
      // Wrong passwords, and guest (no user of the auth service), are refused (last: failures slow this address's next logins).
      for (const [user, pw] of [['pub', 'wrong'], ['guest', 'guest'], ['nobody', 'x']]) {
        const e = await amqp.connect(amqpAt(user as string, pw as string)).then(async (conn) => { await conn.close(); return null; }, (err: Error) => err);
        assert.match(String(e?.message), /ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN/, `${user}:${pw} logs in while auth is on`);
      }

      // Revoked mid-stream: the consumer's stream ends, its unacknowledged m1 goes back; the follower's stream ends too.
      const revoke = await quorumlog(['role', 'revoke-permission', 'consumer', 'orders.', '--prefix', '--queue', '--user', 'root:rootpw', '--endpoints', ep]);
      assert.equal(revoke.code, 0, revoke.stdout + revoke.stderr);
      const e3 = await consumer.error();
      assert.equal(e3.code, grpc.status.PERMISSION_DENIED);
      assert.equal(e3.details, DENIED);
      const deadline = Date.now() + DEADLINE_MS;
      for (;;) {
        // (uint64 fields come as decimal strings)
        const s = ((await root.q('Stats', { queue: 'orders.new' }))['queues'] as { consumers: number | string; ready: number | string; unacked: number | string }[])[0];
        if (s !== undefined && Number(s.consumers) === 0 && Number(s.ready) === 1 && Number(s.unacked) === 0) break;
        if (Date.now() > deadline) assert.fail(`the revoked consumer was not cancelled: ${JSON.stringify(s)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      await refused(sub.q('Ack', { consumer_id: consumerId, delivery_tags: [1] }), grpc.status.NOT_FOUND, `queue: consumer ${consumerId} does not exist`, 'the cancelled consumer');
      assert.equal(follow.ended, null, 'the follower still reads the metadata log');
      await cli(['role', 'revoke-permission', 'consumer', '--metadata', '--user', 'root:rootpw']);
      const e4 = await follow.error();
      assert.equal(e4.code, grpc.status.PERMISSION_DENIED);
      assert.equal(e4.details, DENIED);
    } finally {
      for (const x of callers) x.close();
      await c.close();
    }
  });
}
