// The queue gRPC service in process, over a LocalQueueBackend, through the
// typed client (src/client/queue.ts) and a raw grpc-js client for requests
// the typed client would never send: publisher confirms, prefetch, acks,
// nacks ahead of newer messages, the delivery limit and dead-lettering, a
// stream that ends (its messages come back), a consumer removed by nodeDown,
// the reconciler, the resync after a snapshot, and bad input.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import { pino } from 'pino';
import { QueueClient, QueueClientError, type Consumer, type Delivery } from '../../client/queue.js';
import { QueueStateMachine } from '../../services/queue/state-machine.js';
import { LocalQueueBackend } from './backend.js';
import { queueServiceClient } from './proto.js';
import { addQueueService, type QueueService } from './server.js';

interface Running {
  readonly backend: LocalQueueBackend;
  readonly service: QueueService;
  readonly server: grpc.Server;
  readonly address: string;
  readonly client: QueueClient;
  close(): Promise<void>;
}

async function start(backend = new LocalQueueBackend({ nodeId: 'n1' })): Promise<Running> {
  const server = new grpc.Server();
  const service = addQueueService(server, backend, { logger: pino({ level: process.env['QUEUE_TEST_LOG'] ?? 'silent' }), reconcileIntervalMs: 50 });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  const address = `127.0.0.1:${port}`;
  const client = new QueueClient({ endpoints: [address], timeoutMs: 3000, retryForMs: 0 });
  return {
    backend, service, server, address, client,
    close: async () => {
      client.close();
      service.close();
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    },
  };
}

async function take(c: Consumer, n: number, timeoutMs = 3000): Promise<Delivery[]> {
  const out: Delivery[] = [];
  const timer = setTimeout(() => c.cancel(), timeoutMs);
  try {
    while (out.length < n) {
      const r = await c.next();
      if (r.done === true) break;
      out.push(r.value);
    }
  } finally {
    clearTimeout(timer);
  }
  return out;
}

const text = (d: Delivery): string => Buffer.from(d.body).toString('utf8');

