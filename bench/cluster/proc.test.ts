// The /proc helpers the scaling benchmark charges CPU with: that a process's
// descendants are found (grandchildren too), that the main thread's CPU is
// told apart from the other threads', and that a descendant born or gone
// within an interval is charged what it used in it.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { descendantPids, descendantsIn, parseSchedstat, parseSwitches, sampleTrees, treeCpuBetween, treeSchedTimes, treeSwitches, type TreeSample } from './proc.js';

test('descendantsIn finds children and grandchildren, and nothing else', () => {
  // 1 → 10 → 100 → 1000; 1 → 11; 2 → 20 (another tree); 50 → 50 (a loop must not hang).
  const parentOf = new Map([[10, 1], [11, 1], [100, 10], [1000, 100], [20, 2], [50, 50], [1, 0]]);
  assert.deepEqual(descendantsIn(1, parentOf).sort((a, b) => a - b), [10, 11, 100, 1000]);
  assert.deepEqual(descendantsIn(100, parentOf), [1000]);
  assert.deepEqual(descendantsIn(1000, parentOf), []);
  assert.deepEqual(descendantsIn(50, parentOf), []);
  assert.deepEqual(descendantsIn(7, parentOf), []);
});

test('treeCpuBetween charges a descendant born in the interval from zero, and one that exited up to its last sample', () => {
  const at = (atMs: number, main: number, proc: number, d: [string, number][]): TreeSample => ({
    atMs, roots: { n1: { mainThreadSeconds: main, processSeconds: proc, descendants: new Map(d) } },
  });
  const samples = [
    at(0, 1, 1.5, [['5@1', 10]]), // before the interval
    at(1000, 2, 3, [['5@1', 11], ['6@9', 3]]), // from: 6@9 lived before the interval
    at(2000, 2.5, 4, [['5@1', 11.5], ['6@9', 3.25], ['7@20', 0.5]]), // 7@20 born in the interval
    at(3000, 3, 5, [['5@1', 12], ['7@20', 0.75]]), // to: 6@9 has exited
  ];
  const cpu = treeCpuBetween(samples, 1, 3)['n1'];
  assert.ok(cpu !== undefined);
  assert.equal(cpu.seconds, 2);
  assert.equal(cpu.mainThreadSeconds, 1);
  assert.equal(cpu.otherThreadsSeconds, 1); // process 2 s − main thread 1 s
  assert.equal(cpu.descendantsSeconds, 1 + 0.25 + 0.75);
  assert.equal(cpu.descendantCount, 3);
  assert.equal(cpu.totalSeconds, 2 + 2);
  assert.throws(() => treeCpuBetween(samples, 3, 1), RangeError);
});

// A process whose main thread idles while a worker thread spins, with a child that spins too. Each spins until its
// own thread has used 0.5 s of CPU (/proc/thread-self/stat), however busy the machine is; then the parent says 'done'.
const PARENT = `
const { Worker } = require('node:worker_threads');
const { spawn } = require('node:child_process');
const spin = "const cpu = () => { const f = require('node:fs').readFileSync('/proc/thread-self/stat', 'utf8').split(') ')[1].split(' '); return Number(f[11]) + Number(f[12]); }; const c0 = cpu(); while (cpu() - c0 < 50) {}";
const child = spawn(process.execPath, ['-e', "console.log('up'); " + spin + "; console.log('spun'); setInterval(() => {}, 1000);"], { stdio: ['ignore', 'pipe', 'inherit'] });
let pending = 2;
const finished = () => { if (--pending === 0) console.log('done'); };
child.stdout.once('data', () => {
  console.log('ready ' + child.pid);
  child.stdout.once('data', finished);
  const w = new Worker(spin + "; require('node:worker_threads').parentPort.postMessage('spun'); setInterval(() => {}, 1000);", { eval: true });
  w.once('message', finished);
});
setInterval(() => {}, 1000);
`;

