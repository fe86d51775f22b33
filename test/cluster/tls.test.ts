// Mutual TLS for peer and client traffic, from PEM files named in the
// config: a 3-node cluster whose nodes talk TLS to each other, and whose
// etcd API accepts only clients with a certificate from the cluster's CA;
// and peer certificates bound to node ids (the default): a node that
// presents another node's certificate is refused by the others.
// Certificates are made here with openssl (scripts/system-deps.sh installs it).

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CLI_PATH } from '../../src/cli/cluster.js';
import { formatAddress } from '../../src/server/config.js';
import { TestCluster } from './harness.js';

/** A CA, and one certificate (with its key) signed by it for 127.0.0.1, usable as server and client. */
function makeCerts(dir: string, name: string): { ca: string; cert: string; key: string } {
  const ossl = (...args: string[]): void => { execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' }); };
  ossl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=${name}-ca`, '-keyout', `${name}-ca.key`, '-out', `${name}-ca.pem`);
  ossl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=quorumlog-node', '-keyout', `${name}.key`, '-out', `${name}.csr`);
  writeFileSync(join(dir, `${name}.ext`), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n');
  ossl('x509', '-req', '-in', `${name}.csr`, '-CA', `${name}-ca.pem`, '-CAkey', `${name}-ca.key`, '-CAcreateserial', '-days', '2',
    '-extfile', `${name}.ext`, '-out', `${name}.pem`);
  return { ca: join(dir, `${name}-ca.pem`), cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
}

/** A node certificate signed by `ca` (from makeCerts) naming `cn`, for 127.0.0.1. */
function nodeCert(dir: string, ca: { ca: string }, caKey: string, cn: string): { ca: string; cert: string; key: string } {
  const ossl = (...args: string[]): void => { execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' }); };
  ossl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${cn}`, '-keyout', `${cn}.key`, '-out', `${cn}.csr`);
  writeFileSync(join(dir, `${cn}.ext`), `subjectAltName=IP:127.0.0.1,DNS:${cn}\nextendedKeyUsage=serverAuth,clientAuth\n`);
  ossl('x509', '-req', '-in', `${cn}.csr`, '-CA', ca.ca, '-CAkey', caKey, '-CAcreateserial', '-days', '2', '-extfile', `${cn}.ext`, '-out', `${cn}.pem`);
  return { ca: ca.ca, cert: join(dir, `${cn}.pem`), key: join(dir, `${cn}.key`) };
}

/** Sets one node's peer TLS files in its config file. */
function setPeerTls(c: TestCluster, id: string, files: { ca: string; cert: string; key: string }): void {
  const path = c.layout.configPath(id);
  const cfg = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  writeFileSync(path, JSON.stringify({ ...cfg, peerTls: files }, null, 2) + '\n');
}

test('peer TLS binds certificates to node ids: a node presenting another node\'s certificate is refused', { timeout: 90_000 }, async () => {
  const certDir = mkdtempSync(join(tmpdir(), 'quorumlog-certs-'));
  const ca = makeCerts(certDir, 'cluster');
  const certs = new Map(['n1', 'n2', 'n3'].map((id) => [id, nodeCert(certDir, ca, join(certDir, 'cluster-ca.key'), id)]));
  const c = await TestCluster.start({ nodes: 3, mode: 'push', start: false });
  try {
    setPeerTls(c, 'n1', certs.get('n1') as { ca: string; cert: string; key: string });
    setPeerTls(c, 'n2', certs.get('n2') as { ca: string; cert: string; key: string });
    setPeerTls(c, 'n3', certs.get('n2') as { ca: string; cert: string; key: string }); // n3 with n2's certificate
    for (const n of c.nodes) n.start();
    const leader = await c.waitForLeader(20_000, ['n3']);
    assert.notEqual(leader.id, 'n3');
    await new Promise((r) => setTimeout(r, 1500));
    const s3 = await c.node('n3').status();
    assert.equal(s3?.leader ?? null, null, 'n3 reached the others with a certificate that names n2');
    const metrics = await (await fetch(`http://${formatAddress(leader.member.metrics)}/metrics`)).text();
    const refused = Number(/^quorumlog_refused_handshakes_total(?:\{[^}]*\})? (\d+)/m.exec(metrics)?.[1] ?? '0');
    assert.ok(refused > 0, 'no handshake was refused');
    // With its own certificate it joins.
    await c.node('n3').kill9();
    setPeerTls(c, 'n3', certs.get('n3') as { ca: string; cert: string; key: string });
    c.node('n3').start();
    await c.waitFor(c.node('n3'), (s) => s.leader !== null, 20_000, 'n3 hearing the leader');
  } finally {
    await c.close();
    rmSync(certDir, { recursive: true, force: true });
  }
});

