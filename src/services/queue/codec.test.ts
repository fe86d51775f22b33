// The queue command codec: every command survives a round trip, the encoding
// is canonical (any bytes that decode re-encode to themselves), and malformed
// input gives a QueueCodecError, never another exception. Version 1's
// encodings (logged before the AMQP commands existed) still decode to what
// they meant, byte for byte.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { decodeQueueCommand, encodeQueueCommand, idProblem, QueueCodecError, queueNameProblem } from './codec.js';
import type { Header, HeaderMatch, HeaderValue, QueueCommand } from './types.js';

const rec: typeof fc.record = ((model: never) => fc.record(model, { noNullPrototype: true })) as typeof fc.record;

const name = fc.string({ minLength: 1, maxLength: 10, unit: 'grapheme' });
const tags = fc.array(fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), { maxLength: 10 });
/** Exchange names and routing keys: may be empty. */
const short = fc.string({ maxLength: 10, unit: 'grapheme' });

/** Any header value the codec accepts. */
export const arbitraryHeaderValue: fc.Arbitrary<HeaderValue> = fc.oneof(
  rec({ kind: fc.constant('string' as const), value: fc.string({ maxLength: 8, unit: 'grapheme' }) }),
  rec({ kind: fc.constant('number' as const), value: fc.double({ noNaN: true }) }),
  rec({ kind: fc.constant('bigint' as const), value: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }) }),
  rec({ kind: fc.constant('bool' as const), value: fc.boolean() }),
  rec({ kind: fc.constant('void' as const) }),
  rec({ kind: fc.constant('other' as const), value: fc.uint8Array({ maxLength: 8 }) }),
);
const headers: fc.Arbitrary<Header[]> = fc.array(fc.tuple(short, arbitraryHeaderValue), { maxLength: 4 });
const match: fc.Arbitrary<HeaderMatch> = rec({ match: fc.constantFrom('all' as const, 'any' as const), pairs: headers });

/** Any valid command. */
export const arbitraryCommand: fc.Arbitrary<QueueCommand> = fc.oneof(
  rec({ type: fc.constant('declare' as const), queue: name, deliveryLimit: fc.integer({ min: 0, max: 1_000_000 }), deadLetterQueue: fc.option(name, { nil: null }) }),
  rec({ type: fc.constant('enqueue' as const), queue: name, body: fc.uint8Array({ maxLength: 40 }) }),
  rec({
    type: fc.constant('attach' as const), consumerId: name, queue: name, node: name, prefetch: fc.integer({ min: 1, max: 10_000 }), noAck: fc.boolean(), exclusive: fc.boolean(),
  }),
  rec({
    type: fc.constant('declareQueue' as const), queue: name, durable: fc.boolean(), passive: fc.boolean(), deliveryLimit: fc.integer({ min: 0, max: 1_000_000 }),
    deadLetterExchange: fc.option(short, { nil: null }), deadLetterRoutingKey: fc.option(short, { nil: null }),
  }),
  rec({ type: fc.constant('deleteQueue' as const), queue: name, ifUnused: fc.boolean(), ifEmpty: fc.boolean() }),
  rec({ type: fc.constant('purge' as const), queue: name }),
  rec({
    type: fc.constant('exchangeDeclare' as const), exchange: short, kind: fc.constantFrom('direct' as const, 'fanout' as const, 'topic' as const, 'headers' as const),
    durable: fc.boolean(), autoDelete: fc.boolean(), internal: fc.boolean(), passive: fc.boolean(),
  }),
  rec({ type: fc.constant('exchangeDelete' as const), exchange: short, ifUnused: fc.boolean() }),
  rec({ type: fc.constantFrom('bind' as const, 'unbind' as const), queue: name, exchange: short, routingKey: short, arguments: fc.option(match, { nil: null }) }),
  rec({
    type: fc.constant('publish' as const), exchange: short, routingKey: short, mandatory: fc.boolean(),
    properties: fc.option(rec({ flags: fc.integer({ min: 0, max: 0xffff }), bytes: fc.uint8Array({ maxLength: 12 }) }), { nil: null }), headers, body: fc.uint8Array({ maxLength: 20 }),
  }),
  rec({ type: fc.constant('dequeue' as const), queue: name, consumerId: name, node: name, noAck: fc.boolean() }),
  rec({ type: fc.constantFrom('settle' as const, 'return' as const, 'discard' as const), consumerId: name, deliveryTags: tags }),
  rec({ type: fc.constant('cancel' as const), consumerId: name }),
  rec({ type: fc.constant('nodeDown' as const), node: name, attachedUpTo: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }) }),
);

