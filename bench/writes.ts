// Issue 5, items 1-3: write throughput and latency on a 3-node cluster with
// 256-byte values at 1, 16 and 128 concurrent clients, push and pull, beside
// a 3-member etcd 3.4 cluster driven by the same generator and the same
// client library (the etcd3 npm client), in the same run; quorumlog with its
// own fastest client (bare grpc-js) beside that; and linearizable reads with
// 16 clients. Servers and generator share the machine; the generator runs in
// its own process and its CPU is reported, as are the servers'.
//
// Issue 16, item 5: the same loads again from a second generator that is not
// the bottleneck, bench/loadgen-go on etcd's own Go client (built from
// Debian's packages on first use, see bench/cluster/go-loadgen.ts). Its
// figures are the primary ones for issue 16's targets; the etcd3 figures and
// issue 5's verdicts stay beside them.
//
//   npm run bench:writes [-- --quick]

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TestCluster } from '../test/cluster/harness.js';
import { EtcdCluster } from './cluster/etcd.js';
import { ensureGoLoadgen, spawnGoLoad } from './cluster/go-loadgen.js';
import { spawnLoad, type LoadResult, type LoadSpec } from './cluster/loadgen.js';
import { cpuMeter } from './cluster/proc.js';
import { fmt, mdTable, progress, REPORT_DIR, writeReport } from './cluster/report.js';
import { renderCdfSvg } from './svg-cdf.js';

type System = 'push' | 'pull' | 'etcd';
/** Which generator and client: the Node generator with the etcd3 npm client or bare grpc-js, or the Go generator with etcd's clientv3. */
type Client = 'etcd3' | 'grpc' | 'go';

export interface WriteRun {
  readonly system: System;
  readonly client: Client;
  readonly op: 'put' | 'get';
  readonly clients: number;
  readonly result: LoadResult;
  /** CPU seconds per server process over the measured interval. */
  readonly serverCpuSeconds: Record<string, number>;
}

const CONCURRENCY = [1, 16, 128];

/** One load: the Node generator's LoadSpec, with the Go generator as a third client choice. */
type WriteSpec = Omit<LoadSpec, 'client'> & { readonly client: Client };

/**
 * quorumlog's write throughput at 128 clients over etcd's before issue 16
 * (docs/bench/writes.md, the full run of 2026-11-26 19:01 UTC, etcd3
 * generator): issue 16 asks that it not fall.
 */
const RATIO_128_BEFORE: Record<'push' | 'pull', number> = { push: 0.82, pull: 0.90 };

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

