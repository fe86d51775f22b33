// A deterministic, fault-injecting, in-memory FileSystem for the simulator and
// the storage crash tests. It models what a disk really holds after power loss,
// so that the real durable stores (src/storage) can be crashed at any point and
// reopened, with every fault chosen by a seeded Prng and so replayable:
//
// - File data: each file (inode) has its durable content (as of its last
//   successful FileHandle.sync()) and its current content (the page cache).
//   Writes and truncations since the last sync are "pending". On crash() each
//   file with pending operations is, by the Prng, lost (back to durable), kept
//   (all pending applied) or torn (a prefix of the pending bytes kept, and
//   optionally the sector around the tear zero-filled and the file extended
//   with zeros, as ext4 can leave it after delayed allocation).
// - Directory entries: create, rename and remove are pending until syncDir()
//   of their directory succeeds. On crash(), each directory keeps its durable
//   entries plus a Prng-chosen prefix of its pending operations (a journal
//   commits metadata in order): a new file may be missing, a rename may or may
//   not have happened (atomically: old or new, never neither), a remove may be
//   undone. A cross-directory rename is an unlink in one directory and a link
//   in the other, each durable with its own directory.
// - fsyncgate: a failed sync() throws EIO and drops the dirty pages' dirty
//   flag. The bytes it covered are in an unknown state: a later sync() succeeds
//   without making them durable, and at the next crash none, all or a prefix
//   of them survive (under whatever later syncs made durable). Callers must
//   not retry a failed sync.
// - Knobs: failNextSync / failNextSyncDir / failNextWrite (by path prefix),
//   failure probabilities, and crashAfterOps(n) which makes the n-th mutating
//   operation throw SimulatedCrashError (the machine is down until crash(),
//   or killProcess() for a process death without power loss).
//
// Simplifications (documented, deliberate): unsynced bytes of one file reach
// the disk in the order written (a prefix survives; no out-of-order pages, which
// real page cache writeback can produce); directories made by mkdirp are
// durable at once; a failed syncDir leaves its operations pending (no
// fsyncgate for directories); file metadata other than size is not modelled.

import * as nodePath from 'node:path';
import type { FileHandle, FileSystem } from '../../src/storage/fs.js';
import { Prng } from '../../src/util/prng.js';

/** An error shaped like node's system errors (`code`, `syscall`, `path`). */
export class FaultyFsError extends Error {
  override readonly name = 'FaultyFsError';
  readonly code: string;
  readonly syscall: string;
  readonly path: string;

  constructor(code: string, syscall: string, path: string, detail = '') {
    super(`${code}: ${detail || describe(code)}, ${syscall} '${path}'`);
    this.code = code;
    this.syscall = syscall;
    this.path = path;
  }
}

/**
 * Thrown by the operation at which crashAfterOps() set the machine to die, and
 * by every operation after it until crash() is called: the process is gone.
 */
export class SimulatedCrashError extends Error {
  override readonly name = 'SimulatedCrashError';
}

/** Thrown when a FileHandle is used after close() or after a crash(). */
export class StaleHandleError extends Error {
  override readonly name = 'StaleHandleError';
}

/** Tuning of the fault model; every field is optional. */
export interface FaultyFsOptions {
  /** Probability that any file sync() fails with EIO (default 0). */
  syncFailureProbability?: number;
  /** Probability that any syncDir() fails with EIO (default 0). */
  syncDirFailureProbability?: number;
  /** Probability that any write() fails with EIO after writing a random prefix (default 0). */
  writeFailureProbability?: number;
  /** Relative weights of the crash outcomes for a file with unsynced writes (default 1 each). */
  crashOutcomeWeights?: { lost?: number; kept?: number; torn?: number };
  /** Probability that a torn write also zero-fills the sector around the tear (default 0.5). */
  zeroFillProbability?: number;
  /** Sector size in bytes for zero-filled tears (default 512). */
  sectorBytes?: number;
}

/** What crash() did to one file with unsynced or uncertain data. */
export interface FileCrashOutcome {
  /** The file's names after the crash (empty when no directory entry survived; then not reported). */
  readonly paths: string[];
  /** What happened to the writes and truncations pending since the last sync ('none': there were none). */
  readonly outcome: 'none' | 'lost' | 'kept' | 'torn' | 'torn-zeroed';
  /** Pending bytes (a truncation counts as one) and how many of them survived. */
  readonly pendingUnits: number;
  readonly keptUnits: number;
  /** Operations left in an unknown state by a failed sync, and how many of them survived whole. */
  readonly uncertainOps: number;
  readonly uncertainKept: number;
}

