// Runs simulator seeds: one, or many, and summarizes.

import type { ReplicationMode } from '../../src/core/config.js';
import type { PlantedBug } from '../../src/core/planted-bugs.js';
import { optionsFromSeed } from './options.js';
import { Simulator, type SimResult } from './simulator.js';

/** Runs one seed. `mode` and `plantedBug` override what the seed would choose. */
export function runSeed(seed: number, force: { mode?: ReplicationMode; plantedBug?: PlantedBug } = {}): SimResult {
  return new Simulator(optionsFromSeed(seed, force)).run();
}

/** One line that says how to replay a seed. */
export function replayCommand(r: SimResult): string {
  return `npm run sim -- --seed ${r.seed} --mode ${r.options.mode}` +
    (r.options.plantedBug === undefined ? '' : ` --bug ${r.options.plantedBug}`);
}
