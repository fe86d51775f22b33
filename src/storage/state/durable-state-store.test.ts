// Tests for the state stores (term, vote, commit): round trips, atomic
// replacement across simulated crashes, corruption detection, and the
// fsyncgate rule (a failed fsync makes the store refuse further use).
// Durable tests run on real temporary directories through NodeFileSystem.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HardState } from '../../protocol/entry.js';
import { nodeId } from '../../protocol/ids.js';
import { FsyncFailedError, StorageCorruptionError, StoreClosedError } from '../errors.js';
import { NodeFileSystem } from '../fs.js';
import { DurableStateStore, STATE_FILE_NAME, STATE_TMP_FILE_NAME } from './durable-state-store.js';
import { encodeHardState } from './format.js';
import { FailingSyncFileSystem } from './failing-sync-fs.js';
import { MemoryStateStore } from './memory-state-store.js';

function withTempDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'quorumlog-state-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const fsys = new NodeFileSystem();
const s1: HardState = { term: 7, vote: nodeId('node-b'), commit: 42 };
const s2: HardState = { term: 8, vote: null, commit: 43 };

test('memory state store: initial state, round trip, copies', () => {
  const m = new MemoryStateStore();
  assert.deepEqual(m.load(), { term: 0, vote: null, commit: 0 });
  m.save(s1);
  assert.deepEqual(m.load(), s1);
  assert.throws(() => m.save({ term: -1, vote: null, commit: 0 }), RangeError);
  assert.deepEqual(m.load(), s1);
});

test('durable state store: fresh dir loads the initial state', () => {
  withTempDir((dir) => {
    const st = new DurableStateStore(fsys, join(dir, 'sub'));
    assert.deepEqual(st.load(), { term: 0, vote: null, commit: 0 });
  });
});

test('durable state store: round trip survives reopening, vote null and unicode ids', () => {
  withTempDir((dir) => {
    new DurableStateStore(fsys, dir).save(s1);
    assert.deepEqual(new DurableStateStore(fsys, dir).load(), s1);
    const st = new DurableStateStore(fsys, dir);
    st.save(s2);
    assert.deepEqual(new DurableStateStore(fsys, dir).load(), s2);
    const big: HardState = { term: Number.MAX_SAFE_INTEGER, vote: nodeId('nœud-ü-東京'), commit: 2 ** 40 };
    st.save(big);
    assert.deepEqual(new DurableStateStore(fsys, dir).load(), big);
    assert.equal(existsSync(join(dir, STATE_TMP_FILE_NAME)), false);
  });
});

test('durable state store: rejects invalid states without touching the file', () => {
  withTempDir((dir) => {
    const st = new DurableStateStore(fsys, dir);
    st.save(s1);
    assert.throws(() => st.save({ term: 1.5, vote: null, commit: 0 }), RangeError);
    assert.throws(() => st.save({ term: 1, vote: nodeId(''), commit: 0 }), RangeError);
    assert.deepEqual(st.load(), s1);
  });
});

test('durable state store: a leftover or torn temporary file does not affect load', () => {
  withTempDir((dir) => {
    const st = new DurableStateStore(fsys, dir);
    st.save(s1);
    // A crash after writing part of the next state into the temporary file.
    writeFileSync(join(dir, STATE_TMP_FILE_NAME), encodeHardState(s2).subarray(0, 11));
    const reopened = new DurableStateStore(fsys, dir);
    assert.deepEqual(reopened.load(), s1);
    assert.equal(existsSync(join(dir, STATE_TMP_FILE_NAME)), false, 'leftover temporary file removed');
    // A complete but never renamed temporary file is not the state either.
    writeFileSync(join(dir, STATE_TMP_FILE_NAME), encodeHardState(s2));
    assert.deepEqual(new DurableStateStore(fsys, dir).load(), s1);
    // And with no state file at all, a leftover tmp still means "fresh".
    withTempDir((dir2) => {
      writeFileSync(join(dir2, STATE_TMP_FILE_NAME), encodeHardState(s2));
      assert.deepEqual(new DurableStateStore(fsys, dir2).load(), { term: 0, vote: null, commit: 0 });
    });
    // Saving over a leftover tmp works.
    writeFileSync(join(dir, STATE_TMP_FILE_NAME), Buffer.alloc(100, 0xab));
    reopened.save(s2);
    assert.deepEqual(new DurableStateStore(fsys, dir).load(), s2);
  });
});

