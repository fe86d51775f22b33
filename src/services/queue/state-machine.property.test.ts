// Model-based property tests of QueueStateMachine (fast-check): random command
// sequences over a few queues, consumers and nodes, applied through the codec,
// against a naive reference model (each queue a plain list of messages with a
// state each, ready ones delivered in id order; routing by scanning every
// binding, topic keys by a regular expression; x-death and the cycle rule
// written out plainly) must agree on every result, every event and every
// queue's statistics. The commands include the AMQP ones: publishes through
// the predeclared exchanges, bind / unbind, purge, queue delete and
// re-declare (so dead-letter chains and cycles come and go), basic.get
// (getters), noAck and exclusive consumers, basic.cancel's detach. Checked too, after every step:
// each enqueued message is ready, in flight to exactly one consumer, acked,
// or dead-lettered/dropped; first deliveries per queue come in id order; no
// message is delivered more than its limit and dead-lettering for the limit
// happens exactly after the limit-th delivery; and a snapshot restored
// anywhere continues exactly like the original.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { encodeQueueCommand } from './codec.js';
import { QueueStateMachine } from './state-machine.js';
import type { DeadLetterOrigin, DeadLetterReason, Death, MessageProperties, QueueCommand, QueueEvent, QueueResult, QueueStats } from './types.js';

const rec: typeof fc.record = ((model: never) => fc.record(model, { noNullPrototype: true })) as typeof fc.record;

// ---- the reference model ----

interface MMessage {
  id: number;
  body: Uint8Array;
  properties: MessageProperties | null;
  exchange: string;
  routingKey: string;
  deaths: Death[];
  deliveries: number;
  origin: DeadLetterOrigin | null;
  state: 'ready' | 'held' | 'gone';
}
interface MQueue {
  name: string;
  limit: number;
  dlq: string | null;
  msgs: MMessage[];
  consumers: string[];
  getters: string[];
  cursor: number;
  enqueued: number;
  acked: number;
  deadLettered: number;
  dropped: number;
  purged: number;
}
interface MConsumer {
  id: string;
  queue: string;
  node: string;
  prefetch: number;
  attachIndex: number;
  noAck: boolean;
  exclusive: boolean;
  getter: boolean;
  nextTag: number;
  held: { tag: number; id: number }[];
}
interface MBinding { exchange: string; queue: string; key: string }

/** Topic matching the slow way: a regular expression over ".w1.w2...". */
function topicRef(pattern: string, key: string): boolean {
  const words = (k: string): string[] => (k === '' ? [] : k.split('.'));
  const re = words(pattern).map((w) => (w === '*' ? '\\.[^.]*' : w === '#' ? '(?:\\.[^.]*)*' : `\\.${w.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&')}`)).join('');
  return new RegExp(`^${re}$`).test(words(key).map((w) => `.${w}`).join(''));
}

const KINDS: Record<string, 'direct' | 'fanout' | 'topic'> = { 'amq.direct': 'direct', 'amq.fanout': 'fanout', 'amq.topic': 'topic' };

class Model {
  readonly queues = new Map<string, MQueue>();
  readonly consumers = new Map<string, MConsumer>();
  bindings: MBinding[] = [];
  events: QueueEvent[] = [];

  apply(cmd: QueueCommand, index: number): QueueResult {
    this.events = [];
    const touched = new Set<string>();
    const r = this.exec(cmd, index, touched);
    for (const q of [...touched].sort()) {
      const mq = this.queues.get(q);
      if (mq) this.assign(mq);
    }
    return r;
  }

  private ready(q: MQueue): MMessage[] {
    return q.msgs.filter((m) => m.state === 'ready').sort((a, b) => a.id - b.id);
  }

  private declared(q: MQueue, created: boolean): QueueResult {
    return { type: 'declared', queue: q.name, created, messageCount: this.ready(q).length, consumerCount: q.consumers.length };
  }

  private route(exchange: string, key: string): string[] {
    if (exchange === '') return this.queues.has(key) ? [key] : [];
    const kind = KINDS[exchange];
    const hit = this.bindings.filter((b) => b.exchange === exchange && (kind === 'fanout' || (kind === 'direct' ? b.key === key : topicRef(b.key, key))));
    return [...new Set(hit.map((b) => b.queue))].sort();
  }

