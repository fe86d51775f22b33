// `quorumlog put|get|del|watch`: small etcd v3 client verbs, for trying the
// cluster without etcdctl (which works too). They speak the etcd API over
// gRPC with our etcd protos and try the endpoints in order until one answers.

import * as grpc from '@grpc/grpc-js';
import { loadEtcdProtos } from '../server/etcd/server.js';
import { clientCredentials, clientOptions } from './credentials.js';
import { isTransportError, tryEndpoints } from './transport-errors.js';

type Callback = (err: grpc.ServiceError | null, res: WireResponse) => void;
type Unary = (req: unknown, options: grpc.CallOptions, cb: Callback) => void;

interface WireKv { key: Buffer; value: Buffer; mod_revision: string; version: string }
interface WireResponse {
  header?: { revision?: string };
  kvs?: WireKv[];
  deleted?: string;
  prev_kv?: WireKv | null;
}

export interface KvVerbOptions {
  readonly endpoints: readonly string[];
  readonly timeoutMs: number;
}

/** The end of the range holding every key that starts with `prefix` (etcd's --prefix). */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if ((end[i] as number) < 0xff) {
      end[i] = (end[i] as number) + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]); // every key
}

function service(name: string): grpc.ServiceClientConstructor {
  return (loadEtcdProtos()['etcdserverpb'] as grpc.GrpcObject)[name] as grpc.ServiceClientConstructor;
}

/**
 * Calls KV.`method` on the first endpoint that answers: a transport failure,
 * or a node's UNAVAILABLE or DEADLINE_EXCEEDED answer (no leader, request
 * timed out), moves on to the next; another answer from a node is final.
 */
function kvCall(o: KvVerbOptions, method: string, req: unknown): Promise<WireResponse> {
  const KV = service('KV');
  return tryEndpoints(o.endpoints, async (endpoint) => {
    const client = new KV(endpoint, clientCredentials(), clientOptions()) as unknown as grpc.Client & Record<string, Unary>;
    try {
      return await new Promise<WireResponse>((resolve, reject) => {
        (client[method] as Unary).call(client, req, { deadline: Date.now() + o.timeoutMs }, (err, res) => (err !== null ? reject(err) : resolve(res)));
      });
    } finally {
      client.close();
    }
  }, (e) => {
    const code = (e as Partial<grpc.ServiceError>).code;
    return code === grpc.status.UNAVAILABLE || code === grpc.status.DEADLINE_EXCEEDED;
  });
}

export async function runPut(o: KvVerbOptions, key: string, value: string, out: (l: string) => void): Promise<number> {
  const r = await kvCall(o, 'Put', { key: Buffer.from(key), value: Buffer.from(value) });
  out(`OK (revision ${r.header?.revision ?? '?'})`);
  return 0;
}

/**
 * Prints each matching key and its value, a line each. A key that does not
 * exist prints nothing and exits 0, as `etcdctl get` does: absence is an
 * answer, not an error (a failure to ask exits 2 with a line on stderr).
 */
export async function runGet(o: KvVerbOptions, key: string, opts: { prefix: boolean; serializable: boolean }, out: (l: string) => void): Promise<number> {
  const k = Buffer.from(key);
  const r = await kvCall(o, 'Range', { key: k, ...(opts.prefix ? { range_end: prefixEnd(k) } : {}), serializable: opts.serializable });
  for (const kv of r.kvs ?? []) {
    out(kv.key.toString());
    out(kv.value.toString());
  }
  return 0;
}

export async function runDel(o: KvVerbOptions, key: string, opts: { prefix: boolean }, out: (l: string) => void): Promise<number> {
  const k = Buffer.from(key);
  const r = await kvCall(o, 'DeleteRange', { key: k, ...(opts.prefix ? { range_end: prefixEnd(k) } : {}) });
  out(String(r.deleted ?? '0'));
  return 0;
}

/** Prints put and delete events until interrupted (or `maxEvents`, for tests). */
export async function runWatch(o: KvVerbOptions, key: string, opts: { prefix: boolean; maxEvents?: number }, out: (l: string) => void): Promise<number> {
  const Watch = service('Watch');
  const endpoint = o.endpoints[0];
  if (endpoint === undefined) throw new Error('no endpoints given');
  const client = new Watch(endpoint, clientCredentials(), clientOptions()) as unknown as grpc.Client & { Watch(): grpc.ClientDuplexStream<unknown, { events?: { type: string; kv: WireKv }[]; canceled?: boolean; cancel_reason?: string }> };
  const k = Buffer.from(key);
  const stream = client.Watch();
  let seen = 0;
  return new Promise<number>((resolve, reject) => {
    const finish = (code: number): void => {
      stream.cancel();
      client.close();
      resolve(code);
    };
    stream.on('data', (res) => {
      if (res.canceled === true) {
        out(`watch cancelled: ${res.cancel_reason ?? ''}`);
        finish(1);
        return;
      }
      for (const e of res.events ?? []) {
        out(e.type);
        out(e.kv.key.toString());
        if (e.type === 'PUT') out(e.kv.value.toString());
        if (opts.maxEvents !== undefined && ++seen >= opts.maxEvents) finish(0);
      }
    });
    stream.on('error', (err: grpc.ServiceError) => {
      client.close();
      if (err.code === grpc.status.CANCELLED) resolve(0);
      else if (isTransportError(err)) reject(err); // one line on stderr from the program (transport-errors.ts)
      else {
        out(`watch failed: ${err.details || err.message}`);
        resolve(1);
      }
    });
    process.once('SIGINT', () => finish(0));
    stream.write({ create_request: { key: k, ...(opts.prefix ? { range_end: prefixEnd(k) } : {}) } });
  });
}
