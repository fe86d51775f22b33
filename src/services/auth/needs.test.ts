// What quorum queue and metadata log commands need of the auth service
// (needs.ts), and the auth gate's checks of them where they apply: a denied
// command is refused and changes nothing, an allowed one applies. A gate
// planted with a queue check that allows everything lets a denied publish
// through, which the same assertions catch.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KvStateMachine } from '../kv/state-machine.js';
import { encodeServiceCommand, ServiceStateMachine, stampCommand } from '../machine.js';
import { metadataCommand } from '../metadata/prepare.js';
import { MetadataStateMachine } from '../metadata/state-machine.js';
import { encodeQueueCommand } from '../queue/codec.js';
import { QueueStateMachine } from '../queue/state-machine.js';
import type { QueueCommand } from '../queue/types.js';
import { encodeAuthCommand, SYSTEM_STAMP, type AuthStamp } from './codec.js';
import { AuthGate, type ApplyCheck } from './gate.js';
import {
  allowed, kvApplyCheck, METADATA_LOG_KEY, METADATA_LOG_RANGE_END, metadataApplyCheck, metadataNeeds, queueApplyCheck, queueCommandNeeds, type Need, type Needs,
} from './needs.js';
import { AuthStateMachine } from './state-machine.js';
import { isAuthDenied, type AuthCommand, type Permission, type PermissionResource, type PermissionType } from './types.js';

const enc = new TextEncoder();
const dec = new TextDecoder();
const b = (s: string): Uint8Array => enc.encode(s);
const prefixEnd = (s: string): Uint8Array => {
  const e = b(s);
  e[e.length - 1] = (e[e.length - 1] as number) + 1;
  return e;
};
const perm = (resource: PermissionResource, type: PermissionType, key: Uint8Array, rangeEnd: Uint8Array): Permission => ({ resource, type, key, rangeEnd });
const WHOLE_LOG = { key: METADATA_LOG_KEY, rangeEnd: METADATA_LOG_RANGE_END };

/** Needs as readable tuples: [resource, access, key, rangeEnd]. */
const show = (n: Needs): unknown => (n === 'root' ? 'root' : n.map((x: Need) => [x.resource, x.access, dec.decode(x.key), dec.decode(x.rangeEnd)]));