/** What crash() did to one directory with pending operations. */
export interface DirCrashOutcome {
  readonly dir: string;
  /** Operations pending since the last syncDir, and the prefix of them that survived. */
  readonly pendingOps: string[];
  readonly appliedOps: number;
}

/** The effect of one crash(), for tests that want to see which faults fired. */
export interface CrashReport {
  readonly files: FileCrashOutcome[];
  readonly dirs: DirCrashOutcome[];
}

/** stat() of one file. */
export interface FaultyFileStat {
  /** Size as the running program sees it. */
  readonly sizeBytes: number;
  /** Size of the content a crash is sure to keep. */
  readonly durableSizeBytes: number;
  /** Whether the name is in its directory's durable entries (survives a crash for sure). */
  readonly nameDurable: boolean;
  /** Writes and truncations since the last sync. */
  readonly unsyncedOps: number;
  /** Operations left in an unknown state by a failed sync. */
  readonly uncertainOps: number;
}

type FileOp =
  | { readonly kind: 'write'; readonly position: number; readonly data: Uint8Array }
  | { readonly kind: 'truncate'; readonly length: number };

/** A growable byte buffer; bytes in [length, capacity) are always zero. */
class Bytes {
  private buf: Uint8Array;
  length: number;

  constructor(initial?: Uint8Array) {
    this.buf = new Uint8Array(Math.max(64, initial?.byteLength ?? 0));
    this.length = 0;
    if (initial !== undefined) this.write(0, initial);
  }

  private reserve(n: number): void {
    if (n <= this.buf.byteLength) return;
    const next = new Uint8Array(Math.max(n, this.buf.byteLength * 2));
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }

  write(position: number, data: Uint8Array): void {
    const end = position + data.byteLength;
    this.reserve(end);
    this.buf.set(data, position);
    if (end > this.length) this.length = end;
  }

  truncate(length: number): void {
    if (length < this.length) this.buf.fill(0, length, this.length);
    else this.reserve(length);
    this.length = length;
  }

  read(length: number, position: number): Uint8Array {
    const lo = Math.min(position, this.length);
    const hi = Math.min(position + length, this.length);
    return this.buf.slice(lo, hi);
  }

  /** A copy of the whole content. */
  bytes(): Uint8Array {
    return this.buf.slice(0, this.length);
  }

  clone(): Bytes {
    return new Bytes(this.bytes());
  }

  flip(offset: number, bit: number): void {
    const old = this.buf[offset];
    if (old === undefined || offset >= this.length) throw new RangeError(`offset ${offset} outside [0, ${this.length})`);
    this.buf[offset] = old ^ (1 << bit);
  }
}

function applyOp(b: Bytes, op: FileOp): void {
  if (op.kind === 'write') b.write(op.position, op.data);
  else b.truncate(op.length);
}

/** Units of an operation for tearing: a write's bytes, or 1 for a truncation. */
function opUnits(op: FileOp): number {
  return op.kind === 'write' ? op.data.byteLength : 1;
}

/** One file's data, shared by every name and handle that refers to it. */
class Inode {
  readonly id: number;
  /** What the program reads: durable content plus every operation since. */
  current: Bytes;
  /** Durable content, before `durableOps`. */
  base: Bytes;
  /** Operations after `base`: certain ones were synced, uncertain ones were covered by a failed sync. */
  durableOps: { op: FileOp; certain: boolean }[] = [];
  /** Operations since the last sync (successful or not). */
  pending: FileOp[] = [];

  constructor(id: number, content: Bytes) {
    this.id = id;
    this.current = content;
    this.base = content.clone();
  }

  /** The content a crash is sure to keep (uncertain operations left out). */
  certain(): Bytes {
    const b = this.base.clone();
    for (const d of this.durableOps) if (d.certain) applyOp(b, d.op);
    return b;
  }

  clean(): boolean {
    return this.pending.length === 0 && this.durableOps.length === 0;
  }
}

/** A pending directory operation: name assignments applied atomically (null: unlink). */
interface DirOp {
  readonly desc: string;
  readonly changes: readonly (readonly [string, Inode | null])[];
}

