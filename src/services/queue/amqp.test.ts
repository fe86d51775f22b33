// QueueStateMachine's AMQP 0-9-1 model by example: exchanges and bindings,
// routing of publishes, queue declare / delete / purge with RabbitMQ's
// arguments and texts, noAck and exclusive consumers, basic.get through
// getter consumers, dead-lettering through a dead-letter exchange with x-death
// history and cycle cutting, and snapshots (version 2 round trip, version 1
// still restored).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeQueueCommand } from './codec.js';
import { QueueSnapshotError, QueueStateMachine } from './state-machine.js';
import type { BindCommand, DeclareQueueCommand, ExchangeDeclareCommand, Header, PublishCommand, QueueCommand, QueueEvent, QueueResult } from './types.js';

const enc = new TextEncoder();
const text = (b: Uint8Array): string => new TextDecoder().decode(b);

class Harness {
  readonly sm = new QueueStateMachine();
  index = 0;
  events: QueueEvent[] = [];
  constructor() {
    this.sm.on((e) => this.events.push(e));
  }
  do(cmd: QueueCommand): QueueResult {
    return this.sm.apply(encodeQueueCommand(cmd), ++this.index);
  }
  ok<T extends QueueResult['type']>(cmd: QueueCommand, type: T): Extract<QueueResult, { type: T }> {
    const r = this.do(cmd);
    assert.equal(r.type, type, JSON.stringify(r));
    return r as Extract<QueueResult, { type: T }>;
  }
  /** Asserts the command fails with `error` and exactly `message` (when given); returns the message. */
  fails(cmd: QueueCommand, error: string, message?: string): string {
    const r = this.do(cmd);
    assert.equal(r.type, 'error', JSON.stringify(r));
    const e = r as Extract<QueueResult, { type: 'error' }>;
    assert.equal(e.error, error, e.message);
    if (message !== undefined) assert.equal(e.message, message);
    return e.message;
  }
  queue(queue: string, more: Partial<DeclareQueueCommand> = {}): void {
    this.ok({ type: 'declareQueue', queue, durable: true, passive: false, deliveryLimit: 0, deadLetterExchange: null, deadLetterRoutingKey: null, ...more }, 'declared');
  }
  exchange(exchange: string, kind: ExchangeDeclareCommand['kind'], more: Partial<ExchangeDeclareCommand> = {}): void {
    this.ok({ type: 'exchangeDeclare', exchange, kind, durable: true, autoDelete: false, internal: false, passive: false, ...more }, 'exchangeDeclared');
  }
  bind(queue: string, exchange: string, routingKey: string, args: BindCommand['arguments'] = null): void {
    this.ok({ type: 'bind', queue, exchange, routingKey, arguments: args }, 'bound');
  }
  publish(exchange: string, routingKey: string, body: string, more: Partial<PublishCommand> = {}): number {
    const cmd: PublishCommand = { type: 'publish', exchange, routingKey, mandatory: false, properties: null, headers: [], body: enc.encode(body), ...more };
    return this.ok(cmd, 'published').routed;
  }
  attach(consumerId: string, queue: string, prefetch = 10, more: { noAck?: boolean; exclusive?: boolean; node?: string } = {}): QueueResult {
    return this.do({ type: 'attach', consumerId, queue, node: more.node ?? 'n1', prefetch, noAck: more.noAck ?? false, exclusive: more.exclusive ?? false });
  }
  /** Ready message bodies of a queue, in order, by draining a noAck get (changes the state). */
  drain(queue: string): string[] {
    const out: string[] = [];
    for (;;) {
      const r = this.ok({ type: 'dequeue', queue, consumerId: 'drainer', node: 'n1', noAck: true }, 'dequeued');
      if (r.message === null) return out;
      out.push(text(r.message.body));
    }
  }
  deliveries(): Extract<QueueEvent, { type: 'delivered' }>[] {
    const out = this.events.filter((e): e is Extract<QueueEvent, { type: 'delivered' }> => e.type === 'delivered');
    this.events = [];
    return out;
  }
}

