// quorumlog's own admin service on the client port, beside the etcd API:
// `/quorumlog.Admin/Status` answers the node's status (src/server/metrics.ts
// NodeStatus) as JSON, so that `quorumlog status --endpoints` needs only the
// client endpoints etcdctl uses. No protobuf: the request is empty and the
// answer is UTF-8 JSON.

import * as grpc from '@grpc/grpc-js';
import type { NodeStatus } from './metrics.js';

const STATUS_PATH = '/quorumlog.Admin/Status';

const identity = (b: Buffer): Buffer => b;

/** The service definition, shared by the server and the CLI's client. */
export const ADMIN_SERVICE: grpc.ServiceDefinition = {
  Status: {
    path: STATUS_PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
    originalName: 'status',
  },
};

/** Adds the admin service to a gRPC server. */
export function addAdminService(server: grpc.Server, status: () => NodeStatus): void {
  server.addService(ADMIN_SERVICE, {
    Status(_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>): void {
      try {
        cb(null, Buffer.from(JSON.stringify(status())));
      } catch (e) {
        cb({ code: grpc.status.INTERNAL, details: (e as Error).message });
      }
    },
  });
}

/** Asks one endpoint for its status. */
export function fetchAdminStatus(endpoint: string, credentials: grpc.ChannelCredentials, timeoutMs: number): Promise<NodeStatus> {
  const client = new grpc.Client(endpoint, credentials);
  return new Promise<NodeStatus>((resolve, reject) => {
    client.makeUnaryRequest(STATUS_PATH, identity, identity, Buffer.alloc(0), { deadline: Date.now() + timeoutMs }, (err, res) => {
      client.close();
      if (err !== null || res === undefined) reject(err ?? new Error('empty answer'));
      else {
        try {
          resolve(JSON.parse(res.toString('utf8')) as NodeStatus);
        } catch (e) {
          reject(e as Error);
        }
      }
    });
  });
}