function norm(p: string): string {
  const n = nodePath.normalize(p);
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
}

function describe(code: string): string {
  switch (code) {
    case 'ENOENT': return 'no such file or directory';
    case 'EIO': return 'i/o error';
    case 'EISDIR': return 'illegal operation on a directory';
    case 'ENOTDIR': return 'not a directory';
    case 'EEXIST': return 'file already exists';
    default: return code;
  }
}

/**
 * The fault-injecting file system. Every random choice comes from the Prng it
 * is given, in an order fixed by the calls made, so a seed replays a run.
 */
export class FaultyFileSystem implements FileSystem {
  private readonly prng: Prng;
  private readonly opts: Required<Omit<FaultyFsOptions, 'crashOutcomeWeights'>> & {
    weights: { lost: number; kept: number; torn: number };
  };
  private readonly dirs = new Set<string>(['/', '.']);
  private live = new Map<string, Map<string, Inode>>();
  private durable = new Map<string, Map<string, Inode>>();
  private pendingDir = new Map<string, DirOp[]>();
  private nextInode = 1;
  /** Incremented by crash(): handles from an older epoch are stale. */
  epoch = 0;
  private down = false;
  private crashCountdown: number | undefined;
  private readonly failSyncs: string[] = [];
  private readonly failSyncDirs: string[] = [];
  private readonly failWrites: string[] = [];
  /** Mutating operations performed so far (write, truncate, sync, open with create, rename, remove, syncDir, mkdirp). */
  mutatingOps = 0;
  /** Faults injected so far, by kind, for tests and reports. */
  readonly injected = { syncFailures: 0, syncDirFailures: 0, writeFailures: 0, crashes: 0 };

  constructor(prng: Prng, options: FaultyFsOptions = {}) {
    this.prng = prng;
    const w = options.crashOutcomeWeights ?? {};
    this.opts = {
      syncFailureProbability: options.syncFailureProbability ?? 0,
      syncDirFailureProbability: options.syncDirFailureProbability ?? 0,
      writeFailureProbability: options.writeFailureProbability ?? 0,
      zeroFillProbability: options.zeroFillProbability ?? 0.5,
      sectorBytes: options.sectorBytes ?? 512,
      weights: { lost: w.lost ?? 1, kept: w.kept ?? 1, torn: w.torn ?? 1 },
    };
    for (const d of this.dirs) {
      this.live.set(d, new Map());
      this.durable.set(d, new Map());
    }
  }

  // ---- fault knobs -------------------------------------------------------

  /** The next file sync() on a path starting with `pathPrefix` (any path if omitted) fails with EIO. */
  failNextSync(pathPrefix = ''): void {
    this.failSyncs.push(norm0(pathPrefix));
  }

  /** The next syncDir() of a directory starting with `pathPrefix` fails with EIO. */
  failNextSyncDir(pathPrefix = ''): void {
    this.failSyncDirs.push(norm0(pathPrefix));
  }

  /** The next write() to a path starting with `pathPrefix` writes a random prefix of its bytes, then fails with EIO. */
  failNextWrite(pathPrefix = ''): void {
    this.failWrites.push(norm0(pathPrefix));
  }

  /**
   * The `n`-th mutating operation from now (n >= 1) throws SimulatedCrashError
   * instead of running, and so does every operation after it, until crash().
   * Pass undefined to disarm.
   */
  crashAfterOps(n: number | undefined): void {
    this.crashCountdown = n;
  }

  /** True between a SimulatedCrashError and the crash() or killProcess() that follows. */
  isDown(): boolean {
    return this.down;
  }

  // ---- FileSystem --------------------------------------------------------

  open(file: string, opts: { create: boolean }): FileHandle {
    const p = norm(file);
    this.alive();
    const { dir, name } = split(p);
    const entries = this.dirEntries(dir, 'open', p);
    if (this.dirs.has(p)) throw new FaultyFsError('EISDIR', 'open', p);
    let inode = entries.get(name);
    if (inode === undefined) {
      if (!opts.create) throw new FaultyFsError('ENOENT', 'open', p);
      this.mutating();
      inode = new Inode(this.nextInode++, new Bytes());
      entries.set(name, inode);
      this.recordDirOp(dir, { desc: `create ${name}`, changes: [[name, inode]] });
    }
    return new FaultyFileHandle(this, p, inode, this.epoch);
  }