  private exec(cmd: QueueCommand, index: number, touched: Set<string>): QueueResult {
    const error = (e: Extract<QueueResult, { type: 'error' }>['error']): QueueResult => ({ type: 'error', error: e, message: '' });
    switch (cmd.type) {
      case 'declare': {
        if (cmd.deadLetterQueue === cmd.queue) return error('invalid');
        const q = this.queues.get(cmd.queue);
        if (q) return q.limit === cmd.deliveryLimit && q.dlq === cmd.deadLetterQueue ? this.declared(q, false) : error('queueMismatch');
        const nq: MQueue = {
          name: cmd.queue, limit: cmd.deliveryLimit, dlq: cmd.deadLetterQueue, msgs: [], consumers: [], getters: [], cursor: 0, enqueued: 0, acked: 0, deadLettered: 0,
          dropped: 0, purged: 0,
        };
        this.queues.set(cmd.queue, nq);
        return this.declared(nq, true);
      }
      case 'enqueue': {
        const q = this.queues.get(cmd.queue);
        if (!q) return error('queueNotFound');
        return { type: 'enqueued', queue: q.name, messageId: this.push(q, { body: cmd.body, properties: null, exchange: '', routingKey: q.name, deaths: [], origin: null }, touched) };
      }
      case 'publish': {
        if (cmd.exchange !== '' && !(cmd.exchange in KINDS)) return error('exchangeNotFound');
        const targets = this.route(cmd.exchange, cmd.routingKey);
        for (const t of targets) {
          this.push(this.queues.get(t) as MQueue, { body: cmd.body, properties: cmd.properties, exchange: cmd.exchange, routingKey: cmd.routingKey, deaths: [], origin: null }, touched);
        }
        return { type: 'published', routed: targets.length };
      }
      case 'bind': case 'unbind': {
        if (cmd.exchange === '') return error('accessRefused');
        if (!(cmd.exchange in KINDS)) return error('exchangeNotFound');
        if (!this.queues.has(cmd.queue)) return error('queueNotFound');
        const same = (b: MBinding): boolean => b.exchange === cmd.exchange && b.queue === cmd.queue && b.key === cmd.routingKey;
        if (cmd.type === 'bind') {
          if (!this.bindings.some(same)) this.bindings.push({ exchange: cmd.exchange, queue: cmd.queue, key: cmd.routingKey });
          return { type: 'bound' };
        }
        this.bindings = this.bindings.filter((b) => !same(b));
        return { type: 'unbound' };
      }
      case 'purge': {
        const q = this.queues.get(cmd.queue);
        if (!q) return error('queueNotFound');
        const ready = this.ready(q);
        for (const m of ready) m.state = 'gone';
        q.purged += ready.length;
        return { type: 'purged', queue: q.name, messageCount: ready.length };
      }
      case 'deleteQueue': {
        const q = this.queues.get(cmd.queue);
        if (!q) return { type: 'queueDeleted', queue: cmd.queue, messageCount: 0 };
        const ready = this.ready(q).length;
        if (cmd.ifUnused && q.consumers.length > 0) return error('inUse');
        if (cmd.ifEmpty && ready > 0) return error('notEmpty');
        for (const id of [...q.consumers, ...q.getters]) {
          const c = this.consumers.get(id) as MConsumer;
          this.consumers.delete(id);
          this.events.push({ type: 'consumerRemoved', queue: q.name, consumerId: id, node: c.node, reason: 'queueDeleted' });
        }
        this.bindings = this.bindings.filter((b) => b.queue !== q.name);
        this.queues.delete(q.name);
        return { type: 'queueDeleted', queue: q.name, messageCount: ready };
      }
      case 'dequeue': {
        const q = this.queues.get(cmd.queue);
        if (!q) return error('queueNotFound');
        let c = this.consumers.get(cmd.consumerId);
        if (c && !c.getter) return error('consumerExists');
        if (c && c.queue !== q.name) return error('invalid');
        const m = this.ready(q)[0];
        if (!m) return { type: 'dequeued', queue: q.name, message: null, messageCount: 0 };
        m.deliveries++;
        let tag = 0;
        if (cmd.noAck) {
          m.state = 'gone';
          q.acked++;
        } else {
          if (!c) {
            c = { id: cmd.consumerId, queue: q.name, node: cmd.node, prefetch: 0, attachIndex: index, noAck: false, exclusive: false, getter: true, nextTag: 1, held: [] };
            this.consumers.set(c.id, c);
            q.getters.push(c.id);
          }
          tag = c.nextTag++;
          c.held.push({ tag, id: m.id });
          m.state = 'held';
        }
        return {
          type: 'dequeued', queue: q.name, messageCount: this.ready(q).length,
          message: {
            deliveryTag: tag, messageId: m.id, body: m.body, properties: m.properties, exchange: m.exchange, routingKey: m.routingKey, deliveryCount: m.deliveries,
            redelivered: m.deliveries > 1, deaths: m.deaths, deadLetter: m.origin,
          },
        };
      }
      case 'attach': {
        const q = this.queues.get(cmd.queue);
        if (!q) return error('queueNotFound');
        if (this.consumers.has(cmd.consumerId)) return error('consumerExists');
        if (q.consumers.some((id) => this.consumers.get(id)?.exclusive === true) || (cmd.exclusive && q.consumers.length > 0)) return error('accessRefused');
        this.consumers.set(cmd.consumerId, {
          id: cmd.consumerId, queue: q.name, node: cmd.node, prefetch: cmd.prefetch, attachIndex: index, noAck: cmd.noAck, exclusive: cmd.exclusive, getter: false, nextTag: 1, held: [],
        });
        q.consumers.push(cmd.consumerId);
        touched.add(q.name);
        return { type: 'attached', consumerId: cmd.consumerId, queue: q.name };
      }
      case 'settle': case 'return': case 'discard': {
        const c = this.consumers.get(cmd.consumerId);
        if (!c) return error('consumerNotFound');
        const q = this.queues.get(c.queue) as MQueue;
        let count = 0;
        let unknown = 0;
        for (const tag of cmd.deliveryTags) {
          const h = c.held.find((x) => x.tag === tag);
          if (!h) {
            unknown++;
            continue;
          }
          c.held = c.held.filter((x) => x !== h);
          count++;
          const m = q.msgs.find((x) => x.id === h.id) as MMessage;
          if (cmd.type === 'settle') {
            m.state = 'gone';
            q.acked++;
          } else if (cmd.type === 'return') this.back(q, m, touched);
          else this.dead(q, m, 'rejected', touched);
        }
        touched.add(q.name);
        return { type: cmd.type === 'settle' ? 'settled' : cmd.type === 'return' ? 'returned' : 'discarded', consumerId: c.id, count, unknown };
      }
      case 'cancel': {
        const c = this.consumers.get(cmd.consumerId);
        if (!c) return error('consumerNotFound');
        return { type: 'cancelled', consumerId: c.id, returned: this.remove(c, 'cancelled', touched) };
      }
      case 'detach': {
        const c = this.consumers.get(cmd.consumerId);
        if (!c) return error('consumerNotFound');
        if (c.held.length === 0) {
          this.remove(c, 'cancelled', touched);
          return { type: 'detached', consumerId: c.id, held: 0 };
        }
        if (!c.getter) {
          const q = this.queues.get(c.queue) as MQueue;
          const at = q.consumers.indexOf(c.id);
          q.consumers.splice(at, 1);
          if (at < q.cursor) q.cursor--;
          if (q.cursor >= q.consumers.length) q.cursor = 0;
          Object.assign(c, { getter: true, prefetch: 0, noAck: false, exclusive: false });
          q.getters.push(c.id);
          touched.add(q.name);
        }
        return { type: 'detached', consumerId: c.id, held: c.held.length };
      }
      case 'nodeDown': {
        const gone = [...this.consumers.values()].filter((c) => c.node === cmd.node && c.attachIndex <= cmd.attachedUpTo).sort((a, b) => (a.id < b.id ? -1 : 1));
        let returned = 0;
        for (const c of gone) returned += this.remove(c, 'nodeDown', touched);
        return { type: 'nodeDown', node: cmd.node, consumers: gone.length, returned };
      }
      default:
        throw new Error(`the model does not know ${cmd.type}`);
    }
  }

