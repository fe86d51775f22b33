// The quorum queue service's replicated state machine (RabbitMQ's
// rabbit_fifo, in our terms): named FIFO queues, consumers with a prefetch
// limit, deliveries assigned at apply time, acks, returns, dead-lettering.
// Every replica applying the same commands reaches the same state and emits
// the same events; the node that serves a consumer turns its 'delivered'
// events into messages on the consumer's stream (src/server/queue).
//
// The model, per queue:
// - Message ids are 1, 2, 3, ... in enqueue order. A message is in exactly
//   one of: never delivered (ids in [firstUndelivered, nextMessageId)),
//   returned and waiting (`returned`, sorted by id), in flight to exactly
//   one consumer (held), or gone (acked, dead-lettered or dropped).
// - Ready messages go out in id order: returned ones first (every returned
//   id is below firstUndelivered, since deliveries from the never-delivered
//   range go in id order), so a returned message goes back ahead of newer
//   ones, and first deliveries happen in id order.
// - Assignment: whenever a queue has ready messages and a consumer with
//   credit (in flight < prefetch), the next ready message goes to the next
//   consumer with credit in round-robin order from a cursor over the
//   consumers in attach order; repeated until one side runs out.
// - A message that comes back (return, cancel, node down) after its
//   deliveryLimit-th delivery is dead-lettered (reason 'deliveryLimit')
//   instead of requeued; a discarded one is dead-lettered at once ('rejected').
//   Dead-lettering enqueues a copy into the queue's dead-letter queue when
//   that queue exists, and otherwise drops the message and counts it.
//
// Determinism: nothing here reads a clock or randomness; every iteration
// whose order matters is over a sorted list or a stored order (the snapshot
// stores the consumers' service order and the cursor), never over a Map
// whose insertion order a restore could change.

