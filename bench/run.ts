// Runs every benchmark in turn (`npm run bench`), each in its own process so
// that one's heap and JIT state cannot colour the other's figures. Extra
// arguments are not forwarded; run a benchmark on its own to pass options.

import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

/** Runs one compiled benchmark script; returns its exit status. */
export function runBenchmark(script: string): number {
  console.log(`\n## ${script}\n`);
  const r = spawnSync(process.execPath, [join(here, script)], { stdio: 'inherit' });
  return r.status ?? 1;
}

let failed = 0;
for (const script of ['core-throughput.js', 'election-time.js']) if (runBenchmark(script) !== 0) failed++;
process.exit(failed === 0 ? 0 : 1);
