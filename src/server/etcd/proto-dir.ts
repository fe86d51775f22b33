// Where etcd's protos (ours, with etcd's names and field numbers) are found at
// run time: by the grpc-js server (server.ts) and by the protocol workers'
// lean path (src/server/protocol-workers), which must not load grpc-js.

import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The folder holding our etcd protos: proto/etcd under the package root (the
 * first folder above this module with a package.json), so it is found from
 * src/ (ts runners), dist/ and any other build output folder alike.
 */
export function etcdProtoDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'proto', 'etcd');
    if (existsSync(join(dir, 'package.json')) && existsSync(join(candidate, 'rpc.proto'))) return candidate;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`proto/etcd/rpc.proto not found above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}
