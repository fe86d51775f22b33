// The metadata workload for the simulator (issue 6: the controllers are the
// voters, brokers follow as observers, many of them): every node runs the
// metadata state machine on the entries it applies; clients propose random,
// mostly valid records drawn against the leader's image
// (src/services/metadata/workload.ts). After every apply the node's image is
// compared with the image any other node had after the same log index: a
// broker (observer) and a controller that applied the same prefix must hold
// equal images, byte for byte, whether they got there by replay, by a
// snapshot from the leader, or by restarting from their own disk. (Every
// CHECK_EVERY-th index, and the first apply after a restore, to stay fast.)

import type { Entry } from '../../src/protocol/entry.js';
import type { NodeId } from '../../src/protocol/ids.js';
import { encodeImage, encodeRecord } from '../../src/services/metadata/codec.js';
import { MetadataImage } from '../../src/services/metadata/image.js';
import { MetadataStateMachine } from '../../src/services/metadata/state-machine.js';
import { randomRecord } from '../../src/services/metadata/workload.js';
import type { Prng } from '../../src/util/prng.js';
import { Violation } from './invariants.js';
import { optionsFromSeed, type SimOptions } from './options.js';
import { fnv1a } from './state-machine.js';
import type { SimApp, SimWorkload } from './workload.js';

/** Images are compared at indexes that are multiples of this (encoding every image at every index on 100+ nodes is slow). */
const CHECK_EVERY = 4;

/** What one run of the workload saw (for the test's own checks). */
export interface MetadataRunStats {
  accepted: number;
  rejected: number;
  /** Applies compared against another node's image at the same index. */
  comparisons: number;
  /** Apps created from a snapshot (a restart, or catching up past the log start). */
  restoredFromSnapshot: number;
  /** Each node's app, as it stands (the last one created for the node). */
  readonly apps: Map<NodeId, MetadataSimApp>;
}

/** One node's metadata machine. */
export class MetadataSimApp implements SimApp {
  readonly machine = new MetadataStateMachine({ historyRecords: 8 });
  /** Check the image at the next apply whatever its index (set when the app is created, fresh or from a snapshot). */
  private checkNext = true;

  constructor(private readonly node: NodeId, private readonly shared: { images: Map<number, { hash: number; offset: number; node: NodeId }>; stats: MetadataRunStats }) {}

  apply(e: Entry): void {
    if (e.type === 'data') {
      const r = this.machine.apply(e.data, e.index);
      if (r.type === 'accepted') this.shared.stats.accepted++;
      else this.shared.stats.rejected++;
    }
    // Compare after every CHECK_EVERY-th index (the same indexes on every node), and after the first apply since a restore.
    if (!this.checkNext && e.index % CHECK_EVERY !== 0) return;
    this.checkNext = false;
    const image = this.machine.image;
    const hash = fnv1a(encodeImage(image));
    const seen = this.shared.images.get(e.index);
    if (seen === undefined) {
      this.shared.images.set(e.index, { hash, offset: image.offset, node: this.node });
    } else {
      this.shared.stats.comparisons++;
      if (seen.hash !== hash || seen.offset !== image.offset) {
        throw new Violation('stateMachineSafety', `metadata image of ${this.node} after index ${e.index} (offset ${image.offset}) differs from ${seen.node}'s (offset ${seen.offset})`);
      }
    }
  }

  snapshot(): Uint8Array {
    return this.machine.snapshot();
  }
}

/** A workload factory for SimOptions.workload; `stats` collects what the run saw. */
export function metadataWorkload(stats: MetadataRunStats): () => SimWorkload {
  return () => {
    const shared = { images: new Map<number, { hash: number; offset: number; node: NodeId }>(), stats };
    return {
      create(node: NodeId, snapshot: Uint8Array | null): SimApp {
        const app = new MetadataSimApp(node, shared);
        if (snapshot !== null) {
          app.machine.restore(snapshot);
          stats.restoredFromSnapshot++;
        }
        stats.apps.set(node, app);
        return app;
      },
      nextProposal(rng: Prng, leader: SimApp | null): Uint8Array {
        const image = leader instanceof MetadataSimApp ? leader.machine.image : MetadataImage.EMPTY;
        return encodeRecord(randomRecord(rng, image));
      },
    };
  };
}

/** Fresh stats. */
export function newMetadataRunStats(): MetadataRunStats {
  return { accepted: 0, rejected: 0, comparisons: 0, restoredFromSnapshot: 0, apps: new Map() };
}

/** Brokers in the metadata simulation unless told otherwise. */
export const METADATA_OBSERVERS = 100;

/**
 * A seed's options for the metadata workload: the seed's faults, with 3
 * controllers, `observers` brokers, frequent proposals and compactions (so
 * that brokers catch up through snapshots), on the memory disk; after
 * liveness the healed cluster runs on for a second so every broker catches up.
 */
export function metadataOptions(seed: number, mode: 'push' | 'pull', workload: () => SimWorkload, observers = METADATA_OBSERVERS): SimOptions {
  return {
    ...optionsFromSeed(seed, { mode, durableDisk: false }),
    voters: 3, observers, spares: 0, membershipEveryMs: 0, wipeRate: 0, faultPhaseMs: 1500, proposeEveryMs: 5, compactEveryMs: 5, snapshotPadBytes: 0, settleMs: 1000, workload,
  };
}

/** The command that replays one seed of the metadata simulation. */
export function metadataReplayCommand(seed: number, mode: 'push' | 'pull', observers = METADATA_OBSERVERS): string {
  return `npm run build && node dist/test/sim/metadata-replay.js --seed ${seed} --mode ${mode} --observers ${observers}`;
}
