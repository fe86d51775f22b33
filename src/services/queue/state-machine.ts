// The quorum queue service's replicated state machine (RabbitMQ's
// rabbit_fifo, in our terms, plus the AMQP 0-9-1 exchanges and bindings in
// front of it): named FIFO queues, consumers with a prefetch limit,
// deliveries assigned at apply time, acks, returns, dead-lettering, and the
// exchanges that route publishes to queues. Every replica applying the same
// commands reaches the same state and emits the same events; the node that
// serves a consumer turns its 'delivered' events into messages on the
// consumer's stream (src/server/queue, and the AMQP listener).
//
// The model, per queue:
// - Message ids are 1, 2, 3, ... in enqueue order. A message is in exactly
//   one of: never delivered (ids in [firstUndelivered, nextMessageId)),
//   returned and waiting (`returned`, sorted by id), in flight to exactly
//   one consumer (held), or gone (acked, dead-lettered, dropped or purged).
// - Ready messages go out in id order: returned ones first (every returned
//   id is below firstUndelivered, since deliveries from the never-delivered
//   range go in id order), so a returned message goes back ahead of newer
//   ones, and first deliveries happen in id order. basic.get (dequeue) takes
//   the same next ready message.
// - Assignment: whenever a queue has ready messages and a consumer with
//   credit (in flight < prefetch; a noAck consumer always has credit, since
//   what it is sent is gone at once), the next ready message goes to the
//   next consumer with credit in round-robin order from a cursor over the
//   consumers in attach order; repeated until one side runs out. Getters
//   (consumers made by dequeue) are not in the round robin.
// - A message that comes back (return, cancel, node down) after its
//   deliveryLimit-th delivery is dead-lettered (reason 'deliveryLimit')
//   instead of requeued; a discarded one is dead-lettered at once ('rejected').
//   Dead-lettering adds a death to the message's history (x-death), routes it
//   through the queue's dead-letter exchange with the dead-letter routing key
//   (or its own routing key) and enqueues a copy in every queue it reaches,
//   except those RabbitMQ's cycle rule cuts (routing.ts isDeadLetterCycle);
//   when it reaches none, it is dropped and counted. No apply can loop: a
//   dead-lettered copy is enqueued as a new ready message, and only a later
//   command (a return or discard) can make it die again.
//
// Exchanges: the default exchange '' is implicit (every queue is bound to it
// by its own name; it can be published to, but not declared, deleted or
// bound: 'accessRefused'); amq.direct, amq.fanout, amq.topic, amq.headers
// and amq.match always exist. A binding is (exchange, queue, routing key,
// arguments); deleting a queue removes its bindings, and an auto-delete
// exchange goes with its last binding. A publish is routed when it applies
// and enqueued once in each queue it reaches, in queue name order.
//
// Determinism: nothing here reads a clock or randomness; every iteration
// whose order matters is over a sorted list or a stored order (the snapshot
// stores the consumers' service order and the cursor), never over a Map
// whose insertion order a restore could change.

import type { LogIndex } from '../../protocol/ids.js';
import { assertNever } from '../../util/assert.js';
import { ByteReader, ByteWriter } from '../kv/codec.js';
import type { ServiceMachine, ServiceStateMachine } from '../machine.js';
import {
  decodeQueueCommand, EXCHANGE_KINDS, readHeaderMatch, readHeaders, readProperties, readQueueString, readShortString, writeHeaderMatch, writeHeaders,
  writeProperties, writeQueueString, writeShortString,
} from './codec.js';
import { addDeath, canonicalMatch, headersMatch, isDeadLetterCycle, topicMatchWords, topicWords } from './routing.js';
import {
  QUEUE_LIMITS,
  type BindCommand,
  type ConsumerInfo,
  type ConsumerRemovedReason,
  type DeadLetterOrigin,
  type DeadLetterReason,
  type Death,
  type DeathReason,
  type DeclareQueueCommand,
  type Dequeued,
  type ExchangeDeclareCommand,
  type ExchangeKind,
  type Header,
  type HeaderMatch,
  type InFlight,
  type MessageProperties,
  type QueueCommand,
  type QueueErrorCode,
  type QueueEvent,
  type QueueResult,
  type QueueStats,
} from './types.js';

/** A snapshot that is malformed or describes an impossible state. */
export class QueueSnapshotError extends Error {
  override readonly name = 'QueueSnapshotError';
}

/** A listener of {@link QueueEvent}s. */
export type QueueListener = (event: QueueEvent) => void;

/** What a message carries besides its place in its queue (shared by the copies a publish or a dead-lettering makes). */
interface Content {
  readonly body: Uint8Array;
  readonly properties: MessageProperties | null;
  readonly exchange: string;
  readonly routingKey: string;
  /** For headers-exchange routing when it is dead-lettered. */
  readonly headers: readonly Header[];
  readonly deaths: readonly Death[];
  readonly deadLetter: DeadLetterOrigin | null;
}

interface Message extends Content {
  readonly id: number;
  /** Deliveries so far. */
  deliveries: number;
  /** The consumer holding it, or null when it is not in flight. */
  holder: string | null;
}

/**
 * Invariants: see the header; `consumers` lists the ids of this queue's
 * pushing consumers in attach order, `getters` its getters in creation
 * order; 0 <= cursor < max(1, consumers.length); at most one consumer is
 * exclusive, and then it is the only one.
 */
interface Queue {
  readonly name: string;
  readonly durable: boolean;
  readonly deliveryLimit: number;
  readonly deadLetterExchange: string | null;
  readonly deadLetterRoutingKey: string | null;
  nextMessageId: number;
  firstUndelivered: number;
  /** Every message not yet gone, by id. */
  readonly messages: Map<number, Message>;
  /** Returned messages waiting, ids ascending. */
  returned: number[];
  consumers: string[];
  getters: string[];
  cursor: number;
  enqueued: number;
  acked: number;
  deadLettered: number;
  dropped: number;
  purged: number;
}

/** Invariant: inFlight holds tag → message id for every message this consumer holds, tags ascending; size <= prefetch (unless a getter); empty when noAck. */
interface Consumer {
  readonly id: string;
  readonly queue: string;
  readonly node: string;
  /** 0 for a getter. */
  readonly prefetch: number;
  readonly attachIndex: number;
  readonly noAck: boolean;
  readonly exclusive: boolean;
  readonly getter: boolean;
  nextTag: number;
  readonly inFlight: Map<number, number>;
}

/** A binding of a queue to an exchange. Invariant: `arguments` is canonical (routing.ts canonicalMatch); `words` = topicWords(routingKey). */
interface Binding {
  readonly queue: string;
  readonly routingKey: string;
  readonly arguments: HeaderMatch | null;
  readonly words: readonly string[];
}

/** Invariant: every binding's queue exists; `bindings` keys are bindingKey() of their binding. */
interface Exchange {
  readonly name: string;
  readonly kind: ExchangeKind;
  readonly durable: boolean;
  readonly autoDelete: boolean;
  readonly internal: boolean;
  readonly bindings: Map<string, Binding>;
}

