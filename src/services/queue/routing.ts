// How an AMQP exchange picks queues, as RabbitMQ's exchange types do: the
// topic matcher (rabbit_exchange_type_topic), headers matching
// (rabbit_exchange_type_headers), and the dead-letter cycle rule
// (rabbit_dead_letter:detect_cycles). Pure functions of their arguments, so
// the state machine's routing is deterministic and these can be tested alone.
//
// Topic keys are lists of words separated by '.'; the empty key is zero words
// (RabbitMQ's split_topic_key), so "a." is ["a", ""] and "" is []. In a
// binding key, '*' matches exactly one word and '#' zero or more.

import type { Death, Header, HeaderMatch, HeaderValue } from './types.js';

/** A routing or binding key's words ('' → no words). */
export function topicWords(key: string): string[] {
  return key === '' ? [] : key.split('.');
}

/**
 * Whether the binding key's words `pattern` match the routing key's words
 * `words`. The wildcard matcher with one backtrack point (the last '#'
 * seen): linear in the common case, O(pattern × words) at worst, no
 * recursion, no allocation.
 */
export function topicMatchWords(pattern: readonly string[], words: readonly string[]): boolean {
  let p = 0;
  let w = 0;
  let hash = -1; // pattern index of the last '#' seen
  let hashW = 0; // the word index that '#' is currently taken to stop before
  while (w < words.length) {
    const pw = pattern[p];
    if (pw === '#') {
      hash = p++;
      hashW = w;
    } else if (pw !== undefined && (pw === '*' || pw === words[w])) {
      p++;
      w++;
    } else if (hash >= 0) {
      // Let the last '#' swallow one more word and retry from after it.
      p = hash + 1;
      w = ++hashW;
    } else {
      return false;
    }
  }
  while (pattern[p] === '#') p++;
  return p === pattern.length;
}

/** Whether binding key `pattern` matches routing key `key` (RabbitMQ's topic exchange). */
export function topicMatches(pattern: string, key: string): boolean {
  return topicMatchWords(topicWords(pattern), topicWords(key));
}

/** Whether two header values are equal (see HeaderValue: same kind, then the value). */
export function headerValueEquals(a: HeaderValue, b: HeaderValue): boolean {
  switch (a.kind) {
    case 'string': return b.kind === 'string' && a.value === b.value;
    case 'number': return b.kind === 'number' && a.value === b.value;
    case 'bigint': return b.kind === 'bigint' && a.value === b.value;
    case 'bool': return b.kind === 'bool' && a.value === b.value;
    case 'void': return b.kind === 'void';
    case 'other': return b.kind === 'other' && a.value.byteLength === b.value.byteLength && a.value.every((x, i) => x === b.value[i]);
    default: {
      const never: never = a;
      throw new Error(`unknown header value ${String(never)}`);
    }
  }
}

const isX = (key: string): boolean => key.startsWith('x-');

/**
 * RabbitMQ's headers matching of a message's `headers` against a binding's
 * arguments (null: no arguments, which is x-match all with no pairs: every
 * message). Keys starting with 'x-' are ignored on both sides; of repeated
 * message header keys the first counts. A 'void' binding value asks only for
 * the key's presence.
 */
export function headersMatch(args: HeaderMatch | null, headers: readonly Header[]): boolean {
  if (args === null) return true;
  const byKey = new Map<string, HeaderValue>();
  for (const [k, v] of headers) if (!isX(k) && !byKey.has(k)) byKey.set(k, v);
  let any = false;
  for (const [k, v] of args.pairs) {
    if (isX(k)) continue;
    const got = byKey.get(k);
    const ok = got !== undefined && (v.kind === 'void' || headerValueEquals(v, got));
    if (args.match === 'all' && !ok) return false;
    if (ok) any = true;
  }
  return args.match === 'all' ? true : any;
}

/** A total order on header values (kind, then value), for the canonical order of binding arguments. */
function compareValues(a: HeaderValue, b: HeaderValue): number {
  const order = ['string', 'number', 'bigint', 'bool', 'void', 'other'];
  const d = order.indexOf(a.kind) - order.indexOf(b.kind);
  if (d !== 0) return d;
  const cmp = <T>(x: T, y: T): number => (x < y ? -1 : x > y ? 1 : 0);
  if (a.kind === 'string' && b.kind === 'string') return cmp(a.value, b.value);
  if (a.kind === 'number' && b.kind === 'number') return cmp(a.value, b.value) || cmp(Object.is(a.value, -0) ? 0 : 1, Object.is(b.value, -0) ? 0 : 1);
  if (a.kind === 'bigint' && b.kind === 'bigint') return cmp(a.value, b.value);
  if (a.kind === 'bool' && b.kind === 'bool') return cmp(Number(a.value), Number(b.value));
  if (a.kind === 'other' && b.kind === 'other') {
    const n = Math.min(a.value.byteLength, b.value.byteLength);
    for (let i = 0; i < n; i++) {
      const x = cmp(a.value[i] as number, b.value[i] as number);
      if (x !== 0) return x;
    }
    return a.value.byteLength - b.value.byteLength;
  }
  return 0;
}

/** Binding arguments in their canonical form: pairs sorted by key, then value (so the same table in another order is the same binding). */
export function canonicalMatch(args: HeaderMatch | null): HeaderMatch | null {
  if (args === null) return null;
  const pairs = [...args.pairs].sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : compareValues(x[1], y[1])));
  return { match: args.match, pairs };
}

/**
 * The dead-letter history after one more death (RabbitMQ's x-death update):
 * an entry with the same queue and reason gets count + 1 (keeping its
 * exchange and routing keys) and moves to the front; otherwise a new entry
 * (count 1) goes in front. `deaths` is not modified.
 */
export function addDeath(deaths: readonly Death[], death: Omit<Death, 'count'>): Death[] {
  const at = deaths.findIndex((d) => d.queue === death.queue && d.reason === death.reason);
  if (at < 0) return [{ ...death, count: 1 }, ...deaths];
  const old = deaths[at] as Death;
  return [{ ...old, count: old.count + 1 }, ...deaths.slice(0, at), ...deaths.slice(at + 1)];
}

/**
 * RabbitMQ's dead-letter cycle rule, for a message whose history (already
 * including its newest death) is `deaths`, about to be dead-lettered into
 * `target`: a cycle when the history has an entry for `target` and no entry
 * up to and including the first such one has reason 'rejected' (a cycle a
 * client takes part in by rejecting is allowed to go round; an automatic one
 * is cut, and the message dropped).
 */
export function isDeadLetterCycle(deaths: readonly Death[], target: string): boolean {
  const at = deaths.findIndex((d) => d.queue === target);
  if (at < 0) return false;
  for (let i = 0; i <= at; i++) if ((deaths[i] as Death).reason === 'rejected') return false;
  return true;
}
