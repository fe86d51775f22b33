// One AMQP channel: its methods mapped onto the replicated quorum queues
// (src/services/queue), through the node's vhost (vhost.ts).
//
// Order. A channel's commands are proposed in the order they arrive, so the
// log holds them in that order. Their replies (declare-ok, consume-ok,
// get-ok, ...) leave in that order too: each method that answers takes a
// slot in `replies`, and a slot is written only once every earlier one has
// been. A failure in a slot closes the channel (soft codes) or the
// connection (hard codes) when its turn comes. Publishes take no slot: they
// are confirmed (confirm.select) in publish order once committed, a run of
// consecutive acks as one basic.ack with `multiple`.
//
// Delivery tags. The queue machine numbers each consumer's deliveries; AMQP
// numbers a channel's, across its consumers and basic.get. `outstanding`
// maps this channel's tags to (consumer, the machine's tag), in tag order;
// ack, nack, reject and recover turn channel tags back into settle, return
// and discard commands, one per consumer.
//
// basic.get. Each queue read with basic.get on this channel has a getter:
// a consumer of the machine that receives nothing pushed and holds what
// basic.get took, until it is acked, rejected or the channel closes.
//
// When the channel closes (either side, or its connection ends), its
// consumers and getters are cancelled through the log, so their
// unacknowledged messages go back to their queues; a cancel that fails is
// retried by the queue API's reconciler (src/server/queue/server.ts), which
// cancels every consumer of this node that no channel or stream serves.

import { randomBytes } from 'node:crypto';
import {
  decodeBasicProperties, decodeContentHeader, encodeBodyFrames, encodeContentHeaderFrame, encodeMethodFrame, fieldTableGet, methodIds, withHeaders,
  type AmqpMethod, type FieldTable,
} from '../../codec/amqp/index.js';
import { LeaderChangedError, NodeStoppedError, NoLeaderError, RequestTimeoutError, TooManyRequestsError } from '../../node/errors.js';
import { QUEUE_LIMITS, type QueueCommand, type QueueResult } from '../../services/queue/types.js';
import type { AmqpConnection } from './connection.js';
import { AmqpError, notImplemented, quoted, REPLY, type ReplyCode } from './errors.js';
import { deathHeaders, headerMatchOf, headersForRouting, queueArguments } from './mapping.js';
import type { ConsumerSink, DeliveredEvent } from './vhost.js';

type M<N extends AmqpMethod['name']> = Extract<AmqpMethod, { name: N }>;

interface ReplySlot {
  done: boolean;
  frames: Buffer[];
  error: unknown;
  /** Runs right after the frames are written (a consumer starts once its consume-ok is out). */
  after: (() => void) | null;
}

interface Publishing {
  readonly method: M<'basic.publish'>;
  flags: number;
  properties: Buffer;
  bodySize: number;
  readonly chunks: Buffer[];
  received: number;
  headerSeen: boolean;
}

/** A consumer this channel serves (basic.consume). */
interface ChannelConsumer {
  readonly tag: string;
  readonly id: string;
  readonly queue: string;
  readonly noAck: boolean;
  /** consume-ok has been written: deliveries go out; before that they wait in `early`. */
  started: boolean;
  readonly early: DeliveredEvent[];
  /** The machine's highest delivery tag sent to the client. */
  lastTag: number;
}

/** Where a channel delivery tag's message is held: the consumer (or getter) and the machine's tag. */
interface Held {
  readonly consumerId: string;
  readonly tag: number;
}

type Confirm = 0 | 1 | 2; // pending, ack, nack
const PENDING: Confirm = 0;
const ACK: Confirm = 1;
const NACK: Confirm = 2;

const CLASS_BASIC = 60;
/** Property flag bits of basic's content header (amqp0-9-1.xml, the basic class's fields in order, from bit 15). */
const FLAG_HEADERS = 1 << 13;
const FLAG_EXPIRATION = 1 << 8;
const FLAG_USER_ID = 1 << 4;

const ids = (name: AmqpMethod['name']): [number, number] => {
  const i = methodIds(name);
  return [i.classId, i.methodId];
};

/** A command's failure (the machine's error result) as the AMQP error RabbitMQ raises for it. */
export function resultError(r: Extract<QueueResult, { type: 'error' }>, method: AmqpMethod['name']): AmqpError {
  const code: ReplyCode = ((): ReplyCode => {
    switch (r.error) {
      case 'queueNotFound':
      case 'exchangeNotFound':
      case 'consumerNotFound':
        return REPLY.NOT_FOUND;
      case 'queueMismatch':
      case 'exchangeMismatch':
      case 'inUse':
      case 'notEmpty':
      case 'invalid':
        return REPLY.PRECONDITION_FAILED;
      case 'accessRefused':
        return REPLY.ACCESS_REFUSED;
      case 'consumerExists':
        return REPLY.NOT_ALLOWED;
      case 'malformed':
        return REPLY.INTERNAL_ERROR;
    }
  })();
  return new AmqpError(code, r.message, ...ids(method));
}

