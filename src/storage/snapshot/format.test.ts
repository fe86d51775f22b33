// Tests for the snapshot file format helpers: golden header bytes (so the
// format cannot change by accident), header decode errors, and file names.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32c } from '@node-rs/crc32';
import {
  decodeSnapshotHeader, encodeSnapshotHeader, isHeaderError, parseSnapshotFileName, RECEIVE_MAGIC, SNAPSHOT_MAGIC,
  snapshotFileName,
} from './format.js';

test('CRC32C is the Castagnoli CRC (check value of "123456789")', () => {
  assert.equal(crc32c(Buffer.from('123456789')) >>> 0, 0xe3069283);
});

test('snapshot header format is stable (golden bytes) and round-trips', () => {
  const h = { magic: SNAPSHOT_MAGIC, index: 5, term: 2, sizeBytes: 3, checksum: 0xdeadbeef };
  const bytes = encodeSnapshotHeader(h);
  assert.equal(Buffer.from(bytes).toString('hex'),
    '514c534e01000000050000000000000002000000000000000300000000000000efbeaddeeb2d00a5');
  assert.equal(Buffer.from(bytes.subarray(0, 4)).toString(), 'QLSN');
  assert.deepEqual(decodeSnapshotHeader(bytes, SNAPSHOT_MAGIC), h);
  const asReceive = decodeSnapshotHeader(bytes, RECEIVE_MAGIC);
  assert.ok(isHeaderError(asReceive) && asReceive.offset === 0);
  const flipped = bytes.slice();
  flipped[20] = (flipped[20] ?? 0) ^ 1;
  const bad = decodeSnapshotHeader(flipped, SNAPSHOT_MAGIC);
  assert.ok(isHeaderError(bad) && bad.offset === 36);
  const short = decodeSnapshotHeader(bytes.subarray(0, 39), SNAPSHOT_MAGIC);
  assert.ok(isHeaderError(short) && short.offset === 39);
});

test('snapshot file names sort by index and parse back', () => {
  assert.equal(snapshotFileName({ index: 12, term: 3 }), '00000000000000000012-00000000000000000003.snap');
  assert.deepEqual(parseSnapshotFileName('00000000000000000012-00000000000000000003.snap'), { index: 12, term: 3 });
  assert.equal(parseSnapshotFileName('00000000000000000012-00000000000000000003.snap.tmp'), undefined);
  assert.equal(parseSnapshotFileName('00000000000000000012-00000000000000000003.snap.recv'), undefined);
  assert.equal(parseSnapshotFileName('12-3.snap'), undefined);
  assert.equal(parseSnapshotFileName('99999999999999999999-00000000000000000003.snap'), undefined, 'beyond a safe integer');
});
