// Golden bytes of the log format (a change here is a format change: bump
// FORMAT_VERSION and keep reading the old one), and decode round trips.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32c } from '@node-rs/crc32';
import { nodeId } from '../../protocol/ids.js';
import {
  decodeMeta, decodeRecordAt, decodeSegmentHeader, encodeEntryRecord, encodeMeta, encodeSegmentHeader,
  parseSegmentFileName, recordBytes, recordToEntry, scanSegment, segmentFileName,
} from './format.js';

test('CRC32C is the Castagnoli polynomial (check value of "123456789")', () => {
  assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
});

test('segment names are the first index, zero-padded to 20 digits', () => {
  assert.equal(segmentFileName(1), '00000000000000000001.seg');
  assert.equal(parseSegmentFileName('00000000000000012345.seg'), 12345);
  assert.equal(parseSegmentFileName('12345.seg'), undefined);
  assert.equal(parseSegmentFileName('log.meta'), undefined);
});

test('golden bytes: segment header, entry records, log.meta', () => {
  assert.equal(encodeSegmentHeader(1).toString('hex'), '514c53470100000001000000000000008ae2e0c5');
  const e = { index: 1, term: 2, type: 'data' as const, data: new Uint8Array(Buffer.from('abc')) };
  const b = Buffer.alloc(recordBytes(e));
  assert.equal(encodeEntryRecord(b, 0, e), b.length);
  assert.equal(b.toString('hex'), '150000006cdedfc0010100000000000000020000000000000000616263');
  const n = { index: 2 ** 40 + 5, term: 7, type: 'noop' as const, data: new Uint8Array(0) };
  const b2 = Buffer.alloc(recordBytes(n));
  encodeEntryRecord(b2, 0, n);
  assert.equal(b2.toString('hex'), '12000000f48dade7010500000000010000070000000000000001');
  assert.equal(encodeMeta(300, 4).toString('hex'), '514c4d54010000002c0100000000000004000000000000003eaadef9');
});

test('decode round trips', () => {
  assert.deepEqual(decodeSegmentHeader(encodeSegmentHeader(2 ** 50)), { ok: true, firstIndex: 2 ** 50 });
  assert.deepEqual(decodeMeta(encodeMeta(9, 3)), { ok: true, index: 9, term: 3 });
  const e = { index: 77, term: 5, type: 'data' as const, data: new Uint8Array([1, 2, 3, 4]) };
  const b = Buffer.alloc(recordBytes(e) + 5);
  encodeEntryRecord(b, 5, e);
  const r = decodeRecordAt(b, 5, b.length);
  assert.ok(r.ok);
  assert.deepEqual(recordToEntry(b, r), e);
  b[12] = (b[12] as number) ^ 1;
  assert.deepEqual(decodeRecordAt(b, 5, b.length).ok, false);
});

test('scanSegment: torn tail versus damage followed by a valid record', () => {
  const entries = [1, 2, 3].map((i) => ({ index: i, term: 1, type: 'data' as const, data: new Uint8Array(10) }));
  const size = recordBytes(entries[0]!);
  const seg = Buffer.alloc(20 + 3 * size);
  encodeSegmentHeader(1).copy(seg);
  let p = 20;
  for (const e of entries) p = encodeEntryRecord(seg, p, e);
  assert.deepEqual(scanSegment(seg, 1).damages, []);
  assert.equal(scanSegment(seg, 1).lastRecordIndex, 3);
  const torn = scanSegment(seg.subarray(0, seg.length - 3), 1);
  assert.deepEqual(torn.damages.map((d) => [d.offset, d.tornTail]), [[20 + 2 * size, true]]);
  assert.equal(torn.goodEnd, 20 + 2 * size);
  const mid = Buffer.from(seg);
  mid[20 + size + 30] = (mid[20 + size + 30] as number) ^ 4;
  const s = scanSegment(mid, 1);
  assert.deepEqual(s.damages.map((d) => [d.offset, d.tornTail]), [[20 + size, false]]);
  assert.equal(s.lastRecordIndex, 3);
  assert.equal(scanSegment(seg, 2).firstIndex, undefined, 'header and name must agree');
});

test('a config entry is written as entry type 2 with its configuration as the payload, and read back checked', () => {
  const e = { index: 3, term: 2, type: 'config' as const, config: { voters: [nodeId('a'), nodeId('b')], observers: [nodeId('c')] }, data: new Uint8Array(0) };
  const b = Buffer.alloc(recordBytes(e));
  assert.equal(encodeEntryRecord(b, 0, e), b.length);
  assert.equal(b[25], 2, 'entry type byte');
  assert.equal(b.subarray(26).toString('hex'), '01020161016201016' + '3', 'version 1, two voters a b, one observer c');
  const r = decodeRecordAt(b, 0, b.length);
  assert.ok(r.ok);
  assert.deepEqual(recordToEntry(b, r), e);
  // A checksummed record whose configuration does not decode is intact but malformed, never an entry.
  const bad = Buffer.from(b);
  bad[27] = 0; // no voters
  bad.writeUInt32LE(crc32c(bad.subarray(8)), 4);
  const rb = decodeRecordAt(bad, 0, bad.length);
  assert.equal(rb.ok, false);
  assert.equal(!rb.ok && rb.checksumOk, true);
});