describe('queueCommandNeeds', () => {
  const consumers = new Map([['c1', 'orders.new']]);
  const needs = (cmd: QueueCommand): unknown => show(queueCommandNeeds(cmd, (id) => consumers.get(id)));
  it('declare: WRITE on the queue, and on its dead-letter queue', () => {
    assert.deepEqual(needs({ type: 'declare', queue: 'orders.new', deliveryLimit: 0, deadLetterQueue: null }), [['queue', 'write', 'orders.new', '']]);
    assert.deepEqual(needs({ type: 'declare', queue: 'orders.new', deliveryLimit: 3, deadLetterQueue: 'orders.dead' }),
      [['queue', 'write', 'orders.new', ''], ['queue', 'write', 'orders.dead', '']]);
  });
  it('enqueue: WRITE; attach: READ', () => {
    assert.deepEqual(needs({ type: 'enqueue', queue: 'q', body: b('x') }), [['queue', 'write', 'q', '']]);
    assert.deepEqual(needs({ type: 'attach', queue: 'q', consumerId: 'c9', node: 'n1', prefetch: 1, noAck: false, exclusive: false }), [['queue', 'read', 'q', '']]);
  });
  it("settle, return, discard and cancel: READ on the consumer's queue; an unknown consumer needs nothing (the machine refuses it)", () => {
    for (const type of ['settle', 'return', 'discard'] as const) {
      assert.deepEqual(needs({ type, consumerId: 'c1', deliveryTags: [1] }), [['queue', 'read', 'orders.new', '']]);
      assert.deepEqual(needs({ type, consumerId: 'ghost', deliveryTags: [1] }), []);
    }
    assert.deepEqual(needs({ type: 'cancel', consumerId: 'c1' }), [['queue', 'read', 'orders.new', '']]);
    assert.deepEqual(needs({ type: 'cancel', consumerId: 'ghost' }), []);
  });
  it('AMQP commands: exchanges share the queue namespace', () => {
    assert.deepEqual(needs({ type: 'exchangeDeclare', exchange: 'orders.x', kind: 'topic', durable: true, autoDelete: false, internal: false, passive: false }),
      [['queue', 'write', 'orders.x', '']]);
    assert.deepEqual(needs({ type: 'exchangeDelete', exchange: 'orders.x', ifUnused: false }), [['queue', 'write', 'orders.x', '']]);
    for (const type of ['bind', 'unbind'] as const) {
      assert.deepEqual(needs({ type, queue: 'orders.new', exchange: 'amq.topic', routingKey: '#', arguments: null }),
        [['queue', 'write', 'orders.new', ''], ['queue', 'read', 'amq.topic', '']]);
    }
    const publish = (exchange: string, routingKey: string): QueueCommand => ({ type: 'publish', exchange, routingKey, mandatory: false, properties: null, headers: [], body: b('') });
    assert.deepEqual(needs(publish('orders.x', 'anything')), [['queue', 'write', 'orders.x', '']]);
    assert.deepEqual(needs(publish('', 'orders.new')), [['queue', 'write', 'orders.new', '']], 'the default exchange: WRITE on the queue the key names');
    const dq = (deadLetterExchange: string | null, deadLetterRoutingKey: string | null): QueueCommand =>
      ({ type: 'declareQueue', queue: 'orders.new', durable: true, passive: false, deliveryLimit: 0, deadLetterExchange, deadLetterRoutingKey });
    assert.deepEqual(needs(dq(null, 'ignored')), [['queue', 'write', 'orders.new', '']]);
    assert.deepEqual(needs(dq('orders.dlx', null)), [['queue', 'write', 'orders.new', ''], ['queue', 'write', 'orders.dlx', '']]);
    assert.deepEqual(needs(dq('', 'orders.dead')), [['queue', 'write', 'orders.new', ''], ['queue', 'write', 'orders.dead', '']]);
    assert.deepEqual(needs(dq('', null)), [['queue', 'write', 'orders.new', ''], ['queue', 'write', '', '']]);
    assert.deepEqual(needs({ type: 'deleteQueue', queue: 'q', ifUnused: false, ifEmpty: false }), [['queue', 'write', 'q', '']]);
    assert.deepEqual(needs({ type: 'purge', queue: 'q' }), [['queue', 'write', 'q', '']]);
    assert.deepEqual(needs({ type: 'dequeue', queue: 'q', consumerId: 'g', node: 'n1', noAck: true }), [['queue', 'read', 'q', '']]);
  });
  it('nodeDown is the cluster\'s own: root', () => {
    assert.equal(needs({ type: 'nodeDown', node: 'n1', attachedUpTo: 5 }), 'root');
  });
  it('metadataNeeds: READ or WRITE on the whole log', () => {
    assert.deepEqual(show(metadataNeeds('read')), [['metadata', 'read', '\u0000', '\u0000']]);
    assert.deepEqual(show(metadataNeeds('write')), [['metadata', 'write', '\u0000', '\u0000']]);
  });
});

/**
 * A node's services behind the gate: kv, queue, metadata, auth; users root,
 * pub (WRITE on queues orders.*, WRITE on the whole metadata log), sub (READ on
 * queues orders.*, READ on the log) and narrow (metadata WRITE on a part of the
 * key space only). `queueCheck` replaces the real queue check (planted bugs).
 */