describe('exchanges', () => {
  it('declares, redeclares with equal arguments, refuses other arguments with RabbitMQ\'s text, and looks passively', () => {
    const h = new Harness();
    assert.deepEqual(h.do({ type: 'exchangeDeclare', exchange: 'x', kind: 'direct', durable: true, autoDelete: false, internal: false, passive: false }),
      { type: 'exchangeDeclared', exchange: 'x', created: true });
    assert.deepEqual(h.do({ type: 'exchangeDeclare', exchange: 'x', kind: 'direct', durable: true, autoDelete: false, internal: false, passive: false }),
      { type: 'exchangeDeclared', exchange: 'x', created: false });
    h.fails({ type: 'exchangeDeclare', exchange: 'x', kind: 'fanout', durable: true, autoDelete: false, internal: false, passive: false }, 'exchangeMismatch',
      "inequivalent arg 'type' for exchange 'x' in vhost '/': received 'fanout' but current is 'direct'");
    h.fails({ type: 'exchangeDeclare', exchange: 'x', kind: 'direct', durable: false, autoDelete: false, internal: false, passive: false }, 'exchangeMismatch',
      "inequivalent arg 'durable' for exchange 'x' in vhost '/': received 'false' but current is 'true'");
    h.fails({ type: 'exchangeDeclare', exchange: 'x', kind: 'direct', durable: true, autoDelete: true, internal: false, passive: false }, 'exchangeMismatch',
      "inequivalent arg 'auto_delete' for exchange 'x' in vhost '/': received 'true' but current is 'false'");
    h.fails({ type: 'exchangeDeclare', exchange: 'x', kind: 'direct', durable: true, autoDelete: false, internal: true, passive: false }, 'exchangeMismatch',
      "inequivalent arg 'internal' for exchange 'x' in vhost '/': received 'true' but current is 'false'");
    // Passive: no equivalence check, just existence.
    assert.deepEqual(h.do({ type: 'exchangeDeclare', exchange: 'x', kind: 'topic', durable: false, autoDelete: true, internal: true, passive: true }),
      { type: 'exchangeDeclared', exchange: 'x', created: false });
    h.fails({ type: 'exchangeDeclare', exchange: 'y', kind: 'direct', durable: true, autoDelete: false, internal: false, passive: true }, 'exchangeNotFound',
      "no exchange 'y' in vhost '/'");
    assert.equal(h.sm.exchange('y'), undefined);
  });

  it('guards the default exchange and the amq.* names', () => {
    const h = new Harness();
    h.queue('q');
    const decl = (exchange: string, kind: ExchangeDeclareCommand['kind'], passive = false): ExchangeDeclareCommand =>
      ({ type: 'exchangeDeclare', exchange, kind, durable: true, autoDelete: false, internal: false, passive });
    h.fails(decl('', 'direct'), 'accessRefused', 'operation not permitted on the default exchange');
    h.fails(decl('', 'direct', true), 'accessRefused', 'operation not permitted on the default exchange');
    h.fails({ type: 'exchangeDelete', exchange: '', ifUnused: false }, 'accessRefused', 'operation not permitted on the default exchange');
    h.fails({ type: 'bind', queue: 'q', exchange: '', routingKey: 'q', arguments: null }, 'accessRefused', 'operation not permitted on the default exchange');
    h.fails({ type: 'unbind', queue: 'q', exchange: '', routingKey: 'q', arguments: null }, 'accessRefused', 'operation not permitted on the default exchange');
    h.fails(decl('amq.foo', 'direct'), 'accessRefused', "exchange name 'amq.foo' contains reserved prefix 'amq.*'");
    for (const [name, kind] of [['amq.direct', 'direct'], ['amq.fanout', 'fanout'], ['amq.topic', 'topic'], ['amq.headers', 'headers'], ['amq.match', 'headers']] as const) {
      assert.deepEqual(h.do(decl(name, kind)), { type: 'exchangeDeclared', exchange: name, created: false });
      h.fails({ type: 'exchangeDelete', exchange: name, ifUnused: false }, 'accessRefused', `deletion of system exchange '${name}' in vhost '/' not allowed`);
    }
    h.fails(decl('amq.direct', 'fanout'), 'exchangeMismatch', "inequivalent arg 'type' for exchange 'amq.direct' in vhost '/': received 'fanout' but current is 'direct'");
    assert.deepEqual(h.sm.exchangeNames(), ['amq.direct', 'amq.fanout', 'amq.headers', 'amq.match', 'amq.topic']);
  });

  it('deletes: a missing one is fine, if-unused refuses while bound, bindings go with it', () => {
    const h = new Harness();
    h.queue('q');
    assert.deepEqual(h.do({ type: 'exchangeDelete', exchange: 'nope', ifUnused: true }), { type: 'exchangeDeleted', exchange: 'nope', existed: false });
    h.exchange('x', 'fanout');
    h.bind('q', 'x', '');
    h.fails({ type: 'exchangeDelete', exchange: 'x', ifUnused: true }, 'inUse', "exchange 'x' in vhost '/' in use");
    assert.deepEqual(h.do({ type: 'exchangeDelete', exchange: 'x', ifUnused: false }), { type: 'exchangeDeleted', exchange: 'x', existed: true });
    assert.deepEqual(h.sm.bindings(), []);
    h.fails({ type: 'publish', exchange: 'x', routingKey: '', mandatory: false, properties: null, headers: [], body: new Uint8Array() }, 'exchangeNotFound', "no exchange 'x' in vhost '/'");
    h.exchange('x', 'direct'); // declarable again, with another kind
    assert.equal(h.sm.exchange('x')?.kind, 'direct');
  });

  it('binds idempotently, unbinds a missing binding quietly, and refuses missing ends with 404 texts', () => {
    const h = new Harness();
    h.queue('q');
    h.exchange('x', 'headers');
    h.fails({ type: 'bind', queue: 'q', exchange: 'nope', routingKey: '', arguments: null }, 'exchangeNotFound', "no exchange 'nope' in vhost '/'");
    h.fails({ type: 'bind', queue: 'nope', exchange: 'x', routingKey: '', arguments: null }, 'queueNotFound', "no queue 'nope' in vhost '/'");
    h.fails({ type: 'unbind', queue: 'nope', exchange: 'x', routingKey: '', arguments: null }, 'queueNotFound');
    h.fails({ type: 'unbind', queue: 'q', exchange: 'nope', routingKey: '', arguments: null }, 'exchangeNotFound');
    const s = (value: string) => ({ kind: 'string' as const, value });
    h.bind('q', 'x', 'k', { match: 'all', pairs: [['a', s('1')], ['b', s('2')]] });
    h.bind('q', 'x', 'k', { match: 'all', pairs: [['b', s('2')], ['a', s('1')]] }); // the same table in another order: the same binding
    h.bind('q', 'x', 'k', { match: 'any', pairs: [['a', s('1')], ['b', s('2')]] }); // another binding
    assert.equal(h.sm.bindings().length, 2);
    assert.deepEqual(h.do({ type: 'unbind', queue: 'q', exchange: 'x', routingKey: 'other', arguments: null }), { type: 'unbound' });
    h.ok({ type: 'unbind', queue: 'q', exchange: 'x', routingKey: 'k', arguments: { match: 'all', pairs: [['b', s('2')], ['a', s('1')]] } }, 'unbound');
    assert.deepEqual(h.sm.bindings().map((b) => b.arguments?.match), ['any']);
  });

  it('deletes an auto-delete exchange with its last binding, not at its creation', () => {
    const h = new Harness();
    h.queue('q1');
    h.queue('q2');
    h.exchange('ad', 'fanout', { autoDelete: true });
    assert.notEqual(h.sm.exchange('ad'), undefined, 'created with no bindings and kept');
    h.bind('q1', 'ad', '');
    h.bind('q2', 'ad', '');
    h.ok({ type: 'unbind', queue: 'q1', exchange: 'ad', routingKey: '', arguments: null }, 'unbound');
    assert.notEqual(h.sm.exchange('ad'), undefined);
    h.ok({ type: 'deleteQueue', queue: 'q2', ifUnused: false, ifEmpty: false }, 'queueDeleted');
    assert.equal(h.sm.exchange('ad'), undefined, 'its last binding went with the queue');
  });
});