test('the main thread, the other threads and the descendants of a live process are measured apart', { timeout: 30_000 }, async () => {
  const p = spawn(process.execPath, ['-e', PARENT], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const lines: string[] = [];
    let buffered = '';
    const next = async (prefix: string): Promise<string> => {
      for (;;) {
        const hit = lines.find((l) => l.startsWith(prefix));
        if (hit !== undefined) return hit;
        const [chunk] = (await once(p.stdout, 'data')) as [Buffer];
        buffered += chunk.toString();
        const parts = buffered.split('\n');
        buffered = parts.pop() ?? '';
        lines.push(...parts);
      }
    };
    const grandchild = Number((await next('ready ')).split(' ')[1]);
    const pid = p.pid as number;
    assert.deepEqual(descendantPids(pid), [grandchild]);
    assert.deepEqual(descendantPids(grandchild), []);
    const a = sampleTrees({ n: pid });
    await next('done');
    const b = sampleTrees({ n: pid });
    const cpu = treeCpuBetween([a, b], 0, 1)['n'];
    assert.ok(cpu !== undefined);
    // The worker spun 0.5 s on another thread, the child as much; the main thread only waited.
    assert.ok(cpu.mainThreadSeconds < 0.15, `main thread ${cpu.mainThreadSeconds} s`);
    assert.ok(cpu.otherThreadsSeconds >= 0.3, `other threads ${cpu.otherThreadsSeconds} s`);
    assert.ok(cpu.descendantsSeconds >= 0.3, `descendants ${cpu.descendantsSeconds} s`);
    assert.equal(cpu.descendantCount, 1);
  } finally {
    const kids = p.pid === undefined ? [] : descendantPids(p.pid);
    for (const k of kids) process.kill(k, 'SIGKILL');
    p.kill('SIGKILL');
  }
});

test('parseSwitches reads both counts, telling voluntary from nonvoluntary', () => {
  const status = 'Name:\tnode\nThreads:\t11\nvoluntary_ctxt_switches:\t1234\nnonvoluntary_ctxt_switches:\t56\n';
  assert.deepEqual(parseSwitches(status), { voluntary: 1234, involuntary: 56 });
  assert.throws(() => parseSwitches('Name:\tnode\n'), /no context switch counts/);
});

/**
 * Runs `script` in a child Node process; the script calls `done()` when its
 * work is over (the child then prints a line and idles). Reads `read(pid)`
 * before the work, after it, and once the child is gone.
 */
async function aroundChild<T>(script: string, read: (pid: number) => T): Promise<{ before: T; after: T; gone: T }> {
  const child = spawn(process.execPath, ['-e', `const done = () => { process.stdout.write("done\\n"); setInterval(() => undefined, 1000); }; ${script}`], { stdio: ['ignore', 'pipe', 'inherit'] });
  const pid = child.pid as number;
  let before: T;
  let after: T;
  try {
    before = read(pid);
    await once(child.stdout, 'data');
    after = read(pid);
  } finally {
    child.kill('SIGKILL');
    await once(child, 'exit');
  }
  return { before, after, gone: read(pid) };
}

test('treeSwitches counts the wake-ups of a child that sleeps on a timer, and nothing once it is gone', async () => {
  // The child wakes from a timer 50 times: at least 50 voluntary switches in its tree, and none charged once it is gone.
  const { before, after, gone } = await aroundChild('let n = 0; const t = setInterval(() => { if (++n === 50) { clearInterval(t); done(); } }, 2);', treeSwitches);
  assert.ok(after.voluntary - before.voluntary >= 50, `${after.voluntary - before.voluntary} wake-ups for 50 timer ticks`);
  assert.deepEqual(gone, { voluntary: 0, involuntary: 0 });
});

test('parseSchedstat reads the run and run-queue times, and refuses anything else', () => {
  assert.deepEqual(parseSchedstat('123456789 2345 67\n'), { runNs: 123456789, waitNs: 2345 });
  assert.throws(() => parseSchedstat('123 456\n'), /not a schedstat line/);
});

test('treeSchedTimes charges a busy child its CPU time, and nothing once it is gone', async () => {
  // The child spins for 300 ms of CPU: its tree's run time grows by at least most of that.
  const { before, after, gone } = await aroundChild('const t = process.cpuUsage(); while (process.cpuUsage(t).user < 300000); done();', treeSchedTimes);
  assert.ok(after.runNs - before.runNs >= 250e6, `${(after.runNs - before.runNs) / 1e6} ms run for 300 ms of CPU`);
  assert.deepEqual(gone, { runNs: 0, waitNs: 0 });
});
