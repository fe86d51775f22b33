// Crash property test: DurableLogStore on a small fault-injecting file system
// (test-only; the simulator has its own) that, at a crash, keeps what was
// synced and an arbitrary part of what was not: nothing, a prefix of each
// file's unsynced writes and truncations (the last write possibly torn), the
// same with the written bytes turned to zeros (ext4's size-without-data), or
// everything; directory changes persist as a prefix of those since the last
// directory fsync; or a process kill (the page cache survives, unsynced).
// After every crash the log must open (no false
// corruption), keep every entry made durable (synced, or cut durably by
// truncateSuffix/compactPrefix), and hold nothing that was not appended.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { FileHandle, FileSystem } from '../fs.js';
import { Prng } from '../../util/prng.js';
import { DurableLogStore } from './durable-log.js';
import { MemoryLogStore } from './memory-log.js';
import { entry } from './test-util.js';

interface Inode {
  data: Buffer;
  synced: Buffer;
  pending: Array<{ k: 'w'; data: Buffer; pos: number } | { k: 't'; len: number }>;
}

type DirOp = { k: 'set'; name: string; inode: Inode } | { k: 'rm'; name: string };
type CrashMode = 'lose' | 'prefix' | 'zeros' | 'all' | 'kill';

function applyWrite(buf: Buffer, data: Buffer, pos: number): Buffer {
  const out = Buffer.alloc(Math.max(buf.length, pos + data.length));
  buf.copy(out);
  data.copy(out, pos);
  return out;
}

function applyTruncate(buf: Buffer, len: number): Buffer {
  const out = Buffer.alloc(len);
  buf.copy(out, 0, 0, Math.min(len, buf.length));
  return out;
}

/** One directory's files in memory, with a crash that loses unsynced changes. */
class FaultFs implements FileSystem {
  private files = new Map<string, Inode>();
  private syncedFiles = new Map<string, Inode>();
  private dirOps: DirOp[] = [];
  private readonly dirs = new Set<string>();

  open(file: string, opts: { create: boolean }): FileHandle {
    let inode = this.files.get(file);
    if (inode === undefined) {
      if (!opts.create) throw new Error(`ENOENT: ${file}`);
      inode = { data: Buffer.alloc(0), synced: Buffer.alloc(0), pending: [] };
      this.files.set(file, inode);
      this.dirOps.push({ k: 'set', name: file, inode });
    }
    const node = inode;
    return {
      path: file,
      write: (data, pos) => {
        const d = Buffer.from(data);
        node.data = applyWrite(node.data, d, pos);
        node.pending.push({ k: 'w', data: d, pos });
      },
      read: (len, pos) => Buffer.from(node.data.subarray(pos, pos + len)),
      size: () => node.data.length,
      truncate: (len) => {
        node.data = applyTruncate(node.data, len);
        node.pending.push({ k: 't', len });
      },
      sync: () => {
        node.synced = Buffer.from(node.data);
        node.pending = [];
      },
      close: () => undefined,
    };
  }
  exists(file: string): boolean { return this.files.has(file) || this.dirs.has(file); }
  list(dir: string): string[] {
    return [...this.files.keys()].filter((f) => f.startsWith(`${dir}/`)).map((f) => f.slice(dir.length + 1));
  }
  mkdirp(dir: string): void { this.dirs.add(dir); }
  rename(from: string, to: string): void {
    const inode = this.files.get(from);
    if (inode === undefined) throw new Error(`ENOENT: ${from}`);
    this.files.delete(from);
    this.files.set(to, inode);
    this.dirOps.push({ k: 'rm', name: from }, { k: 'set', name: to, inode });
  }
  remove(file: string): void {
    this.files.delete(file);
    this.dirOps.push({ k: 'rm', name: file });
  }
  syncDir(): void {
    this.syncedFiles = new Map(this.files);
    this.dirOps = [];
  }

  /** What a power loss leaves; 'kill' is a process kill: the page cache survives, nothing more is durable. */
  crash(mode: CrashMode, rng: Prng): void {
    if (mode === 'kill') return;
    const files = new Map(this.syncedFiles);
    const keep = mode === 'lose' ? 0 : mode === 'all' ? this.dirOps.length : rng.int(0, this.dirOps.length + 1);
    for (const op of this.dirOps.slice(0, keep)) {
      if (op.k === 'set') files.set(op.name, op.inode);
      else files.delete(op.name);
    }
    const seen = new Set<Inode>();
    const after = new Map<string, Inode>();
    for (const [name, inode] of files) {
      if (seen.has(inode)) continue;
      seen.add(inode);
      let data: Buffer = Buffer.from(inode.synced);
      const n = mode === 'lose' ? 0 : mode === 'all' ? inode.pending.length : rng.int(0, inode.pending.length + 1);
      for (let i = 0; i < n; i++) {
        const op = inode.pending[i];
        if (op === undefined) break;
        if (op.k === 't') data = applyTruncate(data, op.len);
        else if (mode === 'zeros') data = applyWrite(data, Buffer.alloc(op.data.length), op.pos);
        else if (mode === 'prefix' && i === n - 1) data = applyWrite(data, op.data.subarray(0, rng.int(0, op.data.length + 1)), op.pos);
        else data = applyWrite(data, op.data, op.pos);
      }
      after.set(name, { data, synced: Buffer.from(data), pending: [] });
    }
    this.files = after;
    this.syncedFiles = new Map(after);
    this.dirOps = [];
  }
}

