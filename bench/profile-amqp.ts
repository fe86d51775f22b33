// Profiles a 3-node cluster under the AMQP benchmark's generator
// (bench/amqp-load.ts, amqplib) and prints where a confirmed message's CPU
// goes, by layer (bench/cluster/profile-layers.ts), on the leader and on a
// follower: the profile that explains docs/BENCHMARKS.md's AMQP figures.
// Every node runs under `node --cpu-prof`; the generator runs for the given
// seconds with no warm-up, so the profile and the count of messages cover
// the same interval; then SIGTERM, so that every process writes its profile.
//
//   node dist/bench/profile-amqp.js <out-dir> [push,pull] [1,64] [seconds]
//
// Profiles land in <out-dir>/<mode>-<publishers>/{leader,follower}.cpuprofile.

import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, renameSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TestCluster, type TestNode } from '../test/cluster/harness.js';
import { AMQP_LOAD_DEFAULTS, runAmqpLoad } from './amqp-load.js';
import { layersOf, LAYERS, type LayerReport } from './cluster/profile-layers.js';

const ROLES = ['leader', 'follower'] as const;
const CLI = fileURLToPath(new URL('../src/cli/quorumlog.js', import.meta.url));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function profileOne(dir: string, mode: 'push' | 'pull', publishers: number, seconds: number): Promise<Record<string, LayerReport>> {
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
    await sleep(1000); // every AMQP port open
    const r = await runAmqpLoad({
      ...AMQP_LOAD_DEFAULTS, urls: c.nodes.map((n) => n.amqpUrl), queue: `profile-${mode}-${publishers}`, publishers,
      consumers: publishers === 1 ? 1 : 4, procs: publishers >= 16 ? 2 : 1, warmupMs: 0, durationMs: seconds * 1000,
    });
    const messages = Math.round(r.confirmedPerSecond * seconds);
    const pids: Record<(typeof ROLES)[number], number> = { leader: leader.process?.pid ?? -1, follower: follower.process?.pid ?? -1 };
    for (const n of c.nodes) await n.stop();
    for (const f of readdirSync(dir)) {
      for (const [role, pid] of Object.entries(pids)) if (f.startsWith('CPU.') && f.includes(`.${pid}.`)) renameSync(join(dir, f), join(dir, `${role}.cpuprofile`));
    }
    const reports: Record<string, LayerReport> = {};
    for (const role of ROLES) reports[role] = layersOf(JSON.parse(readFileSync(join(dir, `${role}.cpuprofile`), 'utf8')), messages);
    console.log(`${mode} ×${publishers}: ${r.confirmedPerSecond.toFixed(0)} confirmed/s under the profiler`);
    return reports;
  } finally {
    await c.close();
  }
}

async function main(): Promise<void> {
  const [outArg, modesArg, loadsArg, secondsArg] = process.argv.slice(2);
  if (outArg === undefined) {
    console.error('usage: node dist/bench/profile-amqp.js <out-dir> [push,pull] [1,64] [seconds]');
    process.exit(2);
  }
  const modes = (modesArg ?? 'push,pull').split(',') as ('push' | 'pull')[];
  const loads = (loadsArg ?? '1,64').split(',').map(Number);
  const seconds = Number(secondsArg ?? 8);
  const cols: { label: string; reports: Record<string, LayerReport> }[] = [];
  for (const mode of modes) for (const p of loads) cols.push({ label: `${mode}, ${p}`, reports: await profileOne(resolve(outArg, `${mode}-${p}`), mode, p, seconds) });
  console.log(`\n| layer, µs per confirmed message (${ROLES.join(' / ')}) | ${cols.map((c) => c.label).join(' | ')} |`);
  console.log(`| --- | ${cols.map(() => '---:').join(' | ')} |`);
  for (const l of LAYERS) {
    const cells = cols.map((c) => ROLES.map((r) => c.reports[r]?.layers[l] ?? 0).join(' / '));
    if (cells.every((x) => /^0( \/ 0)*$/.test(x))) continue;
    console.log(`| ${l} | ${cells.join(' | ')} |`);
  }
  console.log(`| **busy, in all** | ${cols.map((c) => `**${ROLES.map((r) => c.reports[r]?.busyUsPerPut ?? 0).join(' / ')}**`).join(' | ')} |`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
