// A node's simulated disk: exactly what survives a crash. The Ready driver
// (src/node/ready-loop.ts) writes a Ready's parts here in the order the
// persistence contract names (write), and makes them durable later (sync),
// while later Readies are written. A crash loses what no sync covered: all of
// it, or (with a random source) a random prefix of it, in write order, as a
// page cache flushed part-way would leave it.

import type { Entry, HardState, SnapshotMeta } from '../../src/protocol/entry.js';
import type { PersistedState } from '../../src/core/node.js';
import type { Ready, SnapshotChunk } from '../../src/core/ready.js';
import type { Prng } from '../../src/util/prng.js';

/** A durable snapshot: its identity and bytes. */
export interface StoredSnapshot {
  readonly meta: SnapshotMeta;
  readonly data: Uint8Array;
}

/**
 * Collects the chunks of a snapshot received from the leader, in order, until
 * the core says it is complete. (The simulator's snapshots are small; the
 * real runtime writes chunks through the snapshot store's receiver.)
 */
export class SnapshotAssembler {
  private partial: { meta: SnapshotMeta; chunks: Uint8Array[]; bytes: number } | null = null;

  add(c: SnapshotChunk): void {
    if (c.offset === 0 || this.partial === null || this.partial.meta.index !== c.snapshot.index) {
      this.partial = { meta: c.snapshot, chunks: [], bytes: 0 };
    }
    if (c.offset === this.partial.bytes) {
      this.partial.chunks.push(c.data);
      this.partial.bytes += c.data.byteLength;
    }
  }

  /** The complete snapshot `meta`, assembled; throws if its bytes did not all arrive. */
  take(meta: SnapshotMeta): StoredSnapshot {
    const p = this.partial;
    if (p === null || p.meta.index !== meta.index || p.meta.term !== meta.term) {
      throw new Error(`install of snapshot ${meta.index}/${meta.term} without its bytes`);
    }
    const data = new Uint8Array(p.bytes);
    let at = 0;
    for (const c of p.chunks) {
      data.set(c, at);
      at += c.byteLength;
    }
    this.partial = null;
    return { meta, data };
  }

  clear(): void {
    this.partial = null;
  }
}

/**
 * What the simulator and the checker need of a node's disk. Two kinds: the
 * in-memory SimDisk below, and DurableSimDisk (durable-disk.ts), which runs
 * the production NodeStorage on a fault-injecting file system.
 */
export interface NodeDisk {
  /** The hard state as durably stored. */
  readonly hardState: HardState;
  /** The current durable snapshot, with its bytes. */
  readonly snapshot: StoredSnapshot | null;
  /** The term at `index` as durably stored (the snapshot's at its index), or undefined. */
  term(index: number): number | undefined;
  /**
   * The core's snapshot reader: up to `maxBytes` of the current snapshot
   * `meta` from `position`, as this disk sends it to followers (undefined when
   * `meta` is not the current one).
   */
  readSnapshotChunk(meta: SnapshotMeta, position: number, maxBytes: number): { data: Uint8Array; done: boolean } | undefined;
  /** Called before each of the node's ticks: timer work of the runtime's (throws FsyncFailedError on a failed sync). */
  tick?(): void;
  /**
   * Writes `r`'s parts in contract order after everything written before,
   * stopping after `budget` steps (a crash part-way); true when all were
   * written. Not durable until sync().
   */
  write(r: Ready, budget: number): boolean;
  /** Makes everything written so far durable (hard states after the entries written before them). Throws FsyncFailedError on a failed sync. */
  sync(): void;
  /** Makes `s` the current snapshot (durably) and drops the log it covers. */
  installSnapshot(s: StoredSnapshot): void;
  /** The machine stopped: whatever was not durable may be lost. */
  crash(): void;
  /** What a restarting node reads back (running recovery). */
  load(): PersistedState;
}