type Op =
  | { t: 'append'; at: number; count: number; bump: number }
  | { t: 'truncate'; at: number }
  | { t: 'compact'; at: number; match: boolean }
  | { t: 'sync' }
  | { t: 'crash'; mode: CrashMode; seed: number };

const frac = fc.integer({ min: 0, max: 1000 }).map((x) => x / 1000);
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ t: fc.constant('append' as const), at: frac, count: fc.integer({ min: 1, max: 12 }), bump: fc.integer({ min: 0, max: 1 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('truncate' as const), at: frac }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('compact' as const), at: frac, match: fc.boolean() }) },
  { weight: 4, arbitrary: fc.record({ t: fc.constant('sync' as const) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('crash' as const), mode: fc.constantFrom<CrashMode>('lose', 'prefix', 'zeros', 'all', 'kill', 'kill'), seed: fc.nat() }) },
);
const pick = (f: number, lo: number, hi: number) => lo + Math.min(hi - lo, Math.floor(f * (hi - lo + 1)));

test('after any crash the log opens, keeps every durable entry, and holds only appended ones', () => {
  fc.assert(fc.property(fc.integer({ min: 80, max: 500 }), fc.array(op, { minLength: 1, maxLength: 60, size: 'max' }), (segmentBytes, ops) => {
    const dir = '/log';
    const fs = new FaultFs();
    let real = DurableLogStore.open(fs, dir, { segmentBytes });
    let model = new MemoryLogStore();
    /** Entries up to here (from the first index) survive any crash. */
    let durable = 0;
    for (const o of ops) {
      const first = model.firstIndex();
      const last = model.lastIndex();
      switch (o.t) {
        case 'append': {
          const at = pick(o.at, first, last + 1);
          const term = Math.max(1, model.term(at - 1) ?? 0) + o.bump;
          const batch = Array.from({ length: o.count }, (_, k) => entry(at + k, term, (at * 7 + k) % 40));
          model.append(batch);
          real.append(batch);
          durable = Math.min(durable, at - 1);
          break;
        }
        case 'truncate': {
          const at = pick(o.at, first, last + 1);
          model.truncateSuffix(at);
          real.truncateSuffix(at);
          durable = Math.min(durable, at - 1);
          break;
        }
        case 'compact': {
          const at = pick(o.at, first - 1, last + 3);
          const known = model.term(at);
          const term = o.match && known !== undefined ? known : Math.max(model.term(last) ?? 0, known ?? 0) + 1;
          model.compactPrefix(at, term);
          real.compactPrefix(at, term);
          durable = Math.max(Math.min(durable, model.lastIndex()), model.firstIndex() - 1);
          break;
        }
        case 'sync':
          real.sync();
          durable = model.lastIndex();
          break;
        case 'crash': {
          fs.crash(o.mode, new Prng(o.seed));
          real = DurableLogStore.open(fs, dir, { segmentBytes });
          const rFirst = real.firstIndex();
          const rLast = real.lastIndex();
          assert.equal(rFirst, model.firstIndex(), 'compaction is durable when compactPrefix returns');
          assert.equal(real.term(rFirst - 1), model.term(rFirst - 1));
          assert.ok(rLast >= durable, `durable entries up to ${durable} survive (log ends at ${rLast})`);
          assert.ok(rLast <= model.lastIndex(), `no entry beyond what was appended (${rLast} > ${model.lastIndex()})`);
          assert.deepEqual(real.read(rFirst, rLast + 1, Infinity), model.read(rFirst, rLast + 1, Infinity));
          // The model becomes what survived.
          const survivors = model.read(rFirst, rLast + 1, Infinity);
          const compactedTerm = model.term(rFirst - 1) ?? 0;
          model = new MemoryLogStore();
          if (rFirst > 1) model.compactPrefix(rFirst - 1, compactedTerm);
          model.append(survivors);
          durable = rLast;
          break;
        }
      }
    }
  }), { numRuns: 1000 });
});
