// What the AMQP listener counts (exported as quorumlog_amqp_* metrics by
// src/server/amqp/metrics.ts). Never names, passwords or message contents.

export class AmqpStats {
  connectionsOpened = 0;
  connectionsOpen = 0;
  channelsOpened = 0;
  loginsRefused = 0;
  missedHeartbeats = 0;
  slowClients = 0;
  internalErrors = 0;
  published = 0;
  confirmsAcked = 0;
  confirmsNacked = 0;
  returned = 0;
  delivered = 0;
  /** Refusals (channel or connection closed by us, bad headers), by reply code name or reason. */
  readonly refusals = new Map<string, number>();

  refused(reason: string): void {
    this.refusals.set(reason, (this.refusals.get(reason) ?? 0) + 1);
  }
}
