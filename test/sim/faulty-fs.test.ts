// Tests of the fault-injecting file system (test/sim/faulty-fs.ts): synced data
// survives a crash; unsynced data is lost, kept or torn, each over enough
// seeds; directory operations without syncDir may be undone; a failed fsync
// followed by a "successful" retry does not make the data durable
// (fsyncgate); and a seed replays every fault exactly.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Prng } from '../../src/util/prng.js';
import { FaultyFileSystem, FaultyFsError, SimulatedCrashError, StaleHandleError } from './faulty-fs.js';

const SEEDS = 300;

function bytes(n: number, fill: (i: number) => number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => fill(i));
}

/** Non-zero, position-dependent bytes, so that zeros and tears are visible. */
function pattern(n: number, salt: number): Uint8Array {
  return bytes(n, (i) => ((i * 31 + salt) % 255) + 1);
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.byteLength + b.byteLength);
  out.set(a);
  out.set(b, a.byteLength);
  return out;
}

/** A file system with /d made, and `content` in /d/f, synced and named durably. */
function withSyncedFile(seed: number, content: Uint8Array): FaultyFileSystem {
  const fs = new FaultyFileSystem(new Prng(seed));
  fs.mkdirp('/d');
  const h = fs.open('/d/f', { create: true });
  h.write(content, 0);
  h.sync();
  fs.syncDir('/d');
  h.close();
  return fs;
}

function read(fs: FaultyFileSystem, path: string): Uint8Array {
  const h = fs.open(path, { create: false });
  const data = h.read(h.size(), 0);
  h.close();
  return data;
}

test('synced data and durably named files survive every crash', () => {
  for (let seed = 1; seed <= SEEDS; seed++) {
    const synced = pattern(700, seed);
    const fs = withSyncedFile(seed, synced);
    const h = fs.open('/d/f', { create: true });
    const more = pattern(300, seed + 1);
    h.write(more, 700);
    h.sync();
    fs.crash();
    assert.deepEqual(read(fs, '/d/f'), concat(synced, more), `seed ${seed}`);
    fs.crash(); // nothing pending: a second crash changes nothing
    assert.deepEqual(read(fs, '/d/f'), concat(synced, more), `seed ${seed}`);
  }
});

test('unsynced writes are lost, kept or torn (sometimes zero-filled), and never touch synced bytes', () => {
  const seen = new Map<string, number>();
  for (let seed = 1; seed <= SEEDS; seed++) {
    const synced = pattern(1000, 7);
    const fs = withSyncedFile(seed, synced);
    const h = fs.open('/d/f', { create: false });
    const unsynced = pattern(2000, 99);
    h.write(unsynced.subarray(0, 1200), 1000);
    h.write(unsynced.subarray(1200), 2200);
    assert.equal(h.size(), 3000);
    const report = fs.crash();
    const outcome = report.files[0]?.outcome ?? 'none';
    seen.set(outcome, (seen.get(outcome) ?? 0) + 1);
    const after = read(fs, '/d/f');
    assert.deepEqual(after.subarray(0, 1000), synced, `seed ${seed}: synced bytes intact`);
    const tail = after.subarray(1000);
    switch (outcome) {
      case 'lost':
        assert.equal(tail.byteLength, 0, `seed ${seed}`);
        break;
      case 'kept':
        assert.deepEqual(tail, unsynced, `seed ${seed}`);
        break;
      case 'torn': {
        assert.ok(tail.byteLength > 0 && tail.byteLength < unsynced.byteLength, `seed ${seed}: a strict prefix`);
        assert.deepEqual(tail, unsynced.subarray(0, tail.byteLength), `seed ${seed}`);
        assert.equal(report.files[0]?.keptUnits, tail.byteLength);
        break;
      }
      case 'torn-zeroed': {
        // A prefix of the unsynced bytes, except one sector's worth (at most) of zeros at the end.
        let firstZero = tail.findIndex((b) => b === 0);
        assert.ok(firstZero >= 0, `seed ${seed}: some zeros`);
        // Start of the zero run that reaches the end.
        let z = tail.byteLength;
        while (z > 0 && tail[z - 1] === 0) z--;
        firstZero = z;
        assert.ok(tail.byteLength - firstZero <= 512, `seed ${seed}: at most a sector of zeros`);
        assert.deepEqual(tail.subarray(0, firstZero), unsynced.subarray(0, firstZero), `seed ${seed}`);
        break;
      }
      default:
        assert.fail(`seed ${seed}: unexpected outcome ${outcome}`);
    }
  }
  for (const o of ['lost', 'kept', 'torn', 'torn-zeroed']) {
    assert.ok((seen.get(o) ?? 0) > 10, `outcome ${o} seen ${seen.get(o) ?? 0} times in ${SEEDS} seeds`);
  }
});

