// Tests of the key-range helpers: etcd's range meanings over latin1 ids, and
// SortedIndex (chunked sorted array) against a plain sorted array.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { idOf, keySpan, SortedIndex, spanContains } from './key-range.js';

const b = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'));

test('keySpan: single key, [key, rangeEnd), >= key, all keys; byte order', () => {
  assert.equal(idOf(new Uint8Array([0xff, 0x00, 0x41])), '\xff\0A');
  const single = keySpan(b('foo'), b(''));
  assert.ok(spanContains(single, 'foo'));
  assert.ok(!spanContains(single, 'foo\0'));
  assert.ok(!spanContains(single, 'fo'));
  const half = keySpan(b('a'), b('c'));
  assert.deepEqual(['a', 'b', 'bzz', 'c', '\xff'].map((k) => spanContains(half, k)), [true, true, true, false, false]);
  const gte = keySpan(b('b'), b('\0'));
  assert.deepEqual(['a', 'b', '\xff\xff'].map((k) => spanContains(gte, k)), [false, true, true]);
  const all = keySpan(b('\0'), b('\0'));
  assert.ok(['\0', '\0\0', 'a', '\xff'].every((k) => spanContains(all, k)));
  assert.deepEqual([idOf(b('\x80')), idOf(b('\x7f')), idOf(b('\xff'))].sort(), ['\x7f', '\x80', '\xff'], 'latin1 ids sort as bytes');
});

test('property: SortedIndex agrees with a sorted array on inserts, spans and retain', () => {
  const idArb = fc.oneof(fc.string({ unit: fc.constantFrom('a', 'b', '\0', '\xff'), maxLength: 6 }), fc.integer({ min: 0, max: 1e6 }).map((n) => n.toString(36)));
  // Up to 3000 ids so that chunks (512 items) split several times.
  fc.assert(fc.property(fc.uniqueArray(idArb, { maxLength: 3000, size: 'max' }), idArb, idArb, (ids, lo, hi) => {
    const index = new SortedIndex<{ id: string }>();
    for (const id of ids) index.insert({ id });
    assert.equal(index.check(), null);
    const sorted = [...ids].sort();
    assert.deepEqual([...index].map((x) => x.id), sorted);
    for (const span of [{ lo, hi }, { lo, hi: null }, { lo: hi, hi: lo }]) {
      assert.deepEqual([...index.within(span)].map((x) => x.id), sorted.filter((id) => spanContains(span, id)));
    }
    index.retain((x) => x.id.length % 2 === 0);
    assert.equal(index.check(), null);
    assert.deepEqual([...index].map((x) => x.id), sorted.filter((id) => id.length % 2 === 0));
    index.insert({ id: 'a\0\0\0\0\0\0\0' });
    assert.equal(index.check(), null);
  }), { numRuns: 40 });
});

test('SortedIndex: many inserts in scrambled order split chunks and stay sorted', () => {
  const index = new SortedIndex<{ id: string }>();
  const n = 20 * SortedIndex.CHUNK_MAX_ITEMS;
  for (let i = 0; i < n; i++) index.insert({ id: ((Math.imul(i, 2654435761) >>> 0) + 1e10).toString(16) });
  assert.equal(index.size, n);
  assert.equal(index.check(), null);
  const ids = [...index].map((x) => x.id);
  assert.deepEqual(ids, [...ids].sort());
  assert.equal(new SortedIndex(ids.map((id) => ({ id }))).check(), null);
});