test('a cluster with mutual TLS on peer and client ports', { timeout: 90_000 }, async () => {
  const certDir = mkdtempSync(join(tmpdir(), 'quorumlog-certs-'));
  const good = makeCerts(certDir, 'cluster');
  const stranger = makeCerts(certDir, 'stranger');
  const c = await TestCluster.start({ nodes: 3, mode: 'push', extra: { peerTls: { ...good, verifyNodeIds: false }, clientTls: good } });
  try {
    await c.waitForLeader();
    const ctl = (certs: { ca: string; cert: string; key: string }, ...args: string[]): ReturnType<typeof spawnSync> =>
      spawnSync('etcdctl', ['--endpoints', c.endpoints.join(','), '--cacert', certs.ca, '--cert', certs.cert, '--key', certs.key,
        '--dial-timeout', '3s', '--command-timeout', '5s', ...args], { env: { ...process.env, ETCDCTL_API: '3' }, encoding: 'utf8' });
    const put = ctl(good, 'put', 'secret', 'kept');
    assert.equal(put.status, 0, String(put.stderr));
    const get = ctl(good, 'get', 'secret', '--print-value-only');
    assert.equal(String(get.stdout).trim(), 'kept');
    // A client whose certificate another CA signed is refused; so is plain text.
    const refused = ctl({ ca: good.ca, cert: stranger.cert, key: stranger.key }, 'get', 'secret');
    assert.notEqual(refused.status, 0);
    const plain = spawnSync('etcdctl', ['--endpoints', c.endpoints[0] as string, '--dial-timeout', '2s', '--command-timeout', '3s', 'get', 'secret'],
      { env: { ...process.env, ETCDCTL_API: '3' }, encoding: 'utf8' });
    assert.notEqual(plain.status, 0);
    const status = spawnSync(process.execPath, [CLI_PATH, 'status', '--endpoints', c.endpoints.join(','), '--cacert', good.ca, '--cert', good.cert, '--key', good.key],
      { encoding: 'utf8', timeout: 20_000 });
    assert.equal(status.status, 0, status.stdout + status.stderr);
    assert.match(status.stdout, /leader/);
    // The other verbs take the same flags.
    const q = (...args: string[]): ReturnType<typeof spawnSync> => spawnSync(process.execPath, [CLI_PATH, ...args, '--endpoints', c.endpoints.join(','),
      '--cacert', good.ca, '--cert', good.cert, '--key', good.key], { encoding: 'utf8', timeout: 30_000 });
    for (const args of [['put', 'viaCli', 'yes'], ['get', 'viaCli'], ['member', 'list'], ['backup', '--out', join(certDir, 'b.backup')], ['queue', 'declare', 'tlsq']]) {
      const r = q(...args);
      assert.equal(r.status, 0, `quorumlog ${args.join(' ')}: ${String(r.stdout)}${String(r.stderr)}`);
    }
    assert.match(String(q('get', 'viaCli').stdout), /yes/);
    const partial = spawnSync(process.execPath, [CLI_PATH, 'get', 'viaCli', '--endpoints', c.endpoints.join(','), '--cacert', good.ca], { encoding: 'utf8', timeout: 20_000 });
    assert.notEqual(partial.status, 0);
    assert.match(String(partial.stdout) + String(partial.stderr), /needs all three of --cacert, --cert and --key/);
  } finally {
    await c.close();
    rmSync(certDir, { recursive: true, force: true });
  }
});
