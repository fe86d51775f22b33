// An in-memory StateStore (term, vote, commit) for the simulator and tests.
// It keeps the last saved HardState; nothing survives the process.

import type { HardState } from '../../protocol/entry.js';
import type { StateStore } from '../types.js';
import { validateHardState } from './format.js';

/** The initial hard state of a node that never saved one. */
export const INITIAL_HARD_STATE: HardState = Object.freeze({ term: 0, vote: null, commit: 0 });

/**
 * A StateStore in memory. `save` is "durable" at once (there is no crash
 * in memory other than losing the object).
 * Invariant: `load()` returns the last value passed to `save()`, or
 * INITIAL_HARD_STATE if none.
 */
export class MemoryStateStore implements StateStore {
  private state: HardState;

  /** Starts from `initial` (a node restarting in the simulator) or from the empty state. */
  constructor(initial: HardState = INITIAL_HARD_STATE) {
    validateHardState(initial);
    this.state = { ...initial };
  }

  load(): HardState {
    return { ...this.state };
  }

  save(state: HardState): void {
    validateHardState(state);
    this.state = { ...state };
  }
}
