// Property tests for the quorum arithmetic every commit decision rests on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { majority, quorumIndex } from './quorum.js';

test('majority: any two majorities of the same voters intersect', () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 101 }), (n) => {
    assert.ok(2 * majority(n) > n);
    assert.ok(majority(n) <= n);
    assert.ok(2 * (majority(n) - 1) <= n, 'the majority is the smallest such number');
  }));
});

test('quorumIndex is the highest index that at least a majority has reached', () => {
  fc.assert(fc.property(fc.array(fc.nat({ max: 1000 }), { minLength: 1, maxLength: 9 }), (positions) => {
    const q = quorumIndex([...positions], positions.length);
    const atOrAbove = positions.filter((p) => p >= q).length;
    assert.ok(atOrAbove >= majority(positions.length), 'a majority has reached it');
    const higher = positions.filter((p) => p > q);
    if (higher.length > 0) {
      const next = Math.min(...higher);
      assert.ok(positions.filter((p) => p >= next).length < majority(positions.length), 'no higher index has a majority');
    }
  }));
});
