// Starts one quorumlog node from its configuration: locks and claims the
// data directory, recovers the stores, connects the transport, runs the runtime
// with the key-value state machine, and serves the etcd v3 API and the
// metrics port. `quorumlog start` calls this; so do in-process tests.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Server } from 'node:http';
import { randomInt } from 'node:crypto';
import { pino, type Logger } from 'pino';
import { nodeId, type NodeId } from '../protocol/ids.js';
import { NodeRuntime } from '../node/runtime.js';
import { NodeStorage } from '../node/node-storage.js';
import type { KvStateMachine } from '../services/kv/state-machine.js';
import type { ServiceStateMachine } from '../services/machine.js';
import { NodeFileSystem } from '../storage/fs.js';
import { lockDataDir } from '../storage/dir-lock.js';
import { TcpTransport, TransportListenError } from '../transport/tcp.js';
import { Prng } from '../util/prng.js';
import { claimDataDir, formatAddress, type Address, type NodeConfig } from './config.js';
import { startClientApi, type ClientApi } from './client-api.js';
import { PreforkedWorkers } from './protocol-workers/host.js';
import { nodeServices } from './node-services.js';
import { startAutoCompaction } from './auto-compaction.js';
import { takeBackup } from './backup.js';
import { RuntimeKvBackend } from './kv-backend.js';
import { MembershipManager } from './membership.js';
import { startNodeLeases } from './lease-forward.js';
import { nodeRegistry, nodeStatus, registerAuthMetrics, registerLeaseMetrics, startMetricsServer, type NodeSupervisor } from './metrics.js';
import { dashboardHandler } from '../dashboard/server.js';
import { LEADER_HISTORY_FILE, LeaderHistory, leaderTermsFromEvents } from '../dashboard/history.js';
import { RuntimeMetadataBackend } from './metadata/runtime-backend.js';
import { registerQueueMetrics } from './queue/metrics.js';
import { startQueueRuntime } from './queue/runtime-backend.js';
import { servedConsumers } from './queue/server.js';
import { startAmqpListener, type AmqpListener } from './amqp/listener.js';
import { registerAmqpMetrics } from './amqp/metrics.js';
import { PasswordLogin } from './auth/login.js';

/** Which of a node's listeners an address belongs to. */
export type ListenerKind = 'peer' | 'client' | 'metrics' | 'amqp';

/**
 * A listener of the node could not listen on its address. The message names
 * host:port and which port it is, and says "address in use" for EADDRINUSE
 * (whatever library reported it: net, or grpc-js, whose error carries only text).
 */
export class ListenError extends Error {
  override readonly name = 'ListenError';
  /** The errno code (EADDRINUSE, EACCES, EADDRNOTAVAIL, ...) when one was found, else null. */
  readonly code: string | null;

  constructor(readonly listener: ListenerKind, readonly address: Address, cause: unknown) {
    const text = cause instanceof Error ? cause.message : String(cause);
    const errno = (cause as { code?: unknown } | null)?.code;
    const code = typeof errno === 'string' ? errno : (/\b(EADDRINUSE|EACCES|EADDRNOTAVAIL)\b/.exec(text)?.[1] ?? null);
    super(`cannot listen on ${formatAddress(address)} (${listener} port): ${listenReason(code, text)}`, { cause });
    this.code = code;
  }
}

function listenReason(code: string | null, text: string): string {
  switch (code) {
    case 'EADDRINUSE': return 'address in use (EADDRINUSE): another process listens on it (another quorumlog node or cluster?)';
    case 'EACCES': return 'permission denied (EACCES): ports below 1024 need privileges';
    case 'EADDRNOTAVAIL': return 'address not available (EADDRNOTAVAIL): this machine has no such address';
    default: return text;
  }
}

/** Runs `listen` and turns its failure into a {@link ListenError} naming the listener. */
async function listening<T>(listener: ListenerKind, address: Address, listen: () => Promise<T>): Promise<T> {
  try {
    return await listen();
  } catch (e) {
    if (e instanceof TransportListenError) throw new ListenError(listener, { host: e.host, port: e.port }, e.cause);
    const errno = (e as { code?: unknown } | null)?.code;
    // net's errors carry a code; grpc-js's bind failure only text ("No address added out of total 1 resolved errors: [listen EADDRINUSE: ...]").
    if (typeof errno === 'string' && errno.startsWith('E') || (e instanceof Error && e.message.startsWith('No address added'))) throw new ListenError(listener, address, e);
    throw e;
  }
}

