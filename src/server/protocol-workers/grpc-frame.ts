// gRPC's framing over HTTP/2, as much of it as a worker's lean path needs
// (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md): each
// message is a 1-byte compressed flag, a 4-byte big-endian length and the
// protobuf bytes; the status goes in trailers, its message percent-encoded.

/** Why a request body is refused; `code` is the gRPC status to answer with. */
export class GrpcFrameError extends Error {
  override readonly name = 'GrpcFrameError';
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

/** gRPC status codes used here (grpc-js's Status enum, without loading grpc-js in a worker). */
export const GRPC_STATUS = {
  OK: 0, CANCELLED: 1, UNKNOWN: 2, INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5, RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9, UNIMPLEMENTED: 12, INTERNAL: 13, UNAVAILABLE: 14,
} as const;

const PREFIX = 5;

/**
 * Collects the body of a unary call and yields its one message. Chunks are
 * kept as they come and joined once; a body over `maxBytes` is refused as soon
 * as its prefix says so (RESOURCE_EXHAUSTED, as grpc-js), without buffering it.
 */
export class UnaryBody {
  private readonly chunks: Buffer[] = [];
  private bytes = 0;
  private declared = -1;

  constructor(private readonly maxBytes: number) {}

  /** Adds a chunk; throws GrpcFrameError when the message is too large or compressed. */
  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.bytes += chunk.byteLength;
    if (this.declared < 0 && this.bytes >= PREFIX) this.readPrefix();
    if (this.declared >= 0 && this.bytes > PREFIX + this.declared) {
      throw new GrpcFrameError(GRPC_STATUS.INTERNAL, 'grpc: a unary request carries more than one message');
    }
  }

  /** The message, once the client ended its stream. */
  finish(): Buffer {
    if (this.declared < 0) {
      if (this.bytes >= PREFIX) this.readPrefix();
      else throw new GrpcFrameError(GRPC_STATUS.INTERNAL, `grpc: request body of ${this.bytes} bytes is shorter than a message prefix`);
    }
    if (this.bytes !== PREFIX + this.declared) {
      throw new GrpcFrameError(GRPC_STATUS.INTERNAL, `grpc: message of ${this.declared} bytes announced, ${this.bytes - PREFIX} received`);
    }
    const all = this.chunks.length === 1 ? this.chunks[0] as Buffer : Buffer.concat(this.chunks, this.bytes);
    return all.subarray(PREFIX);
  }

  private readPrefix(): void {
    const head = this.chunks.length === 1 || (this.chunks[0] as Buffer).byteLength >= PREFIX
      ? this.chunks[0] as Buffer : Buffer.concat(this.chunks, this.bytes);
    if (head[0] !== 0) throw new GrpcFrameError(GRPC_STATUS.UNIMPLEMENTED, 'grpc: compressed messages are not accepted on this method without grpc-encoding');
    this.declared = head.readUInt32BE(1);
    if (this.declared > this.maxBytes) {
      throw new GrpcFrameError(GRPC_STATUS.RESOURCE_EXHAUSTED, `grpc: received message larger than max (${this.declared} vs. ${this.maxBytes})`);
    }
  }
}

/** One length-prefixed, uncompressed gRPC message. */
export function frameMessage(message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(PREFIX + message.byteLength);
  out[0] = 0;
  out.writeUInt32BE(message.byteLength, 1);
  out.set(message, PREFIX);
  return out;
}

/** Percent-encodes a grpc-message value: every byte outside printable ASCII, and '%', becomes %XX (of its UTF-8). */
export function encodeGrpcMessage(text: string): string {
  let plain = true;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x25) {
      plain = false;
      break;
    }
  }
  if (plain) return text;
  let out = '';
  for (const b of Buffer.from(text, 'utf8')) {
    out += b < 0x20 || b > 0x7e || b === 0x25 ? `%${b.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(b);
  }
  return out;
}
