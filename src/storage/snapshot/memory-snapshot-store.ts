// An in-memory SnapshotStore for the simulator and tests, with the same
// observable behaviour as DurableSnapshotStore (streamed writes, nothing
// visible before commit, reads from a byte position, resumable receive) but
// no files: the bytes are kept as the chunks that were written (copied).

import { crc32c } from '@node-rs/crc32';
import type { SnapshotMeta } from '../../protocol/entry.js';
import { StoreClosedError } from '../errors.js';
import type { SnapshotReader, SnapshotWriter, StoredSnapshotInfo } from '../types.js';
import { validateSnapshotMeta } from './format.js';
import { SnapshotTransferMismatchError, type ReceivingSnapshotStore, type SnapshotReceiver } from './receiver.js';

/** A snapshot body as a list of chunks. */
class ChunkedBytes {
  readonly chunks: Uint8Array[] = [];
  /** starts[i] is the byte position of chunks[i]. */
  readonly starts: number[] = [];
  size = 0;
  crc = 0;

  append(chunk: Uint8Array): void {
    if (chunk.byteLength === 0) return;
    this.chunks.push(chunk.slice());
    this.starts.push(this.size);
    this.size += chunk.byteLength;
    this.crc = crc32c(chunk, this.crc);
  }

  read(position: number, maxBytes: number): Uint8Array {
    const end = Math.min(this.size, position + maxBytes);
    const out = new Uint8Array(Math.max(0, end - position));
    for (let i = 0; i < this.chunks.length; i++) {
      const c = this.chunks[i] as Uint8Array;
      const s = this.starts[i] as number;
      const e = s + c.byteLength;
      if (e <= position || s >= end) continue;
      const from = Math.max(position, s);
      const to = Math.min(end, e);
      out.set(c.subarray(from - s, to - s), from - position);
    }
    return out;
  }
}

function key(meta: SnapshotMeta): string {
  return `${meta.index}/${meta.term}`;
}

function checkRead(info: StoredSnapshotInfo, position: number, maxBytes: number): void {
  if (!Number.isSafeInteger(position) || position < 0 || position > info.sizeBytes) {
    throw new RangeError(`read position ${position} outside [0, ${info.sizeBytes}]`);
  }
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) throw new RangeError(`bad maxBytes ${maxBytes}`);
}

/**
 * Snapshots in memory.
 * Invariants: latest() is the committed snapshot with the highest index (then
 * term); a snapshot is visible only after commit(); committed bytes never change.
 */
export class MemorySnapshotStore implements ReceivingSnapshotStore {
  private readonly committed = new Map<string, { info: StoredSnapshotInfo; body: ChunkedBytes }>();
  private partialReceive: { meta: SnapshotMeta; body: ChunkedBytes } | null = null;
  private current: StoredSnapshotInfo | null = null;

  latest(): StoredSnapshotInfo | null {
    return this.current;
  }

  beginWrite(meta: SnapshotMeta): SnapshotWriter {
    validateSnapshotMeta(meta);
    const body = new ChunkedBytes();
    let done = false;
    const check = (): void => {
      if (done) throw new StoreClosedError('snapshot writer already committed or aborted');
    };
    return {
      write: (chunk) => {
        check();
        body.append(chunk);
      },
      commit: () => {
        check();
        done = true;
        return this.install(meta, body);
      },
      abort: () => {
        done = true;
      },
    };
  }

  open(meta: SnapshotMeta): SnapshotReader | undefined {
    const s = this.committed.get(key(meta));
    if (s === undefined) return undefined;
    return {
      info: s.info,
      read: (position, maxBytes) => {
        checkRead(s.info, position, maxBytes);
        return s.body.read(position, maxBytes);
      },
      close: () => {},
    };
  }

  removeOlder(): void {
    const cur = this.current;
    for (const [k, s] of this.committed) {
      if (cur === null || s.info.index !== cur.index || s.info.term !== cur.term) this.committed.delete(k);
    }
  }

  beginReceive(meta: SnapshotMeta): SnapshotReceiver {
    validateSnapshotMeta(meta);
    const p = this.partialReceive;
    const partial = p !== null && p.meta.index === meta.index && p.meta.term === meta.term
      ? p
      : { meta, body: new ChunkedBytes() };
    this.partialReceive = partial;
    let done = false;
    const check = (): void => {
      if (done || this.partialReceive !== partial) throw new StoreClosedError('snapshot receiver closed or superseded');
    };
    return {
      meta,
      get receivedBytes() {
        return partial.body.size;
      },
      write: (offset, chunk) => {
        check();
        const held = partial.body.size;
        if (offset <= held && offset + chunk.byteLength > held) partial.body.append(chunk.subarray(held - offset));
        return partial.body.size;
      },
      checkpoint: () => check(),
      commit: (expected) => {
        check();
        done = true;
        this.partialReceive = null;
        const b = partial.body;
        if (expected !== undefined && (expected.sizeBytes !== b.size || expected.checksum >>> 0 !== b.crc >>> 0)) {
          throw new SnapshotTransferMismatchError(meta, `expected ${expected.sizeBytes} bytes crc ${expected.checksum}, got ${b.size} bytes crc ${b.crc}`);
        }
        return this.install(meta, b);
      },
      abort: () => {
        done = true;
        if (this.partialReceive === partial) this.partialReceive = null;
      },
      close: () => {
        done = true;
      },
    };
  }

  private install(meta: SnapshotMeta, body: ChunkedBytes): StoredSnapshotInfo {
    const info: StoredSnapshotInfo = { index: meta.index, term: meta.term, sizeBytes: body.size, checksum: body.crc >>> 0 };
    this.committed.set(key(meta), { info, body });
    const cur = this.current;
    if (cur === null || meta.index > cur.index || (meta.index === cur.index && meta.term >= cur.term)) this.current = info;
    return info;
  }
}
