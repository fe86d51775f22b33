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
import type { Entry, HardState, SnapshotMeta } from '../../src/protocol/entry.js';
import { nodeId } from '../../src/protocol/ids.js';
import { FsyncFailedError, StoreClosedError } from '../../src/storage/errors.js';
import { DurableLogStore } from '../../src/storage/log/durable-log.js';
import { DurableSnapshotStore } from '../../src/storage/snapshot/durable-snapshot-store.js';
import { DurableStateStore } from '../../src/storage/state/durable-state-store.js';
import type { LogStore } from '../../src/storage/types.js';
import { Prng } from '../../src/util/prng.js';
import { FaultyFileSystem } from './faulty-fs.js';

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
function stateWorkload(seed: number, kills = false): { crashes: number; fsyncFailures: number; inFlightSeen: number } {
  const prng = new Prng(seed);
  const fs = new FaultyFileSystem(prng.fork(), { syncFailureProbability: 0.02, syncDirFailureProbability: 0.02 });
  const dir = '/data/state';
  let acked: HardState = { term: 0, vote: null, commit: 0 };
  let inFlight: HardState | undefined;
  let store = new DurableStateStore(fs, dir);
  let crashes = 0;
  let fsyncFailures = 0;
  let inFlightSeen = 0;
  const restart = (power = true): void => {
    if (power || !kills) fs.crash();
    else fs.killProcess();
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
        // A crash point, or an fsync failing during recovery (the node stops
        // before acting on anything; the machine reboots): try again.
        if (!fs.isDown() && !(e instanceof FsyncFailedError)) throw e;
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
      // The machine died at a crash point (the store may have wrapped the error, e.g. in FsyncFailedError).
      if (fs.isDown()) {
        restart(prng.chance(0.6));
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

test(`DurableStateStore on the faulty disk: ${STATE_SEEDS} seeds with process kills too (a loaded state must be durable)`, () => {
  // After kill -9 the machine stays up, so a save cut between its rename and
  // its directory fsync is visible to the restarted process although not
  // durable. The node acts on what load() returns (it re-grants that vote), so
  // load() must make it durable first; otherwise a power loss can take the
  // node back a term and let it vote twice in one.
  for (let seed = 1; seed <= STATE_SEEDS; seed++) stateWorkload(seed, true);
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
function snapshotWorkload(seed: number, kills = false): { crashes: number; fsyncFailures: number; commits: number } {
  const prng = new Prng(seed);
  const fs = new FaultyFileSystem(prng.fork(), { syncFailureProbability: 0.02, syncDirFailureProbability: 0.02 });
  const dir = '/data/snap';
  const options = { verifyChunkBytes: 97, receiveCheckpointBytes: 150 };
  let acked: SnapshotVersion | null = null;
  let inFlight: SnapshotVersion | null = null;
  // Opening syncs the directory, and that fsync may fail too: the node then
  // stops, and the machine reboots before the next try.
  let store = ((): DurableSnapshotStore => {
    for (;;) {
      try {
        return new DurableSnapshotStore(fs, dir, options);
      } catch (e) {
        if (!(e instanceof FsyncFailedError)) throw e;
        fs.crash();
      }
    }
  })();
  let crashes = 0;
  let fsyncFailures = 0;
  let commits = 0;
  const restart = (power = true): void => {
    fs.crashAfterOps(undefined);
    for (;;) {
      if (power || !kills) fs.crash();
      else fs.killProcess();
      power = true;
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
        // A crash point, or an fsync failing during recovery (the node stops; the machine reboots).
        if (!fs.isDown() && !(e instanceof FsyncFailedError)) throw e;
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
      if (fs.isDown()) {
        restart(prng.chance(0.6)); // a crash point (the store may have wrapped the error)
      } else if (e instanceof FsyncFailedError) {
        fsyncFailures++;
        assert.throws(() => store.latest(), StoreClosedError, `seed ${seed}: use after a failed fsync`);
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

test(`DurableSnapshotStore on the faulty disk: ${SNAPSHOT_SEEDS} seeds with process kills too (latest() must be durable)`, () => {
  for (let seed = 1; seed <= SNAPSHOT_SEEDS; seed++) snapshotWorkload(seed, true);
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

// ---- LogStore ------------------------------------------------------------

const LOG_SEEDS = 300;

/** The log as the model holds it: the compaction point and the entries after it. */
interface LogVersion {
  readonly compacted: number;
  readonly compactedTerm: number;
  readonly entries: readonly Entry[];
}

function lastOf(v: LogVersion): number {
  return v.compacted + v.entries.length;
}

function entryAt(v: LogVersion, index: number): Entry | undefined {
  return index > v.compacted ? v.entries[index - v.compacted - 1] : undefined;
}

function termAt(v: LogVersion, index: number): number | undefined {
  return index === v.compacted ? v.compactedTerm : entryAt(v, index)?.term;
}

function sameEntry(a: Entry, b: Entry | undefined): boolean {
  return b !== undefined && a.index === b.index && a.term === b.term && a.type === b.type && equalBytes(a.data, b.data);
}

/** The MemoryLogStore semantics (src/storage/log/memory-log.ts) on an immutable value. */
const model = {
  append(v: LogVersion, entries: readonly Entry[]): LogVersion {
    const head = entries[0];
    if (head === undefined) return v;
    return { ...v, entries: [...v.entries.slice(0, head.index - v.compacted - 1), ...entries] };
  },
  truncateSuffix(v: LogVersion, index: number): LogVersion {
    if (index > lastOf(v)) return v;
    return { ...v, entries: v.entries.slice(0, index - v.compacted - 1) };
  },
  compactPrefix(v: LogVersion, index: number, term: number): LogVersion {
    if (index <= v.compacted) return v;
    const keep = index <= lastOf(v) && termAt(v, index) === term;
    return { compacted: index, compactedTerm: term, entries: keep ? v.entries.slice(index - v.compacted) : [] };
  },
};

/** Everything the store holds, read through its public API. */
function readAll(store: LogStore): LogVersion {
  const first = store.firstIndex();
  const last = store.lastIndex();
  const entries: Entry[] = [];
  for (let lo = first; lo <= last;) {
    const got = store.read(lo, last + 1, 4096);
    assert.ok(got.length > 0, `read [${lo}, ${last + 1}) returned nothing`);
    entries.push(...got);
    lo += got.length;
  }
  return { compacted: first - 1, compactedTerm: store.term(first - 1) ?? -1, entries };
}

/**
 * Checks the log found after a restart against the versions the model went
 * through since the last sync that returned (`versions[0]` is durable; the
 * others were in flight). Returns a description of the problem, or undefined.
 */
function checkRecovered(r: LogVersion, versions: readonly LogVersion[]): string | undefined {
  // A clean log: consecutive indexes from the first, terms never decreasing.
  let prevTerm = r.compactedTerm;
  for (let i = 0; i < r.entries.length; i++) {
    const e = r.entries[i] as Entry;
    if (e.index !== r.compacted + 1 + i) return `entry ${i} has index ${e.index}, expected ${r.compacted + 1 + i}`;
    if (e.term < prevTerm) return `term goes back at ${e.index}`;
    prevTerm = e.term;
  }
  // The compaction point is one the model asked for (or the initial one), and
  // each entry is one that was written at its index, all from one version of
  // the log (a prefix of what the store held at some point since the sync).
  if (!versions.some((v) => v.compacted === r.compacted && (r.compacted === 0 || v.compactedTerm === r.compactedTerm))) {
    return `compaction point ${r.compacted}/${r.compactedTerm} is none the store was asked for`;
  }
  const fits = versions.some((v) => lastOf(r) <= lastOf(v) && r.entries.every((e) => sameEntry(e, entryAt(v, e.index))));
  if (!fits) return 'the log is not a prefix of any version written since the last sync (garbage or mixed entries)';
  // Durability: whatever the last sync covered and no later operation removed is still there.
  const durable = versions[0] as LogVersion;
  let keepTo = lastOf(durable);
  for (const v of versions) {
    let i = Math.max(durable.compacted, v.compacted) + 1;
    while (i <= keepTo && sameEntry(entryAt(durable, i) as Entry, entryAt(v, i))) i++;
    keepTo = Math.min(keepTo, i - 1);
  }
  if (lastOf(r) < keepTo) return `acknowledged entries [${lastOf(r) + 1}, ${keepTo}] lost`;
  return undefined;
}

function showVersion(v: LogVersion): string {
  return `compacted ${v.compacted}/${v.compactedTerm}, entries ${v.compacted + 1}..${lastOf(v)} terms [${v.entries.map((e) => e.term).join(',')}]`;
}

/** A batch of entries from `start`, all in `term`, with random payloads. */
function batch(prng: Prng, start: number, term: number): Entry[] {
  const n = prng.int(1, 9);
  return Array.from({ length: n }, (_, i): Entry => {
    const noop = prng.chance(0.1);
    return { index: start + i, term, type: noop ? 'noop' : 'data', data: noop ? new Uint8Array(0) : randomBytes(prng, prng.int(0, 160)) };
  });
}

interface LogStats {
  crashes: number;
  kills: number;
  fsyncFailures: number;
  syncs: number;
  entriesAcked: number;
}

/**
 * One seed of the LogStore workload: appends (some overwriting a suffix, as a
 * follower does), syncs, truncations, compactions and reads, with crash points
 * at random mutating operations, power losses and process kills between a
 * write and its sync, and failed fsyncs. After every restart the log is
 * checked by checkRecovered against what was acknowledged.
 */
function logWorkload(seed: number, stats: LogStats, kills: boolean): void {
  const prng = new Prng(seed);
  const fs = new FaultyFileSystem(prng.fork(), { syncFailureProbability: 0.01, syncDirFailureProbability: 0.01 });
  const dir = '/data/log';
  const opts = { segmentBytes: prng.pick([200, 700, 4096]) };
  const empty: LogVersion = { compacted: 0, compactedTerm: 0, entries: [] };
  let cur = empty;
  /** versions[0]: the log as of the last sync that returned (acknowledged); then every later version. */
  let versions: LogVersion[] = [empty];
  let term = 1;
  /** The last events, printed with a failure. */
  const trace: string[] = [];
  const note = (event: string): void => {
    trace.push(event);
    if (trace.length > 40) trace.shift();
  };
  const context = (): string => `seed ${seed} (segmentBytes ${opts.segmentBytes})`;

  const openStore = (): DurableLogStore => {
    for (;;) {
      if (prng.chance(0.2)) fs.crashAfterOps(prng.int(1, 4)); // recovery cut short by another crash
      try {
        const s = DurableLogStore.open(fs, dir, opts);
        fs.crashAfterOps(undefined);
        return s;
      } catch (e) {
        if (e instanceof FsyncFailedError && !fs.isDown()) {
          note(`fsync failed during recovery: ${e.message}`);
          stats.fsyncFailures++;
        } else if (!fs.isDown()) {
          if (e instanceof Error) e.message = `${context()}: ${e.message}\n  last events:\n    ${trace.join('\n    ')}`;
          throw e;
        }
        fs.crash();
        stats.crashes++;
      }
    }
  };
  let store = openStore();

  const restart = (power: boolean): void => {
    fs.crashAfterOps(undefined);
    if (power) {
      const report = fs.crash();
      note(`power loss: ${JSON.stringify(report)}`);
      stats.crashes++;
    } else {
      note('kill -9');
      fs.killProcess();
      stats.kills++;
    }
    store = openStore();
    const r = readAll(store);
    const problem = checkRecovered(r, versions);
    assert.equal(problem, undefined, `${context()}: ${problem ?? ''}
  recovered:    ${showVersion(r)}
  acknowledged: ${showVersion(versions[0] as LogVersion)}
  latest:       ${showVersion(cur)}
  last events:\n    ${trace.join('\n    ')}`);
    // A restarted node takes what it finds as its log: from now on it counts as acknowledged.
    cur = r;
    versions = [r];
    term = Math.max(term, r.compactedTerm, r.entries[r.entries.length - 1]?.term ?? 0);
  };

  /** Applies one change to the model and the store; a crash inside it leaves any prefix. */
  const change = (next: LogVersion, op: () => void): void => {
    versions.push(next);
    op();
    cur = next;
    assert.equal(store.lastIndex(), lastOf(cur), `${context()}: lastIndex`);
    assert.equal(store.firstIndex(), cur.compacted + 1, `${context()}: firstIndex`);
  };

  const steps = prng.int(40, 120);
  for (let step = 0; step < steps; step++) {
    if (prng.chance(0.12)) fs.crashAfterOps(prng.int(1, 12));
    const first = cur.compacted + 1;
    const last = lastOf(cur);
    try {
      const x = prng.float();
      if (x < 0.45) {
        let start = last + 1;
        if (last >= first && prng.chance(0.15)) {
          start = prng.int(Math.max(first, last - 6), last + 1); // a new leader overwrites a suffix
          term++;
        } else if (prng.chance(0.05)) {
          term++;
        }
        const entries = batch(prng, start, term);
        note(`append [${start}, ${start + entries.length}) term ${term}`);
        change(model.append(cur, entries), () => store.append(entries));
      } else if (x < 0.75) {
        note('sync');
        store.sync();
        note(`synced: acknowledged up to ${lastOf(cur)}`);
        versions = [cur];
        stats.syncs++;
        stats.entriesAcked = Math.max(stats.entriesAcked, lastOf(cur));
      } else if (x < 0.8) {
        if (last >= first) {
          const index = prng.int(Math.max(first, last - 6), last + 1);
          note(`truncateSuffix ${index}`);
          change(model.truncateSuffix(cur, index), () => store.truncateSuffix(index));
        }
      } else if (x < 0.84) {
        const durable = versions[0] as LogVersion;
        let index: number;
        let t: number;
        if (prng.chance(0.2)) {
          index = last + prng.int(1, 5); // a snapshot from the leader, beyond the log
          term++;
          t = term;
        } else {
          // Compaction below a snapshot of acknowledged (committed) entries.
          let top = first - 1;
          while (top < lastOf(durable) && sameEntry(entryAt(durable, top + 1) as Entry, entryAt(cur, top + 1))) top++;
          if (top < first) continue;
          index = prng.int(first, top + 1);
          t = termAt(cur, index) as number;
        }
        note(`compactPrefix ${index}/${t}`);
        change(model.compactPrefix(cur, index, t), () => store.compactPrefix(index, t));
      } else if (x < 0.94) {
        if (last >= first) {
          const lo = prng.int(first, last + 1);
          const hi = prng.int(lo, last + 2);
          const got = store.read(lo, hi, prng.int(0, 600));
          assert.ok(hi === lo || got.length > 0, `${context()}: read returned nothing`);
          got.forEach((e, i) => assert.ok(sameEntry(e, entryAt(cur, lo + i)), `${context()}: read ${lo + i} differs`));
        }
      } else {
        restart(!kills || prng.chance(0.7)); // power loss or kill -9 at a step boundary (between write and sync)
      }
    } catch (e) {
      if (fs.isDown()) {
        // A crash point (the store may have wrapped the error, e.g. in FsyncFailedError).
        note(`crash point: ${e instanceof Error ? e.message : String(e)}`);
        restart(!kills || prng.chance(0.7));
      } else if (e instanceof FsyncFailedError) {
        note(`fsync failed: ${e.message}`);
        stats.fsyncFailures++;
        // fsyncgate: the store must refuse to go on, not retry as if the data were safe.
        assert.throws(() => store.sync(), StoreClosedError, `${context()}: sync after a failed fsync`);
        assert.throws(() => store.append(batch(prng, lastOf(cur) + 1, term)), StoreClosedError, `${context()}: append after a failed fsync`);
        assert.throws(() => store.lastIndex(), StoreClosedError, `${context()}: lastIndex after a failed fsync`);
        store.close();
        // The machine reboots (a mere process restart would find the uncertain bytes still in the page cache).
        restart(true);
      } else {
        if (e instanceof Error && !e.message.startsWith('seed ')) e.message = `${context()}: ${e.message}`;
        throw e;
      }
    }
  }
  restart(true);
}

test(`DurableLogStore on the faulty disk: ${LOG_SEEDS} seeds of power losses, acknowledged entries survive, the log stays a clean prefix`, () => {
  const stats: LogStats = { crashes: 0, kills: 0, fsyncFailures: 0, syncs: 0, entriesAcked: 0 };
  for (let seed = 1; seed <= LOG_SEEDS; seed++) logWorkload(seed, stats, false);
  assert.ok(stats.crashes > LOG_SEEDS * 2, `${stats.crashes} power losses`);
  assert.ok(stats.fsyncFailures > 20, `${stats.fsyncFailures} fsync failures`);
});

test(`DurableLogStore on the faulty disk: ${LOG_SEEDS} seeds with process kills too (recovered entries must be durable)`, () => {
  // After kill -9 the machine stays up: reopening finds unsynced entries in the
  // page cache, and the node takes them as its log (it will acknowledge them).
  // The store must make them durable before handing them out; a later sync()
  // that fsyncs only what this process wrote does not.
  const stats: LogStats = { crashes: 0, kills: 0, fsyncFailures: 0, syncs: 0, entriesAcked: 0 };
  for (let seed = 1; seed <= LOG_SEEDS; seed++) logWorkload(seed, stats, true);
  assert.ok(stats.kills > LOG_SEEDS / 2, `${stats.kills} process kills`);
});
