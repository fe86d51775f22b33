// `quorumlog put|get|del|watch`: small etcd v3 client verbs, for trying the
// cluster without etcdctl (which works too). They speak the etcd API over
// gRPC with our etcd protos and try the endpoints in order until one answers.

import * as grpc from '@grpc/grpc-js';
import { loadEtcdProtos } from '../server/etcd/server.js';
import { clientCredentials } from './credentials.js';

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

/** Calls KV.`method` on the first endpoint that answers (a definite etcd error is not retried elsewhere). */
async function kvCall(o: KvVerbOptions, method: string, req: unknown): Promise<WireResponse> {
  const KV = service('KV');
  let last: Error | null = null;
  for (const endpoint of o.endpoints) {
    const client = new KV(endpoint, clientCredentials()) as unknown as grpc.Client & Record<string, Unary>;
    try {
      return await new Promise<WireResponse>((resolve, reject) => {
        (client[method] as Unary).call(client, req, { deadline: Date.now() + o.timeoutMs }, (err, res) => (err !== null ? reject(err) : resolve(res)));
      });
    } catch (e) {
      last = e as Error;
      const code = (e as grpc.ServiceError).code;
      if (code !== grpc.status.UNAVAILABLE && code !== grpc.status.DEADLINE_EXCEEDED) throw e;
    } finally {
      client.close();
    }
  }
  throw last ?? new Error('no endpoints given');
}

export async function runPut(o: KvVerbOptions, key: string, value: string, out: (l: string) => void): Promise<number> {
  const r = await kvCall(o, 'Put', { key: Buffer.from(key), value: Buffer.from(value) });
  out(`OK (revision ${r.header?.revision ?? '?'})`);
  return 0;
}

export async function runGet(o: KvVerbOptions, key: string, opts: { prefix: boolean; serializable: boolean }, out: (l: string) => void): Promise<number> {
  const k = Buffer.from(key);
  const r = await kvCall(o, 'Range', { key: k, ...(opts.prefix ? { range_end: prefixEnd(k) } : {}), serializable: opts.serializable });
  for (const kv of r.kvs ?? []) {
    out(kv.key.toString());
    out(kv.value.toString());
  }
  return (r.kvs ?? []).length === 0 && !opts.prefix ? 1 : 0;
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
  const client = new Watch(endpoint, clientCredentials()) as unknown as grpc.Client & { Watch(): grpc.ClientDuplexStream<unknown, { events?: { type: string; kv: WireKv }[]; canceled?: boolean; cancel_reason?: string }> };
  const k = Buffer.from(key);
  const stream = client.Watch();
  let seen = 0;
  return new Promise<number>((resolve) => {
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
      if (err.code !== grpc.status.CANCELLED) out(`watch failed: ${err.message}`);
      resolve(err.code === grpc.status.CANCELLED ? 0 : 1);
    });
    process.once('SIGINT', () => finish(0));
    stream.write({ create_request: { key: k, ...(opts.prefix ? { range_end: prefixEnd(k) } : {}) } });
  });
}
