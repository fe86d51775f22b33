// Low-level readers and writers shared by the message codec and the transport
// handshake: canonical LEB128 varints for safe integers, strict booleans,
// length-prefixed byte strings and node ids. Every read checks bounds and
// throws CodecError; nothing here allocates except where a value is copied out.

import { CodecError } from './errors.js';

/** The longest node id (or other short string) in UTF-8 bytes. */
export const MAX_SHORT_STRING_BYTES = 255;

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Size in bytes of `value` as an unsigned LEB128 varint (value: a non-negative safe integer). */
export function varintBytes(value: number): number {
  let n = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 0x80);
    n++;
  }
  return n;
}

/** Throws CodecError unless `value` is a non-negative safe integer. */
export function checkUint(field: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new CodecError(`${field}: ${String(value)} is not a non-negative safe integer`, null);
  }
}

const shortStringCache = new Map<string, Uint8Array>();
const SHORT_STRING_CACHE_MAX = 4096;

/**
 * UTF-8 bytes of a short string (node id, cluster id): non-empty, at most 255
 * bytes, well-formed (no lone surrogates). Cached, since ids repeat in every
 * message. Throws CodecError otherwise.
 */
export function shortStringUtf8(field: string, s: string): Uint8Array {
  const cached = shortStringCache.get(s);
  if (cached !== undefined) return cached;
  if (s.length === 0) throw new CodecError(`${field}: empty`, null);
  const bytes = utf8Encoder.encode(s);
  if (bytes.byteLength > MAX_SHORT_STRING_BYTES) {
    throw new CodecError(`${field}: ${bytes.byteLength} UTF-8 bytes, more than ${MAX_SHORT_STRING_BYTES}`, null);
  }
  if (utf8Decoder.decode(bytes) !== s) throw new CodecError(`${field}: not well-formed Unicode (lone surrogate)`, null);
  if (shortStringCache.size >= SHORT_STRING_CACHE_MAX) shortStringCache.clear();
  shortStringCache.set(s, bytes);
  return bytes;
}

/**
 * Writes into a buffer sized exactly beforehand. Writing past the end is a bug
 * in the sizing, caught by the typed array bounds (a RangeError from set()).
 * Invariant: 0 <= pos <= bytes.byteLength.
 */
export class ByteWriter {
  readonly bytes: Uint8Array;
  pos = 0;

  constructor(size: number) {
    this.bytes = new Uint8Array(size);
  }

  u8(value: number): void {
    this.bytes[this.pos++] = value;
  }

  u16(value: number): void {
    this.bytes[this.pos++] = value & 0xff;
    this.bytes[this.pos++] = value >>> 8;
  }

  bool(value: boolean): void {
    this.bytes[this.pos++] = value ? 1 : 0;
  }

  /** A non-negative safe integer (validated by the caller's sizing pass) as a varint. */
  uint(value: number): void {
    const b = this.bytes;
    while (value >= 0x80) {
      b[this.pos++] = (value % 0x80) | 0x80;
      value = Math.floor(value / 0x80);
    }
    b[this.pos++] = value;
  }

  raw(data: Uint8Array): void {
    this.bytes.set(data, this.pos);
    this.pos += data.byteLength;
  }

  /** Varint length, then the bytes. */
  blob(data: Uint8Array): void {
    this.uint(data.byteLength);
    this.raw(data);
  }

  /** u8 length, then the bytes (from {@link shortStringUtf8}); length 0 encodes null. */
  shortString(utf8: Uint8Array | null): void {
    if (utf8 === null) {
      this.u8(0);
      return;
    }
    this.u8(utf8.byteLength);
    this.raw(utf8);
  }
}

/**
 * Reads untrusted bytes; every method throws CodecError on truncation or an
 * invalid value, naming the field and offset.
 * Invariant: 0 <= pos <= bytes.byteLength.
 */
