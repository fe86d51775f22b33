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

import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, renameSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TestCluster, type TestNode } from '../test/cluster/harness.js';
import { ensureGoLoadgen } from './cluster/go-loadgen.js';
import { layersOf, LAYERS, type LayerReport } from './cluster/profile-layers.js';

const ROLES = ['leader', 'leader-worker', 'follower'] as const;
const CLI = fileURLToPath(new URL('../src/cli/quorumlog.js', import.meta.url));

async function profileOne(dir: string, mode: 'push' | 'pull', clients: number, loadgen: string): Promise<{ puts: number; reports: Record<string, LayerReport> }> {
  mkdirSync(dir, { recursive: true });
  const c = await TestCluster.start({ nodes: 3, mode, extra: { logLevel: 'warn' }, start: false });
  try {
    for (const n of c.nodes) {
      const child = spawn(process.execPath, ['--cpu-prof', `--cpu-prof-dir=${dir}`, CLI, 'start', '--config', c.layout.configPath(n.id)], { stdio: 'ignore' });
      n.process = child;
      child.once('exit', () => { if (n.process === child) n.process = null; });
    }
    const leader = await c.waitForLeader();
    const follower = c.nodes.find((n) => n !== leader) as TestNode;
    const ls = await c.waitFor(leader, (s) => (s.protocolWorkers?.alive ?? 0) >= 1, 20_000, 'the leader\'s protocol worker');
    const r = spawnSync(loadgen, ['-endpoints', leader.endpoint, '-clients', String(clients), '-duration', '6s', '-warmup', '0s']);
    if (r.status !== 0) throw new Error(`loadgen failed: ${r.stderr.toString()}`);
    const out = JSON.parse(r.stdout.toString()) as { opsPerSecond: number };
    const puts = Math.round(out.opsPerSecond * 6);
    const pids: Record<(typeof ROLES)[number], number> = {
      leader: leader.process?.pid ?? -1, 'leader-worker': ls.protocolWorkers?.pids[0] ?? -1, follower: follower.process?.pid ?? -1,
    };
    for (const n of c.nodes) await n.stop();
    for (const f of readdirSync(dir)) {
      for (const [role, pid] of Object.entries(pids)) if (f.startsWith('CPU.') && f.includes(`.${pid}.`)) renameSync(join(dir, f), join(dir, `${role}.cpuprofile`));
    }
    const reports: Record<string, LayerReport> = {};
    for (const role of ROLES) reports[role] = layersOf(JSON.parse(readFileSync(join(dir, `${role}.cpuprofile`), 'utf8')), puts);
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
  console.log(`\n| layer, µs per put (${ROLES.join(' / ')}) | ${cols.map((c) => c.label).join(' | ')} |`);
  console.log(`| --- | ${cols.map(() => '---:').join(' | ')} |`);
  for (const l of LAYERS) {
    const cells = cols.map((c) => ROLES.map((r) => c.reports[r]?.layers[l] ?? 0).join(' / '));
    if (cells.every((x) => /^0( \/ 0)*$/.test(x))) continue;
    console.log(`| ${l} | ${cells.join(' | ')} |`);
  }
  console.log(`| **busy, in all** | ${cols.map((c) => `**${ROLES.map((r) => c.reports[r]?.busyUsPerPut ?? 0).join(' / ')}**`).join(' | ')} |`);
}

await main();
