// Issue 5, items 1-3: write throughput and latency on a 3-node cluster with
// 256-byte values at 1, 16 and 128 concurrent clients, push and pull, beside
// a 3-member etcd 3.4 cluster driven by the same generator and the same
// client library (the etcd3 npm client), in the same run; quorumlog with its
// own fastest client (bare grpc-js) beside that; and linearizable reads with
// 16 clients. Servers and generator share the machine; the generator runs in
// its own process and its CPU is reported, as are the servers'.
//
//   npm run bench:writes [-- --quick]

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TestCluster } from '../test/cluster/harness.js';
import { EtcdCluster } from './cluster/etcd.js';
import { spawnLoad, type LoadResult, type LoadSpec } from './cluster/loadgen.js';
import { cpuMeter } from './cluster/proc.js';
import { fmt, mdTable, progress, REPORT_DIR, writeReport } from './cluster/report.js';
import { renderCdfSvg } from './svg-cdf.js';

type System = 'push' | 'pull' | 'etcd';

export interface WriteRun {
  readonly system: System;
  readonly client: 'etcd3' | 'grpc';
  readonly op: 'put' | 'get';
  readonly clients: number;
  readonly result: LoadResult;
  /** CPU seconds per server process over the measured interval. */
  readonly serverCpuSeconds: Record<string, number>;
}

const CONCURRENCY = [1, 16, 128];

/** A running system under test: its leader's endpoint, all pids, and how to stop it. */
interface Target {
  readonly leaderEndpoint: string;
  readonly pids: Record<string, number>;
  stop(): Promise<void>;
}

async function startQuorumlog(mode: 'push' | 'pull'): Promise<Target> {
  const c = await TestCluster.start({ nodes: 3, mode, extra: { logLevel: 'warn' } });
  const leader = await c.waitForLeader();
  return {
    leaderEndpoint: leader.endpoint,
    pids: Object.fromEntries(c.nodes.map((n) => [n.id, n.process?.pid ?? -1])),
    stop: () => c.close(),
  };
}

async function startEtcd(dir: string): Promise<Target> {
  const base = 5_000 + Math.floor(Math.random() * 4_000); // below the ephemeral range, apart from the test harness's
  const e = await EtcdCluster.start(dir, base);
  return { leaderEndpoint: e.leader().client, pids: e.pids(), stop: () => e.stop() };
}

async function measure(t: Target, spec: LoadSpec): Promise<{ result: LoadResult; serverCpuSeconds: Record<string, number> }> {
  // The meter spans the generator's whole life (warm-up included), so it is
  // scaled to the measured interval below.
  const meter = cpuMeter(t.pids);
  const t0 = performance.now();
  const result = await spawnLoad(spec);
  const wallSeconds = (performance.now() - t0) / 1000;
  const used = meter.stop();
  const share = result.seconds / wallSeconds;
  return { result, serverCpuSeconds: Object.fromEntries(Object.entries(used).map(([k, v]) => [k, v * share])) };
}