describe('publish routing', () => {
  it('routes through direct, fanout, topic and headers exchanges, once per queue, and through the default exchange', () => {
    const h = new Harness();
    for (const q of ['a', 'b', 'c']) h.queue(q);
    h.bind('a', 'amq.direct', 'k');
    h.bind('b', 'amq.direct', 'k');
    h.bind('b', 'amq.direct', 'other');
    assert.equal(h.publish('amq.direct', 'k', 'd1'), 2);
    assert.equal(h.publish('amq.direct', 'nothing', 'd2'), 0);
    h.bind('a', 'amq.fanout', 'ignored');
    h.bind('c', 'amq.fanout', '');
    assert.equal(h.publish('amq.fanout', 'whatever', 'f1'), 2);
    h.bind('a', 'amq.topic', 'stock.#');
    h.bind('a', 'amq.topic', '*.nyse'); // a second match to the same queue: one copy
    h.bind('b', 'amq.topic', '*.nasdaq');
    assert.equal(h.publish('amq.topic', 'stock.nyse', 't1'), 1);
    assert.equal(h.publish('amq.topic', 'bond.nasdaq', 't2'), 1);
    const s = (value: string) => ({ kind: 'string' as const, value });
    h.bind('c', 'amq.headers', '', { match: 'any', pairs: [['format', s('pdf')], ['type', s('report')]] });
    h.bind('b', 'amq.match', '', { match: 'all', pairs: [['format', s('pdf')], ['type', s('report')]] });
    const headers: Header[] = [['format', s('pdf')]];
    assert.equal(h.publish('amq.headers', '', 'h1', { headers }), 1);
    assert.equal(h.publish('amq.match', '', 'h2', { headers }), 0);
    assert.equal(h.publish('amq.match', '', 'h3', { headers: [['type', s('report')], ['format', s('pdf')]] }), 1);
    assert.equal(h.publish('', 'c', 'default'), 1);
    assert.equal(h.publish('', 'missing', 'lost'), 0);
    assert.deepEqual(h.drain('a'), ['d1', 'f1', 't1']);
    assert.deepEqual(h.drain('b'), ['d1', 't2', 'h3']);
    assert.deepEqual(h.drain('c'), ['f1', 'h1', 'default']);
  });

  it('refuses client publishes to internal exchanges, and carries the metadata to deliveries', () => {
    const h = new Harness();
    h.queue('q');
    h.exchange('in', 'fanout', { internal: true });
    h.bind('q', 'in', '');
    h.fails({ type: 'publish', exchange: 'in', routingKey: '', mandatory: false, properties: null, headers: [], body: new Uint8Array() }, 'accessRefused',
      "cannot publish to internal exchange 'in' in vhost '/'");
    h.bind('q', 'amq.direct', 'rk');
    const properties = { flags: 0x9000, bytes: new Uint8Array([1, 2, 3]) };
    h.publish('amq.direct', 'rk', 'hello', { properties, mandatory: true });
    h.ok({ type: 'enqueue', queue: 'q', body: enc.encode('grpc') }, 'enqueued');
    h.attach('c', 'q');
    const [d1, d2] = h.deliveries();
    assert.deepEqual([d1?.exchange, d1?.routingKey, d1?.properties, d1?.deaths, d1?.redelivered], ['amq.direct', 'rk', properties, [], false]);
    assert.deepEqual([d2?.exchange, d2?.routingKey, d2?.properties], ['', 'q', null]);
    h.ok({ type: 'return', consumerId: 'c', deliveryTags: [1] }, 'returned');
    const [again] = h.deliveries();
    assert.deepEqual([again?.deliveryCount, again?.redelivered, again?.messageId], [2, true, 1]);
    assert.deepEqual(h.sm.inFlight('c').map((f) => [f.messageId, f.exchange, f.redelivered]), [[2, '', false], [1, 'amq.direct', true]]);
  });
});