describe('queue command codec', () => {
  it('round-trips every command', () => {
    fc.assert(fc.property(arbitraryCommand, (cmd) => {
      const bytes = encodeQueueCommand(cmd);
      assert.deepEqual(decodeQueueCommand(bytes), cmd);
    }), { numRuns: 2000 });
  });

  it('is canonical: bytes that decode re-encode to themselves; anything else is a QueueCodecError', () => {
    const mutated = arbitraryCommand.chain((cmd) => {
      const bytes = encodeQueueCommand(cmd);
      return fc.tuple(fc.constant(bytes), fc.array(fc.tuple(fc.nat(bytes.length), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }), fc.nat(bytes.length + 2));
    }).map(([bytes, flips, cut]) => {
      const b = new Uint8Array(bytes);
      for (const [at, v] of flips) if (at < b.length) b[at] = v;
      return b.subarray(0, Math.min(b.length, cut));
    });
    fc.assert(fc.property(fc.oneof(mutated, fc.uint8Array({ maxLength: 30 })), (bytes) => {
      let cmd: QueueCommand;
      try {
        cmd = decodeQueueCommand(bytes);
      } catch (e) {
        assert.ok(e instanceof QueueCodecError, `not a QueueCodecError: ${String(e)}`);
        return;
      }
      assert.deepEqual(encodeQueueCommand(cmd), new Uint8Array(bytes));
    }), { numRuns: 5000 });
  });

  it('decodes version 1 encodings (the log of an old data directory) as they were meant', () => {
    const hex = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'));
    // Written by the codec before the AMQP commands existed.
    const cases: [string, QueueCommand][] = [
      ['010103646c710000', { type: 'declare', queue: 'dlq', deliveryLimit: 0, deadLetterQueue: null }],
      ['01010171040103646c71', { type: 'declare', queue: 'q', deliveryLimit: 2, deadLetterQueue: 'dlq' }],
      ['01020171026d31', { type: 'enqueue', queue: 'q', body: new TextEncoder().encode('m1') }],
      ['01030263310171026e3102', { type: 'attach', consumerId: 'c1', queue: 'q', node: 'n1', prefetch: 1, noAck: false, exclusive: false }],
      ['01060263310102', { type: 'discard', consumerId: 'c1', deliveryTags: [1] }],
      ['01050263310104', { type: 'return', consumerId: 'c1', deliveryTags: [2] }],
    ];
    for (const [h, cmd] of cases) {
      assert.deepEqual(decodeQueueCommand(hex(h)), cmd);
      assert.equal(Buffer.from(encodeQueueCommand(cmd)).toString('hex'), h, 'an old command keeps its bytes');
    }
    // An attach with flags takes tag 9; tag 9 with no flag set would be a second encoding of tag 3's, so it is refused.
    const flagged = encodeQueueCommand({ type: 'attach', consumerId: 'c1', queue: 'q', node: 'n1', prefetch: 1, noAck: true, exclusive: false });
    assert.equal(Buffer.from(flagged).toString('hex'), '01090263310171026e310201');
    assert.throws(() => decodeQueueCommand(hex('01090263310171026e310200')), /attach flags are 0/);
  });

  it('encodes the AMQP commands as documented (fixed vectors)', () => {
    const hex = (cmd: QueueCommand): string => Buffer.from(encodeQueueCommand(cmd)).toString('hex');
    assert.equal(hex({ type: 'purge', queue: 'q' }), '01110171');
    assert.equal(hex({ type: 'deleteQueue', queue: 'q', ifUnused: true, ifEmpty: true }), '0110017103');
    assert.equal(hex({ type: 'exchangeDeclare', exchange: 'x', kind: 'topic', durable: true, autoDelete: false, internal: true, passive: false }), '010a01780205');
    assert.equal(hex({ type: 'exchangeDelete', exchange: '', ifUnused: false }), '010b0000');
    assert.equal(hex({ type: 'bind', queue: 'q', exchange: 'x', routingKey: '', arguments: { match: 'any', pairs: [['k', { kind: 'void' }]] } }), '010c0171017800010101016b04');
    assert.equal(hex({
      type: 'publish', exchange: '', routingKey: 'q', mandatory: true, properties: { flags: 0x8000, bytes: new Uint8Array([1]) }, headers: [['b', { kind: 'bool', value: true }]],
      body: new Uint8Array([7]),
    }), '010e00017103808004010101016203010107');
    assert.equal(hex({ type: 'declareQueue', queue: 'q', durable: true, passive: false, deliveryLimit: 1, deadLetterExchange: '', deadLetterRoutingKey: null }), '010f0171050200');
    assert.equal(hex({ type: 'dequeue', queue: 'q', consumerId: 'g', node: 'n', noAck: true }), '011201710167016e01');
  });

  it('refuses malformed bytes with reasons', () => {
    const ok = encodeQueueCommand({ type: 'cancel', consumerId: 'c1' });
    assert.deepEqual([...ok], [1, 7, 2, 0x63, 0x31]);
    const cases: [number[], RegExp][] = [
      [[], /truncated/],
      [[2, 7, 2, 0x63, 0x31], /format version 2/],
      [[1, 99], /unknown queue command tag 99/],
      [[1, 7, 2, 0x63, 0x31, 0], /trailing/],
      [[1, 7, 0], /consumer id is empty/],
      [[1, 7, 2, 0xc0, 0x80], /UTF-8/], // an overlong NUL
      [[1, 7, 0x82, 0x00, 0x63, 0x31], /overlong/],
      [[1, 1, 1, 0x71, 0, 2], /undefined flag bits/],
      [[1, 3, 1, 0x63, 1, 0x71, 1, 0x6e, 0], /prefetch/],
      [[1, 4, 1, 0x63, 1, 0], /delivery tag/],
      [[1, 1, 1, 0x71, 1, 0], /delivery limit/], // -1 in zigzag
      [[1, 17, 0], /queue name is empty/],
      [[1, 16, 1, 0x71, 4], /undefined flag bits/],
      [[1, 10, 1, 0x78, 4, 0], /unknown exchange kind/],
      [[1, 12, 1, 0x71, 0, 0, 1, 2, 0], /unknown x-match/],
      [[1, 14, 0, 0, 0, 1, 0, 6], /unknown header value kind/],
      [[1, 14, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0xf8, 0x7f, 0], /NaN/],
      [[1, 14, 0, 0, 2, 0x80, 0x80, 0x08, 0], /property flags/], // 65536
      [[1, 14, 0, 0, 0, 1, 0, 3, 2, 0], /undefined flag bits/], // bool 2
    ];
    for (const [bytes, why] of cases) {
      assert.throws(() => decodeQueueCommand(new Uint8Array(bytes)), (e: unknown) => e instanceof QueueCodecError && why.test(e.message), `${bytes.join(',')}`);
    }
  });

  it('refuses to encode what it could not decode', () => {
    const bad: unknown[] = [
      { type: 'declare', queue: '', deliveryLimit: 0, deadLetterQueue: null },
      { type: 'declare', queue: 'x'.repeat(256), deliveryLimit: 0, deadLetterQueue: null },
      { type: 'declare', queue: 'q', deliveryLimit: 1.5, deadLetterQueue: null },
      { type: 'attach', consumerId: 'c', queue: 'q', node: 'n', prefetch: 0 },
      { type: 'settle', consumerId: 'c', deliveryTags: [0] },
      { type: 'enqueue', queue: 'q', body: 'not bytes' },
      { type: 'enqueue', queue: '\ud800', body: new Uint8Array() },
      { type: 'nope' },
      { type: 'cancel' },
      { type: 'attach', consumerId: 'c', queue: 'q', node: 'n', prefetch: 1 }, // no noAck / exclusive
      { type: 'exchangeDeclare', exchange: 'x'.repeat(256), kind: 'direct', durable: true, autoDelete: false, internal: false, passive: false },
      { type: 'exchangeDeclare', exchange: 'x', kind: 'nope', durable: true, autoDelete: false, internal: false, passive: false },
      { type: 'bind', queue: 'q', exchange: 'x', routingKey: 'k', arguments: { match: 'some', pairs: [] } },
      { type: 'publish', exchange: '', routingKey: 'q', mandatory: false, properties: { flags: 0x10000, bytes: new Uint8Array() }, headers: [], body: new Uint8Array() },
      { type: 'publish', exchange: '', routingKey: 'q', mandatory: false, properties: null, headers: [['n', { kind: 'number', value: NaN }]], body: new Uint8Array() },
      { type: 'publish', exchange: '', routingKey: 'q', mandatory: false, properties: null, headers: [['n', { kind: 'bigint', value: 2n ** 63n }]], body: new Uint8Array() },
      { type: 'declareQueue', queue: 'q', durable: 'yes', passive: false, deliveryLimit: 0, deadLetterExchange: null, deadLetterRoutingKey: null },
    ];
    for (const cmd of bad) assert.throws(() => encodeQueueCommand(cmd as QueueCommand), QueueCodecError, JSON.stringify(cmd, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)));
  });

  it('checks names', () => {
    assert.equal(queueNameProblem('orders'), null);
    assert.match(queueNameProblem('') ?? '', /empty/);
    assert.match(queueNameProblem('é'.repeat(128)) ?? '', /256 bytes/);
    assert.match(idProblem('a\udc00b', 'consumer id') ?? '', /well-formed/);
    assert.equal(idProblem('😀'), null);
  });
});
