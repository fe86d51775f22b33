// The child side of the kill -9 crash test: opens a durable log in the given
// directory (running recovery), then appends batches of entries whose bytes
// are a function of their index and term, syncs each batch, and reports on
// stdout the last index it knows is durable ("durable N"). The parent kills
// it with SIGKILL at a random moment. Usage: node crash-child.js DIR SEED

import { DurableLogStore } from '../../src/storage/log/durable-log.js';
import { NodeFileSystem } from '../../src/storage/fs.js';
import { Prng } from '../../src/util/prng.js';
import { expectedEntry } from './crash-entries.js';

const [dir, seedText] = process.argv.slice(2);
if (dir === undefined) throw new Error('usage: crash-child DIR SEED');
const rng = new Prng(Number(seedText ?? 1));
const log = DurableLogStore.open(new NodeFileSystem(), dir, { segmentBytes: 64 * 1024 });
process.stdout.write(`start ${log.lastIndex()}\n`);
for (;;) {
  const first = log.lastIndex() + 1;
  const count = 1 + rng.int(0, 64);
  const batch = [];
  for (let i = first; i < first + count; i++) batch.push(expectedEntry(i));
  log.append(batch);
  log.sync();
  process.stdout.write(`durable ${log.lastIndex()}\n`);
}