  exists(file: string): boolean {
    this.alive();
    const p = norm(file);
    if (this.dirs.has(p)) return true;
    const { dir, name } = split(p);
    return this.live.get(dir)?.has(name) ?? false;
  }

  list(dir: string): string[] {
    this.alive();
    const d = norm(dir);
    const entries = this.dirEntries(d, 'scandir', d);
    const names = [...entries.keys()];
    for (const sub of this.dirs) {
      if (sub !== d && split(sub).dir === d) names.push(split(sub).name);
    }
    return names;
  }

  mkdirp(dir: string): void {
    this.alive();
    const d = norm(dir);
    if (this.dirs.has(d)) return;
    this.mutating();
    const chain: string[] = [];
    for (let cur = d; !this.dirs.has(cur); cur = nodePath.dirname(cur)) {
      const { dir: parent, name } = split(cur);
      if (this.live.get(parent)?.has(name)) throw new FaultyFsError('ENOTDIR', 'mkdir', cur);
      chain.push(cur);
    }
    for (const c of chain) {
      this.dirs.add(c);
      this.live.set(c, new Map());
      this.durable.set(c, new Map());
    }
  }

  rename(from: string, to: string): void {
    this.alive();
    const f = norm(from);
    const t = norm(to);
    const src = split(f);
    const dst = split(t);
    const srcEntries = this.dirEntries(src.dir, 'rename', f);
    const dstEntries = this.dirEntries(dst.dir, 'rename', t);
    const inode = srcEntries.get(src.name);
    if (inode === undefined) throw new FaultyFsError('ENOENT', 'rename', f);
    if (this.dirs.has(t)) throw new FaultyFsError('EISDIR', 'rename', t);
    this.mutating();
    if (f === t) return;
    srcEntries.delete(src.name);
    dstEntries.set(dst.name, inode);
    if (src.dir === dst.dir) {
      this.recordDirOp(src.dir, { desc: `rename ${src.name} ${dst.name}`, changes: [[src.name, null], [dst.name, inode]] });
    } else {
      this.recordDirOp(src.dir, { desc: `unlink ${src.name} (rename to ${t})`, changes: [[src.name, null]] });
      this.recordDirOp(dst.dir, { desc: `link ${dst.name} (rename from ${f})`, changes: [[dst.name, inode]] });
    }
  }

  remove(file: string): void {
    this.alive();
    const p = norm(file);
    if (this.dirs.has(p)) throw new FaultyFsError('EISDIR', 'rm', p);
    const { dir, name } = split(p);
    const entries = this.live.get(dir);
    if (entries === undefined || !entries.has(name)) return; // rm -f: nothing to do
    this.mutating();
    entries.delete(name);
    this.recordDirOp(dir, { desc: `remove ${name}`, changes: [[name, null]] });
  }

  syncDir(dir: string): void {
    this.alive();
    const d = norm(dir);
    const entries = this.dirEntries(d, 'fsync', d);
    this.mutating();
    if (this.shouldFail(this.failSyncDirs, d, this.opts.syncDirFailureProbability)) {
      this.injected.syncDirFailures++;
      throw new FaultyFsError('EIO', 'fsync', d);
    }
    this.durable.set(d, new Map(entries));
    this.pendingDir.delete(d);
  }

  // ---- crash -------------------------------------------------------------