async function measure(t: Target, spec: WriteSpec): Promise<{ result: LoadResult; serverCpuSeconds: Record<string, number> }> {
  // The meter spans the generator's whole life (warm-up included), so it is
  // scaled to the measured interval below. The Go generator is built before
  // any measurement (main), so no build time falls inside a meter.
  const meter = cpuMeter(t.pids);
  const t0 = performance.now();
  const result = spec.client === 'go' ? await spawnGoLoad(spec) : await spawnLoad({ ...spec, client: spec.client });
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
  ensureGoLoadgen(); // installs Go and etcd's client from Debian, and builds, when missing: before any cluster starts
  const runs: WriteRun[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'quorumlog-bench-etcd-'));
  const spec = (endpoint: string, client: Client, op: 'put' | 'get', clients: number): WriteSpec => ({
    endpoints: [endpoint], client, op, clients, connections: Math.min(clients, 16), durationMs, warmupMs, valueBytes: 256, keys: 1000,
  });
  const systems: System[] = ['push', 'pull', 'etcd'];
  try {
    for (const system of systems) {
      const t = system === 'etcd' ? await startEtcd(dir) : await startQuorumlog(system);
      try {
        const clientsFor: Client[] = system === 'etcd' ? ['etcd3', 'go'] : ['etcd3', 'grpc', 'go'];
        for (const client of clientsFor) {
          for (const clients of CONCURRENCY) {
            const { result, serverCpuSeconds } = await measure(t, spec(t.leaderEndpoint, client, 'put', clients));
            runs.push({ system, client, op: 'put', clients, result, serverCpuSeconds });
            say(`${system} ${client} put ×${clients}: ${fmt(result.opsPerSecond, 0)} writes/s, p50 ${fmt(result.latencyMs.p50, 2)} ms, p99 ${fmt(result.latencyMs.p99, 2)} ms, errors ${result.errors}, generator CPU ${fmt(generatorCpuPercent(result), 0)}%`, true);
          }
        }
        for (const client of ['etcd3', 'go'] as const) {
          const { result, serverCpuSeconds } = await measure(t, spec(t.leaderEndpoint, client, 'get', 16));
          runs.push({ system, client, op: 'get', clients: 16, result, serverCpuSeconds });
          say(`${system} ${client} linearizable get ×16: ${fmt(result.opsPerSecond, 0)} reads/s, p50 ${fmt(result.latencyMs.p50, 2)} ms, p99 ${fmt(result.latencyMs.p99, 2)} ms, generator CPU ${fmt(generatorCpuPercent(result), 0)}%`, true);
        }
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

function find(runs: readonly WriteRun[], system: System, client: Client, op: 'put' | 'get', clients: number): WriteRun | undefined {
  return runs.find((r) => r.system === system && r.client === client && r.op === op && r.clients === clients);
}

function sum(o: Record<string, number>): number {
  return Object.values(o).reduce((s, x) => s + x, 0);
}

/** The generator's CPU over the measured interval, in % of one core. */
function generatorCpuPercent(r: LoadResult): number {
  return (100 * r.loadgenCpuSeconds) / r.seconds;
}

/** The generator's CPU per request, in ms. */
function generatorCpuMsPerOp(r: WriteRun): number {
  return (1000 * r.result.loadgenCpuSeconds) / Math.max(1, r.result.ops);
}

/**
 * The most requests per second the generator could issue against this
 * server with one whole core of CPU (the Node generator is one process with
 * one main thread; the Go one may spread over both cores, so for it this is
 * its rate per CPU-second): a run close to it measures the generator, not the
 * server.
 */
function generatorCeiling(r: WriteRun): number {
  return 1000 / generatorCpuMsPerOp(r);
}

const systemLabel = (s: System): string => (s === 'etcd' ? 'etcd 3.4' : `quorumlog ${s}`);
const clientLabel = (c: Client): string => (c === 'go' ? 'go (clientv3)' : c);

function report(runs: readonly WriteRun[], quick: boolean, argv: readonly string[]): void {
  const name = quick ? 'quick-writes' : 'writes';
  const command = `npm run bench:writes${argv.length > 0 ? ` -- ${argv.join(' ')}` : ''}`;
  const row = (r: WriteRun): (string | number)[] => [
    systemLabel(r.system), clientLabel(r.client), r.clients, fmt(r.result.opsPerSecond, 0),
    fmt(r.result.latencyMs.p50, 2), fmt(r.result.latencyMs.p99, 2), fmt(r.result.latencyMs.p999, 2), r.result.errors,
    fmt((100 * sum(r.serverCpuSeconds)) / r.result.seconds, 0), fmt(generatorCpuPercent(r.result), 0),
    fmt((1000 * sum(r.serverCpuSeconds)) / Math.max(1, r.result.ops), 2), fmt(generatorCeiling(r), 0),
  ];
  const header = ['system', 'client', 'clients', 'ops/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'errors', 'servers CPU %', 'generator CPU %',
    'server CPU ms per op', 'generator ceiling ops/s'];
  const writes = runs.filter((r) => r.op === 'put');
  const reads = runs.filter((r) => r.op === 'get');

  // The two generators side by side, per system and load.
  const sideBySide: (string | number)[][] = [];
  for (const system of ['push', 'pull', 'etcd'] as const) {
    for (const clients of CONCURRENCY) {
      const n = find(runs, system, 'etcd3', 'put', clients);
      const g = find(runs, system, 'go', 'put', clients);
      if (n === undefined || g === undefined) continue;
      sideBySide.push([systemLabel(system), clients, fmt(n.result.opsPerSecond, 0), fmt(g.result.opsPerSecond, 0),
        fmt(n.result.latencyMs.p50, 2), fmt(g.result.latencyMs.p50, 2), fmt(n.result.latencyMs.p99, 2), fmt(g.result.latencyMs.p99, 2),
        fmt(generatorCpuPercent(n.result), 0), fmt(generatorCpuPercent(g.result), 0),
        fmt(generatorCpuMsPerOp(n), 3), fmt(generatorCpuMsPerOp(g), 3)]);
    }
  }

  const ratioRows: (string | number)[][] = [];
  for (const client of ['go', 'etcd3'] as const) {
    for (const mode of ['push', 'pull'] as const) {
      for (const clients of CONCURRENCY) {
        const q = find(runs, mode, client, 'put', clients);
        const e = find(runs, 'etcd', client, 'put', clients);
        if (q === undefined || e === undefined) continue;
        ratioRows.push([clientLabel(client), mode, clients, fmt(q.result.opsPerSecond / e.result.opsPerSecond, 2),
          fmt(q.result.latencyMs.p50 / e.result.latencyMs.p50, 2), fmt(q.result.latencyMs.p99 / e.result.latencyMs.p99, 2)]);
      }
    }
  }

  const met = (ok: boolean): string => `**${ok ? 'met' : 'not met'}**`;
  const put = (s: System, client: Client, clients: number): LoadResult | undefined => find(runs, s, client, 'put', clients)?.result;
  const tput = (s: System, client: Client, clients: number): number => put(s, client, clients)?.opsPerSecond ?? NaN;
  const p99 = (s: System, client: Client, clients: number): number => put(s, client, clients)?.latencyMs.p99 ?? NaN;

  // Issue 16's targets, judged on the Go generator's figures.
  const goVerdicts: string[] = [];
  const goCpu = (s: System, clients: number): string => {
    const r = find(runs, s, 'go', 'put', clients);
    return r === undefined ? '' : `${fmt(generatorCpuPercent(r.result), 0)}% of a core, ${fmt(generatorCpuMsPerOp(r), 3)} ms per request`;
  };
  for (const mode of ['push', 'pull'] as const) {
    const r1 = tput(mode, 'go', 1) / tput('etcd', 'go', 1);
    goVerdicts.push(`- ${mode} (Go generator): at 1 client ${fmt(tput(mode, 'go', 1), 0)} vs etcd's ${fmt(tput('etcd', 'go', 1), 0)} puts/s, ${fmt(r1, 2)}× (target ≥ 1.5×): ${met(r1 >= 1.5)}. Generator: ${goCpu(mode, 1)} (etcd run: ${goCpu('etcd', 1)}).`);
    goVerdicts.push(`- ${mode} (Go generator): p99 at 1 client ${fmt(p99(mode, 'go', 1), 2)} ms vs etcd's ${fmt(p99('etcd', 'go', 1), 2)} ms (target: no higher): ${met(p99(mode, 'go', 1) <= p99('etcd', 'go', 1))}.`);
    goVerdicts.push(`- ${mode} (Go generator): p99 at 16 clients ${fmt(p99(mode, 'go', 16), 2)} ms vs etcd's ${fmt(p99('etcd', 'go', 16), 2)} ms (target: no higher): ${met(p99(mode, 'go', 16) <= p99('etcd', 'go', 16))}.`);
    const r128 = tput(mode, 'go', 128) / tput('etcd', 'go', 128);
    const before = RATIO_128_BEFORE[mode];
    goVerdicts.push(`- ${mode} (Go generator): at 128 clients ${fmt(tput(mode, 'go', 128), 0)} vs etcd's ${fmt(tput('etcd', 'go', 128), 0)} puts/s, ${fmt(r128, 2)}× (target: no lower than the ${fmt(before, 2)}× of 2026-11-26, measured with the etcd3 generator; this run's etcd3 generator says ${fmt(tput(mode, 'etcd3', 128) / tput('etcd', 'etcd3', 128), 2)}×): ${met(r128 >= before)}. Generator: ${goCpu(mode, 128)} (etcd run: ${goCpu('etcd', 128)}).`);
    goVerdicts.push(`- ${mode} (Go generator): write throughput at 128 clients ${fmt(r128, 2)}× etcd's (issue 5's target ≥ 1.5×, unmeasurable with the etcd3 generator): ${met(r128 >= 1.5)}.`);
  }

  // Issue 5's targets, judged as before on the etcd3 generator's figures.
  const verdicts: string[] = [];
  for (const mode of ['push', 'pull'] as const) {
    const t128 = (s: System): number => tput(s, 'etcd3', 128);
    const t1 = (s: System): number => tput(s, 'etcd3', 1);
    const p99at16 = (s: System): number => p99(s, 'etcd3', 16);
    const e128 = find(runs, 'etcd', 'etcd3', 'put', 128);
    const ceiling = e128 === undefined ? NaN : generatorCeiling(e128);
    const unreachable = 1.5 * t128('etcd') > ceiling
      ? ` 1.5× etcd's is ${fmt(1.5 * t128('etcd'), 0)} writes/s, above the ${fmt(ceiling, 0)}/s that the load generator (one Node process, ${fmt(generatorCpuMsPerOp(e128 as WriteRun), 3)} ms of CPU per request) can issue with a whole core: not measurable with this client on this machine (see the Go generator's line above).`
      : '';
    verdicts.push(`- ${mode}: write throughput at 128 clients ${fmt(t128(mode) / t128('etcd'), 2)}× etcd's (target ≥ 1.5×): ${met(t128(mode) >= 1.5 * t128('etcd'))}.${unreachable}`);
    verdicts.push(`- ${mode}: at 1 client ${fmt(t1(mode) / t1('etcd'), 2)}× etcd's (target ≥ 1×): ${met(t1(mode) >= t1('etcd'))}.`);
    verdicts.push(`- ${mode}: p99 at 16 clients ${fmt(p99at16(mode), 1)} ms vs etcd's ${fmt(p99at16('etcd'), 1)} ms (target: no higher): ${met(p99at16(mode) <= p99at16('etcd'))}.`);
  }
  const p50 = (m: System, c: number): number => put(m, 'etcd3', c)?.latencyMs.p50 ?? NaN;
  for (const c of CONCURRENCY) {
    verdicts.push(`- pull's p50 write latency at ${c} client(s) is ${fmt(p50('pull', c) / p50('push', c), 2)}× push's (target ≤ 1.2×): ${met(p50('pull', c) <= 1.2 * p50('push', c))}.`);
  }
  const md = [
    '# Writes and reads: quorumlog (push, pull) beside etcd 3.4',
    '',
    '3-node quorumlog clusters and a 3-member etcd cluster, one after the other on the same machine, each driven by the same load generators (each its own process) at the leader; 256-byte values over 1,000 keys; 1 client = one request in flight; connections = min(clients, 16). Two generators run the same workload: the Node one through the `etcd3` npm client (`etcd3`; quorumlog is also driven through a bare grpc-js client, `grpc`, its fastest), and the Go one (`bench/loadgen-go`) through etcd\'s own Go client, `go.etcd.io/etcd/clientv3` 3.4 (`go (clientv3)`), which costs far less CPU per request and so is not the bottleneck; its figures are the primary ones for issue 16\'s targets. Latency from an HDR histogram (Node) or an exact sort of every latency (Go). "servers CPU %" is the sum over the three server processes, in % of one core; the machine has two. "generator CPU %" is the generator\'s own user + system CPU over the measured interval. "generator ceiling" is what the generator could issue per CPU-second (a whole core for the Node one): ops/s divided by its CPU share; a run near it measures the generator more than the server.',
    '',
    '## Writes',
    '',
    mdTable(header, writes.map(row)),
    '',
    '## Linearizable reads, 16 clients',
    '',
    mdTable(header, reads.map(row)),
    '',
    '## The two generators side by side (writes)',
    '',
    mdTable(['system', 'clients', 'etcd3 ops/s', 'go ops/s', 'etcd3 p50 ms', 'go p50 ms', 'etcd3 p99 ms', 'go p99 ms',
      'etcd3 generator CPU %', 'go generator CPU %', 'etcd3 generator CPU ms per op', 'go generator CPU ms per op'], sideBySide),
    '',
    '## quorumlog / etcd (same generator, same load)',
    '',
    mdTable(['generator', 'mode', 'clients', 'throughput ratio', 'p50 ratio', 'p99 ratio'], ratioRows),
    '',
    '## Targets',
    '',
    'Issue 16, judged on the Go generator\'s figures:',
    '',
    ...goVerdicts,
    '',
    'Issue 5, judged as before on the etcd3 generator\'s figures:',
    '',
    ...verdicts,
    '',
    `Write latency CDFs at 16 clients: [${name}-16.svg](${name}-16.svg).`,
  ].join('\n');
  writeReport(name, command, runs, md);
  // Both generators report the quantile function at every half percentile: those are the curve's samples.
  const panel = (client: 'etcd3' | 'go'): { title: string; lines: { label: string; values: number[] }[] } => ({
    title: `quorumlog push, pull and etcd 3.4, ${client === 'go' ? 'Go generator (clientv3)' : 'Node generator (etcd3 client)'}`,
    lines: (['push', 'pull', 'etcd'] as const).map((s) => find(runs, s, client, 'put', 16)).filter((r): r is WriteRun => r !== undefined)
      .map((r) => ({ label: systemLabel(r.system), values: r.result.cdf.map(([ms]) => ms) })),
  });
  const panels = [panel('go'), panel('etcd3')].filter((p) => p.lines.length > 0);
  const all = panels.flatMap((p) => p.lines.flatMap((l) => l.values)).filter((v) => v > 0);
  writeFileSync(join(REPORT_DIR, `${name}-16.svg`), renderCdfSvg({
    title: 'Write latency, 3 nodes, 16 clients, 256-byte values', xLabel: 'latency (ms, log scale)', yLabel: 'writes',
    xMin: 10 ** Math.floor(Math.log10(Math.min(...all))), xMax: 10 ** Math.ceil(Math.log10(Math.max(...all))),
    panels, columns: 1,
  }));
  console.log('');
  console.log(mdTable(header, runs.map(row)));
  console.log('');
  console.log(mdTable(['system', 'clients', 'etcd3 ops/s', 'go ops/s', 'etcd3 p50 ms', 'go p50 ms', 'etcd3 p99 ms', 'go p99 ms',
    'etcd3 generator CPU %', 'go generator CPU %', 'etcd3 generator CPU ms per op', 'go generator CPU ms per op'], sideBySide));
  console.log('');
  console.log([...goVerdicts, ...verdicts].join('\n'));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().then(() => process.exit(0), (e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