export class ByteReader {
  readonly bytes: Uint8Array;
  pos = 0;

  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
  }

  /** Bytes not yet read. */
  remaining(): number {
    return this.bytes.byteLength - this.pos;
  }

  fail(field: string, reason: string, at = this.pos): never {
    throw new CodecError(`${field}: ${reason}`, at);
  }

  private need(field: string, n: number): void {
    if (this.bytes.byteLength - this.pos < n) {
      this.fail(field, `truncated (needs ${n} bytes, ${this.bytes.byteLength - this.pos} left)`);
    }
  }

  u8(field: string): number {
    const b = this.bytes[this.pos];
    if (b === undefined) this.fail(field, 'truncated');
    this.pos++;
    return b;
  }

  u16(field: string): number {
    this.need(field, 2);
    const v = (this.bytes[this.pos] as number) | ((this.bytes[this.pos + 1] as number) << 8);
    this.pos += 2;
    return v;
  }

  /** A strict boolean: exactly 0 or 1. */
  bool(field: string): boolean {
    const at = this.pos;
    const b = this.u8(field);
    if (b > 1) this.fail(field, `boolean byte is ${b}, not 0 or 1`, at);
    return b === 1;
  }

  /** A canonical (minimal) LEB128 varint holding a safe integer. */
  uint(field: string): number {
    const b = this.bytes;
    const start = this.pos;
    const first = b[start];
    if (first === undefined) this.fail(field, 'truncated');
    if (first < 0x80) {
      this.pos = start + 1;
      return first;
    }
    let value = first & 0x7f;
    let mul = 0x80;
    for (let i = 1; i < 8; i++) {
      const byte = b[start + i];
      if (byte === undefined) this.fail(field, 'truncated varint', start);
      value += (byte & 0x7f) * mul;
      if (byte < 0x80) {
        if (byte === 0) this.fail(field, 'non-minimal varint', start);
        if (value > Number.MAX_SAFE_INTEGER) this.fail(field, 'value exceeds 2^53 - 1', start);
        this.pos = start + i + 1;
        return value;
      }
      mul *= 0x80;
    }
    return this.fail(field, 'varint longer than 8 bytes (exceeds 2^53 - 1)', start);
  }

  /** `n` bytes as a view into the input (no copy). */
  view(field: string, n: number): Uint8Array {
    this.need(field, n);
    const v = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  /**
   * A varint-length byte string, copied out into a plain Uint8Array (so that it
   * does not pin the input; and not with slice(), which is a view on a Buffer).
   */
  blob(field: string): Uint8Array {
    const at = this.pos;
    const n = this.uint(`${field} length`);
    if (n > this.remaining()) this.fail(field, `length ${n} exceeds the ${this.remaining()} bytes left`, at);
    return new Uint8Array(this.view(field, n));
  }

  /** A u8-length UTF-8 string; null when the length is 0 and `nullable`, else it must be non-empty. */
  shortString(field: string, nullable: true): string | null;
  shortString(field: string, nullable: false): string;
  shortString(field: string, nullable: boolean): string | null {
    const at = this.pos;
    const n = this.u8(`${field} length`);
    if (n === 0) {
      if (nullable) return null;
      this.fail(field, 'empty', at);
    }
    const utf8 = this.view(field, n);
    // Fast path: node ids are usually ASCII, and ASCII is valid UTF-8 (TextDecoder costs more than the message).
    let ascii = true;
    for (let i = 0; i < n && ascii; i++) ascii = (utf8[i] as number) < 0x80;
    if (ascii) return String.fromCharCode(...utf8); // n <= 255: a safe spread
    try {
      return utf8Decoder.decode(utf8);
    } catch (e) {
      throw new CodecError(`${field}: invalid UTF-8`, at + 1, { cause: e });
    }
  }

  /** Throws unless every byte was consumed. */
  end(what: string): void {
    if (this.pos !== this.bytes.byteLength) this.fail(what, `${this.bytes.byteLength - this.pos} trailing bytes`);
  }
}
