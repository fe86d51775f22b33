// A node disk for the simulator made of the real durable stores (segmented
// log, term/vote file, snapshot store) on a FaultyFileSystem: simulated
// crashes lose unsynced writes, tear the last one, undo unsynced renames, and
// fsyncs fail. So the Raft simulator exercises the real durable-log code, and
// its invariants (acknowledged entries durable on a majority, votes never
// forgotten) hold against real recovery, not only against the memory disk.
//
// The snapshot store keeps only a snapshot's index and term, so this disk
// writes the rest of its id, the configuration in force at its index
// (docs/MEMBERSHIP.md), at the front of the stored body and reads it back at
// recovery: what a runtime must do too, in some form.
//
// An fsync failure stops the node (FsyncFailedError propagates; the simulator
// crashes the node and restarts it later): it is never retried as if the data
// were safe.

import type { PersistedState } from '../../src/core/node.js';
import type { Ready } from '../../src/core/ready.js';
import { decodeConfiguration, encodeConfiguration } from '../../src/codec/configuration.js';
import type { Entry, HardState, SnapshotMeta } from '../../src/protocol/entry.js';
import { FsyncFailedError } from '../../src/storage/errors.js';
import type { FileSystem } from '../../src/storage/fs.js';
import { DurableLogStore } from '../../src/storage/log/durable-log.js';
import { DurableSnapshotStore } from '../../src/storage/snapshot/durable-snapshot-store.js';
import { DurableStateStore } from '../../src/storage/state/durable-state-store.js';
import { Prng } from '../../src/util/prng.js';
import { SnapshotAssembler, type NodeDisk, type StoredSnapshot } from './disk.js';
import { FaultyFileSystem } from './faulty-fs.js';

/** Knobs for the durable disk's faults. */
export interface DurableDiskOptions {
  readonly segmentBytes: number;
  readonly syncFailureProbability: number;
  /** Probability that a crash is a process kill (page cache kept) rather than a power loss. */
  readonly killRate: number;
}

export class DurableSimDisk implements NodeDisk {
  readonly fs: FaultyFileSystem;
  private readonly rng: Prng;
  private readonly opts: DurableDiskOptions;
  private log: DurableLogStore | null = null;
  private state: DurableStateStore | null = null;
  private snapshots: DurableSnapshotStore | null = null;
  private hard: HardState = { term: 0, vote: null, commit: 0 };
  /** The newest hard state written and not yet synced. */
  private unsyncedHard: HardState | null = null;
  private snap: StoredSnapshot | null = null;
  /** Chunks of a snapshot being received (the receive itself is not persisted here). */
  private readonly incoming = new SnapshotAssembler();
  /** An fsync failed since the last crash: the next crash must be a reboot. */
  private syncFailed = false;
  /** What recovery found after the last crash, for the next load(). */
  private recovered: PersistedState | null = null;

  constructor(rng: Prng, opts: DurableDiskOptions) {
    this.rng = rng;
    this.opts = opts;
    this.fs = new FaultyFileSystem(rng.fork(), { syncFailureProbability: opts.syncFailureProbability, syncDirFailureProbability: opts.syncFailureProbability });
  }

  get hardState(): HardState {
    return this.hard;
  }

  get snapshot(): StoredSnapshot | null {
    return this.snap;
  }

  term(index: number): number | undefined {
    if (this.snap !== null && index === this.snap.meta.index) return this.snap.meta.term;
    if (index === 0) return 0;
    return this.log?.term(index);
  }

  write(r: Ready, budget: number): boolean {
    return this.guard(() => this.writeSteps(r, budget));
  }

  sync(): void {
    this.guard(() => {
      const { log, state } = this.open();
      log.sync();
      const h = this.unsyncedHard;
      this.unsyncedHard = null;
      if (h !== null) {
        state.save(h);
        this.hard = h;
      }
    });
  }

