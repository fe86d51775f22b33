// Model-based property tests of QueueStateMachine (fast-check): random command
// sequences over a few queues, consumers and nodes, applied through the codec,
// against a naive reference model (each queue a plain list of messages with a
// state each, ready ones delivered in id order) must agree on every result,
// every event and every queue's statistics. Checked too, after every step:
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
import type { DeadLetterOrigin, DeadLetterReason, QueueCommand, QueueEvent, QueueResult, QueueStats } from './types.js';

const rec: typeof fc.record = ((model: never) => fc.record(model, { noNullPrototype: true })) as typeof fc.record;

// ---- the reference model ----

interface MMessage {
  id: number;
  body: Uint8Array;
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
  cursor: number;
  enqueued: number;
  acked: number;
  deadLettered: number;
  dropped: number;
}
interface MConsumer {
  id: string;
  queue: string;
  node: string;
  prefetch: number;
  attachIndex: number;
  nextTag: number;
  held: { tag: number; id: number }[];
}

class Model {
  readonly queues = new Map<string, MQueue>();
  readonly consumers = new Map<string, MConsumer>();
  events: QueueEvent[] = [];

  apply(cmd: QueueCommand, index: number): QueueResult {
    this.events = [];
    const touched = new Set<string>();
    const r = this.exec(cmd, index, touched);
    for (const q of [...touched].sort()) this.assign(this.queues.get(q) as MQueue);
    return r;
  }

