// What the cluster profilers share (bench/profile-cluster.ts under the Go
// generator, bench/profile-amqp.ts under the AMQP one): starting a laid-out
// cluster's nodes under `node --cpu-prof`, naming each profile by the role
// its process played once the nodes have stopped, and the table of
// microseconds per operation by layer that docs/BENCHMARKS.md quotes.

import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TestCluster, type TestNode } from '../../test/cluster/harness.js';
import { layersOf, LAYERS, type LayerReport } from './profile-layers.js';

const CLI = fileURLToPath(new URL('../../src/cli/quorumlog.js', import.meta.url));

/**
 * A 3-node cluster whose nodes run under the profiler, writing to `dir`,
 * once it has a leader; the caller closes it.
 */
export async function startProfiledCluster(mode: 'push' | 'pull', dir: string): Promise<{ c: TestCluster; leader: TestNode; follower: TestNode }> {
  mkdirSync(dir, { recursive: true });
  const c = await TestCluster.start({ nodes: 3, mode, extra: { logLevel: 'warn' }, start: false });
  try {
    startProfiled(c, dir);
    const leader = await c.waitForLeader();
    return { c, leader, follower: c.nodes.find((n) => n !== leader) as TestNode };
  } catch (e) {
    await c.close();
    throw e;
  }
}

/** Starts every node of `c` (laid out with start: false) under the profiler, writing to `dir`. */
function startProfiled(c: TestCluster, dir: string): void {
  for (const n of c.nodes) {
    const child = spawn(process.execPath, ['--cpu-prof', `--cpu-prof-dir=${dir}`, CLI, 'start', '--config', c.layout.configPath(n.id)], { stdio: 'ignore' });
    n.process = child;
    child.once('exit', () => { if (n.process === child) n.process = null; });
  }
}

/**
 * Stops the nodes (so that each writes its profile), renames the profile of
 * each role's pid to `<role>.cpuprofile` and reads its layers, per `ops`
 * operations served meanwhile.
 */
export async function collectProfiles(c: TestCluster, dir: string, pids: Readonly<Record<string, number>>, ops: number): Promise<Record<string, LayerReport>> {
  for (const n of c.nodes) await n.stop();
  for (const f of readdirSync(dir)) {
    for (const [role, pid] of Object.entries(pids)) if (f.startsWith('CPU.') && f.includes(`.${pid}.`)) renameSync(join(dir, f), join(dir, `${role}.cpuprofile`));
  }
  const reports: Record<string, LayerReport> = {};
  for (const role of Object.keys(pids)) reports[role] = layersOf(JSON.parse(readFileSync(join(dir, `${role}.cpuprofile`), 'utf8')), ops);
  return reports;
}

/** The markdown table: a row per layer with any time, a column per load, `roles` joined by " / " in each cell. */
export function layerTable(what: string, roles: readonly string[], cols: readonly { label: string; reports: Record<string, LayerReport> }[]): string {
  const lines = [`| layer, µs per ${what} (${roles.join(' / ')}) | ${cols.map((c) => c.label).join(' | ')} |`, `| --- | ${cols.map(() => '---:').join(' | ')} |`];
  for (const l of LAYERS) {
    const cells = cols.map((c) => roles.map((r) => c.reports[r]?.layers[l] ?? 0).join(' / '));
    if (cells.every((x) => /^0( \/ 0)*$/.test(x))) continue;
    lines.push(`| ${l} | ${cells.join(' | ')} |`);
  }
  lines.push(`| **busy, in all** | ${cols.map((c) => `**${roles.map((r) => c.reports[r]?.busyUsPerPut ?? 0).join(' / ')}**`).join(' | ')} |`);
  return lines.join('\n');
}