  persist(r: Ready, budget: number): boolean {
    const all = this.write(r, budget);
    if (all) this.sync();
    return all;
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

  private writeSteps(r: Ready, budget: number): boolean {
    const log = this.open().log;
    let steps = budget;
    for (const c of r.snapshotChunks) {
      if (steps-- <= 0) return false;
      this.incoming.add(c);
    }
    if (r.snapshot !== null) {
      if (steps-- <= 0) return false;
      this.installSteps(this.incoming.take(r.snapshot));
    }
    if (r.entries.length > 0) {
      const n = Math.min(r.entries.length, Math.max(0, steps));
      const first = r.entries[0] as Entry;
      // Entries inside the snapshot are already covered by it.
      const from = this.snap === null ? 0 : Math.max(0, this.snap.meta.index + 1 - first.index);
      if (from < n) log.append(r.entries.slice(from, n));
      steps -= r.entries.length;
      if (steps < 0) return false; // appended, not synced: the crash decides what survives
    }
    if (r.hardState !== null) {
      if (steps-- <= 0) return false;
      this.unsyncedHard = r.hardState; // saved by the next sync, after the entries before it
    }
    return true;
  }

  installSnapshot(s: StoredSnapshot): void {
    this.guard(() => this.installSteps(s));
  }

  private installSteps(s: StoredSnapshot): void {
    const { log, snapshots } = this.open();
    const w = snapshots.beginWrite(s.meta);
    w.write(encodeConfigPrefix(s.meta));
    w.write(s.data);
    w.commit();
    this.snap = s;
    // Only after the snapshot is durable may the log it covers go.
    log.compactPrefix(s.meta.index, s.meta.term);
    log.sync();
    snapshots.removeOlder();
  }

  crash(): void {
    try {
      this.log?.close();
    } catch {
      // handles may already be stale
    }
    this.log = null;
    this.state = null;
    this.snapshots = null;
    this.incoming.clear();
    this.unsyncedHard = null;
    if (!this.syncFailed && this.rng.chance(this.opts.killRate)) this.fs.killProcess();
    else this.fs.crash();
    this.syncFailed = false;
    // Recover at once, so that the checker sees what survived (a down node's
    // disk still counts toward "durable on a majority"). Recovery syncs, and
    // a sync may fail: the machine reboots and tries again.
    for (let attempt = 0; ; attempt++) {
      try {
        this.recovered = this.recover();
        return;
      } catch (e) {
        if (!(e instanceof FsyncFailedError) || attempt > 20) throw e;
        this.log = null;
        this.state = null;
        this.snapshots = null;
        this.fs.crash();
      }
    }
  }

  load(): PersistedState {
    const r = this.recovered ?? this.recover();
    this.recovered = null;
    return r;
  }

  private recover(): PersistedState {
    const { log, state, snapshots } = this.open();
    this.hard = state.load();
    const latest = snapshots.latest();
    this.snap = null;
    if (latest !== null) {
      const reader = snapshots.open(latest);
      if (reader === undefined) throw new Error('the latest snapshot vanished');
      try {
        this.snap = decodeConfigPrefix({ index: latest.index, term: latest.term }, reader.read(0, latest.sizeBytes));
      } finally {
        reader.close();
      }
    }
    const snap = this.snap?.meta;
    if (snap !== undefined && log.term(snap.index) !== snap.term && log.firstIndex() <= snap.index + 1) {
      // A snapshot install (or compaction) that crashed after the snapshot was
      // durable but before the log caught up: finish it, as a runtime must.
      log.compactPrefix(snap.index, snap.term);
      log.sync();
    }
    const after = Math.max(log.firstIndex(), (this.snap?.meta.index ?? 0) + 1);
    const entries = after <= log.lastIndex() ? readAll(log, after) : [];
    return { hardState: this.hard, snapshot: this.snap?.meta ?? null, entries };
  }

  /** Opens the stores (running their recovery) if the last crash closed them. */
  private open(): { log: DurableLogStore; state: DurableStateStore; snapshots: DurableSnapshotStore } {
    const fs: FileSystem = this.fs;
    this.snapshots ??= new DurableSnapshotStore(fs, '/node/snapshots');
    this.state ??= new DurableStateStore(fs, '/node/state');
    this.log ??= DurableLogStore.open(fs, '/node/log', { segmentBytes: this.opts.segmentBytes });
    return { log: this.log, state: this.state, snapshots: this.snapshots };
  }
}

function readAll(log: DurableLogStore, from: number): Entry[] {
  const out: Entry[] = [];
  for (let lo = from; lo <= log.lastIndex();) {
    const batch = log.read(lo, log.lastIndex() + 1, 1 << 24);
    out.push(...batch);
    lo += batch.length;
  }
  return out;
}

/** The snapshot's configuration, written before its body: u32 length (0: none) and the encoded configuration. */
function encodeConfigPrefix(meta: SnapshotMeta): Uint8Array {
  const config = meta.config === undefined ? new Uint8Array(0) : encodeConfiguration(meta.config);
  const out = new Uint8Array(4 + config.byteLength);
  new DataView(out.buffer).setUint32(0, config.byteLength);
  out.set(config, 4);
  return out;
}

/** Splits a stored body into the snapshot's id (with its configuration) and the state machine's bytes. */
function decodeConfigPrefix(meta: SnapshotMeta, stored: Uint8Array): StoredSnapshot {
  const length = new DataView(stored.buffer, stored.byteOffset, stored.byteLength).getUint32(0);
  const data = stored.slice(4 + length);
  if (length === 0) return { meta, data };
  return { meta: { ...meta, config: decodeConfiguration(stored.subarray(4, 4 + length)) }, data };
}
