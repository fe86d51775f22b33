// The packed parts of the worker <-> Raft-thread batches: the common case of
// each direction as one byte buffer instead of one structured-clone object
// per request (messages.ts). Writes go as [id u32][length u32][command]
// records; answers to writes whose result is a put without prev_kv (what a
// plain Put gets) go as 16-byte [id u32][raft term u32][revision f64]
// records. Everything else still goes as objects beside them.
//
// The buffers cross the IPC channel as one copy; reading them makes views,
// not copies, so a write's command reaches the runtime as a view of the
// batch's buffer.

/** Builds the packed writes of one batch. */
export class PackedWritesBuilder {
  private parts: Uint8Array[] = [];
  private ids: number[] = [];
  private bytes = 0;

  get count(): number {
    return this.ids.length;
  }

  add(id: number, command: Uint8Array): void {
    this.ids.push(id);
    this.parts.push(command);
    this.bytes += 8 + command.byteLength;
  }

  /** The buffer of every write added since the last take, or null when there were none; starts over. */
  take(): Uint8Array | null {
    if (this.ids.length === 0) return null;
    const out = new Uint8Array(this.bytes);
    const view = new DataView(out.buffer);
    let at = 0;
    for (let i = 0; i < this.ids.length; i++) {
      const part = this.parts[i] as Uint8Array;
      view.setUint32(at, this.ids[i] as number, true);
      view.setUint32(at + 4, part.byteLength, true);
      out.set(part, at + 8);
      at += 8 + part.byteLength;
    }
    this.parts = [];
    this.ids = [];
    this.bytes = 0;
    return out;
  }
}

/** A packed batch that does not parse: its sender is broken (the node logs it and answers nothing from it). */
export class PackedBatchError extends Error {
  override readonly name = 'PackedBatchError';
}

/** Calls `each(id, command)` for every write of a packed buffer; the commands are views of `buf`. */
export function forEachPackedWrite(buf: Uint8Array, each: (id: number, command: Uint8Array) => void): void {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let at = 0;
  while (at < buf.byteLength) {
    if (at + 8 > buf.byteLength) throw new PackedBatchError(`packed writes: a record header at ${at} runs past the end (${buf.byteLength} bytes)`);
    const id = view.getUint32(at, true);
    const len = view.getUint32(at + 4, true);
    if (at + 8 + len > buf.byteLength) throw new PackedBatchError(`packed writes: record ${id} of ${len} bytes at ${at} runs past the end (${buf.byteLength} bytes)`);
    each(id, buf.subarray(at + 8, at + 8 + len));
    at += 8 + len;
  }
}

const PUT_RECORD = 16;

/** Builds the packed answers to plain puts of one batch of results. */
export class PackedPutsBuilder {
  private buf = new Uint8Array(PUT_RECORD * 64);
  private view = new DataView(this.buf.buffer);
  private n = 0;

  get count(): number {
    return this.n;
  }

  add(id: number, raftTerm: number, revision: number): void {
    if ((this.n + 1) * PUT_RECORD > this.buf.byteLength) {
      const bigger = new Uint8Array(this.buf.byteLength * 2);
      bigger.set(this.buf);
      this.buf = bigger;
      this.view = new DataView(bigger.buffer);
    }
    const at = this.n * PUT_RECORD;
    this.view.setUint32(at, id, true);
    this.view.setUint32(at + 4, raftTerm, true);
    this.view.setFloat64(at + 8, revision, true);
    this.n++;
  }

  /** The records added since the last take (a copy of just them), or null when none; starts over. */
  take(): Uint8Array | null {
    if (this.n === 0) return null;
    const out = this.buf.slice(0, this.n * PUT_RECORD);
    this.n = 0;
    return out;
  }
}

/** Calls `each(id, raftTerm, revision)` for every plain-put answer of a packed buffer. */
export function forEachPackedPut(buf: Uint8Array, each: (id: number, raftTerm: number, revision: number) => void): void {
  if (buf.byteLength % PUT_RECORD !== 0) throw new PackedBatchError(`packed puts: ${buf.byteLength} bytes is not a whole number of ${PUT_RECORD}-byte records`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  for (let at = 0; at < buf.byteLength; at += PUT_RECORD) each(view.getUint32(at, true), view.getUint32(at + 4, true), view.getFloat64(at + 8, true));
}
