// How many client commands share one log entry: the runtime packs every
// command that arrived while the previous round was being persisted into as
// few entries as fit `maxEntryBytes`, so that many concurrent clients cost
// few entries and one fsync. Layout: u32 count, then per command u32 length
// and its bytes (little-endian). Decoding checks every length.

/** A committed entry's payload is not a valid batch (it can only come from a bug or corruption). */
export class BatchFormatError extends Error {
  override readonly name = 'BatchFormatError';
}

/** Bytes a command adds to a batch beyond its own length. */
export const BATCH_ITEM_OVERHEAD_BYTES = 4;
/** Bytes every batch starts with. */
export const BATCH_HEADER_BYTES = 4;

/** Packs commands into one entry payload. */
export function encodeBatch(commands: readonly Uint8Array[]): Uint8Array {
  let size = BATCH_HEADER_BYTES;
  for (const c of commands) size += BATCH_ITEM_OVERHEAD_BYTES + c.byteLength;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  view.setUint32(0, commands.length, true);
  let pos = BATCH_HEADER_BYTES;
  for (const c of commands) {
    view.setUint32(pos, c.byteLength, true);
    out.set(c, pos + 4);
    pos += 4 + c.byteLength;
  }
  return out;
}

/**
 * Checks a whole entry payload and returns how many commands it holds; command i's bytes follow its u32 length,
 * the first at BATCH_HEADER_BYTES. Throws {@link BatchFormatError}.
 */
export function batchCount(data: Uint8Array): number {
  if (data.byteLength < BATCH_HEADER_BYTES) throw new BatchFormatError(`batch of ${data.byteLength} bytes has no header`);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const count = view.getUint32(0, true);
  if (count > (data.byteLength - BATCH_HEADER_BYTES) / BATCH_ITEM_OVERHEAD_BYTES) {
    throw new BatchFormatError(`batch claims ${count} commands in ${data.byteLength} bytes`);
  }
  let pos = BATCH_HEADER_BYTES;
  for (let i = 0; i < count; i++) {
    if (pos + 4 > data.byteLength) throw new BatchFormatError(`command ${i} header at byte ${pos} is cut off`);
    const len = view.getUint32(pos, true);
    if (pos + 4 + len > data.byteLength) throw new BatchFormatError(`command ${i} of ${len} bytes at byte ${pos} overruns the batch`);
    pos += 4 + len;
  }
  if (pos !== data.byteLength) throw new BatchFormatError(`${data.byteLength - pos} trailing bytes after ${count} commands`);
  return count;
}

/** The length of the command whose u32 length prefix is at `pos` of a batch batchCount() accepted. */
export function commandLengthAt(data: Uint8Array, pos: number): number {
  return ((data[pos] as number) | ((data[pos + 1] as number) << 8) | ((data[pos + 2] as number) << 16)) + (data[pos + 3] as number) * 0x1000000;
}

/** Unpacks an entry payload; the commands are views into `data`. Throws {@link BatchFormatError}. */
export function decodeBatch(data: Uint8Array): Uint8Array[] {
  const count = batchCount(data);
  const out: Uint8Array[] = [];
  let pos = BATCH_HEADER_BYTES;
  for (let i = 0; i < count; i++) {
    const len = commandLengthAt(data, pos);
    out.push(data.subarray(pos + 4, pos + 4 + len));
    pos += 4 + len;
  }
  return out;
}
