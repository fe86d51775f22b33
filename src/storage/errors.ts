// Errors the storage layer raises. Corruption is never repaired silently: it
// names the file and the byte offset, and the node refuses to start.

/** A record before the last durable position fails its checks. */
export class StorageCorruptionError extends Error {
  override readonly name = 'StorageCorruptionError';
  readonly file: string;
  readonly offset: number;

  constructor(file: string, offset: number, detail: string, options?: ErrorOptions) {
    super(`corrupt data in ${file} at byte ${offset}: ${detail}`, options);
    this.file = file;
    this.offset = offset;
  }
}

/**
 * An fsync (or fdatasync) failed. The data it covered may or may not be on
 * disk, and retrying cannot tell (PostgreSQL's fsyncgate): the node must stop
 * and recover from what a restart finds.
 */
export class FsyncFailedError extends Error {
  override readonly name = 'FsyncFailedError';
  readonly file: string;

  constructor(file: string, options?: ErrorOptions) {
    super(`fsync of ${file} failed; the node must stop (its durability is unknown)`, options);
    this.file = file;
  }
}

/** The store was used after a failure that made it unusable, or after close(). */
export class StoreClosedError extends Error {
  override readonly name = 'StoreClosedError';
}
