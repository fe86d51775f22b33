// The client port of a node: the etcd v3 API (src/server/etcd) plus
// quorumlog's admin service (src/server/admin.ts) on one gRPC server,
// optionally behind mutual TLS.

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

/** A listening client API. */
export interface ClientApi {
  readonly port: number;
  /** Requests refused as malformed, etcd errors answered, internal errors. */
  readonly stats: EtcdServerStats;
  /** Open Watch streams. */
  watchStreams(): number;
  /** The quorum queue service, when the node serves one. */
  readonly queue: QueueService | null;
  close(): Promise<void>;
}

/** Starts the client API on host:port; with `tls` (PEM contents) clients must present a certificate signed by the CA. */
export async function startClientApi(backend: KvBackend, o: {
  host: string; port: number; logger: Logger; status: () => NodeStatus;
  tls?: { cert: string; key: string; ca: string };
  /** Serve quorum queues (quorumlog.queue.v1) beside the etcd API. */
  queue?: QueueBackend;
  /** Serve the metadata log (quorumlog.metadata.v1) beside the etcd API. */
  metadata?: MetadataBackend;
}): Promise<ClientApi> {
  const api = createEtcdServer(backend, { logger: o.logger });
  addAdminService(api.server, o.status);
  const queue = o.queue === undefined ? null : addQueueService(api.server, o.queue, { logger: o.logger.child({ component: 'queue-api' }) });
  const metadataApi = o.metadata === undefined ? null
    : addMetadataService(api.server, o.metadata, { logger: o.logger.child({ component: 'metadata-api' }) });
  const creds = o.tls === undefined ? grpc.ServerCredentials.createInsecure()
    : grpc.ServerCredentials.createSsl(Buffer.from(o.tls.ca), [{ cert_chain: Buffer.from(o.tls.cert), private_key: Buffer.from(o.tls.key) }], true);
  const port = await api.start(o.host, o.port, creds);
  return {
    port, stats: api.stats, queue, watchStreams: () => api.watchSessions.size,
    close: () => {
      queue?.close();
      metadataApi?.close();
      return api.close();
    },
  };
}