  private push(q: MQueue, m: Omit<MMessage, 'id' | 'deliveries' | 'state'>, touched: Set<string>): number {
    const id = q.enqueued + 1; // ids are 1, 2, ... and every enqueue counts
    q.msgs.push({ ...m, id, deliveries: 0, state: 'ready' });
    q.enqueued++;
    touched.add(q.name);
    return id;
  }

  private back(q: MQueue, m: MMessage, touched: Set<string>): void {
    if (q.limit > 0 && m.deliveries >= q.limit) this.dead(q, m, 'deliveryLimit', touched);
    else m.state = 'ready';
    touched.add(q.name);
  }

  private dead(q: MQueue, m: MMessage, reason: DeadLetterReason, touched: Set<string>): void {
    m.state = 'gone';
    const why = reason === 'rejected' ? 'rejected' : 'delivery_limit';
    let targets: string[] = [];
    if (q.dlq !== null) {
      // x-death, plainly: a repeat (queue, reason) counts up and moves to the front.
      const old = m.deaths.find((d) => d.queue === q.name && d.reason === why);
      const deaths: Death[] = old
        ? [{ ...old, count: old.count + 1 }, ...m.deaths.filter((d) => d !== old)]
        : [{ queue: q.name, reason: why, count: 1, exchange: m.exchange, routingKeys: [m.routingKey] }, ...m.deaths];
      // RabbitMQ's cycle rule: the target died here before, and no death up to that one was a rejection.
      const cycle = (t: string): boolean => {
        const at = deaths.findIndex((d) => d.queue === t);
        return at >= 0 && deaths.slice(0, at + 1).every((d) => d.reason !== 'rejected');
      };
      targets = (this.queues.has(q.dlq) ? [q.dlq] : []).filter((t) => !cycle(t));
      for (const t of targets) {
        this.push(this.queues.get(t) as MQueue, { body: m.body, properties: m.properties, exchange: '', routingKey: q.dlq, deaths, origin: { queue: q.name, messageId: m.id, reason } }, touched);
      }
    }
    if (targets.length === 0) q.dropped++;
    else q.deadLettered++;
    this.events.push({ type: 'deadLettered', queue: q.name, messageId: m.id, reason, target: targets[0] ?? null, targets });
  }

