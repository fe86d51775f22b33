// `node dist/bench/auth-hashing.js`: what a bcrypt verify costs at etcd's
// cost 10 on this machine, and what a flood of concurrent verifies does to
// the main (Raft) thread's event loop: through PasswordHasher (one worker,
// bounded queue), and, for comparison, with bcryptjs's async compare on the
// main thread, the naive way. Prints a table; writes nothing.
// Options: --cost C (default 10), --flood N (default 200), --samples S (default 20).

import { parseArgs } from 'node:util';
import bcrypt from 'bcryptjs';
import { AuthBusyError, PasswordHasher } from '../src/server/auth/password-hasher.js';

const { values } = parseArgs({
  options: {
    cost: { type: 'string', default: '10' },
    flood: { type: 'string', default: '200' },
    samples: { type: 'string', default: '20' },
  },
});
const cost = Number(values.cost);
const flood = Number(values.flood);
const samples = Number(values.samples);

/** Quantile `q` in [0, 1] of sorted `xs`. */
const quantile = (xs: readonly number[], q: number): number => xs[Math.min(xs.length - 1, Math.floor(q * xs.length))] ?? NaN;

interface Lag { readonly p50Ms: number; readonly p99Ms: number; readonly maxMs: number }

/**
 * Runs `work` while a 1 ms interval timer measures how late it fires: the
 * lag of one tick is its gap from the previous one, less the 1 ms. The time
 * from the last tick to the end counts as a gap too, so a loop blocked
 * throughout shows as one long lag, not as no samples.
 */
async function withLag<T>(work: () => Promise<T>): Promise<{ result: T; lag: Lag; elapsedMs: number }> {
  const lags: number[] = [];
  let last = performance.now();
  const t0 = last;
  const timer = setInterval(() => {
    const t = performance.now();
    lags.push(Math.max(0, t - last - 1));
    last = t;
  }, 1);
  const result = await work();
  const end = performance.now();
  clearInterval(timer);
  lags.push(Math.max(0, end - last - 1));
  lags.sort((a, b) => a - b);
  return { result, lag: { p50Ms: quantile(lags, 0.5), p99Ms: quantile(lags, 0.99), maxMs: lags.at(-1) ?? NaN }, elapsedMs: end - t0 };
}

const fmt = (x: number): string => x.toFixed(1);

async function main(): Promise<void> {
  const hash = bcrypt.hashSync('correct horse', cost);

  // 1. One verify's CPU, on this thread, nothing else running.
  const direct: number[] = [];
  for (let i = 0; i < samples; i++) {
    const t = performance.now();
    bcrypt.compareSync(i % 2 === 0 ? 'correct horse' : 'wrong', hash);
    direct.push(performance.now() - t);
  }
  direct.sort((a, b) => a - b);

  // 2. One verify through the hasher, one at a time (worker already started).
  const hasher = new PasswordHasher({ cost, queueMax: Math.max(64, flood) });
  await hasher.verify('correct horse', hash);
  const viaWorker: number[] = [];
  for (let i = 0; i < samples; i++) {
    const t = performance.now();
    await hasher.verify('correct horse', hash);
    viaWorker.push(performance.now() - t);
  }
  viaWorker.sort((a, b) => a - b);
  console.log(`bcrypt cost ${cost}, ${samples} samples each`);
  console.log(`  verify on this thread (compareSync):  p50 ${fmt(quantile(direct, 0.5))} ms, min ${fmt(direct[0] ?? NaN)}, max ${fmt(direct.at(-1) ?? NaN)}`);
  console.log(`  verify via PasswordHasher, serial:    p50 ${fmt(quantile(viaWorker, 0.5))} ms, min ${fmt(viaWorker[0] ?? NaN)}, max ${fmt(viaWorker.at(-1) ?? NaN)}`);

  // 3. A flood of concurrent verifies, and the main thread's event-loop delay meanwhile.
  const rows: string[] = [];
  const report = (what: string, r: { lag: Lag; elapsedMs: number }, extra: string): void => {
    rows.push(`  ${what.padEnd(44)} lag p50 ${fmt(r.lag.p50Ms).padStart(6)} ms  p99 ${fmt(r.lag.p99Ms).padStart(6)} ms  max ${fmt(r.lag.maxMs).padStart(6)} ms  wall ${(r.elapsedMs / 1000).toFixed(2)} s  ${extra}`);
  };
  const idle = await withLag(() => new Promise<void>((resolve) => setTimeout(resolve, 1000)));
  report('idle (1 s, baseline)', idle, '');

  const unbounded = await withLag(() => Promise.all(Array.from({ length: flood }, () => hasher.verify('correct horse', hash))));
  report(`PasswordHasher, queueMax ${hasher.queueMax}, ${flood} verifies`, unbounded, `all ${unbounded.result.every((m) => m) ? 'true' : 'WRONG'}`);
  await hasher.close();

  const bounded = new PasswordHasher({ cost });
  await bounded.verify('correct horse', hash);
  const defaults = await withLag(() =>
    Promise.all(Array.from({ length: flood }, () => bounded.verify('correct horse', hash).then(() => 'ok' as const, (e: unknown) => (e instanceof AuthBusyError ? 'busy' as const : 'error' as const)))),
  );
  const count = (k: string): number => defaults.result.filter((r) => r === k).length;
  report(`PasswordHasher, default queueMax ${bounded.queueMax}, ${flood}`, defaults, `${count('ok')} ran, ${count('busy')} AuthBusy, ${count('error')} other`);
  await bounded.close();

  const naive = await withLag(() => Promise.all(Array.from({ length: flood }, () => bcrypt.compare('correct horse', hash))));
  report(`bcryptjs async compare on main thread, ${flood}`, naive, `(for comparison; ${naive.lag.maxMs > 1000 ? 'the loop stalled' : 'sliced'})`);

  console.log(`event-loop delay on the main thread during ${flood} concurrent verifies:`);
  for (const row of rows) console.log(row);
}

await main();
