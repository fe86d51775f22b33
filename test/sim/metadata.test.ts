// The simulator runs the metadata workload with 3 controllers (voters) and
// 100 brokers (observers), in pull mode (the brokers' native mode) and push
// mode, under the seed's faults (drops, partitions, crashes, snapshots with
// compaction): every safety invariant after every event, every node's
// metadata image equal to every other's after the same log index, and at the
// end every running broker that reached the controllers' position holds the
// controllers' image.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeImage } from '../../src/services/metadata/codec.js';
import type { Entry } from '../../src/protocol/entry.js';
import { metadataWorkload, newMetadataRunStats, type MetadataRunStats } from './metadata-workload.js';
import { optionsFromSeed, type SimOptions } from './options.js';
import { Simulator } from './simulator.js';
import type { SimWorkload } from './workload.js';

const SEEDS = Number(process.env['QUORUMLOG_SIM_METADATA_SEEDS'] ?? 2);
const OBSERVERS = 100;

/** A seed's options for the metadata workload: 3 controllers, OBSERVERS brokers, frequent proposals and compactions (so brokers catch up through snapshots). */
function metadataOptions(seed: number, mode: 'push' | 'pull', workload: () => SimWorkload): SimOptions {
  return {
    ...optionsFromSeed(seed, { mode, durableDisk: false }),
    voters: 3, observers: OBSERVERS, faultPhaseMs: 1500, proposeEveryMs: 5, compactEveryMs: 5, snapshotPadBytes: 0, workload,
  };
}

for (const mode of ['pull', 'push'] as const) {
  test(`simulator: metadata workload with ${OBSERVERS} broker observers (${mode} mode), ${SEEDS} seeds`, () => {
    let restored = 0;
    for (let seed = 1; seed <= SEEDS; seed++) {
      const stats = newMetadataRunStats();
      const sim = new Simulator(metadataOptions(seed, mode, metadataWorkload(stats)));
      const r = sim.run();
      restored += stats.restoredFromSnapshot;
      const replay = `seed ${seed} ${mode} (observers ${OBSERVERS})`;
      assert.equal(r.violation, null, `${replay}: ${r.violation?.message}`);
      assert.ok(stats.accepted > 0, `${replay}: no record was accepted`);
      assert.ok(stats.rejected > 0, `${replay}: no record was rejected`);
      assert.ok(stats.comparisons > OBSERVERS, `${replay}: only ${stats.comparisons} image comparisons`);
      // At the end: the brokers at the controllers' newest offset hold the controllers' image.
      const controllers = sim.voterIds.map((id) => stats.apps.get(id)?.machine.image).filter((x) => x !== undefined);
      const top = controllers.reduce((a, b) => (b.offset > a.offset ? b : a));
      let caughtUp = 0;
      for (const id of sim.observerIds) {
        const img = stats.apps.get(id)?.machine.image;
        if (img === undefined || img.offset !== top.offset) continue;
        caughtUp++;
        assert.deepEqual(encodeImage(img), encodeImage(top), `${replay}: ${id}'s image differs from the controllers'`);
      }
      const following = sim.observerIds.filter((id) => (stats.apps.get(id)?.machine.image.offset ?? 0) > 0).length;
      assert.ok(following > OBSERVERS / 2, `${replay}: only ${following} brokers applied any record (${caughtUp} at the controllers' offset ${top.offset})`);
    }
    assert.ok(restored > 0, `no node restored its metadata from a snapshot in ${SEEDS} seeds`);
  });
}

test('simulator: the metadata check catches a broker whose image goes wrong (it skips every 25th record)', () => {
  const stats: MetadataRunStats = newMetadataRunStats();
  const inner = metadataWorkload(stats);
  const buggy = (): SimWorkload => {
    const w = inner();
    let data = 0;
    return {
      nextProposal: (rng, leader) => w.nextProposal(rng, leader),
      create(node, snapshot) {
        const app = w.create(node, snapshot);
        if (node !== 'o7') return app;
        return { snapshot: () => app.snapshot(), apply: (e: Entry) => { if (e.type === 'data' && ++data % 25 === 0) return; app.apply(e); } };
      },
    };
  };
  const r = new Simulator(metadataOptions(2, 'pull', buggy)).run();
  assert.match(r.violation?.message ?? 'no violation', /stateMachineSafety: metadata image of o7 after index \d+/);
});