  private remove(c: MConsumer, reason: 'cancelled' | 'nodeDown', touched: Set<string>): number {
    const q = this.queues.get(c.queue) as MQueue;
    this.consumers.delete(c.id);
    if (c.getter) q.getters = q.getters.filter((x) => x !== c.id);
    else {
      const at = q.consumers.indexOf(c.id);
      q.consumers.splice(at, 1);
      if (at < q.cursor) q.cursor--;
      if (q.cursor >= q.consumers.length) q.cursor = 0;
    }
    const held = [...c.held].sort((a, b) => a.tag - b.tag);
    for (const h of held) this.back(q, q.msgs.find((x) => x.id === h.id) as MMessage, touched);
    touched.add(q.name);
    this.events.push({ type: 'consumerRemoved', queue: q.name, consumerId: c.id, node: c.node, reason });
    return held.length;
  }

  private assign(q: MQueue): void {
    for (;;) {
      const ready = this.ready(q)[0];
      if (!ready) return;
      let chosen: MConsumer | undefined;
      for (let i = 0; i < q.consumers.length; i++) {
        const at = (q.cursor + i) % q.consumers.length;
        const c = this.consumers.get(q.consumers[at] as string) as MConsumer;
        if (c.held.length < c.prefetch) {
          chosen = c;
          q.cursor = (at + 1) % q.consumers.length;
          break;
        }
      }
      if (!chosen) return;
      ready.deliveries++;
      const tag = chosen.nextTag++;
      if (chosen.noAck) {
        ready.state = 'gone';
        q.acked++;
      } else {
        ready.state = 'held';
        chosen.held.push({ tag, id: ready.id });
      }
      this.events.push({
        type: 'delivered', queue: q.name, consumerId: chosen.id, node: chosen.node, deliveryTag: tag, messageId: ready.id, body: ready.body,
        properties: ready.properties, exchange: ready.exchange, routingKey: ready.routingKey, deaths: ready.deaths, deliveryCount: ready.deliveries,
        redelivered: ready.deliveries > 1, deadLetter: ready.origin,
      });
    }
  }

