// AMQP 0-9-1 framing: the protocol header a client opens with, and the frames
// that follow it:
//
//   type:u8 | channel:u16 | size:u32 | payload:size bytes | frame-end 0xCE
//
// FrameReader turns a stream of socket chunks (split anywhere) into frames.
// Payloads are subarrays of the pushed chunks when a frame lies inside one
// chunk, else one fresh buffer of exactly the payload's size; the reader never
// writes into memory it has handed out. The size is checked against frame-max
// as soon as the 7 header bytes are in, so a hostile size never makes us wait
// for (or buffer) more than one legal frame.
//
// frame-max counts the whole frame (header and frame-end included, per the
// spec), but like RabbitMQ the reader allows a payload of up to frame-max
// bytes (RabbitMQ's FRAME_SIZE_FUDGE of 8): old clients counted frame-max as
// the payload size. Our own encoders split bodies at frame-max - 8.

import { AmqpCodecError } from './errors.js';

export const FRAME_METHOD = 1;
export const FRAME_HEADER = 2;
export const FRAME_BODY = 3;
export const FRAME_HEARTBEAT = 8;
export const FRAME_END = 0xce;
/** The frame-max every peer must accept, and the one in force before connection.tune-ok. */
export const FRAME_MIN_SIZE = 4096;
/** Bytes of a frame that are not payload: 7 header bytes and the frame-end octet. */
export const FRAME_OVERHEAD = 8;
/** "AMQP" 0 0 9 1: what an AMQP 0-9-1 client sends first. */
export const PROTOCOL_HEADER: Buffer = Buffer.from([0x41, 0x4d, 0x51, 0x50, 0x00, 0x00, 0x09, 0x01]);

/** One frame. Invariant: type is one of FRAME_METHOD/HEADER/BODY/HEARTBEAT; channel is a u16. */
export interface Frame {
  readonly type: number;
  readonly channel: number;
  /** The payload, without header or frame-end; a subarray of received data where possible. */
  readonly payload: Buffer;
}

/**
 * Compares the first 8 bytes of `buf` with the AMQP 0-9-1 protocol header:
 * 'ok', 'incomplete' (fewer than 8 bytes, all matching so far) or 'wrong'
 * (then the server should answer with PROTOCOL_HEADER and close).
 */
export function checkProtocolHeader(buf: Buffer): 'ok' | 'incomplete' | 'wrong' {
  const n = Math.min(buf.length, PROTOCOL_HEADER.length);
  for (let i = 0; i < n; i++) if (buf[i] !== PROTOCOL_HEADER[i]) return 'wrong';
  return n === PROTOCOL_HEADER.length ? 'ok' : 'incomplete';
}

function checkFrameMax(n: number): void {
  if (!Number.isInteger(n) || n < FRAME_MIN_SIZE || n > 0xffffffff) {
    throw new AmqpCodecError(503, `frame-max ${n} is not an integer in [${FRAME_MIN_SIZE}, 2^32 - 1] (0, "no limit", must be mapped to a real cap by the caller)`);
  }
}

/**
 * Incremental frame decoder. Usage: `push(chunk)` each socket chunk, then call
 * `next()` until it returns null. Throws AmqpCodecError(501) for an unknown
 * frame type, a payload larger than frame-max, a heartbeat with a payload, or a
 * bad frame-end octet; once it has thrown, it throws the same error forever.
 *
 * Invariants: `buffered` = the bytes pushed and not yet returned as frames;
 * chunks[first..] hold them, `head` bytes of chunks[first] already consumed.
 */
export class FrameReader {
  #frameMax: number;
  #chunks: (Buffer | undefined)[] = [];
  #first = 0;
  #head = 0;
  #buffered = 0;
  #failure: AmqpCodecError | null = null;
  readonly #header = Buffer.alloc(7);

  /** `frameMax`: the negotiated frame-max (FRAME_MIN_SIZE until tune-ok), in [4096, 2^32 - 1]. */
  constructor(frameMax: number) {
    checkFrameMax(frameMax);
    this.#frameMax = frameMax;
  }

  /** Changes the limit for frames not yet started (after connection.tune-ok). */
  setFrameMax(n: number): void {
    checkFrameMax(n);
    this.#frameMax = n;
  }

  /** Bytes held that are not yet returned as frames. */
  get buffered(): number {
    return this.#buffered;
  }

