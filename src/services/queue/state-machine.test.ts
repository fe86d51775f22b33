// QueueStateMachine by example: the behaviours of a RabbitMQ quorum queue
// one at a time (prefetch, round robin, ack, nack ahead of newer messages,
// the delivery limit and dead-lettering, cancel, node down), malformed input,
// and snapshots that must be refused.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeQueueCommand } from './codec.js';
import { ServiceStateMachine } from '../machine.js';
import { attachQueue, QueueSnapshotError, QueueStateMachine } from './state-machine.js';
import type { QueueCommand, QueueEvent, QueueResult } from './types.js';

const body = (s: string): Uint8Array => new TextEncoder().encode(s);
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
  /** Deliveries since the last call, as "consumer:tag:body:count". */
  deliveries(): string[] {
    const out = this.events.filter((e) => e.type === 'delivered').map((e) => `${e.consumerId}:${e.deliveryTag}:${text(e.body)}:${e.deliveryCount}`);
    this.events = [];
    return out;
  }
  publish(queue: string, ...bodies: string[]): void {
    for (const b of bodies) assert.equal(this.do({ type: 'enqueue', queue, body: body(b) }).type, 'enqueued');
  }
}

describe('QueueStateMachine', () => {
  it('declares idempotently, refuses different arguments and self dead-lettering', () => {
    const h = new Harness();
    assert.deepEqual(h.do({ type: 'declare', queue: 'q', deliveryLimit: 2, deadLetterQueue: 'd' }), { type: 'declared', queue: 'q', created: true, messageCount: 0, consumerCount: 0 });
    assert.deepEqual(h.do({ type: 'declare', queue: 'q', deliveryLimit: 2, deadLetterQueue: 'd' }), { type: 'declared', queue: 'q', created: false, messageCount: 0, consumerCount: 0 });
    assert.equal((h.do({ type: 'declare', queue: 'q', deliveryLimit: 3, deadLetterQueue: 'd' }) as { error: string }).error, 'queueMismatch');
    assert.equal((h.do({ type: 'declare', queue: 'x', deliveryLimit: 0, deadLetterQueue: 'x' }) as { error: string }).error, 'invalid');
    assert.equal((h.do({ type: 'enqueue', queue: 'nope', body: body('m') }) as { error: string }).error, 'queueNotFound');
  });

  it('delivers within prefetch, round robin, and refills credit on ack', () => {
    const h = new Harness();
    h.do({ type: 'declare', queue: 'q', deliveryLimit: 0, deadLetterQueue: null });
    h.publish('q', 'm1', 'm2', 'm3', 'm4', 'm5');
    h.do({ type: 'attach', consumerId: 'a', queue: 'q', node: 'n1', prefetch: 2, noAck: false, exclusive: false });
    assert.deepEqual(h.deliveries(), ['a:1:m1:1', 'a:2:m2:1']);
    h.do({ type: 'attach', consumerId: 'b', queue: 'q', node: 'n2', prefetch: 1, noAck: false, exclusive: false });
    assert.deepEqual(h.deliveries(), ['b:1:m3:1']);
    assert.deepEqual(h.do({ type: 'settle', consumerId: 'a', deliveryTags: [1, 1, 9] }), { type: 'settled', consumerId: 'a', count: 1, unknown: 2 });
    assert.deepEqual(h.deliveries(), ['a:3:m4:1']);
    h.do({ type: 'settle', consumerId: 'b', deliveryTags: [1] });
    assert.deepEqual(h.deliveries(), ['b:2:m5:1']);
    const s = h.sm.queueStats('q');
    assert.equal(s?.unacked, 3);
    assert.equal(s?.acked, 2);
    assert.equal(s?.ready, 0);
  });

  it('puts a returned message back ahead of newer ones, counting its deliveries', () => {
    const h = new Harness();
    h.do({ type: 'declare', queue: 'q', deliveryLimit: 0, deadLetterQueue: null });
    h.publish('q', 'm1', 'm2', 'm3');
    h.do({ type: 'attach', consumerId: 'a', queue: 'q', node: 'n1', prefetch: 1, noAck: false, exclusive: false });
    assert.deepEqual(h.deliveries(), ['a:1:m1:1']);
    h.do({ type: 'return', consumerId: 'a', deliveryTags: [1] });
    assert.deepEqual(h.deliveries(), ['a:2:m1:2']);
    h.do({ type: 'settle', consumerId: 'a', deliveryTags: [2] });
    assert.deepEqual(h.deliveries(), ['a:3:m2:1']);
  });

  it('dead-letters after the limit-th delivery comes back, with its origin; drops and counts without a dead-letter queue', () => {
    const h = new Harness();
    h.do({ type: 'declare', queue: 'dlq', deliveryLimit: 0, deadLetterQueue: null });
    h.do({ type: 'declare', queue: 'q', deliveryLimit: 2, deadLetterQueue: 'dlq' });
    h.do({ type: 'declare', queue: 'p', deliveryLimit: 1, deadLetterQueue: null });
    h.publish('q', 'poison');
    h.do({ type: 'attach', consumerId: 'a', queue: 'q', node: 'n1', prefetch: 5, noAck: false, exclusive: false });
    h.do({ type: 'return', consumerId: 'a', deliveryTags: [1] });
    assert.deepEqual(h.deliveries(), ['a:1:poison:1', 'a:2:poison:2']);
    h.do({ type: 'return', consumerId: 'a', deliveryTags: [2] });
    const dead = h.events.find((e) => e.type === 'deadLettered');
    assert.deepEqual(dead, { type: 'deadLettered', queue: 'q', messageId: 1, reason: 'deliveryLimit', target: 'dlq', targets: ['dlq'] });
    assert.deepEqual(h.deliveries(), []);
    h.do({ type: 'attach', consumerId: 'd', queue: 'dlq', node: 'n1', prefetch: 5, noAck: false, exclusive: false });
    const got = h.events.find((e) => e.type === 'delivered');
    assert.deepEqual(got?.type === 'delivered' ? got.deadLetter : null, { queue: 'q', messageId: 1, reason: 'deliveryLimit' });
    h.events = [];
    h.publish('p', 'x');
    h.do({ type: 'attach', consumerId: 'e', queue: 'p', node: 'n1', prefetch: 5, noAck: false, exclusive: false });
    h.do({ type: 'discard', consumerId: 'e', deliveryTags: [1] });
    assert.deepEqual(h.events.filter((e) => e.type === 'deadLettered'), [{ type: 'deadLettered', queue: 'p', messageId: 1, reason: 'rejected', target: null, targets: [] }]);
    assert.equal(h.sm.queueStats('p')?.dropped, 1);
    assert.equal(h.sm.queueStats('q')?.deadLettered, 1);
    assert.equal(h.sm.queueStats('dlq')?.enqueued, 1);
  });

  it('gives back what a cancelled consumer or a down node held, and spares consumers attached after the cut', () => {
    const h = new Harness();
    h.do({ type: 'declare', queue: 'q', deliveryLimit: 0, deadLetterQueue: null });
    h.publish('q', 'm1', 'm2', 'm3');
    h.do({ type: 'attach', consumerId: 'a', queue: 'q', node: 'n1', prefetch: 2, noAck: false, exclusive: false }); // index 5
    const cut = h.index;
    h.do({ type: 'attach', consumerId: 'b', queue: 'q', node: 'n1', prefetch: 2, noAck: false, exclusive: false }); // index 6
    assert.deepEqual(h.deliveries(), ['a:1:m1:1', 'a:2:m2:1', 'b:1:m3:1']);
    assert.deepEqual(h.do({ type: 'nodeDown', node: 'n1', attachedUpTo: cut }), { type: 'nodeDown', node: 'n1', consumers: 1, returned: 2 });
    assert.deepEqual(h.events.filter((e) => e.type === 'consumerRemoved').map((e) => e.type === 'consumerRemoved' && e.reason), ['nodeDown']);
    assert.deepEqual(h.deliveries(), ['b:2:m1:2']);
    assert.deepEqual(h.do({ type: 'cancel', consumerId: 'b' }), { type: 'cancelled', consumerId: 'b', returned: 2 });
    assert.deepEqual(h.sm.readyIds('q'), [1, 2, 3]);
    assert.equal((h.do({ type: 'settle', consumerId: 'b', deliveryTags: [1] }) as { error: string }).error, 'consumerNotFound');
    assert.equal((h.do({ type: 'cancel', consumerId: 'b' }) as { error: string }).error, 'consumerNotFound');
    h.do({ type: 'attach', consumerId: 'c', queue: 'q', node: 'n2', prefetch: 1, noAck: false, exclusive: false });
    assert.equal((h.do({ type: 'attach', consumerId: 'c', queue: 'q', node: 'n2', prefetch: 1, noAck: false, exclusive: false }) as { error: string }).error, 'consumerExists');
  });

  it('answers malformed commands alike everywhere and survives a throwing listener', () => {
    const h = new Harness();
    const r = h.sm.apply(new Uint8Array([1, 200]), 1);
    assert.equal(r.type, 'error');
    assert.equal((r as { error: string }).error, 'malformed');
    h.sm.on(() => {
      throw new Error('listener bug');
    });
    h.do({ type: 'declare', queue: 'q', deliveryLimit: 0, deadLetterQueue: null });
    h.do({ type: 'attach', consumerId: 'a', queue: 'q', node: 'n1', prefetch: 1, noAck: false, exclusive: false });
    h.publish('q', 'm');
    assert.equal(h.sm.listenerErrors, 1);
    assert.deepEqual(h.deliveries(), ['a:1:m:1']);
  });

  it('refuses malformed and impossible snapshots without changing its state', () => {
    const h = new Harness();
    h.do({ type: 'declare', queue: 'q', deliveryLimit: 0, deadLetterQueue: null });
    h.publish('q', 'm1', 'm2');
    h.do({ type: 'attach', consumerId: 'a', queue: 'q', node: 'n1', prefetch: 1, noAck: false, exclusive: false });
    const good = h.sm.snapshot();
    const before = h.sm.snapshot();
    for (let cut = 0; cut < good.length; cut++) {
      assert.throws(() => h.sm.restore(good.subarray(0, cut)), QueueSnapshotError);
    }
    // Every single-byte change is either refused or gives a state that snapshots back to the same bytes.
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
    assert.deepEqual(h.sm.snapshot(), before);
    const fresh = new QueueStateMachine();
    fresh.restore(good);
    assert.deepEqual(fresh.inFlight('a').map((d) => d.messageId), [1]);
  });

  it('attaches to the queue machine a node already runs, or registers one', () => {
    const services = new ServiceStateMachine();
    const m = attachQueue(services);
    assert.equal(services.service('queue'), m);
    assert.equal(attachQueue(services), m);
  });
});