function node(queueCheck?: (auth: AuthStateMachine, q: QueueStateMachine) => ApplyCheck) {
  const auth = new AuthStateMachine();
  const kv = new KvStateMachine();
  const queue = new QueueStateMachine();
  const metadata = new MetadataStateMachine();
  const gate = new AuthGate(auth, {
    kv: kvApplyCheck(auth, kv.store),
    queue: (queueCheck ?? queueApplyCheck)(auth, queue),
    metadata: metadataApplyCheck(auth),
  });
  const mux = new ServiceStateMachine().register('kv', kv).register('queue', queue).register('metadata', metadata).register('auth', auth).setGate(gate);
  let index = 0;
  /** An auth change: unstamped before auth is on, as root's after. */
  const a = (cmd: AuthCommand): void => {
    const bytes = encodeServiceCommand('auth', encodeAuthCommand(cmd));
    const r = mux.apply(auth.enabled ? stampCommand({ kind: 'user', user: 'root', revision: auth.revision }, bytes) : bytes, ++index) as { type: string; message?: string };
    assert.equal(r.type, 'ok', r.message);
  };
  const users: [string, string, Permission[]][] = [
    ['pub', 'publisher', [perm('queue', 'write', b('orders.'), prefixEnd('orders.')), perm('metadata', 'write', WHOLE_LOG.key, WHOLE_LOG.rangeEnd)]],
    ['sub', 'consumer', [perm('queue', 'read', b('orders.'), prefixEnd('orders.')), perm('metadata', 'read', WHOLE_LOG.key, WHOLE_LOG.rangeEnd)]],
    ['narrow', 'narrow', [perm('metadata', 'readwrite', b('topic/'), prefixEnd('topic/'))]],
  ];
  a({ type: 'userAdd', name: 'root', passwordHash: 'h' });
  a({ type: 'roleAdd', name: 'root' });
  a({ type: 'userGrantRole', user: 'root', role: 'root' });
  for (const [user, role, perms] of users) {
    a({ type: 'userAdd', name: user, passwordHash: 'h' });
    a({ type: 'roleAdd', name: role });
    for (const p of perms) a({ type: 'roleGrantPermission', role, permission: p });
    a({ type: 'userGrantRole', user, role });
  }
  a({ type: 'enable', tokenKey: new Uint8Array(32).fill(1) });
  const as = (user: string): AuthStamp => ({ kind: 'user', user, revision: auth.revision });
  const q = (stamp: AuthStamp, cmd: QueueCommand): unknown => mux.apply(stampCommand(stamp, encodeServiceCommand('queue', encodeQueueCommand(cmd))), ++index);
  const md = (stamp: AuthStamp, name: string): unknown =>
    mux.apply(stampCommand(stamp, metadataCommand({ type: 'createTopic', name, partitions: 1, configs: [] })), ++index);
  return { auth, queue, metadata, gate, as, q, md, a };
}

const denied = (r: unknown): void => assert.ok(isAuthDenied(r) && r.error === 'permissionDenied', `refused as permissionDenied: ${JSON.stringify(r)}`);
const applied = (r: unknown, type: string): void => assert.equal((r as { type: string }).type, type, JSON.stringify(r));