/** A write whose outcome is unknown (no leader, timed out, the node stopping), as an AMQP error. */
function unavailable(e: unknown, method: AmqpMethod['name']): unknown {
  if (e instanceof AmqpError) return e;
  if (e instanceof NodeStoppedError) return new AmqpError(REPLY.CONNECTION_FORCED, 'broker forced connection closure with reason \'shutdown\'', ...ids(method));
  if (e instanceof NoLeaderError || e instanceof RequestTimeoutError || e instanceof LeaderChangedError || e instanceof TooManyRequestsError) {
    return new AmqpError(REPLY.INTERNAL_ERROR, `${method} did not complete: ${e.message} (its outcome is unknown; reconnect and retry)`, ...ids(method));
  }
  return e;
}

export class AmqpChannel {
  private closing = false;
  private released = false;
  private readonly replies: ReplySlot[] = [];
  private publishing: Publishing | null = null;
  /** basic.qos prefetch-count for consumers started after it; 0 = unlimited. */
  private prefetch = 0;
  private globalQos = false;
  private confirmMode = false;
  /** Confirm state of publishes confirmBase, confirmBase + 1, ... */
  private readonly confirms: Confirm[] = [];
  private confirmBase = 1;
  private nextTag = 1;
  private readonly outstanding = new Map<number, Held>();
  private readonly consumers = new Map<string, ChannelConsumer>();
  private readonly getters = new Map<string, string>();
  /** Consumers cancelled by the client that still hold deliveries on this channel (detached in the machine). */
  private readonly detached = new Set<string>();
  private idSeq = 0;
  /** The last queue declared on this channel: an empty queue name in later methods means it. */
  private lastQueue: string | null = null;

  constructor(private readonly conn: AmqpConnection, readonly number: number) {}

  private get vhost() {
    return this.conn.ctx.vhost;
  }

  // ---- frames from the connection ----

  onMethod(m: AmqpMethod): void {
    if (this.closing) {
      if (m.name === 'channel.close-ok') this.conn.channelClosed(this.number);
      else if (m.name === 'channel.close') this.conn.write(encodeMethodFrame(this.number, { name: 'channel.close-ok' }));
      return;
    }
    if (this.publishing !== null) throw new AmqpError(REPLY.UNEXPECTED_FRAME, `expected content header for class basic, got non content header frame instead`, ...ids(m.name));
    switch (m.name) {
      case 'channel.close':
        this.release();
        this.conn.write(encodeMethodFrame(this.number, { name: 'channel.close-ok' }));
        this.conn.channelClosed(this.number);
        return;
      case 'channel.close-ok':
        return;
      case 'channel.flow':
        if (!m.active) throw notImplemented('active=false');
        this.conn.write(encodeMethodFrame(this.number, { name: 'channel.flow-ok', active: true }));
        return;
      case 'basic.publish':
        if (m.immediate) throw new AmqpError(REPLY.NOT_IMPLEMENTED, 'immediate=true', ...ids(m.name));
        this.publishing = { method: m, flags: 0, properties: EMPTY, bodySize: 0, chunks: [], received: 0, headerSeen: false };
        return;
      case 'basic.ack':
        return this.settle(m.deliveryTag, m.multiple, 'settle', m.name);
      case 'basic.nack':
        return this.settle(m.deliveryTag, m.multiple, m.requeue ? 'return' : 'discard', m.name);
      case 'basic.reject':
        return this.settle(m.deliveryTag, false, m.requeue ? 'return' : 'discard', m.name);
      case 'basic.qos':
        if (m.prefetchSize !== 0) throw new AmqpError(REPLY.NOT_IMPLEMENTED, `prefetch_size!=0 (${m.prefetchSize})`, ...ids(m.name));
        this.prefetch = Math.min(m.prefetchCount, QUEUE_LIMITS.prefetchMax);
        this.globalQos = m.global && m.prefetchCount > 0;
        this.conn.write(encodeMethodFrame(this.number, { name: 'basic.qos-ok' }));
        return;
      case 'confirm.select':
        this.confirmMode = true;
        if (!m.nowait) this.conn.write(encodeMethodFrame(this.number, { name: 'confirm.select-ok' }));
        return;
      case 'queue.declare': return this.queueDeclare(m);
      case 'queue.bind':
      case 'queue.unbind': return this.queueBind(m);
      case 'queue.purge': return this.queuePurge(m);
      case 'queue.delete': return this.queueDelete(m);
      case 'exchange.declare': return this.exchangeDeclare(m);
      case 'exchange.delete': return this.exchangeDelete(m);
      case 'basic.consume': return this.consume(m);
      case 'basic.cancel': return this.cancel(m);
      case 'basic.get': return this.get(m);
      case 'basic.recover': return this.recover(m);
      case 'basic.recover-async':
      case 'exchange.bind':
      case 'exchange.unbind':
      case 'tx.select':
      case 'tx.commit':
      case 'tx.rollback':
        throw new AmqpError(REPLY.NOT_IMPLEMENTED, `${m.name} is not supported (docs/QUEUES.md)`, ...ids(m.name));
      default:
        throw new AmqpError(REPLY.COMMAND_INVALID, `'${m.name}' is not a method a client sends on a channel`, ...ids(m.name));
    }
  }