const SNAPSHOT_MAGIC = new Uint8Array([0x51, 0x51, 0x55, 0x45]); // "QQUE"
const SNAPSHOT_VERSION = 2;
const REASONS: readonly DeadLetterReason[] = ['deliveryLimit', 'rejected'];
const DEATH_REASONS: readonly DeathReason[] = ['rejected', 'delivery_limit', 'expired', 'maxlen'];
/** The exchanges every vhost has (durable, not auto-delete, not internal): they cannot be deleted. */
const PREDECLARED: ReadonlyMap<string, ExchangeKind> = new Map<string, ExchangeKind>([
  ['amq.direct', 'direct'], ['amq.fanout', 'fanout'], ['amq.headers', 'headers'], ['amq.match', 'headers'], ['amq.topic', 'topic'],
]);

const byString = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
const DEFAULT_EXCHANGE_REFUSAL = 'operation not permitted on the default exchange';
const rq = (name: string): string => `queue '${name}' in vhost '/'`;
const rx = (name: string): string => `exchange '${name}' in vhost '/'`;

/** A binding's identity within its exchange: unambiguous (lengths prefixed) and the same for equal bindings. */
function bindingKey(queue: string, routingKey: string, args: HeaderMatch | null): string {
  let a = '-';
  if (args !== null) {
    const w = new ByteWriter();
    writeHeaderMatch(w, args);
    a = Buffer.from(w.finish()).toString('latin1');
  }
  return `${queue.length}:${queue}${routingKey.length}:${routingKey}${a}`;
}

function predeclared(): Map<string, Exchange> {
  const out = new Map<string, Exchange>();
  for (const [name, kind] of PREDECLARED) out.set(name, { name, kind, durable: true, autoDelete: false, internal: false, bindings: new Map() });
  return out;
}

/** The quorum queues (and exchanges) of one replica. */
export class QueueStateMachine implements ServiceMachine {
  private queues = new Map<string, Queue>();
  private consumers = new Map<string, Consumer>();
  private exchanges = predeclared();
  private readonly listeners = new Set<QueueListener>();
  /** Events of the command being applied, emitted once it is done. */
  private pending: QueueEvent[] = [];
  /** Queues whose assignment must run before the command ends. */
  private touched = new Set<string>();
  /** Listener exceptions swallowed (a listener must not break apply). */
  listenerErrors = 0;

