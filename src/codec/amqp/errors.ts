// The one error the AMQP 0-9-1 codec raises. Every byte it decodes comes from
// the network, so malformed input never escapes as a RangeError or TypeError:
// it becomes an AmqpCodecError carrying the AMQP reply code the connection
// layer should close with (connection.close reply-code), so that the caller
// needs no mapping table of its own.

/** AMQP reply codes the codec can ask the connection layer to close with. */
export type AmqpCodecReplyCode = 501 | 502 | 503 | 505 | 540;

/**
 * Thrown by every decoder on malformed input, and by the encoders on a value
 * the wire format cannot carry (then the message starts with "cannot encode").
 *
 * - 501 FRAME_ERROR: bad frame structure (frame-end octet, unknown frame type,
 *   a frame larger than frame-max, a heartbeat with a payload).
 * - 502 SYNTAX_ERROR: a method, content header or field table that does not
 *   parse (truncated, bad field type, invalid UTF-8, trailing bytes, a value
 *   out of range), and every encode-side refusal.
 * - 505 UNEXPECTED_FRAME: a content header for a class that carries no content.
 * - 540 NOT_IMPLEMENTED: an unknown class or method id.
 * - 503 COMMAND_INVALID: reserved for the connection layer's use of this type.
 */
export class AmqpCodecError extends Error {
  override readonly name = 'AmqpCodecError';

  constructor(
    /** The reply code to close the connection with. */
    readonly replyCode: AmqpCodecReplyCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** Shorthand for the common case: a payload that does not parse. */
export function syntaxError(message: string): never {
  throw new AmqpCodecError(502, message);
}

/** Shorthand for an encode-side refusal (a value the wire cannot carry). */
export function cannotEncode(message: string): never {
  throw new AmqpCodecError(502, `cannot encode: ${message}`);
}