  /**
   * Power loss and restart: every directory keeps its durable entries plus a
   * random prefix of its pending operations; every file keeps its durable
   * content, each uncertain operation (from a failed sync) survives, is lost or
   * is torn, and its pending operations are lost, kept or torn. Open handles
   * become stale. Fault knobs armed with failNext* stay armed.
   */
  crash(): CrashReport {
    this.injected.crashes++;
    this.epoch++;
    this.down = false;
    this.crashCountdown = undefined;
    const dirReports: DirCrashOutcome[] = [];
    const newLive = new Map<string, Map<string, Inode>>();
    for (const d of [...this.dirs].sort()) {
      const entries = new Map(this.durable.get(d));
      const ops = this.pendingDir.get(d) ?? [];
      const k = ops.length > 0 ? this.prng.int(0, ops.length + 1) : 0;
      for (const op of ops.slice(0, k)) {
        for (const [name, inode] of op.changes) {
          if (inode === null) entries.delete(name);
          else entries.set(name, inode);
        }
      }
      if (ops.length > 0) dirReports.push({ dir: d, pendingOps: ops.map((o) => o.desc), appliedOps: k });
      newLive.set(d, entries);
    }
    // Every inode still named somewhere, in creation order (determinism).
    const names = new Map<Inode, string[]>();
    for (const [d, entries] of newLive) {
      for (const [name, inode] of entries) {
        const list = names.get(inode) ?? [];
        list.push(d === '.' ? name : nodePath.join(d, name));
        names.set(inode, list);
      }
    }
    const fileReports: FileCrashOutcome[] = [];
    for (const inode of [...names.keys()].sort((a, b) => a.id - b.id)) {
      const r = this.crashFile(inode);
      if (r !== undefined) fileReports.push({ ...r, paths: names.get(inode) ?? [] });
    }
    this.live = newLive;
    this.durable = new Map([...newLive].map(([d, e]) => [d, new Map(e)]));
    this.pendingDir.clear();
    return { files: fileReports, dirs: dirReports };
  }

  /**
   * The process dies (kill -9) but the machine stays up: open handles become
   * stale, and nothing is lost, since the page cache outlives the process. Bytes
   * left uncertain by a failed sync stay uncertain (and readable) across it.
   */
  killProcess(): void {
    this.epoch++;
    this.down = false;
    this.crashCountdown = undefined;
  }

  private crashFile(inode: Inode): Omit<FileCrashOutcome, 'paths'> | undefined {
    if (inode.clean()) return undefined;
    const content = inode.base.clone();
    // Uncertain operations (covered by a failed sync) survive like unsynced
    // ones: none, all, or a prefix of their bytes; synced ones always do.
    const uncertain = inode.durableOps.filter((d) => !d.certain);
    const uncertainOps = uncertain.length;
    const uncertainUnits = uncertain.reduce((a, d) => a + opUnits(d.op), 0);
    let left = uncertainOps === 0 ? 0 : this.pickKeptUnits(this.pickOutcome(uncertainUnits), uncertainUnits);
    let uncertainKept = 0;
    for (const { op, certain } of inode.durableOps) {
      if (certain) {
        applyOp(content, op);
        continue;
      }
      const u = opUnits(op);
      if (u <= left) {
        applyOp(content, op);
        left -= u;
        uncertainKept++;
      } else {
        if (op.kind === 'write' && left > 0) content.write(op.position, op.data.subarray(0, left));
        left = 0;
      }
    }
    const pendingUnits = inode.pending.reduce((a, op) => a + opUnits(op), 0);
    let outcome: FileCrashOutcome['outcome'] = 'none';
    let keptUnits = 0;
    if (inode.pending.length > 0) {
      outcome = this.pickOutcome(pendingUnits);
      if (outcome === 'kept') {
        for (const op of inode.pending) applyOp(content, op);
        keptUnits = pendingUnits;
      } else if (outcome === 'torn') {
        keptUnits = this.prng.int(1, pendingUnits);
        let left = keptUnits;
        let tornAt: { position: number; length: number; kept: number } | undefined;
        for (const op of inode.pending) {
          const u = opUnits(op);
          if (u <= left) {
            applyOp(content, op);
            left -= u;
            continue;
          }
          if (op.kind === 'write') {
            content.write(op.position, op.data.subarray(0, left));
            tornAt = { position: op.position, length: op.data.byteLength, kept: left };
          }
          break;
        }
        if (tornAt !== undefined && this.prng.chance(this.opts.zeroFillProbability)) {
          // The sector holding the last kept byte (or the first unkept one) reads as
          // zeros, and the file may extend to that sector's end: size updated, data not.
          const s = this.opts.sectorBytes;
          const at = tornAt.position + tornAt.kept - (tornAt.kept > 0 ? 1 : 0);
          const sectorStart = Math.floor(at / s) * s;
          const lo = Math.max(tornAt.position, sectorStart);
          const hi = Math.min(tornAt.position + tornAt.length, sectorStart + s);
          if (hi > lo) {
            content.write(lo, new Uint8Array(hi - lo));
            outcome = 'torn-zeroed';
          }
        }
      }
    }
    inode.current = content;
    inode.base = content.clone();
    inode.durableOps = [];
    inode.pending = [];
    return { outcome, pendingUnits, keptUnits, uncertainOps, uncertainKept };
  }

