// Framing of the byte stream between two nodes:
//   u32 little-endian length (of what follows) | u8 frame kind | payload
// and FrameSplitter, the incremental decoder that turns TCP chunks back into
// frames whatever the chunking (frames split across chunks or merged in one).
// A length above the bound or an unknown kind is rejected as soon as the
// header is seen, before any of the body is buffered.

import { CodecError } from '../codec/index.js';

/** Bytes before the payload: u32 length + u8 kind. */
export const FRAME_HEADER_BYTES = 5;

/** Frame kinds on the wire. hello/ack only during the handshake; raft/app only after it. */
export const FrameKind = { hello: 1, ack: 2, raft: 3, app: 4 } as const;
/** One of {@link FrameKind}'s values. */
export type FrameKindCode = (typeof FrameKind)[keyof typeof FrameKind];

const MAX_KIND = 4;

/** A frame cut out of the stream. `payload` may be a view into a received chunk: copy what must outlive it. */
export interface RawFrame {
  readonly kind: FrameKindCode;
  readonly payload: Uint8Array;
}

/** The stream is malformed (bad length or kind); the connection must be dropped. */
export class FrameError extends Error {
  override readonly name = 'FrameError';
  /** What was wrong, for the log line. */
  readonly reason: string;

  constructor(reason: string, options?: ErrorOptions) {
    super(`malformed frame: ${reason}`, options);
    this.reason = reason;
  }
}

/** The 5-byte header of a frame with `payloadBytes` of payload. */
export function frameHeader(kind: FrameKindCode, payloadBytes: number): Uint8Array {
  const h = new Uint8Array(FRAME_HEADER_BYTES);
  const length = payloadBytes + 1;
  h[0] = length & 0xff;
  h[1] = (length >>> 8) & 0xff;
  h[2] = (length >>> 16) & 0xff;
  h[3] = (length >>> 24) & 0xff;
  h[4] = kind;
  return h;
}

/** A whole frame (header and payload) in one buffer. */
export function encodeFrame(kind: FrameKindCode, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_BYTES + payload.byteLength);
  out.set(frameHeader(kind, payload.byteLength), 0);
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

/**
 * Splits a byte stream into frames. Complete frames inside one chunk are
 * returned as views (no copy); a frame spread over chunks is assembled into
 * one buffer of its exact size (copied once).
 * Invariants: 0 <= headerFill < 5; when `body` is set, headerFill is 0 and
 * 0 <= bodyFill < body.length. After a FrameError the splitter is poisoned
 * and every later push throws.
 */
export class FrameSplitter {
  private readonly maxFrameBytes: number;
  private readonly header = new Uint8Array(FRAME_HEADER_BYTES);
  private headerFill = 0;
  private body: Uint8Array | null = null;
  private bodyFill = 0;
  private bodyKind: FrameKindCode = FrameKind.raft;
  private poisoned: FrameError | null = null;

  /** `maxFrameBytes` bounds the length field (kind byte plus payload). */
  constructor(maxFrameBytes: number) {
    this.maxFrameBytes = maxFrameBytes;
  }

  /** Bytes held for an incomplete frame. */
  get bufferedBytes(): number {
    return this.headerFill + this.bodyFill;
  }

  /** Feeds one chunk; returns the frames it completes, in order. Throws FrameError on a malformed stream. */
  push(chunk: Uint8Array): RawFrame[] {
    if (this.poisoned !== null) throw this.poisoned;
    const out: RawFrame[] = [];
    let off = 0;
    const n = chunk.byteLength;
    while (off < n) {
      if (this.body !== null) {
        const take = Math.min(this.body.byteLength - this.bodyFill, n - off);
        this.body.set(chunk.subarray(off, off + take), this.bodyFill);
        this.bodyFill += take;
        off += take;
        if (this.bodyFill === this.body.byteLength) {
          out.push({ kind: this.bodyKind, payload: this.body });
          this.body = null;
          this.bodyFill = 0;
        }
      } else if (this.headerFill > 0 || n - off < FRAME_HEADER_BYTES) {
        const take = Math.min(FRAME_HEADER_BYTES - this.headerFill, n - off);
        this.header.set(chunk.subarray(off, off + take), this.headerFill);
        this.headerFill += take;
        off += take;
        if (this.headerFill === FRAME_HEADER_BYTES) {
          this.headerFill = 0;
          const [kind, payloadBytes] = this.parseHeader(this.header, 0);
          if (payloadBytes === 0) out.push({ kind, payload: new Uint8Array(0) });
          else {
            this.body = new Uint8Array(payloadBytes);
            this.bodyKind = kind;
          }
        }
      } else {
        const [kind, payloadBytes] = this.parseHeader(chunk, off);
        off += FRAME_HEADER_BYTES;
        if (n - off >= payloadBytes) {
          out.push({ kind, payload: chunk.subarray(off, off + payloadBytes) });
          off += payloadBytes;
        } else {
          this.body = new Uint8Array(payloadBytes);
          this.bodyKind = kind;
        }
      }
    }
    return out;
  }

  /** Validates a header at `at` (5 bytes available); returns [kind, payload bytes]. */
  private parseHeader(b: Uint8Array, at: number): [FrameKindCode, number] {
    const length = ((b[at] as number) | ((b[at + 1] as number) << 8) | ((b[at + 2] as number) << 16)) + (b[at + 3] as number) * 0x1000000;
    const kind = b[at + 4] as number;
    if (length === 0) this.poison('length 0 (a frame has at least its kind byte)');
    if (length > this.maxFrameBytes) this.poison(`length ${length} exceeds the bound of ${this.maxFrameBytes} bytes`);
    if (kind < 1 || kind > MAX_KIND) this.poison(`unknown frame kind ${kind}`);
    return [kind as FrameKindCode, length - 1];
  }

  private poison(reason: string): never {
    this.poisoned = new FrameError(reason);
    throw this.poisoned;
  }
}

/** Reads an app frame's payload: u16 channel + bytes (copied into a plain Uint8Array). Throws CodecError when shorter than 2 bytes. */
export function decodeAppPayload(payload: Uint8Array): { channel: number; payload: Uint8Array } {
  if (payload.byteLength < 2) throw new CodecError(`app frame of ${payload.byteLength} bytes has no channel`, 0);
  return { channel: (payload[0] as number) | ((payload[1] as number) << 8), payload: new Uint8Array(payload.subarray(2)) };
}

/** An app frame's payload: u16 channel + bytes. Throws RangeError for a channel outside [0, 65535]. */
export function encodeAppPayload(channel: number, data: Uint8Array): Uint8Array {
  if (!Number.isInteger(channel) || channel < 0 || channel > 0xffff) throw new RangeError(`app channel ${channel} is not a u16`);
  const out = new Uint8Array(2 + data.byteLength);
  out[0] = channel & 0xff;
  out[1] = channel >>> 8;
  out.set(data, 2);
  return out;
}
