// `npm run sim -- --seed N [--mode push|pull] [--bug NAME] [--verbose]`: replays one seed.
// `npm run sim -- --seeds N [--from S] [--mode push|pull|both] [--workers W]`: runs many and
// ends with a one-line summary (seeds run, violations, events per second).

import { parseArgs } from 'node:util';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { ReplicationMode } from '../../src/core/config.js';
import { PLANTED_BUGS, type PlantedBug } from '../../src/core/planted-bugs.js';
import { replayCommand, runSeed } from './run.js';

interface BatchReport {
  seeds: number;
  events: number;
  failures: { seed: number; mode: ReplicationMode; message: string; replay: string }[];
}

/** Runs seeds [from, from + count) in the given modes, in this thread. */
export function runBatch(
  from: number, count: number, modes: readonly ReplicationMode[], bug?: PlantedBug, onProgress?: (seedsDone: number) => void,
): BatchReport {
  const report: BatchReport = { seeds: 0, events: 0, failures: [] };
  for (let seed = from; seed < from + count; seed++) {
    if (onProgress !== undefined && (seed - from) % 100 === 99) onProgress(report.seeds);
    for (const mode of modes) {
      const r = runSeed(seed, bug === undefined ? { mode } : { mode, plantedBug: bug });
      report.seeds++;
      report.events += r.events;
      if (r.violation !== null) {
        report.failures.push({ seed, mode, message: r.violation.message, replay: replayCommand(r) });
      }
    }
  }
  return report;
}

const USAGE = `usage:
  npm run sim -- --seed N [--mode push|pull|both] [--bug NAME] [--verbose]   replay one seed
  npm run sim -- --seeds N [--from S] [--mode push|pull|both] [--workers W] [--bug NAME]   run many
planted bugs (src/core/planted-bugs.ts): ${PLANTED_BUGS.join(', ')}`;

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        seed: { type: 'string' },
        seeds: { type: 'string' },
        from: { type: 'string', default: '1' },
        mode: { type: 'string', default: 'both' },
        bug: { type: 'string' },
        workers: { type: 'string' },
        verbose: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (e) {
    console.error(`sim: ${(e as Error).message}\n${USAGE}`);
    process.exitCode = 2;
    return;
  }
  const { values } = parsed;
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (values.bug !== undefined && !(PLANTED_BUGS as readonly string[]).includes(values.bug)) {
    console.error(`sim: --bug ${values.bug} is not a planted bug\n${USAGE}`);
    process.exitCode = 2;
    return;
  }
  const modes: ReplicationMode[] = values.mode === 'both' ? ['push', 'pull'] : [values.mode as ReplicationMode];
  if (!['push', 'pull', 'both'].includes(values.mode)) throw new Error(`--mode must be push, pull or both, not ${values.mode}`);
  const bug = values.bug as PlantedBug | undefined;
  if (values.seed !== undefined) {
    const seed = Number(values.seed);
    let failed = false;
    for (const mode of modes) {
      const r = runSeed(seed, bug === undefined ? { mode } : { mode, plantedBug: bug });
      const o = r.options;
      console.log(`seed ${seed} ${mode}: ${o.voters} voters + ${o.observers} observers, drop ${o.dropRate}, ` +
        `dup ${o.duplicateRate}, delay ${o.delayMinMs}-${o.delayMaxMs} ms, crash every ${o.crashEveryMs} ms, ` +
        `partition every ${o.partitionEveryMs} ms, compact every ${o.compactEveryMs} ms`);
      console.log(`  ${r.events} events, ${Math.round(r.virtualMs)} virtual ms, commit ${r.committed}, ${r.elections} elections: ` +
        (r.violation === null ? 'ok' : `VIOLATION ${r.violation.message}`));
      if (r.violation !== null) {
        failed = true;
        if (values.verbose) console.log(r.violation.cause instanceof Error ? r.violation.cause.stack : r.violation.stack);
      }
    }
    process.exitCode = failed ? 1 : 0;
    return;
  }
  const count = Number(values.seeds ?? '100');
  const from = Number(values.from);
  const workers = Math.max(1, Number(values.workers ?? Math.min(availableParallelism(), 8)));
  const started = performance.now();
  const per = Math.ceil(count / workers);
  const jobs: Promise<BatchReport>[] = [];
  const done = new Map<number, number>();
  const total = count * modes.length;
  const progress = setInterval(() => {
    const n = [...done.values()].reduce((a, b) => a + b, 0);
    const s = (performance.now() - started) / 1000;
    process.stderr.write(`sim: ${n}/${total} seed runs, ${s.toFixed(0)} s, about ${n > 0 ? Math.round((total - n) * s / n) : '?'} s left\n`);
  }, 10_000);
  for (let w = 0; w < workers; w++) {
    const lo = from + w * per;
    const n = Math.min(per, from + count - lo);
    if (n <= 0) continue;
    jobs.push(new Promise((resolve, reject) => {
      const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: { from: lo, count: n, modes, bug } });
      worker.on('message', (m: { progress?: number } | BatchReport) => {
        if ('progress' in m && m.progress !== undefined) done.set(w, m.progress);
        else resolve(m as BatchReport);
      });
      worker.once('error', reject);
    }));
  }
  const reports = await Promise.all(jobs).finally(() => clearInterval(progress));
  const seconds = (performance.now() - started) / 1000;
  const sum = reports.reduce((a, r) => ({ seeds: a.seeds + r.seeds, events: a.events + r.events, failures: a.failures.concat(r.failures) }),
    { seeds: 0, events: 0, failures: [] } as BatchReport);
  for (const f of sum.failures.slice(0, 20)) console.log(`seed ${f.seed} ${f.mode}: ${f.message}\n  replay: ${f.replay}`);
  console.log(`sim: ${sum.seeds} seeds run (${modes.join('+')}), ${sum.failures.length} violations, ` +
    `${Math.round(sum.events / seconds).toLocaleString('en-US')} events/s, ${seconds.toFixed(1)} s on ${workers} workers`);
  process.exitCode = sum.failures.length > 0 ? 1 : 0;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 2;
  });
}
