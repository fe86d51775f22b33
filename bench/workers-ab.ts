// A/B of the client-protocol workers on one machine, alternating, so that
// drift on a shared machine hits both sides alike: a fresh 3-node cluster per
// side and round, the Go generator at the leader (1 s warm-up, 6 s), and CPU
// from /proc over the load: every node process and its worker children, and
// the leader's main thread apart. Two ways to pick the sides:
//
//   node dist/bench/workers-ab.js push 1,16,128                  # protocolWorkers 0 against 1, this build
//   node dist/bench/workers-ab.js push 1,128 /path/a /path/b     # two built checkouts (each with dist/), default settings
//
// The figures of docs/BENCHMARKS.md's "Client-protocol workers" section.

import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestCluster } from '../test/cluster/harness.js';
import { ensureGoLoadgen } from './cluster/go-loadgen.js';
import { cpuSeconds, descendantPids, threadCpuSeconds } from './cluster/proc.js';

interface Side {
  readonly name: string;
  readonly harness: string;
  readonly extra: Record<string, unknown>;
}

async function main(): Promise<void> {
  const [modeArg, loadsArg, rootA, rootB] = process.argv.slice(2);
  const mode = modeArg === 'pull' ? 'pull' : 'push';
  const loads = (loadsArg ?? '1,16,128').split(',').map(Number);
  const own = fileURLToPath(new URL('../test/cluster/harness.js', import.meta.url));
  const sides: Side[] = rootA !== undefined && rootB !== undefined
    ? [rootA, rootB].map((r) => ({ name: r, harness: resolve(r, 'dist/test/cluster/harness.js'), extra: {} }))
    : [0, 1].map((w) => ({ name: `protocolWorkers ${w}`, harness: own, extra: { protocolWorkers: w } }));
  const loadgen = ensureGoLoadgen();
  for (const round of [0, 1]) {
    for (const side of sides) {
      const { TestCluster: Cluster } = await import(side.harness) as { TestCluster: typeof TestCluster };
      const c = await Cluster.start({ nodes: 3, mode, extra: { logLevel: 'warn', ...side.extra } });
      try {
        const leader = await c.waitForLeader();
        const leaderPid = leader.process?.pid ?? -1;
        for (const clients of loads) {
          const pids = c.nodes.flatMap((n) => (n.process?.pid === undefined ? [] : [n.process.pid, ...descendantPids(n.process.pid)]));
          const cpu0 = pids.map(cpuSeconds);
          const main0 = threadCpuSeconds(leaderPid, leaderPid);
          const r = spawnSync(loadgen, ['-endpoints', leader.endpoint, '-clients', String(clients), '-duration', '6s', '-warmup', '1s']);
          if (r.status !== 0) throw new Error(`loadgen: ${r.stderr.toString()}`);
          const cpu = pids.map(cpuSeconds).reduce((s, x, i) => s + x - (cpu0[i] as number), 0);
          const main1 = threadCpuSeconds(leaderPid, leaderPid);
          const out = JSON.parse(r.stdout.toString()) as { opsPerSecond: number; latencyMs: { p50: number; p99: number } };
          const ops = out.opsPerSecond * 7; // the CPU window spans warm-up and measured load
          console.log(`round ${round}, ${side.name}, ${mode} ×${clients}: ${out.opsPerSecond.toFixed(0)} puts/s, p50 ${out.latencyMs.p50.toFixed(2)} ms, p99 ${out.latencyMs.p99.toFixed(2)} ms; `
            + `servers ${(cpu * 1e6 / ops).toFixed(0)} µs/put, leader main thread ${((main1 - main0) * 1e6 / ops).toFixed(1)} µs/put`);
        }
      } finally {
        await c.close();
      }
    }
  }
}

await main();
