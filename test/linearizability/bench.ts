// Measures the linearizability checker on simulated histories: the time to
// accept a linearizable one, and to reject it once a late read is made stale
// (the exhaustive, slow case). Not a test; run by hand after compiling:
//   node .build/lin/test/linearizability/bench.js OPS CLIENTS KEYS UNKNOWN_RATE [SEEDS [held|read]]
// (the last says where a cas takes its expected value: see SimulationOptions.casExpects)
// e.g. `... bench.js 2000 8 3 0.05` prints one line per seed.

import { checkLinearizable } from './checker.js';
import { corruptRead, simulateRegister } from './simulate.js';

/** A deterministic pseudo-random tape (splitmix32) to drive the simulation. */
function tape(seed: number, length: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length }, () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = Math.imul(s ^ (s >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  });
}

const [count = 2000, clients = 8, keys = 3, unknownRate = 0.05, seeds = 5] = process.argv.slice(2, 7).map(Number);
const casExpects = process.argv[7] === 'read' ? 'read' : 'held';
const timeBudgetMs = 20_000;
for (let seed = 1; seed <= seeds; seed++) {
  const ops = simulateRegister(tape(seed, count * 20), { clients, keys, unknownRate, casExpects, maxOperations: count });
  const unknownWrites = ops.filter((o) => o.output === null && o.op.kind !== 'get').length;
  let t0 = performance.now();
  const accepted = checkLinearizable(ops, { timeBudgetMs });
  const acceptMs = performance.now() - t0;
  const late = ops.findIndex((o) => o.op.kind === 'get' && o.output !== null && o.call > ops[ops.length - 1]!.call * 0.9);
  t0 = performance.now();
  const rejected = checkLinearizable(corruptRead(ops, late), { timeBudgetMs });
  const rejectMs = performance.now() - t0;
  console.log(
    `seed ${seed}: ${ops.length} ops, ${unknownWrites} unknown writes; ` +
      `original ok=${accepted.ok} in ${acceptMs.toFixed(1)} ms; ` +
      `stale read ${rejected.timedOut ? 'timed out' : `ok=${rejected.ok}`} in ${rejectMs.toFixed(1)} ms`,
  );
}