describe('queues', () => {
  it('declareQueue: creates, counts, compares the four arguments with RabbitMQ\'s texts, looks passively, guards amq.*', () => {
    const h = new Harness();
    const dq = (more: Partial<DeclareQueueCommand> = {}): DeclareQueueCommand =>
      ({ type: 'declareQueue', queue: 'q', durable: true, passive: false, deliveryLimit: 3, deadLetterExchange: 'dlx', deadLetterRoutingKey: null, ...more });
    assert.deepEqual(h.do(dq()), { type: 'declared', queue: 'q', created: true, messageCount: 0, consumerCount: 0 });
    h.ok({ type: 'enqueue', queue: 'q', body: enc.encode('m') }, 'enqueued');
    h.ok({ type: 'enqueue', queue: 'q', body: enc.encode('m') }, 'enqueued');
    h.attach('c', 'q', 1);
    h.ok({ type: 'dequeue', queue: 'q', consumerId: 'g', node: 'n1', noAck: false }, 'dequeued'); // a getter: not counted as a consumer
    assert.deepEqual(h.do(dq()), { type: 'declared', queue: 'q', created: false, messageCount: 0, consumerCount: 1 });
    h.fails(dq({ durable: false }), 'queueMismatch', "inequivalent arg 'durable' for queue 'q' in vhost '/': received 'false' but current is 'true'");
    // In RabbitMQ's terms: x-delivery-limit N (returns) is our delivery limit N + 1.
    h.fails(dq({ deliveryLimit: 5 }), 'queueMismatch',
      "inequivalent arg 'x-delivery-limit' for queue 'q' in vhost '/': received the value '4' of type 'long' but current is the value '2' of type 'long'");
    h.fails(dq({ deliveryLimit: 0 }), 'queueMismatch',
      "inequivalent arg 'x-delivery-limit' for queue 'q' in vhost '/': received none but current is the value '2' of type 'long'");
    h.fails(dq({ deadLetterExchange: null }), 'queueMismatch',
      "inequivalent arg 'x-dead-letter-exchange' for queue 'q' in vhost '/': received none but current is the value 'dlx' of type 'longstr'");
    h.fails(dq({ deadLetterRoutingKey: 'k' }), 'queueMismatch',
      "inequivalent arg 'x-dead-letter-routing-key' for queue 'q' in vhost '/': received the value 'k' of type 'longstr' but current is none");
    assert.deepEqual(h.do(dq({ passive: true, durable: false, deliveryLimit: 9 })), { type: 'declared', queue: 'q', created: false, messageCount: 0, consumerCount: 1 });
    h.fails(dq({ queue: 'nope', passive: true }), 'queueNotFound', "no queue 'nope' in vhost '/'");
    h.fails(dq({ queue: 'amq.q' }), 'accessRefused', "queue name 'amq.q' contains reserved prefix 'amq.*'");
    const s = h.sm.queueStats('q');
    assert.deepEqual([s?.durable, s?.deadLetterExchange, s?.deadLetterRoutingKey, s?.deadLetterQueue], [true, 'dlx', null, null]);
  });

  it('folds the gRPC declare into the same arguments: dead-letter queue d = exchange \'\' and key d, idempotent across both APIs', () => {
    const h = new Harness();
    h.ok({ type: 'declareQueue', queue: 'q', durable: true, passive: false, deliveryLimit: 2, deadLetterExchange: '', deadLetterRoutingKey: 'd' }, 'declared');
    assert.deepEqual(h.do({ type: 'declare', queue: 'q', deliveryLimit: 2, deadLetterQueue: 'd' }), { type: 'declared', queue: 'q', created: false, messageCount: 0, consumerCount: 0 });
    h.fails({ type: 'declare', queue: 'q', deliveryLimit: 2, deadLetterQueue: null }, 'queueMismatch');
    assert.equal(h.sm.queueStats('q')?.deadLetterQueue, 'd');
    h.ok({ type: 'declare', queue: 'g', deliveryLimit: 0, deadLetterQueue: 'd' }, 'declared');
    h.ok({ type: 'declareQueue', queue: 'g', durable: true, passive: false, deliveryLimit: 0, deadLetterExchange: '', deadLetterRoutingKey: 'd' }, 'declared');
    // A non-durable AMQP queue is still the same to gRPC, which has no durability.
    h.ok({ type: 'declareQueue', queue: 't', durable: false, passive: false, deliveryLimit: 0, deadLetterExchange: null, deadLetterRoutingKey: null }, 'declared');
    h.ok({ type: 'declare', queue: 't', deliveryLimit: 0, deadLetterQueue: null }, 'declared');
  });

  it('deleteQueue: a missing one answers 0; if-unused and if-empty refuse with RabbitMQ\'s texts; consumers, getters, bindings and messages go', () => {
    const h = new Harness();
    assert.deepEqual(h.do({ type: 'deleteQueue', queue: 'nope', ifUnused: true, ifEmpty: true }), { type: 'queueDeleted', queue: 'nope', messageCount: 0 });
    h.queue('q');
    h.queue('other');
    h.exchange('ad', 'direct', { autoDelete: true });
    h.bind('q', 'ad', 'k');
    h.bind('q', 'amq.fanout', '');
    h.bind('other', 'amq.fanout', '');
    for (let i = 0; i < 4; i++) h.publish('', 'q', `m${i}`);
    h.ok({ type: 'dequeue', queue: 'q', consumerId: 'g', node: 'n2', noAck: false }, 'dequeued');
    h.fails({ type: 'deleteQueue', queue: 'q', ifUnused: false, ifEmpty: true }, 'notEmpty', "queue 'q' in vhost '/' is not empty");
    h.attach('c', 'q', 1, { node: 'n1' });
    h.fails({ type: 'deleteQueue', queue: 'q', ifUnused: true, ifEmpty: false }, 'inUse', "queue 'q' in vhost '/' in use");
    h.events = [];
    assert.deepEqual(h.do({ type: 'deleteQueue', queue: 'q', ifUnused: false, ifEmpty: false }), { type: 'queueDeleted', queue: 'q', messageCount: 2 });
    assert.deepEqual(h.events, [
      { type: 'consumerRemoved', queue: 'q', consumerId: 'c', node: 'n1', reason: 'queueDeleted' },
      { type: 'consumerRemoved', queue: 'q', consumerId: 'g', node: 'n2', reason: 'queueDeleted' },
    ]);
    assert.equal(h.sm.queueStats('q'), undefined);
    assert.deepEqual(h.sm.allConsumers(), []);
    assert.equal(h.sm.exchange('ad'), undefined);
    assert.deepEqual(h.sm.bindings().map((b) => `${b.exchange}>${b.queue}`), ['amq.fanout>other']);
    h.fails({ type: 'settle', consumerId: 'g', deliveryTags: [1] }, 'consumerNotFound');
    // A new queue of the same name starts afresh.
    h.queue('q');
    assert.deepEqual(h.sm.queueStats('q')?.enqueued, 0);
  });

  it('purge removes the ready messages and leaves those in flight', () => {
    const h = new Harness();
    h.queue('q');
    for (let i = 1; i <= 5; i++) h.publish('', 'q', `m${i}`);
    h.attach('c', 'q', 2);
    h.ok({ type: 'return', consumerId: 'c', deliveryTags: [1] }, 'returned'); // m1 redelivered as tag 3; ready m3..m5
    h.fails({ type: 'purge', queue: 'nope' }, 'queueNotFound', "no queue 'nope' in vhost '/'");
    assert.deepEqual(h.do({ type: 'purge', queue: 'q' }), { type: 'purged', queue: 'q', messageCount: 3 });
    assert.deepEqual(h.sm.readyIds('q'), []);
    assert.deepEqual(h.sm.inFlight('c').map((f) => f.messageId), [2, 1]);
    const s = h.sm.queueStats('q');
    assert.deepEqual([s?.ready, s?.unacked, s?.purged, s?.enqueued], [0, 2, 3, 5]);
    h.ok({ type: 'return', consumerId: 'c', deliveryTags: [2] }, 'returned');
    h.deliveries();
    h.publish('', 'q', 'm6');
    h.ok({ type: 'settle', consumerId: 'c', deliveryTags: [3, 4] }, 'settled');
    assert.deepEqual(h.deliveries().map((d) => text(d.body)), ['m6']);
  });
});

