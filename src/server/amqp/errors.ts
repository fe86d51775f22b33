// AMQP 0-9-1 reply codes, and the error a method handler throws to close its
// channel or its connection, as RabbitMQ does.
//
// Which level an error is raised at follows the specification's soft/hard
// classification, as RabbitMQ applies it (rabbit_framing's amqp_exception
// and rabbit_channel:handle_exception): the soft codes (311-313, 403-406)
// close only the channel; every other code closes the connection. So, as in
// RabbitMQ, a NOT_IMPLEMENTED (540) or a COMMAND_INVALID (503) ends the whole
// connection, while a NOT_FOUND (404) ends one channel.
//
// Texts are RabbitMQ's shape: the code's name, " - ", then what went wrong
// ("NOT_FOUND - no queue 'orders' in vhost '/'"); clients show them verbatim.

/** The reply codes of AMQP 0-9-1 (amqp0-9-1.xml, "constants"). */
export const REPLY = {
  SUCCESS: 200,
  CONTENT_TOO_LARGE: 311,
  NO_ROUTE: 312,
  NO_CONSUMERS: 313,
  CONNECTION_FORCED: 320,
  INVALID_PATH: 402,
  ACCESS_REFUSED: 403,
  NOT_FOUND: 404,
  RESOURCE_LOCKED: 405,
  PRECONDITION_FAILED: 406,
  FRAME_ERROR: 501,
  SYNTAX_ERROR: 502,
  COMMAND_INVALID: 503,
  CHANNEL_ERROR: 504,
  UNEXPECTED_FRAME: 505,
  RESOURCE_ERROR: 506,
  NOT_ALLOWED: 530,
  NOT_IMPLEMENTED: 540,
  INTERNAL_ERROR: 541,
} as const;

export type ReplyCode = (typeof REPLY)[keyof typeof REPLY];

const NAMES: ReadonlyMap<number, string> = new Map(Object.entries(REPLY).map(([k, v]) => [v, k]));

/** The constant's name of a reply code ("NOT_FOUND"), or the number for an unknown one. */
export function replyName(code: number): string {
  return NAMES.get(code) ?? String(code);
}

/** Whether a code closes the connection (hard) rather than only the channel (soft). */
export function isHardError(code: number): boolean {
  return !(code === REPLY.CONTENT_TOO_LARGE || code === REPLY.NO_ROUTE || code === REPLY.NO_CONSUMERS
    || code === REPLY.ACCESS_REFUSED || code === REPLY.NOT_FOUND || code === REPLY.RESOURCE_LOCKED || code === REPLY.PRECONDITION_FAILED);
}

/**
 * A refusal of what the client asked: the channel (soft code) or the
 * connection (hard code) is closed with `code` and RabbitMQ-shaped text.
 * `classId`/`methodId` name the method that failed (0 when none did).
 */
export class AmqpError extends Error {
  override readonly name = 'AmqpError';
  readonly replyText: string;

  constructor(readonly code: ReplyCode, detail: string, readonly classId = 0, readonly methodId = 0) {
    const text = `${replyName(code)} - ${detail}`;
    super(text);
    // A reply text is a short string: at most 255 bytes on the wire.
    this.replyText = truncateUtf8(text, 255);
  }

  get hard(): boolean {
    return isHardError(this.code);
  }
}

/** `s` cut to at most `max` bytes of UTF-8, on a character boundary. */
export function truncateUtf8(s: string, max: number): string {
  if (Buffer.byteLength(s, 'utf8') <= max) return s;
  let out = s.slice(0, max);
  while (Buffer.byteLength(out, 'utf8') > max) out = out.slice(0, -1);
  return out;
}

/** "'name'" as RabbitMQ quotes resource names in its texts. */
export const quoted = (name: string): string => `'${name}'`;

export const notImplemented = (what: string): AmqpError => new AmqpError(REPLY.NOT_IMPLEMENTED, what);
