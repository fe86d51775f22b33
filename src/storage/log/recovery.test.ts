// Recovery at open, and checkLogDir, on damaged log directories: each case
// gets its outcome — the torn tail is cut (entries before it intact), or the
// store refuses to open with a StorageCorruptionError naming file and offset.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { StorageCorruptionError } from '../errors.js';
import { NodeFileSystem } from '../fs.js';
import { DurableLogStore } from './durable-log.js';
import { checkLogDir } from './check.js';
import { encodeMeta, META_FILE, MIN_FRAME_BYTES, SEGMENT_HEADER_BYTES, segmentFileName } from './format.js';
import { entries, withTempDir } from './test-util.js';

const fs = new NodeFileSystem();
const DATA = 16;
const FRAME = MIN_FRAME_BYTES + DATA; // 42 bytes per record
/** Offset of the k-th record (0-based) of a segment. */
const rec = (k: number) => SEGMENT_HEADER_BYTES + k * FRAME;

/** A log of `n` entries (term 1, 16 B of data) with segments of `perSeg` records each. */
function makeLog(dir: string, n: number, perSeg: number): void {
  const log = DurableLogStore.open(fs, dir, { segmentBytes: rec(perSeg) });
  log.append(entries(1, n, 1, DATA));
  log.sync();
  log.close();
}

function segFiles(dir: string): string[] {
  return readdirSync(dir).filter((n) => n.endsWith('.seg')).sort().map((n) => join(dir, n));
}

function flip(file: string, offset: number, mask = 0x10): void {
  const b = readFileSync(file);
  b[offset] = (b[offset] as number) ^ mask;
  writeFileSync(file, b);
}

function snapshotDir(dir: string): Map<string, string> {
  return new Map(readdirSync(dir).sort().map((n) => [n, readFileSync(join(dir, n)).toString('hex')]));
}

function open(dir: string): DurableLogStore {
  return DurableLogStore.open(fs, dir, { segmentBytes: rec(10) });
}

function expectCorruption(dir: string, file: string, offset: number, detail: RegExp): void {
  const before = snapshotDir(dir);
  assert.throws(() => open(dir), (e: unknown) => {
    assert.ok(e instanceof StorageCorruptionError, `expected StorageCorruptionError, got ${String(e)}`);
    assert.equal(e.file, file);
    assert.equal(e.offset, offset);
    assert.match(e.message, detail);
    return true;
  });
  assert.deepEqual(snapshotDir(dir), before, 'a refused open changes nothing');
  const report = checkLogDir(fs, dir);
  assert.ok(report.problems.some((p) => p.file === file && p.offset === offset), `check-data reports it: ${JSON.stringify(report.problems)}`);
  assert.deepEqual(snapshotDir(dir), before, 'check-data changes nothing');
}

/** Opens, expecting success, and checks that entries 1..last are intact. */
function expectIntact(dir: string, last: number): void {
  const log = open(dir);
  try {
    assert.equal(log.firstIndex(), 1);
    assert.equal(log.lastIndex(), last);
    assert.deepEqual(log.read(1, last + 1, Infinity), entries(1, last, 1, DATA));
  } finally {
    log.close();
  }
  assert.deepEqual(checkLogDir(fs, dir).problems, []);
  assert.deepEqual(checkLogDir(fs, dir).repairs, [], 'nothing left to repair after open');
}

test('a file cut mid-record at the end: the tail is cut, earlier entries intact', () => {
  withTempDir((dir) => {
    makeLog(dir, 25, 10);
    const last = segFiles(dir).at(-1) as string; // entries 21..25
    truncateSync(last, rec(4) + 17);
    const report = checkLogDir(fs, dir);
    assert.deepEqual(report.problems, []);
    assert.equal(report.repairs.length, 1);
    assert.equal(report.repairs[0]?.offset, rec(4));
    expectIntact(dir, 24);
    assert.equal(statSync(last).size, rec(4), 'the file ends at the last good record');
    // The log goes on from there.
    const log = open(dir);
    log.append(entries(25, 3, 1, DATA));
    log.sync();
    log.close();
    expectIntact(dir, 27);
  });
});

