// Where etcd's protos (ours, with etcd's names and field numbers) are found at
// run time: by the grpc-js server (server.ts) and by the protocol workers'
// lean path (src/server/protocol-workers), which must not load grpc-js.

import { packageDir } from '../../util/package-dir.js';

/** The folder holding our etcd protos: proto/etcd under the package root. */
export function etcdProtoDir(): string {
  return packageDir('proto/etcd', 'rpc.proto');
}
