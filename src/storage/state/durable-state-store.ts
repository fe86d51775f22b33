// The durable StateStore: term, vote and commit in one small file
// (`hardstate`, format in format.ts), replaced atomically on every save:
// write `hardstate.tmp`, fsync it, rename it over `hardstate`, fsync the
// directory. A crash at any point leaves either the old or the new file whole.
// Goes through the FileSystem seam only, so the simulator can inject faults.

import { FsyncGuard } from '../fsync-guard.js';
import type { HardState } from '../../protocol/entry.js';
import { StorageCorruptionError } from '../errors.js';
import { joinPath, type FileHandle, type FileSystem } from '../fs.js';
import type { StateStore } from '../types.js';
import { decodeHardState, encodeHardState, isDecodeError, STATE_FIXED_BYTES, VOTE_MAX_BYTES } from './format.js';
import { INITIAL_HARD_STATE } from './memory-state-store.js';

/** The name of the state file inside the store's directory. */
export const STATE_FILE_NAME = 'hardstate';
/** The temporary file a save writes before renaming it into place. */
export const STATE_TMP_FILE_NAME = 'hardstate.tmp';

/**
 * Term, vote and commit in a directory, durable when save() returns.
 *
 * - load() on a directory without a state file returns {term: 0, vote: null,
 *   commit: 0}; a leftover temporary file (a crash during save) is removed.
 * - A state file that fails its checks throws StorageCorruptionError: the
 *   node must not start at term 0 and vote a second time in a term.
 * - If an fsync (file or directory) fails, save throws FsyncFailedError and
 *   every later call throws StoreClosedError: the outcome is unknown and a
 *   retry could not tell (fsyncgate); the node must stop and restart.
 */
export class DurableStateStore implements StateStore {
  private readonly fs: FileSystem;
  private readonly dir: string;
  private readonly file: string;
  private readonly tmpFile: string;
  private readonly guard = new FsyncGuard();

  /** Uses (and creates if needed) `dir`, which should hold nothing but this store's files. */
  constructor(fs: FileSystem, dir: string) {
    this.fs = fs;
    this.dir = dir;
    this.file = joinPath(dir, STATE_FILE_NAME);
    this.tmpFile = joinPath(dir, STATE_TMP_FILE_NAME);
    fs.mkdirp(dir);
  }

  load(): HardState {
    this.checkUsable();
    if (this.fs.exists(this.tmpFile)) {
      // A save that crashed before its rename: the real file is still the
      // previous state (or absent), which is what a caller saw acknowledged.
      this.fs.remove(this.tmpFile);
    }
    if (!this.fs.exists(this.file)) {
      this.syncDir();
      return { ...INITIAL_HARD_STATE };
    }
    const h = this.fs.open(this.file, { create: false });
    let buf: Uint8Array;
    try {
      const size = h.size();
      const maxBytes = STATE_FIXED_BYTES + VOTE_MAX_BYTES;
      if (size > maxBytes) {
        throw new StorageCorruptionError(this.file, maxBytes, `file is ${size} bytes, longer than any state file`);
      }
      buf = h.read(size, 0);
      const r = decodeHardState(buf);
      if (isDecodeError(r)) throw new StorageCorruptionError(this.file, r.offset, r.detail);
      // What we read may be only in the page cache: a save cut by kill -9
      // between its rename and the directory fsync is visible to this process
      // but not yet durable. Make it durable before anyone acts on it (a vote
      // acted on and then lost to a power cut could be cast twice).
      this.sync(h);
      this.syncDir();
      return r;
    } finally {
      h.close();
    }
  }

  save(state: HardState): void {
    this.checkUsable();
    const bytes = encodeHardState(state);
    const h = this.fs.open(this.tmpFile, { create: true });
    try {
      h.truncate(0);
      h.write(bytes, 0);
      this.sync(h);
    } finally {
      h.close();
    }
    this.fs.rename(this.tmpFile, this.file);
    this.syncDir();
  }

  private sync(h: FileHandle): void {
    this.guard.syncFile(h);
  }

  private syncDir(): void {
    this.guard.syncDir(this.fs, this.dir);
  }

  private checkUsable(): void {
    this.guard.checkUsable('state store');
  }
}
