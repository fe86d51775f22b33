// Loads quorumlog's queue protos (proto/quorumlog/queue.proto, package
// quorumlog.queue.v1) at run time with @grpc/proto-loader, as the etcd API
// loads etcd's; shared by the server, the TS client and the CLI.

import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { packageDir } from '../../util/package-dir.js';

/** The folder holding proto/quorumlog, under the package root. */
export function queueProtoDir(): string {
  return packageDir('proto', 'quorumlog/queue.proto');
}

let cached: grpc.GrpcObject | undefined;

/** The quorumlog.queue.v1 package, loaded from proto/quorumlog/queue.proto (once per process). */
export function loadQueueProtos(): grpc.GrpcObject {
  if (!cached) {
    const def = protoLoader.loadSync('quorumlog/queue.proto', {
      includeDirs: [queueProtoDir()], keepCase: true, longs: String, enums: String, bytes: Buffer, defaults: true, oneofs: true,
    });
    cached = grpc.loadPackageDefinition(def);
  }
  return cached;
}

/** The Queue service's client constructor (for clients and tests). */
export function queueServiceClient(): grpc.ServiceClientConstructor {
  const pkg = ((loadQueueProtos()['quorumlog'] as grpc.GrpcObject)['queue'] as grpc.GrpcObject)['v1'] as grpc.GrpcObject;
  return pkg['Queue'] as grpc.ServiceClientConstructor;
}