  private pickKeptUnits(outcome: 'lost' | 'kept' | 'torn', units: number): number {
    if (outcome === 'lost') return 0;
    if (outcome === 'kept') return units;
    return this.prng.int(1, units);
  }

  private pickOutcome(units: number): 'lost' | 'kept' | 'torn' {
    const w = this.opts.weights;
    const torn = units >= 2 ? w.torn : 0;
    const x = this.prng.float() * (w.lost + w.kept + torn);
    if (x < w.lost) return 'lost';
    if (x < w.lost + w.kept) return 'kept';
    return 'torn';
  }

  // ---- test helpers ------------------------------------------------------

  /**
   * The bytes of the file now named `path` that a crash is sure to keep
   * (synced, not covered by a failed sync), whether or not its directory entry
   * is durable; undefined if no such file.
   */
  durableView(path: string): Uint8Array | undefined {
    return this.inodeAt(norm(path))?.certain().bytes();
  }

  /** The file's current content, as the program reads it; undefined if no such file. */
  currentView(path: string): Uint8Array | undefined {
    return this.inodeAt(norm(path))?.current.bytes();
  }

  /** Sizes and sync state of a file; undefined if no such file. */
  stat(path: string): FaultyFileStat | undefined {
    const p = norm(path);
    const inode = this.inodeAt(p);
    if (inode === undefined) return undefined;
    const { dir, name } = split(p);
    return {
      sizeBytes: inode.current.length,
      durableSizeBytes: inode.certain().length,
      nameDurable: this.durable.get(dir)?.get(name) === inode,
      unsyncedOps: inode.pending.length,
      uncertainOps: inode.durableOps.filter((d) => !d.certain).length,
    };
  }

  /**
   * Flips bit `bit` (0-7) of byte `offset` of the file's durable content (media
   * corruption). The file must have no unsynced data: sync it or crash() first.
   */
  flipBit(path: string, offset: number, bit: number): void {
    const inode = this.cleanInode(path);
    if (!Number.isInteger(bit) || bit < 0 || bit > 7) throw new RangeError(`bit ${bit} outside [0, 8)`);
    inode.base.flip(offset, bit);
    inode.current.flip(offset, bit);
  }

  /**
   * Replaces the durable content of a file (to craft truncated files, zero-filled
   * tails and the like); creates it, durably named, if it does not exist. The
   * file must have no unsynced data.
   */
  setDurable(path: string, data: Uint8Array): void {
    const p = norm(path);
    const { dir, name } = split(p);
    if (this.inodeAt(p) === undefined) {
      const entries = this.dirEntries(dir, 'open', p);
      const inode = new Inode(this.nextInode++, new Bytes());
      entries.set(name, inode);
      this.durable.get(dir)?.set(name, inode);
    }
    const inode = this.cleanInode(p);
    inode.base = new Bytes(data);
    inode.current = new Bytes(data);
  }

  /** Removes a file and its name at once and durably (a lost file, for corruption tests). */
  removeDurable(path: string): void {
    const p = norm(path);
    const { dir, name } = split(p);
    this.live.get(dir)?.delete(name);
    this.durable.get(dir)?.delete(name);
  }

  // ---- internals (used by FaultyFileHandle) -------------------------------

  /** @internal Throws if the machine is down. */
  alive(): void {
    if (this.down) throw new SimulatedCrashError('the simulated machine is down: call crash() to restart it');
  }

  /** @internal Counts a mutating operation; throws if the armed crash point is reached. */
  mutating(): void {
    this.alive();
    if (this.crashCountdown !== undefined) {
      this.crashCountdown--;
      if (this.crashCountdown <= 0) {
        this.crashCountdown = undefined;
        this.down = true;
        throw new SimulatedCrashError(`simulated crash at mutating operation ${this.mutatingOps + 1}`);
      }
    }
    this.mutatingOps++;
  }