  private exec(cmd: QueueCommand, index: number, touched: Set<string>): QueueResult {
    const error = (e: Extract<QueueResult, { type: 'error' }>['error']): QueueResult => ({ type: 'error', error: e, message: '' });
    switch (cmd.type) {
      case 'declare': {
        if (cmd.deadLetterQueue === cmd.queue) return error('invalid');
        const q = this.queues.get(cmd.queue);
        if (q) return q.limit === cmd.deliveryLimit && q.dlq === cmd.deadLetterQueue ? { type: 'declared', queue: cmd.queue, created: false } : error('queueMismatch');
        this.queues.set(cmd.queue, { name: cmd.queue, limit: cmd.deliveryLimit, dlq: cmd.deadLetterQueue, msgs: [], consumers: [], cursor: 0, enqueued: 0, acked: 0, deadLettered: 0, dropped: 0 });
        return { type: 'declared', queue: cmd.queue, created: true };
      }
      case 'enqueue': {
        const q = this.queues.get(cmd.queue);
        if (!q) return error('queueNotFound');
        return { type: 'enqueued', queue: q.name, messageId: this.push(q, cmd.body, null, touched) };
      }
      case 'attach': {
        const q = this.queues.get(cmd.queue);
        if (!q) return error('queueNotFound');
        if (this.consumers.has(cmd.consumerId)) return error('consumerExists');
        this.consumers.set(cmd.consumerId, { id: cmd.consumerId, queue: q.name, node: cmd.node, prefetch: cmd.prefetch, attachIndex: index, nextTag: 1, held: [] });
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
      case 'nodeDown': {
        const gone = [...this.consumers.values()].filter((c) => c.node === cmd.node && c.attachIndex <= cmd.attachedUpTo).sort((a, b) => (a.id < b.id ? -1 : 1));
        let returned = 0;
        for (const c of gone) returned += this.remove(c, 'nodeDown', touched);
        return { type: 'nodeDown', node: cmd.node, consumers: gone.length, returned };
      }
    }
  }

  private push(q: MQueue, body: Uint8Array, origin: DeadLetterOrigin | null, touched: Set<string>): number {
    const id = q.enqueued + 1; // ids are 1, 2, ... and every enqueue counts
    q.msgs.push({ id, body, deliveries: 0, origin, state: 'ready' });
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
    const t = q.dlq === null ? undefined : this.queues.get(q.dlq);
    if (!t) {
      q.dropped++;
      this.events.push({ type: 'deadLettered', queue: q.name, messageId: m.id, reason, target: null });
      return;
    }
    q.deadLettered++;
    this.push(t, m.body, { queue: q.name, messageId: m.id, reason }, touched);
    this.events.push({ type: 'deadLettered', queue: q.name, messageId: m.id, reason, target: t.name });
  }

  private remove(c: MConsumer, reason: 'cancelled' | 'nodeDown', touched: Set<string>): number {
    const q = this.queues.get(c.queue) as MQueue;
    this.consumers.delete(c.id);
    const at = q.consumers.indexOf(c.id);
    q.consumers.splice(at, 1);
    if (at < q.cursor) q.cursor--;
    if (q.cursor >= q.consumers.length) q.cursor = 0;
    const held = [...c.held].sort((a, b) => a.tag - b.tag);
    for (const h of held) this.back(q, q.msgs.find((x) => x.id === h.id) as MMessage, touched);
    touched.add(q.name);
    this.events.push({ type: 'consumerRemoved', queue: q.name, consumerId: c.id, node: c.node, reason });
    return held.length;
  }

  private assign(q: MQueue): void {
    for (;;) {
      const ready = q.msgs.filter((m) => m.state === 'ready').sort((a, b) => a.id - b.id)[0];
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
      ready.state = 'held';
      ready.deliveries++;
      const tag = chosen.nextTag++;
      chosen.held.push({ tag, id: ready.id });
      this.events.push({
        type: 'delivered', queue: q.name, consumerId: chosen.id, node: chosen.node, deliveryTag: tag, messageId: ready.id, body: ready.body,
        deliveryCount: ready.deliveries, deadLetter: ready.origin,
      });
    }
  }

  stats(): QueueStats[] {
    return [...this.queues.values()].sort((a, b) => (a.name < b.name ? -1 : 1)).map((q) => ({
      queue: q.name, deliveryLimit: q.limit, deadLetterQueue: q.dlq,
      ready: q.msgs.filter((m) => m.state === 'ready').length, unacked: q.msgs.filter((m) => m.state === 'held').length,
      consumers: q.consumers.length, enqueued: q.enqueued, acked: q.acked, deadLettered: q.deadLettered, dropped: q.dropped,
    }));
  }
}

// ---- generators: a small universe, so that commands meet each other ----

const QUEUES = ['a', 'b', 'dlq'];
const CONSUMERS = ['c1', 'c2', 'c3', 'c4'];
const NODES = ['n1', 'n2', 'n3'];

const command: fc.Arbitrary<QueueCommand> = fc.oneof(
  { weight: 2, arbitrary: rec({ type: fc.constant('declare' as const), queue: fc.constantFrom(...QUEUES), deliveryLimit: fc.integer({ min: 0, max: 3 }), deadLetterQueue: fc.option(fc.constantFrom(...QUEUES), { nil: null }) }) },
  { weight: 6, arbitrary: rec({ type: fc.constant('enqueue' as const), queue: fc.constantFrom(...QUEUES), body: fc.uint8Array({ maxLength: 3 }) }) },
  { weight: 3, arbitrary: rec({ type: fc.constant('attach' as const), consumerId: fc.constantFrom(...CONSUMERS), queue: fc.constantFrom(...QUEUES), node: fc.constantFrom(...NODES), prefetch: fc.integer({ min: 1, max: 3 }) }) },
  { weight: 6, arbitrary: rec({ type: fc.constantFrom('settle' as const, 'return' as const, 'return' as const, 'discard' as const), consumerId: fc.constantFrom(...CONSUMERS), deliveryTags: fc.array(fc.integer({ min: 1, max: 8 }), { maxLength: 3 }) }) },
  { weight: 1, arbitrary: rec({ type: fc.constant('cancel' as const), consumerId: fc.constantFrom(...CONSUMERS) }) },
  { weight: 1, arbitrary: rec({ type: fc.constant('nodeDown' as const), node: fc.constantFrom(...NODES), attachedUpTo: fc.integer({ min: 0, max: 60 }) }) },
);

/** Sequences that start by declaring the queues (with a dead-letter chain), so that most commands do something. */
const scenario = fc.tuple(
  fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 3 }), fc.boolean(),
  fc.array(command, { minLength: 1, maxLength: 80, size: 'max' }),
).map(([limA, limB, dlqFirst, rest]) => {
  const declares: QueueCommand[] = [
    { type: 'declare', queue: 'a', deliveryLimit: limA, deadLetterQueue: 'dlq' },
    { type: 'declare', queue: 'b', deliveryLimit: limB, deadLetterQueue: null },
  ];
  const dlq: QueueCommand = { type: 'declare', queue: 'dlq', deliveryLimit: 0, deadLetterQueue: null };
  return dlqFirst ? [dlq, ...declares, ...rest] : [...declares, ...rest, dlq, ...rest];
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
        for (const e of events) {
          if (e.type === 'delivered') {
            const key = `${e.queue}/${e.messageId}`;
            assert.equal(e.deliveryCount, (lastCount.get(key) ?? 0) + 1, 'delivery counts go up by one');
            lastCount.set(key, e.deliveryCount);
            const limit = sm.queueStats(e.queue)?.deliveryLimit ?? 0;
            if (limit > 0) assert.ok(e.deliveryCount <= limit, `delivered ${e.deliveryCount} times, limit ${limit}`);
            if (e.deliveryCount === 1) {
              assert.ok(e.messageId > (lastFirst.get(e.queue) ?? 0), 'first deliveries in id order');
              lastFirst.set(e.queue, e.messageId);
            }
          } else if (e.type === 'deadLettered' && e.reason === 'deliveryLimit') {
            assert.equal(lastCount.get(`${e.queue}/${e.messageId}`), sm.queueStats(e.queue)?.deliveryLimit, 'dead-lettered exactly at the limit');
          }
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

/** Conservation per queue, and every held message held by one consumer only. */
function checkInvariants(sm: QueueStateMachine): void {
  for (const s of sm.stats()) {
    assert.equal(s.enqueued, s.ready + s.unacked + s.acked + s.deadLettered + s.dropped, `conservation in ${s.queue}`);
    assert.equal(sm.readyIds(s.queue).length, s.ready);
    const ready = sm.readyIds(s.queue);
    assert.deepEqual(ready, [...ready].sort((x, y) => x - y), 'ready in id order');
    const held = new Set<number>();
    let unacked = 0;
    for (const c of sm.allConsumers().filter((x) => x.queue === s.queue)) {
      const f = sm.inFlight(c.consumerId);
      assert.ok(f.length <= c.prefetch, 'within prefetch');
      for (const d of f) {
        assert.ok(!held.has(d.messageId), `message ${d.messageId} held twice`);
        assert.ok(!ready.includes(d.messageId), `message ${d.messageId} both held and ready`);
        held.add(d.messageId);
        unacked++;
      }
    }
    assert.equal(unacked, s.unacked);
    // No consumer with credit while messages are ready.
    if (ready.length > 0) {
      for (const c of sm.allConsumers().filter((x) => x.queue === s.queue)) assert.ok(sm.inFlight(c.consumerId).length === c.prefetch, 'idle credit with ready messages');
    }
  }
}
