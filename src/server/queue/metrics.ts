// Prometheus metrics of the quorum queue service, for a node's /metrics
// (src/server/metrics.ts builds the registry; the node process calls this
// with it): per queue the ready and unacknowledged messages, consumers and
// the message counters from the applied state; the gRPC service's refusals;
// the liveness monitor's frames and nodeDown proposals.

import { Counter, Gauge, type Registry } from 'prom-client';
import type { QueueStateMachine } from '../../services/queue/state-machine.js';
import type { QueueStats } from '../../services/queue/types.js';
import type { QueueLiveness } from './liveness.js';
import type { QueueService } from './server.js';

/** Adds the queue metrics to `registry`; `service` and `liveness` are optional (a node that serves no queue clients). */
export function registerQueueMetrics(registry: Registry, o: { machine: QueueStateMachine; service?: QueueService; liveness?: QueueLiveness }): void {
  const perQueue = (name: string, help: string, read: (s: QueueStats) => number): void => {
    new Gauge({
      name, help, labelNames: ['queue'], registers: [registry],
      collect() {
        this.reset();
        for (const s of o.machine.stats()) this.set({ queue: s.queue }, read(s));
      },
    });
  };
  perQueue('quorumlog_queue_ready_messages', 'Messages waiting for a consumer, per queue (this node\'s applied state).', (s) => s.ready);
  perQueue('quorumlog_queue_unacked_messages', 'Messages delivered and not yet acknowledged, per queue.', (s) => s.unacked);
  perQueue('quorumlog_queue_consumers', 'Consumers attached, per queue.', (s) => s.consumers);
  perQueue('quorumlog_queue_enqueued_messages', 'Messages ever enqueued (published or dead-lettered in), per queue.', (s) => s.enqueued);
  perQueue('quorumlog_queue_acked_messages', 'Messages acknowledged, per queue.', (s) => s.acked);
  perQueue('quorumlog_queue_dead_lettered_messages', 'Messages moved to the dead-letter queue, per queue.', (s) => s.deadLettered);
  perQueue('quorumlog_queue_dropped_messages', 'Messages dropped for lack of a dead-letter queue, per queue.', (s) => s.dropped);
  const counter = (name: string, help: string, read: () => number): void => {
    let last = 0;
    new Counter({ name, help, registers: [registry], collect() { const v = read(); this.inc(Math.max(0, v - last)); last = v; } });
  };
  const service = o.service;
  if (service !== undefined) {
    counter('quorumlog_queue_invalid_requests_total', 'Queue API requests refused as malformed (INVALID_ARGUMENT).', () => service.stats.invalidRequests);
    counter('quorumlog_queue_errors_total', 'Queue API requests answered with another error (not found, unavailable, ...).', () => service.stats.queueErrors);
    counter('quorumlog_queue_internal_errors_total', 'Queue API requests that failed inside the server (INTERNAL).', () => service.stats.internalErrors);
    counter('quorumlog_queue_orphans_cancelled_total', 'Consumers of this node with no stream, cancelled by the reconciler.', () => service.stats.orphansCancelled);
    new Gauge({ name: 'quorumlog_queue_consume_streams', help: 'Consume streams open on this node.', registers: [registry], collect() { this.set(service.openConsumers()); } });
  }
  const liveness = o.liveness;
  if (liveness !== undefined) {
    counter('quorumlog_queue_node_down_proposed_total', 'nodeDown proposed by this node as leader for silent nodes.', () => liveness.stats.nodeDownProposed);
    counter('quorumlog_queue_alive_malformed_frames_total', 'Malformed frames on the queue channel, dropped.', () => liveness.stats.malformedFrames);
  }
}
