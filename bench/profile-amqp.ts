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

import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AMQP_LOAD_DEFAULTS, runAmqpLoad } from './amqp-load.js';
import type { LayerReport } from './cluster/profile-layers.js';
import { collectProfiles, layerTable, startProfiledCluster } from './cluster/profiled-cluster.js';

const ROLES = ['leader', 'follower'] as const;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function profileOne(dir: string, mode: 'push' | 'pull', publishers: number, seconds: number): Promise<Record<string, LayerReport>> {
  const { c, leader, follower } = await startProfiledCluster(mode, dir);
  try {
    await sleep(1000); // every AMQP port open
    const r = await runAmqpLoad({
      ...AMQP_LOAD_DEFAULTS, urls: c.nodes.map((n) => n.amqpUrl), queue: `profile-${mode}-${publishers}`, publishers,
      consumers: publishers === 1 ? 1 : 4, procs: publishers >= 16 ? 2 : 1, warmupMs: 0, durationMs: seconds * 1000,
    });
    const messages = Math.round(r.confirmedPerSecond * seconds);
    const pids: Record<(typeof ROLES)[number], number> = { leader: leader.process?.pid ?? -1, follower: follower.process?.pid ?? -1 };
    const reports = await collectProfiles(c, dir, pids, messages);
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
  console.log(`\n${layerTable('confirmed message', ROLES, cols)}`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
