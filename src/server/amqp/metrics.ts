// quorumlog_amqp_* metrics from the AMQP listener's counters (stats.ts).

import { Counter, Gauge, type Registry } from 'prom-client';
import type { AmqpStats } from './stats.js';

export function registerAmqpMetrics(registry: Registry, stats: AmqpStats): void {
  new Gauge({ name: 'quorumlog_amqp_connections', help: 'AMQP connections open on this node.', registers: [registry], collect() { this.set(stats.connectionsOpen); } });
  const counter = (name: string, help: string, read: () => number): void => {
    let last = 0;
    new Counter({ name, help, registers: [registry], collect() { const v = read(); this.inc(Math.max(0, v - last)); last = v; } });
  };
  counter('quorumlog_amqp_connections_opened_total', 'AMQP connections that finished the handshake.', () => stats.connectionsOpened);
  counter('quorumlog_amqp_channels_opened_total', 'AMQP channels opened.', () => stats.channelsOpened);
  counter('quorumlog_amqp_logins_refused_total', 'AMQP logins refused (wrong user or password, throttled).', () => stats.loginsRefused);
  counter('quorumlog_amqp_missed_heartbeats_total', 'AMQP connections dropped for missed heartbeats.', () => stats.missedHeartbeats);
  counter('quorumlog_amqp_slow_clients_total', 'AMQP connections dropped because the client did not read its output.', () => stats.slowClients);
  counter('quorumlog_amqp_internal_errors_total', 'Unexpected failures in the AMQP listener (each is logged).', () => stats.internalErrors);
  counter('quorumlog_amqp_published_total', 'Messages published over AMQP.', () => stats.published);
  counter('quorumlog_amqp_confirms_total', 'Publisher confirms sent (basic.ack).', () => stats.confirmsAcked);
  counter('quorumlog_amqp_nacks_total', 'Publishes nacked (their outcome unknown or refused).', () => stats.confirmsNacked);
  counter('quorumlog_amqp_returned_total', 'Mandatory publishes returned unroutable (basic.return).', () => stats.returned);
  counter('quorumlog_amqp_delivered_total', 'Messages delivered over AMQP (basic.deliver and basic.get-ok).', () => stats.delivered);
  const last = new Map<string, number>();
  new Counter({
    name: 'quorumlog_amqp_refused_total', help: 'Channels and connections closed by the node, and bad protocol headers, by reply code.', labelNames: ['reason'], registers: [registry],
    collect() {
      for (const [reason, v] of stats.refusals) {
        this.inc({ reason }, Math.max(0, v - (last.get(reason) ?? 0)));
        last.set(reason, v);
      }
    },
  });
}
