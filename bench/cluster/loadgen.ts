// The load generator, run as its own process so that its CPU is measured
// apart from the servers' (on 2 cores it competes with them). The same
// generator drives quorumlog and etcd: `clients` concurrent workers, each
// issuing one request at a time for `durationMs`, spread over `connections`
// client instances. Latency goes into an HDR histogram (microseconds).
//
// Clients: 'etcd3' is the etcd3 npm client (what a Node team would use with
// either system); 'grpc' is a bare grpc-js client on our etcd protos, with
// no retry policy or conversion layer (quorumlog's "own fastest client").

import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { Etcd3 } from 'etcd3';
import hdr from 'hdr-histogram-js';
import { loadEtcdProtos } from '../../src/server/etcd/server.js';

export interface LoadSpec {
  readonly endpoints: readonly string[];
  readonly client: 'etcd3' | 'grpc';
  readonly op: 'put' | 'get';
  readonly clients: number;
  readonly connections: number;
  readonly durationMs: number;
  readonly warmupMs: number;
  readonly valueBytes: number;
  /** Distinct keys the workers write or read. */
  readonly keys: number;
}

export interface LoadResult {
  readonly ops: number;
  readonly errors: number;
  readonly seconds: number;
  readonly opsPerSecond: number;
  readonly latencyMs: { readonly p50: number; readonly p90: number; readonly p99: number; readonly p999: number; readonly max: number; readonly mean: number };
  /** (latency ms, cumulative fraction) at every half percentile: the quantile function, for plots. */
  readonly cdf: readonly (readonly [number, number])[];
  /** CPU seconds the generator itself used during the measured interval. */
  readonly loadgenCpuSeconds: number;
}

type Op = (key: string, value: Buffer) => Promise<unknown>;

function makeOps(spec: LoadSpec): { ops: Op[]; close: () => void } {
  const ops: Op[] = [];
  const closers: (() => void)[] = [];
  for (let i = 0; i < spec.connections; i++) {
    const endpoint = spec.endpoints[i % spec.endpoints.length] as string;
    if (spec.client === 'etcd3') {
      const c = new Etcd3({ hosts: [`http://${endpoint}`] });
      closers.push(() => c.close());
      ops.push(spec.op === 'put' ? (k, v) => c.put(k).value(v).exec() : (k) => c.get(k).exec());
    } else {
      const KV = (loadEtcdProtos()['etcdserverpb'] as grpc.GrpcObject)['KV'] as grpc.ServiceClientConstructor;
      const c = new KV(endpoint, grpc.credentials.createInsecure()) as unknown as grpc.Client & Record<string, (req: unknown, cb: (e: Error | null) => void) => void>;
      closers.push(() => c.close());
      const method = spec.op === 'put' ? 'Put' : 'Range';
      ops.push((k, v) => new Promise((resolve, reject) => {
        (c[method] as (req: unknown, cb: (e: Error | null) => void) => void).call(c, spec.op === 'put' ? { key: Buffer.from(k), value: v } : { key: Buffer.from(k) },
          (e) => (e !== null ? reject(e) : resolve(undefined)));
      }));
    }
  }
  return { ops, close: () => { for (const c of closers) c(); } };
}

/** Runs the load in this process. */
export async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  const { ops, close } = makeOps(spec);
  const value = Buffer.alloc(spec.valueBytes, 'v');
  const h = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 3 });
  let measuring = false;
  let stop = false;
  let count = 0;
  let errors = 0;
  if (spec.op === 'get') {
    // Reads need keys to read: write them once through the same client.
    const { ops: writers, close: closeWriters } = makeOps({ ...spec, op: 'put', connections: 1 });
    for (let k = 0; k < spec.keys; k++) await (writers[0] as Op)(`k${k}`, value);
    closeWriters();
  }
  const worker = async (w: number): Promise<void> => {
    const op = ops[w % ops.length] as Op;
    let i = w;
    while (!stop) {
      const key = `k${i++ % spec.keys}`;
      const t0 = performance.now();
      try {
        await op(key, value);
        if (measuring) {
          h.recordValue(Math.max(1, Math.round((performance.now() - t0) * 1000)));
          count++;
        }
      } catch {
        if (measuring) errors++;
      }
    }
  };
  const workers = Array.from({ length: spec.clients }, (_, w) => worker(w));
  await new Promise((r) => setTimeout(r, spec.warmupMs));
  measuring = true;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, spec.durationMs));
  measuring = false;
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  stop = true;
  await Promise.all(workers);
  close();
  const pct = (p: number): number => h.getValueAtPercentile(p) / 1000;
  const cdf: [number, number][] = [];
  for (let p = 0; p <= 100; p += 0.5) cdf.push([pct(p), p / 100]);
  const result: LoadResult = {
    ops: count, errors, seconds, opsPerSecond: count / seconds,
    latencyMs: { p50: pct(50), p90: pct(90), p99: pct(99), p999: pct(99.9), max: h.maxValue / 1000, mean: h.mean / 1000 },
    cdf, loadgenCpuSeconds: (cpu.user + cpu.system) / 1e6,
  };
  h.destroy();
  return result;
}

/** Runs the load in a child process and returns its result. */
export function spawnLoad(spec: LoadSpec): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(import.meta.url), [JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
    let out = '';
    child.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
    child.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`load generator exited with ${code}`));
      try {
        resolve(JSON.parse(out.trim().split('\n').pop() ?? '') as LoadResult);
      } catch (e) {
        reject(e as Error);
      }
    });
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  runLoad(JSON.parse(process.argv[2] ?? '{}') as LoadSpec).then((r) => {
    process.stdout.write(JSON.stringify(r) + '\n');
    process.exit(0);
  }, (e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
