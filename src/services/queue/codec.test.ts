// The queue command codec: every command survives a round trip, the encoding
// is canonical (any bytes that decode re-encode to themselves), and malformed
// input gives a QueueCodecError, never another exception.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { decodeQueueCommand, encodeQueueCommand, idProblem, QueueCodecError, queueNameProblem } from './codec.js';
import type { QueueCommand } from './types.js';

const rec: typeof fc.record = ((model: never) => fc.record(model, { noNullPrototype: true })) as typeof fc.record;

const name = fc.string({ minLength: 1, maxLength: 10, unit: 'grapheme' });
const tags = fc.array(fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), { maxLength: 10 });

/** Any valid command. */
export const arbitraryCommand: fc.Arbitrary<QueueCommand> = fc.oneof(
  rec({ type: fc.constant('declare' as const), queue: name, deliveryLimit: fc.integer({ min: 0, max: 1_000_000 }), deadLetterQueue: fc.option(name, { nil: null }) }),
  rec({ type: fc.constant('enqueue' as const), queue: name, body: fc.uint8Array({ maxLength: 40 }) }),
  rec({ type: fc.constant('attach' as const), consumerId: name, queue: name, node: name, prefetch: fc.integer({ min: 1, max: 10_000 }) }),
  rec({ type: fc.constantFrom('settle' as const, 'return' as const, 'discard' as const), consumerId: name, deliveryTags: tags }),
  rec({ type: fc.constant('cancel' as const), consumerId: name }),
  rec({ type: fc.constant('nodeDown' as const), node: name, attachedUpTo: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }) }),
);

describe('queue command codec', () => {
  it('round-trips every command', () => {
    fc.assert(fc.property(arbitraryCommand, (cmd) => {
      const bytes = encodeQueueCommand(cmd);
      assert.deepEqual(decodeQueueCommand(bytes), cmd);
    }), { numRuns: 2000 });
  });

  it('is canonical: bytes that decode re-encode to themselves; anything else is a QueueCodecError', () => {
    const mutated = arbitraryCommand.chain((cmd) => {
      const bytes = encodeQueueCommand(cmd);
      return fc.tuple(fc.constant(bytes), fc.array(fc.tuple(fc.nat(bytes.length), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }), fc.nat(bytes.length + 2));
    }).map(([bytes, flips, cut]) => {
      const b = new Uint8Array(bytes);
      for (const [at, v] of flips) if (at < b.length) b[at] = v;
      return b.subarray(0, Math.min(b.length, cut));
    });
    fc.assert(fc.property(fc.oneof(mutated, fc.uint8Array({ maxLength: 30 })), (bytes) => {
      let cmd: QueueCommand;
      try {
        cmd = decodeQueueCommand(bytes);
      } catch (e) {
        assert.ok(e instanceof QueueCodecError, `not a QueueCodecError: ${String(e)}`);
        return;
      }
      assert.deepEqual(encodeQueueCommand(cmd), new Uint8Array(bytes));
    }), { numRuns: 5000 });
  });

  it('refuses malformed bytes with reasons', () => {
    const ok = encodeQueueCommand({ type: 'cancel', consumerId: 'c1' });
    assert.deepEqual([...ok], [1, 7, 2, 0x63, 0x31]);
    const cases: [number[], RegExp][] = [
      [[], /truncated/],
      [[2, 7, 2, 0x63, 0x31], /format version 2/],
      [[1, 99], /unknown queue command tag 99/],
      [[1, 7, 2, 0x63, 0x31, 0], /trailing/],
      [[1, 7, 0], /consumer id is empty/],
      [[1, 7, 2, 0xc0, 0x80], /UTF-8/], // an overlong NUL
      [[1, 7, 0x82, 0x00, 0x63, 0x31], /overlong/],
      [[1, 1, 1, 0x71, 0, 2], /undefined flag bits/],
      [[1, 3, 1, 0x63, 1, 0x71, 1, 0x6e, 0], /prefetch/],
      [[1, 4, 1, 0x63, 1, 0], /delivery tag/],
      [[1, 1, 1, 0x71, 1, 0], /delivery limit/], // -1 in zigzag
    ];
    for (const [bytes, why] of cases) {
      assert.throws(() => decodeQueueCommand(new Uint8Array(bytes)), (e: unknown) => e instanceof QueueCodecError && why.test(e.message), `${bytes.join(',')}`);
    }
  });

  it('refuses to encode what it could not decode', () => {
    const bad: unknown[] = [
      { type: 'declare', queue: '', deliveryLimit: 0, deadLetterQueue: null },
      { type: 'declare', queue: 'x'.repeat(256), deliveryLimit: 0, deadLetterQueue: null },
      { type: 'declare', queue: 'q', deliveryLimit: 1.5, deadLetterQueue: null },
      { type: 'attach', consumerId: 'c', queue: 'q', node: 'n', prefetch: 0 },
      { type: 'settle', consumerId: 'c', deliveryTags: [0] },
      { type: 'enqueue', queue: 'q', body: 'not bytes' },
      { type: 'enqueue', queue: '\ud800', body: new Uint8Array() },
      { type: 'nope' },
      { type: 'cancel' },
    ];
    for (const cmd of bad) assert.throws(() => encodeQueueCommand(cmd as QueueCommand), QueueCodecError, JSON.stringify(cmd));
  });

  it('checks names', () => {
    assert.equal(queueNameProblem('orders'), null);
    assert.match(queueNameProblem('') ?? '', /empty/);
    assert.match(queueNameProblem('é'.repeat(128)) ?? '', /256 bytes/);
    assert.match(idProblem('a\udc00b', 'consumer id') ?? '', /well-formed/);
    assert.equal(idProblem('😀'), null);
  });
});
