// `--user` on the `quorumlog` verbs, in process: the program (with its
// preAction hook) against a gRPC server holding a stand-in etcd Auth and KV
// service and the real queue and metadata services. A server interceptor
// records the `token` metadata of every call, so each test sees what the
// verbs sent: Authenticate once, then the token on unary calls and on
// streams; nothing without --user; a wrong password ends the verb with
// etcd's message and exit 1, and the password is never printed.

import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { loadEtcdProtos } from '../server/etcd/server.js';
import { LocalQueueBackend } from '../server/queue/backend.js';
import { addQueueService, type QueueService } from '../server/queue/server.js';
import { LocalMetadataBackend } from '../server/metadata/local-backend.js';
import { addMetadataService } from '../server/metadata/service.js';
import { clientCredentials, clientOptions, PASSWORD_ENV, setClientUser, USER_ENV, userFromFlags } from './credentials.js';
import { program } from './quorumlog.js';
import { verbErrorLine, verbContext } from './transport-errors.js';

const PASSWORD = 'S3cret-pw';
const etcd = (name: string): grpc.ServiceDefinition => ((loadEtcdProtos()['etcdserverpb'] as grpc.GrpcObject)[name] as grpc.ServiceClientConstructor).service;
const status = (code: grpc.status, details: string): Partial<grpc.StatusObject> => ({ code, details });

describe('quorumlog --user', () => {
  /** Every call's path and the token it carried (null: none). */
  const seen: { path: string; token: string | null }[] = [];
  let tokensIssued = 0;
  /** Range answers "invalid auth token" to this token. */
  let expired: string | null = null;
  let server: grpc.Server;
  let queue: QueueService;
  let metadataClose: () => void;
  let endpoint = '';

  before(async () => {
    server = new grpc.Server({
      interceptors: [(method, call) => new grpc.ServerInterceptingCall(call, {
        start(next) {
          next({
            onReceiveMetadata(md, mdNext) {
              const t = md.get('token')[0];
              seen.push({ path: method.path, token: typeof t === 'string' ? t : null });
              mdNext(md);
            },
          });
        },
      })],
    });
    server.addService(etcd('Auth'), {
      Authenticate(call: grpc.ServerUnaryCall<{ name: string; password: string }, unknown>, cb: grpc.sendUnaryData<unknown>) {
        if (call.request.name !== 'root' || call.request.password !== PASSWORD) {
          cb(status(grpc.status.INVALID_ARGUMENT, 'etcdserver: authentication failed, invalid user ID or password'));
          return;
        }
        cb(null, { header: {}, token: `tok-${++tokensIssued}` });
      },
    });
    server.addService(etcd('KV'), {
      Range(call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) {
        const token = call.metadata.get('token')[0];
        if (token === undefined) cb(status(grpc.status.INVALID_ARGUMENT, 'etcdserver: user name is empty'));
        else if (token === expired) cb(status(grpc.status.UNAUTHENTICATED, 'etcdserver: invalid auth token'));
        else cb(null, { header: { revision: '1' }, kvs: [{ key: Buffer.from('k'), value: Buffer.from(`seen ${String(token)}`) }] });
      },
    });
    queue = addQueueService(server, new LocalQueueBackend({ nodeId: 'n1' }), { logger: pino({ level: 'silent' }) });
    metadataClose = addMetadataService(server, new LocalMetadataBackend(), { logger: pino({ level: 'silent' }) }).close;
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    endpoint = `127.0.0.1:${port}`;
  });
  after(async () => {
    queue.close();
    metadataClose();
    await setClientUser(undefined, [], 0);
    await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    process.exitCode = 0;
  });
  beforeEach(() => {
    seen.length = 0;
    delete process.env[USER_ENV];
    delete process.env[PASSWORD_ENV];
  });

  /** Runs one command line in process; a failure becomes the line and code the program would print and exit with. */
  async function run(...args: string[]): Promise<{ lines: string[]; code: number }> {
    const lines: string[] = [];
    process.exitCode = 0;
    try {
      await program((l) => lines.push(l), (l) => lines.push(l)).exitOverride().parseAsync(['node', 'quorumlog', ...args, '--endpoints', endpoint]);
    } catch (err) {
      const { line, code } = await verbErrorLine(err, verbContext());
      return { lines: [...lines, line], code };
    }
    const code = Number(process.exitCode ?? 0);
    process.exitCode = 0;
    return { lines, code };
  }

  const tokensOn = (suffix: string): (string | null)[] => seen.filter((s) => s.path.endsWith(suffix)).map((s) => s.token);

  it('authenticates once and sends the token on unary calls', async () => {
    const r = await run('get', 'k', '--user', `root:${PASSWORD}`);
    assert.deepEqual(r, { lines: ['k', `seen tok-${tokensIssued}`], code: 0 });
    assert.deepEqual(seen.map((s) => s.path), ['/etcdserverpb.Auth/Authenticate', '/etcdserverpb.KV/Range']);
    assert.equal(tokensOn('/Authenticate')[0], null, 'Authenticate itself carries no token');
    assert.match(tokensOn('/Range')[0] ?? '', /^tok-\d+$/);
  });

  it('sends nothing without --user, and the verb prints the cluster\'s refusal', async () => {
    assert.deepEqual(await run('get', 'k'), { lines: ['quorumlog get: etcdserver: user name is empty'], code: 1 });
    assert.deepEqual(seen, [{ path: '/etcdserverpb.KV/Range', token: null }]);
  });

  it('takes --password apart, and the user from the environment', async () => {
    assert.equal((await run('get', 'k', '--user', 'root', '--password', PASSWORD)).code, 0);
    process.env[USER_ENV] = 'root';
    process.env[PASSWORD_ENV] = PASSWORD;
    assert.equal((await run('get', 'k')).code, 0);
    assert.deepEqual(tokensOn('/Range').map((t) => t !== null), [true, true]);
  });

  it('a wrong password: etcd\'s message, exit 1, the password nowhere, and no call made', async () => {
    const r = await run('get', 'k', '--user', 'root:not-the-password');
    assert.deepEqual(r, { lines: ['quorumlog get: etcdserver: authentication failed, invalid user ID or password'], code: 1 });
    assert.ok(!r.lines.join('\n').includes('not-the-password'));
    assert.deepEqual(seen.map((s) => s.path), ['/etcdserverpb.Auth/Authenticate']);
  });

  it('queue and metadata verbs send the token on unary calls and on streams', async () => {
    const user = ['--user', `root:${PASSWORD}`];
    assert.deepEqual(await run('queue', 'declare', 'jobs', ...user), { lines: ['created jobs'], code: 0 });
    assert.deepEqual(await run('queue', 'publish', 'jobs', 'a', ...user), { lines: ['confirmed jobs #1'], code: 0 });
    const consumed = await run('queue', 'consume', 'jobs', '--count', '1', ...user);
    assert.equal(consumed.code, 0, consumed.lines.join('\n'));
    assert.equal((await run('metadata', 'register-broker', '--id', '1', '--host', 'b1', '--port', '9092', ...user)).code, 0);
    const followed = await run('metadata', 'follow', '--limit', '1', ...user);
    assert.equal(followed.code, 0, followed.lines.join('\n'));
    const calls = seen.filter((s) => !s.path.endsWith('/Authenticate'));
    for (const path of ['/Declare', '/Publish', '/Consume', '/Ack', '/Write', '/Follow']) {
      assert.ok(calls.some((s) => s.path.endsWith(path)), `no ${path} call: ${JSON.stringify(calls)}`);
    }
    for (const c of calls) assert.match(c.token ?? '(none)', /^tok-\d+$/, `${c.path} went without the token`);
  });

  it('a token refused as invalid is renewed before the next call', async () => {
    await setClientUser({ name: 'root', password: PASSWORD }, [endpoint], 2000);
    const KV = (loadEtcdProtos()['etcdserverpb'] as grpc.GrpcObject)['KV'] as grpc.ServiceClientConstructor;
    const kv = new KV(endpoint, clientCredentials(), clientOptions()) as unknown as grpc.Client & { Range: (r: object, cb: (e: grpc.ServiceError | null) => void) => void };
    const range = (): Promise<grpc.ServiceError | null> => new Promise((resolve) => kv.Range({ key: Buffer.from('k') }, resolve));
    try {
      assert.equal(await range(), null);
      expired = tokensOn('/Range')[0] ?? null;
      assert.equal((await range())?.details, 'etcdserver: invalid auth token');
      assert.equal(await range(), null);
      const used = tokensOn('/Range');
      assert.equal(used[1], used[0]);
      assert.notEqual(used[2], used[0], 'the refused token was sent again');
      assert.deepEqual(seen.filter((s) => s.path.endsWith('/Authenticate')).length, 2);
    } finally {
      kv.close();
      expired = null;
      await setClientUser(undefined, [], 0);
    }
  });
});

