// The one error the codec raises. Bytes from the network are untrusted: any
// malformed input becomes a CodecError naming what was wrong and where, so
// that the transport can count it, log it and drop the connection.

/**
 * Thrown by decoders on malformed bytes (with the byte `offset` of the fault)
 * and by encoders on a value the format cannot carry (`offset` is null).
 */
export class CodecError extends Error {
  override readonly name = 'CodecError';
  /** What was wrong, naming the field: `term: value exceeds 2^53 - 1`. */
  readonly reason: string;
  /** Byte offset of the fault in the decoded input; null for encode errors. */
  readonly offset: number | null;

  constructor(reason: string, offset: number | null, options?: ErrorOptions) {
    super(offset === null ? `cannot encode: ${reason}` : `malformed input at byte ${offset}: ${reason}`, options);
    this.reason = reason;
    this.offset = offset;
  }
}
