// A broker for an application to embed (Kafka's broker in KRaft mode): a
// quorumlog observer — a non-voting member that pulls (or, in push mode, is
// sent) the committed log — running the metadata state machine over its own
// data directory. It restarts from its local position (its snapshot plus its
// log), or, when it fell behind the controllers' log start, from the
// snapshot the leader sends it. The application reads the local image, hears
// each change, sees how far behind the leader it is, and may write records
// (forwarded to the controllers' leader, as KRaft brokers forward admin
// requests).
//
// With `registration`, the broker also does what a KRaft broker does for
// itself: once started it registers (fenced, with the next epoch the
// controllers assign), and once its image has caught up — the write's read
// barrier waits for that — it unfences itself; stop() fences it first
// (a controlled shutdown), so that no new replicas are assigned to it while
// it is away. A restart registers again with a higher epoch.
//
// The controllers are the voters of the same cluster, each running the
// metadata service too (src/broker/controller.ts, or `quorumlog start` once
// it registers the service).

import type { Logger } from 'pino';
import type { NodeConfig } from '../server/config.js';
import { startNode, type RunningNode } from '../server/node-process.js';
import type { MetadataImage } from '../services/metadata/image.js';
import { MetadataStateMachine, type MetadataListener, type MetadataStateMachineOptions } from '../services/metadata/state-machine.js';
import { MetadataRejectedError, type AcceptedRecord, type MetadataRecord } from '../services/metadata/types.js';
import { SYSTEM_STAMP } from '../services/auth/codec.js';
import { RuntimeMetadataBackend } from '../server/metadata/runtime-backend.js';
import { attachMetadata } from './controller.js';

/** How far a broker is behind. */
export interface BrokerLag {
  /** The leader's commit index as this broker last heard it (its high watermark). */
  readonly leaderCommitIndex: number;
  /** The log index this broker has applied. */
  readonly appliedIndex: number;
  /** leaderCommitIndex - appliedIndex (0 when caught up). */
  readonly entries: number;
  /** The metadata offset of this broker's image. */
  readonly offset: number;
}

/** Options of {@link startBroker}. */
export interface BrokerOptions {
  /** The node's configuration; its own member must have role 'observer'. */
  readonly config: NodeConfig;
  readonly logger?: Logger;
  /** Passed to the metadata state machine (historyRecords must match the controllers'). */
  readonly machine?: MetadataStateMachineOptions;
  /** Called if the node must stop (a storage failure); default: the error is logged and the broker stops. */
  readonly onFatal?: (err: unknown) => void;
  /** Register this broker with the controllers (and fence it on stop); absent: the application registers brokers itself. */
  readonly registration?: BrokerRegistration;
}

/** Who this broker is in the metadata: what its registerBroker record says. */
export interface BrokerRegistration {
  readonly brokerId: number;
  readonly host: string;
  readonly port: number;
  readonly rack?: string | null;
}

/** A running broker. */
export interface Broker {
  readonly id: string;
  readonly node: RunningNode;
  readonly machine: MetadataStateMachine;
  /** The local image (immutable). */
  image(): MetadataImage;
  /** Hears every applied record (with its delta) and every reset by a snapshot; returns the unsubscribe function. */
  subscribe(listener: MetadataListener): () => void;
  /** How far behind the leader this broker is. */
  lag(): BrokerLag;
  /** Writes a record through the controllers' leader; resolves once this broker has applied it. */
  write(record: MetadataRecord): Promise<AcceptedRecord>;
  /**
   * With `registration`: resolves with the broker's epoch once it is
   * registered and unfenced (retrying while there is no leader); rejects if
   * the broker stops first. Without: resolves with null.
   */
  registered(): Promise<{ brokerId: number; epoch: number } | null>;
  /** Resolves once the image has reached `offset` (rejects after `timeoutMs`). */
  waitForOffset(offset: number, timeoutMs?: number): Promise<MetadataImage>;
  /** Stops the node (idempotent). */
  stop(): Promise<void>;
}

/** How long stop() tries to fence the broker before it stops anyway. */
const CONTROLLED_SHUTDOWN_MS = 3000;

/** The broker stopped before something it was doing finished. */
export class BrokerStoppedError extends Error {
  override readonly name = 'BrokerStoppedError';
}

/** The broker's own member is not an observer. */
export class BrokerConfigError extends Error {
  override readonly name = 'BrokerConfigError';
}

