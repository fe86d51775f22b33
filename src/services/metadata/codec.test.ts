import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Prng } from '../../util/prng.js';
import { decodeRecord, decodeSnapshot, encodeImage, encodeRecord, encodeSnapshot, MetadataCodecError } from './codec.js';
import { MetadataStateMachine } from './state-machine.js';
import type { MetadataRecord } from './types.js';
import { randomRecord } from './workload.js';

/** A state machine fed `n` records drawn from `seed`, and the records. */
function fed(seed: number, n: number): { sm: MetadataStateMachine; records: MetadataRecord[] } {
  const rng = new Prng(seed);
  const sm = new MetadataStateMachine({ historyRecords: 16 });
  const records: MetadataRecord[] = [];
  for (let i = 1; i <= n; i++) {
    const r = randomRecord(rng, sm.image);
    records.push(r);
    sm.applyRecord(r, i);
  }
  return { sm, records };
}

test('every record round-trips, and its encoding is canonical', () => {
  fc.assert(fc.property(fc.integer(), (seed) => {
    for (const r of fed(seed, 60).records) {
      const bytes = encodeRecord(r);
      assert.deepEqual(decodeRecord(bytes), r);
      assert.deepEqual(encodeRecord(decodeRecord(bytes)), bytes);
    }
  }), { numRuns: 50 });
});

test('a truncated record, a trailing byte, an unknown version, tag or flag give MetadataCodecError', () => {
  const rec: MetadataRecord = { type: 'registerBroker', brokerId: 1, epoch: 2, host: 'h', port: 9092, rack: 'r', fenced: true };
  const bytes = encodeRecord(rec);
  for (let i = 0; i < bytes.length; i++) assert.throws(() => decodeRecord(bytes.subarray(0, i)), MetadataCodecError);
  assert.throws(() => decodeRecord(Uint8Array.from([...bytes, 0])), MetadataCodecError);
  assert.throws(() => decodeRecord(Uint8Array.from([2, ...bytes.subarray(1)])), MetadataCodecError);
  assert.throws(() => decodeRecord(Uint8Array.of(1, 99)), MetadataCodecError);
  const badFlags = Uint8Array.from(bytes);
  const flagAt = bytes.length - 3; // u8 flags, then the rack (count 1 + 'r')
  badFlags[flagAt] = 0x80 | 3;
  assert.throws(() => decodeRecord(badFlags), MetadataCodecError);
  // A non-ASCII string neither encodes nor decodes.
  assert.throws(() => encodeRecord({ type: 'deleteTopic', name: 'caf\u00e9' }), MetadataCodecError);
  assert.throws(() => decodeRecord(Uint8Array.of(1, 6, 1, 0xe9)), MetadataCodecError);
});

test('random bytes decode to a record that re-encodes to the same bytes, or fail with MetadataCodecError', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 40 }), fc.integer({ min: 1, max: 8 }), (tail, tag) => {
    const bytes = Uint8Array.from([1, tag, ...tail]);
    let r: MetadataRecord;
    try {
      r = decodeRecord(bytes);
    } catch (e) {
      assert.ok(e instanceof MetadataCodecError, String(e));
      return;
    }
    assert.deepEqual(encodeRecord(r), bytes);
  }), { numRuns: 2000 });
});

test('snapshots round-trip; equal images encode alike; malformed snapshots give MetadataCodecError', () => {
  fc.assert(fc.property(fc.integer(), (seed) => {
    const { sm } = fed(seed, 80);
    const snap = sm.snapshot();
    const s = decodeSnapshot(snap);
    assert.deepEqual(encodeImage(s.image), encodeImage(sm.image));
    assert.deepEqual(encodeSnapshot(s), snap);
    for (let i = 0; i < snap.length; i += 7) assert.throws(() => decodeSnapshot(snap.subarray(0, i)), MetadataCodecError);
    assert.throws(() => decodeSnapshot(Uint8Array.from([...snap, 1])), MetadataCodecError);
  }), { numRuns: 30 });
});

test('random snapshot corruption never gives anything but a valid snapshot or MetadataCodecError', () => {
  const { sm } = fed(7, 120);
  const snap = sm.snapshot();
  fc.assert(fc.property(fc.nat(snap.length - 1), fc.integer({ min: 1, max: 255 }), (at, x) => {
    const bad = Uint8Array.from(snap);
    bad[at] = (bad[at] as number) ^ x;
    try {
      decodeSnapshot(bad);
    } catch (e) {
      assert.ok(e instanceof MetadataCodecError, String(e));
    }
  }), { numRuns: 3000 });
});