  onContentHeader(payload: Buffer): void {
    if (this.closing) return;
    const p = this.publishing;
    if (p === null || p.headerSeen) throw new AmqpError(REPLY.UNEXPECTED_FRAME, 'content header frame without a basic.publish before it');
    const h = decodeContentHeader(payload);
    if (h.classId !== CLASS_BASIC) throw new AmqpError(REPLY.FRAME_ERROR, `content header of class ${h.classId}, expected basic (60)`);
    p.headerSeen = true;
    if (h.bodySize > this.conn.ctx.limits.maxBodyBytes) {
      this.publishing = null;
      throw new AmqpError(REPLY.PRECONDITION_FAILED, `message size ${h.bodySize} is larger than configured max size ${this.conn.ctx.limits.maxBodyBytes}`, 60, 40);
    }
    p.flags = h.propertyFlags;
    p.properties = h.properties;
    p.bodySize = h.bodySize;
    if (p.bodySize === 0) this.published(p);
  }

  onContentBody(payload: Buffer): void {
    if (this.closing) return;
    const p = this.publishing;
    if (p === null || !p.headerSeen) throw new AmqpError(REPLY.UNEXPECTED_FRAME, 'content body frame without a content header before it');
    p.received += payload.length;
    if (p.received > p.bodySize) throw new AmqpError(REPLY.FRAME_ERROR, `content body of ${p.received}+ bytes, but its header said ${p.bodySize}`);
    p.chunks.push(payload);
    if (p.received === p.bodySize) this.published(p);
  }

  // ---- replies in order ----

  /** Runs `work` now (its command is proposed in arrival order) and writes its reply in this channel's reply order. */
  private answer(method: AmqpMethod['name'], work: () => Promise<{ frames: Buffer[]; after?: () => void }>): void {
    const slot: ReplySlot = { done: false, frames: [], error: null, after: null };
    this.replies.push(slot);
    let p: Promise<{ frames: Buffer[]; after?: () => void }>;
    try {
      p = work();
    } catch (e) {
      p = Promise.reject(e as Error);
    }
    p.then((r) => {
      slot.frames = r.frames;
      slot.after = r.after ?? null;
    }, (e: unknown) => {
      slot.error = unavailable(e, method);
    }).finally(() => {
      slot.done = true;
      this.flushReplies();
    });
  }

  private flushReplies(): void {
    while (this.replies.length > 0 && this.replies[0]!.done) {
      const slot = this.replies.shift()!;
      if (this.closing || this.released) continue;
      if (slot.error !== null) {
        this.replies.length = 0;
        this.conn.fail(slot.error, this.number);
        return;
      }
      for (const f of slot.frames) this.conn.write(f);
      slot.after?.();
    }
  }

  private method(m: AmqpMethod): Buffer {
    return encodeMethodFrame(this.number, m);
  }

  /** Writes `cmd` as the connection's user; a command failure becomes its AMQP error. */
  private async write(cmd: QueueCommand, method: AmqpMethod['name'], what: () => string): Promise<QueueResult> {
    const user = this.conn.user;
    if (user === null) throw new AmqpError(REPLY.COMMAND_INVALID, 'not logged in');
    const r = await this.vhost.write(cmd, user, what);
    if (r.type === 'error') throw resultError(r, method);
    return r;
  }

  private queueName(name: string, method: AmqpMethod['name']): string {
    if (name !== '') return name;
    if (this.lastQueue === null) throw new AmqpError(REPLY.NOT_ALLOWED, 'no previously declared queue', ...ids(method));
    return this.lastQueue;
  }

  // ---- queues and exchanges ----