  /** Adds a listener of events; returns the function that removes it. */
  on(listener: QueueListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Applies one committed command's bytes; a command that does not decode changes nothing and fails alike everywhere. */
  apply(command: Uint8Array, index: LogIndex): QueueResult {
    let cmd: QueueCommand;
    try {
      cmd = decodeQueueCommand(command);
    } catch (e) {
      return { type: 'error', error: 'malformed', message: `malformed queue command: ${(e as Error).message}` };
    }
    return this.applyCommand(cmd, index);
  }

  /** Applies one decoded command (the caller vouches it is what the codec would give). */
  applyCommand(cmd: QueueCommand, index: LogIndex): QueueResult {
    this.pending = [];
    this.touched = new Set();
    const result = this.execute(cmd, index);
    for (const name of [...this.touched].sort(byString)) {
      const q = this.queues.get(name);
      if (q !== undefined) this.assign(q);
    }
    const events = this.pending;
    this.pending = [];
    this.touched = new Set();
    for (const e of events) this.emit(e);
    return result;
  }

  private emit(e: QueueEvent): void {
    for (const l of [...this.listeners]) {
      try {
        l(e);
      } catch {
        this.listenerErrors++;
      }
    }
  }

  private execute(cmd: QueueCommand, index: LogIndex): QueueResult {
    switch (cmd.type) {
      case 'declare': return this.declareGrpc(cmd.queue, cmd.deliveryLimit, cmd.deadLetterQueue);
      case 'declareQueue': return this.declareQueue(cmd);
      case 'deleteQueue': {
        const q = this.queues.get(cmd.queue);
        if (q === undefined) return { type: 'queueDeleted', queue: cmd.queue, messageCount: 0 };
        const ready = readyCount(q);
        if (cmd.ifUnused && q.consumers.length > 0) return err('inUse', `${rq(q.name)} in use`);
        if (cmd.ifEmpty && ready > 0) return err('notEmpty', `${rq(q.name)} is not empty`);
        this.deleteQueue(q);
        return { type: 'queueDeleted', queue: q.name, messageCount: ready };
      }
      case 'purge': {
        const q = this.queues.get(cmd.queue);
        if (q === undefined) return err('queueNotFound', `no ${rq(cmd.queue)}`);
        const n = readyCount(q);
        for (const id of q.returned) q.messages.delete(id);
        for (let id = q.firstUndelivered; id < q.nextMessageId; id++) q.messages.delete(id);
        q.returned = [];
        q.firstUndelivered = q.nextMessageId;
        q.purged += n;
        return { type: 'purged', queue: q.name, messageCount: n };
      }
      case 'exchangeDeclare': return this.exchangeDeclare(cmd);
      case 'exchangeDelete': {
        const name = cmd.exchange;
        if (name === '') return err('accessRefused', DEFAULT_EXCHANGE_REFUSAL);
        if (name.startsWith('amq.')) return err('accessRefused', `deletion of system ${rx(name)} not allowed`);
        const x = this.exchanges.get(name);
        if (x === undefined) return { type: 'exchangeDeleted', exchange: name, existed: false };
        if (cmd.ifUnused && x.bindings.size > 0) return err('inUse', `${rx(name)} in use`);
        this.exchanges.delete(name);
        return { type: 'exchangeDeleted', exchange: name, existed: true };
      }
      case 'bind':
      case 'unbind': return this.bind(cmd);
      case 'publish': {
        let targets: string[];
        if (cmd.exchange !== '') {
          const x = this.exchanges.get(cmd.exchange);
          if (x === undefined) return err('exchangeNotFound', `no ${rx(cmd.exchange)}`);
          if (x.internal) return err('accessRefused', `cannot publish to internal ${rx(x.name)}`);
          targets = route(x, cmd.routingKey, cmd.headers);
        } else {
          targets = this.queues.has(cmd.routingKey) ? [cmd.routingKey] : [];
        }
        const content: Content = {
          body: cmd.body, properties: cmd.properties, exchange: cmd.exchange, routingKey: cmd.routingKey, headers: cmd.headers, deaths: [], deadLetter: null,
        };
        for (const t of targets) this.enqueue(this.queues.get(t) as Queue, content);
        return { type: 'published', routed: targets.length };
      }
      case 'enqueue': {
        const q = this.queues.get(cmd.queue);
        if (q === undefined) return err('queueNotFound', `queue ${cmd.queue} does not exist`);
        const id = this.enqueue(q, {
          body: cmd.body, properties: null, exchange: '', routingKey: q.name, headers: [], deaths: [], deadLetter: null,
        });
        return { type: 'enqueued', queue: q.name, messageId: id };
      }
      case 'dequeue': return this.dequeue(cmd.queue, cmd.consumerId, cmd.node, cmd.noAck, index);
      case 'attach': {
        const q = this.queues.get(cmd.queue);
        if (q === undefined) return err('queueNotFound', `queue ${cmd.queue} does not exist`);
        if (this.consumers.has(cmd.consumerId)) return err('consumerExists', `consumer ${cmd.consumerId} already exists`);
        const exclusiveHeld = q.consumers.some((id) => (this.consumers.get(id) as Consumer).exclusive);
        if (exclusiveHeld || (cmd.exclusive && q.consumers.length > 0)) return err('accessRefused', `${rq(q.name)} in exclusive use`);
        const c: Consumer = {
          id: cmd.consumerId, queue: q.name, node: cmd.node, prefetch: cmd.prefetch, attachIndex: index, noAck: cmd.noAck, exclusive: cmd.exclusive,
          getter: false, nextTag: 1, inFlight: new Map(),
        };
        this.consumers.set(c.id, c);
        q.consumers.push(c.id);
        this.touched.add(q.name);
        return { type: 'attached', consumerId: c.id, queue: q.name };
      }
      case 'settle':
      case 'return':
      case 'discard': {
        const c = this.consumers.get(cmd.consumerId);
        if (c === undefined) return err('consumerNotFound', `consumer ${cmd.consumerId} does not exist`);
        const q = this.queueOf(c);
        let count = 0;
        let unknown = 0;
        for (const tag of cmd.deliveryTags) {
          const id = c.inFlight.get(tag);
          if (id === undefined) {
            unknown++;
            continue;
          }
          c.inFlight.delete(tag);
          const m = this.messageOf(q, id);
          m.holder = null;
          count++;
          if (cmd.type === 'settle') {
            q.messages.delete(id);
            q.acked++;
          } else if (cmd.type === 'return') {
            this.giveBack(q, m);
          } else {
            this.deadLetter(q, m, 'rejected');
          }
        }
        this.touched.add(q.name);
        const type = cmd.type === 'settle' ? 'settled' : cmd.type === 'return' ? 'returned' : 'discarded';
        return { type, consumerId: c.id, count, unknown };
      }
      case 'cancel': {
        const c = this.consumers.get(cmd.consumerId);
        if (c === undefined) return err('consumerNotFound', `consumer ${cmd.consumerId} does not exist`);
        const returned = this.removeConsumer(c, 'cancelled');
        return { type: 'cancelled', consumerId: c.id, returned };
      }
      case 'detach': {
        const c = this.consumers.get(cmd.consumerId);
        if (c === undefined) return err('consumerNotFound', `consumer ${cmd.consumerId} does not exist`);
        if (c.inFlight.size === 0) {
          this.removeConsumer(c, 'cancelled');
          return { type: 'detached', consumerId: c.id, held: 0 };
        }
        if (!c.getter) {
          // Out of the round robin (as removeConsumer takes it out), into the getters, keeping its tags and what it holds.
          const q = this.queueOf(c);
          const at = q.consumers.indexOf(c.id);
          q.consumers.splice(at, 1);
          if (at < q.cursor) q.cursor--;
          if (q.cursor >= q.consumers.length) q.cursor = 0;
          const g: Consumer = { ...c, prefetch: 0, noAck: false, exclusive: false, getter: true };
          this.consumers.set(c.id, g);
          q.getters.push(c.id);
          this.touched.add(q.name);
        }
        return { type: 'detached', consumerId: c.id, held: c.inFlight.size };
      }
      case 'nodeDown': {
        const gone = [...this.consumers.values()]
          .filter((c) => c.node === cmd.node && c.attachIndex <= cmd.attachedUpTo)
          .sort((a, b) => byString(a.id, b.id));
        let returned = 0;
        for (const c of gone) returned += this.removeConsumer(c, 'nodeDown');
        return { type: 'nodeDown', node: cmd.node, consumers: gone.length, returned };
      }
      default:
        return assertNever(cmd, 'queue command');
    }
  }

  private declared(q: Queue, created: boolean): QueueResult {
    return { type: 'declared', queue: q.name, created, messageCount: readyCount(q), consumerCount: q.consumers.length };
  }

  private createQueue(name: string, durable: boolean, deliveryLimit: number, deadLetterExchange: string | null, deadLetterRoutingKey: string | null): Queue {
    const q: Queue = {
      name, durable, deliveryLimit, deadLetterExchange, deadLetterRoutingKey, nextMessageId: 1, firstUndelivered: 1, messages: new Map(), returned: [],
      consumers: [], getters: [], cursor: 0, enqueued: 0, acked: 0, deadLettered: 0, dropped: 0, purged: 0,
    };
    this.queues.set(name, q);
    return q;
  }

  /** The gRPC API's declare: a dead-letter queue d is dead-letter exchange '' with routing key d; durability is not compared (gRPC has no such notion). */
  private declareGrpc(name: string, deliveryLimit: number, deadLetterQueue: string | null): QueueResult {
    if (deadLetterQueue === name) return err('invalid', `queue ${name} cannot dead-letter into itself`);
    const dlx = deadLetterQueue === null ? null : '';
    const existing = this.queues.get(name);
    if (existing !== undefined) {
      if (existing.deliveryLimit !== deliveryLimit || existing.deadLetterExchange !== dlx || existing.deadLetterRoutingKey !== deadLetterQueue) {
        return err('queueMismatch', `queue ${name} exists with delivery limit ${existing.deliveryLimit} and dead-letter queue ${grpcDeadLetterQueue(existing) ?? '(none)'}`);
      }
      return this.declared(existing, false);
    }
    return this.declared(this.createQueue(name, true, deliveryLimit, dlx, deadLetterQueue), true);
  }

  private declareQueue(cmd: DeclareQueueCommand): QueueResult {
    const existing = this.queues.get(cmd.queue);
    if (cmd.passive) return existing === undefined ? err('queueNotFound', `no ${rq(cmd.queue)}`) : this.declared(existing, false);
    if (existing !== undefined) {
      const mismatch = (arg: string, received: string, current: string): QueueResult =>
        err('queueMismatch', `inequivalent arg '${arg}' for ${rq(cmd.queue)}: received ${received} but current is ${current}`);
      const str = (v: string | null): string => (v === null ? 'none' : `the value '${v}' of type 'longstr'`);
      // In RabbitMQ's terms, as the AMQP client declared it: x-delivery-limit counts returns, one fewer than our deliveries.
      const long = (v: number): string => (v === 0 ? 'none' : `the value '${v - 1}' of type 'long'`);
      if (existing.durable !== cmd.durable) return mismatch('durable', `'${cmd.durable}'`, `'${existing.durable}'`);
      if (existing.deadLetterExchange !== cmd.deadLetterExchange) {
        return mismatch('x-dead-letter-exchange', str(cmd.deadLetterExchange), str(existing.deadLetterExchange));
      }
      if (existing.deadLetterRoutingKey !== cmd.deadLetterRoutingKey) {
        return mismatch('x-dead-letter-routing-key', str(cmd.deadLetterRoutingKey), str(existing.deadLetterRoutingKey));
      }
      if (existing.deliveryLimit !== cmd.deliveryLimit) return mismatch('x-delivery-limit', long(cmd.deliveryLimit), long(existing.deliveryLimit));
      return this.declared(existing, false);
    }
    if (cmd.queue.startsWith('amq.')) return err('accessRefused', `queue name '${cmd.queue}' contains reserved prefix 'amq.*'`);
    return this.declared(this.createQueue(cmd.queue, cmd.durable, cmd.deliveryLimit, cmd.deadLetterExchange, cmd.deadLetterRoutingKey), true);
  }

  /** Removes a queue: its consumers ('queueDeleted', what they held goes with it), its messages, its bindings (and auto-delete exchanges left without any). */
  private deleteQueue(q: Queue): void {
    for (const id of [...q.consumers, ...q.getters]) {
      const c = this.consumers.get(id) as Consumer;
      this.consumers.delete(id);
      this.pending.push({ type: 'consumerRemoved', queue: q.name, consumerId: id, node: c.node, reason: 'queueDeleted' });
    }
    for (const name of [...this.exchanges.keys()].sort(byString)) {
      const x = this.exchanges.get(name) as Exchange;
      let removed = false;
      for (const [key, b] of [...x.bindings]) {
        if (b.queue !== q.name) continue;
        x.bindings.delete(key);
        removed = true;
      }
      if (removed) this.autoDelete(x);
    }
    this.queues.delete(q.name);
  }

  private autoDelete(x: Exchange): void {
    if (x.autoDelete && x.bindings.size === 0) this.exchanges.delete(x.name);
  }

  private exchangeDeclare(cmd: ExchangeDeclareCommand): QueueResult {
    const name = cmd.exchange;
    if (name === '') return err('accessRefused', DEFAULT_EXCHANGE_REFUSAL);
    const x = this.exchanges.get(name);
    if (cmd.passive) return x === undefined ? err('exchangeNotFound', `no ${rx(name)}`) : { type: 'exchangeDeclared', exchange: name, created: false };
    if (x === undefined) {
      if (name.startsWith('amq.')) return err('accessRefused', `exchange name '${name}' contains reserved prefix 'amq.*'`);
      this.exchanges.set(name, { name, kind: cmd.kind, durable: cmd.durable, autoDelete: cmd.autoDelete, internal: cmd.internal, bindings: new Map() });
      return { type: 'exchangeDeclared', exchange: name, created: true };
    }
    const fields: [string, string | boolean, string | boolean][] = [
      ['type', cmd.kind, x.kind], ['durable', cmd.durable, x.durable], ['auto_delete', cmd.autoDelete, x.autoDelete], ['internal', cmd.internal, x.internal],
    ];
    for (const [arg, received, current] of fields) {
      if (received !== current) {
        return err('exchangeMismatch', `inequivalent arg '${arg}' for ${rx(name)}: received '${String(received)}' but current is '${String(current)}'`);
      }
    }
    return { type: 'exchangeDeclared', exchange: name, created: false };
  }

  private bind(cmd: BindCommand): QueueResult {
    if (cmd.exchange === '') return err('accessRefused', DEFAULT_EXCHANGE_REFUSAL);
    const x = this.exchanges.get(cmd.exchange);
    if (x === undefined) return err('exchangeNotFound', `no ${rx(cmd.exchange)}`);
    if (!this.queues.has(cmd.queue)) return err('queueNotFound', `no ${rq(cmd.queue)}`);
    const args = canonicalMatch(cmd.arguments);
    const key = bindingKey(cmd.queue, cmd.routingKey, args);
    if (cmd.type === 'bind') {
      if (!x.bindings.has(key)) x.bindings.set(key, { queue: cmd.queue, routingKey: cmd.routingKey, arguments: args, words: topicWords(cmd.routingKey) });
      return { type: 'bound' };
    }
    if (x.bindings.delete(key)) this.autoDelete(x);
    return { type: 'unbound' };
  }

  private dequeue(queue: string, consumerId: string, node: string, noAck: boolean, index: number): QueueResult {
    const q = this.queues.get(queue);
    if (q === undefined) return err('queueNotFound', `no ${rq(queue)}`);
    let c = this.consumers.get(consumerId);
    if (c !== undefined && !c.getter) return err('consumerExists', `consumer ${consumerId} exists and is not a getter`);
    if (c !== undefined && c.queue !== q.name) return err('invalid', `getter ${consumerId} gets from queue ${c.queue}, not ${q.name}`);
    const id = takeReady(q);
    if (id === null) return { type: 'dequeued', queue: q.name, message: null, messageCount: 0 };
    const m = this.messageOf(q, id);
    m.deliveries++;
    let tag = 0;
    if (noAck) {
      q.messages.delete(id);
      q.acked++;
    } else {
      if (c === undefined) {
        c = { id: consumerId, queue: q.name, node, prefetch: 0, attachIndex: index, noAck: false, exclusive: false, getter: true, nextTag: 1, inFlight: new Map() };
        this.consumers.set(c.id, c);
        q.getters.push(c.id);
      }
      tag = c.nextTag++;
      c.inFlight.set(tag, id);
      m.holder = c.id;
    }
    const message: Dequeued = {
      deliveryTag: tag, messageId: id, body: m.body, properties: m.properties, exchange: m.exchange, routingKey: m.routingKey,
      deliveryCount: m.deliveries, redelivered: m.deliveries > 1, deaths: m.deaths, deadLetter: m.deadLetter,
    };
    return { type: 'dequeued', queue: q.name, message, messageCount: readyCount(q) };
  }

  private queueOf(c: Consumer): Queue {
    const q = this.queues.get(c.queue);
    if (q === undefined) throw new Error(`bug: consumer ${c.id} of missing queue ${c.queue}`);
    return q;
  }

  private messageOf(q: Queue, id: number): Message {
    const m = q.messages.get(id);
    if (m === undefined) throw new Error(`bug: message ${id} of queue ${q.name} is missing`);
    return m;
  }

  private enqueue(q: Queue, content: Content): number {
    const id = q.nextMessageId++;
    // One literal of one shape (a spread of `content` made a dictionary-mode object per message: 10 µs per publish).
    q.messages.set(id, {
      body: content.body, properties: content.properties, exchange: content.exchange, routingKey: content.routingKey, headers: content.headers,
      deaths: content.deaths, deadLetter: content.deadLetter, id, deliveries: 0, holder: null,
    });
    q.enqueued++;
    this.touched.add(q.name);
    return id;
  }

  /** A message came back from a consumer: requeued ahead of newer ones, or dead-lettered past the limit. */
  private giveBack(q: Queue, m: Message): void {
    if (q.deliveryLimit > 0 && m.deliveries >= q.deliveryLimit) {
      this.deadLetter(q, m, 'deliveryLimit');
      return;
    }
    insertSorted(q.returned, m.id);
    this.touched.add(q.name);
  }

  /** The queues a dead-lettered message goes to (see the header), in name order; empty when it is dropped. */
  private deadLetter(q: Queue, m: Message, reason: DeadLetterReason): void {
    q.messages.delete(m.id);
    let targets: string[] = [];
    const dlx = q.deadLetterExchange;
    if (dlx !== null) {
      const deaths = addDeath(m.deaths, { queue: q.name, reason: reason === 'rejected' ? 'rejected' : 'delivery_limit', exchange: m.exchange, routingKeys: [m.routingKey] });
      const routingKey = q.deadLetterRoutingKey ?? m.routingKey;
      let routed: string[] = [];
      if (dlx === '') routed = this.queues.has(routingKey) ? [routingKey] : [];
      else {
        const x = this.exchanges.get(dlx);
        if (x !== undefined) routed = route(x, routingKey, m.headers);
      }
      targets = routed.filter((t) => !isDeadLetterCycle(deaths, t));
      const content: Content = {
        body: m.body, properties: m.properties, exchange: dlx, routingKey, headers: m.headers, deaths, deadLetter: { queue: q.name, messageId: m.id, reason },
      };
      for (const t of targets) this.enqueue(this.queues.get(t) as Queue, content);
    }
    if (targets.length === 0) q.dropped++;
    else q.deadLettered++;
    this.pending.push({ type: 'deadLettered', queue: q.name, messageId: m.id, reason, target: targets[0] ?? null, targets });
  }

  /** Removes a consumer and gives back what it held (in tag order); returns how many it held. */
  private removeConsumer(c: Consumer, reason: ConsumerRemovedReason): number {
    const q = this.queueOf(c);
    this.consumers.delete(c.id);
    if (c.getter) {
      q.getters.splice(q.getters.indexOf(c.id), 1);
    } else {
      const at = q.consumers.indexOf(c.id);
      if (at >= 0) {
        q.consumers.splice(at, 1);
        if (at < q.cursor) q.cursor--;
        if (q.cursor >= q.consumers.length) q.cursor = 0;
      }
    }
    const tags = [...c.inFlight.keys()].sort((a, b) => a - b);
    for (const tag of tags) {
      const m = this.messageOf(q, c.inFlight.get(tag) as number);
      m.holder = null;
      this.giveBack(q, m);
    }
    c.inFlight.clear();
    this.touched.add(q.name);
    this.pending.push({ type: 'consumerRemoved', queue: q.name, consumerId: c.id, node: c.node, reason });
    return tags.length;
  }

  /** Hands ready messages to consumers with credit, round robin, until either runs out. */
  private assign(q: Queue): void {
    for (;;) {
      if (readyCount(q) === 0) return;
      const c = this.nextWithCredit(q);
      if (c === null) return;
      const id = takeReady(q) as number;
      const m = this.messageOf(q, id);
      m.deliveries++;
      const tag = c.nextTag++;
      if (c.noAck) {
        q.messages.delete(id);
        q.acked++;
      } else {
        m.holder = c.id;
        c.inFlight.set(tag, id);
      }
      this.pending.push({
        type: 'delivered', queue: q.name, consumerId: c.id, node: c.node, deliveryTag: tag, messageId: id, body: m.body, properties: m.properties,
        exchange: m.exchange, routingKey: m.routingKey, deaths: m.deaths, deliveryCount: m.deliveries, redelivered: m.deliveries > 1, deadLetter: m.deadLetter,
      });
    }
  }

  /** The next consumer from the cursor with credit (and moves the cursor past it), or null. */
  private nextWithCredit(q: Queue): Consumer | null {
    const n = q.consumers.length;
    for (let i = 0; i < n; i++) {
      const at = (q.cursor + i) % n;
      const c = this.consumers.get(q.consumers[at] as string) as Consumer;
      if (c.inFlight.size < c.prefetch) {
        q.cursor = (at + 1) % n;
        return c;
      }
    }
    return null;
  }

  // ---- reads (for the node serving clients; never used by apply) ----

  /** Statistics of one queue, or undefined. */
  queueStats(name: string): QueueStats | undefined {
    const q = this.queues.get(name);
    if (q === undefined) return undefined;
    let unacked = 0;
    for (const id of [...q.consumers, ...q.getters]) unacked += (this.consumers.get(id) as Consumer).inFlight.size;
    return {
      queue: q.name, durable: q.durable, deliveryLimit: q.deliveryLimit, deadLetterQueue: grpcDeadLetterQueue(q), deadLetterExchange: q.deadLetterExchange,
      deadLetterRoutingKey: q.deadLetterRoutingKey, ready: q.messages.size - unacked, unacked, consumers: q.consumers.length, enqueued: q.enqueued,
      acked: q.acked, deadLettered: q.deadLettered, dropped: q.dropped, purged: q.purged,
    };
  }

  /** Statistics of every queue, by name. */
  stats(): QueueStats[] {
    return [...this.queues.keys()].sort(byString).map((n) => this.queueStats(n) as QueueStats);
  }

  /** A consumer, if it exists. */
  consumer(id: string): ConsumerInfo | undefined {
    const c = this.consumers.get(id);
    return c === undefined ? undefined : info(c);
  }

  /** Every consumer, by id. */
  allConsumers(): ConsumerInfo[] {
    return [...this.consumers.values()].map(info).sort((a, b) => byString(a.consumerId, b.consumerId));
  }

  /** The nodes serving at least one consumer, sorted. */
  consumerNodes(): string[] {
    return [...new Set([...this.consumers.values()].map((c) => c.node))].sort(byString);
  }

  /** What a consumer holds, by tag (empty for an unknown consumer). */
  inFlight(consumerId: string): InFlight[] {
    const c = this.consumers.get(consumerId);
    if (c === undefined) return [];
    const q = this.queueOf(c);
    return [...c.inFlight.entries()].sort((a, b) => a[0] - b[0]).map(([tag, id]) => {
      const m = this.messageOf(q, id);
      return {
        deliveryTag: tag, messageId: id, body: m.body, properties: m.properties, exchange: m.exchange, routingKey: m.routingKey, deaths: m.deaths,
        deliveryCount: m.deliveries, redelivered: m.deliveries > 1, deadLetter: m.deadLetter,
      };
    });
  }

  /** The ids of a queue's ready messages in the order they will go out (tests, debugging). */
  readyIds(name: string): number[] {
    const q = this.queues.get(name);
    if (q === undefined) return [];
    const out = [...q.returned];
    for (let id = q.firstUndelivered; id < q.nextMessageId; id++) out.push(id);
    return out;
  }

  /** Whether an exchange exists ('' always does): a publish's check, without building a description. */
  hasExchange(name: string): boolean {
    return name === '' || this.exchanges.has(name);
  }

  /** An exchange, if it exists ('' is the default exchange, always there). */
  exchange(name: string): { readonly name: string; readonly kind: ExchangeKind; readonly durable: boolean; readonly autoDelete: boolean; readonly internal: boolean } | undefined {
    if (name === '') return { name, kind: 'direct', durable: true, autoDelete: false, internal: false };
    const x = this.exchanges.get(name);
    return x === undefined ? undefined : { name: x.name, kind: x.kind, durable: x.durable, autoDelete: x.autoDelete, internal: x.internal };
  }

  /** Every declared exchange's name (the predeclared amq.* included, '' not), sorted. */
  exchangeNames(): string[] {
    return [...this.exchanges.keys()].sort(byString);
  }

  /** The bindings, by exchange, then queue, routing key and arguments (the default exchange's implicit ones not listed). */
  bindings(): { readonly exchange: string; readonly queue: string; readonly routingKey: string; readonly arguments: HeaderMatch | null }[] {
    const out: { exchange: string; queue: string; routingKey: string; arguments: HeaderMatch | null }[] = [];
    for (const name of this.exchangeNames()) {
      const x = this.exchanges.get(name) as Exchange;
      for (const key of [...x.bindings.keys()].sort(byString)) {
        const b = x.bindings.get(key) as Binding;
        out.push({ exchange: name, queue: b.queue, routingKey: b.routingKey, arguments: b.arguments });
      }
    }
    return out;
  }

  // ---- snapshot ----

  /**
   * The whole state, canonically (version 2): "QQUE", u8 version;
   * count exchanges (by name, the predeclared included): sstr name, u8 kind,
   * u8 flags (1 durable, 2 autoDelete, 4 internal), count bindings (by key):
   * str queue, sstr routingKey, u8 hasArguments [match];
   * count queues (by name), each: str name, u8 flags (1 durable, 2 has dlx,
   * 4 has dlrk), int deliveryLimit, [sstr dlx], [sstr dlrk], int
   * nextMessageId, int firstUndelivered, int enqueued, int acked, int
   * deadLettered, int dropped, int purged, int cursor; count messages (by
   * id): int id, bytes body, int deliveries, u8 flags (1 origin, 2
   * properties), [str queue, int messageId, u8 reason], [properties], sstr
   * exchange, sstr routingKey, headers, count deaths: str queue, u8 reason,
   * int count, sstr exchange, count n, n × sstr routingKey; count returned:
   * int id...; count consumers (attach order): str id, str node, int
   * prefetch, int attachIndex, int nextTag, u8 flags (1 noAck, 2 exclusive),
   * count inFlight (by tag): int tag, int messageId; count getters (creation
   * order): str id, str node, int attachIndex, int nextTag, count inFlight.
   * (sstr, headers, match, properties: as in codec.ts.)
   *
   * Version 1 (still restored): no exchanges; per queue str name, int
   * deliveryLimit, u8 hasDlq [str dlq] in place of the flags and dead-letter
   * fields, no purged; messages int id, bytes body, int deliveries, u8
   * hasOrigin [origin]; consumers without flags; no getters.
   */
  snapshot(): Uint8Array {
    const w = new ByteWriter();
    w.raw(SNAPSHOT_MAGIC);
    w.u8(SNAPSHOT_VERSION);
    const xnames = this.exchangeNames();
    w.count(xnames.length);
    for (const name of xnames) {
      const x = this.exchanges.get(name) as Exchange;
      writeShortString(w, x.name, 'exchange name');
      w.u8(EXCHANGE_KINDS.indexOf(x.kind));
      w.u8((x.durable ? 1 : 0) | (x.autoDelete ? 2 : 0) | (x.internal ? 4 : 0));
      const keys = [...x.bindings.keys()].sort(byString);
      w.count(keys.length);
      for (const key of keys) {
        const b = x.bindings.get(key) as Binding;
        writeQueueString(w, b.queue, 'queue name');
        writeShortString(w, b.routingKey, 'routing key');
        if (b.arguments === null) w.u8(0);
        else {
          w.u8(1);
          writeHeaderMatch(w, b.arguments);
        }
      }
    }
    const names = [...this.queues.keys()].sort(byString);
    w.count(names.length);
    for (const name of names) {
      const q = this.queues.get(name) as Queue;
      writeQueueString(w, q.name, 'queue name');
      w.u8((q.durable ? 1 : 0) | (q.deadLetterExchange === null ? 0 : 2) | (q.deadLetterRoutingKey === null ? 0 : 4));
      w.int(q.deliveryLimit);
      if (q.deadLetterExchange !== null) writeShortString(w, q.deadLetterExchange, 'dead-letter exchange');
      if (q.deadLetterRoutingKey !== null) writeShortString(w, q.deadLetterRoutingKey, 'dead-letter routing key');
      w.int(q.nextMessageId);
      w.int(q.firstUndelivered);
      w.int(q.enqueued);
      w.int(q.acked);
      w.int(q.deadLettered);
      w.int(q.dropped);
      w.int(q.purged);
      w.int(q.cursor);
      const ids = [...q.messages.keys()].sort((a, b) => a - b);
      w.count(ids.length);
      for (const id of ids) {
        const m = q.messages.get(id) as Message;
        w.int(m.id);
        w.bytes(m.body);
        w.int(m.deliveries);
        w.u8((m.deadLetter === null ? 0 : 1) | (m.properties === null ? 0 : 2));
        if (m.deadLetter !== null) {
          writeQueueString(w, m.deadLetter.queue, 'origin queue');
          w.int(m.deadLetter.messageId);
          w.u8(REASONS.indexOf(m.deadLetter.reason));
        }
        if (m.properties !== null) writeProperties(w, m.properties);
        writeShortString(w, m.exchange, 'exchange name');
        writeShortString(w, m.routingKey, 'routing key');
        writeHeaders(w, m.headers);
        w.count(m.deaths.length);
        for (const d of m.deaths) {
          writeQueueString(w, d.queue, 'death queue');
          w.u8(DEATH_REASONS.indexOf(d.reason));
          w.int(d.count);
          writeShortString(w, d.exchange, 'death exchange');
          w.count(d.routingKeys.length);
          for (const k of d.routingKeys) writeShortString(w, k, 'death routing key');
        }
      }
      w.count(q.returned.length);
      for (const id of q.returned) w.int(id);
      w.count(q.consumers.length);
      for (const cid of q.consumers) {
        const c = this.consumers.get(cid) as Consumer;
        writeQueueString(w, c.id, 'consumer id');
        writeQueueString(w, c.node, 'node id');
        w.int(c.prefetch);
        w.int(c.attachIndex);
        w.int(c.nextTag);
        w.u8((c.noAck ? 1 : 0) | (c.exclusive ? 2 : 0));
        writeInFlight(w, c);
      }
      w.count(q.getters.length);
      for (const cid of q.getters) {
        const c = this.consumers.get(cid) as Consumer;
        writeQueueString(w, c.id, 'consumer id');
        writeQueueString(w, c.node, 'node id');
        w.int(c.attachIndex);
        w.int(c.nextTag);
        writeInFlight(w, c);
      }
    }
    return w.finish();
  }

  /** Replaces the state with a snapshot's (version 1 or 2; all or nothing: a bad snapshot throws QueueSnapshotError and changes nothing), then emits 'restored'. */
  restore(data: Uint8Array): void {
    let parsed: Parsed;
    try {
      parsed = parseSnapshot(data);
    } catch (e) {
      if (e instanceof QueueSnapshotError) throw e;
      throw new QueueSnapshotError(`malformed queue snapshot: ${(e as Error).message}`, { cause: e });
    }
    this.queues = parsed.queues;
    this.consumers = parsed.consumers;
    this.exchanges = parsed.exchanges;
    this.emit({ type: 'restored' });
  }
}

/**
 * The queue machine of `services`: the one already registered (a node that
 * runs the queue service by default), or a new one registered now. Call
 * before the node recovers (startNode's registerServices).
 */
export function attachQueue(services: ServiceStateMachine): QueueStateMachine {
  const existing = services.service('queue');
  if (existing instanceof QueueStateMachine) return existing;
  if (existing !== undefined) throw new Error('the queue service tag is taken by another machine');
  const m = new QueueStateMachine();
  services.register('queue', m);
  return m;
}

function err(error: QueueErrorCode, message: string): QueueResult {
  return { type: 'error', error, message };
}

function info(c: Consumer): ConsumerInfo {
  return {
    consumerId: c.id, queue: c.queue, node: c.node, prefetch: c.prefetch, attachIndex: c.attachIndex, noAck: c.noAck, exclusive: c.exclusive, getter: c.getter,
  };
}

/** The dead-letter queue as the gRPC API knows it: dead-letter exchange '' with a routing key. */
function grpcDeadLetterQueue(q: Queue): string | null {
  return q.deadLetterExchange === '' ? q.deadLetterRoutingKey : null;
}

function readyCount(q: Queue): number {
  return q.returned.length + (q.nextMessageId - q.firstUndelivered);
}

/** Takes the next ready message's id out of the ready order (returned first), or null. */
function takeReady(q: Queue): number | null {
  if (q.returned.length > 0) return q.returned.shift() as number;
  if (q.firstUndelivered < q.nextMessageId) return q.firstUndelivered++;
  return null;
}

/** The queues exchange `x` routes a message to, deduplicated, in name order. */
function route(x: Exchange, routingKey: string, headers: readonly Header[]): string[] {
  const out = new Set<string>();
  switch (x.kind) {
    case 'direct':
      for (const b of x.bindings.values()) if (b.routingKey === routingKey) out.add(b.queue);
      break;
    case 'fanout':
      for (const b of x.bindings.values()) out.add(b.queue);
      break;
    case 'topic': {
      const words = topicWords(routingKey);
      for (const b of x.bindings.values()) if (!out.has(b.queue) && topicMatchWords(b.words, words)) out.add(b.queue);
      break;
    }
    case 'headers':
      for (const b of x.bindings.values()) if (!out.has(b.queue) && headersMatch(b.arguments, headers)) out.add(b.queue);
      break;
    default:
      assertNever(x.kind, 'exchange kind');
  }
  return [...out].sort(byString);
}

/** Inserts `id` into the ascending array `ids` (binary search). */
function insertSorted(ids: number[], id: number): void {
  let lo = 0;
  let hi = ids.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((ids[mid] as number) < id) lo = mid + 1;
    else hi = mid;
  }
  ids.splice(lo, 0, id);
}

