// `npm run cluster [-- flags]`: checks that the local cluster can start (no
// cluster already running from its data directory, every port free: see
// scripts/cluster-ports.mjs) BEFORE it rebuilds dist/, since a rebuild
// deletes the files a running cluster was started from; then builds and runs
// `quorumlog cluster` with the same flags, in this process (so that Ctrl-C
// reaches it as it would reach `node dist/src/cli/quorumlog.js cluster`).
// The flags are passed on untouched; only those that place the cluster are
// read here, with the same defaults, and a value that is not a number is
// left for `quorumlog cluster` itself to refuse, after the build.

import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { CLUSTER_DEFAULTS, PORT_SPAN, checkClusterCanStart } from './cluster-ports.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);

const { values } = parseArgs({
  args, strict: false, allowPositionals: true,
  options: {
    nodes: { type: 'string' }, observers: { type: 'string' }, 'base-port': { type: 'string' },
    'control-port': { type: 'string' }, 'data-dir': { type: 'string' }, mode: { type: 'string' }, help: { type: 'boolean', short: 'h' },
  },
});
const number = (v, dflt) => (typeof v === 'string' ? Number(v) : dflt);
const placement = {
  nodes: number(values.nodes, CLUSTER_DEFAULTS.nodes),
  observers: number(values.observers, CLUSTER_DEFAULTS.observers),
  basePort: number(values['base-port'], CLUSTER_DEFAULTS.basePort),
  controlPort: number(values['control-port'], CLUSTER_DEFAULTS.controlPort),
  dataDir: typeof values['data-dir'] === 'string' ? values['data-dir'] : CLUSTER_DEFAULTS.dataDir,
};
const valid = [placement.nodes, placement.observers, placement.basePort, placement.controlPort].every(Number.isInteger) &&
  placement.basePort > 0 && placement.basePort + PORT_SPAN <= 65535 && placement.controlPort >= 0 && placement.controlPort <= 65535;
if (values.help !== true && valid) {
  const refusal = await checkClusterCanStart(placement);
  if (refusal !== null) {
    for (const line of refusal) console.error(line);
    console.error('(nothing was started and dist/ was not rebuilt)');
    process.exit(1);
  }
}

// The build, as `npm run build` defines it (npm_execpath: the npm that runs this script).
const npm = process.env.npm_execpath;
const build = npm !== undefined && npm.endsWith('.js')
  ? spawnSync(process.execPath, [npm, 'run', 'build', '--silent'], { cwd: root, stdio: 'inherit' })
  : spawnSync('npm', ['run', 'build', '--silent'], { cwd: root, stdio: 'inherit' });
if (build.status !== 0) {
  console.error(`the build failed (${build.error?.message ?? `exit ${build.status ?? build.signal}`}); the cluster was not started`);
  process.exit(1);
}

const { program } = await import(pathToFileURL(join(root, 'dist', 'src', 'cli', 'quorumlog.js')).href);
try {
  await program().parseAsync([process.execPath, join(root, 'dist', 'src', 'cli', 'quorumlog.js'), 'cluster', ...args]);
  process.exit(process.exitCode ?? 0);
} catch (err) {
  console.error(err instanceof Error ? err.message : err);
  process.exit(2);
}
