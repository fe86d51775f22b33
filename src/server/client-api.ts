// The client port of a node: the etcd v3 API (src/server/etcd) plus
// quorumlog's admin service (src/server/admin.ts) on one gRPC server,
// optionally behind mutual TLS.
//
// With protocol workers (the default, src/server/protocol-workers), the
// client port belongs to them: they serve the hot etcd methods themselves
// and pass every other call to this gRPC server, which then listens only on
// a Unix socket in a private directory. Without, this server listens on the
// client port itself.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { addAdminService } from './admin.js';
import type { KvBackend } from './etcd/backend.js';
import { createEtcdServer, type EtcdServerStats } from './etcd/server.js';
import type { NodeStatus } from './metrics.js';
import type { MetadataBackend } from './metadata/backend.js';
import { addMetadataService } from './metadata/service.js';
import type { QueueBackend } from './queue/backend.js';
import { addQueueService, type QueueService } from './queue/server.js';
import { ProtocolWorkers, type PreforkedWorkers, type WorkerBackend } from './protocol-workers/host.js';

/** Largest gRPC message accepted from a client (grpc-js's default). */
const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
/** Requests one protocol worker keeps in flight to the Raft thread before it answers "too many requests". */
const WORKER_MAX_INFLIGHT = 32_768;

/** A listening client API. */
export interface ClientApi {
  readonly port: number;
  /** Requests refused as malformed, etcd errors answered, internal errors. */
  readonly stats: EtcdServerStats;
  /** Open Watch streams. */
  watchStreams(): number;
  /** The quorum queue service, when the node serves one. */
  readonly queue: QueueService | null;
  /** The client-protocol workers, when the client port is theirs. */
  readonly workers: ProtocolWorkers | null;
  close(): Promise<void>;
}

/** Starts the client API on host:port; with `tls` (PEM contents) clients must present a certificate signed by the CA. */
export async function startClientApi(backend: KvBackend & WorkerBackend, o: {
  host: string; port: number; logger: Logger; status: () => NodeStatus;
  /** Client-protocol worker processes; 0 or absent: serve on this thread. */
  protocolWorkers?: number;
  /** For the workers' log lines. */
  nodeId?: string; logLevel?: string;
  /** Workers the node forked ahead of time (see PreforkedWorkers). */
  preforked?: PreforkedWorkers;
  tls?: { cert: string; key: string; ca: string };
  /** Serve quorum queues (quorumlog.queue.v1) beside the etcd API. */
  queue?: QueueBackend;
  /** Serve the metadata log (quorumlog.metadata.v1) beside the etcd API. */
  metadata?: MetadataBackend;
}): Promise<ClientApi> {
  const workerCount = o.protocolWorkers ?? 0;
  const api = createEtcdServer(backend, { logger: o.logger, behindProtocolWorkers: workerCount > 0 });
  // The admin Status, the queues and the metadata log check their callers with the node's auth, as the etcd API does (docs/OPERATIONS.md, "Security").
  const auth = { ...(backend.auth !== undefined ? { authorizer: backend.auth.authorizer } : {}), behindProtocolWorkers: workerCount > 0 };
  addAdminService(api.server, o.status, backend.auth === undefined ? undefined : { authorizer: backend.auth.authorizer, behindProtocolWorkers: workerCount > 0 });
  const queue = o.queue === undefined ? null : addQueueService(api.server, o.queue, { logger: o.logger.child({ component: 'queue-api' }), ...auth });
  const metadataApi = o.metadata === undefined ? null
    : addMetadataService(api.server, o.metadata, { logger: o.logger.child({ component: 'metadata-api' }), ...auth });
  if (workerCount === 0) {
    const creds = o.tls === undefined ? grpc.ServerCredentials.createInsecure()
      : grpc.ServerCredentials.createSsl(Buffer.from(o.tls.ca), [{ cert_chain: Buffer.from(o.tls.cert), private_key: Buffer.from(o.tls.key) }], true);
    const port = await api.start(o.host, o.port, creds);
    return {
      port, stats: api.stats, queue, workers: null, watchStreams: () => api.watchSessions.size,
      close: () => {
        queue?.close();
        metadataApi?.close();
        return api.close();
      },
    };
  }
  let front: WorkerFront;
  try {
    front = await startWorkerFront(api.server, backend, api.stats, {
      host: o.host, port: o.port, count: workerCount, logger: o.logger,
      ...(o.tls !== undefined ? { tls: o.tls } : {}), ...(o.nodeId !== undefined ? { nodeId: o.nodeId } : {}), ...(o.logLevel !== undefined ? { logLevel: o.logLevel } : {}),
      ...(o.preforked !== undefined ? { preforked: o.preforked } : {}),
    });
  } catch (e) {
    queue?.close();
    metadataApi?.close();
    await api.close();
    throw e;
  }
  return {
    port: front.port, stats: api.stats, queue, workers: front.workers, watchStreams: () => api.watchSessions.size,
    close: async () => {
      await front.close();
      queue?.close();
      metadataApi?.close();
      await api.close();
    },
  };
}

/** A gRPC server fronted by protocol workers: they own the client port; the server listens on a private Unix socket. */
export interface WorkerFront {
  readonly port: number;
  readonly workers: ProtocolWorkers;
  /** Stops the workers and removes the socket (the gRPC server is the caller's to close). */
  close(): Promise<void>;
}

/**
 * Binds `server` to a Unix socket in a new 0700 directory and starts `count`
 * protocol workers on host:port that serve the hot etcd methods over
 * `backend` and pass every other call to `server`. Rejects (having cleaned up)
 * when a worker cannot listen (WorkerListenError carries the errno).
 */
export async function startWorkerFront(server: grpc.Server, backend: WorkerBackend, stats: EtcdServerStats, o: {
  host: string; port: number; count: number; logger: Logger;
  tls?: { cert: string; key: string; ca: string }; nodeId?: string; logLevel?: string; preforked?: PreforkedWorkers;
}): Promise<WorkerFront> {
  const dir = mkdtempSync(join(tmpdir(), 'quorumlog-grpc-'));
  const socket = join(dir, 'grpc.sock');
  try {
    await new Promise<void>((resolve, reject) => {
      server.bindAsync(`unix:${socket}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve()));
    });
    const h = backend.header();
    const workers = await ProtocolWorkers.start({
      count: o.count, backend, logger: o.logger.child({ component: 'protocol-workers' }), stats,
      ...(o.preforked !== undefined ? { preforked: o.preforked } : {}),
      init: {
        host: o.host, port: o.port, tls: o.tls ?? null, upstreamSocket: socket,
        clusterId: h.clusterId.toString(), memberId: h.memberId.toString(),
        maxMessageBytes: MAX_MESSAGE_BYTES, maxInflight: WORKER_MAX_INFLIGHT,
        logLevel: o.logLevel ?? 'info', nodeId: o.nodeId ?? '',
      },
    });
    return {
      port: workers.port, workers,
      close: async () => {
        await workers.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}
