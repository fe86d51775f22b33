// Tests for the snapshot stores: streamed write and chunked read round trips,
// nothing visible before commit, leftover temporary files, latest() and
// removeOlder(), corruption (bit flips, truncation) named by file and offset,
// resumable receive across a simulated restart, and failed fsyncs.
// Durable tests run on real temporary directories through NodeFileSystem.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32c } from '@node-rs/crc32';
import type { SnapshotMeta } from '../../protocol/entry.js';
import { FsyncFailedError, StorageCorruptionError, StoreClosedError } from '../errors.js';
import { NodeFileSystem } from '../fs.js';
import type { SnapshotStore } from '../types.js';
import { FailingSyncFileSystem } from '../state/failing-sync-fs.js';
import { DurableSnapshotStore } from './durable-snapshot-store.js';
import { SNAPSHOT_HEADER_BYTES, snapshotFileName } from './format.js';
import { MemorySnapshotStore } from './memory-snapshot-store.js';
import { SnapshotTransferMismatchError, type ReceivingSnapshotStore } from './receiver.js';

const fsys = new NodeFileSystem();

function withTempDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'quorumlog-snap-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Deterministic bytes: `n` bytes seeded by `seed`. */
function bytes(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

function concat(parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

function writeSnapshot(store: SnapshotStore, meta: SnapshotMeta, chunks: Uint8Array[]) {
  const w = store.beginWrite(meta);
  for (const c of chunks) w.write(c);
  return w.commit();
}

function readAll(store: SnapshotStore, meta: SnapshotMeta, chunkBytes: number): Uint8Array {
  const r = store.open(meta);
  assert.ok(r !== undefined);
  const parts: Uint8Array[] = [];
  for (let pos = 0; pos < r.info.sizeBytes;) {
    const c = r.read(pos, chunkBytes);
    assert.ok(c.byteLength > 0 && c.byteLength <= chunkBytes);
    parts.push(c);
    pos += c.byteLength;
  }
  assert.equal(r.read(r.info.sizeBytes, chunkBytes).byteLength, 0);
  assert.throws(() => r.read(r.info.sizeBytes + 1, 1), RangeError);
  r.close();
  return concat(parts);
}

const m5: SnapshotMeta = { index: 5, term: 2 };
const m9: SnapshotMeta = { index: 9, term: 3 };
const m12: SnapshotMeta = { index: 12, term: 3 };

function commonBehaviour(name: string, make: (dir: string) => ReceivingSnapshotStore): void {
  test(`${name}: streamed write, chunked reads from any position, latest and removeOlder`, () => {
    withTempDir((dir) => {
      const store = make(dir);
      assert.equal(store.latest(), null);
      assert.equal(store.open(m5), undefined);
      const chunks = [bytes(1000, 1), bytes(1, 2), bytes(0, 3), bytes(4096, 4)];
      const body = concat(chunks);
      const w = store.beginWrite(m5);
      for (const c of chunks) w.write(c);
      assert.equal(store.latest(), null, 'nothing visible before commit');
      const info = w.commit();
      assert.deepEqual(info, { index: 5, term: 2, sizeBytes: body.byteLength, checksum: crc32c(body) >>> 0 });
      assert.deepEqual(store.latest(), info);
      assert.deepEqual(readAll(store, m5, 7), body);
      assert.deepEqual(readAll(store, m5, 1 << 20), body);
      const r = store.open(m5);
      assert.ok(r !== undefined);
      assert.deepEqual(new Uint8Array(r.read(999, 3)), body.subarray(999, 1002));
      r.close();

      // An aborted write leaves no trace; an older snapshot does not become latest.
      const a = store.beginWrite(m12);
      a.write(bytes(10, 5));
      a.abort();
      assert.equal(store.open(m12), undefined);
      const info9 = writeSnapshot(store, m9, [bytes(300, 6)]);
      assert.deepEqual(store.latest(), info9);
      writeSnapshot(store, { index: 7, term: 2 }, [bytes(5, 7)]);
      assert.deepEqual(store.latest(), info9);
      store.removeOlder();
      assert.equal(store.open(m5), undefined);
      assert.equal(store.open({ index: 7, term: 2 }), undefined);
      assert.deepEqual(readAll(store, m9, 64), bytes(300, 6));
    });
  });

  test(`${name}: receive chunks at offsets (duplicates and gaps), commit checks the leader's size and CRC`, () => {
    withTempDir((dir) => {
      const leader = new MemorySnapshotStore();
      const body = bytes(10_000, 9);
      const info = writeSnapshot(leader, m9, [body]);
      const store = make(dir);
      const rx = store.beginReceive(m9);
      assert.equal(rx.receivedBytes, 0);
      assert.equal(rx.write(0, body.subarray(0, 4000)), 4000);
      assert.equal(rx.write(6000, body.subarray(6000, 7000)), 4000, 'a gap is ignored');
      assert.equal(rx.write(1000, body.subarray(1000, 3000)), 4000, 'bytes already held are skipped');
      assert.equal(rx.write(3000, body.subarray(3000, 8000)), 8000, 'an overlapping chunk adds its new part');
      assert.equal(rx.write(8000, body.subarray(8000)), 10_000);
      assert.equal(store.latest(), null);
      assert.deepEqual(rx.commit(info), info);
      assert.deepEqual(store.latest(), info);
      assert.deepEqual(readAll(store, m9, 999), body);

      const rx2 = store.beginReceive(m12);
      rx2.write(0, bytes(100, 10));
      assert.throws(() => rx2.commit({ sizeBytes: 100, checksum: 12345 }), SnapshotTransferMismatchError);
      assert.deepEqual(store.latest(), info);
      assert.equal(store.beginReceive(m12).receivedBytes, 0, 'a mismatched transfer starts over');
    });
  });
}

commonBehaviour('memory snapshot store', () => new MemorySnapshotStore());
commonBehaviour('durable snapshot store', (dir) => new DurableSnapshotStore(fsys, dir));

test('durable snapshot store: committed snapshots survive reopening; older files, tmp files', () => {
  withTempDir((dir) => {
    const s = new DurableSnapshotStore(fsys, dir);
    const info5 = writeSnapshot(s, m5, [bytes(500, 1), bytes(500, 2)]);
    const info9 = writeSnapshot(s, m9, [bytes(700, 3)]);
    assert.deepEqual(readdirSync(dir).sort(), [snapshotFileName(m5), snapshotFileName(m9)]);
    const s2 = new DurableSnapshotStore(fsys, dir);
    assert.deepEqual(s2.latest(), info9);
    assert.deepEqual(s2.open(m5)?.info, info5);
    assert.deepEqual(readAll(s2, m9, 100), bytes(700, 3));
    // A crash while the state machine wrote a newer snapshot: only a .tmp file.
    const w = s2.beginWrite(m12);
    w.write(bytes(100, 4));
    // (never committed; the process "dies")
    assert.ok(readdirSync(dir).some((n) => n.endsWith('.snap.tmp')));
    const s3 = new DurableSnapshotStore(fsys, dir);
    assert.deepEqual(s3.latest(), info9);
    assert.equal(readdirSync(dir).some((n) => n.endsWith('.tmp')), false, 'leftover temporary file removed at open');
    s3.removeOlder();
    assert.deepEqual(readdirSync(dir), [snapshotFileName(m9)]);
    assert.deepEqual(new DurableSnapshotStore(fsys, dir).latest(), info9);
  });
});

function expectCorruption(dir: string, meta: SnapshotMeta, offset: number, why: RegExp): void {
  assert.throws(() => new DurableSnapshotStore(fsys, dir), (e: unknown) => {
    assert.ok(e instanceof StorageCorruptionError, `expected StorageCorruptionError, got ${String(e)}`);
    assert.equal(e.file, join(dir, snapshotFileName(meta)));
    assert.equal(e.offset, offset);
    assert.match(e.message, why);
    assert.ok(e.message.includes(snapshotFileName(meta)), 'the message names the file');
    return true;
  });
}

test('durable snapshot store: a corrupted latest snapshot is refused with its file and offset', () => {
  withTempDir((dir) => {
    const s = new DurableSnapshotStore(fsys, dir, { verifyChunkBytes: 4096 });
    writeSnapshot(s, m5, [bytes(1000, 1)]);
    writeSnapshot(s, m9, [bytes(50_000, 2), bytes(50_000, 3)]);
    const file = join(dir, snapshotFileName(m9));
    const good = readFileSync(file);

    // A bit flip in the middle of the body.
    const flipped = Buffer.from(good);
    flipped[60_000] = (flipped[60_000] ?? 0) ^ 0x10;
    writeFileSync(file, flipped);
    expectCorruption(dir, m9, SNAPSHOT_HEADER_BYTES, /body checksum mismatch/);

    // A bit flip in the last byte.
    const last = Buffer.from(good);
    last[last.length - 1] = (last[last.length - 1] ?? 0) ^ 0x01;
    writeFileSync(file, last);
    expectCorruption(dir, m9, SNAPSHOT_HEADER_BYTES, /body checksum mismatch/);

    // A bit flip in the header (the size field).
    const head = Buffer.from(good);
    head[25] = (head[25] ?? 0) ^ 0x04;
    writeFileSync(file, head);
    expectCorruption(dir, m9, 36, /header checksum/);

    // Truncated in the body, and inside the header.
    writeFileSync(file, good.subarray(0, 70_000));
    expectCorruption(dir, m9, 70_000, /truncated/);
    writeFileSync(file, good.subarray(0, 20));
    expectCorruption(dir, m9, 20, /shorter/);

    // Zero-filled (as ext4 can leave it), and trailing garbage.
    writeFileSync(file, Buffer.alloc(good.length));
    expectCorruption(dir, m9, 0, /magic/);
    writeFileSync(file, Buffer.concat([good, Buffer.of(1, 2, 3)]));
    expectCorruption(dir, m9, good.length, /after the end/);

    // A header that belongs to another snapshot (a renamed file).
    writeFileSync(file, good);
    const other = join(dir, snapshotFileName(m12));
    writeFileSync(other, good);
    expectCorruption(dir, m12, 8, /file name says/);
    rmSync(other);

    // Restored: opens again.
    assert.deepEqual(new DurableSnapshotStore(fsys, dir).latest()?.index, 9);
  });
});

test('durable snapshot store: a receive resumes after a restart at its last checkpoint', () => {
  withTempDir((dir) => {
    const leader = new DurableSnapshotStore(fsys, join(dir, 'leader'));
    const body = bytes(300_000, 42);
    const info = writeSnapshot(leader, m12, [body.subarray(0, 123_456), body.subarray(123_456)]);
    const src = leader.open(m12);
    assert.ok(src !== undefined);
    const fdir = join(dir, 'follower');

    // First run: 100 KiB, checkpointed automatically every 64 KiB, then 36 KiB more, then a crash.
    const f1 = new DurableSnapshotStore(fsys, fdir, { receiveCheckpointBytes: 64 * 1024 });
    const stale = f1.beginReceive(m9);
    stale.write(0, bytes(10, 1));
    stale.checkpoint();
    const rx1 = f1.beginReceive(m12); // supersedes the transfer of m9
    assert.throws(() => stale.write(10, bytes(10, 2)), StoreClosedError);
    for (let pos = 0; pos < 100 * 1024; pos += 10 * 1024) rx1.write(pos, src.read(pos, 10 * 1024));
    assert.equal(rx1.receivedBytes, 100 * 1024);
    // "Crash": no close(), plus a torn tail written after the checkpoint.
    const recv = readdirSync(fdir).filter((n) => n.endsWith('.recv'));
    assert.deepEqual(recv, [snapshotFileName(m12) + '.recv'], 'only the current transfer is kept');
    appendFileSync(join(fdir, recv[0] as string), Buffer.alloc(5000, 0));

    // Second run: resumes at the last checkpoint (64 KiB: after the 7th 10 KiB chunk, 70 KiB).
    const f2 = new DurableSnapshotStore(fsys, fdir, { receiveCheckpointBytes: 64 * 1024 });
    assert.equal(f2.latest(), null);
    const rx2 = f2.beginReceive(m12);
    assert.equal(rx2.receivedBytes, 70 * 1024);
    let held = 0;
    for (let pos = rx2.receivedBytes; pos < 200_000; pos += 7000) held = rx2.write(pos, src.read(pos, 7000));
    assert.equal(held, 71_680 + 19 * 7000);
    rx2.close(); // a clean stop checkpoints

    // Third run: resumes exactly where the clean stop left it, finishes, commits.
    const f3 = new DurableSnapshotStore(fsys, fdir);
    const rx3 = f3.beginReceive(m12);
    assert.equal(rx3.receivedBytes, 71_680 + 19 * 7000);
    while (rx3.receivedBytes < info.sizeBytes) rx3.write(rx3.receivedBytes, src.read(rx3.receivedBytes, 64 * 1024));
    assert.deepEqual(rx3.commit(info), info);
    src.close();
    assert.deepEqual(readdirSync(fdir), [snapshotFileName(m12)]);
    const f4 = new DurableSnapshotStore(fsys, fdir);
    assert.deepEqual(f4.latest(), info);
    assert.deepEqual(readAll(f4, m12, 50_000), body);
  });
});

test('durable snapshot store: a corrupted partial receive starts over at byte 0', () => {
  withTempDir((dir) => {
    const s = new DurableSnapshotStore(fsys, dir);
    const rx = s.beginReceive(m9);
    rx.write(0, bytes(5000, 1));
    rx.close();
    const file = join(dir, snapshotFileName(m9) + '.recv');
    const buf = readFileSync(file);
    buf[SNAPSHOT_HEADER_BYTES + 100] = (buf[SNAPSHOT_HEADER_BYTES + 100] ?? 0) ^ 1;
    writeFileSync(file, buf);
    const rx2 = new DurableSnapshotStore(fsys, dir).beginReceive(m9);
    assert.equal(rx2.receivedBytes, 0);
    rx2.abort();
    assert.equal(existsSync(file), false);
  });
});

test('durable snapshot store: a failed fsync throws FsyncFailedError and the store refuses further use', () => {
  withTempDir((dir) => {
    const ffs = new FailingSyncFileSystem(fsys);
    const s = new DurableSnapshotStore(ffs, dir);
    const info5 = writeSnapshot(s, m5, [bytes(100, 1)]);
    ffs.failFileSync = true;
    const w = s.beginWrite(m9);
    w.write(bytes(100, 2));
    assert.throws(() => w.commit(), (e: unknown) => e instanceof FsyncFailedError && e.cause instanceof Error);
    ffs.failFileSync = false;
    assert.throws(() => s.latest(), StoreClosedError);
    assert.throws(() => s.beginWrite(m12), StoreClosedError);
    assert.throws(() => s.beginReceive(m12), StoreClosedError);
    // A restart finds the last durable snapshot; the unfinished file is gone.
    assert.deepEqual(new DurableSnapshotStore(fsys, dir).latest(), info5);

    const ffs2 = new FailingSyncFileSystem(fsys);
    const s2 = new DurableSnapshotStore(ffs2, dir);
    ffs2.failDirSync = true;
    assert.throws(() => writeSnapshot(s2, m9, [bytes(10, 3)]), (e: unknown) => e instanceof FsyncFailedError && e.file === dir);
    assert.throws(() => s2.removeOlder(), StoreClosedError);

    const ffs3 = new FailingSyncFileSystem(fsys);
    const rx = new DurableSnapshotStore(ffs3, join(dir, 'rx')).beginReceive(m12);
    rx.write(0, bytes(10, 4));
    ffs3.failFileSync = true;
    assert.throws(() => rx.checkpoint(), FsyncFailedError);
    assert.throws(() => rx.write(10, bytes(10, 5)), StoreClosedError);
  });
});
