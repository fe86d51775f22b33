// The routing rules alone: the topic matcher against a slow reference built
// from a regular expression (property test), headers matching by RabbitMQ's
// rules, the x-death merge, and the dead-letter cycle rule.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { addDeath, canonicalMatch, headersMatch, isDeadLetterCycle, topicMatches } from './routing.js';
import type { Death, Header } from './types.js';

// The reference: a key of words w1..wn is the string ".w1.w2...wn" (so the
// empty key, zero words, is "" and one empty word is "."); in the binding key
// '*' becomes \.[^.]* (one word), '#' becomes (?:\.[^.]*)* (any number of
// words), any other word "." and itself; anchored at both ends.
function referenceMatches(pattern: string, key: string): boolean {
  const words = (k: string): string[] => (k === '' ? [] : k.split('.'));
  const esc = (w: string): string => w.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');
  const re = words(pattern).map((w) => (w === '*' ? '\\.[^.]*' : w === '#' ? '(?:\\.[^.]*)*' : `\\.${esc(w)}`)).join('');
  return new RegExp(`^${re}$`).test(words(key).map((w) => `.${w}`).join(''));
}

describe('topic matching', () => {
  it('agrees with the regular-expression reference on random keys', () => {
    const word = fc.constantFrom('a', 'b', '', 'ab');
    const pword = fc.constantFrom('a', 'b', '', '*', '#', '#', '*');
    const key = fc.array(word, { maxLength: 6 }).map((ws) => ws.join('.'));
    const pattern = fc.array(pword, { maxLength: 6 }).map((ws) => ws.join('.'));
    fc.assert(fc.property(pattern, key, (p, k) => {
      assert.equal(topicMatches(p, k), referenceMatches(p, k), `${JSON.stringify(p)} vs ${JSON.stringify(k)}`);
    }), { numRuns: 5000 });
  });

  it('matches the documented examples', () => {
    const yes: [string, string][] = [
      ['#', ''], ['#', 'a.b.c'], ['*.orange.*', 'quick.orange.rabbit'], ['*.*.rabbit', 'lazy.orange.rabbit'], ['lazy.#', 'lazy'],
      ['lazy.#', 'lazy.pink.rabbit'], ['#.a', 'a'], ['a.#.b', 'a.b'], ['a.#.b', 'a.x.y.b'], ['#.#', ''], ['*', 'x'], ['', ''], ['a.', 'a.'], ['*.*', '.'],
    ];
    const no: [string, string][] = [
      ['*.orange.*', 'quick.orange.male.rabbit'], ['*', ''], ['*', 'a.b'], ['a', 'a.b'], ['a.#.b', 'a.b.c'], ['', 'a'], ['a.*', 'a'], ['#.b', 'b.a'],
    ];
    for (const [p, k] of yes) assert.ok(topicMatches(p, k), `${p} should match ${k}`);
    for (const [p, k] of no) assert.ok(!topicMatches(p, k), `${p} should not match ${k}`);
  });
});

