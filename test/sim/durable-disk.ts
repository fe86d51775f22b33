// A node disk for the simulator that is the production storage itself: a
// NodeStorage (src/node/node-storage.ts) on a FaultyFileSystem. So what the
// simulator crash-tests is the real path from a Ready to the disk —
// NodeStorage.write (snapshot chunks through the snapshot receiver, a
// received snapshot's install, entries appended to the segmented log, the
// hard state held for the next sync), NodeStorage.sync (the log's fdatasync,
// then the held hard state, with the lazy save of a commit-only change),
// saveSnapshot/compactTo (the simulator's own compactions, with the "QLCF"
// configuration prefix), readSnapshot, the core's snapshot reader (what a
// leader sends), and recover() at every restart. This file only adapts it to
// the simulator's NodeDisk: cutting a Ready short for a crash part-way,
// turning a failed sync into a thrown FsyncFailedError, and crashing.
//
// A crash flushes nothing (NodeStorage.abandon()); the faulty file system
// then decides what survives: unsynced writes lost, kept or torn (sometimes
// zero-filling the sector), unsynced renames undone, or, as a process kill,
// the page cache kept. The node's clock for the lazy commit save is the
// simulator's virtual one, so a seed still fixes the whole run.
//
// An fsync failure stops the node (FsyncFailedError propagates; the simulator
// crashes the node and restarts it later): it is never retried as if the data
// were safe, and the crash after it is a reboot (see guard()).

import type { PersistedState } from '../../src/core/node.js';
import type { Ready } from '../../src/core/ready.js';
import type { HardState, SnapshotMeta } from '../../src/protocol/entry.js';
import { NodeStorage } from '../../src/node/node-storage.js';
import { FsyncFailedError } from '../../src/storage/errors.js';
import type { Prng } from '../../src/util/prng.js';
import type { NodeDisk, StoredSnapshot } from './disk.js';
import { FaultyFileSystem } from './faulty-fs.js';

/** Knobs for the durable disk's faults. */
export interface DurableDiskOptions {
  readonly segmentBytes: number;
  readonly syncFailureProbability: number;
  /** Probability that a crash is a process kill (page cache kept) rather than a power loss. */
  readonly killRate: number;
  /** The simulator's virtual clock, in ms: NodeStorage's `now` (the lazy commit save). */
  readonly now: () => number;
  /** NodeStorage's commitSaveIntervalMs (its default, 1000, when absent). */
  readonly commitSaveIntervalMs?: number;
}

/** Where the node's data directory lives on its file system. */
const DATA_DIR = '/node';

/** How often (virtual ms) the disk does what the runtime's once-a-second timer does: save a commit index held back. */
const FLUSH_EVERY_MS = 1000;

export class DurableSimDisk implements NodeDisk {
  readonly fs: FaultyFileSystem;
  private readonly rng: Prng;
  private readonly opts: DurableDiskOptions;
  /** The running node's storage; replaced (recovered) at every crash. */
  private storage: NodeStorage | null = null;
  private snap: StoredSnapshot | null = null;
  /** An fsync failed since the last crash: the next crash must be a reboot. */
  private syncFailed = false;
  /** What recovery found after the last crash, for the next load(). */
  private recovered: PersistedState | null = null;
  private flushedAt = 0;

  constructor(rng: Prng, opts: DurableDiskOptions) {
    this.rng = rng;
    this.opts = opts;
    this.fs = new FaultyFileSystem(rng.fork(), { syncFailureProbability: opts.syncFailureProbability, syncDirFailureProbability: opts.syncFailureProbability });
  }

  /** What the state file holds (the lazily saved commit index included). */
  get hardState(): HardState {
    return this.storage?.durableHardState ?? ZERO_HARD_STATE;
  }

  get snapshot(): StoredSnapshot | null {
    return this.snap;
  }

  term(index: number): number | undefined {
    if (this.snap !== null && index === this.snap.meta.index) return this.snap.meta.term;
    if (index === 0) return 0;
    return this.storage?.log.term(index);
  }

  readSnapshotChunk(meta: SnapshotMeta, position: number, maxBytes: number): { data: Uint8Array; done: boolean } | undefined {
    // What a leader in production sends: the stored body, configuration prefix included.
    return this.storage?.coreSnapshotReader(meta, position, maxBytes);
  }

  write(r: Ready, budget: number): boolean {
    return this.guard(() => {
      const storage = this.open();
      const all = budget >= readySteps(r);
      const w = all ? r : cutReady(r, budget);
      storage.write(w);
      if (w.snapshot !== null) this.readSnapshotBack(); // installed, durable
      return all;
    });
  }

  sync(): void {
    this.guard(() => {
      let called = false;
      let failure: unknown = null;
      this.open().sync((err) => {
        called = true;
        failure = err;
      });
      // The faulty file system's handles have no syncAsync: the log syncs inline, so done has run.
      if (!called) throw new Error('NodeStorage.sync did not end at once on the faulty file system');
      if (failure !== null && failure !== undefined) throw failure;
    });
  }

