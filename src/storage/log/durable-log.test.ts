// DurableLogStore on real temporary directories: round trips across segment
// rolls, reopening, overlapping appends, truncation and compaction surviving a
// reopen, read budgets, failed fsyncs, and group commit (one fdatasync per sync).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { entryBytes } from '../../protocol/entry.js';
import { FsyncFailedError, StoreClosedError } from '../errors.js';
import { NodeFileSystem } from '../fs.js';
import { DurableLogStore } from './durable-log.js';
import { MemoryLogStore } from './memory-log.js';
import { checkLogDir } from './check.js';
import { entries, entry, FailingFileSystem, withTempDir } from './test-util.js';

const fs = new NodeFileSystem();
const segs = (dir: string) => readdirSync(dir).filter((n) => n.endsWith('.seg')).sort();

test('round trip across segment rolls, and after reopening', () => {
  withTempDir((dir) => {
    const log = DurableLogStore.open(fs, dir, { segmentBytes: 1024 });
    assert.equal(log.firstIndex(), 1);
    assert.equal(log.lastIndex(), 0);
    assert.equal(log.term(0), 0);
    const all = [...entries(1, 50, 1, 40), ...entries(51, 50, 2, 40), entry(101, 3, 0, 'noop')];
    log.append(all.slice(0, 30));
    log.append(all.slice(30, 31));
    log.append(all.slice(31));
    log.sync();
    assert.deepEqual(log.read(1, 102, Infinity), all);
    assert.equal(log.term(50), 1);
    assert.equal(log.term(51), 2);
    assert.equal(log.term(102), undefined);
    log.close();
    assert.ok(segs(dir).length > 3, `rolled into several segments: ${segs(dir).join(', ')}`);
    assert.equal(segs(dir)[0], '00000000000000000001.seg');

    const again = DurableLogStore.open(fs, dir, { segmentBytes: 1024 });
    assert.equal(again.firstIndex(), 1);
    assert.equal(again.lastIndex(), 101);
    assert.deepEqual(again.read(1, 102, Infinity), all);
    again.append(entries(102, 5, 3));
    again.sync();
    again.close();
    const third = DurableLogStore.open(fs, dir, { segmentBytes: 1024 });
    assert.equal(third.lastIndex(), 106);
    assert.deepEqual(third.read(100, 107, Infinity).map((e) => e.index), [100, 101, 102, 103, 104, 105, 106]);
    third.close();
    assert.deepEqual(checkLogDir(fs, dir).problems, []);
  });
});

test('an append that overlaps the log cuts the suffix first', () => {
  withTempDir((dir) => {
    const log = DurableLogStore.open(fs, dir, { segmentBytes: 300 });
    log.append(entries(1, 20, 1));
    log.append(entries(8, 3, 2));
    assert.equal(log.lastIndex(), 10);
    assert.equal(log.term(7), 1);
    assert.equal(log.term(8), 2);
    assert.equal(log.term(11), undefined);
    log.sync();
    log.close();
    const again = DurableLogStore.open(fs, dir, { segmentBytes: 300 });
    assert.deepEqual(again.read(1, 11, Infinity), [...entries(1, 7, 1), ...entries(8, 3, 2)]);
    assert.throws(() => again.append(entries(13, 1, 2)), RangeError, 'a gap is refused');
    assert.throws(() => again.append([entry(11, 1)]), RangeError, 'a lower term is refused');
    again.close();
  });
});

test('truncateSuffix and compactPrefix survive a reopen', () => {
  withTempDir((dir) => {
    const log = DurableLogStore.open(fs, dir, { segmentBytes: 200 });
    log.append(entries(1, 60, 1));
    log.append(entries(61, 40, 2));
    log.sync();
    log.truncateSuffix(80);
    assert.equal(log.lastIndex(), 79);
    log.compactPrefix(30, 1);
    assert.equal(log.firstIndex(), 31);
    assert.equal(log.term(30), 1);
    assert.equal(log.term(29), undefined);
    assert.throws(() => log.read(29, 31, Infinity), RangeError);
    assert.throws(() => log.truncateSuffix(30), RangeError);
    const firstSeg = segs(dir)[0] as string;
    assert.ok(Number(firstSeg.slice(0, 20)) <= 31 && Number(firstSeg.slice(0, 20)) > 1, `old segments removed, first is ${firstSeg}`);
    log.close();
    const again = DurableLogStore.open(fs, dir, { segmentBytes: 200 });
    assert.equal(again.firstIndex(), 31);
    assert.equal(again.lastIndex(), 79);
    assert.equal(again.term(30), 1);
    assert.deepEqual(again.read(31, 80, Infinity), [...entries(31, 30, 1), ...entries(61, 19, 2)]);
    // Compaction past the end drops everything; appends continue after it.
    again.compactPrefix(200, 5);
    assert.equal(again.firstIndex(), 201);
    assert.equal(again.lastIndex(), 200);
    assert.deepEqual(segs(dir), []);
    again.append(entries(201, 3, 5));
    again.sync();
    again.close();
    const third = DurableLogStore.open(fs, dir, { segmentBytes: 200 });
    assert.equal(third.firstIndex(), 201);
    assert.equal(third.lastIndex(), 203);
    assert.equal(third.term(200), 5);
    assert.deepEqual(segs(dir), ['00000000000000000201.seg']);
    third.close();
  });
});

