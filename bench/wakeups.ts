// Wake-ups per put: how many times the servers' threads block and are woken
// again to serve one write, for etcd and quorumlog (push, pull) under the
// same Go generator, in one run. On this machine a wake-up of another
// process costs tens of microseconds (a local socket write runs the
// receiver's stack and signals its CPU), so at one client the count says
// more about the gap to etcd than any profile of one process.
//
// Per target, a fresh 3-member cluster; the Go generator at the leader
// (1 s warm-up, then `--seconds`); before and after, every thread's context
// switches from /proc, over each member's process tree (quorumlog's protocol
// workers, libuv's pool and V8's threads included), and the tree's CPU.
// Voluntary switches are wake-ups (a thread blocked on epoll, a futex or a
// read, and was woken); involuntary ones are preemptions. Beside them, the
// time the threads spent runnable but waiting for a CPU (schedstat), summed
// over every thread: how crowded two cores shared by three members and the
// generator are. It is thread time, not a put's latency (a runtime with
// many threads that spin, as Go's, waits more in sum).
//
//   npm run bench -- wakeups
//   node dist/bench/wakeups.js [--quick] [--clients 1,16] [--targets etcd,push,pull] [--seconds 6]
//
// Writes docs/bench/wakeups.{json,md} (quick-wakeups.* with --quick, which
// measures 2 s per load).
// The same workload as `npm run bench -- writes` (256-byte values, 1,000
// keys, up to 16 connections). The figures of docs/BENCHMARKS.md's
// "Wake-ups per put" section.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { TestCluster } from '../test/cluster/harness.js';
import { EtcdCluster } from './cluster/etcd.js';
import { ensureGoLoadgen, spawnGoLoad } from './cluster/go-loadgen.js';
import { cpuSeconds, descendantPids, treeSchedTimes, treeSwitches, type SchedTimes, type Switches } from './cluster/proc.js';
import { fmt, mdTable, writeReport } from './cluster/report.js';

type Target = 'etcd' | 'push' | 'pull';

interface Running {
  /** The leader's client endpoint. */
  readonly endpoint: string;
  /** Each member's root pid, the leader's first. */
  readonly pids: readonly number[];
  stop(): Promise<void>;
}

async function startTarget(t: Target, dir: string): Promise<Running> {
  if (t === 'etcd') {
    const base = 5_000 + Math.floor(Math.random() * 4_000); // below the ephemeral range, apart from the test harness's
    const e = await EtcdCluster.start(join(dir, 'etcd'), base);
    const leader = e.leader();
    const pids = [leader, ...e.members.filter((m) => m !== leader)].map((m) => m.process?.pid ?? -1);
    return { endpoint: leader.client, pids, stop: () => e.stop() };
  }
  const c = await TestCluster.start({ nodes: 3, mode: t, extra: { logLevel: 'warn' } });
  const leader = await c.waitForLeader();
  // The leader's protocol worker is forked once the node serves: wait for it, so that its threads are counted from the start.
  await c.waitFor(leader, (s) => s.protocolWorkers === null || s.protocolWorkers.alive >= 1, 20_000, 'the leader\'s protocol worker');
  const pids = [leader, ...c.nodes.filter((n) => n !== leader)].map((n) => n.process?.pid ?? -1);
  return { endpoint: leader.endpoint, pids, stop: () => c.close() };
}

function treeCpu(pid: number): number {
  return [pid, ...descendantPids(pid)].map(cpuSeconds).reduce((s, x) => s + (Number.isNaN(x) ? 0 : x), 0);
}

interface Row {
  readonly target: Target;
  readonly clients: number;
  readonly putsPerSecond: number;
  readonly p99Ms: number;
  /** Per put: the leader's tree, the mean follower's, all members'. */
  readonly wakeups: readonly [number, number, number];
  readonly preemptions: number;
  /** µs per put that the members' threads spent runnable, waiting for a CPU. */
  readonly runQueueUsPerPut: number;
  readonly cpuUsPerPut: number;
  readonly loadgenCpuUsPerPut: number;
}