  /** Appends a chunk of the stream. The reader keeps a reference: the caller must not modify it afterwards. */
  push(chunk: Buffer): void {
    if (this.#failure !== null) throw this.#failure;
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
  }

  /** The next complete frame, or null until more bytes are pushed. */
  next(): Frame | null {
    if (this.#failure !== null) throw this.#failure;
    if (this.#buffered < 7) return null;
    const first = this.#chunks[this.#first] as Buffer;
    const head = this.#head;
    let type: number;
    let channel: number;
    let size: number;
    if (first.length - head >= 7) {
      type = first[head] as number;
      channel = ((first[head + 1] as number) << 8) | (first[head + 2] as number);
      size = first.readUInt32BE(head + 3);
    } else {
      const h = this.#header;
      this.#copyOut(h, 0, 7);
      type = h[0] as number;
      channel = h.readUInt16BE(1);
      size = h.readUInt32BE(3);
    }
    if (type !== FRAME_METHOD && type !== FRAME_HEADER && type !== FRAME_BODY && type !== FRAME_HEARTBEAT) {
      this.#fail(`unknown frame type ${type}`);
    }
    if (size > this.#frameMax) this.#fail(`frame payload of ${size} bytes exceeds frame-max ${this.#frameMax}`);
    if (type === FRAME_HEARTBEAT && size !== 0) this.#fail(`heartbeat frame with a ${size}-byte payload`);
    const total = size + FRAME_OVERHEAD;
    if (this.#buffered < total) return null;
    let payload: Buffer;
    let end: number;
    if (first.length - head >= total) {
      payload = first.subarray(head + 7, head + 7 + size);
      end = first[head + 7 + size] as number;
    } else {
      payload = Buffer.allocUnsafe(size);
      this.#copyOut(payload, 7, size);
      const e = this.#header;
      this.#copyOut(e.subarray(0, 1), 7 + size, 1);
      end = e[0] as number;
    }
    if (end !== FRAME_END) this.#fail(`frame-end octet is 0x${end.toString(16).padStart(2, '0')}, not 0xce`);
    this.#consume(total);
    return { type, channel, payload };
  }

  #fail(message: string): never {
    this.#failure = new AmqpCodecError(501, message);
    throw this.#failure;
  }

  /** Copies `n` buffered bytes starting `from` bytes past the read position into `target`. */
  #copyOut(target: Buffer, from: number, n: number): void {
    let i = this.#first;
    let off = this.#head + from;
    let chunk = this.#chunks[i] as Buffer;
    while (off >= chunk.length) {
      off -= chunk.length;
      chunk = this.#chunks[++i] as Buffer;
    }
    let done = 0;
    while (done < n) {
      const take = Math.min(n - done, chunk.length - off);
      chunk.copy(target, done, off, off + take);
      done += take;
      off = 0;
      if (done < n) chunk = this.#chunks[++i] as Buffer;
    }
  }

  #consume(n: number): void {
    this.#buffered -= n;
    const chunks = this.#chunks;
    while (n > 0) {
      const chunk = chunks[this.#first] as Buffer;
      const avail = chunk.length - this.#head;
      if (n < avail) {
        this.#head += n;
        return;
      }
      n -= avail;
      chunks[this.#first++] = undefined;
      this.#head = 0;
    }
    if (this.#first === chunks.length) {
      chunks.length = 0;
      this.#first = 0;
    } else if (this.#first >= 1024 && this.#first * 2 >= chunks.length) {
      this.#chunks = chunks.slice(this.#first);
      this.#first = 0;
    }
  }
}

export function checkU16(v: number, what: string): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw new AmqpCodecError(502, `cannot encode: ${what} ${v} is not a u16`);
}

/** Writes a frame header (type, channel, size) at `pos` of `buf`. */
export function writeFrameHeader(buf: Buffer, pos: number, type: number, channel: number, size: number): void {
  buf[pos] = type;
  buf[pos + 1] = channel >>> 8;
  buf[pos + 2] = channel & 0xff;
  buf.writeUInt32BE(size, pos + 3);
}

/** A whole frame around `payload`, in one allocation. Throws AmqpCodecError(502) for a type/channel/size the wire cannot carry. */
export function encodeFrame(type: number, channel: number, payload: Uint8Array): Buffer {
  if (!Number.isInteger(type) || type < 0 || type > 0xff) throw new AmqpCodecError(502, `cannot encode: frame type ${type} is not a u8`);
  checkU16(channel, 'channel');
  if (payload.byteLength > 0xffffffff) throw new AmqpCodecError(502, `cannot encode: payload of ${payload.byteLength} bytes exceeds 2^32 - 1`);
  const buf = Buffer.allocUnsafe(payload.byteLength + FRAME_OVERHEAD);
  writeFrameHeader(buf, 0, type, channel, payload.byteLength);
  buf.set(payload, 7);
  buf[7 + payload.byteLength] = FRAME_END;
  return buf;
}

/** The heartbeat frame (type 8, channel 0, empty payload). Shared: do not modify. */
export const HEARTBEAT_FRAME: Buffer = encodeFrame(FRAME_HEARTBEAT, 0, new Uint8Array(0));