async function waitFor(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('queue gRPC service', () => {
  let s: Running;
  before(async () => {
    s = await start();
  });
  after(async () => {
    await s.close();
  });

  it('confirms publishes, delivers within prefetch, acks and redelivers nacked messages first', async () => {
    const c = s.client;
    assert.deepEqual(await c.declare('jobs'), { created: true });
    assert.deepEqual(await c.declare('jobs'), { created: false });
    for (let i = 1; i <= 4; i++) assert.equal(await c.publish('jobs', `m${i}`), i);
    const consumer = await c.consume('jobs', { prefetch: 2 });
    const [d1, d2] = await take(consumer, 2);
    assert.deepEqual([d1, d2].map((d) => d && text(d)), ['m1', 'm2']);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(s.backend.machine.inFlight(consumer.id).length, 2, 'prefetch 2: no third delivery before an ack');
    assert.equal(s.backend.machine.queueStats('jobs')?.ready, 2);
    await (d2 as Delivery).ack();
    const d3 = await take(consumer, 1);
    assert.deepEqual(d3.map(text), ['m3']);
    await (d1 as Delivery).nack();
    const [again] = await take(consumer, 1);
    assert.equal(again && text(again), 'm1');
    assert.equal(again?.deliveryCount, 2);
    const [st] = await c.stats('jobs');
    assert.deepEqual({ ready: st?.ready, unacked: st?.unacked, acked: st?.acked, consumers: st?.consumers }, { ready: 1, unacked: 2, acked: 1, consumers: 1 });
    consumer.cancel();
    await waitFor(() => s.backend.machine.queueStats('jobs')?.consumers === 0, 'the cancel');
    assert.equal(s.backend.machine.queueStats('jobs')?.ready, 3, 'a cancelled consumer\'s messages come back');
  });

  it('dead-letters at the delivery limit, with the origin, and drops without a dead-letter queue', async () => {
    const c = s.client;
    await c.declare('dead');
    await c.declare('work', { deliveryLimit: 2, deadLetterQueue: 'dead' });
    await c.publish('work', 'poison');
    const consumer = await c.consume('work', { prefetch: 1 });
    for (let i = 1; i <= 2; i++) {
      const [d] = await take(consumer, 1);
      assert.equal(d?.deliveryCount, i);
      await d?.nack();
    }
    const dl = await c.consume('dead');
    const [got] = await take(dl, 1);
    assert.equal(got && text(got), 'poison');
    assert.deepEqual(got?.deadLetter, { queue: 'work', messageId: 1, reason: 'deliveryLimit' });
    await got?.nack({ discard: true });
    const [dead] = await c.stats('dead');
    assert.equal(dead?.dropped, 1);
    consumer.cancel();
    dl.cancel();
  });

  it('ends a stream whose consumer the log removed (node down), and the messages go to another consumer', async () => {
    const c = s.client;
    await c.declare('nd');
    await c.publish('nd', 'x');
    const consumer = await c.consume('nd', { prefetch: 5 });
    await take(consumer, 1);
    await s.backend.write({ type: 'nodeDown', node: 'n1', attachedUpTo: s.backend.appliedIndex });
    await assert.rejects(consumer.next(), (e: unknown) => e instanceof QueueClientError && e.code === grpc.status.UNAVAILABLE && /considered down/.test(e.message));
    const other = await c.consume('nd');
    const [d] = await take(other, 1);
    assert.equal(d?.deliveryCount, 2);
    other.cancel();
  });

  it('cancels orphaned consumers of this node (no stream serves them)', async () => {
    await s.client.declare('orphans');
    await s.backend.write({ type: 'attach', consumerId: 'n1.orphan', queue: 'orphans', node: 'n1', prefetch: 1, noAck: false, exclusive: false });
    await s.backend.write({ type: 'attach', consumerId: 'n2.other', queue: 'orphans', node: 'n2', prefetch: 1, noAck: false, exclusive: false });
    await waitFor(() => s.backend.machine.consumer('n1.orphan') === undefined, 'the reconciler');
    assert.ok(s.backend.machine.consumer('n2.other') !== undefined, 'other nodes\' consumers are left alone');
    assert.ok(s.service.stats.orphansCancelled >= 1);
  });

  it('sends a stream the deliveries a snapshot brought in', async () => {
    await s.client.declare('snap');
    const consumer = await s.client.consume('snap', { prefetch: 5 });
    const copy = new QueueStateMachine();
    copy.restore(s.backend.machine.snapshot());
    copy.applyCommand({ type: 'enqueue', queue: 'snap', body: new TextEncoder().encode('from the snapshot') }, s.backend.appliedIndex + 1);
    s.backend.machine.restore(copy.snapshot());
    const [d] = await take(consumer, 1);
    assert.equal(d && text(d), 'from the snapshot');
    consumer.cancel();
  });

  it('answers bad requests with clear statuses and counts them', async () => {
    const c = s.client;
    const code = async (p: Promise<unknown>): Promise<number> => {
      try {
        await p;
        return -1;
      } catch (e) {
        assert.ok(e instanceof QueueClientError, String(e));
        return e.code;
      }
    };
    const before = s.service.stats.invalidRequests;
    assert.equal(await code(c.declare('')), grpc.status.INVALID_ARGUMENT);
    assert.equal(await code(c.declare('x'.repeat(300))), grpc.status.INVALID_ARGUMENT);
    assert.equal(await code(c.declare('self', { deadLetterQueue: 'self' })), grpc.status.INVALID_ARGUMENT);
    assert.equal(await code(c.declare('jobs', { deliveryLimit: 7 })), grpc.status.FAILED_PRECONDITION);
    assert.equal(await code(c.publish('missing', 'x')), grpc.status.NOT_FOUND);
    assert.equal(await code(c.consume('missing')), grpc.status.NOT_FOUND);
    assert.equal(await code(c.consume('jobs', { prefetch: 100_000 })), grpc.status.INVALID_ARGUMENT);
    assert.equal(await code(c.ack('nobody', [1])), grpc.status.NOT_FOUND);
    assert.equal(await code(c.ack('nobody', [])), grpc.status.INVALID_ARGUMENT);
    assert.equal(await code(c.stats('missing')), grpc.status.NOT_FOUND);
    const Ctor = queueServiceClient();
    const raw = new Ctor(s.address, grpc.credentials.createInsecure()) as unknown as grpc.Client & Record<string, (r: unknown, cb: (e: grpc.ServiceError | null) => void) => void>;
    const rawCode = (method: string, req: unknown): Promise<number> => new Promise((resolve) => {
      (raw[method] as (r: unknown, cb: (e: grpc.ServiceError | null) => void) => void).call(raw, req, (e) => resolve(e === null ? 0 : e.code));
    });
    assert.equal(await rawCode('Ack', { consumer_id: 'c', delivery_tags: ['0'] }), grpc.status.INVALID_ARGUMENT);
    assert.equal(await rawCode('Ack', { consumer_id: 'c', delivery_tags: ['18446744073709551615'] }), grpc.status.INVALID_ARGUMENT);
    assert.equal(await rawCode('Nack', { consumer_id: '', delivery_tags: ['1'] }), grpc.status.INVALID_ARGUMENT);
    assert.equal(await rawCode('Declare', { queue: 'q', delivery_limit: 2_000_000 }), grpc.status.INVALID_ARGUMENT);
    raw.close();
    assert.ok(s.service.stats.invalidRequests - before >= 9);
    assert.equal(s.service.stats.internalErrors, 0);
  });

  it('never answers INTERNAL to random requests, and keeps serving', async () => {
    const Ctor = queueServiceClient();
    const raw = new Ctor(s.address, grpc.credentials.createInsecure()) as unknown as grpc.Client & Record<string, (r: unknown, cb: (e: grpc.ServiceError | null) => void) => void>;
    const call = (method: string, req: unknown): Promise<number> => new Promise((resolve) => {
      (raw[method] as (r: unknown, cb: (e: grpc.ServiceError | null) => void) => void).call(raw, req, (e) => resolve(e === null ? 0 : e.code));
    });
    const str = fc.oneof(fc.constantFrom('', 'jobs', 'dead', 'n1.x'), fc.string({ maxLength: 300, unit: 'binary' }));
    const num = fc.oneof(fc.constantFrom(0, 1, 10_000, 10_001, 1_000_000, 1_000_001, 4294967295), fc.nat());
    const tag = fc.oneof(fc.constantFrom('0', '1', '9007199254740991', '9007199254740992', '18446744073709551615'), fc.nat().map(String));
    const request = fc.oneof(
      fc.record({ m: fc.constant('Declare'), r: fc.record({ queue: str, delivery_limit: num, dead_letter_queue: str }) }),
      fc.record({ m: fc.constant('Publish'), r: fc.record({ queue: str, body: fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)) }) }),
      fc.record({ m: fc.constantFrom('Ack', 'Nack'), r: fc.record({ consumer_id: str, delivery_tags: fc.array(tag, { maxLength: 5 }), discard: fc.boolean() }) }),
      fc.record({ m: fc.constant('Stats'), r: fc.record({ queue: str }) }),
    );
    const allowed = new Set([0, grpc.status.INVALID_ARGUMENT, grpc.status.NOT_FOUND, grpc.status.FAILED_PRECONDITION]);
    await fc.assert(fc.asyncProperty(request, async ({ m, r }) => {
      const code = await call(m, r);
      assert.ok(allowed.has(code), `${m} ${JSON.stringify(r)} answered ${code}`);
    }), { numRuns: 300 });
    assert.equal(s.service.stats.internalErrors, 0);
    assert.ok((await s.client.stats()).length > 0, 'still serving');
    raw.close();
  });

  it('a second service over the same machine does not take the first one\'s consumers for orphans', async () => {
    const other = await start(s.backend);
    await s.client.declare('shared');
    const consumer = await s.client.consume('shared');
    await new Promise((r) => setTimeout(r, 200)); // several reconciler periods of both services
    assert.notEqual(s.backend.machine.consumer(consumer.id), undefined);
    consumer.cancel();
    await other.close();
  });
});