async function measure(r: Running, target: Target, clients: number, seconds: number): Promise<Row> {
  const sw0 = r.pids.map(treeSwitches);
  const sched0 = r.pids.map(treeSchedTimes);
  const cpu0 = r.pids.map(treeCpu);
  const warmupMs = 1000;
  const out = await spawnGoLoad({ endpoints: [r.endpoint], op: 'put', clients, connections: Math.min(clients, 16), durationMs: seconds * 1000, warmupMs, valueBytes: 256, keys: 1000 });
  const sw1 = r.pids.map(treeSwitches);
  const sched1 = r.pids.map(treeSchedTimes);
  const cpu1 = r.pids.map(treeCpu);
  // The counters span the warm-up too: charge them to the puts of the whole run, at the measured rate.
  const puts = out.opsPerSecond * (seconds + warmupMs / 1000);
  const d = (i: number, k: keyof Switches): number => ((sw1[i] as Switches)[k] - (sw0[i] as Switches)[k]) / puts;
  const followers = r.pids.slice(1).map((_, j) => d(j + 1, 'voluntary'));
  const all = r.pids.reduce((s, _, i) => s + d(i, 'voluntary'), 0);
  return {
    target, clients, putsPerSecond: out.opsPerSecond, p99Ms: out.latencyMs.p99,
    wakeups: [d(0, 'voluntary'), followers.reduce((s, x) => s + x, 0) / followers.length, all],
    preemptions: r.pids.reduce((s, _, i) => s + d(i, 'involuntary'), 0),
    runQueueUsPerPut: r.pids.reduce((s, _, i) => s + (sched1[i] as SchedTimes).waitNs - (sched0[i] as SchedTimes).waitNs, 0) / 1e3 / puts,
    cpuUsPerPut: (r.pids.reduce((s, _, i) => s + (cpu1[i] as number) - (cpu0[i] as number), 0) * 1e6) / puts,
    loadgenCpuUsPerPut: (out.loadgenCpuSeconds * 1e6) / (out.opsPerSecond * seconds),
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false }, clients: { type: 'string', default: '1,16' }, targets: { type: 'string', default: 'etcd,push,pull' },
      seconds: { type: 'string' },
    },
  });
  const loads = values.clients.split(',').map(Number);
  const targets = values.targets.split(',') as Target[];
  for (const t of targets) if (t !== 'etcd' && t !== 'push' && t !== 'pull') throw new Error(`unknown target ${t} (etcd, push, pull)`);
  const seconds = Number(values.seconds ?? (values.quick ? 2 : 6));
  if (!(seconds > 0) || loads.some((c) => !(c >= 1))) throw new Error('--seconds and every --clients value must be positive numbers');
  ensureGoLoadgen(); // built before any cluster starts, so no build falls inside a measurement
  const dir = mkdtempSync(join(tmpdir(), 'quorumlog-bench-wakeups-'));
  const rows: Row[] = [];
  try {
    for (const t of targets) {
      const r = await startTarget(t, dir);
      try {
        for (const clients of loads) {
          const row = await measure(r, t, clients, seconds);
          console.error(`${t} ×${clients}: ${row.putsPerSecond.toFixed(0)} puts/s, ${row.wakeups[2].toFixed(1)} wake-ups per put`);
          rows.push(row);
        }
      } finally {
        await r.stop();
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const table = mdTable(
    ['target', 'clients', 'puts/s', 'p99 ms', 'wake-ups per put: leader / a follower / all', 'preemptions per put', 'µs per put waiting for a CPU', 'servers\' CPU µs per put', 'generator\'s CPU µs per put'],
    rows.map((x) => [x.target, x.clients, fmt(x.putsPerSecond, 0), fmt(x.p99Ms, 2), x.wakeups.map((w) => fmt(w, 1)).join(' / '), fmt(x.preemptions, 1), fmt(x.runQueueUsPerPut, 0), fmt(x.cpuUsPerPut, 0), fmt(x.loadgenCpuUsPerPut, 0)]),
  );
  console.log(`\n${table}`);
  const command = `node dist/bench/wakeups.js ${process.argv.slice(2).join(' ')}`.trim();
  const body = `# Wake-ups per put\n\nThe Go generator at the leader of a fresh 3-member cluster per target, ${seconds} s after 1 s of warm-up, 256-byte values. `
    + 'Wake-ups are the voluntary context switches of every thread of each member\'s process tree (quorumlog\'s protocol workers included), '
    + 'preemptions the involuntary ones, both from /proc, per put; the time waiting for a CPU is the threads\' time runnable on a run queue '
    + '(/proc/…/schedstat), summed over the members. Go\'s scheduler hands work between its threads through futexes, which count too: '
    + 'etcd\'s figure is not a count of messages.\n\n' + table;
  for (const f of writeReport(values.quick ? 'quick-wakeups' : 'wakeups', command, { seconds, rows }, body)) console.error(`wrote ${f}`);
}

await main();