/** Runs the whole comparison; returns every run. */
export async function main(argv: readonly string[] = process.argv.slice(2)): Promise<WriteRun[]> {
  const quick = argv.includes('--quick');
  const durationMs = quick ? 2000 : 10_000;
  const warmupMs = quick ? 500 : 2000;
  const say = progress('writes', 0);
  const runs: WriteRun[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'quorumlog-bench-etcd-'));
  const spec = (endpoint: string, client: 'etcd3' | 'grpc', op: 'put' | 'get', clients: number): LoadSpec => ({
    endpoints: [endpoint], client, op, clients, connections: Math.min(clients, 16), durationMs, warmupMs, valueBytes: 256, keys: 1000,
  });
  const systems: System[] = ['push', 'pull', 'etcd'];
  try {
    for (const system of systems) {
      const t = system === 'etcd' ? await startEtcd(dir) : await startQuorumlog(system);
      try {
        const clientsFor: ('etcd3' | 'grpc')[] = system === 'etcd' ? ['etcd3'] : ['etcd3', 'grpc'];
        for (const client of clientsFor) {
          for (const clients of CONCURRENCY) {
            const { result, serverCpuSeconds } = await measure(t, spec(t.leaderEndpoint, client, 'put', clients));
            runs.push({ system, client, op: 'put', clients, result, serverCpuSeconds });
            say(`${system} ${client} put ×${clients}: ${fmt(result.opsPerSecond, 0)} writes/s, p50 ${fmt(result.latencyMs.p50, 2)} ms, p99 ${fmt(result.latencyMs.p99, 2)} ms, errors ${result.errors}`, true);
          }
        }
        const { result, serverCpuSeconds } = await measure(t, spec(t.leaderEndpoint, 'etcd3', 'get', 16));
        runs.push({ system, client: 'etcd3', op: 'get', clients: 16, result, serverCpuSeconds });
        say(`${system} etcd3 linearizable get ×16: ${fmt(result.opsPerSecond, 0)} reads/s, p50 ${fmt(result.latencyMs.p50, 2)} ms, p99 ${fmt(result.latencyMs.p99, 2)} ms`, true);
      } finally {
        await t.stop();
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  report(runs, quick, argv);
  return runs;
}

function find(runs: readonly WriteRun[], system: System, client: 'etcd3' | 'grpc', op: 'put' | 'get', clients: number): WriteRun | undefined {
  return runs.find((r) => r.system === system && r.client === client && r.op === op && r.clients === clients);
}

function sum(o: Record<string, number>): number {
  return Object.values(o).reduce((s, x) => s + x, 0);
}

/** The generator's CPU per request, in ms. */
function generatorCpuMsPerOp(r: WriteRun): number {
  return (1000 * r.result.loadgenCpuSeconds) / Math.max(1, r.result.ops);
}

/**
 * The most requests per second the generator could issue against this
 * server if it had a whole core to itself (it is one Node process): a run
 * close to its ceiling measures the generator, not the server.
 */
function generatorCeiling(r: WriteRun): number {
  return 1000 / generatorCpuMsPerOp(r);
}

function report(runs: readonly WriteRun[], quick: boolean, argv: readonly string[]): void {
  const name = quick ? 'quick-writes' : 'writes';
  const command = `npm run bench:writes${argv.length > 0 ? ` -- ${argv.join(' ')}` : ''}`;
  const row = (r: WriteRun): (string | number)[] => [
    r.system === 'etcd' ? 'etcd 3.4' : `quorumlog ${r.system}`, r.client, r.clients, fmt(r.result.opsPerSecond, 0),
    fmt(r.result.latencyMs.p50, 2), fmt(r.result.latencyMs.p99, 2), fmt(r.result.latencyMs.p999, 2), r.result.errors,
    fmt((100 * sum(r.serverCpuSeconds)) / r.result.seconds, 0), fmt((100 * r.result.loadgenCpuSeconds) / r.result.seconds, 0),
    fmt((1000 * sum(r.serverCpuSeconds)) / Math.max(1, r.result.ops), 2), fmt(generatorCeiling(r), 0),
  ];
  const header = ['system', 'client', 'clients', 'ops/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'errors', 'servers CPU %', 'generator CPU %',
    'server CPU ms per op', 'generator ceiling ops/s'];
  const writes = runs.filter((r) => r.op === 'put');
  const reads = runs.filter((r) => r.op === 'get');
  const ratioRows: (string | number)[][] = [];
  const verdicts: string[] = [];
  for (const mode of ['push', 'pull'] as const) {
    for (const clients of CONCURRENCY) {
      const q = find(runs, mode, 'etcd3', 'put', clients);
      const e = find(runs, 'etcd', 'etcd3', 'put', clients);
      if (q === undefined || e === undefined) continue;
      ratioRows.push([mode, clients, fmt(q.result.opsPerSecond / e.result.opsPerSecond, 2), fmt(q.result.latencyMs.p50 / e.result.latencyMs.p50, 2),
        fmt(q.result.latencyMs.p99 / e.result.latencyMs.p99, 2)]);
    }
    const t128 = (s: System): number => find(runs, s, 'etcd3', 'put', 128)?.result.opsPerSecond ?? NaN;
    const t1 = (s: System): number => find(runs, s, 'etcd3', 'put', 1)?.result.opsPerSecond ?? NaN;
    const p99at16 = (s: System): number => find(runs, s, 'etcd3', 'put', 16)?.result.latencyMs.p99 ?? NaN;
    const e128 = find(runs, 'etcd', 'etcd3', 'put', 128);
    const ceiling = e128 === undefined ? NaN : generatorCeiling(e128);
    const unreachable = 1.5 * t128('etcd') > ceiling
      ? ` 1.5× etcd's is ${fmt(1.5 * t128('etcd'), 0)} writes/s, above the ${fmt(ceiling, 0)}/s that the load generator (one Node process, ${fmt(generatorCpuMsPerOp(e128 as WriteRun), 3)} ms of CPU per request) can issue with a whole core: not measurable with this client on this machine.`
      : '';
    verdicts.push(`- ${mode}: write throughput at 128 clients ${fmt(t128(mode) / t128('etcd'), 2)}× etcd's (target ≥ 1.5×): **${t128(mode) >= 1.5 * t128('etcd') ? 'met' : 'not met'}**.${unreachable}`);
    verdicts.push(`- ${mode}: at 1 client ${fmt(t1(mode) / t1('etcd'), 2)}× etcd's (target ≥ 1×): **${t1(mode) >= t1('etcd') ? 'met' : 'not met'}**.`);
    verdicts.push(`- ${mode}: p99 at 16 clients ${fmt(p99at16(mode), 1)} ms vs etcd's ${fmt(p99at16('etcd'), 1)} ms (target: no higher): **${p99at16(mode) <= p99at16('etcd') ? 'met' : 'not met'}**.`);
  }
  const p50 = (m: System, c: number): number => find(runs, m, 'etcd3', 'put', c)?.result.latencyMs.p50 ?? NaN;
  for (const c of CONCURRENCY) {
    verdicts.push(`- pull's p50 write latency at ${c} client(s) is ${fmt(p50('pull', c) / p50('push', c), 2)}× push's (target ≤ 1.2×): **${p50('pull', c) <= 1.2 * p50('push', c) ? 'met' : 'not met'}**.`);
  }
  const md = [
    '# Writes and reads: quorumlog (push, pull) beside etcd 3.4',
    '',
    '3-node quorumlog clusters and a 3-member etcd cluster, one after the other on the same machine, each driven by the same load generator (its own process) through the `etcd3` npm client at the leader; 256-byte values over 1,000 keys; 1 client = one request in flight; connections = min(clients, 16). quorumlog is also driven by a bare grpc-js client (`grpc`), its fastest. Latency from an HDR histogram. "servers CPU %" is the sum over the three server processes, in % of one core; the machine has two. "generator ceiling" is what the generator (one Node process) could issue with a whole core to itself: ops/s divided by its CPU share; a run near it measures the generator more than the server.',
    '',
    '## Writes',
    '',
    mdTable(header, writes.map(row)),
    '',
    '## Linearizable reads, 16 clients',
    '',
    mdTable(header, reads.map(row)),
    '',
    '## quorumlog / etcd (same client, same load)',
    '',
    mdTable(['mode', 'clients', 'throughput ratio', 'p50 ratio', 'p99 ratio'], ratioRows),
    '',
    '## Targets',
    '',
    ...verdicts,
    '',
    `Write latency CDFs at 16 clients: [${name}-16.svg](${name}-16.svg).`,
  ].join('\n');
  writeReport(name, command, runs, md);
  // The load generator reports the quantile function at every half percentile: those are the curve's samples.
  const lines = (['push', 'pull', 'etcd'] as const).map((s) => find(runs, s, 'etcd3', 'put', 16)).filter((r): r is WriteRun => r !== undefined)
    .map((r) => ({ label: r.system === 'etcd' ? 'etcd 3.4' : `quorumlog ${r.system}`, values: r.result.cdf.map(([ms]) => ms) }));
  const all = lines.flatMap((l) => l.values).filter((v) => v > 0);
  writeFileSync(join(REPORT_DIR, `${name}-16.svg`), renderCdfSvg({
    title: 'Write latency, 3 nodes, 16 clients, 256-byte values (etcd3 client)', xLabel: 'latency (ms, log scale)', yLabel: 'writes',
    xMin: 10 ** Math.floor(Math.log10(Math.min(...all))), xMax: 10 ** Math.ceil(Math.log10(Math.max(...all))),
    panels: [{ title: 'quorumlog push, pull and etcd 3.4', lines }], columns: 1,
  }));
  console.log('');
  console.log(mdTable(header, runs.map(row)));
  console.log('');
  console.log(verdicts.join('\n'));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().then(() => process.exit(0), (e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
