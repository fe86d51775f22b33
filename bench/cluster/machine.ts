// What a benchmark report says about where it ran: cores, CPU model, memory,
// the disk under the data directory, and the versions of everything compared.

import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cpus, totalmem, release } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root: the first folder above this module with a package.json (works from dist/ and other build folders). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('package.json not found above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
  return dir;
}

export interface MachineInfo {
  readonly cores: number;
  readonly cpuModel: string;
  readonly memoryGiB: number;
  readonly kernel: string;
  readonly disk: string;
  readonly node: string;
  readonly quorumlog: string;
  readonly etcd: string | null;
  readonly date: string;
}

function run(cmd: string, args: string[]): string | null {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

/** Describes this machine; `dir` is where the benchmark's data lives. */
export function machineInfo(dir = '/tmp'): MachineInfo {
  const source = run('df', ['--output=source', dir])?.split('\n')[1]?.trim() ?? '?';
  const dev = source.replace(/^\/dev\//, '').replace(/p?\d+$/, '');
  const lsblk = run('lsblk', ['-d', '-n', '-o', 'NAME,MODEL,ROTA,SIZE', `/dev/${dev}`]) ?? '';
  const rota = lsblk.split(/\s+/).at(-2);
  const pkg = JSON.parse(readFileSync(join(repoRoot(), 'package.json'), 'utf8')) as { version: string };
  return {
    cores: cpus().length,
    cpuModel: cpus()[0]?.model ?? '?',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    disk: `${source} (${lsblk.trim() || 'unknown model'}${rota === '1' ? ', reported rotational (virtual disk)' : ''})`,
    node: process.version,
    quorumlog: pkg.version,
    etcd: run('etcd', ['--version'])?.split('\n')[0] ?? null,
    date: new Date().toISOString(),
  };
}

/** The machine as a markdown paragraph. */
export function machineMarkdown(m: MachineInfo, command: string): string {
  return [
    `Machine: ${m.cores} cores (${m.cpuModel}), ${m.memoryGiB} GiB, Linux ${m.kernel}; disk ${m.disk}.`,
    `Versions: Node ${m.node}, quorumlog ${m.quorumlog}${m.etcd !== null ? `, ${m.etcd}` : ''}. Run ${m.date}.`,
    `Command: \`${command}\`. Everything (servers and load generator) shares this machine, over loopback, fsync on.`,
  ].join('\n');
}