describe('consumers', () => {
  it('noAck: every ready message goes out at once and is gone; nothing to settle', () => {
    const h = new Harness();
    h.queue('q');
    for (let i = 1; i <= 5; i++) h.publish('', 'q', `m${i}`);
    h.attach('fast', 'q', 1, { noAck: true });
    assert.deepEqual(h.deliveries().map((d) => `${d.deliveryTag}:${text(d.body)}`), ['1:m1', '2:m2', '3:m3', '4:m4', '5:m5']);
    assert.deepEqual(h.sm.inFlight('fast'), []);
    const s = h.sm.queueStats('q');
    assert.deepEqual([s?.ready, s?.unacked, s?.acked], [0, 0, 5]);
    assert.deepEqual(h.do({ type: 'settle', consumerId: 'fast', deliveryTags: [1] }), { type: 'settled', consumerId: 'fast', count: 0, unknown: 1 });
    assert.equal(h.sm.consumer('fast')?.noAck, true);
  });

  it('exclusive: refused beside others, and refuses others while it lasts', () => {
    const h = new Harness();
    h.queue('q');
    h.attach('a', 'q');
    assert.equal(h.attach('x', 'q', 1, { exclusive: true }).type, 'error');
    h.fails({ type: 'attach', consumerId: 'x', queue: 'q', node: 'n1', prefetch: 1, noAck: false, exclusive: true }, 'accessRefused', "queue 'q' in vhost '/' in exclusive use");
    h.ok({ type: 'cancel', consumerId: 'a' }, 'cancelled');
    h.ok({ type: 'attach', consumerId: 'x', queue: 'q', node: 'n1', prefetch: 1, noAck: false, exclusive: true }, 'attached');
    h.fails({ type: 'attach', consumerId: 'b', queue: 'q', node: 'n1', prefetch: 1, noAck: false, exclusive: false }, 'accessRefused', "queue 'q' in vhost '/' in exclusive use");
    h.ok({ type: 'dequeue', queue: 'q', consumerId: 'g', node: 'n1', noAck: false }, 'dequeued'); // basic.get is not a consumer
    h.ok({ type: 'nodeDown', node: 'n1', attachedUpTo: h.index }, 'nodeDown');
    h.ok({ type: 'attach', consumerId: 'b', queue: 'q', node: 'n2', prefetch: 1, noAck: false, exclusive: false }, 'attached');
  });

  it('dequeue: takes in ready order, holds through a getter with its own tags, settles, returns, and is cleaned up like any consumer', () => {
    const h = new Harness();
    h.queue('q', { deliveryLimit: 2 });
    h.queue('p');
    assert.deepEqual(h.do({ type: 'dequeue', queue: 'q', consumerId: 'g', node: 'n1', noAck: false }), { type: 'dequeued', queue: 'q', message: null, messageCount: 0 });
    assert.equal(h.sm.consumer('g'), undefined, 'an empty get creates no getter');
    h.fails({ type: 'dequeue', queue: 'nope', consumerId: 'g', node: 'n1', noAck: false }, 'queueNotFound', "no queue 'nope' in vhost '/'");
    h.publish('amq.direct', 'x', 'lost');
    h.bind('q', 'amq.direct', 'x');
    h.publish('amq.direct', 'x', 'm1', { properties: { flags: 1, bytes: new Uint8Array([9]) } });
    h.publish('', 'q', 'm2');
    h.publish('', 'q', 'm3');
    const r1 = h.ok({ type: 'dequeue', queue: 'q', consumerId: 'g', node: 'n1', noAck: false }, 'dequeued');
    assert.deepEqual(r1, {
      type: 'dequeued', queue: 'q', messageCount: 2,
      message: {
        deliveryTag: 1, messageId: 1, body: enc.encode('m1'), properties: { flags: 1, bytes: new Uint8Array([9]) }, exchange: 'amq.direct', routingKey: 'x',
        deliveryCount: 1, redelivered: false, deaths: [], deadLetter: null,
      },
    });
    assert.deepEqual(h.sm.consumer('g'), { consumerId: 'g', queue: 'q', node: 'n1', prefetch: 0, attachIndex: h.index, noAck: false, exclusive: false, getter: true });
    const r2 = h.ok({ type: 'dequeue', queue: 'q', consumerId: 'g', node: 'n1', noAck: false }, 'dequeued');
    assert.equal(r2.message?.deliveryTag, 2);
    h.ok({ type: 'return', consumerId: 'g', deliveryTags: [1] }, 'returned');
    const r3 = h.ok({ type: 'dequeue', queue: 'q', consumerId: 'g', node: 'n1', noAck: true }, 'dequeued');
    assert.deepEqual([r3.message?.messageId, r3.message?.deliveryTag, r3.message?.redelivered, r3.messageCount], [1, 0, true, 1]);
    h.ok({ type: 'settle', consumerId: 'g', deliveryTags: [2] }, 'settled');
    // A pushing consumer gets nothing a getter holds, and a getter is never pushed to.
    h.ok({ type: 'dequeue', queue: 'q', consumerId: 'g', node: 'n1', noAck: false }, 'dequeued'); // m3, tag 3
    h.publish('', 'q', 'm4');
    assert.deepEqual(h.deliveries(), []);
    h.fails({ type: 'dequeue', queue: 'p', consumerId: 'g', node: 'n1', noAck: false }, 'invalid');
    h.attach('c', 'q', 5);
    h.fails({ type: 'dequeue', queue: 'q', consumerId: 'c', node: 'n1', noAck: false }, 'consumerExists');
    assert.deepEqual(h.deliveries().map((d) => text(d.body)), ['m4']);
    const s = h.sm.queueStats('q');
    assert.deepEqual([s?.consumers, s?.unacked, s?.acked], [1, 2, 2]);
    h.events = [];
    assert.deepEqual(h.do({ type: 'nodeDown', node: 'n1', attachedUpTo: h.index }), { type: 'nodeDown', node: 'n1', consumers: 2, returned: 2 });
    assert.deepEqual(h.sm.readyIds('q'), [3, 4]);
  });
});

