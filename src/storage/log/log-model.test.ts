// Property test: DurableLogStore behaves as MemoryLogStore (the model) under
// random sequences of append (with overlaps), truncateSuffix, compactPrefix,
// read, sync and close-and-reopen, with small segments so that rolls, segment
// removal and compaction across segments happen often.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { LogStore } from '../types.js';
import { NodeFileSystem } from '../fs.js';
import { DurableLogStore } from './durable-log.js';
import { MemoryLogStore } from './memory-log.js';
import { checkLogDir } from './check.js';
import { entry, withTempDir } from './test-util.js';

const fs = new NodeFileSystem();

type Op =
  | { t: 'append'; at: number; count: number; bump: number; size: number }
  | { t: 'truncate'; at: number }
  | { t: 'compact'; at: number; match: boolean }
  | { t: 'read'; lo: number; hi: number; budget: number }
  | { t: 'sync' }
  | { t: 'reopen' };

const frac = fc.integer({ min: 0, max: 1000 }).map((x) => x / 1000);
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ t: fc.constant('append' as const), at: frac, count: fc.integer({ min: 1, max: 8 }), bump: fc.integer({ min: 0, max: 2 }), size: fc.integer({ min: 0, max: 60 }) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('truncate' as const), at: frac }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('compact' as const), at: frac, match: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('read' as const), lo: frac, hi: frac, budget: fc.integer({ min: 0, max: 600 }) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('sync' as const) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('reopen' as const) }) },
);

/** A position in [lo, hi] picked by a fraction. */
const pick = (f: number, lo: number, hi: number) => lo + Math.min(hi - lo, Math.floor(f * (hi - lo + 1)));

function same(real: LogStore, model: LogStore): void {
  const first = model.firstIndex();
  const last = model.lastIndex();
  assert.equal(real.firstIndex(), first);
  assert.equal(real.lastIndex(), last);
  for (let i = Math.max(0, first - 2); i <= last + 2; i++) assert.equal(real.term(i), model.term(i), `term(${i})`);
  assert.deepEqual(real.read(first, last + 1, Infinity), model.read(first, last + 1, Infinity));
}

test('DurableLogStore matches MemoryLogStore under random operations and reopens', () => {
  fc.assert(fc.property(fc.integer({ min: 60, max: 400 }), fc.array(op, { minLength: 1, maxLength: 40, size: 'max' }), (segmentBytes, ops) => {
    withTempDir((dir) => {
      const model = new MemoryLogStore();
      let real = DurableLogStore.open(fs, dir, { segmentBytes });
      try {
        for (const o of ops) {
          const first = model.firstIndex();
          const last = model.lastIndex();
          switch (o.t) {
            case 'append': {
              const at = pick(o.at, first, last + 1);
              const term = Math.max(1, model.term(at - 1) ?? 0) + o.bump;
              const batch = Array.from({ length: o.count }, (_, k) => entry(at + k, term, (o.size + k) % 61, (at + k) % 5 === 0 ? 'noop' : 'data'));
              model.append(batch);
              real.append(batch);
              break;
            }
            case 'truncate': {
              const at = pick(o.at, first, last + 2);
              model.truncateSuffix(at);
              real.truncateSuffix(at);
              break;
            }
            case 'compact': {
              const at = pick(o.at, first - 1, last + 3);
              const known = model.term(at);
              const term = o.match && known !== undefined ? known : Math.max(model.term(last) ?? 0, known ?? 0) + 1;
              model.compactPrefix(at, term);
              real.compactPrefix(at, term);
              break;
            }
            case 'read': {
              const lo = pick(o.lo, first, last + 1);
              const hi = pick(o.hi, lo, last + 1);
              assert.deepEqual(real.read(lo, hi, o.budget), model.read(lo, hi, o.budget));
              break;
            }
            case 'sync':
              real.sync();
              break;
            case 'reopen':
              real.close();
              real = DurableLogStore.open(fs, dir, { segmentBytes });
              break;
          }
          same(real, model);
        }
        real.sync();
        real.close();
        const report = checkLogDir(fs, dir);
        assert.deepEqual(report.problems, []);
        assert.deepEqual(report.repairs, []);
        assert.equal(report.firstIndex, model.firstIndex());
        assert.equal(report.lastIndex, model.lastIndex());
        real = DurableLogStore.open(fs, dir, { segmentBytes });
        same(real, model);
      } finally {
        real.close();
      }
    });
  }), { numRuns: 300 });
});
