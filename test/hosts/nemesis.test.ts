// The multi-host nemesis's network plans, without root: who hears whom in
// each partition, and the nftables script a plan becomes. (The plans run
// for real in `npm run test:hosts`.)

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bridge, hears, majorityMinority, nftScript, oneWayLoss, partition, randomLoss, ring, Rng, NetPlanError } from './nemesis.js';

const all = [0, 1, 2, 3, 4];
const heardBy = (p: ReturnType<typeof ring>, to: number): number[] => all.filter((f) => f !== to && hears(p, to, f));

test('majority/minority cuts both ways and only across the cut', () => {
  const p = majorityMinority(5, [0, 3]);
  assert.deepEqual(heardBy(p, 0), [3]);
  assert.deepEqual(heardBy(p, 1), [2, 4]);
  assert.throws(() => majorityMinority(5, [0, 1, 2]), NetPlanError);
});

test('a bridge node hears everyone; the halves do not hear each other', () => {
  const p = bridge([4, 0, 2, 1, 3]);
  assert.deepEqual(heardBy(p, 2), [0, 1, 3, 4]);
  assert.deepEqual(heardBy(p, 4), [0, 2]);
  assert.deepEqual(heardBy(p, 1), [2, 3]);
});

test('in a ring of five each node hears exactly its two neighbours, a majority with itself', () => {
  const order = [2, 0, 4, 1, 3];
  const p = ring(order);
  order.forEach((node, pos) => {
    assert.deepEqual(heardBy(p, node).sort(), [order[(pos + 1) % 5], order[(pos + 4) % 5]].sort());
  });
});

test('loss plans keep every link up and say how much they drop', () => {
  const one = oneWayLoss(5, 2, 60);
  assert.deepEqual(heardBy(one, 0), [1, 2, 3, 4]);
  assert.equal(one.rules.get(2), undefined);
  assert.equal(randomLoss(5, 20).rules.get(3)?.[0]?.lossPercent, 20);
});

test('partition refuses groups that miss or repeat a node', () => {
  assert.throws(() => partition(5, [[0, 1], [2, 3]]), NetPlanError);
  assert.throws(() => partition(5, [[0, 1, 2], [2, 3, 4]]), NetPlanError);
});

test('the nft script replaces our table, drops or samples with numgen, and an empty plan only deletes', () => {
  const addr = (i: number): string => `10.77.0.${i + 1}`;
  const s = nftScript('qlh', [{ from: [1, 2], lossPercent: 100 }, { from: [3], lossPercent: 25 }], addr);
  assert.match(s, /^table inet qlh\ndelete table inet qlh\n/);
  assert.match(s, /ip saddr \{ 10\.77\.0\.2, 10\.77\.0\.3 \} drop/);
  assert.match(s, /ip saddr \{ 10\.77\.0\.4 \} numgen random mod 100 lt 25 drop/);
  assert.equal(nftScript('qlh', [], addr), 'table inet qlh\ndelete table inet qlh\n');
});

test('the seeded generator replays', () => {
  const a = new Rng(42);
  const b = new Rng(42);
  assert.deepEqual(a.shuffle(all), b.shuffle(all));
  assert.ok(Array.from({ length: 100 }, () => a.int(5)).every((x) => x >= 0 && x < 5));
});
