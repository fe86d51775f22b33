// The real durable stores (src/storage) on the fault-injecting file system
// (test/sim/faulty-fs.ts), through randomized workloads with crashes at random
// mutating operations (between a write and its sync, between a rename and the
// directory fsync, ...), failed fsyncs and torn, lost or zero-filled writes.
// After every crash the store is reopened and checked against what it had
// acknowledged (a call that returned): nothing acknowledged is lost, nothing
// goes back, and a failed fsync makes the store refuse further use.
// A failure names its seed; the same seed replays it exactly.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32c } from '@node-rs/crc32';
import type { HardState, SnapshotMeta } from '../../src/protocol/entry.js';
import { nodeId } from '../../src/protocol/ids.js';
import { FsyncFailedError, StoreClosedError } from '../../src/storage/errors.js';
import { DurableSnapshotStore } from '../../src/storage/snapshot/durable-snapshot-store.js';
import { DurableStateStore } from '../../src/storage/state/durable-state-store.js';
import { Prng } from '../../src/util/prng.js';
import { FaultyFileSystem, SimulatedCrashError } from './faulty-fs.js';

const STATE_SEEDS = 300;

function sameState(a: HardState, b: HardState | undefined): boolean {
  return b !== undefined && a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

function show(s: HardState | undefined): string {
  return s === undefined ? 'none' : `{term ${s.term}, vote ${s.vote ?? 'null'}, commit ${s.commit}}`;
}

/**
 * One seed of the StateStore workload: saves of ever newer states, crashes at
 * random mutating operations, fsync failures; after each restart the loaded
 * state is the last acknowledged one or the one in flight, never older.
 */
function stateWorkload(seed: number): { crashes: number; fsyncFailures: number; inFlightSeen: number } {
  const prng = new Prng(seed);
  const fs = new FaultyFileSystem(prng.fork(), { syncFailureProbability: 0.02, syncDirFailureProbability: 0.02 });
  const dir = '/data/state';
  let acked: HardState = { term: 0, vote: null, commit: 0 };
  let inFlight: HardState | undefined;
  let store = new DurableStateStore(fs, dir);
  let crashes = 0;
  let fsyncFailures = 0;
  let inFlightSeen = 0;
  const restart = (): void => {
    fs.crash();
    crashes++;
    for (;;) {
      // Recovery itself may be cut short by the next crash point.
      try {
        store = new DurableStateStore(fs, dir);
        const loaded = store.load();
        const ok = sameState(loaded, acked) || sameState(loaded, inFlight);
        assert.ok(ok, `seed ${seed}: loaded ${show(loaded)}, acknowledged ${show(acked)}, in flight ${show(inFlight)}`);
        if (!sameState(loaded, acked)) inFlightSeen++;
        // What was loaded may have been seen by the node: it is the floor from now on.
        acked = loaded;
        inFlight = undefined;
        return;
      } catch (e) {
        if (!(e instanceof SimulatedCrashError)) throw e;
        fs.crash();
        crashes++;
      }
    }
  };
  const steps = prng.int(20, 60);
  for (let step = 0; step < steps; step++) {
    if (prng.chance(0.3)) fs.crashAfterOps(prng.int(1, 8));
    const term = acked.term + (prng.chance(0.5) ? 1 : 0);
    const next: HardState = {
      term,
      vote: prng.chance(0.5) ? nodeId(`node-${prng.int(0, 5)}`) : null,
      commit: acked.commit + prng.int(0, 3),
    };
    inFlight = next;
    try {
      store.save(next);
      acked = next;
      inFlight = undefined;
      fs.crashAfterOps(undefined);
      assert.ok(sameState(store.load(), acked), `seed ${seed}: load after save`);
    } catch (e) {
      if (e instanceof SimulatedCrashError) {
        restart();
      } else if (e instanceof FsyncFailedError) {
        fsyncFailures++;
        // fsyncgate: the store must refuse to go on as if nothing happened.
        assert.throws(() => store.save(next), StoreClosedError, `seed ${seed}: save after a failed fsync`);
        assert.throws(() => store.load(), StoreClosedError, `seed ${seed}: load after a failed fsync`);
        fs.crashAfterOps(undefined);
        restart();
      } else {
        throw e;
      }
    }
  }
  fs.crashAfterOps(undefined);
  restart();
  return { crashes, fsyncFailures, inFlightSeen };
}

test(`DurableStateStore on the faulty disk: ${STATE_SEEDS} seeds, term and vote never go back after a save returned`, () => {
  let crashes = 0;
  let fsyncFailures = 0;
  let inFlightSeen = 0;
  for (let seed = 1; seed <= STATE_SEEDS; seed++) {
    const r = stateWorkload(seed);
    crashes += r.crashes;
    fsyncFailures += r.fsyncFailures;
    inFlightSeen += r.inFlightSeen;
  }
  // The faults did fire: the test is not vacuous.
  assert.ok(crashes > STATE_SEEDS * 2, `${crashes} crashes`);
  assert.ok(fsyncFailures > 20, `${fsyncFailures} fsync failures`);
  assert.ok(inFlightSeen > 10, `${inFlightSeen} restarts found the in-flight state`);
});

// ---- SnapshotStore -----------------------------------------------------

const SNAPSHOT_SEEDS = 200;

interface SnapshotVersion {
  readonly meta: SnapshotMeta;
  readonly data: Uint8Array;
}

function randomBytes(prng: Prng, n: number): Uint8Array {
  return Uint8Array.from({ length: n }, () => prng.int(0, 256));
}

function readWhole(store: DurableSnapshotStore, meta: SnapshotMeta): Uint8Array | undefined {
  const r = store.open(meta);
  if (r === undefined) return undefined;
  try {
    return r.read(0, r.info.sizeBytes);
  } finally {
    r.close();
  }
}

function equalBytes(a: Uint8Array | undefined, b: Uint8Array): boolean {
  return a !== undefined && a.byteLength === b.byteLength && a.every((x, i) => x === b[i]);
}

/**
 * One seed of the SnapshotStore workload: snapshots written as streams or
 * received in chunks, committed, older ones removed, with crash points and
 * failed fsyncs. After each restart latest() is the last committed snapshot
 * or the one in flight, and its bytes are exactly those written.
 */
function snapshotWorkload(seed: number): { crashes: number; fsyncFailures: number; commits: number } {
  const prng = new Prng(seed);
  const fs = new FaultyFileSystem(prng.fork(), { syncFailureProbability: 0.02, syncDirFailureProbability: 0.02 });
  const dir = '/data/snap';
  const options = { verifyChunkBytes: 97, receiveCheckpointBytes: 150 };
  let acked: SnapshotVersion | null = null;
  let inFlight: SnapshotVersion | null = null;
  let store = new DurableSnapshotStore(fs, dir, options);
  let crashes = 0;
  let fsyncFailures = 0;
  let commits = 0;
  const restart = (): void => {
    fs.crashAfterOps(undefined);
    for (;;) {
      fs.crash();
      crashes++;
      if (prng.chance(0.3)) fs.crashAfterOps(prng.int(1, 4)); // a crash during recovery
      try {
        store = new DurableSnapshotStore(fs, dir, options);
        const latest = store.latest();
        const candidates = [acked, inFlight].filter((v): v is SnapshotVersion => v !== null);
        const match = candidates.find((v) => latest !== null && v.meta.index === latest.index && v.meta.term === latest.term);
        if (latest === null) {
          assert.equal(acked, null, `seed ${seed}: committed snapshot ${JSON.stringify(acked?.meta)} lost`);
        } else {
          assert.ok(match !== undefined, `seed ${seed}: latest ${JSON.stringify(latest)}, committed ${JSON.stringify(acked?.meta)}, in flight ${JSON.stringify(inFlight?.meta)}`);
          assert.ok(equalBytes(readWhole(store, match.meta), match.data), `seed ${seed}: snapshot ${match.meta.index} bytes differ`);
          acked = match;
        }
        inFlight = null;
        fs.crashAfterOps(undefined);
        return;
      } catch (e) {
        if (!(e instanceof SimulatedCrashError)) throw e;
      }
    }
  };
  let index = 0;
  const steps = prng.int(8, 20);
  for (let step = 0; step < steps; step++) {
    if (prng.chance(0.3)) fs.crashAfterOps(prng.int(1, 12));
    index += prng.int(1, 10);
    const next: SnapshotVersion = { meta: { index, term: 1 + Math.floor(index / 7) }, data: randomBytes(prng, prng.int(0, 500)) };
    inFlight = next;
    try {
      if (prng.chance(0.5)) {
        const w = store.beginWrite(next.meta);
        for (let pos = 0; pos < next.data.byteLength;) {
          const n = prng.int(1, 200);
          w.write(next.data.subarray(pos, pos + n));
          pos += n;
        }
        w.commit();
      } else {
        const rx = store.beginReceive(next.meta);
        for (let pos = rx.receivedBytes; pos < next.data.byteLength;) {
          const n = prng.int(1, 120);
          pos = rx.write(pos, next.data.subarray(pos, pos + n));
        }
        rx.commit({ sizeBytes: next.data.byteLength, checksum: crc32c(next.data) });
      }
      commits++;
      acked = next;
      inFlight = null;
      if (prng.chance(0.5)) store.removeOlder();
      fs.crashAfterOps(undefined);
      assert.equal(store.latest()?.index, acked.meta.index, `seed ${seed}`);
      assert.ok(equalBytes(readWhole(store, acked.meta), acked.data), `seed ${seed}: read back after commit`);
    } catch (e) {
      if (e instanceof FsyncFailedError) {
        fsyncFailures++;
        assert.throws(() => store.latest(), StoreClosedError, `seed ${seed}: use after a failed fsync`);
        restart();
      } else if (e instanceof SimulatedCrashError) {
        restart();
      } else {
        throw e;
      }
    }
  }
  restart();
  return { crashes, fsyncFailures, commits };
}

test(`DurableSnapshotStore on the faulty disk: ${SNAPSHOT_SEEDS} seeds, a committed snapshot is never lost or altered`, () => {
  let crashes = 0;
  let fsyncFailures = 0;
  let commits = 0;
  for (let seed = 1; seed <= SNAPSHOT_SEEDS; seed++) {
    const r = snapshotWorkload(seed);
    crashes += r.crashes;
    fsyncFailures += r.fsyncFailures;
    commits += r.commits;
  }
  assert.ok(crashes > SNAPSHOT_SEEDS, `${crashes} crashes`);
  assert.ok(fsyncFailures > 5, `${fsyncFailures} fsync failures`);
  assert.ok(commits > SNAPSHOT_SEEDS * 4, `${commits} commits`);
});

test('DurableSnapshotStore: a checkpointed partial receive survives a crash', () => {
  // receiver.ts promises "everything up to the last checkpoint survives a
  // crash": the .recv file's name must be made durable too (a directory
  // fsync), not only its bytes. (This test found that omission; eaacee8.)
  let lostProgress = 0;
  for (let seed = 1; seed <= 50; seed++) {
    const fs = new FaultyFileSystem(new Prng(seed));
    const dir = '/data/snap';
    const store = new DurableSnapshotStore(fs, dir);
    const meta = { index: 10, term: 2 };
    const rx = store.beginReceive(meta);
    rx.write(0, pattern(300, seed));
    rx.checkpoint();
    fs.crash();
    const again = new DurableSnapshotStore(fs, dir).beginReceive(meta);
    if (again.receivedBytes < 300) lostProgress++;
  }
  assert.equal(lostProgress, 0, `checkpointed progress lost after ${lostProgress} of 50 crashes`);
});

function pattern(n: number, salt: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => ((i * 31 + salt) % 255) + 1);
}
