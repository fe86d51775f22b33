// Where a running node's bytes hit the disk: the segmented log, the term/vote
// file and the snapshot store under one data directory, driven in the order
// the core's persistence contract (src/core/ready.ts) demands:
// snapshot chunks → snapshot → entries (one fdatasync: group commit) → hard
// state. Recovery at start-up finishes a snapshot install that a crash
// interrupted (snapshot durable, log not yet compacted).
//
// The simulator runs this class itself on its faulty file system
// (test/sim/durable-disk.ts), crashing it between and inside persists:
// hence the injectable clock (`now`: the simulator's virtual one, so that the
// lazy commit save is deterministic there), abandon() (a crash that flushes
// nothing) and durableHardState (what the checker takes as durable).
//
// Persistence is split for the Ready driver (src/node/ready-loop.ts):
// write(r) puts a Ready's entries in the log files (the page cache, not yet
// durable) and holds its hard state; sync(done) fdatasyncs the log off the
// event loop (DurableLogStore.syncAsync: libuv's thread pool), and only then
// saves the hard state held for the Readies it covers, so that a durable
// commit index never points past the durable log. Writes go on while a sync
// runs; the next sync covers them (group commit). What stays synchronous on
// the event loop, being rare: installing a received snapshot, truncating the
// log (a conflict), rolling to a new segment (every segmentBytes), and saving
// a changed term or vote (an election); see docs/STORAGE.md.

import type { PersistedState } from '../core/node.js';
import type { Ready } from '../core/ready.js';
import type { SnapshotReader as CoreSnapshotReader } from '../core/config.js';
import { decodeConfiguration, encodeConfiguration } from '../codec/configuration.js';
import type { Configuration, Entry, HardState, SnapshotMeta } from '../protocol/entry.js';
import { dataDirLayout } from '../storage/data-dir.js';
import type { FileSystem } from '../storage/fs.js';
import { DurableLogStore } from '../storage/log/durable-log.js';
import { DurableSnapshotStore } from '../storage/snapshot/durable-snapshot-store.js';
import type { SnapshotReceiver } from '../storage/snapshot/receiver.js';
import { DurableStateStore } from '../storage/state/durable-state-store.js';
import type { SnapshotReader, StoredSnapshotInfo } from '../storage/types.js';

/** What a persist round took, for metrics. */
export interface PersistTiming {
  /** Milliseconds spent in the log's fdatasync, or null when nothing was synced. */
  readonly logSyncMs: number | null;
  readonly entriesWritten: number;
}

/** A node's three stores under one data directory. */
export class NodeStorage {
  readonly log: DurableLogStore;
  readonly state: DurableStateStore;
  readonly snapshots: DurableSnapshotStore;
  private receiving: SnapshotReceiver | null = null;
  private savedHardState: HardState | null = null;
  private pendingHardState: HardState | null = null;
  /** The newest hard state written (write()) and not yet covered by a sync: saved when one ends. */
  private unsyncedHardState: HardState | null = null;
  private commitSavedAt = -Infinity;
  private readonly commitSaveIntervalMs: number;
  private reader: SnapshotReader | null = null;
  private closed = false;
  private readonly now: () => number;

  /**
   * Opens (creating if need be) the stores under `dir`. `now` is the clock in
   * milliseconds for the lazy commit save and the sync timings
   * (performance.now by default); `commitSaveIntervalMs` (default 1000) is
   * how long a change of the commit index alone may wait to be saved.
   */
  constructor(fs: FileSystem, dir: string, opts: { segmentBytes?: number; now?: () => number; commitSaveIntervalMs?: number } = {}) {
    this.commitSaveIntervalMs = opts.commitSaveIntervalMs ?? 1000;
    const layout = dataDirLayout(dir);
    fs.mkdirp(dir);
    this.snapshots = new DurableSnapshotStore(fs, layout.snapshots);
    this.state = new DurableStateStore(fs, layout.state);
    this.log = DurableLogStore.open(fs, layout.log, { segmentBytes: opts.segmentBytes ?? 64 << 20 });
    this.now = opts.now ?? (() => performance.now());
  }

