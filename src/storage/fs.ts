// The file operations the durable stores use, behind an interface, so that
// the simulator can put a fault-injecting file layer in their place (lost
// unsynced writes, torn writes, failed fsyncs) and run the real store code.
// Synchronous on purpose: the stores are deterministic state machines over
// files. The one slow call on the write path, fdatasync, also has an
// asynchronous form (FileHandle.syncAsync, libuv's thread pool on the real
// file system) that the log's group commit uses, so that the Raft thread
// never waits for the disk on the hot path (DurableLogStore.syncAsync).

import * as fs from 'node:fs';
import * as path from 'node:path';

/** An open file, append-oriented. Offsets are byte positions. */
export interface FileHandle {
  readonly path: string;
  /** Writes `data` at `position` (the file grows as needed). Not durable until sync(). */
  write(data: Uint8Array, position: number): void;
  /** Reads up to `length` bytes at `position`; fewer at the end of the file. */
  read(length: number, position: number): Uint8Array;
  size(): number;
  /** Cuts the file to `length` bytes. Not durable until sync(). */
  truncate(length: number): void;
  /** fdatasync: everything written before is durable. Throws on failure (never retry). */
  sync(): void;
  /**
   * The same fdatasync without blocking the caller: everything written
   * before the call is durable when `done(null)` runs. Optional: a file
   * system without it is synced with sync() (done is then called at once).
   */
  syncAsync?(done: (err: Error | null) => void): void;
  close(): void;
}

/** A directory of files, as the stores see it. Paths are relative to nothing: callers join them. */
export interface FileSystem {
  /** Opens (creating if asked) a file for reading and writing. */
  open(file: string, opts: { create: boolean }): FileHandle;
  exists(file: string): boolean;
  /** Names of the entries in a directory (not paths), in no particular order. */
  list(dir: string): string[];
  mkdirp(dir: string): void;
  /** Atomically replaces `to` with `from` (POSIX rename). Not durable until syncDir(). */
  rename(from: string, to: string): void;
  remove(file: string): void;
  /** fsync of a directory: makes creations, renames and removals in it durable. */
  syncDir(dir: string): void;
}

/** The real file system, through node:fs. */
export class NodeFileSystem implements FileSystem {
  open(file: string, opts: { create: boolean }): FileHandle {
    const fd = fs.openSync(file, opts.create ? fs.constants.O_RDWR | fs.constants.O_CREAT : fs.constants.O_RDWR, 0o644);
    return new NodeFileHandle(file, fd);
  }

  exists(file: string): boolean {
    return fs.existsSync(file);
  }

  list(dir: string): string[] {
    return fs.readdirSync(dir);
  }

  mkdirp(dir: string): void {
    fs.mkdirSync(dir, { recursive: true });
  }

  rename(from: string, to: string): void {
    fs.renameSync(from, to);
  }

  remove(file: string): void {
    fs.rmSync(file, { force: true });
  }

  syncDir(dir: string): void {
    const fd = fs.openSync(dir, fs.constants.O_RDONLY);
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }
}

class NodeFileHandle implements FileHandle {
  readonly path: string;
  private readonly fd: number;

  constructor(file: string, fd: number) {
    this.path = file;
    this.fd = fd;
  }

  write(data: Uint8Array, position: number): void {
    let done = 0;
    while (done < data.byteLength) {
      done += fs.writeSync(this.fd, data, done, data.byteLength - done, position + done);
    }
  }

  read(length: number, position: number): Uint8Array {
    const buf = Buffer.allocUnsafe(length);
    let got = 0;
    while (got < length) {
      const n = fs.readSync(this.fd, buf, got, length - got, position + got);
      if (n === 0) break;
      got += n;
    }
    return buf.subarray(0, got);
  }

  size(): number {
    return fs.fstatSync(this.fd).size;
  }

  truncate(length: number): void {
    fs.ftruncateSync(this.fd, length);
  }

  sync(): void {
    fs.fdatasyncSync(this.fd);
  }

  syncAsync(done: (err: Error | null) => void): void {
    fs.fdatasync(this.fd, done);
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}

/** `path.join`, re-exported so that stores need not import node:path themselves. */
export const joinPath = path.join;