describe('the auth gate on queue and metadata commands', () => {
  it('checks the AMQP commands where they apply: exchanges under the granted prefix only', () => {
    const { queue, as, q } = node();
    applied(q(as('root'), { type: 'declare', queue: 'orders.new', deliveryLimit: 0, deadLetterQueue: null }), 'declared');
    applied(q(as('root'), { type: 'declare', queue: 'billing', deliveryLimit: 0, deadLetterQueue: null }), 'declared');
    const xd = (exchange: string): QueueCommand => ({ type: 'exchangeDeclare', exchange, kind: 'fanout', durable: true, autoDelete: false, internal: false, passive: false });
    const pub = (exchange: string, routingKey: string): QueueCommand => ({ type: 'publish', exchange, routingKey, mandatory: false, properties: null, headers: [], body: b('m') });
    applied(q(as('pub'), xd('orders.fan')), 'exchangeDeclared');
    denied(q(as('pub'), xd('billing.fan')));
    // Binding needs WRITE on the queue and READ on the exchange: neither role alone has both.
    denied(q(as('pub'), { type: 'bind', queue: 'orders.new', exchange: 'orders.fan', routingKey: '', arguments: null }));
    denied(q(as('sub'), { type: 'bind', queue: 'orders.new', exchange: 'orders.fan', routingKey: '', arguments: null }));
    applied(q(as('root'), { type: 'bind', queue: 'orders.new', exchange: 'orders.fan', routingKey: '', arguments: null }), 'bound');
    applied(q(as('pub'), pub('orders.fan', 'whatever')), 'published');
    applied(q(as('pub'), pub('', 'orders.new')), 'published');
    denied(q(as('pub'), pub('', 'billing')));
    denied(q(as('pub'), pub('amq.fanout', 'orders.new')));
    denied(q(as('pub'), { type: 'declareQueue', queue: 'orders.q', durable: true, passive: false, deliveryLimit: 0, deadLetterExchange: 'billing.dlx', deadLetterRoutingKey: null }));
    denied(q(as('sub'), { type: 'purge', queue: 'orders.new' }));
    denied(q(as('pub'), { type: 'dequeue', queue: 'orders.new', consumerId: 'g', node: 'n1', noAck: true }));
    assert.equal(queue.queueStats('orders.new')?.ready, 2);
    applied(q(as('sub'), { type: 'dequeue', queue: 'orders.new', consumerId: 'g', node: 'n1', noAck: true }), 'dequeued');
    applied(q(as('pub'), { type: 'purge', queue: 'orders.new' }), 'purged');
    denied(q(as('pub'), { type: 'deleteQueue', queue: 'billing', ifUnused: false, ifEmpty: false }));
    applied(q(as('pub'), { type: 'deleteQueue', queue: 'orders.new', ifUnused: false, ifEmpty: false }), 'queueDeleted');
    assert.deepEqual(queue.stats().map((x) => x.queue), ['billing']);
  });

  it('allows what the roles grant; refuses the rest, which changes nothing', () => {
    const { queue, metadata, as, q, md } = node();
    applied(q(as('root'), { type: 'declare', queue: 'orders.new', deliveryLimit: 0, deadLetterQueue: null }), 'declared');
    applied(q(as('root'), { type: 'declare', queue: 'billing', deliveryLimit: 0, deadLetterQueue: null }), 'declared');

    // The publisher declares and publishes under orders., nowhere else, and may not consume.
    applied(q(as('pub'), { type: 'declare', queue: 'orders.paid', deliveryLimit: 2, deadLetterQueue: 'orders.dead' }), 'declared');
    applied(q(as('pub'), { type: 'enqueue', queue: 'orders.new', body: b('m1') }), 'enqueued');
    const before = JSON.stringify(queue.stats());
    denied(q(as('pub'), { type: 'enqueue', queue: 'billing', body: b('x') }));
    denied(q(as('pub'), { type: 'declare', queue: 'billing.x', deliveryLimit: 0, deadLetterQueue: null }));
    denied(q(as('pub'), { type: 'declare', queue: 'orders.x', deliveryLimit: 1, deadLetterQueue: 'billing' })); // its dead letters would flow out of orders.*
    denied(q(as('pub'), { type: 'attach', queue: 'orders.new', consumerId: 'p1', node: 'n1', prefetch: 1, noAck: false, exclusive: false }));
    // The consumer consumes under orders., and may not publish or declare.
    denied(q(as('sub'), { type: 'enqueue', queue: 'orders.new', body: b('x') }));
    denied(q(as('sub'), { type: 'declare', queue: 'orders.y', deliveryLimit: 0, deadLetterQueue: null }));
    denied(q(as('sub'), { type: 'attach', queue: 'billing', consumerId: 's0', node: 'n1', prefetch: 1, noAck: false, exclusive: false }));
    denied(q(as('sub'), { type: 'nodeDown', node: 'n1', attachedUpTo: 100 }));
    assert.equal(JSON.stringify(queue.stats()), before, 'no refused command changed the queues');
    assert.equal(queue.consumer('p1'), undefined);

    applied(q(as('sub'), { type: 'attach', queue: 'orders.new', consumerId: 's1', node: 'n1', prefetch: 1, noAck: false, exclusive: false }), 'attached');
    assert.deepEqual(queue.inFlight('s1').map((f) => dec.decode(f.body)), ['m1']);
    // Settling needs READ on the consumer's queue: the publisher may not ack, nack or cancel the consumer's deliveries.
    for (const type of ['settle', 'return', 'discard'] as const) denied(q(as('pub'), { type, consumerId: 's1', deliveryTags: [1] }));
    denied(q(as('pub'), { type: 'cancel', consumerId: 's1' }));
    assert.deepEqual(queue.inFlight('s1').map((f) => f.deliveryTag), [1], 'the delivery is still held');
    // An unknown consumer needs nothing: the queue machine refuses it.
    applied(q(as('pub'), { type: 'settle', consumerId: 'ghost', deliveryTags: [1] }), 'error');
    applied(q(as('sub'), { type: 'settle', consumerId: 's1', deliveryTags: [1] }), 'settled');
    assert.equal(queue.queueStats('orders.new')?.acked, 1);
    // The cluster's own commands pass.
    applied(nodeDownAs(q, SYSTEM_STAMP), 'nodeDown');

    // The metadata log: WRITE on the whole log appends; READ, or WRITE on a part of the key space, does not.
    applied(md(as('pub'), 'orders'), 'accepted');
    const offset = metadata.image.offset;
    denied(md(as('sub'), 'payments'));
    denied(md(as('narrow'), 'topic'));
    assert.equal(metadata.image.offset, offset, 'no refused record was appended');
    assert.equal(metadata.image.topics.size, 1);
  });

  it('judges a settle against the consumer as the state holds it when it applies', () => {
    const { as, q, a, queue } = node();
    applied(q(as('root'), { type: 'declare', queue: 'orders.new', deliveryLimit: 0, deadLetterQueue: null }), 'declared');
    applied(q(as('root'), { type: 'enqueue', queue: 'orders.new', body: b('m') }), 'enqueued');
    applied(q(as('sub'), { type: 'attach', queue: 'orders.new', consumerId: 's1', node: 'n1', prefetch: 1, noAck: false, exclusive: false }), 'attached');
    a({ type: 'userRevokeRole', user: 'sub', role: 'consumer' }); // READ taken away: the consumer can no longer ack
    denied(q(as('sub'), { type: 'settle', consumerId: 's1', deliveryTags: [1] }));
    assert.equal(queue.queueStats('orders.new')?.acked, 0);
  });

  it('planted bug: a gate whose queue check lets everything through lets a denied publish apply (caught)', () => {
    const real = node();
    const planted = node(() => () => true);
    for (const n of [real, planted]) applied(n.q(n.as('root'), { type: 'declare', queue: 'billing', deliveryLimit: 0, deadLetterQueue: null }), 'declared');
    const publishBySub = (n: ReturnType<typeof node>): number => {
      n.q(n.as('sub'), { type: 'enqueue', queue: 'billing', body: b('x') });
      return n.queue.queueStats('billing')?.enqueued ?? -1;
    };
    assert.equal(publishBySub(real), 0, 'the real gate refuses it');
    assert.equal(publishBySub(planted), 1, 'the planted gate lets it apply: the assertion above would fail');
  });

  it('allowed() agrees: a metadata grant narrower than the whole log grants nothing', () => {
    const { auth } = node();
    assert.equal(allowed(auth, 'narrow', metadataNeeds('write')), false);
    assert.equal(allowed(auth, 'pub', metadataNeeds('write')), true);
    assert.equal(allowed(auth, 'pub', metadataNeeds('read')), false);
    assert.equal(allowed(auth, 'sub', metadataNeeds('read')), true);
  });
});

/** nodeDown stamped as `stamp` through `q`. */
function nodeDownAs(q: (stamp: AuthStamp, cmd: QueueCommand) => unknown, stamp: AuthStamp): unknown {
  return q(stamp, { type: 'nodeDown', node: 'n1', attachedUpTo: Number.MAX_SAFE_INTEGER });
}