/** Starts a broker: an observer node with the metadata service, recovered from its data directory. */
export async function startBroker(o: BrokerOptions): Promise<Broker> {
  const self = o.config.members.find((m) => m.id === o.config.nodeId);
  if (self === undefined) throw new BrokerConfigError(`node ${o.config.nodeId} is not in the member list`);
  if (self.role !== 'observer') throw new BrokerConfigError(`a broker runs as an observer, but member ${self.id} is a ${self.role}; the controllers are the voters`);
  let machine: MetadataStateMachine | null = null;
  // An embedded node serves its client port on the application's own thread: a library forks no processes of its own.
  const node = await startNode({ ...o.config, protocolWorkers: 0 }, {
    ...(o.logger !== undefined ? { logger: o.logger } : {}),
    ...(o.onFatal !== undefined ? { onFatal: o.onFatal } : {}),
    registerServices: (services) => {
      machine = attachMetadata(services, o.machine);
    },
  });
  const m = machine as MetadataStateMachine | null;
  if (m === null) {
    await node.stop();
    throw new Error('the node did not register its services');
  }
  const backend = new RuntimeMetadataBackend(node.runtime, m, SYSTEM_STAMP); // the node's own process: writes as the system
  const log = node.logger.child({ component: 'broker' });
  let stopped = false;
  let epoch: number | null = null;
  const reg = o.registration;
  const registered: Promise<{ brokerId: number; epoch: number } | null> = reg === undefined ? Promise.resolve(null) : (async () => {
    for (let attempt = 0; ; attempt++) {
      if (stopped) throw new BrokerStoppedError(`broker ${o.config.nodeId} stopped before it was registered`);
      try {
        if (epoch === null) {
          const a = await backend.write({ type: 'registerBroker', brokerId: reg.brokerId, epoch: 0, host: reg.host, port: reg.port, rack: reg.rack ?? null, fenced: true });
          epoch = a.record.type === 'registerBroker' ? a.record.epoch : null;
          log.info({ brokerId: reg.brokerId, epoch, offset: a.offset }, 'registered (fenced)');
        }
        if (epoch !== null && m.image.brokers.get(reg.brokerId)?.fenced !== false) {
          await backend.write({ type: 'unfenceBroker', brokerId: reg.brokerId, epoch });
          log.info({ brokerId: reg.brokerId, epoch }, 'caught up: unfenced');
        }
        return { brokerId: reg.brokerId, epoch: epoch as number };
      } catch (e) {
        // Retried: no leader yet, a timeout (outcome unknown), or a race with another registration of this id.
        if (e instanceof MetadataRejectedError) {
          switch (e.code) {
            case 'brokerNotFenced': return { brokerId: reg.brokerId, epoch: epoch as number }; // an earlier attempt's unfence did commit
            case 'staleBrokerEpoch': break; // another registration took the epoch: the next attempt takes a newer one
            case 'brokerEpochMismatch':
            case 'unknownBroker': epoch = null; break; // registered anew or unregistered meanwhile: start over
            default: throw e; // the registration itself is invalid (a bad host or port): retrying cannot help
          }
        }
        if (attempt % 10 === 0) log.info({ err: (e as Error).message }, 'registration not done yet; retrying');
        await new Promise((r) => setTimeout(r, Math.min(1000, 50 * (attempt + 1))));
      }
    }
  })();
  registered.catch(() => {}); // observed through registered(); never an unhandled rejection
  let stopping: Promise<void> | null = null;
  return {
    id: o.config.nodeId,
    node,
    machine: m,
    image: () => m.image,
    subscribe: (listener) => m.subscribe(listener),
    lag(): BrokerLag {
      const leaderCommitIndex = node.runtime.commitIndex;
      const appliedIndex = node.runtime.appliedIndex;
      return { leaderCommitIndex, appliedIndex, entries: Math.max(0, leaderCommitIndex - appliedIndex), offset: m.image.offset };
    },
    write: (record) => backend.write(record),
    waitForOffset(offset: number, timeoutMs = 30_000): Promise<MetadataImage> {
      if (m.image.offset >= offset) return Promise.resolve(m.image);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          off();
          reject(new Error(`broker ${o.config.nodeId}: the image did not reach offset ${offset} within ${timeoutMs} ms (at ${m.image.offset})`));
        }, timeoutMs);
        const off = m.subscribe(() => {
          if (m.image.offset < offset) return;
          clearTimeout(timer);
          off();
          resolve(m.image);
        });
      });
    },
    registered: () => registered,
    stop(): Promise<void> {
      stopping ??= (async () => {
        stopped = true;
        const current = epoch;
        if (reg !== undefined && current !== null && m.image.brokers.get(reg.brokerId)?.epoch === current && m.image.brokers.get(reg.brokerId)?.fenced === false) {
          // Controlled shutdown: fenced, the broker gets no new replicas while it is away.
          try {
            await Promise.race([
              backend.write({ type: 'fenceBroker', brokerId: reg.brokerId, epoch: current }),
              new Promise((_, reject) => setTimeout(() => reject(new Error('timed out')), CONTROLLED_SHUTDOWN_MS).unref()),
            ]);
            log.info({ brokerId: reg.brokerId, epoch: current }, 'fenced for a controlled shutdown');
          } catch (e) {
            log.warn({ err: (e as Error).message }, 'could not fence this broker before stopping');
          }
        }
        await node.stop();
      })();
      return stopping;
    },
  };
}