/**
 * The `quorumlog cluster` that started this process, from the environment it
 * sets for its children (QUORUMLOG_SUPERVISOR_PID, QUORUMLOG_CLUSTER_DIR), or null.
 */
export function supervisorFromEnv(env: NodeJS.ProcessEnv = process.env): NodeSupervisor | null {
  const pid = Number(env['QUORUMLOG_SUPERVISOR_PID']);
  const dataDir = env['QUORUMLOG_CLUSTER_DIR'];
  return Number.isInteger(pid) && pid > 0 && dataDir !== undefined && dataDir !== '' ? { pid, dataDir } : null;
}

/** A running node and how to stop it. */
export interface RunningNode {
  readonly runtime: NodeRuntime;
  /** Every service's state machine, fed by the one log. */
  readonly services: ServiceStateMachine;
  /** The key-value service's state machine. */
  readonly kv: KvStateMachine;
  readonly config: NodeConfig;
  readonly logger: Logger;
  /** Stops serving clients, then the runtime; idempotent. */
  stop(): Promise<void>;
}

/** Options of {@link startNode}. */
export interface StartNodeOptions {
  logger?: Logger;
  onFatal?: (err: unknown) => void;
  /** Registers further services on the machine before the node recovers its state (an embedding application's, or a test's). */
  registerServices?: (services: ServiceStateMachine) => void;
}

/**
 * Starts a node; rejects (before anything listens) on a configuration or
 * data directory problem. The data directory is locked first, before
 * anything in it is read (DataDirLockedError names the process that holds
 * it), and stays locked until stop() (or the process exits).
 */
export async function startNode(config: NodeConfig, opts: StartNodeOptions = {}): Promise<RunningNode> {
  const logger = opts.logger ?? pino({ level: config.logLevel, base: { node: config.nodeId, cluster: config.clusterId } });
  const lock = lockDataDir(config.dataDir, 'exclusive', { command: `node ${config.nodeId} of cluster ${config.clusterId}` });
  for (const stale of lock.tookOver) {
    logger.warn({ dataDir: config.dataDir, file: stale.file, stalePid: stale.holder?.pid ?? null, reason: stale.reason },
      `took over the stale lock of ${config.dataDir}: ${stale.reason}`);
  }
  // The protocol workers load their code while the node recovers (their client port opens as soon as the node serves).
  const preforked = config.protocolWorkers > 0 ? new PreforkedWorkers(config.protocolWorkers) : null;
  try {
    const node = await startLockedNode(config, opts, logger, preforked);
    preforked?.cancel();
    return {
      ...node,
      stop: async () => {
        try {
          await node.stop();
        } finally {
          lock.release();
        }
      },
    };
  } catch (e) {
    preforked?.cancel();
    lock.release();
    throw e;
  }
}

