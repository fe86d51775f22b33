// `quorumlog backup --out FILE` and `quorumlog restore --backup FILE --config
// node.json` (src/server/backup.ts; docs/OPERATIONS.md). The backup comes
// from etcd's Maintenance.Snapshot stream, the same one `etcdctl snapshot
// save` writes to a file, so either tool makes a file the other's restore
// reads. Exit code 1 when it could not.

import { readFileSync, renameSync, writeFileSync, openSync, fsyncSync, closeSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { decodeBackup, restoreBackup } from '../server/backup.js';
import { loadConfigFile } from '../server/config.js';
import { loadEtcdProtos } from '../server/etcd/server.js';
import { clientCredentials, clientOptions } from './credentials.js';
import { isTransportError, tryEndpoints } from './transport-errors.js';

/**
 * Streams a backup from the first endpoint that answers and writes it to
 * `out` (atomically, fsynced); returns the exit code (1 when a node refused
 * or sent a backup that does not decode). Throws EndpointsUnreachableError
 * when no endpoint could be reached (the program prints one line for it).
 * It opens no data directory, so it takes no lock (src/storage/dir-lock.ts).
 */
export async function runBackup(endpoints: readonly string[], outFile: string, timeoutMs: number, out: (line: string) => void): Promise<number> {
  const ctor = (loadEtcdProtos()['etcdserverpb'] as grpc.GrpcObject)['Maintenance'] as grpc.ServiceClientConstructor;
  let bytes: Buffer;
  let header: ReturnType<typeof decodeBackup>['header'];
  try {
    ({ bytes, header } = await tryEndpoints(endpoints, async (e) => {
      const c = new ctor(e, clientCredentials(), clientOptions());
      try {
        const chunks = await new Promise<Buffer[]>((resolve, reject) => {
          const got: Buffer[] = [];
          const stream = (c as unknown as Record<string, (req: unknown, meta: grpc.Metadata, opts: grpc.CallOptions) => grpc.ClientReadableStream<{ blob: Buffer }>>)['Snapshot']
            ?.call(c, {}, new grpc.Metadata(), { deadline: Date.now() + timeoutMs });
          if (stream === undefined) {
            reject(new Error('Maintenance.Snapshot is missing from the protos'));
            return;
          }
          stream.on('data', (m: { blob: Buffer }) => got.push(m.blob));
          stream.on('error', reject);
          stream.on('end', () => resolve(got));
        });
        const all = Buffer.concat(chunks);
        return { bytes: all, header: decodeBackup(all).header }; // refuse to write a file that would not restore
      } finally {
        c.close();
      }
    }, (err) => {
      // A node that refuses (not a connection problem) has said its word; the others would say the same.
      const code = (err as Partial<grpc.ServiceError>).code;
      return code === undefined || code === grpc.status.UNAVAILABLE || code === grpc.status.DEADLINE_EXCEEDED;
    }));
  } catch (err) {
    if (isTransportError(err)) throw err;
    const se = err as Partial<grpc.ServiceError>;
    out(`backup: ${typeof se.details === 'string' && se.details !== '' ? se.details : (err as Error).message}`);
    return 1;
  }
  const tmp = `${outFile}.part`;
  writeFileSync(tmp, bytes);
  const fd = openSync(tmp, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, outFile);
  out(`backup of cluster ${header.clusterId} from ${header.nodeId} at index ${header.index} (term ${header.term}), ${bytes.length} bytes, written to ${outFile}`);
  return 0;
}

/**
 * Seeds a new node's data directory from a backup file; returns the exit
 * code. The directory is locked meanwhile (a running node's is refused).
 * A failure is one line on `err` (default: `out`).
 */
export function runRestore(backupFile: string, configFile: string, out: (line: string) => void, err: (line: string) => void = out): number {
  try {
    const config = loadConfigFile(configFile);
    const r = restoreBackup(readFileSync(backupFile), config);
    out(`restored ${config.dataDir} for node ${config.nodeId} of cluster ${config.clusterId} from the backup of ${r.header.clusterId} ` +
      `(taken from ${r.header.nodeId} at ${r.header.takenAt}): index ${r.index}, term ${r.term}; data directory id ${r.dirId}. ` +
      'Restore every node of the new cluster from the same file, then start them.');
    return 0;
  } catch (e) {
    err(`restore: ${(e as Error).message}`);
    return 1;
  }
}
