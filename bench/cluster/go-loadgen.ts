// The Go load generator (bench/loadgen-go/main.go) from TypeScript: installs
// its toolchain from Debian when missing, builds it when its binary is
// missing or older than its source, runs it and parses its one JSON line.
//
// Why a second generator: one Node process with the etcd3 client spends about
// 0.13 ms of CPU per request, so it cannot issue more than about 7,600
// requests a second here (docs/BENCHMARKS.md); etcd's own Go client costs far
// less. The Go generator runs the same workload as bench/cluster/loadgen.ts
// and reports a LoadResult of the same shape, so the two sit side by side.
//
// The build uses Debian's packages only (no module proxy, no network):
// golang-go and golang-etcd-server-dev (which lays etcd's source, with the
// client at go.etcd.io/etcd/clientv3, under /usr/share/gocode), in GOPATH
// mode: GO111MODULE=off, GOPATH=<cache>/gopath:/usr/share/gocode. The binary
// and Go's build cache live in node_modules/.cache/quorumlog-bench/ (never
// committed; `npm ci` starts afresh).

import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { LoadResult, LoadSpec } from './loadgen.js';
import { repoRoot } from './machine.js';

/** Where Debian's golang-*-dev packages put Go sources. */
export const DEBIAN_GOPATH = '/usr/share/gocode';
/** The etcd client package, as golang-etcd-server-dev (3.4) lays it out. */
const ETCD_CLIENT_DIR = join(DEBIAN_GOPATH, 'src', 'go.etcd.io', 'etcd', 'clientv3');
const DEBIAN_PACKAGES = ['golang-go', 'golang-etcd-server-dev'];

/** What the Go generator reports: a LoadResult, plus its own CPU split and runtime. */
export interface GoLoadResult extends LoadResult {
  readonly generator: 'go';
  readonly loadgenUserSeconds: number;
  readonly loadgenSysSeconds: number;
  /** The first error's message, when there were errors. */
  readonly firstError?: string;
  readonly goVersion: string;
  readonly gomaxprocs: number;
}

/** The generator's workload: a LoadSpec without the client choice (it is always etcd's Go client). */
export type GoLoadSpec = Omit<LoadSpec, 'client'> & {
  /** Key length in bytes; 0 or absent means the Node generator's keys (k0 .. k<keys-1>). */
  readonly keyBytes?: number;
  /** name:password to authenticate as (etcd auth); absent: none. */
  readonly user?: string;
};

/** Paths of the source, the cached binary and Go's scratch directories. */
export function goLoadgenPaths(): { source: string; cacheDir: string; binary: string } {
  const root = repoRoot();
  const cacheDir = join(root, 'node_modules', '.cache', 'quorumlog-bench');
  return { source: join(root, 'bench', 'loadgen-go', 'main.go'), cacheDir, binary: join(cacheDir, 'loadgen-go') };
}

function haveToolchain(): boolean {
  try {
    execFileSync('go', ['version'], { stdio: 'ignore' });
  } catch {
    return false;
  }
  return existsSync(join(ETCD_CLIENT_DIR, 'client.go'));
}

/** Installs golang-go and golang-etcd-server-dev from Debian when `go` or the etcd client sources are missing (as root). */
export function ensureGoToolchain(): void {
  if (haveToolchain()) return;
  if (process.getuid?.() !== 0) {
    throw new Error(`the Go load generator needs Debian's ${DEBIAN_PACKAGES.join(' ')}: run \`sudo apt-get install -y ${DEBIAN_PACKAGES.join(' ')}\``);
  }
  console.error(`installing Debian packages ${DEBIAN_PACKAGES.join(' ')} for the Go load generator`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...DEBIAN_PACKAGES], { stdio: 'inherit', env });
  if (!haveToolchain()) throw new Error(`installed ${DEBIAN_PACKAGES.join(' ')}, yet \`go\` or ${ETCD_CLIENT_DIR} is still missing`);
}

/**
 * Returns the path of the generator's binary, building it first when it is
 * missing or older than its source.
 */
export function ensureGoLoadgen(): string {
  const { source, binary } = goLoadgenPaths();
  return ensureGoBinary(source, binary, 'the Go load generator');
}

/**
 * Builds the Go program `source` (one main.go, GOPATH mode, Debian's
 * packages only) into `binary` when the binary is missing or older than its
 * source; returns `binary`. The other Go benchmark programs use it too.
 */
export function ensureGoBinary(source: string, binary: string, what: string): string {
  const { cacheDir } = goLoadgenPaths();
  if (existsSync(binary) && statSync(binary).mtimeMs >= statSync(source).mtimeMs) return binary;
  ensureGoToolchain();
  mkdirSync(join(cacheDir, 'gopath'), { recursive: true });
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    GO111MODULE: 'off', // GOPATH mode: packages come from Debian's tree, nothing from the network
    GOPATH: `${join(cacheDir, 'gopath')}:${DEBIAN_GOPATH}`, // the first entry is writable scratch; Debian's tree is read-only
    GOCACHE: join(cacheDir, 'go-build'),
    GOFLAGS: '',
    GOPROXY: 'off',
    CGO_ENABLED: '0', // a static binary that needs no C compiler
  };
  const partial = `${binary}.partial-${process.pid}`;
  console.error(`building ${what} (${source} → ${binary})`);
  const t0 = Date.now();
  execFileSync('go', ['build', '-o', partial, source], { stdio: ['ignore', 'inherit', 'inherit'], env, cwd: cacheDir });
  renameSync(partial, binary);
  console.error(`built in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return binary;
}

/** The generator's command-line arguments for a spec. */
export function goLoadgenArgs(spec: GoLoadSpec): string[] {
  return [
    '-endpoints', spec.endpoints.join(','), '-op', spec.op, '-clients', String(spec.clients), '-conns', String(spec.connections),
    '-duration', `${spec.durationMs}ms`, '-warmup', `${spec.warmupMs}ms`, '-value-bytes', String(spec.valueBytes),
    '-keys', String(spec.keys), '-key-bytes', String(spec.keyBytes ?? 0),
    ...(spec.user !== undefined ? ['-user', spec.user] : []),
  ];
}

/** Runs the Go generator in its own process (building it when needed) and returns its result. */
export function spawnGoLoad(spec: GoLoadSpec): Promise<GoLoadResult> {
  const binary = ensureGoLoadgen();
  return new Promise((resolve, reject) => {
    const child = spawn(binary, goLoadgenArgs(spec), { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (code !== 0) return reject(new Error(`Go load generator exited with ${code ?? signal}`));
      try {
        resolve(JSON.parse(out.trim().split('\n').pop() ?? '') as GoLoadResult);
      } catch (e) {
        reject(new Error('Go load generator printed no JSON result', { cause: e }));
      }
    });
  });
}
