// One rule for every store: a failed fsync becomes FsyncFailedError, and the
// store refuses all further use (never retry as if the data were safe).

import { FsyncFailedError, StoreClosedError } from './errors.js';
import type { FileHandle, FileSystem } from './fs.js';

/** Remembers the first failed fsync of a store and turns later calls away. */
export class FsyncGuard {
  private failure: FsyncFailedError | null = null;

  /** True once an fsync has failed. */
  get tripped(): boolean {
    return this.failure !== null;
  }

  /** fdatasync of `h`; on failure the guard trips and FsyncFailedError is thrown. */
  syncFile(h: FileHandle): void {
    try {
      h.sync();
    } catch (e) {
      throw this.trip(new FsyncFailedError(h.path, { cause: e }));
    }
  }

  /** fsync of the directory `dir`; on failure the guard trips. */
  syncDir(fs: FileSystem, dir: string): void {
    try {
      fs.syncDir(dir);
    } catch (e) {
      throw this.trip(new FsyncFailedError(dir, { cause: e }));
    }
  }

  /** Throws StoreClosedError (naming `store`) once any fsync has failed. */
  checkUsable(store: string): void {
    if (this.failure !== null) {
      throw new StoreClosedError(`${store} unusable after a failed fsync; stop the node and reboot the machine`, { cause: this.failure });
    }
  }

  private trip(e: FsyncFailedError): FsyncFailedError {
    this.failure = e;
    return e;
  }
}
