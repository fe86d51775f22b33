// The step from a committed entry to its commands' results: unpacks a data
// entry's batch (src/node/batch.ts) and applies each command to the state
// machine, in order. The runtime calls it for every committed entry; the
// apply micro-benchmark (bench/apply-throughput.ts) drives the same code.

import type { Entry } from '../protocol/entry.js';
import type { LogIndex } from '../protocol/ids.js';
import { BatchFormatError, decodeBatch } from './batch.js';
import type { StateMachine } from './runtime.js';

/**
 * Applies the commands of one committed entry and returns their results, one
 * per command in order; none for 'noop' and 'config' entries (they are not
 * state machine commands). A data entry whose batch does not parse (only a bug
 * or corruption can commit one) applies nothing: `onMalformed` hears of it,
 * and every replica skips it alike, so the state machines stay equal.
 */
export function applyEntry(sm: StateMachine, e: Entry, onMalformed: (err: BatchFormatError, index: LogIndex) => void): unknown[] {
  if (e.type !== 'data') return [];
  let commands: Uint8Array[];
  try {
    commands = decodeBatch(e.data);
  } catch (err) {
    if (!(err instanceof BatchFormatError)) throw err;
    onMalformed(err, e.index);
    return [];
  }
  return commands.map((c) => sm.apply(c, e.index));
}
