// The hot path between a node's Raft process and one protocol worker: a
// socket pair of its own (the worker's file descriptor HOT_CHANNEL_FD,
// opened by the fork), not the cluster module's IPC channel. Node's IPC
// wraps every message in its own framing, serializer and callbacks: at one
// client, where each put crosses twice, it cost the leader about 300 µs of
// CPU per put and the worker about 240; over this channel, about 180 and
// 140 (docs/BENCHMARKS.md, "The hot channel"). The IPC channel keeps the
// rare control messages (messages.ts: init, listening, counters, close) and
// the worker's life.
//
// Frames: [body length u32 LE][kind u8][body]. Both kinds carry a packed
// part (packed.ts) and, only when there is one, a structured clone (V8's
// serializer, as the IPC channel used) of the rest:
//   kind 1, worker -> node, a batch:   [writes length u32][writes][clone of { requests, identities }]
//   kind 2, node -> worker, results:   [puts length u32][puts][clone of the other results]
// A plain put therefore crosses as bytes both ways, with no object to
// serialize or rebuild.

import { deserialize, serialize } from 'node:v8';
import type { WorkerIdentity, WorkerRequest, WorkerResult } from './messages.js';

/** The worker's file descriptor of the hot channel (after stdin, stdout, stderr and the IPC channel). */
export const HOT_CHANNEL_FD = 4;

/** The largest frame either side accepts (a batch holds at most maxInflight requests of at most 4 MiB each, in practice far less). */
export const MAX_HOT_FRAME_BYTES = 1 << 30;

const KIND_BATCH = 1;
const KIND_RESULTS = 2;
const HEADER_BYTES = 5;

/** A batch as the node receives it. */
export interface HotBatch {
  readonly writes: Uint8Array | null;
  readonly requests: readonly WorkerRequest[];
  readonly identities: readonly WorkerIdentity[] | null;
}

/** Results as the worker receives them. */
export interface HotResults {
  /** A view of the socket's chunk: read it within the frame's handler. */
  readonly puts: Uint8Array | null;
  readonly results: readonly WorkerResult[];
}

export type HotFrame = { readonly kind: 'batch'; readonly batch: HotBatch } | { readonly kind: 'results'; readonly results: HotResults };

/** A frame that does not parse: the other side is broken. */
export class HotFrameError extends Error {
  override readonly name = 'HotFrameError';
}

function frame(kind: number, packed: Uint8Array | null, rest: Buffer | null): Buffer {
  const packedBytes = packed?.byteLength ?? 0;
  const body = 4 + packedBytes + (rest?.byteLength ?? 0);
  const out = Buffer.allocUnsafe(HEADER_BYTES + body);
  out.writeUInt32LE(body, 0);
  out[4] = kind;
  out.writeUInt32LE(packedBytes, 5);
  if (packed !== null) out.set(packed, 9);
  if (rest !== null) out.set(rest, 9 + packedBytes);
  return out;
}

/** A worker's batch as one frame. */
export function encodeBatch(writes: Uint8Array | null, requests: readonly WorkerRequest[], identities: readonly WorkerIdentity[] | null): Buffer {
  const rest = requests.length === 0 && identities === null ? null : serialize({ requests, identities });
  return frame(KIND_BATCH, writes, rest);
}

/** The node's results for one worker as one frame. */
export function encodeResults(puts: Uint8Array | null, results: readonly WorkerResult[]): Buffer {
  return frame(KIND_RESULTS, puts, results.length === 0 ? null : serialize(results));
}

function decodeBody(kind: number, body: Buffer): HotFrame {
  if (body.byteLength < 4) throw new HotFrameError(`a hot-channel frame of ${body.byteLength} bytes has no packed length`);
  const packedBytes = body.readUInt32LE(0);
  if (packedBytes > body.byteLength - 4) throw new HotFrameError(`a packed part of ${packedBytes} bytes runs past its frame (${body.byteLength - 4} bytes left)`);
  // A batch's packed writes outlive this chunk of the socket's stream (the runtime keeps each command as a view of
  // them): a copy. Results' packed puts are read at once (the worker answers them in its handler): a view.
  const packed = packedBytes === 0 ? null
    : kind === KIND_BATCH ? Uint8Array.prototype.slice.call(body, 4, 4 + packedBytes) : body.subarray(4, 4 + packedBytes);
  const restBytes = body.byteLength - 4 - packedBytes;
  let rest: unknown = null;
  if (restBytes > 0) {
    try {
      rest = deserialize(body.subarray(4 + packedBytes));
    } catch (err) {
      throw new HotFrameError(`a hot-channel frame's structured part does not deserialize: ${(err as Error).message}`);
    }
  }
  if (kind === KIND_BATCH) {
    const r = (rest ?? { requests: [], identities: null }) as { requests?: unknown; identities?: unknown };
    if (!Array.isArray(r.requests) || (r.identities !== null && !Array.isArray(r.identities))) throw new HotFrameError('a batch without its requests');
    return { kind: 'batch', batch: { writes: packed, requests: r.requests as WorkerRequest[], identities: r.identities as WorkerIdentity[] | null } };
  }
  if (kind === KIND_RESULTS) {
    const results = rest ?? [];
    if (!Array.isArray(results)) throw new HotFrameError('results that are not a list');
    return { kind: 'results', results: { puts: packed, results: results as WorkerResult[] } };
  }
  throw new HotFrameError(`unknown hot-channel frame kind ${kind}`);
}

/**
 * Cuts a byte stream into frames. `push` takes each chunk as the socket
 * delivers it and hands every whole frame to `onFrame`; a frame split across
 * chunks waits for the rest. Throws HotFrameError on a frame that cannot be.
 */
export class HotFrameReader {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Bytes the first pending frame needs in all (its header, until the header is in): chunks gather until then, copied once. */
  private pendingWants = 0;

  constructor(private readonly onFrame: (f: HotFrame) => void) {}

  push(chunk: Buffer): void {
    let buf = chunk;
    if (this.pendingBytes > 0) {
      this.pending.push(chunk);
      this.pendingBytes += chunk.byteLength;
      if (this.pendingBytes < this.pendingWants) return;
      buf = Buffer.concat(this.pending, this.pendingBytes);
      this.pending = [];
      this.pendingBytes = 0;
    }
    let at = 0;
    let wants = HEADER_BYTES;
    while (buf.byteLength - at >= HEADER_BYTES) {
      const body = buf.readUInt32LE(at);
      if (body > MAX_HOT_FRAME_BYTES) throw new HotFrameError(`a hot-channel frame of ${body} bytes is over the limit of ${MAX_HOT_FRAME_BYTES}`);
      if (buf.byteLength - at - HEADER_BYTES < body) {
        wants = HEADER_BYTES + body;
        break;
      }
      const kind = buf[at + 4] as number;
      const f = decodeBody(kind, buf.subarray(at + HEADER_BYTES, at + HEADER_BYTES + body));
      at += HEADER_BYTES + body;
      this.onFrame(f);
    }
    if (at < buf.byteLength) {
      const left = buf.subarray(at);
      this.pending.push(left);
      this.pendingBytes = left.byteLength;
      this.pendingWants = wants;
    }
  }
}
