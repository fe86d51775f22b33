// The generator must be deterministic per seed (every replay depends on it)
// and keep int() inside its half-open range.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Prng } from './prng.js';

test('the same seed gives the same sequence; different seeds differ', () => {
  const a = new Prng(42);
  const b = new Prng(42);
  const c = new Prng(43);
  const sa = Array.from({ length: 100 }, () => a.nextU32());
  const sb = Array.from({ length: 100 }, () => b.nextU32());
  const sc = Array.from({ length: 100 }, () => c.nextU32());
  assert.deepEqual(sa, sb);
  assert.notDeepEqual(sa, sc);
});

test('int(lo, hi) stays in [lo, hi) and reaches both ends', () => {
  fc.assert(fc.property(fc.integer({ min: -1000, max: 1000 }), fc.integer({ min: 1, max: 20 }), fc.nat(), (lo, width, seed) => {
    const r = new Prng(seed);
    const seen = new Set<number>();
    for (let i = 0; i < 400; i++) {
      const v = r.int(lo, lo + width);
      assert.ok(v >= lo && v < lo + width, `${v} outside [${lo}, ${lo + width})`);
      seen.add(v);
    }
    if (width <= 5) assert.equal(seen.size, width, 'every value appears');
  }));
});