test('a cut inside a record header (fewer than 8 bytes left) is a torn tail too', () => {
  withTempDir((dir) => {
    makeLog(dir, 5, 10);
    truncateSync(segFiles(dir)[0] as string, rec(4) + 3);
    expectIntact(dir, 4);
  });
});

test('a bit flip in the middle of a segment: StorageCorruptionError naming file and offset', () => {
  withTempDir((dir) => {
    makeLog(dir, 25, 10);
    const last = segFiles(dir).at(-1) as string;
    flip(last, rec(2) + 30); // data of the third record; two valid records follow
    expectCorruption(dir, last, rec(2), /checksum mismatch; a valid record follows/);
  });
  withTempDir((dir) => {
    makeLog(dir, 25, 10);
    const first = segFiles(dir)[0] as string;
    flip(first, rec(5) + 1); // the length field: the framing is lost, later records are found anyway
    expectCorruption(dir, first, rec(5), /record length \d+ runs past the end of the file \(202 bytes left\); a valid record follows at byte 272$/);
  });
});

test('a bit flip in the last record of a segment that is not the last: corruption', () => {
  withTempDir((dir) => {
    makeLog(dir, 25, 10);
    const first = segFiles(dir)[0] as string;
    flip(first, rec(9) + 30);
    expectCorruption(dir, first, rec(9), /not the last/);
  });
});

test('a bit flip in the last record of the last segment: cut, as a torn write (see durable-log.ts)', () => {
  withTempDir((dir) => {
    makeLog(dir, 25, 10);
    const last = segFiles(dir).at(-1) as string;
    flip(last, rec(4) + 30);
    expectIntact(dir, 24);
  });
});

test('a missing segment: corruption naming the segment after the gap', () => {
  withTempDir((dir) => {
    makeLog(dir, 35, 10);
    const files = segFiles(dir);
    rmSync(files[1] as string);
    expectCorruption(dir, files[2] as string, 0, /entries 11\.\.20 are missing/);
  });
  withTempDir((dir) => {
    makeLog(dir, 35, 10);
    const files = segFiles(dir);
    rmSync(files[0] as string);
    expectCorruption(dir, files[1] as string, 0, /entries 1\.\.10 are missing/);
  });
});

test('a zero-filled tail is cut', () => {
  withTempDir((dir) => {
    makeLog(dir, 25, 10);
    const last = segFiles(dir).at(-1) as string;
    appendFileSync(last, Buffer.alloc(4096));
    const report = checkLogDir(fs, dir);
    assert.deepEqual(report.problems, []);
    assert.match(report.repairs[0]?.detail ?? '', /zero-filled tail \(4096 bytes\)/);
    expectIntact(dir, 25);
  });
  withTempDir((dir) => {
    // Zeros over the last two records and beyond (the size was updated, the blocks never written).
    makeLog(dir, 25, 10);
    const last = segFiles(dir).at(-1) as string;
    const b = readFileSync(last);
    b.fill(0, rec(3));
    writeFileSync(last, Buffer.concat([b, Buffer.alloc(1000)]));
    expectIntact(dir, 23);
  });
});

test('zeros in the middle, followed by valid records: corruption', () => {
  withTempDir((dir) => {
    makeLog(dir, 8, 10);
    const file = segFiles(dir)[0] as string;
    const b = readFileSync(file);
    b.fill(0, rec(2), rec(4));
    writeFileSync(file, b);
    expectCorruption(dir, file, rec(2), /a valid record follows/);
  });
});