  /** @internal */
  handleWrite(h: FaultyFileHandle, inode: Inode, data: Uint8Array, position: number): void {
    this.mutating();
    if (!Number.isInteger(position) || position < 0) throw new RangeError(`bad write position ${position}`);
    const copy = data.slice();
    if (this.shouldFail(this.failWrites, h.path, this.opts.writeFailureProbability)) {
      this.injected.writeFailures++;
      const part = this.prng.int(0, copy.byteLength);
      if (part > 0) this.applyPending(inode, { kind: 'write', position, data: copy.subarray(0, part) });
      throw new FaultyFsError('EIO', 'write', h.path);
    }
    if (copy.byteLength > 0) this.applyPending(inode, { kind: 'write', position, data: copy });
  }

  /** @internal */
  handleTruncate(inode: Inode, length: number): void {
    this.mutating();
    if (!Number.isInteger(length) || length < 0) throw new RangeError(`bad truncate length ${length}`);
    this.applyPending(inode, { kind: 'truncate', length });
  }

  /** @internal */
  handleSync(h: FaultyFileHandle, inode: Inode): void {
    this.mutating();
    if (this.shouldFail(this.failSyncs, h.path, this.opts.syncFailureProbability)) {
      this.injected.syncFailures++;
      // fsyncgate: the pages are marked clean although not written; their fate is unknown.
      for (const op of inode.pending) inode.durableOps.push({ op, certain: false });
      inode.pending = [];
      throw new FaultyFsError('EIO', 'fsync', h.path);
    }
    if (inode.durableOps.length === 0) {
      for (const op of inode.pending) applyOp(inode.base, op);
    } else {
      for (const op of inode.pending) inode.durableOps.push({ op, certain: true });
    }
    inode.pending = [];
  }

  private applyPending(inode: Inode, op: FileOp): void {
    applyOp(inode.current, op);
    inode.pending.push(op);
  }

  private shouldFail(armed: string[], path: string, probability: number): boolean {
    const i = armed.findIndex((prefix) => path.startsWith(prefix));
    if (i >= 0) {
      armed.splice(i, 1);
      return true;
    }
    return this.prng.chance(probability);
  }

  private recordDirOp(dir: string, op: DirOp): void {
    const list = this.pendingDir.get(dir) ?? [];
    list.push(op);
    this.pendingDir.set(dir, list);
  }

  private dirEntries(dir: string, syscall: string, path: string): Map<string, Inode> {
    const entries = this.live.get(dir);
    if (entries === undefined) throw new FaultyFsError('ENOENT', syscall, path);
    return entries;
  }

  private inodeAt(p: string): Inode | undefined {
    const { dir, name } = split(p);
    return this.live.get(dir)?.get(name);
  }

  private cleanInode(path: string): Inode {
    const inode = this.inodeAt(norm(path));
    if (inode === undefined) throw new FaultyFsError('ENOENT', 'open', path);
    if (!inode.clean()) throw new Error(`${path} has unsynced or uncertain data: sync it or crash() first`);
    return inode;
  }
}

/** A handle on one inode, valid until close() or the next crash(). */
class FaultyFileHandle implements FileHandle {
  readonly path: string;
  private readonly fsys: FaultyFileSystem;
  private readonly inode: Inode;
  private readonly epoch: number;
  private closed = false;

  constructor(fsys: FaultyFileSystem, path: string, inode: Inode, epoch: number) {
    this.fsys = fsys;
    this.path = path;
    this.inode = inode;
    this.epoch = epoch;
  }

  private check(): void {
    this.fsys.alive();
    if (this.closed) throw new StaleHandleError(`${this.path}: handle used after close()`);
    if (this.epoch !== this.fsys.epoch) throw new StaleHandleError(`${this.path}: handle opened before a crash`);
  }

  write(data: Uint8Array, position: number): void {
    this.check();
    this.fsys.handleWrite(this, this.inode, data, position);
  }

  read(length: number, position: number): Uint8Array {
    this.check();
    return this.inode.current.read(length, position);
  }

  size(): number {
    this.check();
    return this.inode.current.length;
  }

  truncate(length: number): void {
    this.check();
    this.fsys.handleTruncate(this.inode, length);
  }

  sync(): void {
    this.check();
    this.fsys.handleSync(this, this.inode);
  }

  close(): void {
    this.check();
    this.closed = true;
  }
}

function split(p: string): { dir: string; name: string } {
  return { dir: nodePath.dirname(p), name: nodePath.basename(p) };
}

function norm0(prefix: string): string {
  return prefix === '' ? '' : norm(prefix);
}
