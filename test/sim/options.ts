// What a seed decides about a run (swarm testing: each seed draws its own
// cluster shape, mode, fault rates and workload, so that many seeds cover
// many corners rather than one configuration many times).

import type { ReplicationMode } from '../../src/core/config.js';
import type { PlantedBug } from '../../src/core/planted-bugs.js';
import { Prng } from '../../src/util/prng.js';
import type { SimWorkload } from './workload.js';

export interface SimOptions {
  readonly seed: number;
  readonly mode: ReplicationMode;
  readonly voters: number;
  readonly observers: number;
  /** Nodes outside the bootstrap configuration (s1, s2, …): membership changes may add them; in pull mode they fetch as non-members. */
  readonly spares: number;
  /** Mean ms between membership changes asked of the leader (0: never); docs/MEMBERSHIP.md. */
  readonly membershipEveryMs: number;
  /** Virtual milliseconds per tick (each node's clock then drifts by `clockSkew`). */
  readonly tickMs: number;
  readonly electionTimeoutMinTicks: number;
  readonly electionTimeoutMaxTicks: number;
  readonly heartbeatIntervalTicks: number;
  readonly fetchMaxWaitTicks: number;
  /** A node's tick period is tickMs x (1 + s), s drawn in [-clockSkew, clockSkew]. */
  readonly clockSkew: number;
  /** One-way network delay, uniform in [min, max] ms; reordering follows from it. */
  readonly delayMinMs: number;
  readonly delayMaxMs: number;
  readonly dropRate: number;
  readonly duplicateRate: number;
  /** Mean ms between partitions (0: none); each lasts up to partitionMaxMs. */
  readonly partitionEveryMs: number;
  readonly partitionMaxMs: number;
  /** Mean ms between crashes (0: none); a crashed node restarts after up to restartMaxMs. */
  readonly crashEveryMs: number;
  readonly restartMaxMs: number;
  /** Probability that a crash lands in the middle of persisting a Ready. */
  readonly crashMidPersistRate: number;
  /**
   * An fsync ends uniformly within [0, syncDelayMaxMs] virtual ms after it
   * began (its data is durable from the start: the least a real one
   * guarantees); meanwhile the node goes on, writing later Readies (the
   * Ready driver's pipelining) that only the next sync covers. 0: every
   * sync ends in the same instant, as a separate event.
   */
  readonly syncDelayMaxMs: number;
  /** The core's bound on Readies in flight (RaftConfig.maxInflightReadies). */
  readonly maxInflightReadies: number;
  /** Mean ms between snapshots+compactions on some node (0: never). */
  readonly compactEveryMs: number;
  /** Snapshot padding so that transfers take several chunks. */
  readonly snapshotPadBytes: number;
  readonly snapshotChunkBytes: number;
  /** Mean ms between client proposals, and between linearizable reads. */
  readonly proposeEveryMs: number;
  readonly readEveryMs: number;
  readonly maxMessageBytes: number;
  readonly maxInflightMessages: number;
  readonly maxUncommittedBytes: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  /** Mean ms between leader transfers to a random voter (0: never). */
  readonly transferEveryMs: number;
  /** How long faults go on, then how long the healed cluster has to make progress. */
  readonly faultPhaseMs: number;
  readonly livenessBoundTicks: number;
  /** Back each node with the real durable stores on a fault-injecting file system (else the memory disk). */
  readonly durableDisk: boolean;
  readonly segmentBytes: number;
  /** Probability that an fsync of the durable disk fails (the node then stops). */
  readonly diskSyncFailureRate: number;
  readonly plantedBug?: PlantedBug;
  /**
   * Probability that a crashed node restarts on an empty disk with a fresh
   * directory id (a lost disk, docs/LOST-DISKS.md), when a wipe is allowed
   * then: one wiped node at a time, only once its directory id is recorded in
   * a committed configuration that every other voter holds durably, and only
   * where the other voters are a majority without it.
   */
  readonly wipeRate: number;
  /** After liveness is met, run on (healed, no new proposals) for this many virtual ms, so that every node can catch up; default 0. */
  readonly settleMs?: number;
  /** An application workload (state machine + proposals) beside the digest machine; absent: string proposals. */
  readonly workload?: () => SimWorkload;
}

