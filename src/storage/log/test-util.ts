// Helpers shared by the log store tests: temporary directories on the real
// file system, entry builders, and a FileSystem wrapper that fails fsyncs.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Entry } from '../../protocol/entry.js';
import { NodeFileSystem, type FileHandle, type FileSystem } from '../fs.js';

/** Runs `fn` with a fresh temporary directory, removed afterwards. */
export function withTempDir<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'quorumlog-log-'));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** An entry whose data is `size` bytes derived from its index and term. */
export function entry(index: number, term: number, size = 16, type: 'data' | 'noop' = 'data'): Entry {
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i++) data[i] = (index * 31 + term * 7 + i) & 0xff;
  return { index, term, type, data };
}

/** Entries [from, from + count) in `term`. */
export function entries(from: number, count: number, term: number, size = 16): Entry[] {
  return Array.from({ length: count }, (_, k) => entry(from + k, term, size));
}

/** The real file system, with switches to make fsyncs fail, and counts of the fsyncs and writes made. */
export class FailingFileSystem implements FileSystem {
  private readonly inner = new NodeFileSystem();
  failFileSync = false;
  failDirSync = false;
  /** File fdatasyncs that succeeded. */
  fileSyncs = 0;
  /** Directory fsyncs that succeeded. */
  dirSyncs = 0;

  open(file: string, opts: { create: boolean }): FileHandle {
    const h = this.inner.open(file, opts);
    return {
      path: h.path,
      write: (d, p) => h.write(d, p),
      read: (l, p) => h.read(l, p),
      size: () => h.size(),
      truncate: (l) => h.truncate(l),
      sync: () => {
        if (this.failFileSync) throw new Error('EIO: injected fdatasync failure');
        h.sync();
        this.fileSyncs++;
      },
      close: () => h.close(),
    };
  }
  exists(file: string): boolean { return this.inner.exists(file); }
  list(dir: string): string[] { return this.inner.list(dir); }
  mkdirp(dir: string): void { this.inner.mkdirp(dir); }
  rename(from: string, to: string): void { this.inner.rename(from, to); }
  remove(file: string): void { this.inner.remove(file); }
  syncDir(dir: string): void {
    if (this.failDirSync) throw new Error('EIO: injected directory fsync failure');
    this.inner.syncDir(dir);
    this.dirSyncs++;
  }
}