  /**
   * Reads what survived: hard state, the latest snapshot's id, and the log
   * after it. Finishes an interrupted snapshot install first.
   */
  recover(): PersistedState {
    const hardState = this.state.load();
    this.savedHardState = hardState;
    const snap = this.currentSnapshot();
    if (snap !== null && this.log.term(snap.index) !== snap.term && this.log.firstIndex() <= snap.index + 1) {
      // The snapshot became durable but the crash came before the log was
      // cut to it (or the log disagrees with it): the snapshot wins.
      this.log.compactPrefix(snap.index, snap.term);
      this.log.sync();
    }
    const after = Math.max(this.log.firstIndex(), (snap?.index ?? 0) + 1);
    const entries: Entry[] = [];
    for (let lo = after; lo <= this.log.lastIndex();) {
      const batch = this.log.read(lo, this.log.lastIndex() + 1, 1 << 24);
      for (const e of batch) entries.push(e);
      lo += batch.length;
    }
    return { hardState, snapshot: snap, entries };
  }

  /**
   * The current (latest durable) snapshot's id, with the configuration its
   * body records (none: the bootstrap one), or null when there is none.
   */
  currentSnapshot(): SnapshotMeta | null {
    const latest = this.snapshots.latest();
    if (latest === null) return null;
    const config = this.snapshotConfiguration({ index: latest.index, term: latest.term });
    return { index: latest.index, term: latest.term, ...(config !== undefined ? { config } : {}) };
  }

  /**
   * The hard state as the state file holds it: the one recover() read, or the
   * last one saved since. Null before recover(). It may lag the hard states
   * written: a hard state is saved only after the sync that covers the
   * entries before it, and a change of the commit index alone is saved
   * lazily (saveHardState). The simulator's checker reads it.
   */
  get durableHardState(): HardState | null {
    return this.savedHardState;
  }

  /**
   * Makes a ready's state durable in the contract's order, at once (write()
   * then a blocking sync; tools and tests). Returns the snapshot that was
   * installed (its bytes must now be restored into the state machine) or null.
   */
  persist(r: Ready): { installed: StoredSnapshotInfo | null; timing: PersistTiming } {
    const { installed } = this.write(r);
    let logSyncMs: number | null = null;
    if (r.entries.length > 0) {
      const t0 = this.now();
      this.log.sync();
      logSyncMs = this.now() - t0;
    }
    this.saveUnsyncedHardState();
    return { installed, timing: { logSyncMs, entriesWritten: r.entries.length } };
  }

  /**
   * Writes a Ready's state after everything written before, in the
   * contract's order: snapshot chunks, a received snapshot (durable when this
   * returns), entries (written, not synced), and the hard state (held until
   * a sync covers the entries before it). Returns the snapshot installed.
   */
  write(r: Ready): { installed: StoredSnapshotInfo | null } {
    for (const c of r.snapshotChunks) {
      if (this.receiving === null || !sameMeta(this.receiving.meta, c.snapshot)) {
        this.receiving?.close();
        this.receiving = this.snapshots.beginReceive(c.snapshot);
      }
      this.receiving.write(c.offset, c.data);
      if (c.done) this.receiving.checkpoint();
    }
    let installed: StoredSnapshotInfo | null = null;
    if (r.snapshot !== null) installed = this.installReceived(r.snapshot);
    if (r.entries.length > 0) {
      const first = r.entries[0] as Entry;
      const snapIndex = this.snapshots.latest()?.index ?? 0;
      // Entries inside the snapshot are covered by it already.
      const from = Math.max(0, snapIndex + 1 - first.index);
      if (from < r.entries.length) this.log.append(from === 0 ? r.entries : r.entries.slice(from));
    }
    if (r.hardState !== null) this.unsyncedHardState = r.hardState;
    return { installed };
  }

  /**
   * Makes everything written so far durable without blocking on the log's
   * fdatasync, then saves the hard state written before this call, and calls
   * `done(null)`; or `done(err)` on a failure (the node must stop).
   */
  sync(done: (err: unknown) => void): void {
    const hard = this.unsyncedHardState;
    this.unsyncedHardState = null;
    this.log.syncAsync((err) => {
      if (err !== null && err !== undefined) {
        done(err);
        return;
      }
      if (this.closed) {
        // Closed while the fdatasync ran: a restarted node may own the directory now; save nothing more.
        done(new Error('the node storage was closed during a sync'));
        return;
      }
      try {
        if (hard !== null) this.saveHardState(hard);
      } catch (e) {
        done(e);
        return;
      }
      done(null);
    });
  }

