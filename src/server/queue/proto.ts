// Loads quorumlog's queue protos (proto/quorumlog/queue.proto, package
// quorumlog.queue.v1) at run time with @grpc/proto-loader, as the etcd API
// loads etcd's; shared by the server, the TS client and the CLI.

import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/** The folder holding proto/quorumlog (found above this module, as src/server/etcd/server.ts finds the etcd protos). */
export function queueProtoDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'proto');
    if (existsSync(join(dir, 'package.json')) && existsSync(join(candidate, 'quorumlog', 'queue.proto'))) return candidate;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`proto/quorumlog/queue.proto not found above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
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