/** Draws a run's options from its seed. `mode` and `plantedBug` may be forced. */
export function optionsFromSeed(
  seed: number, force: { mode?: ReplicationMode; plantedBug?: PlantedBug; durableDisk?: boolean } = {},
): SimOptions {
  const r = new Prng(seed ^ 0x5eed);
  const voters = r.pick([1, 2, 3, 3, 3, 4, 5, 5, 5, 6, 7]);
  const electionTimeoutMinTicks = r.pick([10, 10, 15, 20]);
  const stormy = r.chance(0.25);
  const opts: SimOptions = {
    seed,
    mode: force.mode ?? (r.chance(0.5) ? 'push' : 'pull'),
    voters,
    observers: r.pick([0, 0, 1, 2, 3]),
    spares: 0,
    membershipEveryMs: 0,
    tickMs: 10,
    electionTimeoutMinTicks,
    electionTimeoutMaxTicks: electionTimeoutMinTicks * 2,
    heartbeatIntervalTicks: r.pick([1, 2, 3]),
    fetchMaxWaitTicks: r.pick([1, 2, 5]),
    clockSkew: r.pick([0, 0.01, 0.05, 0.2]),
    delayMinMs: r.pick([0, 1, 2]),
    delayMaxMs: r.pick([2, 5, 10, 30]),
    dropRate: r.pick([0, 0, 0.01, 0.05, stormy ? 0.3 : 0.1]),
    duplicateRate: r.pick([0, 0.01, 0.05]),
    partitionEveryMs: r.pick([0, 500, 1500, 4000]),
    partitionMaxMs: r.pick([200, 1000, 3000]),
    crashEveryMs: r.pick([0, 400, 1500, 5000]),
    restartMaxMs: r.pick([50, 500, 2000]),
    crashMidPersistRate: r.pick([0, 0.3, 0.7]),
    compactEveryMs: r.pick([0, 0, 200, 1000]),
    snapshotPadBytes: r.pick([0, 100, 3000]),
    snapshotChunkBytes: r.pick([64, 1024, 1 << 16]),
    proposeEveryMs: r.pick([2, 10, 30, 100]),
    readEveryMs: r.pick([0, 50, 200]),
    maxMessageBytes: r.pick([64, 1024, 4096, 1 << 20]),
    maxInflightMessages: r.pick([1, 4, 64]),
    maxUncommittedBytes: 0,
    preVote: !r.chance(0.15),
    checkQuorum: !r.chance(0.15),
    transferEveryMs: r.pick([0, 0, 500, 2000]),
    faultPhaseMs: r.pick([2000, 4000, 8000]),
    livenessBoundTicks: 0,
    durableDisk: false,
    segmentBytes: 4096,
    diskSyncFailureRate: 0,
    wipeRate: 0,
    syncDelayMaxMs: 0,
    maxInflightReadies: 64,
    ...(force.plantedBug === undefined ? {} : { plantedBug: force.plantedBug }),
  };
  // After healing: a few election rounds (split votes included), plus the
  // time it takes to discover and fill in a leader and propagate a commit.
  // Back pressure keeps the backlog a leader can build within what a few
  // dozen messages carry, so that catching up after healing has a bound.
  const maxUncommittedBytes = Math.min(r.pick([2048, 16384, 1 << 20]), 32 * opts.maxMessageBytes);
  // Drawn last, so that adding the durable disk left every earlier choice of a seed as it was.
  const durableDisk = force.durableDisk ?? r.chance(0.25);
  const segmentBytes = r.pick([512, 4096, 65536]);
  const diskSyncFailureRate = r.pick([0, 0, 0.0005, 0.005]);
  // Drawn after the durable disk, for the same reason.
  const spares = r.pick([0, 1, 2]);
  const membershipEveryMs = r.pick([0, 100, 300, 1000]);
  // Drawn last, for the same reason.
  const wipeRate = r.pick([0, 0, 0.1, 0.3]);
  // Drawn last, for the same reason (asynchronous persistence, issue 16).
  const syncDelayMaxMs = r.pick([0, 0.5, 2, 8]);
  const maxInflightReadies = r.pick([1, 4, 64]);
  return { ...opts, syncDelayMaxMs, maxInflightReadies, durableDisk, segmentBytes, diskSyncFailureRate, maxUncommittedBytes, spares, membershipEveryMs, wipeRate, livenessBoundTicks: 12 * opts.electionTimeoutMaxTicks + Math.ceil(opts.restartMaxMs / opts.tickMs) };
}
