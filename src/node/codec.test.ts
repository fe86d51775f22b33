// The runtime's own wire formats: a log entry's batch of commands and the
// forwarding frames between a follower and the leader. Both come from
// outside (disk, network): random and mutated bytes must decode to something
// that re-encodes identically or throw the format's named error — never
// anything else.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { BatchFormatError, decodeBatch, encodeBatch } from './batch.js';
import { decodeForward, encodeForward, ForwardFormatError, type ForwardMessage } from './forward.js';

const bytes = fc.uint8Array({ maxLength: 64 });
const safe = fc.nat({ max: Number.MAX_SAFE_INTEGER });
const forward: fc.Arbitrary<ForwardMessage> = fc.oneof(
  fc.record({ type: fc.constant('propose' as const), reqId: safe, batch: bytes }),
  fc.record({ type: fc.constant('proposeInTerm' as const), reqId: safe, term: safe, batch: bytes }),
  fc.record({ type: fc.constant('proposed' as const), reqId: safe, index: safe, term: safe }),
  fc.record({ type: fc.constant('read' as const), reqId: safe }),
  fc.record({ type: fc.constant('readIndex' as const), reqId: safe, index: safe }),
  fc.record({ type: fc.constant('refused' as const), reqId: safe, reason: fc.constantFrom('notLeader' as const, 'backpressure' as const, 'transfer' as const) }),
);

test('a batch round-trips', () => {
  fc.assert(fc.property(fc.array(bytes, { maxLength: 20 }), (cmds) => {
    assert.deepEqual(decodeBatch(encodeBatch(cmds)).map((c) => [...c]), cmds.map((c) => [...c]));
  }));
});

test('random and mutated batches decode consistently or throw BatchFormatError', () => {
  const mutated = fc.tuple(fc.array(bytes, { maxLength: 5 }), fc.nat(), fc.integer({ min: 0, max: 255 }), fc.nat({ max: 8 }))
    .map(([cmds, at, val, cut]) => {
      const b = encodeBatch(cmds);
      if (b.length > 0) b[at % b.length] = val;
      return b.subarray(0, Math.max(0, b.length - cut));
    });
  fc.assert(fc.property(fc.oneof(bytes, mutated), (b) => {
    try {
      assert.deepEqual([...encodeBatch(decodeBatch(b))], [...b]);
    } catch (e) {
      if (!(e instanceof BatchFormatError)) throw e;
    }
  }), { numRuns: 2000 });
});

test('a forwarding frame round-trips', () => {
  fc.assert(fc.property(forward, (m) => {
    const back = decodeForward(encodeForward(m));
    assert.deepEqual({ ...back, ...('batch' in back ? { batch: [...back.batch] } : {}) }, { ...m, ...('batch' in m ? { batch: [...m.batch] } : {}) });
  }));
});

test('random and mutated forwarding frames decode consistently or throw ForwardFormatError', () => {
  const mutated = fc.tuple(forward, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.nat({ max: 4 }))
    .map(([m, at, val, cut]) => {
      const b = encodeForward(m);
      b[at % b.length] = val;
      return b.subarray(0, Math.max(0, b.length - cut));
    });
  fc.assert(fc.property(fc.oneof(bytes, mutated), (b) => {
    try {
      assert.deepEqual([...encodeForward(decodeForward(b))], [...b]);
    } catch (e) {
      if (!(e instanceof ForwardFormatError)) throw e;
    }
  }), { numRuns: 2000 });
});