  private queueDeclare(m: M<'queue.declare'>): void {
    let queue = m.queue;
    if (queue === '') queue = m.passive && this.lastQueue !== null ? this.lastQueue : `amq.gen-${randomBytes(16).toString('base64url')}`;
    else if (queue.startsWith('amq.') && !m.passive) throw new AmqpError(REPLY.ACCESS_REFUSED, `queue name ${quoted(queue)} contains reserved prefix 'amq.*'`, 50, 10);
    if (!m.passive) {
      if (m.exclusive) throw notImplemented(`exclusive queues are not supported: every queue is a replicated quorum queue (queue ${quoted(queue)}; docs/QUEUES.md)`);
      if (m.autoDelete) throw notImplemented(`auto-delete queues are not supported: every queue is a replicated quorum queue (queue ${quoted(queue)}; docs/QUEUES.md)`);
    }
    const args = m.passive ? null : queueArguments(queue, m.arguments);
    this.lastQueue = queue;
    this.answer(m.name, async () => {
      const r = await this.write({
        type: 'declareQueue', queue, durable: m.durable, passive: m.passive,
        deliveryLimit: args?.deliveryLimit ?? 0, deadLetterExchange: args?.deadLetterExchange ?? null, deadLetterRoutingKey: args?.deadLetterRoutingKey ?? null,
      }, m.name, () => `queue ${quoted(queue)} in vhost '/'`);
      if (r.type !== 'declared') throw new Error(`queue.declare answered ${r.type}`);
      return { frames: m.nowait ? [] : [this.method({ name: 'queue.declare-ok', queue, messageCount: r.messageCount, consumerCount: r.consumerCount })] };
    });
  }

  private queueBind(m: M<'queue.bind'> | M<'queue.unbind'>): void {
    const queue = this.queueName(m.queue, m.name);
    const routingKey = m.queue === '' && m.routingKey === '' ? queue : m.routingKey;
    if (m.exchange === '') throw new AmqpError(REPLY.ACCESS_REFUSED, 'operation not permitted on the default exchange', ...ids(m.name));
    const match = headerMatchOf(this.vhost.machine.exchange(m.exchange)?.kind === 'headers', m.arguments, m.name);
    const bind = m.name === 'queue.bind';
    this.answer(m.name, async () => {
      await this.write({ type: bind ? 'bind' : 'unbind', queue, exchange: m.exchange, routingKey, arguments: match }, m.name,
        () => `queue ${quoted(queue)} and exchange ${quoted(m.exchange)} in vhost '/'`);
      if (bind) return { frames: (m as M<'queue.bind'>).nowait ? [] : [this.method({ name: 'queue.bind-ok' })] };
      return { frames: [this.method({ name: 'queue.unbind-ok' })] };
    });
  }

  private queuePurge(m: M<'queue.purge'>): void {
    const queue = this.queueName(m.queue, m.name);
    this.answer(m.name, async () => {
      const r = await this.write({ type: 'purge', queue }, m.name, () => `queue ${quoted(queue)} in vhost '/'`);
      if (r.type !== 'purged') throw new Error(`queue.purge answered ${r.type}`);
      return { frames: m.nowait ? [] : [this.method({ name: 'queue.purge-ok', messageCount: r.messageCount })] };
    });
  }

  private queueDelete(m: M<'queue.delete'>): void {
    const queue = this.queueName(m.queue, m.name);
    this.answer(m.name, async () => {
      const r = await this.write({ type: 'deleteQueue', queue, ifUnused: m.ifUnused, ifEmpty: m.ifEmpty }, m.name, () => `queue ${quoted(queue)} in vhost '/'`);
      if (r.type !== 'queueDeleted') throw new Error(`queue.delete answered ${r.type}`);
      return { frames: m.nowait ? [] : [this.method({ name: 'queue.delete-ok', messageCount: r.messageCount })] };
    });
  }

  private exchangeDeclare(m: M<'exchange.declare'>): void {
    const exchange = m.exchange;
    if (exchange === '') throw new AmqpError(REPLY.ACCESS_REFUSED, 'operation not permitted on the default exchange', 40, 10);
    const kind = m.type;
    if (!m.passive && kind !== 'direct' && kind !== 'fanout' && kind !== 'topic' && kind !== 'headers') {
      throw new AmqpError(REPLY.COMMAND_INVALID, `unknown exchange type '${kind}'`, 40, 10);
    }
    if (!m.passive && fieldTableGet(m.arguments, 'alternate-exchange') !== undefined) throw notImplemented('alternate exchanges are not supported (docs/QUEUES.md)');
    this.answer(m.name, async () => {
      await this.write({
        type: 'exchangeDeclare', exchange, kind: m.passive ? 'direct' : kind as 'direct' | 'fanout' | 'topic' | 'headers',
        durable: m.durable, autoDelete: m.autoDelete, internal: m.internal, passive: m.passive,
      }, m.name, () => `exchange ${quoted(exchange)} in vhost '/'`);
      return { frames: m.nowait ? [] : [this.method({ name: 'exchange.declare-ok' })] };
    });
  }

