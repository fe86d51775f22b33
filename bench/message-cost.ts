// What a message and a durable append cost each runtime on this machine:
// Node's (quorumlog's) against Go's (etcd's), measured the same way, in one
// run. A put at one client is a chain of such messages (client, protocol
// worker, Raft thread, followers, and back) and three appends made durable,
// so these two figures, times the counts of docs/bench/wakeups.md, bound
// what a put can cost each system before any of its own work is done.
//
// - A message: two processes play ping-pong with 100-byte messages over
//   loopback TCP (TCP_NODELAY), 20,000 round trips after 2,000 of warm-up.
//   CPU per message is both processes' CPU (every thread) over the measured
//   round trips, divided by the messages (two per round trip): one send on
//   one side, one wake-up and receive on the other. Wall per message is half
//   a round trip.
// - A durable append: 4 KiB written at the end of a file, then fdatasync,
//   one after the other, 2,000 after 200 of warm-up: in Node as the log does
//   it (a synchronous write, the fdatasync on libuv's pool), in Go as a WAL
//   does (WriteAt, then fdatasync on the calling goroutine).
//
// The two sides alternate, `--rounds` times; the report gives the median and
// the range of the rounds.
//
//   npm run bench -- message-cost
//   node dist/bench/message-cost.js [--quick] [--rounds 3]
//
// Writes docs/bench/message-cost.{json,md} (quick-message-cost.* with
// --quick: one round of a tenth of the operations).

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ensureGoBinary, goLoadgenPaths } from './cluster/go-loadgen.js';
import { repoRoot } from './cluster/machine.js';
import { fmt, mdTable, median, writeReport } from './cluster/report.js';

type Runtime = 'node' | 'go';

/** One process's measurement, as both programs print it. */
interface Measured {
  readonly cpuUs: number;
  readonly wallUs: number;
  readonly n: number;
}

interface Round {
  readonly runtime: Runtime;
  /** CPU of both processes per message, µs. */
  readonly messageCpuUs: number;
  /** Half a round trip, µs. */
  readonly messageWallUs: number;
  /** CPU per durable append, µs. */
  readonly appendCpuUs: number;
  /** Wall per durable append, µs. */
  readonly appendWallUs: number;
}

const here = dirname(fileURLToPath(import.meta.url));

function command(runtime: Runtime, goBinary: string, args: readonly string[]): [string, string[]] {
  return runtime === 'go' ? [goBinary, [...args]] : [process.execPath, [join(here, 'message-cost-node.js'), ...args]];
}

/**
 * Runs one program; `onFirstLine` sees its first line of output (the server's
 * port). Resolves with its last line, parsed, once it exits with 0.
 */
function run(cmd: [string, string[]], onFirstLine?: (line: string) => void): Promise<Measured> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd[0], cmd[1], { stdio: ['ignore', 'pipe', 'inherit'] });
    const lines: string[] = [];
    createInterface({ input: child.stdout }).on('line', (l) => {
      if (lines.length === 0) onFirstLine?.(l);
      lines.push(l);
    });
    child.once('error', reject);
    child.once('close', (code, signal) => {
      if (code !== 0) return reject(new Error(`${cmd[1].join(' ')} exited with ${code ?? signal}`));
      try {
        const m = JSON.parse(lines[lines.length - 1] ?? '') as Measured;
        if (!(m.n > 0) || !(m.cpuUs >= 0) || !(m.wallUs > 0)) throw new Error(`implausible: ${JSON.stringify(m)}`);
        resolve(m);
      } catch (e) {
        reject(new Error(`${cmd[1].join(' ')} printed no measurement`, { cause: e }));
      }
    });
  });
}

async function pingPong(runtime: Runtime, goBinary: string, n: number, warmup: number): Promise<{ cpuUs: number; wallUs: number }> {
  const counts = ['--n', String(n), '--warmup', String(warmup)];
  let client: Promise<Measured> | null = null;
  const server = run(command(runtime, goBinary, ['serve', ...counts]), (port) => {
    client = run(command(runtime, goBinary, ['ping', '--port', port, ...counts]));
  });
  const s = await server;
  if (client === null) throw new Error('the server printed no port');
  const c = await (client as Promise<Measured>);
  const messages = 2 * n;
  return { cpuUs: (s.cpuUs + c.cpuUs) / messages, wallUs: c.wallUs / messages };
}

