// The entries the crash test writes: each one's term and bytes follow from its
// index, so a reader can check any entry without a copy of what was written.
import type { Entry } from '../../src/protocol/entry.js';

/** The entry the crash test writes at `index`. */
export function expectedEntry(index: number): Entry {
  const size = 16 + (index * 7919) % 700;
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i++) data[i] = (index * 31 + i * 17) & 0xff;
  return { index, term: 1 + Math.floor(index / 1000), type: 'data', data };
}
