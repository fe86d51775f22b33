// The queue metrics read the applied state and the service's counters.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { LocalQueueBackend } from './backend.js';
import { registerQueueMetrics } from './metrics.js';
import { addQueueService } from './server.js';

it('exposes per-queue gauges and the service counters', async () => {
  const backend = new LocalQueueBackend({ nodeId: 'n1' });
  const service = addQueueService(new grpc.Server(), backend, { logger: pino({ level: 'silent' }) });
  const registry = new Registry();
  registerQueueMetrics(registry, { machine: backend.machine, service });
  await backend.write({ type: 'declare', queue: 'jobs', deliveryLimit: 0, deadLetterQueue: null });
  await backend.write({ type: 'enqueue', queue: 'jobs', body: new Uint8Array([1]) });
  await backend.write({ type: 'enqueue', queue: 'jobs', body: new Uint8Array([2]) });
  await backend.write({ type: 'attach', consumerId: 'c', queue: 'jobs', node: 'n2', prefetch: 1, noAck: false, exclusive: false });
  service.stats.invalidRequests += 3;
  const text = await registry.metrics();
  assert.match(text, /quorumlog_queue_ready_messages\{queue="jobs"\} 1/);
  assert.match(text, /quorumlog_queue_unacked_messages\{queue="jobs"\} 1/);
  assert.match(text, /quorumlog_queue_consumers\{queue="jobs"\} 1/);
  assert.match(text, /quorumlog_queue_invalid_requests_total 3/);
  assert.match(text, /quorumlog_queue_consume_streams 0/);
  service.close();
});
