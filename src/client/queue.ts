// A typed TypeScript client of quorumlog's quorum queues (the gRPC service of
// proto/quorumlog/queue.proto): declare, publish (resolves on the publisher
// confirm, i.e. once committed), consume as an async iterator of deliveries
// that can be acked or nacked, and stats.
//
// Endpoints: any node serves every call (followers forward writes to the
// leader). A call that gets UNAVAILABLE (no leader, node down, outcome
// unknown) is tried again on the next endpoint, round after round, for up to
// `retryForMs`. A publish retried after an unknown outcome may be enqueued
// twice: delivery is at least once.
//
//   const client = new QueueClient({ endpoints: ['127.0.0.1:2379'] });
//   await client.declare('jobs', { deliveryLimit: 5, deadLetterQueue: 'jobs.dead' });
//   await client.publish('jobs', 'hello');
//   const consumer = await client.consume('jobs', { prefetch: 10 });
//   for await (const d of consumer) { work(d.body); await d.ack(); }

import * as grpc from '@grpc/grpc-js';
import { queueServiceClient } from '../server/queue/proto.js';
import type { DeadLetterOrigin, DeadLetterReason, GrpcQueueStats } from '../services/queue/types.js';

/** Options of {@link QueueClient}. */
export interface QueueClientOptions {
  /** host:port of the nodes' client ports, tried in order. */
  readonly endpoints: readonly string[];
  /** Deadline of one call. Default 5000 ms. */
  readonly timeoutMs?: number;
  /** How long UNAVAILABLE answers are retried across endpoints. Default 10000 ms; 0 = one round. */
  readonly retryForMs?: number;
  /** Default: insecure. */
  readonly credentials?: grpc.ChannelCredentials;
  /** grpc-js client options of every channel (e.g. an interceptor that sends an etcd auth `token` with each call). */
  readonly clientOptions?: grpc.ClientOptions;
}