import type { LogIndex } from '../../protocol/ids.js';
import { assertNever } from '../../util/assert.js';
import { ByteReader, ByteWriter } from '../kv/codec.js';
import type { ServiceMachine, ServiceStateMachine } from '../machine.js';
import { decodeQueueCommand, readQueueString, writeQueueString } from './codec.js';
import {
  QUEUE_LIMITS,
  type ConsumerInfo,
  type ConsumerRemovedReason,
  type DeadLetterOrigin,
  type DeadLetterReason,
  type InFlight,
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

interface Message {
  readonly id: number;
  readonly body: Uint8Array;
  /** Deliveries so far. */
  deliveries: number;
  readonly deadLetter: DeadLetterOrigin | null;
  /** The consumer holding it, or null when it is not in flight. */
  holder: string | null;
}

/** Invariants: see the header; `consumers` lists the ids of this queue's consumers in attach order; 0 <= cursor < max(1, consumers.length). */
interface Queue {
  readonly name: string;
  readonly deliveryLimit: number;
  readonly deadLetterQueue: string | null;
  nextMessageId: number;
  firstUndelivered: number;
  /** Every message not yet gone, by id. */
  readonly messages: Map<number, Message>;
  /** Returned messages waiting, ids ascending. */
  returned: number[];
  consumers: string[];
  cursor: number;
  enqueued: number;
  acked: number;
  deadLettered: number;
  dropped: number;
}

/** Invariant: inFlight holds tag → message id for every message this consumer holds, tags ascending; size <= prefetch. */
interface Consumer {
  readonly id: string;
  readonly queue: string;
  readonly node: string;
  readonly prefetch: number;
  readonly attachIndex: number;
  nextTag: number;
  readonly inFlight: Map<number, number>;
}

const SNAPSHOT_MAGIC = new Uint8Array([0x51, 0x51, 0x55, 0x45]); // "QQUE"
const SNAPSHOT_VERSION = 1;
const REASONS: readonly DeadLetterReason[] = ['deliveryLimit', 'rejected'];

const byString = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** The quorum queues of one replica. */
export class QueueStateMachine implements ServiceMachine {
  private queues = new Map<string, Queue>();
  private consumers = new Map<string, Consumer>();
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
      case 'declare': return this.declare(cmd.queue, cmd.deliveryLimit, cmd.deadLetterQueue);
      case 'enqueue': {
        const q = this.queues.get(cmd.queue);
        if (q === undefined) return err('queueNotFound', `queue ${cmd.queue} does not exist`);
        const id = this.enqueue(q, cmd.body, null);
        return { type: 'enqueued', queue: q.name, messageId: id };
      }
      case 'attach': {
        const q = this.queues.get(cmd.queue);
        if (q === undefined) return err('queueNotFound', `queue ${cmd.queue} does not exist`);
        if (this.consumers.has(cmd.consumerId)) return err('consumerExists', `consumer ${cmd.consumerId} already exists`);
        const c: Consumer = {
          id: cmd.consumerId, queue: q.name, node: cmd.node, prefetch: cmd.prefetch, attachIndex: index, nextTag: 1, inFlight: new Map(),
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

  private declare(name: string, deliveryLimit: number, deadLetterQueue: string | null): QueueResult {
    if (deadLetterQueue === name) return err('invalid', `queue ${name} cannot dead-letter into itself`);
    const existing = this.queues.get(name);
    if (existing !== undefined) {
      if (existing.deliveryLimit !== deliveryLimit || existing.deadLetterQueue !== deadLetterQueue) {
        return err('queueMismatch', `queue ${name} exists with delivery limit ${existing.deliveryLimit} and dead-letter queue ${existing.deadLetterQueue ?? '(none)'}`);
      }
      return { type: 'declared', queue: name, created: false };
    }
    this.queues.set(name, {
      name, deliveryLimit, deadLetterQueue, nextMessageId: 1, firstUndelivered: 1, messages: new Map(), returned: [],
      consumers: [], cursor: 0, enqueued: 0, acked: 0, deadLettered: 0, dropped: 0,
    });
    return { type: 'declared', queue: name, created: true };
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

  private enqueue(q: Queue, body: Uint8Array, deadLetter: DeadLetterOrigin | null): number {
    const id = q.nextMessageId++;
    q.messages.set(id, { id, body, deliveries: 0, deadLetter, holder: null });
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

  private deadLetter(q: Queue, m: Message, reason: DeadLetterReason): void {
    q.messages.delete(m.id);
    const target = q.deadLetterQueue === null ? undefined : this.queues.get(q.deadLetterQueue);
    if (target === undefined) {
      q.dropped++;
      this.pending.push({ type: 'deadLettered', queue: q.name, messageId: m.id, reason, target: null });
      return;
    }
    q.deadLettered++;
    this.enqueue(target, m.body, { queue: q.name, messageId: m.id, reason });
    this.pending.push({ type: 'deadLettered', queue: q.name, messageId: m.id, reason, target: target.name });
  }

  /** Removes a consumer and gives back what it held (in tag order); returns how many it held. */
  private removeConsumer(c: Consumer, reason: ConsumerRemovedReason): number {
    const q = this.queueOf(c);
    this.consumers.delete(c.id);
    const at = q.consumers.indexOf(c.id);
    if (at >= 0) {
      q.consumers.splice(at, 1);
      if (at < q.cursor) q.cursor--;
      if (q.cursor >= q.consumers.length) q.cursor = 0;
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
      if (q.returned.length === 0 && q.firstUndelivered >= q.nextMessageId) return;
      const c = this.nextWithCredit(q);
      if (c === null) return;
      let id: number;
      if (q.returned.length > 0) id = q.returned.shift() as number;
      else id = q.firstUndelivered++;
      const m = this.messageOf(q, id);
      m.deliveries++;
      m.holder = c.id;
      const tag = c.nextTag++;
      c.inFlight.set(tag, id);
      this.pending.push({
        type: 'delivered', queue: q.name, consumerId: c.id, node: c.node, deliveryTag: tag, messageId: id, body: m.body,
        deliveryCount: m.deliveries, deadLetter: m.deadLetter,
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
    for (const id of q.consumers) unacked += (this.consumers.get(id) as Consumer).inFlight.size;
    return {
      queue: q.name, deliveryLimit: q.deliveryLimit, deadLetterQueue: q.deadLetterQueue, ready: q.messages.size - unacked, unacked,
      consumers: q.consumers.length, enqueued: q.enqueued, acked: q.acked, deadLettered: q.deadLettered, dropped: q.dropped,
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
      return { deliveryTag: tag, messageId: id, body: m.body, deliveryCount: m.deliveries, deadLetter: m.deadLetter };
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

  // ---- snapshot ----

  /**
   * The whole state, canonically: "QQUE", u8 version, count queues (by name),
   * each: str name, int deliveryLimit, u8 hasDlq [str dlq], int nextMessageId,
   * int firstUndelivered, int enqueued, int acked, int deadLettered,
   * int dropped, int cursor; count messages (by id): int id, bytes body,
   * int deliveries, u8 hasOrigin [str queue, int messageId, u8 reason];
   * count returned: int id...; count consumers (attach order): str id,
   * str node, int prefetch, int attachIndex, int nextTag, count inFlight
   * (by tag): int tag, int messageId.
   */
  snapshot(): Uint8Array {
    const w = new ByteWriter();
    w.raw(SNAPSHOT_MAGIC);
    w.u8(SNAPSHOT_VERSION);
    const names = [...this.queues.keys()].sort(byString);
    w.count(names.length);
    for (const name of names) {
      const q = this.queues.get(name) as Queue;
      writeQueueString(w, q.name, 'queue name');
      w.int(q.deliveryLimit);
      if (q.deadLetterQueue === null) w.u8(0);
      else {
        w.u8(1);
        writeQueueString(w, q.deadLetterQueue, 'dead-letter queue');
      }
      w.int(q.nextMessageId);
      w.int(q.firstUndelivered);
      w.int(q.enqueued);
      w.int(q.acked);
      w.int(q.deadLettered);
      w.int(q.dropped);
      w.int(q.cursor);
      const ids = [...q.messages.keys()].sort((a, b) => a - b);
      w.count(ids.length);
      for (const id of ids) {
        const m = q.messages.get(id) as Message;
        w.int(m.id);
        w.bytes(m.body);
        w.int(m.deliveries);
        if (m.deadLetter === null) w.u8(0);
        else {
          w.u8(1);
          writeQueueString(w, m.deadLetter.queue, 'origin queue');
          w.int(m.deadLetter.messageId);
          w.u8(REASONS.indexOf(m.deadLetter.reason));
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
        const tags = [...c.inFlight.keys()].sort((a, b) => a - b);
        w.count(tags.length);
        for (const t of tags) {
          w.int(t);
          w.int(c.inFlight.get(t) as number);
        }
      }
    }
    return w.finish();
  }

  /** Replaces the state with a snapshot's (all or nothing: a bad snapshot throws QueueSnapshotError and changes nothing), then emits 'restored'. */
  restore(data: Uint8Array): void {
    let parsed: { queues: Map<string, Queue>; consumers: Map<string, Consumer> };
    try {
      parsed = parseSnapshot(data);
    } catch (e) {
      if (e instanceof QueueSnapshotError) throw e;
      throw new QueueSnapshotError(`malformed queue snapshot: ${(e as Error).message}`, { cause: e });
    }
    this.queues = parsed.queues;
    this.consumers = parsed.consumers;
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
  return { consumerId: c.id, queue: c.queue, node: c.node, prefetch: c.prefetch, attachIndex: c.attachIndex };
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

function parseSnapshot(data: Uint8Array): { queues: Map<string, Queue>; consumers: Map<string, Consumer> } {
  const bad = (message: string): never => {
    throw new QueueSnapshotError(message);
  };
  const r = new ByteReader(data);
  const magic = r.raw(SNAPSHOT_MAGIC.byteLength);
  if (!magic.every((b, i) => b === SNAPSHOT_MAGIC[i])) bad('not a queue snapshot (bad magic)');
  const version = r.u8();
  if (version !== SNAPSHOT_VERSION) bad(`unsupported queue snapshot version ${version}`);
  const queues = new Map<string, Queue>();
  const consumers = new Map<string, Consumer>();
  const nonNeg = (what: string): number => {
    const n = r.int();
    if (n < 0) bad(`${what} is negative`);
    return n;
  };
  let lastName: string | null = null;
  for (let nq = r.count(); nq > 0; nq--) {
    const name = readQueueString(r, 'queue name');
    if (lastName !== null && byString(lastName, name) >= 0) bad(`queues out of order at ${name}`);
    lastName = name;
    const deliveryLimit = nonNeg('delivery limit');
    if (deliveryLimit > QUEUE_LIMITS.deliveryLimitMax) bad(`delivery limit ${deliveryLimit} is too large`);
    const deadLetterQueue = r.flags(1) !== 0 ? readQueueString(r, 'dead-letter queue') : null;
    if (deadLetterQueue === name) bad(`queue ${name} dead-letters into itself`);
    const nextMessageId = nonNeg('next message id');
    const firstUndelivered = nonNeg('first undelivered id');
    if (nextMessageId < 1 || firstUndelivered < 1 || firstUndelivered > nextMessageId) bad(`queue ${name}: bad message id range`);
    const q: Queue = {
      name, deliveryLimit, deadLetterQueue, nextMessageId, firstUndelivered, messages: new Map(), returned: [], consumers: [],
      enqueued: nonNeg('enqueued'), acked: nonNeg('acked'), deadLettered: nonNeg('deadLettered'), dropped: nonNeg('dropped'), cursor: nonNeg('cursor'),
    };
    let lastId = 0;
    for (let n = r.count(); n > 0; n--) {
      const id = r.int();
      if (id <= lastId || id >= nextMessageId) bad(`queue ${name}: message id ${id} out of order or range`);
      lastId = id;
      const body = r.bytes();
      const deliveries = nonNeg('deliveries');
      let deadLetter: DeadLetterOrigin | null = null;
      if (r.flags(1) !== 0) {
        const queue = readQueueString(r, 'origin queue');
        const messageId = nonNeg('origin message id');
        deadLetter = { queue, messageId, reason: r.enumOf(REASONS, 'dead-letter reason') };
      }
      if (id >= firstUndelivered && deliveries !== 0) bad(`queue ${name}: undelivered message ${id} has deliveries`);
      q.messages.set(id, { id, body, deliveries, deadLetter, holder: null });
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
    for (let n = r.count(); n > 0; n--) {
      const id = readQueueString(r, 'consumer id');
      if (consumers.has(id)) bad(`consumer ${id} appears twice`);
      const node = readQueueString(r, 'node id');
      const prefetch = nonNeg('prefetch');
      if (prefetch < 1 || prefetch > QUEUE_LIMITS.prefetchMax) bad(`consumer ${id}: prefetch ${prefetch} out of range`);
      const attachIndex = nonNeg('attach index');
      const nextTag = nonNeg('next tag');
      const c: Consumer = { id, queue: name, node, prefetch, attachIndex, nextTag, inFlight: new Map() };
      let lastTag = 0;
      for (let k = r.count(); k > 0; k--) {
        const tag = r.int();
        if (tag <= lastTag || tag >= nextTag) bad(`consumer ${id}: tag ${tag} out of order or range`);
        lastTag = tag;
        const mid = r.int();
        const m = q.messages.get(mid);
        if (m === undefined || m.holder !== null || returnedSet.has(mid) || mid >= firstUndelivered) bad(`consumer ${id}: message ${mid} cannot be in flight`);
        (m as Message).holder = id;
        c.inFlight.set(tag, mid);
      }
      if (c.inFlight.size > prefetch) bad(`consumer ${id} holds more than its prefetch`);
      consumers.set(id, c);
      q.consumers.push(id);
    }
    if (q.cursor >= Math.max(1, q.consumers.length)) bad(`queue ${name}: cursor out of range`);
    for (const m of q.messages.values()) {
      if (m.id < firstUndelivered && m.holder === null && !returnedSet.has(m.id)) bad(`queue ${name}: message ${m.id} is neither ready nor in flight`);
      if (m.id < firstUndelivered && m.deliveries < 1) bad(`queue ${name}: delivered message ${m.id} has no deliveries`);
    }
    queues.set(name, q);
  }
  r.end();
  return { queues, consumers };
}