  stats(): QueueStats[] {
    return [...this.queues.values()].sort((a, b) => (a.name < b.name ? -1 : 1)).map((q) => ({
      queue: q.name, durable: true, deliveryLimit: q.limit, deadLetterQueue: q.dlq, deadLetterExchange: q.dlq === null ? null : '', deadLetterRoutingKey: q.dlq,
      ready: q.msgs.filter((m) => m.state === 'ready').length, unacked: q.msgs.filter((m) => m.state === 'held').length,
      consumers: q.consumers.length, enqueued: q.enqueued, acked: q.acked, deadLettered: q.deadLettered, dropped: q.dropped, purged: q.purged,
    }));
  }
}

// ---- generators: a small universe, so that commands meet each other ----

const QUEUES = ['a', 'b', 'dlq'];
const CONSUMERS = ['c1', 'c2', 'c3', 'c4'];
const NODES = ['n1', 'n2', 'n3'];
const EXCHANGES = ['', 'amq.direct', 'amq.fanout', 'amq.topic', 'amq.topic', 'nope'];
const KEYS = ['a', 'b', 'x.y', 'x.y', '*.y', '*', '#', 'x.#', ''];

const command: fc.Arbitrary<QueueCommand> = fc.oneof(
  { weight: 2, arbitrary: rec({ type: fc.constant('declare' as const), queue: fc.constantFrom(...QUEUES), deliveryLimit: fc.integer({ min: 0, max: 3 }), deadLetterQueue: fc.option(fc.constantFrom(...QUEUES), { nil: null }) }) },
  { weight: 4, arbitrary: rec({ type: fc.constant('enqueue' as const), queue: fc.constantFrom(...QUEUES), body: fc.uint8Array({ maxLength: 3 }) }) },
  {
    weight: 4,
    arbitrary: rec({
      type: fc.constant('publish' as const), exchange: fc.constantFrom(...EXCHANGES), routingKey: fc.constantFrom(...KEYS), mandatory: fc.boolean(),
      properties: fc.option(rec({ flags: fc.constantFrom(0, 0x8000), bytes: fc.uint8Array({ maxLength: 2 }) }), { nil: null }), headers: fc.constant([]),
      body: fc.uint8Array({ maxLength: 3 }),
    }),
  },
  { weight: 2, arbitrary: rec({ type: fc.constantFrom('bind' as const, 'bind' as const, 'unbind' as const), queue: fc.constantFrom(...QUEUES), exchange: fc.constantFrom(...EXCHANGES), routingKey: fc.constantFrom(...KEYS), arguments: fc.constant(null) }) },
  {
    weight: 3,
    arbitrary: rec({
      type: fc.constant('attach' as const), consumerId: fc.constantFrom(...CONSUMERS), queue: fc.constantFrom(...QUEUES), node: fc.constantFrom(...NODES), prefetch: fc.integer({ min: 1, max: 3 }),
      noAck: fc.constantFrom(false, false, false, true), exclusive: fc.constantFrom(false, false, false, true),
    }),
  },
  { weight: 2, arbitrary: rec({ type: fc.constant('dequeue' as const), queue: fc.constantFrom(...QUEUES), consumerId: fc.constantFrom(...CONSUMERS, 'g1', 'g2'), node: fc.constantFrom(...NODES), noAck: fc.boolean() }) },
  { weight: 6, arbitrary: rec({ type: fc.constantFrom('settle' as const, 'return' as const, 'return' as const, 'discard' as const), consumerId: fc.constantFrom(...CONSUMERS, 'g1', 'g2'), deliveryTags: fc.array(fc.integer({ min: 1, max: 8 }), { maxLength: 3 }) }) },
  { weight: 1, arbitrary: rec({ type: fc.constant('cancel' as const), consumerId: fc.constantFrom(...CONSUMERS, 'g1', 'g2') }) },
  { weight: 1, arbitrary: rec({ type: fc.constant('detach' as const), consumerId: fc.constantFrom(...CONSUMERS, 'g1', 'g2') }) },
  { weight: 1, arbitrary: rec({ type: fc.constant('nodeDown' as const), node: fc.constantFrom(...NODES), attachedUpTo: fc.integer({ min: 0, max: 60 }) }) },
  { weight: 1, arbitrary: rec({ type: fc.constant('purge' as const), queue: fc.constantFrom(...QUEUES) }) },
  { weight: 1, arbitrary: rec({ type: fc.constant('deleteQueue' as const), queue: fc.constantFrom(...QUEUES), ifUnused: fc.boolean(), ifEmpty: fc.boolean() }) },
);

