// `npm run bench`: the cluster benchmarks of issue 5, one after another,
// each in its own process (so that one's heap, JIT state and leftover
// processes cannot colour the next one's figures), then a summary of every
// target the reports judged. Each benchmark prints its own progress lines and
// tables and writes docs/bench/<name>.{json,md} (and plots).
//
//   npm run bench                 # the full run (about 50 minutes on 2 cores)
//   npm run bench -- --quick      # a smoke run of every benchmark (about 3 minutes); reports go to quick-* files
//   npm run bench -- writes idle  # only these
//   npm run bench -- amqp --targets rabbitmq --publishers 1,64   # options after the names go to each chosen benchmark
//
// The core, election-time and storage benchmarks are separate scripts
// (bench:core, report:election, bench:storage): they measure parts, not a
// cluster.

import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { REPORT_DIR } from './cluster/report.js';

const here = dirname(fileURLToPath(import.meta.url));

/** The cluster benchmarks in the order they run, with the report each writes. */
export const SUITE = [
  { name: 'writes', script: 'writes.js', report: 'writes', what: 'writes and reads, 1/16/128 clients, push, pull, etcd (items 1-3)' },
  { name: 'scale', script: 'scale.js', report: 'scale', what: '3 voters + 0/4/16/64 observers, push vs pull (item 4)' },
  { name: 'idle', script: 'idle.js', report: 'idle', what: 'CPU of idle nodes, push, pull, etcd (item 5)' },
  { name: 'backpressure', script: 'backpressure.js', report: 'backpressure', what: 'a follower stopped in bursts under load (item 6)' },
  { name: 'failover', script: 'failover.js', report: 'failover', what: 'kill -9 of the leader to the first acknowledged write, 100 trials (item 7)' },
  { name: 'put-after-kill', script: 'put-after-kill.js', report: 'put-after-kill', what: 'a put sent right after kill -9 of the leader, gRPC and etcdctl, 50 trials (issue 17)' },
  { name: 'auth', script: 'auth.js', report: 'auth', what: 'puts at 16 clients with auth off and on (a user checked against a role), push, pull, etcd (issue 19)' },
  { name: 'scaling', script: 'scaling.js', report: 'scaling', what: 'puts at 1/16/64/128/512 clients and gets at 128: leader main-thread CPU per put, its one-core ceiling, CPU per put over the members, push, pull, etcd (issue 18 item 4)' },
  { name: 'amqp', script: 'amqp.js', report: 'amqp', what: 'AMQP quorum queues, confirmed publishes and publish-to-deliver latency at 1/64 publishers, RabbitMQ 3.10, push, pull (issue 20)' },
  { name: 'wakeups', script: 'wakeups.js', report: 'wakeups', what: 'wake-ups (voluntary context switches), time waiting for a CPU and CPU per put at 1/16 clients, over every member\'s threads, push, pull, etcd (issue 16)' },
  { name: 'message-cost', script: 'message-cost.js', report: 'message-cost', what: 'what a message between two processes and a durable 4 KiB append cost Node and Go here, CPU and wall (issue 16)' },
] as const;

/** Options the dispatcher itself reads; they take no value. */
const OWN_FLAGS = new Set(['--quick']);

/**
 * Splits the command line into benchmark names and the options to forward to
 * each chosen benchmark: a bare word right after a `--flag` (without `=`) is
 * that flag's value; any other bare word must name a benchmark.
 */
export function splitArgs(argv: readonly string[], known: readonly string[]): { names: string[]; forwarded: string[]; unknown: string[] } {
  const names: string[] = [];
  const forwarded: string[] = [];
  const unknown: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (OWN_FLAGS.has(a)) continue;
    if (a.startsWith('--')) {
      forwarded.push(a);
      const next = argv[i + 1];
      if (!a.includes('=') && next !== undefined && !next.startsWith('--') && !known.includes(next)) {
        forwarded.push(next);
        i++;
      }
    } else if (known.includes(a)) {
      names.push(a);
    } else {
      unknown.push(a);
    }
  }
  return { names, forwarded, unknown };
}

/** Runs one compiled benchmark script in its own process; returns its exit status. */
export function runBenchmark(script: string, args: readonly string[] = []): number {
  console.log(`\n## ${script} ${args.join(' ')}\n`);
  const r = spawnSync(process.execPath, [join(here, script), ...args], { stdio: 'inherit' });
  return r.status ?? 1;
}

/** Lines of a markdown report that judge a target (they say **met** or **not met**). */
export function verdictLines(markdown: string): string[] {
  return markdown.split('\n').map((l) => l.trim()).filter((l) => /\*\*(not )?met\b|\b(not )?met\*\*/i.test(l));
}

function main(argv: readonly string[]): number {
  const quick = argv.includes('--quick');
  const { names: only, forwarded, unknown } = splitArgs(argv, SUITE.map((b) => b.name));
  const chosen = SUITE.filter((b) => only.length === 0 || only.includes(b.name));
  if (unknown.length > 0) {
    console.error(`unknown benchmark(s) ${unknown.join(', ')}; known: ${SUITE.map((b) => b.name).join(', ')}`);
    return 2;
  }
  const t0 = Date.now();
  const status: { name: string; code: number; seconds: number }[] = [];
  for (const b of chosen) {
    const s = Date.now();
    console.log(`\n# ${b.name}: ${b.what}`);
    status.push({ name: b.name, code: runBenchmark(b.script, [...(quick ? ['--quick'] : []), ...forwarded]), seconds: (Date.now() - s) / 1000 });
  }
  console.log(`\n# Summary (${Math.round((Date.now() - t0) / 1000)} s)\n`);
  console.log('| benchmark | exit | seconds | report |');
  console.log('| --- | --- | --- | --- |');
  for (const s of status) {
    const report = `docs/bench/${quick ? 'quick-' : ''}${s.name}.md`;
    console.log(`| ${s.name} | ${s.code} | ${Math.round(s.seconds)} | ${report} |`);
  }
  console.log('\n## Targets\n');
  for (const b of chosen) {
    const file = join(REPORT_DIR, `${quick ? 'quick-' : ''}${b.report}.md`);
    if (!existsSync(file)) {
      console.log(`- ${b.name}: no report written`);
      continue;
    }
    for (const line of verdictLines(readFileSync(file, 'utf8'))) console.log(`${line.startsWith('-') ? '' : '- '}${line.startsWith('-') ? line : `${b.name}: ${line}`}`);
  }
  return status.every((s) => s.code === 0) ? 0 : 1;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.exit(main(process.argv.slice(2)));
