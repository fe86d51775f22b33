// The typed queue client against an in-process server (LocalQueueBackend):
// it skips an endpoint that does not answer, iterates deliveries with
// for-await (leaving the loop cancels the consumer and its unacked messages
// go back), ends the iteration when the consumer is cancelled elsewhere, and
// reports failures as QueueClientError with the gRPC code.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { LocalQueueBackend } from '../server/queue/backend.js';
import { addQueueService, type QueueService } from '../server/queue/server.js';
import { QueueClient, QueueClientError } from './queue.js';

/** A port nothing listens on. */
function deadPort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a !== null ? a.port : 1));
    });
  });
}

async function waitFor(cond: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 3000;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('QueueClient', () => {
  const backend = new LocalQueueBackend({ nodeId: 'n1' });
  const server = new grpc.Server();
  let service: QueueService;
  let client: QueueClient;
  before(async () => {
    service = addQueueService(server, backend, { logger: pino({ level: 'silent' }) });
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    client = new QueueClient({ endpoints: [`127.0.0.1:${await deadPort()}`, `127.0.0.1:${port}`], timeoutMs: 2000, retryForMs: 2000 });
  });
  after(async () => {
    client.close();
    service.close();
    await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
  });

  it('declares, publishes and reads stats past an endpoint that is down', async () => {
    assert.deepEqual(await client.declare('a', { deliveryLimit: 3 }), { created: true });
    assert.equal(await client.publish('a', 'one'), 1);
    assert.equal(await client.publish('a', new Uint8Array([0, 255])), 2);
    const [s] = await client.stats();
    assert.deepEqual(s, { queue: 'a', deliveryLimit: 3, deadLetterQueue: null, ready: 2, unacked: 0, consumers: 0, enqueued: 2, acked: 0, deadLettered: 0, dropped: 0 });
  });

  it('iterates deliveries; leaving the loop cancels the consumer and returns what it held', async () => {
    const consumer = await client.consume('a', { prefetch: 2 });
    const seen: number[] = [];
    for await (const d of consumer) {
      seen.push(d.messageId);
      if (d.messageId === 1) await d.ack();
      if (seen.length === 2) break;
    }
    assert.deepEqual(seen, [1, 2]);
    await waitFor(() => backend.machine.queueStats('a')?.consumers === 0, 'the cancel');
    assert.deepEqual(backend.machine.readyIds('a'), [2]);
  });

  it('ends the iteration when the consumer is cancelled elsewhere', async () => {
    const consumer = await client.consume('a');
    const first = await consumer.next();
    assert.equal(first.done === false && first.value.deliveryCount, 2);
    await backend.write({ type: 'cancel', consumerId: consumer.id });
    assert.equal((await consumer.next()).done, true);
  });

  it('reports failures with their gRPC code', async () => {
    await assert.rejects(client.publish('nope', 'x'), (e: unknown) => e instanceof QueueClientError && e.code === grpc.status.NOT_FOUND && /does not exist/.test(e.message));
    const nowhere = new QueueClient({ endpoints: [`127.0.0.1:${await deadPort()}`], timeoutMs: 500, retryForMs: 0 });
    await assert.rejects(nowhere.stats(), (e: unknown) => e instanceof QueueClientError && e.code === grpc.status.UNAVAILABLE);
    nowhere.close();
  });
});