function expectCorruption(dir: string, offset: number | undefined, why: RegExp): void {
  assert.throws(() => new DurableStateStore(fsys, dir).load(), (e: unknown) => {
    assert.ok(e instanceof StorageCorruptionError, `expected StorageCorruptionError, got ${String(e)}`);
    assert.equal(e.file, join(dir, STATE_FILE_NAME));
    if (offset !== undefined) assert.equal(e.offset, offset);
    assert.match(e.message, why);
    return true;
  });
}

test('durable state store: corrupted state files are refused, never read as term 0', () => {
  withTempDir((dir) => {
    new DurableStateStore(fsys, dir).save(s1);
    const file = join(dir, STATE_FILE_NAME);
    const good = readFileSync(file);

    // A bit flip in the term.
    const flipped = Buffer.from(good);
    flipped[7] = (flipped[7] ?? 0) ^ 0x01;
    writeFileSync(file, flipped);
    expectCorruption(dir, good.length - 4, /checksum/);

    // A bit flip in the vote.
    const flippedVote = Buffer.from(good);
    flippedVote[17] = (flippedVote[17] ?? 0) ^ 0x20;
    writeFileSync(file, flippedVote);
    expectCorruption(dir, good.length - 4, /checksum/);

    // Bad magic.
    const badMagic = Buffer.from(good);
    badMagic[0] = 0;
    writeFileSync(file, badMagic);
    expectCorruption(dir, 0, /magic/);

    // Truncated, and empty.
    writeFileSync(file, good.subarray(0, good.length - 1));
    expectCorruption(dir, undefined, /bytes/);
    writeFileSync(file, Buffer.alloc(0));
    expectCorruption(dir, 0, /shorter/);

    // Trailing garbage (a length mismatch).
    writeFileSync(file, Buffer.concat([good, Buffer.of(0)]));
    expectCorruption(dir, 14, /length/);

    // Zero-filled (as ext4 can leave a file after a crash).
    writeFileSync(file, Buffer.alloc(good.length));
    expectCorruption(dir, 0, /magic/);
  });
});

test('durable state store: a failed file fsync throws FsyncFailedError and the store refuses further use', () => {
  withTempDir((dir) => {
    const ffs = new FailingSyncFileSystem(fsys);
    const st = new DurableStateStore(ffs, dir);
    st.save(s1);
    ffs.failFileSync = true;
    assert.throws(() => st.save(s2), (e: unknown) => e instanceof FsyncFailedError && e.cause instanceof Error);
    ffs.failFileSync = false;
    // Never retried as if the data were safe: the same store stays unusable.
    assert.throws(() => st.save(s2), StoreClosedError);
    assert.throws(() => st.load(), StoreClosedError);
    // The previous state is what a restart finds (the rename never happened).
    assert.deepEqual(new DurableStateStore(fsys, dir).load(), s1);
  });
});

test('durable state store: a failed directory fsync throws FsyncFailedError and the store refuses further use', () => {
  withTempDir((dir) => {
    const ffs = new FailingSyncFileSystem(fsys);
    const st = new DurableStateStore(ffs, dir);
    ffs.failDirSync = true;
    assert.throws(() => st.save(s1), (e: unknown) => e instanceof FsyncFailedError && e.file === dir);
    ffs.failDirSync = false;
    assert.throws(() => st.save(s2), StoreClosedError);
  });
});


test('state file format is stable (golden bytes)', () => {
  // magic QLHS, version 1, term 7, vote "n1" (2 bytes), commit 42, CRC32C.
  const golden = '514c48530100070000000000000002006e312a000000000000003574bdcf';
  assert.equal(Buffer.from(encodeHardState({ term: 7, vote: nodeId('n1'), commit: 42 })).toString('hex'), golden);
  withTempDir((dir) => {
    writeFileSync(join(dir, STATE_FILE_NAME), Buffer.from(golden, 'hex'));
    assert.deepEqual(new DurableStateStore(fsys, dir).load(), { term: 7, vote: 'n1', commit: 42 });
  });
});