  private saveUnsyncedHardState(): void {
    const hard = this.unsyncedHardState;
    this.unsyncedHardState = null;
    if (hard !== null) this.saveHardState(hard);
  }

  /**
   * Term and vote are saved at once, always (a vote must never be forgotten).
   * A change of the commit index alone is saved lazily, at most every
   * `commitSaveIntervalMs`: the state file is replaced atomically (two
   * fsyncs and a rename), which on every commit would double the cost of a
   * write on followers. A persisted commit index that lags is safe — it is
   * only where a restarted node resumes applying before the leader tells it
   * the real one; it never points past the durable log, since the entries it
   * covers were synced first. (A departure from the letter of ready.ts's
   * contract, which asks for every hard state; said so in docs/CLUSTER.md.)
   */
  private saveHardState(h: HardState): void {
    const last = this.savedHardState;
    const now = this.now();
    if (last !== null && last.term === h.term && last.vote === h.vote && now - this.commitSavedAt < this.commitSaveIntervalMs) {
      this.pendingHardState = h;
      return;
    }
    this.state.save(h);
    this.savedHardState = h;
    this.pendingHardState = null;
    this.commitSavedAt = now;
  }

  /** Saves a commit index that saveHardState held back (on close, and from the runtime's timer). */
  flushHardState(): void {
    if (this.pendingHardState === null) return;
    this.state.save(this.pendingHardState);
    this.savedHardState = this.pendingHardState;
    this.pendingHardState = null;
    this.commitSavedAt = this.now();
  }

  /** The received snapshot `meta` becomes current; the log it covers goes. */
  private installReceived(meta: SnapshotMeta): StoredSnapshotInfo {
    const rx = this.receiving !== null && sameMeta(this.receiving.meta, meta) ? this.receiving : this.snapshots.beginReceive(meta);
    this.receiving = null;
    const info = rx.commit();
    this.closeReader();
    this.log.compactPrefix(meta.index, meta.term);
    this.log.sync();
    this.snapshots.removeOlder();
    return info;
  }

  /**
   * Writes a snapshot of the state machine taken at `meta` (the applied
   * index): durable and current before the caller compacts the log to it.
   */
  saveSnapshot(meta: SnapshotMeta, data: Uint8Array, chunkBytes = 1 << 20): StoredSnapshotInfo {
    const w = this.snapshots.beginWrite(meta);
    try {
      if (meta.config !== undefined) w.write(configurationPrefix(meta.config));
      for (let pos = 0; pos < data.byteLength; pos += chunkBytes) w.write(data.subarray(pos, pos + chunkBytes));
      const info = w.commit();
      this.closeReader();
      return info;
    } catch (e) {
      w.abort();
      throw e;
    }
  }

  /** After saveSnapshot: drop the durable log up to the snapshot and older snapshots. */
  compactTo(meta: SnapshotMeta): void {
    this.log.compactPrefix(meta.index, meta.term);
    this.log.sync();
    this.snapshots.removeOlder();
  }

  /** Reads the state machine's bytes of a snapshot (for restoring it at start-up or after an install): the body without its configuration prefix. */
  readSnapshot(meta: SnapshotMeta): Uint8Array {
    const reader = this.snapshots.open(meta);
    if (reader === undefined) throw new Error(`snapshot ${meta.index}/${meta.term} is not in the store`);
    try {
      const body = reader.read(0, reader.info.sizeBytes);
      return splitConfiguration(body, meta).data;
    } finally {
      reader.close();
    }
  }

  /** The configuration a stored snapshot carries (undefined: written before membership could change, i.e. the bootstrap one). */
  private snapshotConfiguration(meta: SnapshotMeta): Configuration | undefined {
    const reader = this.snapshots.open(meta);
    if (reader === undefined) return undefined;
    try {
      const head = reader.read(0, Math.min(reader.info.sizeBytes, CONFIG_HEADER_BYTES));
      if (!hasConfigurationPrefix(head)) return undefined;
      const len = new DataView(head.buffer, head.byteOffset, head.byteLength).getUint32(4, true);
      if (CONFIG_HEADER_BYTES + len > reader.info.sizeBytes) throw new SnapshotConfigurationError(meta, 'its configuration runs past the end of the snapshot');
      return splitConfiguration(reader.read(0, CONFIG_HEADER_BYTES + len), meta, true).config;
    } finally {
      reader.close();
    }
  }