describe('dead-lettering through a dead-letter exchange', () => {
  it('routes with the dead-letter routing key or the message\'s own, records x-death, and merges repeats', () => {
    const h = new Harness();
    h.exchange('dlx', 'topic');
    h.queue('work', { deliveryLimit: 1, deadLetterExchange: 'dlx', deadLetterRoutingKey: null });
    h.queue('dead.all');
    h.queue('dead.orders');
    h.bind('dead.all', 'dlx', '#');
    h.bind('dead.orders', 'dlx', 'orders.*');
    h.bind('work', 'amq.topic', 'orders.*');
    h.publish('amq.topic', 'orders.new', 'o1');
    h.attach('c', 'work', 1);
    h.events = [];
    h.ok({ type: 'discard', consumerId: 'c', deliveryTags: [1] }, 'discarded');
    assert.deepEqual(h.events.filter((e) => e.type === 'deadLettered'),
      [{ type: 'deadLettered', queue: 'work', messageId: 1, reason: 'rejected', target: 'dead.all', targets: ['dead.all', 'dead.orders'] }]);
    const got = h.ok({ type: 'dequeue', queue: 'dead.orders', consumerId: 'g', node: 'n1', noAck: false }, 'dequeued').message;
    assert.deepEqual([got?.exchange, got?.routingKey, got?.deadLetter], ['dlx', 'orders.new', { queue: 'work', messageId: 1, reason: 'rejected' }]);
    assert.deepEqual(got?.deaths, [{ queue: 'work', reason: 'rejected', count: 1, exchange: 'amq.topic', routingKeys: ['orders.new'] }]);
    // dead.orders sends its rejects back to work through the default exchange: the death in work repeats and merges.
    h.queue('loop', { deadLetterExchange: '', deadLetterRoutingKey: 'work' });
    h.bind('loop', 'amq.direct', 'k');
    h.publish('amq.direct', 'k', 'x');
    h.attach('l', 'loop', 1);
    h.ok({ type: 'discard', consumerId: 'l', deliveryTags: [1] }, 'discarded'); // to work (reason rejected, from loop)
    h.deliveries();
    h.ok({ type: 'discard', consumerId: 'c', deliveryTags: [2] }, 'discarded'); // work rejects it: routing key 'work' matches '#' only
    const d = h.ok({ type: 'dequeue', queue: 'dead.all', consumerId: 'g2', node: 'n1', noAck: true }, 'dequeued').message; // o1's copy first
    assert.equal(text(d?.body ?? new Uint8Array()), 'o1');
    const x = h.ok({ type: 'dequeue', queue: 'dead.all', consumerId: 'g2', node: 'n1', noAck: true }, 'dequeued').message;
    assert.deepEqual(x?.deaths.map((e) => [e.queue, e.reason, e.count, e.exchange, e.routingKeys]), [
      ['work', 'rejected', 1, '', ['work']],
      ['loop', 'rejected', 1, 'amq.direct', ['k']],
    ]);
  });

  it('counts a repeated death in place and moves it to the front (x-death merge), and cuts automatic cycles', () => {
    const h = new Harness();
    // a and b dead-letter into each other on the delivery limit: an automatic cycle.
    h.queue('a', { deliveryLimit: 1, deadLetterExchange: '', deadLetterRoutingKey: 'b' });
    h.queue('b', { deliveryLimit: 1, deadLetterExchange: '', deadLetterRoutingKey: 'a' });
    h.publish('', 'a', 'm');
    h.attach('ca', 'a', 1);
    h.attach('cb', 'b', 1);
    h.events = [];
    h.ok({ type: 'return', consumerId: 'ca', deliveryTags: [1] }, 'returned'); // limit reached in a: to b
    const [inB] = h.deliveries();
    assert.deepEqual(inB?.deaths.map((e) => `${e.queue}/${e.reason}/${e.count}`), ['a/delivery_limit/1']);
    h.events = [];
    h.ok({ type: 'return', consumerId: 'cb', deliveryTags: [1] }, 'returned'); // limit in b: back to a would be a cycle with no rejection: dropped
    assert.deepEqual(h.events, [{ type: 'deadLettered', queue: 'b', messageId: 1, reason: 'deliveryLimit', target: null, targets: [] }]);
    assert.equal(h.sm.queueStats('b')?.dropped, 1);
    // With a rejection on the way the cycle may go round, and the history merges.
    h.publish('', 'a', 'r');
    h.ok({ type: 'discard', consumerId: 'ca', deliveryTags: [2] }, 'discarded'); // a → b, rejected
    h.ok({ type: 'return', consumerId: 'cb', deliveryTags: [2] }, 'returned'); // b → a, delivery_limit; the history holds a rejection
    h.deliveries();
    h.ok({ type: 'discard', consumerId: 'ca', deliveryTags: [3] }, 'discarded'); // a → b again, rejected: merged
    const [last] = h.deliveries();
    assert.equal(last?.consumerId, 'cb');
    assert.deepEqual(last?.deaths.map((e) => `${e.queue}/${e.reason}/${e.count}`), ['a/rejected/2', 'b/delivery_limit/1']);
  });

  it('drops (and counts) when the dead-letter exchange is missing or routes nowhere; gRPC dead-letter queues keep working', () => {
    const h = new Harness();
    h.queue('q', { deadLetterExchange: 'missing', deadLetterRoutingKey: null });
    h.queue('r', { deadLetterExchange: 'amq.direct', deadLetterRoutingKey: 'unbound' });
    h.ok({ type: 'declare', queue: 'dlq', deliveryLimit: 0, deadLetterQueue: null }, 'declared');
    h.ok({ type: 'declare', queue: 's', deliveryLimit: 0, deadLetterQueue: 'dlq' }, 'declared');
    for (const q of ['q', 'r', 's']) {
      h.publish('', q, 'm');
      h.attach(`c${q}`, q, 1);
      h.ok({ type: 'discard', consumerId: `c${q}`, deliveryTags: [1] }, 'discarded');
    }
    assert.deepEqual(h.sm.stats().map((s) => [s.queue, s.dropped, s.deadLettered]), [['dlq', 0, 0], ['q', 1, 0], ['r', 1, 0], ['s', 0, 1]]);
    const d = h.ok({ type: 'dequeue', queue: 'dlq', consumerId: 'g', node: 'n1', noAck: true }, 'dequeued').message;
    assert.deepEqual(d?.deadLetter, { queue: 's', messageId: 1, reason: 'rejected' });
  });
});

