// Replays one seed of the simulator's metadata workload (test/sim/metadata.test.ts):
//   node dist/test/sim/metadata-replay.js --seed N [--mode pull|push] [--observers 100]
// and says what the run saw; exits 1 on a violation.

import { parseArgs } from 'node:util';
import { METADATA_OBSERVERS, metadataOptions, metadataWorkload, newMetadataRunStats } from './metadata-workload.js';
import { Simulator } from './simulator.js';

const { values } = parseArgs({
  options: { seed: { type: 'string' }, mode: { type: 'string', default: 'pull' }, observers: { type: 'string', default: String(METADATA_OBSERVERS) } },
});
const seed = Number(values.seed);
const mode = values.mode;
const observers = Number(values.observers);
if (!Number.isInteger(seed) || (mode !== 'push' && mode !== 'pull') || !Number.isInteger(observers) || observers < 0) {
  console.error('usage: metadata-replay --seed N [--mode pull|push] [--observers N]');
  process.exit(2);
}
const stats = newMetadataRunStats();
const sim = new Simulator(metadataOptions(seed, mode, metadataWorkload(stats), observers));
const t0 = performance.now();
const r = sim.run();
const top = Math.max(...sim.voterIds.map((id) => stats.apps.get(id)?.machine.image.offset ?? 0));
const atTop = sim.observerIds.filter((id) => stats.apps.get(id)?.machine.image.offset === top).length;
console.log(`seed ${seed} ${mode}: 3 controllers + ${observers} brokers, ${r.events} events, ${Math.round(r.virtualMs)} virtual ms, ` +
  `${Math.round(performance.now() - t0)} ms; records accepted ${stats.accepted} / rejected ${stats.rejected} (summed over nodes), ` +
  `${stats.comparisons} image comparisons, ${stats.restoredFromSnapshot} restores from snapshots; controllers at offset ${top}, ${atTop} brokers there`);
console.log(r.violation === null ? 'ok' : `VIOLATION ${r.violation.message}`);
process.exitCode = r.violation === null ? 0 : 1;
