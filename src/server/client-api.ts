// The client port of a node: the etcd v3 API (src/server/etcd) plus
// quorumlog's admin service (src/server/admin.ts) on one gRPC server,
// optionally behind mutual TLS.

import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { addAdminService } from './admin.js';
import type { KvBackend } from './etcd/backend.js';
import { createEtcdServer, type EtcdServerStats } from './etcd/server.js';
import type { NodeStatus } from './metrics.js';

/** A listening client API. */
export interface ClientApi {
  readonly port: number;
  /** Requests refused as malformed, etcd errors answered, internal errors. */
  readonly stats: EtcdServerStats;
  /** Open Watch streams. */
  watchStreams(): number;
  close(): Promise<void>;
}

/** Starts the client API on host:port; with `tls` (PEM contents) clients must present a certificate signed by the CA. */
export async function startClientApi(backend: KvBackend, o: {
  host: string; port: number; logger: Logger; status: () => NodeStatus;
  tls?: { cert: string; key: string; ca: string };
}): Promise<ClientApi> {
  const api = createEtcdServer(backend, { logger: o.logger });
  addAdminService(api.server, o.status);
  const creds = o.tls === undefined ? grpc.ServerCredentials.createInsecure()
    : grpc.ServerCredentials.createSsl(Buffer.from(o.tls.ca), [{ cert_chain: Buffer.from(o.tls.cert), private_key: Buffer.from(o.tls.key) }], true);
  const port = await api.start(o.host, o.port, creds);
  return { port, stats: api.stats, watchStreams: () => api.watchSessions.size, close: () => api.close() };
}