/** Sequences that start by declaring the queues (with a dead-letter chain), so that most commands do something. */
const scenario = fc.tuple(
  fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 3 }), fc.boolean(),
  fc.array(command, { minLength: 1, maxLength: 80, size: 'max' }),
  fc.array(rec({ type: fc.constant('bind' as const), queue: fc.constantFrom(...QUEUES), exchange: fc.constantFrom(...EXCHANGES), routingKey: fc.constantFrom(...KEYS), arguments: fc.constant(null) }), { maxLength: 4 }),
).map(([limA, limB, dlqFirst, rest, binds]) => {
  const declares: QueueCommand[] = [
    { type: 'declare', queue: 'a', deliveryLimit: limA, deadLetterQueue: 'dlq' },
    { type: 'declare', queue: 'b', deliveryLimit: limB, deadLetterQueue: null },
  ];
  const dlq: QueueCommand = { type: 'declare', queue: 'dlq', deliveryLimit: 0, deadLetterQueue: null };
  return dlqFirst ? [dlq, ...declares, ...binds, ...rest] : [...declares, ...binds, ...rest, dlq, ...binds, ...rest];
});

/** Applies `cmd` at `index` through the codec, collecting the events. */
function run(sm: QueueStateMachine, cmd: QueueCommand, index: number): { result: QueueResult; events: QueueEvent[] } {
  const events: QueueEvent[] = [];
  const off = sm.on((e) => events.push(e));
  const result = sm.apply(encodeQueueCommand(cmd), index);
  off();
  return { result, events };
}

const withoutMessage = (r: QueueResult): QueueResult => (r.type === 'error' ? { ...r, message: '' } : r);

