// Module-private primitives of the AMQP 0-9-1 codec: a bounds-checked read
// cursor over a Buffer and the sized writers for short strings. Everything
// that reads network bytes goes through Cursor, which checks the bytes are
// there before touching them, so that a truncated or hostile payload becomes
// an AmqpCodecError(502) and never a RangeError from Buffer. Not re-exported
// from index.ts: the public API is fields/frames/methods/content.

import { isUtf8 } from 'node:buffer';
import { cannotEncode, syntaxError } from './errors.js';

/** 2^53 - 1 split for a u64 read as two u32 halves: the high half may not exceed this. */
const MAX_SAFE_HIGH_WORD = 0x1fffff;

/**
 * Reads big-endian AMQP primitives from `buf` in the half-open range [pos, end).
 * Invariant: 0 <= pos <= end <= buf.length. `end` may be narrowed while a
 * length-prefixed structure (a field table, an array) is read, so that nothing
 * inside it can read past its declared length.
 */
export class Cursor {
  constructor(
    readonly buf: Buffer,
    public pos: number,
    public end: number,
  ) {}

  /** Bytes left before `end`. */
  left(): number {
    return this.end - this.pos;
  }

  /** Throws 502 unless `n` more bytes are available. */
  need(n: number, what: string): void {
    if (this.end - this.pos < n) {
      syntaxError(`${what}: truncated at byte ${this.pos} (needs ${n}, ${this.end - this.pos} left)`);
    }
  }

  u8(what: string): number {
    if (this.pos >= this.end) this.need(1, what);
    return this.buf[this.pos++] as number;
  }

  u16(what: string): number {
    this.need(2, what);
    const b = this.buf;
    const p = this.pos;
    this.pos = p + 2;
    return ((b[p] as number) << 8) | (b[p + 1] as number);
  }

  u32(what: string): number {
    this.need(4, what);
    const b = this.buf;
    const p = this.pos;
    this.pos = p + 4;
    return (b[p] as number) * 0x1000000 + (((b[p + 1] as number) << 16) | ((b[p + 2] as number) << 8) | (b[p + 3] as number));
  }

  /** A u64 that must fit a JS number exactly (<= 2^53 - 1), else 502. */
  u64Safe(what: string): number {
    this.need(8, what);
    const at = this.pos;
    const hi = this.u32(what);
    const lo = this.u32(what);
    if (hi > MAX_SAFE_HIGH_WORD) syntaxError(`${what}: u64 at byte ${at} exceeds 2^53 - 1`);
    return hi * 0x100000000 + lo;
  }

  /** A strict boolean octet: 0 or 1, else 502. */
  bool(what: string): boolean {
    const at = this.pos;
    const b = this.u8(what);
    if (b > 1) syntaxError(`${what}: boolean octet ${b} at byte ${at} is not 0 or 1`);
    return b === 1;
  }

  /**
   * A short string (u8 length + UTF-8 bytes) as a JS string. Invalid UTF-8 is
   * refused (502): decoding it lossily would make re-encoding change the bytes.
   * Exchange names, routing keys and consumer tags repeat on every message, so
   * decoded strings are cached (see {@link cachedShortstr}).
   */
  shortstr(what: string): string {
    const n = this.u8(what);
    if (n === 0) return '';
    this.need(n, what);
    const start = this.pos;
    this.pos = start + n;
    return cachedShortstr(this.buf, start, start + n, what);
  }

  /** Validates a short string like {@link shortstr} without building it. */
  skipShortstr(what: string): void {
    const n = this.u8(what);
    if (n === 0) return;
    this.need(n, what);
    const b = this.buf;
    const start = this.pos;
    const stop = start + n;
    this.pos = stop;
    for (let i = start; i < stop; i++) {
      if ((b[i] as number) >= 0x80) {
        if (!isUtf8(b.subarray(start, stop))) syntaxError(`${what}: invalid UTF-8 at byte ${start}`);
        return;
      }
    }
  }

  /**
   * A long string (u32 length + bytes) as a Uint8Array view of the input: no
   * copy (it aliases the frame payload; copy it to keep it past the frame).
   * The length is checked against the bytes available before anything else.
   */
  longstr(what: string): Uint8Array {
    const at = this.pos;
    const n = this.u32(what);
    if (n > this.end - this.pos) syntaxError(`${what}: length ${n} at byte ${at} exceeds the ${this.end - this.pos} bytes left`);
    const v = new Uint8Array(this.buf.buffer, this.buf.byteOffset + this.pos, n);
    this.pos += n;
    return v;
  }

