// A small etcd v3 client for the cluster tests, generated at run time from
// our etcd protos (proto/etcd) with grpc-js: one endpoint per client and a
// deadline on every call, so a test knows exactly which node it asked and
// when an outcome is unknown. (The etcd3 npm client and etcdctl are tested
// against the cluster too; they retry across endpoints on their own.)

import * as grpc from '@grpc/grpc-js';
import { loadEtcdProtos } from '../../src/server/etcd/server.js';

type Callback = (err: grpc.ServiceError | null, res: Record<string, unknown>) => void;
type Method = (req: unknown, options: grpc.CallOptions, cb: Callback) => void;

interface Wire {
  header?: { revision?: string; raft_term?: string; member_id?: string };
  kvs?: { key: Buffer; value: Buffer; mod_revision: string; version: string }[];
  succeeded?: boolean;
  count?: string;
}

/** etcd's KV service on one endpoint. */
export class EtcdTestClient {
  private readonly kv: grpc.Client & Record<string, Method>;

  constructor(readonly endpoint: string, private readonly deadlineMs = 3000) {
    const pkg = loadEtcdProtos()['etcdserverpb'] as grpc.GrpcObject;
    const KV = pkg['KV'] as grpc.ServiceClientConstructor;
    this.kv = new KV(endpoint, grpc.credentials.createInsecure()) as unknown as grpc.Client & Record<string, Method>;
  }

  private call(method: string, req: unknown): Promise<Wire> {
    return new Promise((resolve, reject) => {
      const fn = this.kv[method] as Method;
      fn.call(this.kv, req, { deadline: Date.now() + this.deadlineMs }, (err, res) => (err !== null ? reject(err) : resolve(res as Wire)));
    });
  }

  /** Put; resolves with the revision of the write. */
  async put(key: string, value: string): Promise<number> {
    const r = await this.call('Put', { key: Buffer.from(key), value: Buffer.from(value) });
    return Number(r.header?.revision ?? 0);
  }

  /** Get one key: its value or null. */
  async get(key: string, opts: { serializable?: boolean } = {}): Promise<string | null> {
    const r = await this.call('Range', { key: Buffer.from(key), serializable: opts.serializable === true });
    const kv = r.kvs?.[0];
    return kv === undefined ? null : kv.value.toString();
  }

  /** Count keys under a prefix. */
  async countPrefix(prefix: string, opts: { serializable?: boolean } = {}): Promise<number> {
    const end = Buffer.from(prefix);
    end[end.length - 1] = (end[end.length - 1] as number) + 1;
    const r = await this.call('Range', { key: Buffer.from(prefix), range_end: end, count_only: true, serializable: opts.serializable === true });
    return Number(r.count ?? 0);
  }

  /** Every key under a prefix with its value (one linearizable Range unless serializable). */
  async getPrefix(prefix: string, opts: { serializable?: boolean } = {}): Promise<Map<string, string>> {
    const end = Buffer.from(prefix);
    end[end.length - 1] = (end[end.length - 1] as number) + 1;
    const r = await this.call('Range', { key: Buffer.from(prefix), range_end: end, serializable: opts.serializable === true });
    return new Map((r.kvs ?? []).map((kv) => [kv.key.toString(), kv.value.toString()]));
  }

  /** Compare-and-swap with Txn: set `value` if the key's value is `expected` (null: the key is absent). */
  async cas(key: string, expected: string | null, value: string): Promise<boolean> {
    const compare = expected === null
      ? { result: 'EQUAL', target: 'CREATE', key: Buffer.from(key), create_revision: '0' }
      : { result: 'EQUAL', target: 'VALUE', key: Buffer.from(key), value: Buffer.from(expected) };
    const r = await this.call('Txn', {
      compare: [compare],
      success: [{ request_put: { key: Buffer.from(key), value: Buffer.from(value) } }],
      failure: [],
    });
    return r.succeeded === true;
  }

  close(): void {
    this.kv.close();
  }
}