test('compactPrefix onto an entry of another term drops the whole log', () => {
  withTempDir((dir) => {
    const log = DurableLogStore.open(fs, dir, { segmentBytes: 4096 });
    const mem = new MemoryLogStore();
    for (const s of [log, mem]) {
      s.append(entries(1, 10, 1));
      s.compactPrefix(5, 2);
      assert.equal(s.firstIndex(), 6);
      assert.equal(s.lastIndex(), 5);
      assert.equal(s.term(5), 2);
    }
    log.close();
  });
});

test('read() honours the byte budget but returns at least one entry', () => {
  withTempDir((dir) => {
    const log = DurableLogStore.open(fs, dir, { segmentBytes: 500 });
    const es = entries(1, 20, 1, 100);
    log.append(es);
    const per = entryBytes(es[0]!);
    assert.equal(log.read(1, 21, 0).length, 1);
    assert.equal(log.read(1, 21, per).length, 1);
    assert.equal(log.read(1, 21, per * 3 + per - 1).length, 3);
    assert.deepEqual(log.read(3, 21, per * 10), es.slice(2, 12));
    assert.deepEqual(log.read(5, 5, 0), []);
    assert.throws(() => log.read(5, 22, 1000), RangeError);
    const mem = new MemoryLogStore();
    mem.append(es);
    for (const budget of [0, per, per * 5, per * 7 + 3, Infinity]) assert.deepEqual(log.read(2, 19, budget), mem.read(2, 19, budget));
    log.close();
  });
});

test('a failed fdatasync fails the store for good (fsyncgate)', () => {
  withTempDir((dir) => {
    const ffs = new FailingFileSystem();
    const log = DurableLogStore.open(ffs, dir, { segmentBytes: 4096 });
    log.append(entries(1, 3, 1));
    log.sync();
    log.append(entries(4, 3, 1));
    ffs.failFileSync = true;
    assert.throws(() => log.sync(), FsyncFailedError);
    ffs.failFileSync = false;
    assert.throws(() => log.sync(), StoreClosedError, 'not retried');
    assert.throws(() => log.lastIndex(), StoreClosedError);
    assert.throws(() => log.append(entries(7, 1, 1)), StoreClosedError);
    assert.throws(() => log.read(1, 2, 100), StoreClosedError);
    log.close();
    const again = DurableLogStore.open(ffs, dir, { segmentBytes: 4096 });
    assert.ok(again.lastIndex() >= 3, 'what was synced is there');
    again.close();
  });
});

test('a failed directory fsync fails the store too', () => {
  withTempDir((dir) => {
    const ffs = new FailingFileSystem();
    const log = DurableLogStore.open(ffs, dir, { segmentBytes: 4096 });
    log.append(entries(1, 3, 1));
    ffs.failDirSync = true;
    assert.throws(() => log.sync(), FsyncFailedError);
    assert.throws(() => log.term(1), StoreClosedError);
    log.close();
    assert.throws(() => log.firstIndex(), StoreClosedError);
  });
});

// Group commit is a count, not a speed: many appends, one sync, one fdatasync. (How fast that is on a disk is
// `npm run bench:storage`'s question; a time limit here would only measure how busy a shared machine is.)
test('group commit: 1,000 appends of 100 B entries, in one batch or one by one, cost one fdatasync per sync', () => {
  withTempDir((dir) => {
    const ffs = new FailingFileSystem();
    const log = DurableLogStore.open(ffs, dir, { segmentBytes: 64 * 1024 * 1024 });
    const syncs = (): number => ffs.fileSyncs + ffs.dirSyncs;
    const s0 = syncs();
    const t0 = performance.now();
    log.append(entries(1, 1000, 1, 100));
    log.sync();
    const batch = performance.now() - t0;
    const s1 = syncs();
    const t1 = performance.now();
    for (let i = 0; i < 1000; i++) log.append([entry(1001 + i, 1, 100)]);
    log.sync();
    const single = performance.now() - t1;
    const s2 = syncs();
    assert.equal(log.lastIndex(), 2000);
    log.close();
    // The first sync may also fsync the directory once (the new segment's name); the second has one file to flush.
    assert.ok(s1 - s0 >= 1 && s1 - s0 <= 2, `one batch and one sync: ${s1 - s0} fsyncs`);
    assert.equal(s2 - s1, 1, `1,000 appends and one sync: ${s2 - s1} fsyncs`);
    assert.deepEqual(checkLogDir(ffs, dir).problems, []);
    console.log(`# 1,000 x 100 B: one batch + sync ${batch.toFixed(1)} ms; 1,000 appends + sync ${single.toFixed(1)} ms (${s1 - s0} and ${s2 - s1} fsyncs)`);
  });
});
