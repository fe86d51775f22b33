// The step from a committed entry to its commands' results: unpacks a data
// entry's batch (src/node/batch.ts) and applies each command to the state
// machine, in order. The runtime calls it for every committed entry; the
// apply micro-benchmark (bench/apply-throughput.ts) drives the same code.

import type { Entry } from '../protocol/entry.js';
import type { LogIndex } from '../protocol/ids.js';
import { BATCH_HEADER_BYTES, BATCH_ITEM_OVERHEAD_BYTES, BatchFormatError, batchCount, commandLengthAt } from './batch.js';
import type { StateMachine } from './runtime.js';

/**
 * Applies the commands of one committed entry and returns their results, one
 * per command in order; none for 'noop' and 'config' entries (they are not
 * state machine commands). A data entry whose batch does not parse (only a bug
 * or corruption can commit one) applies nothing: `onMalformed` hears of it,
 * and every replica skips it alike, so the state machines stay equal.
 * Commands go to the state machine's applyAt when it has one (no view of the
 * command is made), else to apply with a view.
 */
export function applyEntry(sm: StateMachine, e: Entry, onMalformed: (err: BatchFormatError, index: LogIndex) => void): unknown[] {
  if (e.type !== 'data') return [];
  const data = e.data;
  let count: number;
  try {
    count = batchCount(data);
  } catch (err) {
    if (!(err instanceof BatchFormatError)) throw err;
    onMalformed(err, e.index);
    return [];
  }
  const results = new Array<unknown>(count);
  let pos = BATCH_HEADER_BYTES;
  for (let i = 0; i < count; i++) {
    const start = pos + BATCH_ITEM_OVERHEAD_BYTES;
    const end = start + commandLengthAt(data, pos);
    results[i] = sm.applyAt !== undefined ? sm.applyAt(data, start, end, e.index) : sm.apply(data.subarray(start, end), e.index);
    pos = end;
  }
  return results;
}
