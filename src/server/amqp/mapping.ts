// Between AMQP's field tables and the queue machine's own terms: a queue's
// x-arguments, a headers binding's match, a message's headers for routing,
// and the x-death / x-delivery-count headers a delivery carries.
//
// Queue arguments follow RabbitMQ 3.10's quorum queues: x-queue-type must be
// "quorum" if given; x-delivery-limit, x-dead-letter-exchange and
// x-dead-letter-routing-key are supported; the arguments quorum queues
// support but we do not (TTLs, length limits, single active consumer, ...)
// are refused with 540 NOT_IMPLEMENTED rather than ignored; placement hints
// that change nothing a client can observe are accepted; other arguments are
// ignored, as RabbitMQ ignores arguments it does not know.

import { fieldString, fieldValueToPlain, type FieldTable, type FieldValue } from '../../codec/amqp/index.js';
import { QUEUE_LIMITS, type Death, type HeaderMatch, type HeaderValue } from '../../services/queue/types.js';
import { AmqpError, notImplemented, quoted, REPLY } from './errors.js';

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

/** Arguments a quorum queue declare may not carry here (540). */
const UNSUPPORTED_QUEUE_ARGUMENTS = new Set([
  'x-message-ttl', 'x-expires', 'x-max-length', 'x-max-length-bytes', 'x-overflow', 'x-single-active-consumer', 'x-max-priority',
  'x-queue-mode', 'x-max-in-memory-length', 'x-max-in-memory-bytes', 'x-stream-max-segment-size-bytes', 'x-max-age',
]);

/** What a queue.declare's arguments ask of the queue. */
export interface QueueArguments {
  /** The machine's delivery limit (deliveries, 0 = none): RabbitMQ's x-delivery-limit N is N + 1 here. */
  readonly deliveryLimit: number;
  readonly deadLetterExchange: string | null;
  readonly deadLetterRoutingKey: string | null;
}

const integerOf = (v: FieldValue): number | null => {
  switch (v.type) {
    case 'int8': case 'uint8': case 'int16': case 'uint16': case 'int32': case 'uint32':
      return v.value;
    case 'int64':
      return v.value >= BigInt(Number.MIN_SAFE_INTEGER) && v.value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v.value) : null;
    default:
      return null;
  }
};

const stringOf = (v: FieldValue): string | null => (v.type === 'string' ? fromUtf8.decode(v.value) : null);

/** A queue.declare's arguments, checked as RabbitMQ checks a quorum queue's (406 for a bad value, 540 for what we do not do). */
export function queueArguments(queue: string, args: FieldTable): QueueArguments {
  let deliveryLimit = 0;
  let dlx: string | null = null;
  let dlrk: string | null = null;
  const invalid = (key: string, why: string): AmqpError =>
    new AmqpError(REPLY.PRECONDITION_FAILED, `invalid arg '${key}' for queue ${quoted(queue)} in vhost '/': ${why}`, 50, 10);
  for (const [key, v] of args) {
    if (UNSUPPORTED_QUEUE_ARGUMENTS.has(key)) throw notImplemented(`queue argument '${key}' is not supported (docs/QUEUES.md)`);
    switch (key) {
      case 'x-queue-type': {
        const t = stringOf(v);
        if (t === null) throw invalid(key, 'not a string');
        if (t !== 'quorum') throw notImplemented(`only quorum queues are supported, not x-queue-type '${t}' (docs/QUEUES.md)`);
        break;
      }
      case 'x-delivery-limit': {
        const n = integerOf(v);
        if (n === null) throw invalid(key, `{unacceptable_type,${v.type}}`);
        if (n < 0) throw invalid(key, `{value_negative,${n}}`);
        if (n >= QUEUE_LIMITS.deliveryLimitMax) throw invalid(key, `{value_too_large,${n}} (at most ${QUEUE_LIMITS.deliveryLimitMax - 1})`);
        // RabbitMQ's limit counts returns; ours counts deliveries: N returns allowed = N + 1 deliveries (docs/QUEUES.md).
        deliveryLimit = n + 1;
        break;
      }
      case 'x-dead-letter-exchange':
        dlx = stringOf(v);
        if (dlx === null) throw invalid(key, `{unacceptable_type,${v.type}}`);
        break;
      case 'x-dead-letter-routing-key':
        dlrk = stringOf(v);
        if (dlrk === null) throw invalid(key, `{unacceptable_type,${v.type}}`);
        break;
      default:
        break; // placement hints (x-quorum-initial-group-size, x-queue-leader-locator), x-dead-letter-strategy, unknown: nothing to do
    }
  }
  if (dlrk !== null && dlx === null) throw invalid('x-dead-letter-routing-key', 'x-dead-letter-exchange is not set');
  return { deliveryLimit, deadLetterExchange: dlx, deadLetterRoutingKey: dlrk };
}