describe('headers matching', () => {
  const s = (value: string) => ({ kind: 'string' as const, value });
  const msg: Header[] = [['format', s('pdf')], ['type', s('report')], ['n', { kind: 'bigint', value: 1n }], ['x-secret', s('1')], ['format', s('zip')]];
  it('all: every pair present and equal; void asks only presence; x- keys ignored; the first of repeated keys counts', () => {
    assert.ok(headersMatch({ match: 'all', pairs: [['format', s('pdf')], ['type', s('report')]] }, msg));
    assert.ok(!headersMatch({ match: 'all', pairs: [['format', s('zip')]] }, msg));
    assert.ok(!headersMatch({ match: 'all', pairs: [['format', s('pdf')], ['type', s('log')]] }, msg));
    assert.ok(headersMatch({ match: 'all', pairs: [['type', { kind: 'void' }], ['x-match', s('all')], ['x-anything', s('z')]] }, msg));
    assert.ok(!headersMatch({ match: 'all', pairs: [['x-secret', s('1')], ['missing', { kind: 'void' }]] }, msg));
    assert.ok(headersMatch({ match: 'all', pairs: [] }, []), 'all with no pairs matches everything');
    assert.ok(headersMatch(null, msg), 'no arguments: all with no pairs');
  });
  it('any: at least one pair; none matches nothing; kinds must agree', () => {
    assert.ok(headersMatch({ match: 'any', pairs: [['format', s('doc')], ['type', s('report')]] }, msg));
    assert.ok(!headersMatch({ match: 'any', pairs: [['format', s('doc')], ['secret', s('1')]] }, msg));
    assert.ok(!headersMatch({ match: 'any', pairs: [] }, msg));
    assert.ok(!headersMatch({ match: 'any', pairs: [['x-secret', s('1')]] }, msg), 'x- keys of the message are ignored');
    assert.ok(!headersMatch({ match: 'any', pairs: [['n', { kind: 'number', value: 1 }]] }, msg), "a number is not a bigint");
    assert.ok(headersMatch({ match: 'any', pairs: [['n', { kind: 'bigint', value: 1n }]] }, msg));
    const bytes: Header[] = [['b', { kind: 'other', value: new Uint8Array([1, 2]) }]];
    assert.ok(headersMatch({ match: 'all', pairs: [['b', { kind: 'other', value: new Uint8Array([1, 2]) }]] }, bytes));
    assert.ok(!headersMatch({ match: 'all', pairs: [['b', { kind: 'other', value: new Uint8Array([1, 3]) }]] }, bytes));
  });
  it('puts binding arguments in one canonical order', () => {
    const a = canonicalMatch({ match: 'all', pairs: [['b', s('1')], ['a', s('2')]] });
    const b = canonicalMatch({ match: 'all', pairs: [['a', s('2')], ['b', s('1')]] });
    assert.deepEqual(a, b);
    assert.equal(canonicalMatch(null), null);
  });
});

describe('dead-letter history', () => {
  const d = (queue: string, reason: Death['reason'], count = 1): Death => ({ queue, reason, count, exchange: '', routingKeys: [queue] });
  it('merges a repeated (queue, reason) by counting and moving it to the front, and never mutates its input', () => {
    const h0: Death[] = [];
    const h1 = addDeath(h0, { queue: 'a', reason: 'rejected', exchange: 'x', routingKeys: ['k'] });
    assert.deepEqual(h1, [{ queue: 'a', reason: 'rejected', count: 1, exchange: 'x', routingKeys: ['k'] }]);
    const h2 = addDeath(h1, { queue: 'b', reason: 'delivery_limit', exchange: '', routingKeys: ['b'] });
    const h3 = addDeath(h2, { queue: 'a', reason: 'rejected', exchange: 'other', routingKeys: ['other'] });
    assert.deepEqual(h3.map((x) => [x.queue, x.count, x.exchange]), [['a', 2, 'x'], ['b', 1, '']]);
    assert.equal(h1[0]?.count, 1, 'the older history is unchanged');
    const h4 = addDeath(h3, { queue: 'a', reason: 'delivery_limit', exchange: '', routingKeys: [] });
    assert.deepEqual(h4.map((x) => [x.queue, x.reason]), [['a', 'delivery_limit'], ['a', 'rejected'], ['b', 'delivery_limit']]);
  });
  it('cuts automatic cycles only', () => {
    assert.ok(!isDeadLetterCycle([d('a', 'delivery_limit')], 'b'), 'no history in the target');
    assert.ok(isDeadLetterCycle([d('a', 'delivery_limit')], 'a'), 'straight back to itself');
    assert.ok(isDeadLetterCycle([d('b', 'delivery_limit'), d('a', 'delivery_limit')], 'a'));
    assert.ok(!isDeadLetterCycle([d('b', 'rejected'), d('a', 'delivery_limit')], 'a'), 'a client rejected on the way');
    assert.ok(!isDeadLetterCycle([d('b', 'delivery_limit'), d('a', 'rejected')], 'a'), 'the rejection in the target counts');
    assert.ok(isDeadLetterCycle([d('b', 'delivery_limit'), d('a', 'expired'), d('c', 'rejected')], 'a'), 'a rejection past the target does not');
  });
});
