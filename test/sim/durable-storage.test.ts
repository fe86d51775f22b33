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
import type { HardState } from '../../src/protocol/entry.js';
import { nodeId } from '../../src/protocol/ids.js';
import { FsyncFailedError, StoreClosedError } from '../../src/storage/errors.js';
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
