// The simulator over a fixed range of seeds in both modes: every safety
// invariant after every event, then the liveness phase. A failure names the
// seed and the command that replays it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { ReplicationMode } from '../../src/core/config.js';

/** Seeds per mode in `npm test`; more with QUORUMLOG_SIM_SEEDS. */
const SEEDS = Number(process.env['QUORUMLOG_SIM_SEEDS'] ?? 1300);

interface BatchReport {
  seeds: number;
  events: number;
  failures: { seed: number; mode: ReplicationMode; message: string; replay: string }[];
}

function batch(from: number, count: number, modes: ReplicationMode[]): Promise<BatchReport> {
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL('./worker.js', import.meta.url), { workerData: { from, count, modes } });
    w.on('message', (m: { progress?: number } | BatchReport) => {
      if (!('progress' in m)) resolve(m as BatchReport); // progress reports are for the CLI
    });
    w.once('error', reject);
  });
}

for (const mode of ['push', 'pull'] as const) {
  test(`simulator: ${SEEDS} seeds in ${mode} mode, no invariant violated, liveness after healing`, async () => {
    const workers = Math.max(1, Math.min(availableParallelism(), 4));
    const per = Math.ceil(SEEDS / workers);
    const jobs: Promise<BatchReport>[] = [];
    for (let w = 0; w < workers; w++) {
      const from = 1 + w * per;
      const count = Math.min(per, SEEDS + 1 - from);
      if (count > 0) jobs.push(batch(from, count, [mode]));
    }
    const reports = await Promise.all(jobs);
    const seeds = reports.reduce((a, r) => a + r.seeds, 0);
    const failures = reports.flatMap((r) => r.failures);
    assert.equal(seeds, SEEDS);
    assert.deepEqual(failures.map((f) => `seed ${f.seed}: ${f.message} — replay: ${f.replay}`), []);
  });
}
