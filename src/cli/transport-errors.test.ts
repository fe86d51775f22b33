// Transport failures of the client verbs (transport-errors.ts), made for
// real on 127.0.0.1: a closed port, a silent one, an HTTP/1 server (as the
// metrics port), a port that closes at once, a TLS port spoken to in plain
// text, a plain port spoken to in TLS, a gRPC server that is not quorumlog.
// Each is classified and worded without grpc-js's text; every verb (the
// compiled CLI, run as a user runs it) prints one line on stderr for it and
// exits 2; `status` keeps its rows aligned with a short reason; `get` on a
// missing key prints nothing and exits 0, as etcdctl does.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { addAdminService } from '../server/admin.js';
import { loadEtcdProtos } from '../server/etcd/server.js';
import type { NodeStatus } from '../server/metrics.js';
import { makePki } from '../transport/test-util.js';
import {
  classifyTransportError, EndpointsUnreachableError, refineFailure, transportReason, tryEndpoints, verbErrorLine, type TransportFailure,
} from './transport-errors.js';

const cli = fileURLToPath(new URL('./quorumlog.js', import.meta.url));
const identity = (b: Buffer): Buffer => b;

/** Calls `path` (default etcd's KV.Range) on `endpoint`; resolves with the error (null on success). */
function range(endpoint: string, creds = grpc.credentials.createInsecure(), deadlineMs = 3000, path = '/etcdserverpb.KV/Range'): Promise<grpc.ServiceError | null> {
  const c = new grpc.Client(endpoint, creds);
  return new Promise((resolve) => c.makeUnaryRequest(path, identity, identity, Buffer.alloc(0), { deadline: Date.now() + deadlineMs }, (e) => {
    c.close();
    resolve(e);
  }));
}

/** Runs the compiled CLI; resolves with its exit code and output. */
function run(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, ...args]);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const listen = (s: net.Server): Promise<string> => new Promise((resolve) => s.listen(0, '127.0.0.1', () => resolve(`127.0.0.1:${(s.address() as net.AddressInfo).port}`)));

/** A minimal status, as a one-node leader reports it. */
const fakeStatus = (): NodeStatus => ({
  id: 'n1', clusterId: 'test-cluster', supervisor: null, protocolWorkers: null, pid: 4242, mode: 'push', role: 'leader', term: 3, leader: 'n1', commitIndex: 17, appliedIndex: 17, lastIndex: 17, removed: false,
  dirId: 1, lostDisk: null, configuration: { index: 1, committed: true, voters: ['n1'], observers: [], dirIds: {} }, replication: [], now: 0,
  proposalsTotal: 0, fsync: { samples: 0, p50Ms: null, p99Ms: null, lastMs: null }, leadershipEvents: [], partitioned: false,
});