  /** The core's snapshot reader: serves chunks of the current snapshot to followers and observers. */
  readonly coreSnapshotReader: CoreSnapshotReader = (meta, position, maxBytes) => {
    if (this.reader === null || !sameMeta(this.reader.info, meta)) {
      this.closeReader();
      const r = this.snapshots.open(meta);
      if (r === undefined) return undefined;
      this.reader = r;
    }
    const size = this.reader.info.sizeBytes;
    const data = this.reader.read(position, Math.min(maxBytes, Math.max(0, size - position)));
    return { data, done: position + data.byteLength >= size };
  };

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      // A clean stop makes everything written durable, then the hard state held for it.
      this.log.sync();
      this.saveUnsyncedHardState();
      this.flushHardState();
    } catch {
      // closing after a storage failure: nothing more can be saved
    }
    this.closeReader();
    this.receiving?.close();
    this.receiving = null;
    this.log.close();
  }

  /**
   * Lets go of the file handles without making anything more durable: no
   * sync, no hard state saved (neither the one held for the next sync nor a
   * lazily held commit index), no checkpoint of a snapshot being received
   * (its receiver is dropped, not closed, since closing it checkpoints).
   * What was written and not synced is then whatever the file system keeps.
   * For a process that must stop as if killed; the simulator calls it when a
   * node crashes, before its faulty file system decides what survives. The
   * storage is unusable afterwards; a restart opens a new NodeStorage.
   */
  abandon(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsyncedHardState = null;
    this.pendingHardState = null;
    try {
      this.closeReader();
    } catch {
      this.reader = null; // a handle already stale
    }
    this.receiving = null;
    this.log.close();
  }

  private closeReader(): void {
    this.reader?.close();
    this.reader = null;
  }
}

// A snapshot's body on disk (and as it is sent to followers, who store it as
// received) is the state machine's bytes, preceded — when the snapshot names
// the configuration in force at its index, as every snapshot since
// membership changes does — by "QLCF", a u32 (little-endian) length and the
// configuration (src/codec/configuration.ts). The snapshot file's own header
// (src/storage/snapshot/format.ts) stays as it was; a body without the prefix
// is one from before, whose configuration is the bootstrap one.
const CONFIG_MAGIC = [0x51, 0x4c, 0x43, 0x46]; // "QLCF"
const CONFIG_HEADER_BYTES = 8;

/** A snapshot whose configuration prefix is malformed: refused, like any corruption. */
export class SnapshotConfigurationError extends Error {
  override readonly name = 'SnapshotConfigurationError';
  constructor(meta: SnapshotMeta, why: string, options?: ErrorOptions) {
    super(`snapshot ${meta.index}/${meta.term}: ${why}`, options);
  }
}

function configurationPrefix(config: Configuration): Uint8Array {
  const c = encodeConfiguration(config);
  const out = new Uint8Array(CONFIG_HEADER_BYTES + c.byteLength);
  out.set(CONFIG_MAGIC, 0);
  new DataView(out.buffer).setUint32(4, c.byteLength, true);
  out.set(c, CONFIG_HEADER_BYTES);
  return out;
}

function hasConfigurationPrefix(body: Uint8Array): boolean {
  return body.byteLength >= CONFIG_HEADER_BYTES && CONFIG_MAGIC.every((b, i) => body[i] === b);
}

/** Splits a body into its configuration (if it has the prefix) and the state machine's bytes. */
function splitConfiguration(body: Uint8Array, meta: SnapshotMeta, prefixOnly = false): { config: Configuration | undefined; data: Uint8Array } {
  if (!hasConfigurationPrefix(body)) return { config: undefined, data: body };
  const len = new DataView(body.buffer, body.byteOffset, body.byteLength).getUint32(4, true);
  const end = CONFIG_HEADER_BYTES + len;
  if (end > body.byteLength) throw new SnapshotConfigurationError(meta, 'its configuration runs past the end of the snapshot');
  let config: Configuration;
  try {
    config = decodeConfiguration(body.subarray(CONFIG_HEADER_BYTES, end));
  } catch (e) {
    throw new SnapshotConfigurationError(meta, `its configuration does not decode: ${(e as Error).message}`, { cause: e });
  }
  return { config, data: prefixOnly ? new Uint8Array(0) : body.subarray(end) };
}

function sameMeta(a: SnapshotMeta, b: SnapshotMeta): boolean {
  return a.index === b.index && a.term === b.term;
}
