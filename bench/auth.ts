// Issue 19: what etcd's auth costs a write. For each system (etcd 3.4, and
// quorumlog in push and in pull mode) one fresh 3-member cluster, with a
// user `writer` whose role may read and write the generator's keys (prefix
// "k"). Then, alternating on the same cluster so that drift on a shared
// machine hits both sides alike: puts from the Go generator (etcd's clientv3)
// at the leader, 16 clients, with auth off, then with auth on as `writer`
// (authenticated once per connection; every put carries its token and is
// checked against the user's permissions), twice. CPU comes from /proc over
// every member's process tree (the node, its threads and its protocol
// workers) inside the measured interval.
//
//   node dist/bench/auth.js [--quick] [--seconds 6] [--rounds 2] [--clients 16] [--systems etcd,push,pull]
//   npm run bench -- auth
//
// Writes docs/bench/auth.{json,md} (quick-auth.* with --quick; auth-<n>-clients.* with --clients n other than 16).

import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { runEtcdctl } from '../src/server/etcd/test-util.js';
import { TestCluster } from '../test/cluster/harness.js';
import { EtcdCluster } from './cluster/etcd.js';
import { freeEtcdBasePort, isMainModule, onInterrupt } from './cluster/fault-util.js';
import { ensureGoLoadgen, type GoLoadResult } from './cluster/go-loadgen.js';
import { fmt, mdTable, progress, writeReport } from './cluster/report.js';
import { sampledGoLoad } from './scaling.js';

type System = 'etcd' | 'push' | 'pull';
const SYSTEMS: readonly System[] = ['etcd', 'push', 'pull'];
const DEFAULT_CLIENTS = 16;
const VALUE_BYTES = 256;
const KEYS = 1000;
const WRITER = 'writer:writerpw';
const ROOT = 'root:rootpw';

interface Settings {
  readonly quick: boolean;
  readonly durationMs: number;
  readonly warmupMs: number;
  readonly trimMs: number;
  readonly rounds: number;
  readonly clients: number;
  readonly systems: readonly System[];
}

/** One measured load. */
export interface AuthLoad {
  readonly system: System;
  readonly auth: boolean;
  readonly round: number;
  readonly result: GoLoadResult;
  /** Every member's whole process tree, CPU µs per put over the window. */
  readonly serverUsPerPut: number;
  readonly windowSeconds: number;
}

interface Running {
  readonly endpoints: readonly string[];
  readonly leaderEndpoint: string;
  pids(): Record<string, number>;
  stop(): Promise<void>;
}

async function startSystem(system: System, dir: string): Promise<Running> {
  if (system === 'etcd') {
    const e = await EtcdCluster.start(join(dir, 'etcd'), await freeEtcdBasePort(5_000));
    // Picked before auth is on: etcd 3.4 serves Maintenance.Status (how leader() asks) to root alone then.
    const leader = e.leader().client;
    return { endpoints: e.endpoints, leaderEndpoint: leader, pids: () => e.pids(), stop: () => e.stop() };
  }
  const c = await TestCluster.start({ nodes: 3, mode: system, extra: { logLevel: 'warn' } });
  const leader = await c.waitForLeader(30_000);
  return {
    endpoints: c.nodes.map((n) => n.endpoint),
    leaderEndpoint: leader.endpoint,
    pids: () => Object.fromEntries(c.nodes.flatMap((n) => (n.process?.pid === undefined ? [] : [[n.id, n.process.pid]]))),
    stop: () => c.close(),
  };
}

async function etcdctl(t: Running, args: readonly string[], user?: string): Promise<void> {
  const r = await runEtcdctl(t.endpoints, [...(user !== undefined ? ['--user', user] : []), ...args], { commandTimeout: '15s' });
  if (r.code !== 0) throw new Error(`etcdctl ${args.join(' ')}: ${r.stderr.trim()}`);
}

/** Users and roles, made while auth is off: root, and `writer` with READWRITE on the generator's keys. */
async function setUp(t: Running): Promise<void> {
  await etcdctl(t, ['user', 'add', 'root', '--new-user-password', 'rootpw']);
  await etcdctl(t, ['user', 'add', 'writer', '--new-user-password', 'writerpw']);
  await etcdctl(t, ['role', 'add', 'writer']);
  await etcdctl(t, ['role', 'grant-permission', 'writer', 'readwrite', 'k', '--prefix=true']);
  await etcdctl(t, ['user', 'grant-role', 'writer', 'writer']);
}

async function measure(t: Running, system: System, auth: boolean, round: number, s: Settings): Promise<AuthLoad> {
  const { result, members, windowSeconds } = await sampledGoLoad(t.pids(), {
    endpoints: [t.leaderEndpoint], op: 'put', clients: s.clients, connections: Math.min(s.clients, 16), durationMs: s.durationMs, warmupMs: s.warmupMs,
    valueBytes: VALUE_BYTES, keys: KEYS, ...(auth ? { user: WRITER } : {}),
  }, s.trimMs);
  if (result.errors > 0) throw new Error(`${system}, auth ${auth ? 'on' : 'off'}: ${result.errors} puts failed (${result.firstError ?? ''})`);
  const cpu = Object.values(members).reduce((a, m) => a + m.totalSeconds, 0);
  return { system, auth, round, result, windowSeconds, serverUsPerPut: (cpu / windowSeconds / result.opsPerSecond) * 1e6 };
}

const label = (s: System): string => (s === 'etcd' ? 'etcd 3.4' : `quorumlog ${s}`);
const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