/** A field value as the queue machine compares header values. */
export function headerValueOf(v: FieldValue): HeaderValue {
  switch (v.type) {
    case 'string': return { kind: 'string', value: fromUtf8.decode(v.value) };
    case 'bool': return { kind: 'bool', value: v.value };
    // Integers of every width compare by value (as bigints); floats as numbers.
    case 'int8': case 'uint8': case 'int16': case 'uint16': case 'int32': case 'uint32':
      return { kind: 'bigint', value: BigInt(v.value) };
    case 'float': case 'double':
      return { kind: 'number', value: v.value };
    case 'int64': case 'timestamp':
      return { kind: 'bigint', value: v.value };
    case 'void': return { kind: 'void' };
    default:
      return { kind: 'other', value: utf8.encode(JSON.stringify(fieldValueToPlain(v), (_k, x: unknown) => (typeof x === 'bigint' ? `${x}n` : x))) };
  }
}

/** A message's headers as the queue machine routes on them (the x- headers play no part in headers-exchange matching). */
export function headersForRouting(h: FieldTable): (readonly [string, HeaderValue])[] {
  const out: (readonly [string, HeaderValue])[] = [];
  for (const [k, v] of h) if (!k.startsWith('x-')) out.push([k, headerValueOf(v)]);
  return out;
}

/** A binding's arguments as a headers exchange matches them (null for the other kinds, which ignore them). */
export function headerMatchOf(isHeaders: boolean, args: FieldTable, method: string): HeaderMatch | null {
  if (!isHeaders) return null;
  let match: 'all' | 'any' = 'all';
  const pairs: (readonly [string, HeaderValue])[] = [];
  for (const [k, v] of args) {
    if (k === 'x-match') {
      const m = stringOf(v);
      if (m === 'any' || m === 'all') match = m;
      else if (m === 'any-with-x' || m === 'all-with-x') throw notImplemented(`x-match '${m}' is not supported`);
      else throw new AmqpError(REPLY.PRECONDITION_FAILED, `invalid x-match field value ${JSON.stringify(fieldValueToPlain(v))}; expected all or any`, 50, method === 'queue.bind' ? 20 : 50);
    } else if (!k.startsWith('x-')) {
      pairs.push([k, headerValueOf(v)]);
    }
  }
  return { match, pairs };
}

/**
 * The headers a delivery gains: x-delivery-count (deliveries before this one,
 * as RabbitMQ's quorum queues count them) once it has come back at least
 * once, and RabbitMQ's x-death (newest first), x-first-death-queue,
 * -reason and -exchange once it has been dead-lettered. x-death entries carry
 * no time: the replicated state machine reads no clock.
 */
export function deathHeaders(deliveryCount: number, deaths: readonly Death[]): [string, FieldValue][] {
  const out: [string, FieldValue][] = [];
  if (deliveryCount > 1) out.push(['x-delivery-count', { type: 'int64', value: BigInt(deliveryCount - 1) }]);
  if (deaths.length > 0) {
    out.push(['x-death', {
      type: 'array',
      value: deaths.map((d): FieldValue => ({
        type: 'table',
        value: [
          ['count', { type: 'int64', value: BigInt(d.count) }],
          ['reason', fieldString(d.reason)],
          ['queue', fieldString(d.queue)],
          ['exchange', fieldString(d.exchange)],
          ['routing-keys', { type: 'array', value: d.routingKeys.map(fieldString) }],
        ],
      })),
    }]);
    const first = deaths[deaths.length - 1]!;
    out.push(['x-first-death-exchange', fieldString(first.exchange)], ['x-first-death-queue', fieldString(first.queue)], ['x-first-death-reason', fieldString(first.reason)]);
  }
  return out;
}
