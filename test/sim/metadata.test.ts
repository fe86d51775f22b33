// The simulator runs the metadata workload with 3 controllers (voters) and
// 100 brokers (observers), in pull mode (the brokers' native mode) and push
// mode, under the seed's faults (drops, partitions, crashes, snapshots with
// compaction): every safety invariant after every event, every node's
// metadata image equal to every other's after the same log index, and, once
// the healed cluster has run on for a second, every broker at the
// controllers' offset with the controllers' image.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeImage } from '../../src/services/metadata/codec.js';
import type { Entry } from '../../src/protocol/entry.js';
import { METADATA_OBSERVERS, metadataOptions, metadataReplayCommand, metadataWorkload, newMetadataRunStats, type MetadataRunStats } from './metadata-workload.js';
import { Simulator } from './simulator.js';
import type { SimWorkload } from './workload.js';

const SEEDS = Number(process.env['QUORUMLOG_SIM_METADATA_SEEDS'] ?? 2);
const OBSERVERS = METADATA_OBSERVERS;

for (const mode of ['pull', 'push'] as const) {
  test(`simulator: metadata workload with ${OBSERVERS} broker observers (${mode} mode), ${SEEDS} seeds`, () => {
    let restored = 0;
    for (let seed = 1; seed <= SEEDS; seed++) {
      const stats = newMetadataRunStats();
      const sim = new Simulator(metadataOptions(seed, mode, metadataWorkload(stats)));
      const r = sim.run();
      restored += stats.restoredFromSnapshot;
      const replay = `seed ${seed} ${mode} (replay: ${metadataReplayCommand(seed, mode)})`;
      assert.equal(r.violation, null, `${replay}: ${r.violation?.message}`);
      assert.ok(stats.accepted > 0, `${replay}: no record was accepted`);
      assert.ok(stats.rejected > 0, `${replay}: no record was rejected`);
      assert.ok(stats.comparisons > OBSERVERS, `${replay}: only ${stats.comparisons} image comparisons`);
      // At the end (the healed cluster ran on for settleMs): every controller and every broker holds the same image.
      const images = [...sim.voterIds, ...sim.observerIds].map((id) => ({ id, image: stats.apps.get(id)?.machine.image }));
      const top = images.reduce((a, b) => ((b.image?.offset ?? 0) > (a.image?.offset ?? 0) ? b : a));
      assert.ok(top.image !== undefined && top.image.offset > 0, `${replay}: nothing was accepted`);
      const want = encodeImage(top.image);
      for (const { id, image } of images) {
        assert.equal(image?.offset, top.image.offset, `${replay}: ${id} is at offset ${image?.offset}, the newest is ${top.image.offset}`);
        assert.deepEqual(encodeImage(image), want, `${replay}: ${id}'s image differs from ${top.id}'s at offset ${top.image.offset}`);
      }
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