export async function main(argv: readonly string[] = process.argv.slice(2)): Promise<AuthLoad[]> {
  const { values } = parseArgs({
    args: [...argv],
    options: { quick: { type: 'boolean', default: false }, seconds: { type: 'string' }, rounds: { type: 'string' }, clients: { type: 'string' }, systems: { type: 'string' } },
  });
  const quick = values.quick === true;
  const systems = (values.systems ?? SYSTEMS.join(',')).split(',').map((x) => x.trim());
  for (const x of systems) if (!(SYSTEMS as readonly string[]).includes(x)) throw new Error(`unknown system ${x}; known: ${SYSTEMS.join(', ')}`);
  const s: Settings = {
    quick,
    durationMs: 1000 * Number(values.seconds ?? (quick ? 2 : 6)),
    warmupMs: quick ? 500 : 1500,
    trimMs: quick ? 250 : 500,
    rounds: Number(values.rounds ?? (quick ? 1 : 2)),
    clients: Number(values.clients ?? DEFAULT_CLIENTS),
    systems: systems as System[],
  };
  const say = progress('auth', 0);
  ensureGoLoadgen();
  const loadAtStart = loadavg()[0] ?? NaN;
  const loads: AuthLoad[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'quorumlog-bench-auth-'));
  let running: Running | null = null;
  const detach = onInterrupt(async () => {
    await running?.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  try {
    for (const system of s.systems) {
      running = await startSystem(system, dir);
      try {
        await setUp(running);
        for (let round = 0; round < s.rounds; round++) {
          for (const auth of [false, true]) {
            if (auth) await etcdctl(running, ['auth', 'enable']);
            const l = await measure(running, system, auth, round, s);
            loads.push(l);
            say(`${label(system)}, auth ${auth ? 'on ' : 'off'}, round ${round}: ${fmt(l.result.opsPerSecond, 0)} puts/s, p50 ${fmt(l.result.latencyMs.p50, 2)} ms, `
              + `p99 ${fmt(l.result.latencyMs.p99, 2)} ms, servers ${fmt(l.serverUsPerPut, 0)} µs/put, generator ${fmt(100 * l.result.loadgenCpuSeconds / l.result.seconds, 0)}% of a core`, true);
            if (auth) await etcdctl(running, ['auth', 'disable'], ROOT);
          }
        }
      } finally {
        await running.stop();
        running = null;
      }
    }
  } finally {
    detach();
    rmSync(dir, { recursive: true, force: true });
  }
  report(loads, s, loadAtStart, argv);
  return loads;
}

function report(loads: readonly AuthLoad[], s: Settings, loadAtStart: number, argv: readonly string[]): void {
  const rows: (string | number)[][] = [];
  const ratios: string[] = [];
  for (const system of s.systems) {
    const of = (auth: boolean): AuthLoad[] => loads.filter((l) => l.system === system && l.auth === auth);
    const off = of(false);
    const on = of(true);
    if (off.length === 0 || on.length === 0) continue;
    const f = (xs: AuthLoad[], g: (l: AuthLoad) => number): number => mean(xs.map(g));
    const puts = (l: AuthLoad): number => l.result.opsPerSecond;
    const p50 = (l: AuthLoad): number => l.result.latencyMs.p50;
    const p99 = (l: AuthLoad): number => l.result.latencyMs.p99;
    const cpu = (l: AuthLoad): number => l.serverUsPerPut;
    const gen = (l: AuthLoad): number => (100 * l.result.loadgenCpuSeconds) / l.result.seconds;
    for (const [name, xs] of [['off', off], ['on', on]] as const) {
      rows.push([label(system), name, fmt(f(xs, puts), 0), fmt(f(xs, p50), 2), fmt(f(xs, p99), 2), fmt(f(xs, cpu), 0), fmt(f(xs, gen), 0)]);
    }
    rows.push([label(system), '**on / off**', `**${fmt(f(on, puts) / f(off, puts), 2)}×**`, `${fmt(f(on, p50) / f(off, p50), 2)}×`,
      `${fmt(f(on, p99) / f(off, p99), 2)}×`, `**${fmt(f(on, cpu) / f(off, cpu), 2)}×**`, '']);
    ratios.push(`- ${label(system)}: with auth, ${fmt(f(on, puts) / f(off, puts), 2)}× the puts/s and ${fmt(f(on, cpu) / f(off, cpu), 2)}× the servers' CPU per put.`);
  }
  const body = `# What auth costs a write (issue 19)

Puts of ${VALUE_BYTES}-byte values over ${KEYS} keys from the Go generator (etcd's clientv3) at the leader, ${s.clients} clients on ${Math.min(s.clients, 16)} connections,
${fmt(s.durationMs / 1000, 0)} s after ${fmt(s.warmupMs / 1000, 1)} s of warm-up; auth off and on alternating on one cluster per system, ${s.rounds} round(s),
means shown. With auth on the generator authenticates as \`writer\` (READWRITE on prefix \`k\`), so every put carries a token and is checked
against a role's permissions (quorumlog checks it where it arrives and again where it applies). "servers" is the CPU of every member's whole
process tree per put; "generator" is the generator's own CPU in % of one core (it shares the machine's 2 cores).

${mdTable(['system', 'auth', 'puts/s', 'p50 ms', 'p99 ms', 'servers µs/put', 'generator %'], rows)}

${ratios.join('\n')}

Load average: ${fmt(loadAtStart, 2)} at the start, ${fmt(loadavg()[0] ?? NaN, 2)} at the end.`;
  const name = `${s.quick ? 'quick-' : ''}auth${s.clients === DEFAULT_CLIENTS ? '' : `-${s.clients}-clients`}`;
  const files = writeReport(name, `node dist/bench/auth.js ${argv.join(' ')}`.trim(), { settings: s, loads: loads.map((l) => ({ ...l, result: { ...l.result, cdf: undefined } })) }, body);
  console.log(`\n${body}\n\nwrote ${files.join(', ')}`);
}

if (isMainModule(import.meta.url)) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