async function startLockedNode(config: NodeConfig, opts: StartNodeOptions, logger: Logger, preforked: PreforkedWorkers | null): Promise<RunningNode> {
  const directoryId = claimDataDir(config);
  const self = config.members.find((m) => m.id === config.nodeId);
  if (self === undefined) throw new Error(`node ${config.nodeId} is not in the member list`);
  const listen = (a: Address): Address => ({ host: config.listenHost ?? a.host, port: a.port });
  const peers = new Map<NodeId, { host: string; port: number }>();
  for (const m of config.members) if (m.id !== config.nodeId) peers.set(nodeId(m.id), m.peer);
  const readPem = (t: { cert: string; key: string; ca: string }): { cert: string; key: string; ca: string } =>
    ({ cert: readFileSync(t.cert, 'utf8'), key: readFileSync(t.key, 'utf8'), ca: readFileSync(t.ca, 'utf8') });
  const transport = new TcpTransport({
    clusterId: config.clusterId,
    nodeId: nodeId(config.nodeId),
    listen: listen(self.peer),
    peers,
    logger, // the transport adds its own component binding
    hints: { client: formatAddress(self.client), metrics: formatAddress(self.metrics) },
    ...(config.peerTls !== null ? { tls: { ...readPem(config.peerTls), verifyNodeIds: config.peerTls.verifyNodeIds } } : {}),
  });
  const storage = new NodeStorage(new NodeFileSystem(), config.dataDir);
  // Every service the log feeds (src/server/node-services.ts); brokers and controllers may add theirs.
  const { services, kv: sm, queues, metadata, members, auth: nodeAuth } = nodeServices();
  opts.registerServices?.(services);
  let runtime: NodeRuntime;
  try {
    runtime = new NodeRuntime({
      raft: {
        id: nodeId(config.nodeId),
        voters: config.members.filter((m) => m.role === 'voter').map((m) => nodeId(m.id)),
        observers: config.members.filter((m) => m.role === 'observer').map((m) => nodeId(m.id)),
        replication: config.mode,
        directoryId,
        random: new Prng(randomInt(0, 2 ** 31)),
        electionTimeoutMinTicks: config.electionTimeoutMinTicks,
        electionTimeoutMaxTicks: config.electionTimeoutMaxTicks,
        heartbeatIntervalTicks: config.heartbeatIntervalTicks,
        fetchMaxWaitTicks: config.fetchMaxWaitTicks,
        fetchRetryTicks: Math.max(1, Math.ceil(config.heartbeatIntervalTicks)),
      },
      storage,
      transport,
      stateMachine: services,
      logger: logger.child({ component: 'runtime' }),
      tickMs: config.tickMs,
      requestTimeoutMs: config.requestTimeoutMs,
      snapshotEveryEntries: config.snapshotEveryEntries,
      snapshotEveryBytes: config.snapshotEveryBytes,
      ...(opts.onFatal !== undefined ? { onFatal: opts.onFatal } : {}),
    });
  } catch (e) {
    storage.close();
    throw e;
  }
  const membership = new MembershipManager(runtime, members, transport, config, logger.child({ component: 'membership' }));
  // Leases: the lessor decides expiry while this node leads; followers forward keep-alives on the lease channel.
  const leases = startNodeLeases(runtime, sm.store, { ...config, logger: logger.child({ component: 'lessor' }) });
  try {
    await listening('peer', listen(self.peer), () => runtime.start());
  } catch (e) {
    leases.stop();
    membership.close();
    await runtime.stop();
    throw e;
  }
  // Queues: started after the runtime, since a node releases its previous consumers through the log at once.
  const queue = startQueueRuntime(runtime, queues, {
    peers: config.members.filter((m) => m.role === 'voter').map((m) => m.id),
    downAfterMs: config.electionTimeoutMaxTicks * config.tickMs,
    logger: logger.child({ component: 'queue' }),
  });
  const backend = new RuntimeKvBackend(runtime, sm, config, leases.keeper, membership);
  backend.backup = () => takeBackup(runtime, services, config.clusterId);
  const auth = nodeAuth.start(runtime, { tokenTtlSeconds: config.authTokenTtlSeconds, bcryptCost: config.bcryptCost, clientCertAuth: config.clientCertAuth });
  backend.auth = auth;
  const stopCompaction = startAutoCompaction(backend, {
    retentionRevisions: config.historyRetentionRevisions, isLeader: () => runtime.isLeader(),
    logger: logger.child({ component: 'auto-compaction' }),
  });
  let etcd: ClientApi | null = null;
  let amqp: AmqpListener | null = null;
  let metrics: Server | null = null;
  // Fault injection (set by `quorumlog cluster` only): the dashboard's partition button.
  const faultInjection = process.env['QUORUMLOG_FAULT_INJECTION'] === '1';
  const supervisor = supervisorFromEnv();
  const status = () => nodeStatus(runtime, transport, config, transport.partitioned, supervisor, etcd?.workers ?? null);
  // The leaders this node sees, by term, kept in its data directory for the dashboards' elections timeline (src/dashboard/history.ts).
  const leaderHistory = new LeaderHistory(join(config.dataDir, LEADER_HISTORY_FILE), logger.child({ component: 'dashboard' }));
  const noteLeaders = (): void => { leaderHistory.add(leaderTermsFromEvents(runtime.leadershipEvents.slice(-1))); };
  noteLeaders();
  const stopNotingLeaders = runtime.onLeadershipChange(noteLeaders);
  const dashboard = dashboardHandler({
    self: config.nodeId, mode: config.mode,
    members: () => config.members.map((m) => ({ id: m.id, role: m.role, metrics: formatAddress(m.metrics) })),
    controlUrl: process.env['QUORUMLOG_CLUSTER_CONTROL'] || null,
    history: leaderHistory, logger: logger.child({ component: 'dashboard' }),
    setPartitioned: faultInjection
      ? (on) => {
        logger.warn({ partitioned: on }, on ? 'fault injection: partitioned from every peer' : 'fault injection: partition healed');
        transport.setPartitioned(on);
      }
      : null,
  });
  try {
    etcd = await listening('client', listen(self.client), () => startClientApi(backend, {
      host: listen(self.client).host, port: self.client.port, logger: logger.child({ component: 'etcd-api' }),
      ...(config.clientTls !== null ? { tls: readPem(config.clientTls) } : {}),
      status,
      protocolWorkers: config.protocolWorkers, nodeId: config.nodeId, logLevel: config.logLevel,
      ...(preforked !== null ? { preforked } : {}),
      queue: queue.backend,
      metadata: new RuntimeMetadataBackend(runtime, metadata),
    }));
    // AMQP 0-9-1 (RabbitMQ's clients) on the same quorum queues, when the member lists a port for it (docs/QUEUES.md).
    const amqpAt = self.amqp;
    if (amqpAt !== undefined) {
      amqp = await listening('amqp', listen(amqpAt), () => startAmqpListener({
        host: listen(amqpAt).host, port: amqpAt.port, backend: queue.backend, logger: logger.child({ component: 'amqp' }),
        clusterName: config.clusterId, authorizer: auth.authorizer, login: new PasswordLogin(auth, () => queue.backend.readBarrier()),
        served: servedConsumers(queues),
        ...(config.clientTls !== null ? { tls: readPem(config.clientTls) } : {}),
      }));
    }
    const registry = nodeRegistry(runtime, transport, config, etcd);
    if (amqp !== null) registerAmqpMetrics(registry, amqp.stats);
    registerQueueMetrics(registry, { machine: queues, liveness: queue.liveness, ...(etcd.queue !== null ? { service: etcd.queue } : {}) });
    registerLeaseMetrics(registry, { store: sm.store, lessor: leases.lessor });
    registerAuthMetrics(registry, { state: nodeAuth.machine, authorizer: auth.authorizer, gate: nodeAuth.gate, throttle: auth.throttle, hasher: auth.hasher });
    metrics = await listening('metrics', listen(self.metrics), () => startMetricsServer(listen(self.metrics).host, self.metrics.port, registry, status, dashboard.handle));
  } catch (e) {
    stopNotingLeaders();
    leases.stop();
    await amqp?.close();
    queue.stop();
    membership.close();
    await etcd?.close();
    await auth.close();
    await runtime.stop();
    throw e;
  }
  logger.info({ mode: config.mode, dirId: directoryId, peer: self.peer, client: self.client, metrics: self.metrics, amqp: self.amqp ?? null }, 'node started');
  let stopping: Promise<void> | null = null;
  return {
    runtime, services, kv: sm, config, logger,
    stop(): Promise<void> {
      stopping ??= (async () => {
        stopCompaction();
        leases.stop();
        await amqp?.close();
        queue.stop();
        membership.close();
        await etcd?.close();
        await auth.close();
        stopNotingLeaders();
        dashboard.aggregator.close();
        await leaderHistory.flushed();
        await new Promise<void>((resolve) => {
          if (metrics === null) resolve();
          else metrics.close(() => resolve());
          metrics?.closeAllConnections();
        });
        await runtime.stop();
        logger.info('node stopped');
      })();
      return stopping;
    },
  };
}