  private exchangeDelete(m: M<'exchange.delete'>): void {
    if (m.exchange === '') throw new AmqpError(REPLY.ACCESS_REFUSED, 'operation not permitted on the default exchange', 40, 20);
    this.answer(m.name, async () => {
      await this.write({ type: 'exchangeDelete', exchange: m.exchange, ifUnused: m.ifUnused }, m.name, () => `exchange ${quoted(m.exchange)} in vhost '/'`);
      return { frames: m.nowait ? [] : [this.method({ name: 'exchange.delete-ok' })] };
    });
  }

  // ---- publish and confirms ----

  private published(p: Publishing): void {
    this.publishing = null;
    const m = p.method;
    const user = this.conn.user!;
    if ((p.flags & FLAG_EXPIRATION) !== 0) throw notImplemented('per-message TTL (the expiration property) is not supported (docs/QUEUES.md)');
    let headers: FieldTable | undefined;
    if ((p.flags & (FLAG_HEADERS | FLAG_USER_ID)) !== 0) {
      const props = decodeBasicProperties(p.flags, p.properties);
      if (props.userId !== undefined && props.userId !== user.name) {
        throw new AmqpError(REPLY.PRECONDITION_FAILED, `user_id property set to '${props.userId}' but authenticated user was '${user.name}'`, 60, 40);
      }
      headers = props.headers;
    }
    if (m.exchange !== '' && !this.vhost.machine.hasExchange(m.exchange)) throw new AmqpError(REPLY.NOT_FOUND, `no exchange ${quoted(m.exchange)} in vhost '/'`, 60, 40);
    const body = p.chunks.length === 1 ? p.chunks[0]! : Buffer.concat(p.chunks, p.received);
    const seq = this.confirmMode ? this.confirmBase + this.confirms.length : 0;
    if (this.confirmMode) this.confirms.push(PENDING);
    this.conn.ctx.stats.published++;
    this.conn.publishStarted();
    this.vhost.write({
      type: 'publish', exchange: m.exchange, routingKey: m.routingKey, mandatory: m.mandatory,
      properties: p.flags === 0 ? null : { flags: p.flags, bytes: p.properties },
      headers: headers === undefined ? [] : headersForRouting(headers), body,
    }, user, () => m.exchange === '' ? `queue ${quoted(m.routingKey)} in vhost '/'` : `exchange ${quoted(m.exchange)} in vhost '/'`).then((r) => {
      this.conn.publishSettled();
      if (r.type === 'error') {
        if (seq !== 0) this.confirmed(seq, NACK);
        this.conn.fail(resultError(r, 'basic.publish'), this.number);
        return;
      }
      if (r.type === 'published' && r.routed === 0 && m.mandatory && !this.closing && !this.released) {
        this.conn.ctx.stats.returned++;
        this.conn.cork();
        this.conn.write(this.method({ name: 'basic.return', replyCode: REPLY.NO_ROUTE, replyText: 'NO_ROUTE', exchange: m.exchange, routingKey: m.routingKey }));
        this.writeContent(p.flags, p.properties, body);
      }
      if (seq !== 0) this.confirmed(seq, ACK);
    }, (e: unknown) => {
      this.conn.publishSettled();
      if (e instanceof AmqpError) {
        if (seq !== 0) this.confirmed(seq, NACK);
        this.conn.fail(e, this.number);
        return;
      }
      // The outcome is unknown (no leader in time, the node stopping): nack, as RabbitMQ does when it cannot vouch for a message.
      this.vhost.log.debug({ err: (e as Error).message }, 'amqp: a publish did not complete');
      if (seq !== 0) this.confirmed(seq, NACK);
    });
  }

  /** Records a publish's outcome; writes the confirms that are now in order, runs of one kind as one frame with `multiple`. */
  private confirmed(seq: number, c: Confirm): void {
    this.confirms[seq - this.confirmBase] = c;
    if (seq !== this.confirmBase) return;
    let n = 0;
    while (n < this.confirms.length && this.confirms[n] !== PENDING) n++;
    if (this.closing || this.released) {
      this.confirms.splice(0, n);
      this.confirmBase += n;
      return;
    }
    let i = 0;
    while (i < n) {
      const kind = this.confirms[i];
      let j = i;
      while (j + 1 < n && this.confirms[j + 1] === kind) j++;
      const last = this.confirmBase + j;
      const multiple = j > i;
      if (kind === ACK) {
        this.conn.ctx.stats.confirmsAcked += j - i + 1;
        this.conn.write(this.method({ name: 'basic.ack', deliveryTag: last, multiple }));
      } else {
        this.conn.ctx.stats.confirmsNacked += j - i + 1;
        this.conn.write(this.method({ name: 'basic.nack', deliveryTag: last, multiple, requeue: false }));
      }
      i = j + 1;
    }
    this.confirms.splice(0, n);
    this.confirmBase += n;
  }

