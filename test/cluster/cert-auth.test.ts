// Issue 19: client-certificate auth (clientTls with "clientCertAuth": true,
// etcd's --client-cert-auth) on a real 3-node cluster whose n1 serves clients
// on its Raft thread (protocolWorkers 0) and whose n2 serves them through a
// protocol worker process (protocolWorkers 1): every check runs against
// both. A request without a token acts as the user its certificate's common
// name names: CN=alice (READ on /a/) reads /a/x and is refused /b and every
// write; CN=root may do everything; a user added with --no-password cannot
// Authenticate but acts by its certificate; and a client with alice's
// certificate that sends the identity header itself
// (x-quorumlog-client-cert-cn: root) is still alice: the worker strips the
// header, and the in-thread server never reads it.
// Certificates are made here with openssl (scripts/system-deps.sh installs it).

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { CLI_PATH } from '../../src/cli/cluster.js';
import { CLIENT_CERT_CN_HEADER } from '../../src/server/auth/credentials.js';
import { loadEtcdProtos } from '../../src/server/etcd/server.js';
import { TestCluster, type TestNode } from './harness.js';

interface Files { readonly ca: string; readonly cert: string; readonly key: string }

/** A CA in `dir`, and a function that signs a certificate for 127.0.0.1 with the given common name (usable as server and client). */
function certificateAuthority(dir: string): (cn: string) => Files {
  const ossl = (...args: string[]): void => { execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' }); };
  ossl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=test-ca', '-keyout', 'ca.key', '-out', 'ca.pem');
  return (cn) => {
    ossl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${cn}`, '-keyout', `${cn}.key`, '-out', `${cn}.csr`);
    writeFileSync(join(dir, `${cn}.ext`), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n');
    ossl('x509', '-req', '-in', `${cn}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', `${cn}.ext`, '-out', `${cn}.pem`);
    return { ca: join(dir, 'ca.pem'), cert: join(dir, `${cn}.pem`), key: join(dir, `${cn}.key`) };
  };
}

interface Run { code: number | null; out: string; err: string }

/** etcdctl with a client certificate (and no --user unless given in args). */
function etcdctl(endpoint: string, f: Files, ...args: string[]): Run {
  const r = spawnSync('etcdctl', ['--endpoints', endpoint, '--cacert', f.ca, '--cert', f.cert, '--key', f.key, '--dial-timeout', '3s', '--command-timeout', '5s', ...args],
    { env: { ...process.env, ETCDCTL_API: '3' }, encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

type Unary = (req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, res: { kvs?: { value: Buffer }[] }) => void) => void;

/** A plain grpc-js KV call with a client certificate and the metadata the caller chooses. */
async function rawKv(endpoint: string, f: Files, method: 'Range' | 'Put', req: object, md: grpc.Metadata): Promise<{ code: grpc.status; details: string; values: string[] }> {
  const KV = (loadEtcdProtos()['etcdserverpb'] as grpc.GrpcObject)['KV'] as grpc.ServiceClientConstructor;
  const creds = grpc.credentials.createSsl(readFileSync(f.ca), readFileSync(f.key), readFileSync(f.cert));
  const c = new KV(endpoint, creds) as unknown as grpc.Client & Record<'Range' | 'Put', Unary>;
  try {
    return await new Promise((resolve) => {
      c[method](req, md, { deadline: Date.now() + 5000 }, (e, res) => resolve(e !== null
        ? { code: e.code, details: e.details, values: [] }
        : { code: grpc.status.OK, details: '', values: (res.kvs ?? []).map((kv) => kv.value.toString()) }));
    });
  } finally {
    c.close();
  }
}

test('client-certificate auth: the certificate\'s CN is the user, on the Raft thread and through a protocol worker', { timeout: 150_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'quorumlog-cert-auth-'));
  const sign = certificateAuthority(dir);
  const node = sign('quorumlog-node');
  const alice = sign('alice');
  const root = sign('root');
  const carol = sign('carol'); // added with --no-password
  const c = await TestCluster.start({ nodes: 3, mode: 'push', start: false,
    extra: { bcryptCost: 4, clientTls: node, clientCertAuth: true, peerTls: { ...node, verifyNodeIds: false } } });
  try {
    // n1 serves clients on its Raft thread, n2 (and n3) through one protocol worker process.
    const path = c.layout.configPath('n1');
    writeFileSync(path, JSON.stringify({ ...JSON.parse(readFileSync(path, 'utf8')) as object, protocolWorkers: 0 }, null, 2) + '\n');
    for (const n of c.nodes) n.start();
    await c.waitForLeader();
    const n1 = c.node('n1');
    const n2 = c.node('n2');
    assert.equal((await n1.status())?.protocolWorkers ?? null, null, 'n1 serves clients itself');
    await c.waitFor(n2, (s) => s.protocolWorkers?.alive === 1, 10_000, 'n2\'s protocol worker');
    const all = c.endpoints.join(',');
    const setup = (...args: string[]): void => {
      const r = etcdctl(all, root, ...args);
      assert.equal(r.code, 0, `etcdctl ${args.join(' ')}: ${r.err}`);
    };
    setup('put', '/a/x', 'ax');
    setup('put', '/b/y', 'by');
    setup('user', 'add', 'root', '--new-user-password', 'rootpw');
    setup('user', 'add', 'alice', '--new-user-password', 'alicepw');
    setup('user', 'add', 'carol', '--no-password');
    setup('role', 'add', 'reader-a');
    setup('role', 'grant-permission', 'reader-a', 'read', '/a/', '--prefix=true');
    setup('user', 'grant-role', 'alice', 'reader-a');
    setup('user', 'grant-role', 'carol', 'reader-a');
    setup('auth', 'enable');

    const check = async (n: TestNode): Promise<void> => {
      const where = `${n.id} (protocolWorkers ${n.id === 'n1' ? 0 : 1})`;
      const ok = (r: Run, what: string): string => {
        assert.equal(r.code, 0, `${where}: ${what}: ${r.err}`);
        return r.out;
      };
      const denied = (r: Run, what: string, message = 'etcdserver: permission denied'): void => {
        assert.notEqual(r.code, 0, `${where}: ${what} should have been refused: ${r.out}`);
        assert.ok(r.err.includes(message), `${where}: ${what}: ${r.err}`);
      };
      // alice, by her certificate alone
      assert.equal(ok(etcdctl(n.endpoint, alice, 'get', '/a/x', '--print-value-only'), 'alice get /a/x'), 'ax\n');
      denied(etcdctl(n.endpoint, alice, 'get', '/b/y'), 'alice get /b/y');
      denied(etcdctl(n.endpoint, alice, 'put', '/a/x', 'alice'), 'alice put /a/x');
      denied(etcdctl(n.endpoint, alice, 'user', 'list'), 'alice user list');
      // root, by its certificate: everything
      assert.equal(ok(etcdctl(n.endpoint, root, 'get', '/b/y', '--print-value-only'), 'root get /b/y'), 'by\n');
      ok(etcdctl(n.endpoint, root, 'put', `/b/${n.id}`, 'root'), 'root put');
      assert.match(ok(etcdctl(n.endpoint, root, 'user', 'list'), 'root user list'), /carol/);
      // carol has no password: no token, but her certificate serves
      denied(etcdctl(n.endpoint, carol, '--user', 'carol:anything', 'get', '/a/x'), 'carol Authenticate', 'etcdserver: authentication failed, invalid user ID or password');
      assert.equal(ok(etcdctl(n.endpoint, carol, 'get', '/a/x', '--print-value-only'), 'carol get /a/x'), 'ax\n');
      denied(etcdctl(n.endpoint, carol, 'get', '/b/y'), 'carol get /b/y');
      // The quorumlog CLI, by certificate too.
      const cli = spawnSync(process.execPath, [CLI_PATH, 'get', '/a/x', '--endpoints', n.endpoint, '--cacert', alice.ca, '--cert', alice.cert, '--key', alice.key],
        { encoding: 'utf8', timeout: 20_000 });
      assert.equal(cli.stdout, '/a/x\nax\n', `${where}: quorumlog get as alice: ${cli.stderr}`);
      // alice claiming root's name in the identity header is still alice, on reads (the workers' hot path) and writes.
      const spoof = new grpc.Metadata();
      spoof.set(CLIENT_CERT_CN_HEADER, 'root');
      const read = await rawKv(n.endpoint, alice, 'Range', { key: Buffer.from('/b/y') }, spoof);
      assert.deepEqual([read.code, read.details], [grpc.status.PERMISSION_DENIED, 'etcdserver: permission denied'], `${where}: spoofed read`);
      const write = await rawKv(n.endpoint, alice, 'Put', { key: Buffer.from('/b/spoofed'), value: Buffer.from('x') }, spoof);
      assert.deepEqual([write.code, write.details], [grpc.status.PERMISSION_DENIED, 'etcdserver: permission denied'], `${where}: spoofed write`);
      const own = await rawKv(n.endpoint, alice, 'Range', { key: Buffer.from('/a/x') }, spoof);
      assert.deepEqual([own.code, own.values], [grpc.status.OK, ['ax']], `${where}: alice's own read, with the header`);
    };
    await check(n1);
    await check(n2);
    // Nothing was written by a refused request.
    assert.equal(etcdctl(all, root, 'get', '/b/spoofed').out, '');
    assert.equal(etcdctl(all, root, 'get', '/a/x', '--print-value-only').out, 'ax\n');
  } finally {
    await c.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
