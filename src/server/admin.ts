// quorumlog's own admin service on the client port, beside the etcd API:
// `/quorumlog.Admin/Status` answers the node's status (src/server/metrics.ts
// NodeStatus) as JSON, so that `quorumlog status --endpoints` needs only the
// client endpoints etcdctl uses. No protobuf: the request is empty and the
// answer is UTF-8 JSON. While etcd auth is on it answers root alone, as etcd
// 3.4 serves Maintenance.Status (the metrics port's /status is not the
// client port's and is not covered by auth: docs/OPERATIONS.md).

import * as grpc from '@grpc/grpc-js';
import type { NodeStatus } from './metrics.js';
import type { Authorizer } from './auth/authorizer.js';
import { grpcCredentials } from './auth/credentials.js';
import { etcdStatusOf, serviceError } from './etcd/errors.js';

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

/**
 * Adds the admin service to a gRPC server. With `auth`, a caller other than
 * root is refused while auth is on, with etcd's status ("user name is empty",
 * "permission denied", "invalid auth token").
 */
export function addAdminService(server: grpc.Server, status: () => NodeStatus,
  auth?: { readonly authorizer: Authorizer; readonly behindProtocolWorkers: boolean }): void {
  server.addService(ADMIN_SERVICE, {
    Status(call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>): void {
      try {
        if (auth !== undefined && auth.authorizer.enabled) auth.authorizer.check(grpcCredentials(call, auth.behindProtocolWorkers), 'root');
        cb(null, Buffer.from(JSON.stringify(status())));
      } catch (e) {
        const s = etcdStatusOf(e);
        cb(s !== null ? serviceError(s) : { code: grpc.status.INTERNAL, details: (e as Error).message });
      }
    },
  });
}

/** Asks one endpoint for its status (`options`: grpc-js client options, e.g. the CLI's auth token interceptor). */
export function fetchAdminStatus(endpoint: string, credentials: grpc.ChannelCredentials, timeoutMs: number, options: grpc.ClientOptions = {}): Promise<NodeStatus> {
  const client = new grpc.Client(endpoint, credentials, options);
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
