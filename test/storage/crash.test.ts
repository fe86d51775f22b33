// Crash tests with real processes: a child appends and reports each index it
// knows is durable; the parent kills it with SIGKILL at random moments, then
// reopens the log itself (running recovery) and checks that every entry
// reported durable is present and intact and that the log is a clean prefix.
// Bounded in count (kills) and in time.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DurableLogStore } from '../../src/storage/log/durable-log.js';
import { NodeFileSystem } from '../../src/storage/fs.js';
import { Prng } from '../../src/util/prng.js';
import { expectedEntry } from './crash-entries.js';

const KILLS = Number(process.env['QUORUMLOG_CRASH_KILLS'] ?? 120);
const TIME_LIMIT_MS = 120_000;
const child = fileURLToPath(new URL('./crash-child.js', import.meta.url));

/** Runs the child until it has reported at least once, then kills it after a random delay; returns the last durable index it reported. */
function runAndKill(dir: string, seed: number, delayMs: number): Promise<{ durable: number; started: number }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [child, dir, String(seed)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let durable = -1;
    let started = -1;
    let buffered = '';
    let stderr = '';
    let timer: NodeJS.Timeout | null = null;
    p.stdout.setEncoding('utf8');
    p.stdout.on('data', (chunk: string) => {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        const [word, n] = line.split(' ');
        if (word === 'durable') durable = Number(n);
        if (word === 'start') {
          started = Number(n);
          timer = setTimeout(() => p.kill('SIGKILL'), delayMs);
        }
      }
    });
    p.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    p.on('exit', (code, signal) => {
      if (timer !== null) clearTimeout(timer);
      if (signal !== 'SIGKILL') reject(new Error(`child exited with ${code ?? signal}: ${stderr}`));
      else resolve({ durable, started });
    });
  });
}

test(`kill -9 at random moments (${KILLS} times): every entry reported durable survives, the log is a clean prefix`, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'quorumlog-crash-'));
  const rng = new Prng(20261126);
  const deadline = Date.now() + TIME_LIMIT_MS;
  let acknowledged = 0;
  let kills = 0;
  let checked = 0;
  try {
    for (; kills < KILLS && Date.now() < deadline; kills++) {
      const { durable, started } = await runAndKill(dir, rng.nextU32(), rng.int(0, 40));
      assert.ok(started >= acknowledged, `after kill ${kills}: the child recovered ${started} entries, but ${acknowledged} were reported durable`);
      acknowledged = Math.max(acknowledged, durable);
      const log = DurableLogStore.open(new NodeFileSystem(), dir, { segmentBytes: 64 * 1024 });
      try {
        const last = log.lastIndex();
        assert.ok(last >= acknowledged, `after kill ${kills}: log ends at ${last}, but ${acknowledged} was reported durable`);
        assert.equal(log.firstIndex(), 1);
        // The whole log every 25 kills and at the end; otherwise the region a
        // crash can touch (the tail, from a little before the last durable index).
        const from = kills % 25 === 0 || kills === KILLS - 1 ? 1 : Math.max(1, Math.min(checked, acknowledged) - 64);
        for (let lo = from; lo <= last;) {
          const batch = log.read(lo, last + 1, 4 << 20);
          assert.ok(batch.length > 0, `read from ${lo} returned nothing`);
          for (const e of batch) assert.deepEqual(e, expectedEntry(e.index), `entry ${e.index} after kill ${kills}`);
          assert.equal(batch[0]?.index, lo);
          lo += batch.length;
        }
        checked = last;
      } finally {
        log.close();
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.ok(kills >= Math.min(KILLS, 50), `only ${kills} kills fit in the time limit`);
  assert.ok(acknowledged > 0, 'the child made progress');
});