test('a created file whose directory was never synced may be missing after a crash; after syncDir it is not', () => {
  let missing = 0;
  let present = 0;
  for (let seed = 1; seed <= SEEDS; seed++) {
    const fs = new FaultyFileSystem(new Prng(seed));
    fs.mkdirp('/d');
    const h = fs.open('/d/new', { create: true });
    h.write(pattern(100, 1), 0);
    h.sync(); // the data is durable, but its name is not
    assert.equal(fs.stat('/d/new')?.nameDurable, false);
    fs.crash();
    if (fs.exists('/d/new')) {
      present++;
      assert.deepEqual(read(fs, '/d/new'), pattern(100, 1));
    } else {
      missing++;
    }
    const g = fs.open('/d/other', { create: true });
    g.write(pattern(10, 2), 0);
    g.sync();
    fs.syncDir('/d');
    fs.crash();
    assert.deepEqual(read(fs, '/d/other'), pattern(10, 2), `seed ${seed}`);
  }
  assert.ok(missing > 10 && present > 10, `missing ${missing}, present ${present}`);
});

test('a rename without syncDir may be undone, atomically; with syncDir it holds', () => {
  let undone = 0;
  let done = 0;
  for (let seed = 1; seed <= SEEDS; seed++) {
    const v1 = pattern(64, 1);
    const v2 = pattern(64, 2);
    const fs = withSyncedFile(seed, v1);
    // The atomic-replace recipe minus its last step.
    const t = fs.open('/d/f.tmp', { create: true });
    t.write(v2, 0);
    t.sync();
    t.close();
    fs.rename('/d/f.tmp', '/d/f');
    assert.deepEqual(read(fs, '/d/f'), v2);
    fs.crash();
    const after = read(fs, '/d/f'); // never missing: the rename is atomic
    if (after.every((b, i) => b === v1[i])) undone++;
    else {
      assert.deepEqual(after, v2, `seed ${seed}`);
      done++;
    }
    // The full recipe: write, fsync, rename, fsync the directory.
    const t2 = fs.open('/d/f.tmp', { create: true });
    t2.truncate(0);
    t2.write(v2, 0);
    t2.sync();
    t2.close();
    fs.rename('/d/f.tmp', '/d/f');
    fs.syncDir('/d');
    fs.crash();
    assert.deepEqual(read(fs, '/d/f'), v2, `seed ${seed}`);
    assert.equal(fs.exists('/d/f.tmp'), false, `seed ${seed}`);
  }
  assert.ok(undone > 10 && done > 10, `undone ${undone}, done ${done}`);
});

test('a remove without syncDir may be undone; with syncDir it holds', () => {
  let undone = 0;
  for (let seed = 1; seed <= SEEDS; seed++) {
    const fs = withSyncedFile(seed, pattern(10, 3));
    fs.remove('/d/f');
    assert.equal(fs.exists('/d/f'), false);
    assert.deepEqual(fs.list('/d'), []);
    fs.crash();
    if (fs.exists('/d/f')) {
      undone++;
      assert.deepEqual(read(fs, '/d/f'), pattern(10, 3));
      fs.remove('/d/f');
    }
    fs.syncDir('/d');
    fs.crash();
    assert.equal(fs.exists('/d/f'), false, `seed ${seed}`);
  }
  assert.ok(undone > 10 && undone < SEEDS - 10, `undone ${undone} of ${SEEDS}`);
});

