// When a running node snapshots its state machine and compacts its log: after
// `snapshotEveryEntries` applied entries or `snapshotEveryBytes` bytes of
// them since the last snapshot, whichever comes first (the core keeps the
// log since the last snapshot in memory, so this bounds its memory too). The
// snapshot is taken at the applied index, with the configuration in force
// there, made durable (NodeStorage.saveSnapshot), and then the core and the
// stores drop the entries it covers. A snapshot installed from the leader
// restarts the count.

import type { Logger } from 'pino';
import type { RaftNode } from '../core/node.js';
import type { LogIndex } from '../protocol/ids.js';
import type { NodeStorage } from './node-storage.js';
import type { RuntimeMetrics } from './runtime-metrics.js';

/** What the snapshot policy needs from its node. */
export interface SnapshotPolicyOptions {
  readonly core: RaftNode;
  readonly storage: NodeStorage;
  /** The state machine (its whole state, at the last applied index). */
  readonly stateMachine: { snapshot(): Uint8Array };
  readonly log: Logger;
  readonly metrics: RuntimeMetrics;
  readonly everyEntries: number;
  readonly everyBytes: number;
  /** The index of the snapshot the node recovered from (0 without one). */
  readonly snapshotIndex: LogIndex;
  /** performance.now() (to log how long a snapshot took). */
  readonly now: () => number;
}

/** Decides when to snapshot and compact, and does it. Invariant: lastSnapshotIndex ≤ the applied index. */
export class SnapshotPolicy {
  private readonly opts: SnapshotPolicyOptions;
  private lastSnapshotIndex: LogIndex;
  /** Bytes of entries applied since the last snapshot. */
  private bytesSinceSnapshot = 0;

  constructor(opts: SnapshotPolicyOptions) {
    this.opts = opts;
    this.lastSnapshotIndex = opts.snapshotIndex;
  }

  /** An entry of `bytes` bytes applied. */
  entryApplied(bytes: number): void {
    this.bytesSinceSnapshot += bytes;
  }

  /** A snapshot up to `index` was installed from the leader. */
  snapshotInstalled(index: LogIndex): void {
    this.lastSnapshotIndex = index;
    this.bytesSinceSnapshot = 0;
  }

  /** After enough applied entries: snapshot the state machine at `applied`, make it durable, compact the log. */
  maybeSnapshot(applied: LogIndex): void {
    const { core, storage, log, metrics } = this.opts;
    if (applied === this.lastSnapshotIndex) return;
    if (applied - this.lastSnapshotIndex < this.opts.everyEntries && this.bytesSinceSnapshot < this.opts.everyBytes) return;
    const index = applied;
    const term = core.log.term(index);
    if (term === undefined) return;
    const meta = core.snapshotMeta(index); // with the configuration in force there, stored with the snapshot
    const t0 = this.opts.now();
    const data = this.opts.stateMachine.snapshot();
    storage.saveSnapshot(meta, data);
    core.compact(index);
    storage.compactTo(meta);
    this.lastSnapshotIndex = index;
    this.bytesSinceSnapshot = 0;
    metrics.snapshotsTaken++;
    log.info({ index, term, bytes: data.byteLength, ms: Math.round(this.opts.now() - t0) }, 'took a snapshot and compacted the log');
  }
}