function writeInFlight(w: ByteWriter, c: Consumer): void {
  const tags = [...c.inFlight.keys()].sort((a, b) => a - b);
  w.count(tags.length);
  for (const t of tags) {
    w.int(t);
    w.int(c.inFlight.get(t) as number);
  }
}

interface Parsed {
  queues: Map<string, Queue>;
  consumers: Map<string, Consumer>;
  exchanges: Map<string, Exchange>;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && a.every((x, i) => x === b[i]);
}

function matchBytes(m: HeaderMatch): Uint8Array {
  const w = new ByteWriter();
  writeHeaderMatch(w, m);
  return w.finish();
}

function parseSnapshot(data: Uint8Array): Parsed {
  const bad = (message: string): never => {
    throw new QueueSnapshotError(message);
  };
  const r = new ByteReader(data);
  const magic = r.raw(SNAPSHOT_MAGIC.byteLength);
  if (!magic.every((b, i) => b === SNAPSHOT_MAGIC[i])) bad('not a queue snapshot (bad magic)');
  const version = r.u8();
  if (version !== 1 && version !== 2) bad(`unsupported queue snapshot version ${version}`);
  const v2 = version === 2;
  const queues = new Map<string, Queue>();
  const consumers = new Map<string, Consumer>();
  const nonNeg = (what: string): number => {
    const n = r.int();
    if (n < 0) bad(`${what} is negative`);
    return n;
  };
  let exchanges: Map<string, Exchange>;
  if (!v2) {
    exchanges = predeclared();
  } else {
    exchanges = new Map();
    let lastX: string | null = null;
    for (let nx = r.count(); nx > 0; nx--) {
      const name = readShortString(r, 'exchange name');
      if (name === '') bad('the default exchange is listed');
      if (lastX !== null && byString(lastX, name) >= 0) bad(`exchanges out of order at ${name}`);
      lastX = name;
      const kind = r.enumOf(EXCHANGE_KINDS, 'exchange kind');
      const f = r.flags(7);
      const x: Exchange = { name, kind, durable: (f & 1) !== 0, autoDelete: (f & 2) !== 0, internal: (f & 4) !== 0, bindings: new Map() };
      const pre = PREDECLARED.get(name);
      if (name.startsWith('amq.') && (pre !== kind || !x.durable || x.autoDelete || x.internal)) bad(`exchange ${name} is not a predeclared exchange`);
      let lastKey: string | null = null;
      for (let nb = r.count(); nb > 0; nb--) {
        const queue = readQueueString(r, 'queue name');
        const routingKey = readShortString(r, 'routing key');
        let args: HeaderMatch | null = null;
        if (r.flags(1) !== 0) {
          args = readHeaderMatch(r);
          if (!sameBytes(matchBytes(args), matchBytes(canonicalMatch(args) as HeaderMatch))) bad(`exchange ${name}: binding arguments not in canonical order`);
        }
        const key = bindingKey(queue, routingKey, args);
        if (lastKey !== null && byString(lastKey, key) >= 0) bad(`exchange ${name}: bindings out of order`);
        lastKey = key;
        x.bindings.set(key, { queue, routingKey, arguments: args, words: topicWords(routingKey) });
      }
      if (x.autoDelete && x.bindings.size === 0) {
        // Legal: an auto-delete exchange is only deleted when its last binding goes, not when it is created with none.
      }
      exchanges.set(name, x);
    }
    for (const name of PREDECLARED.keys()) if (!exchanges.has(name)) bad(`predeclared exchange ${name} is missing`);
  }
  let lastName: string | null = null;
  for (let nq = r.count(); nq > 0; nq--) {
    const name = readQueueString(r, 'queue name');
    if (lastName !== null && byString(lastName, name) >= 0) bad(`queues out of order at ${name}`);
    lastName = name;
    let durable = true;
    let deliveryLimit: number;
    let dlx: string | null = null;
    let dlrk: string | null = null;
    if (v2) {
      const f = r.flags(7);
      durable = (f & 1) !== 0;
      deliveryLimit = nonNeg('delivery limit');
      if ((f & 2) !== 0) dlx = readShortString(r, 'dead-letter exchange');
      if ((f & 4) !== 0) dlrk = readShortString(r, 'dead-letter routing key');
    } else {
      deliveryLimit = nonNeg('delivery limit');
      const dlq = r.flags(1) !== 0 ? readQueueString(r, 'dead-letter queue') : null;
      if (dlq === name) bad(`queue ${name} dead-letters into itself`);
      if (dlq !== null) {
        dlx = '';
        dlrk = dlq;
      }
    }
    if (deliveryLimit > QUEUE_LIMITS.deliveryLimitMax) bad(`delivery limit ${deliveryLimit} is too large`);
    const nextMessageId = nonNeg('next message id');
    const firstUndelivered = nonNeg('first undelivered id');
    if (nextMessageId < 1 || firstUndelivered < 1 || firstUndelivered > nextMessageId) bad(`queue ${name}: bad message id range`);
    const q: Queue = {
      name, durable, deliveryLimit, deadLetterExchange: dlx, deadLetterRoutingKey: dlrk, nextMessageId, firstUndelivered, messages: new Map(), returned: [],
      consumers: [], getters: [], enqueued: nonNeg('enqueued'), acked: nonNeg('acked'), deadLettered: nonNeg('deadLettered'), dropped: nonNeg('dropped'),
      purged: v2 ? nonNeg('purged') : 0, cursor: nonNeg('cursor'),
    };
    let lastId = 0;
    for (let n = r.count(); n > 0; n--) {
      const id = r.int();
      if (id <= lastId || id >= nextMessageId) bad(`queue ${name}: message id ${id} out of order or range`);
      lastId = id;
      const body = r.bytes();
      const deliveries = nonNeg('deliveries');
      const f = v2 ? r.flags(3) : r.flags(1);
      let deadLetter: DeadLetterOrigin | null = null;
      if ((f & 1) !== 0) {
        const queue = readQueueString(r, 'origin queue');
        const messageId = nonNeg('origin message id');
        deadLetter = { queue, messageId, reason: r.enumOf(REASONS, 'dead-letter reason') };
      }
      let content: Content;
      if (v2) {
        const properties = (f & 2) !== 0 ? readProperties(r) : null;
        const exchange = readShortString(r, 'exchange name');
        const routingKey = readShortString(r, 'routing key');
        const headers = readHeaders(r);
        const deaths: Death[] = [];
        for (let k = r.count(); k > 0; k--) {
          const queue = readQueueString(r, 'death queue');
          const reason = r.enumOf(DEATH_REASONS, 'death reason');
          const count = nonNeg('death count');
          if (count < 1) bad(`queue ${name}: message ${id} has a death with count 0`);
          if (deaths.some((d) => d.queue === queue && d.reason === reason)) bad(`queue ${name}: message ${id} has two deaths in ${queue} for ${reason}`);
          const exchange = readShortString(r, 'death exchange');
          const routingKeys: string[] = [];
          for (let j = r.count(); j > 0; j--) routingKeys.push(readShortString(r, 'death routing key'));
          deaths.push({ queue, reason, count, exchange, routingKeys });
        }
        content = { body, properties, exchange, routingKey, headers, deaths, deadLetter };
      } else {
        // Version 1 kept no AMQP metadata: every message came through the default exchange to this queue (published, or
        // dead-lettered by the gRPC declare's rule); its last death is what the origin tells.
        const deaths: Death[] = deadLetter === null ? [] : [{
          queue: deadLetter.queue, reason: deadLetter.reason === 'rejected' ? 'rejected' : 'delivery_limit', count: 1, exchange: '', routingKeys: [deadLetter.queue],
        }];
        content = { body, properties: null, exchange: '', routingKey: name, headers: [], deaths, deadLetter };
      }
      if (id >= firstUndelivered && deliveries !== 0) bad(`queue ${name}: undelivered message ${id} has deliveries`);
      q.messages.set(id, { ...content, id, deliveries, holder: null });
    }
    for (let id = firstUndelivered; id < nextMessageId; id++) if (!q.messages.has(id)) bad(`queue ${name}: undelivered message ${id} is missing`);
    let lastReturned = 0;
    for (let n = r.count(); n > 0; n--) {
      const id = r.int();
      if (id <= lastReturned || id >= firstUndelivered || !q.messages.has(id)) bad(`queue ${name}: returned id ${id} out of order or unknown`);
      lastReturned = id;
      q.returned.push(id);
    }
    const returnedSet = new Set(q.returned);
    const readInFlight = (c: Consumer): void => {
      let lastTag = 0;
      for (let k = r.count(); k > 0; k--) {
        const tag = r.int();
        if (tag <= lastTag || tag >= c.nextTag) bad(`consumer ${c.id}: tag ${tag} out of order or range`);
        lastTag = tag;
        const mid = r.int();
        const m = q.messages.get(mid);
        if (m === undefined || m.holder !== null || returnedSet.has(mid) || mid >= firstUndelivered) bad(`consumer ${c.id}: message ${mid} cannot be in flight`);
        (m as Message).holder = c.id;
        c.inFlight.set(tag, mid);
      }
    };
    let exclusives = 0;
    for (let n = r.count(); n > 0; n--) {
      const id = readQueueString(r, 'consumer id');
      if (consumers.has(id)) bad(`consumer ${id} appears twice`);
      const node = readQueueString(r, 'node id');
      const prefetch = nonNeg('prefetch');
      if (prefetch < 1 || prefetch > QUEUE_LIMITS.prefetchMax) bad(`consumer ${id}: prefetch ${prefetch} out of range`);
      const attachIndex = nonNeg('attach index');
      const nextTag = nonNeg('next tag');
      const f = v2 ? r.flags(3) : 0;
      const c: Consumer = {
        id, queue: name, node, prefetch, attachIndex, noAck: (f & 1) !== 0, exclusive: (f & 2) !== 0, getter: false, nextTag, inFlight: new Map(),
      };
      if (c.exclusive) exclusives++;
      readInFlight(c);
      if (c.inFlight.size > prefetch) bad(`consumer ${id} holds more than its prefetch`);
      if (c.noAck && c.inFlight.size > 0) bad(`noAck consumer ${id} holds messages`);
      consumers.set(id, c);
      q.consumers.push(id);
    }
    if (exclusives > 0 && q.consumers.length > 1) bad(`queue ${name}: an exclusive consumer is not alone`);
    if (v2) {
      for (let n = r.count(); n > 0; n--) {
        const id = readQueueString(r, 'consumer id');
        if (consumers.has(id)) bad(`consumer ${id} appears twice`);
        const node = readQueueString(r, 'node id');
        const attachIndex = nonNeg('attach index');
        const nextTag = nonNeg('next tag');
        const c: Consumer = { id, queue: name, node, prefetch: 0, attachIndex, noAck: false, exclusive: false, getter: true, nextTag, inFlight: new Map() };
        readInFlight(c);
        consumers.set(id, c);
        q.getters.push(id);
      }
    }
    if (q.cursor >= Math.max(1, q.consumers.length)) bad(`queue ${name}: cursor out of range`);
    for (const m of q.messages.values()) {
      if (m.id < firstUndelivered && m.holder === null && !returnedSet.has(m.id)) bad(`queue ${name}: message ${m.id} is neither ready nor in flight`);
      if (m.id < firstUndelivered && m.deliveries < 1) bad(`queue ${name}: delivered message ${m.id} has no deliveries`);
    }
    queues.set(name, q);
  }
  r.end();
  for (const x of exchanges.values()) for (const b of x.bindings.values()) if (!queues.has(b.queue)) bad(`exchange ${x.name}: binding to missing queue ${b.queue}`);
  return { queues, consumers, exchanges };
}