test('fsyncgate: after a failed sync, a retry "succeeds" but the data is not durable, and a crash can lose it', () => {
  let lost = 0;
  let intact = 0;
  for (let seed = 1; seed <= SEEDS; seed++) {
    const synced = pattern(100, 4);
    const fs = withSyncedFile(seed, synced);
    const h = fs.open('/d/f', { create: false });
    const data = pattern(400, 5);
    h.write(data, 100);
    fs.failNextSync('/d/f');
    assert.throws(() => h.sync(), (e: unknown) => e instanceof FaultyFsError && e.code === 'EIO');
    // The naive caller retries; the retry returns as if all were well...
    h.sync();
    // ...and the program still reads its data back from the page cache...
    assert.deepEqual(h.read(400, 100), data);
    // ...but the disk holds no promise of it.
    assert.deepEqual(fs.durableView('/d/f'), synced);
    assert.equal(fs.stat('/d/f')?.uncertainOps, 1);
    fs.crash();
    const after = read(fs, '/d/f');
    assert.deepEqual(after.subarray(0, 100), synced, `seed ${seed}: earlier synced bytes intact`);
    if (after.byteLength === 500 && after.subarray(100).every((b, i) => b === data[i])) intact++;
    else lost++;
  }
  assert.ok(lost > 10, `the "acknowledged" data was lost or torn in ${lost} of ${SEEDS} seeds`);
  assert.ok(intact > 10, `and survived in ${intact}: whether it did cannot be known before the crash`);
});

test('writes after a failed sync are made durable by a later sync, on top of the uncertain bytes', () => {
  for (let seed = 1; seed <= 50; seed++) {
    const fs = withSyncedFile(seed, pattern(10, 1));
    const h = fs.open('/d/f', { create: false });
    h.write(pattern(10, 2), 10);
    fs.failNextSync();
    assert.throws(() => h.sync(), (e: unknown) => e instanceof FaultyFsError && e.code === 'EIO' && e.syscall === 'fsync');
    h.write(pattern(10, 3), 20);
    h.sync();
    fs.crash();
    const after = read(fs, '/d/f');
    assert.equal(after.byteLength, 30, `seed ${seed}`);
    assert.deepEqual(after.subarray(20), pattern(10, 3), `seed ${seed}`);
  }
});

test('write failures write a prefix at most and throw EIO; sync and write failure probabilities fire', () => {
  const fs = withSyncedFile(1, pattern(10, 1));
  const h = fs.open('/d/f', { create: false });
  fs.failNextWrite('/d/');
  assert.throws(() => h.write(pattern(100, 2), 10), (e: unknown) => e instanceof FaultyFsError && e.code === 'EIO');
  assert.ok(h.size() < 110);
  h.write(pattern(100, 2), 10);
  assert.equal(h.size(), 110);

  const noisy = new FaultyFileSystem(new Prng(5), { syncFailureProbability: 0.3, writeFailureProbability: 0.3 });
  const g = noisy.open('x', { create: true });
  let failures = 0;
  for (let i = 0; i < 100; i++) {
    try {
      g.write(pattern(8, i), i * 8);
      g.sync();
    } catch (e) {
      assert.ok(e instanceof FaultyFsError);
      failures++;
    }
  }
  assert.ok(failures > 20 && failures < 80, `${failures} failures`);
  assert.ok(noisy.injected.syncFailures > 0 && noisy.injected.writeFailures > 0);
});

test('handles are stale after a crash; crashAfterOps stops the machine at the chosen operation', () => {
  const fs = withSyncedFile(1, pattern(10, 1));
  const h = fs.open('/d/f', { create: false });
  fs.crash();
  assert.throws(() => h.read(1, 0), StaleHandleError);
  assert.throws(() => h.write(pattern(1, 1), 0), StaleHandleError);

  const g = fs.open('/d/f', { create: false });
  fs.crashAfterOps(3);
  g.write(pattern(5, 2), 10); // 1
  g.write(pattern(5, 3), 15); // 2
  assert.throws(() => g.sync(), SimulatedCrashError); // 3: the machine dies instead
  assert.ok(fs.isDown());
  assert.throws(() => g.read(1, 0), SimulatedCrashError);
  assert.throws(() => fs.list('/d'), SimulatedCrashError);
  fs.crash();
  assert.ok(!fs.isDown());
  const after = read(fs, '/d/f');
  assert.deepEqual(after.subarray(0, 10), pattern(10, 1));
  assert.ok(after.byteLength <= 20);
});

