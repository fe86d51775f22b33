// The packed batches give back exactly what was packed, in order, however
// many records and whatever their sizes; a truncated buffer is refused.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { forEachPackedPut, forEachPackedWrite, PackedBatchError, PackedPutsBuilder, PackedWritesBuilder } from './packed.js';

test('packed writes: every (id, command) comes back in order, as views of the buffer', () => {
  const b = new PackedWritesBuilder();
  fc.assert(fc.property(fc.array(fc.tuple(fc.nat({ max: 2 ** 32 - 1 }), fc.uint8Array({ maxLength: 600 })), { maxLength: 40 }), (writes) => {
    for (const [id, cmd] of writes) b.add(id, cmd);
    assert.equal(b.count, writes.length);
    const buf = b.take();
    assert.equal(b.count, 0);
    if (writes.length === 0) {
      assert.equal(buf, null);
      return;
    }
    const back: [number, Uint8Array][] = [];
    forEachPackedWrite(buf as Uint8Array, (id, cmd) => {
      assert.equal(cmd.buffer, (buf as Uint8Array).buffer, 'a view, not a copy');
      back.push([id, new Uint8Array(cmd)]);
    });
    assert.deepEqual(back, writes.map(([id, cmd]) => [id, new Uint8Array(cmd)]));
  }));
});

test('packed writes: a buffer cut short anywhere is refused, never read past its end', () => {
  const b = new PackedWritesBuilder();
  b.add(7, new Uint8Array([1, 2, 3]));
  b.add(8, new Uint8Array(20));
  const buf = b.take() as Uint8Array;
  for (let cut = 1; cut < buf.byteLength; cut++) {
    if (cut === 11) continue; // exactly the first record: a valid buffer of one write
    assert.throws(() => forEachPackedWrite(buf.subarray(0, cut), () => {}), PackedBatchError, `cut at ${cut}`);
  }
});

test('packed puts: every (id, term, revision) comes back in order; a ragged buffer is refused', () => {
  const b = new PackedPutsBuilder();
  fc.assert(fc.property(fc.array(fc.tuple(fc.nat({ max: 2 ** 32 - 1 }), fc.nat({ max: 2 ** 32 - 1 }), fc.maxSafeNat()), { maxLength: 300 }), (puts) => {
    for (const [id, term, rev] of puts) b.add(id, term, rev);
    const buf = b.take();
    if (puts.length === 0) {
      assert.equal(buf, null);
      return;
    }
    const back: [number, number, number][] = [];
    forEachPackedPut(buf as Uint8Array, (id, term, rev) => back.push([id, term, rev]));
    assert.deepEqual(back, puts);
  }));
  assert.throws(() => forEachPackedPut(new Uint8Array(17), () => {}), PackedBatchError);
});