describe('transport failures of the client verbs', () => {
  const servers: { close(cb?: () => void): unknown }[] = [];
  const grpcServers: grpc.Server[] = [];
  let refused = '';
  let silent = '';
  let http1 = '';
  let closer = '';
  let tlsPort = '';
  let fake = ''; // a gRPC server with quorumlog's admin status and a KV that knows one key
  let certDir = '';
  const silentSockets: net.Socket[] = [];

  before(async () => {
    const probe = net.createServer();
    refused = await listen(probe);
    await new Promise((r) => probe.close(r)); // nothing listens there now
    const s1 = net.createServer((sock) => silentSockets.push(sock));
    silent = await listen(s1);
    const s2 = http.createServer((_q, res) => res.end('metrics'));
    http1 = await listen(s2);
    const s3 = net.createServer((sock) => sock.on('data', () => sock.destroy()));
    closer = await listen(s3);
    const pki = makePki(['server']);
    const cert = pki.certs.get('server') as { cert: string; key: string };
    const s4 = tls.createServer({ key: cert.key, cert: cert.cert, ALPNProtocols: ['h2'] }, (sock) => sock.destroy());
    tlsPort = await listen(s4);
    servers.push(s1, s2, s3, s4);
    certDir = mkdtempSync(join(tmpdir(), 'quorumlog-cli-tls-'));
    writeFileSync(join(certDir, 'ca.pem'), pki.ca);
    writeFileSync(join(certDir, 'c.pem'), cert.cert);
    writeFileSync(join(certDir, 'k.pem'), cert.key);
    const g = new grpc.Server();
    addAdminService(g, fakeStatus);
    const KV = (loadEtcdProtos()['etcdserverpb'] as grpc.GrpcObject)['KV'] as grpc.ServiceClientConstructor;
    g.addService(KV.service, {
      Range(call: grpc.ServerUnaryCall<{ key: Buffer }, unknown>, cb: grpc.sendUnaryData<unknown>): void {
        const found = call.request.key.toString() === 'present';
        cb(null, { header: { revision: 5 }, kvs: found ? [{ key: Buffer.from('present'), value: Buffer.from('here'), mod_revision: 5, version: 1 }] : [], count: found ? 1 : 0 });
      },
    });
    fake = `127.0.0.1:${await new Promise<number>((resolve, reject) => g.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))))}`;
    grpcServers.push(g);
  });

  after(() => {
    for (const s of silentSockets) s.destroy();
    for (const s of servers) s.close();
    for (const g of grpcServers) g.forceShutdown();
    rmSync(certDir, { recursive: true, force: true });
  });

  it('classifies each failure and words it without grpc-js\'s text', async () => {
    const cases: [string, Promise<grpc.ServiceError | null>, TransportFailure, string][] = [
      ['refused', range(refused), { kind: 'refused' }, 'connection refused'],
      // 400 ms: the silent server never answers, so any deadline would do; short keeps the test quick.
      ['silent', range(silent, undefined, 400), { kind: 'timeout', connected: false }, 'timed out'],
      ['HTTP/1', range(http1), { kind: 'not-grpc' }, 'not a client port (it does not speak gRPC; the metrics port?)'],
      ['closes at once', range(closer), { kind: 'closed' }, 'connection closed at once (not a client port, or TLS needed?)'],
      ['TLS port in plain text', range(tlsPort), { kind: 'closed' }, 'connection closed at once (not a client port, or TLS needed?)'],
      ['plain port in TLS', range(http1, grpc.credentials.createSsl()), { kind: 'tls-not-spoken' }, 'TLS mismatch (the port does not speak TLS)'],
      // The fake serves KV and the admin status, not leases: as a gRPC server of another kind would answer.
      ['not quorumlog', range(fake, undefined, 3000, '/etcdserverpb.Lease/LeaseGrant'),
        { kind: 'not-quorumlog', method: '/etcdserverpb.Lease/LeaseGrant' }, 'not a quorumlog node (no /etcdserverpb.Lease/LeaseGrant)'],
    ];
    for (const [name, call, expected, words] of cases) {
      const err = await call;
      assert.ok(err !== null, `${name}: the call failed`);
      const f = classifyTransportError(err);
      assert.deepEqual(f, expected, `${name}: ${err.details}`);
      assert.equal(transportReason(f as TransportFailure), words, name);
    }
    // A probe tells a TLS port from one that merely closes.
    assert.deepEqual(await refineFailure({ kind: 'closed' }, tlsPort, true), { kind: 'tls-required' });
    assert.deepEqual(await refineFailure({ kind: 'closed' }, closer, true), { kind: 'closed' });
    assert.equal(transportReason({ kind: 'tls-required' }), 'TLS required (give --cacert, --cert and --key)');
  });

  it('takes a node\'s own answers for answers, not transport failures', () => {
    const answer = (code: grpc.status, details: string): grpc.ServiceError => Object.assign(new Error(`${code} X: ${details}`), { code, details, metadata: new grpc.Metadata() });
    assert.equal(classifyTransportError(answer(grpc.status.UNAVAILABLE, 'etcdserver: leader changed')), null);
    assert.equal(classifyTransportError(answer(grpc.status.DEADLINE_EXCEEDED, 'etcdserver: request timed out')), null);
    assert.equal(classifyTransportError(answer(grpc.status.FAILED_PRECONDITION, 'etcdserver: member not found')), null);
    assert.equal(classifyTransportError(new Error('plain')), null);
    // grpc-js's text for a name that does not resolve (made here from its recorded form: no DNS lookup in a test).
    assert.deepEqual(classifyTransportError(answer(grpc.status.UNAVAILABLE, 'Name resolution failed for target dns:nohost.invalid:2379')), { kind: 'host-not-found' });
    assert.deepEqual(classifyTransportError(answer(grpc.status.DEADLINE_EXCEEDED, 'Deadline exceeded after 5.002s,LB pick: 0.001s,remote_addr=127.0.0.1:2379')), { kind: 'timeout', connected: true });
    assert.deepEqual(classifyTransportError(answer(grpc.status.UNAVAILABLE, 'No connection established. Last error: Error: self-signed certificate. Resolution note: ')),
      { kind: 'tls-rejected', reason: 'self-signed certificate' });
  });

  it('tries endpoints in order: a transport failure moves on, an answer is final, none answering names what each did', async () => {
    const seen: string[] = [];
    assert.equal(await tryEndpoints(['a', 'b'], async (e) => {
      seen.push(e);
      if (e === 'a') throw await range(refused);
      return 'from b';
    }), 'from b');
    assert.deepEqual(seen, ['a', 'b']);
    const final = Object.assign(new Error('9 FAILED_PRECONDITION: etcdserver: no'), { code: grpc.status.FAILED_PRECONDITION, details: 'etcdserver: no' });
    await assert.rejects(tryEndpoints(['a', 'b'], () => Promise.reject(final)), (e) => e === final);
    assert.deepEqual(await verbErrorLine(final, { verb: 'put', endpoints: ['a'], tls: false }), { line: 'quorumlog put: etcdserver: no', code: 1 }, 'the cluster\'s answer, exit 1');
    assert.deepEqual(await verbErrorLine(new Error('client TLS needs all three'), null), { line: 'quorumlog: client TLS needs all three', code: 2 });
    const refusedErr = await range(refused);
    const none = await tryEndpoints([refused, http1], async (e) => {
      throw e === refused ? refusedErr : await range(http1);
    }).catch((e: unknown) => e);
    assert.ok(none instanceof EndpointsUnreachableError);
    assert.deepEqual(none.failures.map((f) => f.failure.kind), ['refused', 'not-grpc']);
    const { line, code } = await verbErrorLine(none, { verb: 'put', endpoints: [refused, http1], tls: false });
    assert.equal(line, `quorumlog put: no endpoint answered (${refused}: connection refused; ${http1}: not a client port (it does not speak gRPC; the metrics port?))`);
    assert.equal(code, 2);
  });

  it('every verb aimed at a wrong port prints one line on stderr, with no grpc-js text, and exits 2', async () => {
    const verbs: string[][] = [
      ['get', 'k'], ['put', 'k', 'v'], ['del', 'k'], ['watch', 'k'], ['member', 'list'], ['queue', 'stats'], ['metadata', 'image'],
      ['transfer-leader', '--to', 'n2'], ['backup', '--out', join(certDir, 'never.backup')],
    ];
    const results = await Promise.all(verbs.map((v) => run(...v, '--endpoints', http1, '--timeout-ms', '1500')));
    for (const [i, r] of results.entries()) {
      const name = (verbs[i] as string[]).filter((a) => !a.startsWith('-') && a !== 'k' && a !== 'v' && a !== 'n2' && !a.endsWith('.backup')).join(' ');
      assert.equal(r.code, 2, `${name}: ${r.stderr}`);
      assert.equal(r.stdout, '', name);
      assert.equal(r.stderr, `quorumlog ${name}: cannot reach ${http1}: not a client port (it does not speak gRPC; the metrics port?)\n`, name);
    }
    const [closed, tlsNeeded, tlsWrong, refusedOne] = await Promise.all([
      run('get', 'k', '--endpoints', closer),
      run('get', 'k', '--endpoints', tlsPort),
      run('get', 'k', '--endpoints', http1, '--cacert', join(certDir, 'ca.pem'), '--cert', join(certDir, 'c.pem'), '--key', join(certDir, 'k.pem')),
      run('put', 'k', 'v', '--endpoints', refused),
    ]);
    assert.equal(closed.stderr, `quorumlog get: cannot reach ${closer}: connection closed at once (not a client port, or TLS needed?)\n`);
    assert.equal(tlsNeeded.stderr, `quorumlog get: cannot reach ${tlsPort}: TLS required (give --cacert, --cert and --key)\n`);
    assert.equal(tlsWrong.stderr, `quorumlog get: cannot reach ${http1}: TLS mismatch (the port does not speak TLS)\n`, 'and no DeprecationWarning');
    assert.equal(refusedOne.stderr, `quorumlog put: cannot reach ${refused}: connection refused\n`);
    for (const r of [closed, tlsNeeded, tlsWrong, refusedOne]) assert.equal(r.code, 2);
  });

  it('status keeps its rows aligned, with a short reason for each unreachable endpoint', async () => {
    const r = await run('status', '--endpoints', [fake, refused, http1, silent].join(','), '--timeout-ms', '1500');
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    const header = lines[0] as string;
    const col = (name: string): number => header.search(new RegExp(`\\b${name}\\b`));
    assert.deepEqual(lines.slice(1).map((l) => l.split(/\s{2,}/)[0]), [fake, refused, http1, silent]);
    for (const line of lines.slice(1)) {
      for (const c of ['node', 'pid', 'mode', 'role']) assert.notEqual(line[col(c)], ' ', `${c} column of: ${line}`);
      for (const c of ['node', 'pid', 'mode', 'role']) assert.equal(line[col(c) - 1], ' ', `${c} column starts in line: ${line}`);
    }
    assert.equal((lines[1] as string).slice(col('role')).split(/\s+/)[0], 'leader');
    assert.equal((lines[2] as string).slice(col('role')), 'unreachable: connection refused');
    assert.equal((lines[3] as string).slice(col('role')), 'unreachable: not a client port (it does not speak gRPC; the metrics port?)');
    assert.equal((lines[4] as string).slice(col('role')), 'unreachable: timed out');
    assert.doesNotMatch(r.stdout, /UNAVAILABLE|No connection established|Resolution note|DEADLINE/);
  });

  it('get on a missing key prints nothing and exits 0, as etcdctl does; --help says so', async () => {
    const [missing, present, help] = await Promise.all([
      run('get', 'absent', '--endpoints', fake), run('get', 'present', '--endpoints', fake), run('get', '--help'),
    ]);
    assert.deepEqual(missing, { code: 0, stdout: '', stderr: '' });
    assert.deepEqual(present, { code: 0, stdout: 'present\nhere\n', stderr: '' });
    assert.match(help.stdout.replace(/\s+/g, ' '), /prints key and value lines, and nothing \(exit 0\) when no key matches, as etcdctl does/);
  });
});