test('flipBit, setDurable and removeDurable change the durable content for corruption tests', () => {
  const fs = withSyncedFile(1, pattern(10, 1));
  fs.flipBit('/d/f', 3, 0);
  const expected = pattern(10, 1);
  expected[3] = (expected[3] ?? 0) ^ 1;
  assert.deepEqual(read(fs, '/d/f'), expected);
  fs.crash();
  assert.deepEqual(read(fs, '/d/f'), expected);
  fs.setDurable('/d/f', pattern(4, 1));
  fs.setDurable('/d/g', pattern(2, 1));
  fs.crash();
  assert.deepEqual(read(fs, '/d/f'), pattern(4, 1));
  assert.deepEqual(read(fs, '/d/g'), pattern(2, 1));
  fs.removeDurable('/d/g');
  fs.crash();
  assert.deepEqual(fs.list('/d').sort(), ['f']);
  const h = fs.open('/d/f', { create: false });
  h.write(pattern(1, 1), 0);
  assert.throws(() => fs.flipBit('/d/f', 0, 0), /unsynced/);
});

test('list, exists, stat and node-like errors', () => {
  const fs = new FaultyFileSystem(new Prng(1));
  fs.mkdirp('/a/b/c');
  assert.deepEqual(fs.list('/a'), ['b']);
  assert.ok(fs.exists('/a/b/c'));
  assert.throws(() => fs.open('/a/nope/f', { create: true }), (e: unknown) => e instanceof FaultyFsError && e.code === 'ENOENT');
  assert.throws(() => fs.open('/a/b/f', { create: false }), (e: unknown) => e instanceof FaultyFsError && e.code === 'ENOENT');
  assert.throws(() => fs.rename('/a/b/f', '/a/b/g'), (e: unknown) => e instanceof FaultyFsError && e.code === 'ENOENT');
  fs.remove('/a/b/missing'); // like rm -f
  const h = fs.open('/a/b/f', { create: true });
  h.write(pattern(5, 1), 0);
  assert.deepEqual(fs.stat('/a/b/f'), { sizeBytes: 5, durableSizeBytes: 0, nameDurable: false, unsyncedOps: 1, uncertainOps: 0 });
  h.sync();
  fs.syncDir('/a/b');
  assert.deepEqual(fs.stat('/a/b/f'), { sizeBytes: 5, durableSizeBytes: 5, nameDurable: true, unsyncedOps: 0, uncertainOps: 0 });
  assert.deepEqual(fs.list('/a/b').sort(), ['c', 'f']);
  assert.equal(fs.stat('/a/b/zzz'), undefined);
});

test('killProcess: handles go stale, but unsynced data stays (the page cache outlives the process)', () => {
  const fs = withSyncedFile(1, pattern(10, 1));
  const h = fs.open('/d/f', { create: false });
  h.write(pattern(10, 2), 10);
  const g = fs.open('/d/new', { create: true });
  g.write(pattern(3, 3), 0);
  fs.crashAfterOps(1);
  assert.throws(() => g.sync(), SimulatedCrashError);
  fs.killProcess();
  assert.throws(() => h.size(), StaleHandleError);
  assert.deepEqual(read(fs, '/d/f'), concat(pattern(10, 1), pattern(10, 2)));
  assert.deepEqual(read(fs, '/d/new'), pattern(3, 3));
  assert.equal(fs.stat('/d/f')?.unsyncedOps, 1, 'still not durable');
});

/** A workload with every kind of pending state, run to a crash; returns what the disk held. */
function scenario(seed: number): string {
  const fs = new FaultyFileSystem(new Prng(seed), { syncFailureProbability: 0.1 });
  fs.mkdirp('/d');
  const out: string[] = [];
  for (let round = 0; round < 5; round++) {
    for (let i = 0; i < 4; i++) {
      const h = fs.open(`/d/f${i}`, { create: true });
      h.write(pattern(300 + round * 17, seed + i), h.size());
      try {
        if ((round + i) % 2 === 0) h.sync();
      } catch {
        out.push('sync failed');
      }
    }
    if (round % 2 === 0) fs.syncDir('/d');
    fs.rename('/d/f3', `/d/g${round}`);
    const report = fs.crash();
    out.push(JSON.stringify(report));
    for (const name of fs.list('/d').sort()) out.push(`${name}:${Buffer.from(read(fs, `/d/${name}`)).toString('base64')}`);
  }
  return out.join('\n');
}

test('determinism: the same seed gives the same faults and the same disk; other seeds differ', () => {
  const runs = new Set<string>();
  for (let seed = 1; seed <= 20; seed++) {
    const a = scenario(seed);
    assert.equal(scenario(seed), a, `seed ${seed} replays`);
    runs.add(a);
  }
  assert.equal(runs.size, 20, 'different seeds, different runs');
});