  /** The runtime's once-a-second timer: saves a commit index the lazy save held back. */
  tick(): void {
    const storage = this.storage;
    if (storage === null || this.opts.now() - this.flushedAt < FLUSH_EVERY_MS) return;
    this.flushedAt = this.opts.now();
    this.guard(() => storage.flushHardState());
  }

  installSnapshot(s: StoredSnapshot): void {
    this.guard(() => {
      const storage = this.open();
      storage.saveSnapshot(s.meta, s.data);
      // Only after the snapshot is durable may the log it covers go.
      storage.compactTo(s.meta);
      this.readSnapshotBack();
    });
  }

  /**
   * Runs a write path, noting an fsync failure: after one, the crash that
   * follows is a machine reboot, not a process restart. (After a failed
   * fsync Linux may drop the dirty pages yet mark them clean, so a restarted
   * process would read, and a later fsync would "confirm", bytes that are not
   * on disk: undetectable. The operator's rule is in docs/STORAGE.md.)
   */
  private guard<T>(f: () => T): T {
    try {
      return f();
    } catch (e) {
      if (e instanceof FsyncFailedError) this.syncFailed = true;
      throw e;
    }
  }

  crash(): void {
    const before = this.storage?.durableHardState ?? null;
    this.dropStorage();
    if (!this.syncFailed && this.rng.chance(this.opts.killRate)) this.fs.killProcess();
    else this.fs.crash();
    this.syncFailed = false;
    // Recover at once, so that the checker sees what survived (a down node's
    // disk still counts toward "durable on a majority"). Recovery syncs, and
    // a sync may fail: the machine reboots and tries again.
    for (let attempt = 0; ; attempt++) {
      try {
        this.recovered = this.recover();
        break;
      } catch (e) {
        if (!(e instanceof FsyncFailedError) || attempt > 20) throw e;
        this.dropStorage();
        this.fs.crash();
      }
    }
    const after = this.hardState;
    if (before !== null && (after.term < before.term || (after.term === before.term && before.vote !== null && after.vote !== before.vote) ||
      (after.term === before.term && after.commit < before.commit))) {
      throw new Error(`the durable hard state went back across a crash: {term ${before.term}, vote ${before.vote}, commit ${before.commit}} ` +
        `saved, {term ${after.term}, vote ${after.vote}, commit ${after.commit}} recovered`);
    }
  }

  load(): PersistedState {
    const r = this.recovered ?? this.recover();
    this.recovered = null;
    return r;
  }

  /** Opens a NodeStorage on the directory (its stores run their own recovery) and runs its recover(). */
  private recover(): PersistedState {
    this.dropStorage();
    this.snap = null;
    const storage = this.open();
    const persisted = storage.recover();
    this.flushedAt = this.opts.now();
    this.readSnapshotBack();
    return persisted;
  }

  /** Lets go of the storage as a crash would: nothing more is synced or saved. */
  private dropStorage(): void {
    this.storage?.abandon();
    this.storage = null;
  }

  /** The current snapshot as the disk holds it: its id and configuration from the stored body, its state machine bytes. */
  private readSnapshotBack(): void {
    const storage = this.open();
    const meta = storage.currentSnapshot();
    this.snap = meta === null ? null : { meta, data: storage.readSnapshot(meta) };
  }

  private open(): NodeStorage {
    this.storage ??= new NodeStorage(this.fs, DATA_DIR, {
      segmentBytes: this.opts.segmentBytes,
      now: this.opts.now,
      ...(this.opts.commitSaveIntervalMs === undefined ? {} : { commitSaveIntervalMs: this.opts.commitSaveIntervalMs }),
    });
    return this.storage;
  }
}

const ZERO_HARD_STATE: HardState = { term: 0, vote: null, commit: 0 };

/** A Ready's parts, as the simulator counts steps: each snapshot chunk, the snapshot, each entry, the hard state. */
function readySteps(r: Ready): number {
  return r.snapshotChunks.length + (r.snapshot !== null ? 1 : 0) + r.entries.length + (r.hardState !== null ? 1 : 0);
}

/** `r` with only its first `budget` parts (in contract order; fewer than all, so never its hard state): what a crash part-way has written. */
function cutReady(r: Ready, budget: number): Ready {
  let left = Math.max(0, budget);
  const snapshotChunks = r.snapshotChunks.slice(0, left);
  left -= snapshotChunks.length;
  let snapshot = null;
  if (r.snapshot !== null && left > 0) {
    snapshot = r.snapshot;
    left--;
  }
  const entries = r.entries.slice(0, left);
  return { ...r, snapshotChunks, snapshot, entries, hardState: null };
}
