// Helpers for the etcd API server's tests: a server on 127.0.0.1 (any free
// port) over a LocalKvBackend, served on this thread or (protocolWorkers) by
// protocol worker processes as on a node, a raw grpc-js client for etcd's services built
// from our protos, and small waiting helpers. Not used in production.

import { spawn } from 'node:child_process';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import type { KvBackend } from './backend.js';
import { LocalKvBackend } from './local-backend.js';
import { startWorkerFront } from '../client-api.js';
import { createEtcdServer, loadEtcdProtos, type EtcdApi, type EtcdServerOptions } from './server.js';

/** A running server for one test. */
export interface TestServer {
  readonly api: EtcdApi;
  readonly backend: KvBackend;
  readonly port: number;
  /** "127.0.0.1:port" */
  readonly address: string;
  close(): Promise<void>;
}

/** Starts an etcd API server over `backend` (default: a fresh LocalKvBackend) on 127.0.0.1, any free port. */
export async function startTestServer(
  opts: Partial<Omit<EtcdServerOptions, 'logger'>> & { backend?: KvBackend; protocolWorkers?: number } = {},
): Promise<TestServer> {
  const backend = opts.backend ?? new LocalKvBackend();
  const logger = pino({ level: process.env['ETCD_TEST_LOG'] ?? 'silent' });
  const serverOpts: EtcdServerOptions = {
    logger,
    ...(opts.watchMaxPendingBytes !== undefined ? { watchMaxPendingBytes: opts.watchMaxPendingBytes } : {}),
    ...(opts.progressNotifyIntervalMs !== undefined ? { progressNotifyIntervalMs: opts.progressNotifyIntervalMs } : {}),
  };
  const api = createEtcdServer(backend, serverOpts);
  if ((opts.protocolWorkers ?? 0) > 0) {
    // The node's arrangement: protocol workers own the port, the grpc-js server behind them on a Unix socket.
    const front = await startWorkerFront(api.server, backend, api.stats, { host: '127.0.0.1', port: 0, count: opts.protocolWorkers ?? 1, logger });
    return {
      api, backend, port: front.port, address: `127.0.0.1:${front.port}`,
      close: async () => {
        await front.close();
        await api.close();
      },
    };
  }
  const port = await api.start('127.0.0.1', 0);
  return { api, backend, port, address: `127.0.0.1:${port}`, close: () => api.close() };
}

/** A grpc-js client of one etcd service (KV, Watch, Maintenance, Cluster, Lease) built from our protos. */
export function rawClient(address: string, service: string): grpc.Client {
  const pkg = loadEtcdProtos()['etcdserverpb'] as grpc.GrpcObject;
  const Ctor = pkg[service] as grpc.ServiceClientConstructor;
  return new Ctor(address, grpc.credentials.createInsecure());
}

/** Calls a unary method of a raw client. */
export function callUnary<Res = Record<string, unknown>>(client: grpc.Client, method: string, req: object): Promise<Res> {
  return new Promise((resolve, reject) => {
    const fn = (client as unknown as Record<string, (r: object, cb: (err: grpc.ServiceError | null, res: Res) => void) => void>)[method];
    if (!fn) throw new Error(`no method ${method}`);
    fn.call(client, req, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

/** Waits until `cond()` holds, polling every few ms; fails after `timeoutMs`. */
export async function waitFor(cond: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** UTF-8 bytes. */
export function utf8(s: string): Buffer {
  return Buffer.from(s, 'utf8');
}

/** What one etcdctl run printed, and its exit code. */
export interface EtcdctlRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs Debian's etcdctl (API v3) against `endpoints`, with `input` on its standard input. */
export function runEtcdctl(endpoints: readonly string[], args: readonly string[], opts: { input?: string; commandTimeout?: string } = {}): Promise<EtcdctlRun> {
  return new Promise((resolve, reject) => {
    const child = spawn('etcdctl', ['--endpoints', endpoints.join(','), '--dial-timeout', '3s', '--command-timeout', opts.commandTimeout ?? '5s', ...args], {
      env: { ...process.env, ETCDCTL_API: '3' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    // etcdctl may exit before it reads its input (most commands never do): the write then fails with EPIPE, which
    // is no failure of the command; its exit code and output say how it went.
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}