  // ---- consumers ----

  private consume(m: M<'basic.consume'>): void {
    const queue = this.queueName(m.queue, m.name);
    if (this.globalQos) throw new AmqpError(REPLY.NOT_IMPLEMENTED, `queue ${quoted(queue)} in vhost '/' does not support global qos`, 60, 20);
    if (fieldTableGet(m.arguments, 'x-priority') !== undefined) throw notImplemented('consumer priorities (x-priority) are not supported (docs/QUEUES.md)');
    const tag = m.consumerTag === '' ? `amq.ctag-${randomBytes(16).toString('base64url')}` : m.consumerTag;
    if (this.consumers.has(tag)) throw new AmqpError(REPLY.NOT_ALLOWED, `attempt to reuse consumer tag ${quoted(tag)}`, 60, 20);
    const c: ChannelConsumer = { tag, id: this.newId('c'), queue, noAck: m.noAck, started: false, early: [], lastTag: 0 };
    this.consumers.set(tag, c);
    this.vhost.addConsumer(c.id, this.sink(c));
    this.answer(m.name, async () => {
      try {
        await this.vhost.backend.whenReady();
        await this.write({
          type: 'attach', consumerId: c.id, queue, node: this.vhost.nodeId, prefetch: this.prefetch === 0 ? QUEUE_LIMITS.prefetchMax : this.prefetch,
          noAck: m.noAck, exclusive: m.exclusive,
        }, m.name, () => `queue ${quoted(queue)} in vhost '/'`);
      } catch (e) {
        this.forget(c);
        throw e;
      }
      return {
        frames: m.nowait ? [] : [this.method({ name: 'basic.consume-ok', consumerTag: tag })],
        after: () => {
          c.started = true;
          for (const d of c.early.splice(0)) this.deliver(c, d);
        },
      };
    });
  }

  private sink(c: ChannelConsumer): ConsumerSink {
    return {
      deliver: (e) => {
        if (this.consumers.get(c.tag) !== c) return;
        if (!c.started) c.early.push(e);
        else this.deliver(c, e);
      },
      removed: () => {
        if (this.consumers.get(c.tag) !== c) return;
        this.forget(c);
        // The log removed it (its queue deleted, or this node declared down): tell the client, as RabbitMQ does.
        if (this.conn.cancelNotify && !this.closing && !this.released) this.conn.write(this.method({ name: 'basic.cancel', consumerTag: c.tag, nowait: true }));
      },
      restored: () => {
        if (this.consumers.get(c.tag) !== c) return;
        if (this.vhost.machine.consumer(c.id) === undefined) {
          this.forget(c);
          if (this.conn.cancelNotify && !this.closing && !this.released) this.conn.write(this.method({ name: 'basic.cancel', consumerTag: c.tag, nowait: true }));
          return;
        }
        for (const f of this.vhost.machine.inFlight(c.id)) {
          if (f.deliveryTag > c.lastTag) {
            this.deliver(c, {
              type: 'delivered', queue: c.queue, consumerId: c.id, node: this.vhost.nodeId, deliveryTag: f.deliveryTag, messageId: f.messageId, body: f.body,
              deliveryCount: f.deliveryCount, deadLetter: f.deadLetter, properties: f.properties, exchange: f.exchange, routingKey: f.routingKey,
              deaths: f.deaths, redelivered: f.redelivered,
            });
          }
        }
      },
    };
  }

  private deliver(c: ChannelConsumer, e: DeliveredEvent): void {
    if (this.closing || this.released || e.deliveryTag <= c.lastTag) return;
    c.lastTag = e.deliveryTag;
    const tag = this.nextTag++;
    if (!c.noAck) this.outstanding.set(tag, { consumerId: c.id, tag: e.deliveryTag });
    this.conn.ctx.stats.delivered++;
    this.conn.cork();
    this.conn.write(this.method({ name: 'basic.deliver', consumerTag: c.tag, deliveryTag: tag, redelivered: e.redelivered, exchange: e.exchange, routingKey: e.routingKey }));
    this.writeDeliveryContent(e);
  }