describe('userFromFlags (etcdctl 3.4\'s --user and --password)', () => {
  it('splits name:password at the first colon; --password takes the name whole', () => {
    assert.deepEqual(userFromFlags({ user: 'root:pw' }, {}), { name: 'root', password: 'pw' });
    assert.deepEqual(userFromFlags({ user: 'root:p:w' }, {}), { name: 'root', password: 'p:w' });
    assert.deepEqual(userFromFlags({ user: 'a:b', password: 'pw' }, {}), { name: 'a:b', password: 'pw' });
    assert.deepEqual(userFromFlags({ user: 'root' }, {}), { name: 'root', password: null });
    assert.deepEqual(userFromFlags({ user: 'root:' }, {}), { name: 'root', password: '' });
  });
  it('falls back on the environment; flags win', () => {
    assert.equal(userFromFlags({}, {}), undefined);
    assert.deepEqual(userFromFlags({}, { [USER_ENV]: 'u:p' }), { name: 'u', password: 'p' });
    assert.deepEqual(userFromFlags({}, { [USER_ENV]: 'u', [PASSWORD_ENV]: 'p' }), { name: 'u', password: 'p' });
    assert.deepEqual(userFromFlags({ user: 'root:pw' }, { [USER_ENV]: 'u:p' }), { name: 'root', password: 'pw' });
  });
  it('refuses what names no user, without echoing a password', () => {
    assert.throws(() => userFromFlags({ password: 'hunter2' }, {}), (e: Error) => e.name === 'ClientUserError' && !e.message.includes('hunter2'));
    assert.throws(() => userFromFlags({ user: ':hunter2' }, {}), (e: Error) => e.name === 'ClientUserError' && !e.message.includes('hunter2'));
  });
});