describe('snapshots', () => {
  it('round-trips everything (version 2) and continues identically', () => {
    const build = (h: Harness): void => {
      h.exchange('dlx', 'fanout', { autoDelete: true, durable: false });
      h.queue('q', { deliveryLimit: 2, deadLetterExchange: 'dlx', deadLetterRoutingKey: 'k' });
      h.queue('dead', { durable: false });
      h.bind('dead', 'dlx', '');
      h.bind('q', 'amq.headers', '', { match: 'any', pairs: [['a', { kind: 'bigint', value: -5n }], ['b', { kind: 'void' }]] });
      h.publish('amq.headers', '', 'm1', { headers: [['a', { kind: 'bigint', value: -5n }]], properties: { flags: 0x1000, bytes: new Uint8Array([5]) } });
      h.publish('', 'q', 'm2');
      h.publish('', 'q', 'm3');
      h.publish('', 'q', 'm4');
      h.attach('c', 'q', 1, { exclusive: true });
      h.ok({ type: 'discard', consumerId: 'c', deliveryTags: [1] }, 'discarded');
      h.ok({ type: 'dequeue', queue: 'q', consumerId: 'g', node: 'n2', noAck: false }, 'dequeued');
      h.attach('n', 'dead', 1, { noAck: true, node: 'n3' });
      h.ok({ type: 'purge', queue: 'dead' }, 'purged');
    };
    const a = new Harness();
    build(a);
    const snap = a.sm.snapshot();
    const b = new Harness();
    b.sm.restore(snap);
    assert.deepEqual(b.sm.snapshot(), snap);
    assert.deepEqual(b.sm.stats(), a.sm.stats());
    assert.deepEqual(b.sm.bindings(), a.sm.bindings());
    assert.deepEqual(b.sm.allConsumers(), a.sm.allConsumers());
    assert.deepEqual(b.sm.inFlight('c'), a.sm.inFlight('c'));
    b.index = a.index;
    const more: QueueCommand[] = [
      { type: 'return', consumerId: 'g', deliveryTags: [1] },
      { type: 'return', consumerId: 'c', deliveryTags: [2] },
      { type: 'discard', consumerId: 'c', deliveryTags: [3] },
      { type: 'publish', exchange: 'amq.headers', routingKey: '', mandatory: false, properties: null, headers: [['b', { kind: 'string', value: '' }]], body: enc.encode('m5') },
      { type: 'attach', consumerId: 'other', queue: 'q', node: 'n1', prefetch: 1, noAck: false, exclusive: false },
      { type: 'deleteQueue', queue: 'dead', ifUnused: false, ifEmpty: false },
      { type: 'exchangeDeclare', exchange: 'dlx', kind: 'fanout', durable: false, autoDelete: true, internal: false, passive: true },
    ];
    for (const cmd of more) {
      a.events = [];
      b.events = [];
      assert.deepEqual(b.do(cmd), a.do(cmd), JSON.stringify(cmd));
      assert.deepEqual(b.events, a.events);
    }
    assert.deepEqual(b.sm.snapshot(), a.sm.snapshot());
  });

  it('refuses every truncation and any byte change that would not snapshot back the same', () => {
    const h = new Harness();
    h.exchange('x', 'headers', { autoDelete: true });
    h.queue('q', { deliveryLimit: 1, deadLetterExchange: 'x', deadLetterRoutingKey: null });
    h.queue('d');
    h.bind('q', 'x', 'k', { match: 'all', pairs: [['h', { kind: 'string', value: 'v' }]] });
    h.bind('d', 'x', 'k', { match: 'all', pairs: [['h', { kind: 'string', value: 'v' }]] });
    assert.equal(h.publish('x', 'k', 'm', { headers: [['h', { kind: 'string', value: 'v' }]], properties: { flags: 3, bytes: new Uint8Array([1]) } }), 2);
    h.attach('c', 'q', 1);
    h.ok({ type: 'return', consumerId: 'c', deliveryTags: [1] }, 'returned'); // the limit: x routes it to q (a cycle, cut) and d (with its death)
    assert.equal(h.sm.queueStats('d')?.ready, 2);
    h.publish('', 'q', 'm2');
    h.ok({ type: 'dequeue', queue: 'd', consumerId: 'g', node: 'n1', noAck: false }, 'dequeued');
    const good = h.sm.snapshot();
    for (let cut = 0; cut < good.length; cut++) assert.throws(() => new QueueStateMachine().restore(good.subarray(0, cut)), QueueSnapshotError);
    for (let i = 0; i < good.length; i++) {
      for (const v of [0, 1, 2, 0x7f, 0xff]) {
        const bad = new Uint8Array(good);
        bad[i] = v;
        const other = new QueueStateMachine();
        try {
          other.restore(bad);
        } catch (e) {
          assert.ok(e instanceof QueueSnapshotError, String(e));
          continue;
        }
        assert.deepEqual(other.snapshot(), bad);
      }
    }
  });

  it('restores a version 1 snapshot (written before the AMQP model) with its meaning', () => {
    // Written by the version 1 machine after: declare dlq; declare q (limit 2, dead-letter queue dlq); enqueue m1, m2, m3 to q;
    // attach c1 (n1, prefetch 1); discard tag 1; return tag 2.
    const v1 = new Uint8Array(Buffer.from(
      '51515545010203646c710000040202000000000102026d3100010171020100000171040103646c71080606000200000204026d32040006026d3300000001026331026e31020c08010604', 'hex'));
    const h = new Harness();
    h.sm.restore(v1);
    assert.deepEqual(h.sm.stats(), [
      {
        queue: 'dlq', durable: true, deliveryLimit: 0, deadLetterQueue: null, deadLetterExchange: null, deadLetterRoutingKey: null, ready: 1, unacked: 0,
        consumers: 0, enqueued: 1, acked: 0, deadLettered: 0, dropped: 0, purged: 0,
      },
      {
        queue: 'q', durable: true, deliveryLimit: 2, deadLetterQueue: 'dlq', deadLetterExchange: '', deadLetterRoutingKey: 'dlq', ready: 1, unacked: 1,
        consumers: 1, enqueued: 3, acked: 0, deadLettered: 1, dropped: 0, purged: 0,
      },
    ]);
    assert.deepEqual(h.sm.allConsumers(), [{ consumerId: 'c1', queue: 'q', node: 'n1', prefetch: 1, attachIndex: 6, noAck: false, exclusive: false, getter: false }]);
    assert.deepEqual(h.sm.inFlight('c1').map((f) => [f.deliveryTag, f.messageId, text(f.body), f.deliveryCount, f.exchange, f.routingKey]), [[3, 2, 'm2', 2, '', 'q']]);
    assert.deepEqual(h.sm.exchangeNames(), ['amq.direct', 'amq.fanout', 'amq.headers', 'amq.match', 'amq.topic']);
    const dead = h.ok({ type: 'dequeue', queue: 'dlq', consumerId: 'g', node: 'n1', noAck: true }, 'dequeued').message;
    assert.deepEqual([dead?.deadLetter, dead?.deaths, dead?.routingKey], [
      { queue: 'q', messageId: 1, reason: 'rejected' }, [{ queue: 'q', reason: 'rejected', count: 1, exchange: '', routingKeys: ['q'] }], 'dlq',
    ]);
    // It goes on as a version 1 machine would: the held m2 reaches its limit and is dead-lettered to dlq.
    h.ok({ type: 'return', consumerId: 'c1', deliveryTags: [3] }, 'returned');
    assert.equal(h.sm.queueStats('dlq')?.ready, 1);
    assert.equal(h.sm.snapshot()[4], 2, 'snapshots are written as version 2');
  });

  it('detach (basic.cancel): no more deliveries, what it holds stays held until settled, then survives a snapshot; one holding nothing is removed', () => {
    const h = new Harness();
    h.ok({ type: 'declare', queue: 'q', deliveryLimit: 0, deadLetterQueue: null }, 'declared');
    for (let i = 0; i < 5; i++) h.ok({ type: 'enqueue', queue: 'q', body: enc.encode(`m${i}`) }, 'enqueued');
    h.attach('c1', 'q', 2);
    assert.deepEqual(h.ok({ type: 'detach', consumerId: 'c1' }, 'detached'), { type: 'detached', consumerId: 'c1', held: 2 });
    assert.equal(h.sm.consumer('c1')?.getter, true);
    h.attach('c2', 'q', 10);
    const toC2 = h.events.filter((e) => e.type === 'delivered' && e.consumerId === 'c2').map((e) => (e.type === 'delivered' ? text(e.body) : ''));
    assert.deepEqual(toC2, ['m2', 'm3', 'm4'], 'the held two stay with c1');
    const b = new Harness();
    b.sm.restore(h.sm.snapshot());
    for (const x of [h, b]) {
      assert.deepEqual(x.ok({ type: 'settle', consumerId: 'c1', deliveryTags: [1, 2] }, 'settled'), { type: 'settled', consumerId: 'c1', count: 2, unknown: 0 });
      assert.equal(x.sm.queueStats('q')?.acked, 2);
      assert.deepEqual(x.ok({ type: 'detach', consumerId: 'c1' }, 'detached'), { type: 'detached', consumerId: 'c1', held: 0 });
      assert.equal(x.sm.consumer('c1'), undefined);
    }
    assert.deepEqual(b.sm.snapshot(), h.sm.snapshot());
    h.fails({ type: 'detach', consumerId: 'nobody' }, 'consumerNotFound');
  });
});