  private writeDeliveryContent(e: Pick<DeliveredEvent, 'properties' | 'deliveryCount' | 'deaths' | 'body'>): void {
    let flags = e.properties?.flags ?? 0;
    let bytes: Uint8Array = e.properties?.bytes ?? EMPTY;
    if (e.deliveryCount > 1 || e.deaths.length > 0) {
      const extra = deathHeaders(e.deliveryCount, e.deaths);
      const out = withHeaders(flags, bytes, (h: FieldTable) => [...h.filter(([k]) => !extra.some(([x]) => x === k)), ...extra]);
      flags = out.flags;
      bytes = out.bytes;
    }
    this.writeContent(flags, bytes, e.body);
  }

  private writeContent(flags: number, properties: Uint8Array, body: Uint8Array): void {
    this.conn.write(encodeContentHeaderFrame(this.number, CLASS_BASIC, body.length, flags, properties));
    for (const f of encodeBodyFrames(this.number, body, this.conn.frameMax)) this.conn.write(f);
  }

  /**
   * basic.cancel: no more deliveries, but what the consumer holds stays with
   * this channel until it is acked, rejected or the channel closes, as in
   * RabbitMQ (the machine's detach). The detached consumer is cancelled once
   * it holds nothing here.
   */
  private cancel(m: M<'basic.cancel'>): void {
    const c = this.consumers.get(m.consumerTag);
    this.answer(m.name, async () => {
      if (c !== undefined) {
        this.forget(c);
        const holds = this.holds(c.id);
        if (holds) {
          this.detached.add(c.id);
          this.vhost.addConsumer(c.id, { deliver: () => undefined, removed: () => this.detached.delete(c.id), restored: () => undefined });
        }
        await this.vhost.writeAsSystem({ type: holds ? 'detach' : 'cancel', consumerId: c.id }).catch((err: unknown) => {
          this.vhost.log.info({ err: (err as Error).message }, 'amqp: cancelling a consumer failed; the reconciler retries');
        });
      }
      return { frames: m.nowait ? [] : [this.method({ name: 'basic.cancel-ok', consumerTag: m.consumerTag })] };
    });
  }

  /** Whether this channel holds deliveries of `consumerId` not yet acked. */
  private holds(consumerId: string): boolean {
    for (const h of this.outstanding.values()) if (h.consumerId === consumerId) return true;
    return false;
  }

  /** Detached consumers that hold nothing more here are cancelled. */
  private releaseDetached(consumerIds: Iterable<string>): void {
    for (const id of consumerIds) {
      if (!this.detached.has(id) || this.holds(id)) continue;
      this.detached.delete(id);
      this.vhost.removeConsumer(id);
      this.vhost.writeAsSystem({ type: 'cancel', consumerId: id }).catch((err: unknown) => {
        this.vhost.log.debug({ err: (err as Error).message, consumer: id }, 'amqp: cancelling a detached consumer failed; the reconciler retries');
      });
    }
  }

  /** Stops serving a consumer here (its deliveries are no longer written). */
  private forget(c: ChannelConsumer): void {
    if (this.consumers.get(c.tag) === c) this.consumers.delete(c.tag);
    this.vhost.removeConsumer(c.id);
  }

  private newId(kind: 'c' | 'g'): string {
    return `${this.conn.idPrefix}.${this.number}.${kind}${++this.idSeq}`;
  }

  // ---- basic.get ----

  private get(m: M<'basic.get'>): void {
    const queue = this.queueName(m.queue, m.name);
    let getter = this.getters.get(queue);
    if (getter === undefined) {
      getter = this.newId('g');
      this.getters.set(queue, getter);
      // A getter receives nothing pushed; it is registered so that the reconciler leaves it alone while this channel lives.
      const id = getter;
      this.vhost.addConsumer(id, { deliver: () => undefined, removed: () => this.dropGetter(queue, id), restored: () => undefined });
    }
    const consumerId = getter;
    this.answer(m.name, async () => {
      await this.vhost.backend.whenReady();
      const r = await this.write({ type: 'dequeue', queue, consumerId, node: this.vhost.nodeId, noAck: m.noAck }, m.name, () => `queue ${quoted(queue)} in vhost '/'`);
      if (r.type !== 'dequeued') throw new Error(`basic.get answered ${r.type}`);
      const msg = r.message;
      if (msg === null) return { frames: [this.method({ name: 'basic.get-empty', clusterId: '' })] };
      const tag = this.nextTag++;
      if (!m.noAck) this.outstanding.set(tag, { consumerId, tag: msg.deliveryTag });
      this.conn.ctx.stats.delivered++;
      return {
        frames: [this.method({
          name: 'basic.get-ok', deliveryTag: tag, redelivered: msg.redelivered, exchange: msg.exchange, routingKey: msg.routingKey, messageCount: r.messageCount,
        })],
        after: () => this.writeDeliveryContent(msg),
      };
    });
  }

  private dropGetter(queue: string, id: string): void {
    if (this.getters.get(queue) === id) this.getters.delete(queue);
    this.vhost.removeConsumer(id);
  }

