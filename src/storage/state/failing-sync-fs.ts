// A test helper: a FileSystem wrapper whose file and directory fsyncs can be
// made to fail on demand, to check the fsyncgate rule (a failed fsync is never
// retried as if the data were safe). Used by the state and snapshot tests.

import type { FileHandle, FileSystem } from '../fs.js';

/** Wraps a FileSystem; file syncs and/or directory syncs throw while the flags are set. */
export class FailingSyncFileSystem implements FileSystem {
  failFileSync = false;
  failDirSync = false;
  constructor(private readonly inner: FileSystem) {}
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
  }
}
