// Binary encoding of KvCommands for the Raft log (skeleton: implementation follows).
import type { KvCommand } from './types.js';

/** Thrown by decodeCommand on malformed bytes. */
export class KvCodecError extends Error {
  override readonly name = 'KvCodecError';
  /** Byte offset where decoding failed. */
  readonly offset: number;
  constructor(message: string, offset: number, options?: { cause?: unknown }) {
    super(message, options);
    this.offset = offset;
  }
}

/** Encodes a command as bytes for the log. */
export function encodeCommand(_cmd: KvCommand): Uint8Array {
  throw new Error('not implemented');
}

/** Throws KvCodecError on anything malformed; never returns a half-valid command. */
export function decodeCommand(_bytes: Uint8Array): KvCommand {
  throw new Error('not implemented');
}