  // ---- acks ----

  /** basic.ack / nack / reject: this channel's tags back to the machine's, one command per consumer. */
  private settle(deliveryTag: number, multiple: boolean, kind: 'settle' | 'return' | 'discard', method: AmqpMethod['name']): void {
    const byConsumer = new Map<string, number[]>();
    const take = (tag: number, h: Held): void => {
      this.outstanding.delete(tag);
      const list = byConsumer.get(h.consumerId);
      if (list === undefined) byConsumer.set(h.consumerId, [h.tag]);
      else list.push(h.tag);
    };
    if (multiple) {
      for (const [tag, h] of this.outstanding) {
        if (deliveryTag !== 0 && tag > deliveryTag) break;
        take(tag, h);
      }
      if (byConsumer.size === 0 && deliveryTag !== 0) throw new AmqpError(REPLY.PRECONDITION_FAILED, `unknown delivery tag ${deliveryTag}`, ...ids(method));
    } else {
      const h = this.outstanding.get(deliveryTag);
      if (h === undefined) throw new AmqpError(REPLY.PRECONDITION_FAILED, `unknown delivery tag ${deliveryTag}`, ...ids(method));
      take(deliveryTag, h);
    }
    for (const [consumerId, deliveryTags] of byConsumer) void this.sendSettle(kind, consumerId, deliveryTags);
    if (this.detached.size > 0) this.releaseDetached(byConsumer.keys());
  }

  private sendSettle(kind: 'settle' | 'return' | 'discard', consumerId: string, deliveryTags: number[]): Promise<void> {
    const user = this.conn.user!;
    for (let i = 0; i < deliveryTags.length; i += QUEUE_LIMITS.tagsPerCommandMax) {
      const part = deliveryTags.slice(i, i + QUEUE_LIMITS.tagsPerCommandMax);
      const queue = this.vhost.machine.consumer(consumerId)?.queue ?? '?';
      const p = this.vhost.write({ type: kind, consumerId, deliveryTags: part }, user, () => `queue ${quoted(queue)} in vhost '/'`);
      if (i + part.length >= deliveryTags.length) {
        return p.then((r) => {
          // A consumer the log already removed (cancelled, its queue deleted) has no deliveries left to settle: nothing to do.
          if (r.type === 'error' && r.error !== 'consumerNotFound') this.vhost.log.debug({ error: r.error }, `amqp: ${kind} refused`);
        }, (e: unknown) => {
          if (e instanceof AmqpError) this.conn.fail(e, this.number);
          else this.vhost.log.debug({ err: (e as Error).message }, `amqp: ${kind} did not complete; the messages come back when the channel closes`);
        });
      }
      void p.catch(() => undefined);
    }
    return Promise.resolve();
  }

  private recover(m: M<'basic.recover'>): void {
    if (!m.requeue) throw notImplemented('basic.recover with requeue=false');
    const byConsumer = new Map<string, number[]>();
    for (const h of this.outstanding.values()) {
      const list = byConsumer.get(h.consumerId);
      if (list === undefined) byConsumer.set(h.consumerId, [h.tag]);
      else list.push(h.tag);
    }
    this.outstanding.clear();
    this.answer(m.name, async () => {
      const sent = [...byConsumer].map(([id, tags]) => this.sendSettle('return', id, tags));
      this.releaseDetached([...this.detached]);
      await Promise.all(sent);
      return { frames: [this.method({ name: 'basic.recover-ok' })] };
    });
  }

  // ---- closing ----

  /** Closes this channel with a (soft) error: channel.close, then everything but close-ok is ignored. */
  closeWith(e: AmqpError): void {
    if (this.closing) return;
    this.conn.write(this.method({ name: 'channel.close', replyCode: e.code, replyText: e.replyText, classId: e.classId, methodId: e.methodId }));
    this.release();
    this.closing = true;
  }

  /** Cancels this channel's consumers and getters through the log (their unacknowledged messages go back); idempotent. */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.publishing = null;
    this.replies.length = 0;
    const held = [...[...this.consumers.values()].map((c) => c.id), ...this.getters.values(), ...this.detached];
    this.consumers.clear();
    this.getters.clear();
    this.detached.clear();
    this.outstanding.clear();
    for (const id of held) {
      this.vhost.removeConsumer(id);
      this.vhost.writeAsSystem({ type: 'cancel', consumerId: id }).catch((err: unknown) => {
        this.vhost.log.debug({ err: (err as Error).message, consumer: id }, 'amqp: cancelling a closed channel\'s consumer failed; the reconciler retries');
      });
    }
  }
}

const EMPTY = Buffer.alloc(0);