test('a bad segment header: corruption at offset 0', () => {
  withTempDir((dir) => {
    makeLog(dir, 25, 10);
    const first = segFiles(dir)[0] as string;
    flip(first, 1);
    expectCorruption(dir, first, 0, /bad segment magic/);
  });
  withTempDir((dir) => {
    makeLog(dir, 25, 10);
    const last = segFiles(dir).at(-1) as string;
    flip(last, 9); // the first-index field of the last segment's header
    expectCorruption(dir, last, 0, /segment header checksum mismatch/);
  });
  withTempDir((dir) => {
    // A header that names another first index than the file name.
    makeLog(dir, 25, 10);
    const files = segFiles(dir);
    writeFileSync(files[1] as string, Buffer.concat([readFileSync(files[0] as string).subarray(0, SEGMENT_HEADER_BYTES), readFileSync(files[1] as string).subarray(SEGMENT_HEADER_BYTES)]));
    expectCorruption(dir, files[1] as string, 0, /does not match the file name/);
  });
});

test('a last segment whose creation a crash cut short is removed', () => {
  for (const size of [0, 7, SEGMENT_HEADER_BYTES, 200]) {
    withTempDir((dir) => {
      makeLog(dir, 10, 10);
      writeFileSync(join(dir, segmentFileName(11)), Buffer.alloc(size));
      expectIntact(dir, 10);
      assert.equal(segFiles(dir).length, 1);
    });
  }
});

test('damage in log.meta: corruption', () => {
  withTempDir((dir) => {
    const log = open(dir);
    log.append(entries(1, 30, 1, DATA));
    log.compactPrefix(12, 1);
    log.close();
    flip(join(dir, META_FILE), 10);
    expectCorruption(dir, join(dir, META_FILE), 0, /log\.meta checksum mismatch/);
  });
});

test('an interrupted compaction is finished at open', () => {
  withTempDir((dir) => {
    makeLog(dir, 35, 10);
    // log.meta says 25 was compacted, but the segments below were never removed.
    writeFileSync(join(dir, META_FILE), encodeMeta(25, 1));
    writeFileSync(join(dir, 'log.meta.tmp'), Buffer.alloc(3));
    const report = checkLogDir(fs, dir);
    assert.deepEqual(report.problems, []);
    assert.equal(report.repairs.length, 3, JSON.stringify(report.repairs));
    assert.equal(report.firstIndex, 26);
    assert.equal(report.lastIndex, 35);
    const log = open(dir);
    assert.equal(log.firstIndex(), 26);
    assert.equal(log.term(25), 1);
    assert.deepEqual(log.read(26, 36, Infinity), entries(26, 10, 1, DATA));
    log.close();
    assert.deepEqual(segFiles(dir).map((f) => f.slice(-24)), [segmentFileName(21), segmentFileName(31)]);
    assert.deepEqual(readdirSync(dir).filter((n) => n.includes('tmp')), []);
  });
});

test('checkLogDir reports every problem, and counts entries', () => {
  withTempDir((dir) => {
    makeLog(dir, 45, 10);
    const files = segFiles(dir);
    const clean = checkLogDir(fs, dir);
    assert.deepEqual(clean, { problems: [], repairs: [], entries: 45, firstIndex: 1, lastIndex: 45 });
    flip(files[0] as string, rec(3) + 30);
    flip(files[0] as string, rec(6) + 30);
    flip(files[2] as string, 2);
    rmSync(files[3] as string);
    const report = checkLogDir(fs, dir);
    const where = report.problems.map((p) => `${p.file.slice(-24)}@${p.offset}`);
    assert.deepEqual(where, [
      `${segmentFileName(1)}@${rec(3)}`,
      `${segmentFileName(1)}@${rec(6)}`,
      `${segmentFileName(21)}@0`,
      `${segmentFileName(41)}@0`,
    ]);
    assert.match(report.problems[3]?.detail ?? '', /missing/);
    assert.deepEqual(checkLogDir(fs, join(dir, 'nope')).problems.length, 1);
  });
});