  /** Throws 502 unless every byte up to `end` was consumed. */
  finish(what: string): void {
    if (this.pos !== this.end) syntaxError(`${what}: ${this.end - this.pos} trailing bytes at byte ${this.pos}`);
  }
}

const CACHE_SLOTS = 1024; // a power of two
const cacheKeys: (Uint8Array | undefined)[] = new Array<Uint8Array | undefined>(CACHE_SLOTS).fill(undefined);
const cacheValues: string[] = new Array<string>(CACHE_SLOTS).fill('');

/**
 * Decodes bytes [start, stop) of `b` (1..255 of them) as UTF-8, through a
 * direct-mapped cache keyed by an FNV-1a hash of the bytes and confirmed by
 * comparing them: a hit costs one pass over the bytes and allocates nothing;
 * native string creation costs several times more. Hostile input can only
 * cause misses. Throws 502 on invalid UTF-8 (never cached).
 */
function cachedShortstr(b: Buffer, start: number, stop: number, what: string): string {
  let hash = 0x811c9dc5;
  let high = 0;
  for (let i = start; i < stop; i++) {
    const x = b[i] as number;
    high |= x;
    hash = Math.imul(hash ^ x, 0x01000193);
  }
  const slot = hash & (CACHE_SLOTS - 1);
  const n = stop - start;
  const key = cacheKeys[slot];
  if (key !== undefined && key.length === n) {
    let i = 0;
    while (i < n && key[i] === b[start + i]) i++;
    if (i === n) return cacheValues[slot] as string;
  }
  let s: string;
  if (high < 0x80) {
    s = b.toString('latin1', start, stop);
  } else {
    if (!isUtf8(b.subarray(start, stop))) syntaxError(`${what}: invalid UTF-8 at byte ${start}`);
    s = b.toString('utf8', start, stop);
  }
  const copy = new Uint8Array(n); // a copy: the input buffer may be reused by the caller
  copy.set(b.subarray(start, stop));
  cacheKeys[slot] = copy;
  cacheValues[slot] = s;
  return s;
}

/** Wraps a Uint8Array as a Buffer over the same memory (no copy). */
export function asBuffer(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

function isWellFormed(s: string): boolean {
  return (s as unknown as { isWellFormed(): boolean }).isWellFormed();
}

/**
 * Encoded size of a short string (1 + UTF-8 bytes). Refuses (502, "cannot
 * encode") a non-string, more than 255 UTF-8 bytes, or a lone surrogate (which
 * UTF-8 cannot carry: it would arrive as U+FFFD).
 */
export function shortstrSize(s: unknown, what: string): number {
  if (typeof s !== 'string') cannotEncode(`${what}: expected a string, got ${typeof s}`);
  const n = s.length === 0 ? 0 : Buffer.byteLength(s, 'utf8');
  if (n > 255) cannotEncode(`${what}: ${n} UTF-8 bytes, a short string holds at most 255`);
  if (n !== s.length && !isWellFormed(s)) cannotEncode(`${what}: lone surrogate (not well-formed Unicode)`);
  return 1 + n;
}

/** Writes a short string already validated by {@link shortstrSize}; returns the new position. */
export function writeShortstr(buf: Buffer, pos: number, s: string): number {
  const len = s.length;
  if (len <= 32) {
    // Short ASCII strings are copied by hand: cheaper than a native call.
    let i = 0;
    for (; i < len; i++) {
      const ch = s.charCodeAt(i);
      if (ch >= 0x80) break;
      buf[pos + 1 + i] = ch;
    }
    if (i === len) {
      buf[pos] = len;
      return pos + 1 + len;
    }
  }
  const n = buf.write(s, pos + 1, 'utf8');
  buf[pos] = n;
  return pos + 1 + n;
}

/** Writes a u32 length and the bytes; returns the new position. */
export function writeLongstr(buf: Buffer, pos: number, v: Uint8Array): number {
  buf.writeUInt32BE(v.byteLength, pos);
  buf.set(v, pos + 4);
  return pos + 4 + v.byteLength;
}

/** Encoded size of a long string (4 + bytes); refuses a non-Uint8Array. */
export function longstrSize(v: unknown, what: string): number {
  if (!(v instanceof Uint8Array)) cannotEncode(`${what}: expected a Uint8Array`);
  return 4 + v.byteLength;
}

/** Refuses (502) anything but an integer in [lo, hi]. */
export function checkInt(v: unknown, lo: number, hi: number, what: string): asserts v is number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) {
    cannotEncode(`${what}: ${String(v)} is not an integer in [${lo}, ${hi}]`);
  }
}