export class SimDisk implements NodeDisk {
  hardState: HardState = { term: 0, vote: null, commit: 0 };
  /** Written, not yet synced: each applies one step to the durable state, in order. */
  private pending: (() => void)[] = [];
  private readonly rng: Prng | null;

  /** With `rng`, a crash keeps a random prefix of the unsynced writes; without, none. */
  constructor(rng: Prng | null = null) {
    this.rng = rng;
  }
  snapshot: StoredSnapshot | null = null;
  /** Entries after the snapshot, consecutive. */
  entries: Entry[] = [];
  /** A snapshot being received, chunk by chunk. */
  readonly incoming = new SnapshotAssembler();

  firstIndex(): number {
    return (this.snapshot?.meta.index ?? 0) + 1;
  }

  lastIndex(): number {
    return (this.snapshot?.meta.index ?? 0) + this.entries.length;
  }

  /** The term at `index` as stored, or undefined. */
  term(index: number): number | undefined {
    const s = this.snapshot?.meta;
    if (index === (s?.index ?? 0)) return s?.term ?? 0;
    return this.entries[index - this.firstIndex()]?.term;
  }

  readSnapshotChunk(meta: SnapshotMeta, position: number, maxBytes: number): { data: Uint8Array; done: boolean } | undefined {
    const s = this.snapshot;
    if (s === null || s.meta.index !== meta.index || s.meta.term !== meta.term) return undefined;
    const end = Math.min(s.data.byteLength, position + maxBytes);
    return { data: s.data.subarray(position, end), done: end >= s.data.byteLength };
  }

  /**
   * Writes the parts of `r` in contract order, not yet durable. `budget` is
   * how many steps may complete before a crash (Infinity: all). Returns true
   * when everything was written. A received snapshot is installed durably
   * at once (with everything written before it), as NodeStorage does.
   */
  write(r: Ready, budget: number): boolean {
    let steps = budget;
    for (const c of r.snapshotChunks) {
      if (steps-- <= 0) return false;
      this.pending.push(() => this.incoming.add(c));
    }
    if (r.snapshot !== null) {
      if (steps-- <= 0) return false;
      const meta = r.snapshot;
      this.pending.push(() => this.installSnapshot(this.incoming.take(meta)));
      this.sync();
    }
    for (const e of r.entries) {
      if (steps-- <= 0) return false;
      this.pending.push(() => this.writeEntry(e));
    }
    if (r.hardState !== null) {
      if (steps-- <= 0) return false;
      const h = r.hardState;
      this.pending.push(() => {
        this.hardState = h;
      });
    }
    return true;
  }

  sync(): void {
    const ops = this.pending;
    this.pending = [];
    for (const op of ops) op();
  }

  /** Makes `s` the current snapshot and drops the log it covers. */
  installSnapshot(s: StoredSnapshot): void {
    const keep = this.term(s.meta.index) === s.meta.term;
    this.entries = keep ? this.entries.slice(s.meta.index - this.firstIndex() + 1) : [];
    this.snapshot = s;
  }

  private writeEntry(e: Entry): void {
    const at = e.index - this.firstIndex();
    if (at < 0) return; // already inside the snapshot
    if (at > this.entries.length) throw new Error(`disk write at ${e.index} leaves a gap after ${this.lastIndex()}`);
    this.entries.length = at;
    this.entries.push(e);
  }

  crash(): void {
    // What a sync covered is durable; of the rest, a prefix may have reached
    // the disk. The partial snapshot receive is kept (it is resumable by design).
    const keep = this.rng === null ? 0 : this.rng.int(0, this.pending.length + 1);
    const ops = this.pending.slice(0, keep);
    this.pending = [];
    for (const op of ops) op();
  }

  /** What a restarting node reads back. */
  load(): PersistedState {
    return {
      hardState: this.hardState,
      snapshot: this.snapshot?.meta ?? null,
      entries: this.entries.slice(),
    };
  }
}