describe('QueueStateMachine against the reference model', () => {
  it('agrees on every result, event and statistic, and keeps the invariants', () => {
    fc.assert(fc.property(scenario, (cmds) => {
      const sm = new QueueStateMachine();
      const model = new Model();
      /** Per queue: the last first-delivered id; per (queue, message): last delivery count. */
      const lastFirst = new Map<string, number>();
      const lastCount = new Map<string, number>();
      cmds.forEach((cmd, i) => {
        const { result, events } = run(sm, cmd, i + 1);
        const expected = model.apply(cmd, i + 1);
        assert.deepEqual(withoutMessage(result), expected, `command ${i}: ${JSON.stringify(cmd)}`);
        assert.deepEqual(events, model.events, `events of command ${i}`);
        assert.deepEqual(sm.stats(), model.stats());
        // Deliveries: pushed ones (events) and basic.get's (the result), in the order they happened (a get pushes nothing).
        const delivered: { queue: string; messageId: number; deliveryCount: number }[] = [];
        if (result.type === 'dequeued' && result.message !== null) delivered.push({ queue: result.queue, ...result.message });
        for (const e of events) if (e.type === 'delivered') delivered.push(e);
        for (const e of delivered) {
          const key = `${e.queue}/${e.messageId}`;
          assert.equal(e.deliveryCount, (lastCount.get(key) ?? 0) + 1, 'delivery counts go up by one');
          lastCount.set(key, e.deliveryCount);
          const limit = sm.queueStats(e.queue)?.deliveryLimit ?? 0;
          if (limit > 0) assert.ok(e.deliveryCount <= limit, `delivered ${e.deliveryCount} times, limit ${limit}`);
          if (e.deliveryCount === 1) {
            assert.ok(e.messageId > (lastFirst.get(e.queue) ?? 0), 'first deliveries in id order');
            lastFirst.set(e.queue, e.messageId);
          }
        }
        for (const e of events) {
          if (e.type === 'deadLettered' && e.reason === 'deliveryLimit') {
            assert.equal(lastCount.get(`${e.queue}/${e.messageId}`), sm.queueStats(e.queue)?.deliveryLimit, 'dead-lettered exactly at the limit');
          }
        }
        if (result.type === 'queueDeleted') {
          // A queue declared again under the same name numbers its messages from 1 again.
          lastFirst.delete(result.queue);
          for (const k of [...lastCount.keys()]) if (k.startsWith(`${result.queue}/`)) lastCount.delete(k);
        }
        checkInvariants(sm);
      });
    }), { numRuns: 400 });
  });

  it('continues identically after a snapshot restored at any point', () => {
    fc.assert(fc.property(scenario, fc.nat(), (cmds, cut) => {
      const k = cut % (cmds.length + 1);
      const a = new QueueStateMachine();
      const b = new QueueStateMachine();
      cmds.slice(0, k).forEach((cmd, i) => {
        run(a, cmd, i + 1);
        run(b, cmd, i + 1);
      });
      const snap = b.snapshot();
      const c = new QueueStateMachine();
      let restored = 0;
      c.on((e) => {
        if (e.type === 'restored') restored++;
      });
      c.restore(snap);
      assert.equal(restored, 1);
      assert.deepEqual(c.snapshot(), snap, 'snapshot(restore(s)) = s');
      for (let i = k; i < cmds.length; i++) {
        const cmd = cmds[i] as QueueCommand;
        assert.deepEqual(run(c, cmd, i + 1), run(a, cmd, i + 1), `command ${i} after the restore`);
      }
      assert.deepEqual(c.snapshot(), a.snapshot());
      checkInvariants(c);
    }), { numRuns: 300 });
  });
});

/** Conservation per queue, every held message held by one consumer only, no pushing consumer idle while messages wait, at most one exclusive consumer and then alone. */
function checkInvariants(sm: QueueStateMachine): void {
  for (const s of sm.stats()) {
    assert.equal(s.enqueued, s.ready + s.unacked + s.acked + s.deadLettered + s.dropped + s.purged, `conservation in ${s.queue}`);
    assert.equal(sm.readyIds(s.queue).length, s.ready);
    const ready = sm.readyIds(s.queue);
    assert.deepEqual(ready, [...ready].sort((x, y) => x - y), 'ready in id order');
    const held = new Set<number>();
    let unacked = 0;
    for (const c of sm.allConsumers().filter((x) => x.queue === s.queue)) {
      const f = sm.inFlight(c.consumerId);
      if (!c.getter) assert.ok(f.length <= c.prefetch, 'within prefetch');
      if (c.noAck) assert.equal(f.length, 0, 'a noAck consumer holds nothing');
      for (const d of f) {
        assert.ok(!held.has(d.messageId), `message ${d.messageId} held twice`);
        assert.ok(!ready.includes(d.messageId), `message ${d.messageId} both held and ready`);
        held.add(d.messageId);
        unacked++;
      }
    }
    assert.equal(unacked, s.unacked);
    const pushing = sm.allConsumers().filter((x) => x.queue === s.queue && !x.getter);
    assert.equal(pushing.length, s.consumers);
    if (pushing.some((c) => c.exclusive)) assert.equal(pushing.length, 1, 'an exclusive consumer is alone');
    // No consumer with credit while messages are ready.
    if (ready.length > 0) {
      for (const c of sm.allConsumers().filter((x) => x.queue === s.queue && !x.getter)) {
        assert.ok(!c.noAck && sm.inFlight(c.consumerId).length === c.prefetch, 'idle credit with ready messages');
      }
    }
  }
}
