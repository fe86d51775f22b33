// Profiles a 3-node cluster under the Go generator and prints where a put's
// CPU goes, by layer, on the leader's Raft process, the leader's protocol
// worker and a follower (bench/cluster/profile-layers.ts): the table of
// docs/BENCHMARKS.md's "Client-protocol workers" section. For each mode and
// load, a fresh cluster whose nodes run under `node --cpu-prof` (their
// workers inherit it), the generator at the leader for 6 s with no warm-up
// (so the profile and the count of puts cover the same interval), then
// SIGTERM, so that every process writes its profile.
//
//   node dist/bench/profile-cluster.js <out-dir> [push,pull] [1,16,128]
//
// Profiles land in <out-dir>/<mode>-<clients>/{leader,leader-worker,follower}.cpuprofile.

import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { ensureGoLoadgen } from './cluster/go-loadgen.js';
import { collectProfiles, layerTable, startProfiledCluster } from './cluster/profiled-cluster.js';
import type { LayerReport } from './cluster/profile-layers.js';

const ROLES = ['leader', 'leader-worker', 'follower'] as const;

async function profileOne(dir: string, mode: 'push' | 'pull', clients: number, loadgen: string): Promise<{ puts: number; reports: Record<string, LayerReport> }> {
  const { c, leader, follower } = await startProfiledCluster(mode, dir);
  try {
    const ls = await c.waitFor(leader, (s) => (s.protocolWorkers?.alive ?? 0) >= 1, 20_000, 'the leader\'s protocol worker');
    const r = spawnSync(loadgen, ['-endpoints', leader.endpoint, '-clients', String(clients), '-duration', '6s', '-warmup', '0s']);
    if (r.status !== 0) throw new Error(`loadgen failed: ${r.stderr.toString()}`);
    const out = JSON.parse(r.stdout.toString()) as { opsPerSecond: number };
    const puts = Math.round(out.opsPerSecond * 6);
    const pids: Record<(typeof ROLES)[number], number> = {
      leader: leader.process?.pid ?? -1, 'leader-worker': ls.protocolWorkers?.pids[0] ?? -1, follower: follower.process?.pid ?? -1,
    };
    const reports = await collectProfiles(c, dir, pids, puts);
    console.log(`${mode} ×${clients}: ${out.opsPerSecond.toFixed(0)} puts/s under the profiler`);
    return { puts, reports };
  } finally {
    await c.close();
  }
}

async function main(): Promise<void> {
  const [outArg, modesArg, loadsArg] = process.argv.slice(2);
  if (outArg === undefined) {
    console.error('usage: node dist/bench/profile-cluster.js <out-dir> [push,pull] [1,16,128]');
    process.exit(2);
  }
  const modes = (modesArg ?? 'push,pull').split(',') as ('push' | 'pull')[];
  const loads = (loadsArg ?? '1,16,128').split(',').map(Number);
  const loadgen = ensureGoLoadgen();
  const cols: { label: string; reports: Record<string, LayerReport> }[] = [];
  for (const mode of modes) for (const clients of loads) {
    const { reports } = await profileOne(resolve(outArg, `${mode}-${clients}`), mode, clients, loadgen);
    cols.push({ label: `${mode}, ${clients}`, reports });
  }
  console.log(`\n${layerTable('put', ROLES, cols)}`);
}

await main();