/** A failed call: the gRPC status and its message. */
export class QueueClientError extends Error {
  override readonly name = 'QueueClientError';
  constructor(readonly code: grpc.status, message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** One message delivered to a consumer. */
export interface Delivery {
  readonly queue: string;
  readonly consumerId: string;
  readonly deliveryTag: number;
  readonly messageId: number;
  readonly body: Uint8Array;
  /** 1 on the first delivery, 2 on the first redelivery, ... */
  readonly deliveryCount: number;
  /** Set when the message was dead-lettered into this queue. */
  readonly deadLetter: DeadLetterOrigin | null;
  /** Acknowledges this delivery. */
  ack(): Promise<void>;
  /** Returns it to the queue (or dead-letters it at once with `discard`). */
  nack(opts?: { discard?: boolean }): Promise<void>;
}

/** What ack / nack report. */
export interface SettleOutcome {
  readonly settled: number;
  readonly unknown: number;
}

interface WireDelivery {
  queue: string; delivery_tag: string; message_id: string; body: Buffer; delivery_count: number;
  dead_letter: { queue: string; message_id: string; reason: string } | null;
}
type WireConsumeResponse = { kind?: 'started' | 'delivery'; started?: { consumer_id: string } | null; delivery?: WireDelivery | null };
interface WireStats {
  queue: string; delivery_limit: number; dead_letter_queue: string; ready: string; unacked: string; consumers: number;
  enqueued: string; acked: string; dead_lettered: string; dropped: string;
}

type Unary = (req: unknown, md: grpc.Metadata, options: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;
type RawClient = grpc.Client & Record<string, Unary> & { Consume(req: unknown, options?: grpc.CallOptions): grpc.ClientReadableStream<WireConsumeResponse> };

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function retriable(e: unknown): boolean {
  const code = (e as grpc.ServiceError).code;
  return code === grpc.status.UNAVAILABLE || code === grpc.status.DEADLINE_EXCEEDED;
}

function asClientError(e: unknown): Error {
  const s = e as grpc.ServiceError;
  if (typeof s.code === 'number') return new QueueClientError(s.code, s.details || s.message, { cause: e });
  return e as Error;
}

/** A client of the queue service over one or more endpoints. */
export class QueueClient {
  private readonly endpoints: readonly string[];
  private readonly timeoutMs: number;
  private readonly retryForMs: number;
  private readonly credentials: grpc.ChannelCredentials;
  private readonly clientOptions: grpc.ClientOptions;
  private readonly clients = new Map<string, RawClient>();
  /** The endpoint that answered last (tried first next time). */
  private current = 0;

  constructor(opts: QueueClientOptions) {
    if (opts.endpoints.length === 0) throw new RangeError('no endpoints given');
    this.endpoints = [...opts.endpoints];
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.retryForMs = opts.retryForMs ?? 10_000;
    this.credentials = opts.credentials ?? grpc.credentials.createInsecure();
    this.clientOptions = opts.clientOptions ?? {};
  }

  private client(endpoint: string): RawClient {
    let c = this.clients.get(endpoint);
    if (c === undefined) {
      const Ctor = queueServiceClient();
      c = new Ctor(endpoint, this.credentials, this.clientOptions) as unknown as RawClient;
      this.clients.set(endpoint, c);
    }
    return c;
  }

  /** Runs `attempt` on the endpoints in turn until one succeeds or fails for good. */
  private async withRetry<T>(attempt: (client: RawClient) => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.retryForMs;
    let last: unknown = null;
    for (let round = 0; ; round++) {
      for (let i = 0; i < this.endpoints.length; i++) {
        const at = (this.current + i) % this.endpoints.length;
        try {
          const r = await attempt(this.client(this.endpoints[at] as string));
          this.current = at;
          return r;
        } catch (e) {
          last = e;
          if (!retriable(e)) throw asClientError(e);
        }
      }
      if (Date.now() >= deadline) throw asClientError(last);
      await sleep(Math.min(100 * (round + 1), 500));
    }
  }

  private call<Res>(method: string, req: object): Promise<Res> {
    return this.withRetry((client) => new Promise<Res>((resolve, reject) => {
      (client[method] as Unary).call(client, req, new grpc.Metadata(), { deadline: Date.now() + this.timeoutMs },
        (err, res) => (err !== null ? reject(err) : resolve(res as Res)));
    }));
  }

  /** Creates a queue, or checks that it exists with these arguments (FAILED_PRECONDITION otherwise). */
  async declare(queue: string, opts: { deliveryLimit?: number; deadLetterQueue?: string | null } = {}): Promise<{ created: boolean }> {
    const r = await this.call<{ created: boolean }>('Declare', { queue, delivery_limit: opts.deliveryLimit ?? 0, dead_letter_queue: opts.deadLetterQueue ?? '' });
    return { created: r.created };
  }

  /** Publishes a message; resolves with its id in the queue once it is committed (the publisher confirm). */
  async publish(queue: string, body: Uint8Array | string): Promise<number> {
    const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    const r = await this.call<{ message_id: string }>('Publish', { queue, body: bytes });
    return Number(r.message_id);
  }

  /** Acknowledges deliveries of a consumer (any endpoint will do). */
  async ack(consumerId: string, deliveryTags: readonly number[]): Promise<SettleOutcome> {
    const r = await this.call<SettleOutcome>('Ack', { consumer_id: consumerId, delivery_tags: deliveryTags.map(String) });
    return { settled: r.settled, unknown: r.unknown };
  }

  /** Returns deliveries to their queue, or with `discard` dead-letters them. */
  async nack(consumerId: string, deliveryTags: readonly number[], opts: { discard?: boolean } = {}): Promise<SettleOutcome> {
    const r = await this.call<SettleOutcome>('Nack', { consumer_id: consumerId, delivery_tags: deliveryTags.map(String), discard: opts.discard === true });
    return { settled: r.settled, unknown: r.unknown };
  }

  /** Statistics of one queue, or of all. Linearizable. */
  async stats(queue?: string): Promise<GrpcQueueStats[]> {
    const r = await this.call<{ queues: WireStats[] }>('Stats', { queue: queue ?? '' });
    return r.queues.map((s) => ({
      queue: s.queue, deliveryLimit: s.delivery_limit, deadLetterQueue: s.dead_letter_queue === '' ? null : s.dead_letter_queue,
      ready: Number(s.ready), unacked: Number(s.unacked), consumers: s.consumers, enqueued: Number(s.enqueued), acked: Number(s.acked),
      deadLettered: Number(s.dead_lettered), dropped: Number(s.dropped),
    }));
  }

  /**
   * Attaches a consumer; resolves once it is attached (its id is known).
   * Iterate the consumer for deliveries; `prefetch` bounds how many are
   * unacknowledged at a time (0 = the server's default).
   */
  consume(queue: string, opts: { prefetch?: number } = {}): Promise<Consumer> {
    return this.withRetry((client) => Consumer.open(this, client, queue, opts.prefetch ?? 0, this.timeoutMs));
  }

  /** Closes every channel (open consumers end). */
  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}

/** An attached consumer: an async iterable of deliveries, which ends when the consumer is cancelled and throws when the stream fails. */
export class Consumer implements AsyncIterable<Delivery> {
  private readonly buffered: Delivery[] = [];
  /** Callers of next() waiting for a delivery, first first. */
  private readonly waiting: { resolve: (r: IteratorResult<Delivery>) => void; reject: (e: Error) => void }[] = [];
  private failure: Error | null = null;
  private ended = false;

  private constructor(private readonly owner: QueueClient, private readonly stream: grpc.ClientReadableStream<WireConsumeResponse>, readonly id: string) {}

  /** Opens the stream on one endpoint and waits for the consumer's id. */
  static open(owner: QueueClient, client: RawClient, queue: string, prefetch: number, timeoutMs: number): Promise<Consumer> {
    const stream = client.Consume({ queue, prefetch });
    return new Promise<Consumer>((resolve, reject) => {
      let consumer: Consumer | null = null;
      const timer = setTimeout(() => {
        if (consumer === null) {
          stream.cancel();
          reject(Object.assign(new Error('consume: no answer in time'), { code: grpc.status.DEADLINE_EXCEEDED }));
        }
      }, timeoutMs);
      stream.on('data', (m: WireConsumeResponse) => {
        if (consumer === null) {
          if (m.started) {
            clearTimeout(timer);
            consumer = new Consumer(owner, stream, m.started.consumer_id);
            resolve(consumer);
          }
          return;
        }
        if (m.delivery) consumer.push(m.delivery);
      });
      stream.on('error', (e: grpc.ServiceError) => {
        clearTimeout(timer);
        if (consumer === null) reject(e);
        else consumer.fail(e.code === grpc.status.CANCELLED ? null : asClientError(e));
      });
      stream.on('end', () => {
        clearTimeout(timer);
        if (consumer === null) reject(Object.assign(new Error('consume: the stream ended before the consumer was attached'), { code: grpc.status.UNAVAILABLE }));
        else consumer.fail(null);
      });
    });
  }

  private push(w: WireDelivery): void {
    const reason = w.dead_letter?.reason;
    const d: Delivery = {
      queue: w.queue, consumerId: this.id, deliveryTag: Number(w.delivery_tag), messageId: Number(w.message_id),
      body: new Uint8Array(w.body.buffer, w.body.byteOffset, w.body.byteLength), deliveryCount: w.delivery_count,
      deadLetter: w.dead_letter ? { queue: w.dead_letter.queue, messageId: Number(w.dead_letter.message_id), reason: reason as DeadLetterReason } : null,
      ack: async () => {
        await this.owner.ack(this.id, [d.deliveryTag]);
      },
      nack: async (o = {}) => {
        await this.owner.nack(this.id, [d.deliveryTag], o);
      },
    };
    const w2 = this.waiting.shift();
    if (w2 !== undefined) w2.resolve({ value: d, done: false });
    else this.buffered.push(d);
  }

  /** The stream is over: null = normally. */
  private fail(e: Error | null): void {
    if (this.ended) return;
    this.ended = true;
    this.failure = e;
    for (const w of this.waiting.splice(0)) {
      if (e === null) w.resolve({ value: undefined, done: true });
      else w.reject(e);
    }
  }

  /** The next delivery; done when the consumer was cancelled; throws the stream's error. */
  next(): Promise<IteratorResult<Delivery>> {
    const d = this.buffered.shift();
    if (d !== undefined) return Promise.resolve({ value: d, done: false });
    if (this.ended) return this.failure === null ? Promise.resolve({ value: undefined, done: true }) : Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
    });
  }

  /** Ends the stream: the server cancels the consumer and its unacknowledged messages go back to the queue. */
  cancel(): void {
    this.stream.cancel();
    this.fail(null);
  }

  [Symbol.asyncIterator](): AsyncIterator<Delivery> {
    return {
      next: () => this.next(),
      return: () => {
        this.cancel();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}
