// The runtime's counters and gauges, for /metrics (src/server/metrics.ts) and
// `quorumlog status`. One RuntimeMetrics object per node: the runtime and its
// parts (requests, forwarding, snapshot policy) count into it on the event
// loop; the exporter reads it and drains the sample buffers. Sample buffers
// are bounded so that a node nobody scrapes does not grow.

/** Counters and gauges for /metrics and `quorumlog status`. */
export interface RuntimeMetrics {
  proposalsTotal: number;
  entriesProposedTotal: number;
  /** Commands per proposed entry, for the batch-size histogram. */
  readonly batchSizes: number[];
  /** fdatasync latencies (ms) since the last collection. */
  readonly fsyncMs: number[];
  /** The last (up to 256) fdatasync latencies (ms), oldest first, for /status percentiles (not drained). */
  readonly fsyncRecentMs: number[];
  roundsTotal: number;
  forwardedWrites: number;
  forwardedReads: number;
  rejectedTooMany: number;
  timedOut: number;
  /** Writes proposed again because the leader changed and their first entry can never commit (docs/CLUSTER.md). */
  reproposedWrites: number;
  /** Writes failed with LeaderChangedError('unknown'): the leader changed and their outcome could not be settled. */
  leaderChangedUnknown: number;
  malformedForwardFrames: number;
  stepErrors: number;
  snapshotsTaken: number;
  snapshotsInstalled: number;
}

/** A RuntimeMetrics with every counter at zero and every buffer empty. */
export function newRuntimeMetrics(): RuntimeMetrics {
  return {
    proposalsTotal: 0, entriesProposedTotal: 0, batchSizes: [], fsyncMs: [], fsyncRecentMs: [], roundsTotal: 0, forwardedWrites: 0,
    forwardedReads: 0, rejectedTooMany: 0, timedOut: 0, reproposedWrites: 0, leaderChangedUnknown: 0, malformedForwardFrames: 0, stepErrors: 0,
    snapshotsTaken: 0, snapshotsInstalled: 0,
  };
}

/** Keeps a sample buffer bounded (collected and emptied by the metrics exporter). */
export function pushBounded(xs: number[], x: number, max = 10_000): void {
  if (xs.length < max) xs.push(x);
}

/** Keeps the last `max` items: the oldest is dropped when full. */
export function pushRing<T>(xs: T[], x: T, max: number): void {
  if (xs.length >= max) xs.shift();
  xs.push(x);
}