async function appends(runtime: Runtime, goBinary: string, dir: string, n: number, warmup: number): Promise<{ cpuUs: number; wallUs: number }> {
  const m = await run(command(runtime, goBinary, ['disk', '--file', join(dir, `append-${runtime}.dat`), '--n', String(n), '--warmup', String(warmup)]));
  return { cpuUs: m.cpuUs / m.n, wallUs: m.wallUs / m.n };
}


function cell(xs: readonly number[]): string {
  return xs.length === 1 ? fmt(xs[0] as number, 1) : `${fmt(median(xs), 1)} (${fmt(Math.min(...xs), 1)}-${fmt(Math.max(...xs), 1)})`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false }, rounds: { type: 'string' } } });
  const rounds = Number(values.rounds ?? (values.quick ? 1 : 3));
  if (!(rounds >= 1)) throw new Error('--rounds must be at least 1');
  const scale = values.quick ? 10 : 1;
  const goBinary = ensureGoBinary(join(repoRoot(), 'bench', 'message-cost-go', 'main.go'), join(goLoadgenPaths().cacheDir, 'message-cost-go'), 'the Go message-cost program');
  // The appends go where the clusters' data directories go (the harness's tmpdir).
  const dir = mkdtempSync(join(tmpdir(), 'quorumlog-bench-message-cost-'));
  const results: Round[] = [];
  try {
    for (let r = 0; r < rounds; r++) {
      for (const runtime of ['go', 'node'] as const) {
        const msg = await pingPong(runtime, goBinary, 20_000 / scale, 2_000 / scale);
        const app = await appends(runtime, goBinary, dir, 2_000 / scale, 200 / scale);
        const row: Round = { runtime, messageCpuUs: msg.cpuUs, messageWallUs: msg.wallUs, appendCpuUs: app.cpuUs, appendWallUs: app.wallUs };
        console.error(`round ${r + 1}, ${runtime}: message ${fmt(row.messageCpuUs, 1)} µs CPU, ${fmt(row.messageWallUs, 1)} µs wall; `
          + `durable append ${fmt(row.appendCpuUs, 0)} µs CPU, ${fmt(row.appendWallUs, 0)} µs wall`);
        results.push(row);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const of = (rt: Runtime, k: keyof Omit<Round, 'runtime'>): number[] => results.filter((x) => x.runtime === rt).map((x) => x[k]);
  const ratio = (k: keyof Omit<Round, 'runtime'>): string => fmt(median(of('node', k)) / median(of('go', k)), 2);
  const table = mdTable(
    ['per operation, µs (median of rounds, range)', 'Go (etcd\'s runtime)', 'Node (quorumlog\'s)', 'Node / Go'],
    [
      ['message: CPU, both processes', cell(of('go', 'messageCpuUs')), cell(of('node', 'messageCpuUs')), ratio('messageCpuUs')],
      ['message: wall (half a round trip)', cell(of('go', 'messageWallUs')), cell(of('node', 'messageWallUs')), ratio('messageWallUs')],
      ['durable 4 KiB append: CPU', cell(of('go', 'appendCpuUs')), cell(of('node', 'appendCpuUs')), ratio('appendCpuUs')],
      ['durable 4 KiB append: wall', cell(of('go', 'appendWallUs')), cell(of('node', 'appendWallUs')), ratio('appendWallUs')],
    ],
  );
  console.log(`\n${table}`);
  const cmd = `node dist/bench/message-cost.js ${process.argv.slice(2).join(' ')}`.trim();
  const body = '# What a message and a durable append cost each runtime\n\n'
    + `Two processes of one runtime play ping-pong with 100-byte messages over loopback TCP (${20_000 / scale} round trips after ${2_000 / scale} of warm-up); `
    + 'a message\'s CPU is both processes\' CPU, every thread, per message (one send, one wake-up and receive). '
    + `A durable append is 4 KiB written at the end of a file and fdatasync'd before the next (${2_000 / scale} after ${200 / scale}): `
    + 'in Node as quorumlog\'s log does it (a synchronous write, fdatasync on libuv\'s pool), in Go as a WAL does. '
    + `The two runtimes alternate, ${rounds} round${rounds === 1 ? '' : 's'}.\n\n${table}`;
  for (const f of writeReport(values.quick ? 'quick-message-cost' : 'message-cost', cmd, { rounds, results }, body)) console.error(`wrote ${f}`);
}

await main();
