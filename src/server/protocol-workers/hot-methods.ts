// The hot etcd methods a protocol worker serves itself: Put, Range,
// DeleteRange and Txn. It decodes their protobuf, checks them as the grpc-js
// server does (src/server/etcd/convert.ts, the same code), encodes writes as
// the KV command that goes into the log, and hands the Raft process a
// compact request (messages.ts). The answer comes back as a result object,
// which is encoded here into etcd's response. Every other method is proxied.

import protobuf from 'protobufjs';
import { encodeCommand } from '../../services/kv/codec.js';
import type { KvResult } from '../../services/kv/types.js';
import {
  deleteRangeRequestFromWire, deleteRangeResponseToWire, putRequestFromWire, putResponseToWire, rangeRequestFromWire,
  rangeResponseToWire, txnRequestFromWire, txnResponseToWire, type WireHeader,
} from '../etcd/convert.js';
import { etcdStatusOf, KV_ERROR_STATUS } from '../etcd/errors.js';
import { etcdProtoDir } from '../etcd/proto-dir.js';
import { isReadOnlyTxn } from '../etcd/readonly-txn.js';
import { GRPC_STATUS } from './grpc-frame.js';
import type { DecodedRequest, WorkerResult } from './messages.js';

/** The methods served on the lean path, by their HTTP/2 :path. */
export type HotMethod = 'Put' | 'Range' | 'DeleteRange' | 'Txn';
export const HOT_PATHS: ReadonlyMap<string, HotMethod> = new Map([
  ['/etcdserverpb.KV/Put', 'Put'], ['/etcdserverpb.KV/Range', 'Range'],
  ['/etcdserverpb.KV/DeleteRange', 'DeleteRange'], ['/etcdserverpb.KV/Txn', 'Txn'],
]);

/** A refusal decided in the worker: the gRPC status to answer with. */
export interface Refusal {
  readonly code: number;
  readonly message: string;
}

/** The request/response types of each hot method. */
interface MethodTypes {
  readonly request: protobuf.Type;
  readonly response: protobuf.Type;
}

/** proto-loader's conversion options, so that convert.ts sees the same shapes as under grpc-js. */
const TO_OBJECT: protobuf.IConversionOptions = { longs: String, enums: String, bytes: Buffer as unknown as typeof String, defaults: true, oneofs: true };

/** etcd's protos (proto/etcd) as protobufjs types, with proto-loader's field names (keepCase). */
export function loadEtcdRoot(): protobuf.Root {
  const dir = etcdProtoDir();
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => `${dir}/${target.replace(/^.*\//, '')}`;
  root.loadSync('rpc.proto', { keepCase: true });
  return root;
}

/** Decoders and encoders of the hot methods, loaded once from proto/etcd. */
export class HotMethods {
  private readonly types: Record<HotMethod, MethodTypes>;

  /** A ResponseHeader's cluster_id and member_id fields, encoded once (they never change). */
  private readonly idFields: Uint8Array;
  private readonly scratch = new Uint8Array(64);

  constructor(private readonly ids: { readonly clusterId: string; readonly memberId: string }) {
    const idBytes: number[] = [];
    for (const [field, value] of [[1, BigInt(ids.clusterId)], [2, BigInt(ids.memberId)]] as const) {
      if (value === 0n) continue;
      idBytes.push(field << 3);
      for (let v = BigInt.asUintN(64, value); ; v >>= 7n) {
        if (v < 0x80n) {
          idBytes.push(Number(v));
          break;
        }
        idBytes.push(Number(v & 0x7fn) | 0x80);
      }
    }
    this.idFields = Uint8Array.from(idBytes);
    const root = loadEtcdRoot();
    const t = (name: string): protobuf.Type => root.lookupType(`etcdserverpb.${name}`);
    this.types = {
      Put: { request: t('PutRequest'), response: t('PutResponse') },
      Range: { request: t('RangeRequest'), response: t('RangeResponse') },
      DeleteRange: { request: t('DeleteRangeRequest'), response: t('DeleteRangeResponse') },
      Txn: { request: t('TxnRequest'), response: t('TxnResponse') },
    };
  }

  /**
   * Decodes and checks one request. Returns what to send to the Raft process
   * (without its id), or the refusal to answer at once.
   */
  decode(method: HotMethod, body: Uint8Array): DecodedRequest | Refusal {
    try {
      const types = this.types[method];
      const wire = types.request.toObject(types.request.decode(body), TO_OBJECT);
      switch (method) {
        case 'Put':
          return { op: 'write', command: encodeCommand({ type: 'put', request: putRequestFromWire(wire) }) };
        case 'DeleteRange':
          return { op: 'write', command: encodeCommand({ type: 'deleteRange', request: deleteRangeRequestFromWire(wire) }) };
        case 'Range':
          return { op: 'range', request: rangeRequestFromWire(wire) };
        case 'Txn': {
          const request = txnRequestFromWire(wire);
          return isReadOnlyTxn(request) ? { op: 'readTxn', request } : { op: 'write', command: encodeCommand({ type: 'txn', request }) };
        }
      }
    } catch (err) {
      const s = etcdStatusOf(err);
      if (s !== null) return { code: s.code, message: s.message };
      // protobufjs's decoder throws plain Errors (RangeError, "invalid wire type ...") on bytes that are not the message.
      if (err instanceof Error) return { code: GRPC_STATUS.INTERNAL, message: `grpc: error unmarshalling request: ${err.message}` };
      throw err;
    }
  }

  /**
   * A PutResponse with just its header (a put without prev_kv), framed for
   * gRPC, encoded by hand: the hot path's one allocation is the frame.
   */
  framedPlainPut(revision: number, raftTerm: number): Buffer {
    const h = this.scratch;
    h.set(this.idFields, 0);
    let n = this.idFields.byteLength;
    if (revision !== 0) {
      h[n++] = 3 << 3;
      n = writeVarint(h, n, revision);
    }
    if (raftTerm !== 0) {
      h[n++] = 4 << 3;
      n = writeVarint(h, n, raftTerm);
    }
    // PutResponse { header (field 1, length-delimited) }; a header is under 128 bytes, so its length is one byte.
    const out = Buffer.allocUnsafe(5 + 2 + n);
    out[0] = 0;
    out.writeUInt32BE(2 + n, 1);
    out[5] = (1 << 3) | 2;
    out[6] = n;
    out.set(h.subarray(0, n), 7);
    return out;
  }

  /** The response bytes (unframed protobuf) for a result, or the status when the result is a refusal. */
  encode(method: HotMethod, r: WorkerResult): Uint8Array | Refusal {
    if (r.ok === false) return { code: r.code, message: r.message !== '' ? r.message : `etcdserver: internal error in ${method}` };
    const header: WireHeader = { cluster_id: this.ids.clusterId, member_id: this.ids.memberId, revision: r.revision, raft_term: r.raftTerm };
    let body: object;
    switch (r.ok) {
      case 'range':
        if (method !== 'Range') return mismatch(method, r.ok);
        body = { header, ...rangeResponseToWire(r.response) };
        break;
      case 'readTxn':
        if (method !== 'Txn') return mismatch(method, r.ok);
        body = { header, ...txnResponseToWire(r.response, header) };
        break;
      case 'write': {
        const res = r.result;
        if (method === 'Put' && res.type === 'put') body = { header, ...putResponseToWire(res.response) };
        else if (method === 'DeleteRange' && res.type === 'deleteRange') body = { header, ...deleteRangeResponseToWire(res.response) };
        else if (method === 'Txn' && res.type === 'txn') body = { header, ...txnResponseToWire(res.response, header) };
        else return mismatch(method, res.type);
        break;
      }
    }
    const type = this.types[method].response;
    return type.encode(type.fromObject(body)).finish();
  }
}

/** Writes a non-negative safe integer as a protobuf varint at `at`; returns the next position. */
function writeVarint(buf: Uint8Array, at: number, value: number): number {
  let v = value;
  while (v >= 0x80) {
    buf[at++] = (v % 0x80) | 0x80;
    v = Math.floor(v / 0x80);
  }
  buf[at++] = v;
  return at;
}

function mismatch(method: HotMethod, got: string): Refusal {
  return { code: GRPC_STATUS.INTERNAL, message: `etcdserver: internal error in ${method} (answered with a ${got} result)` };
}

/** The status of a command's own failure (a `{type: 'error'}` result), as the grpc-js server answers it. */
export function kvErrorRefusal(result: Extract<KvResult, { type: 'error' }>): Refusal {
  const s = KV_ERROR_STATUS[result.error];
  return s === undefined ? { code: GRPC_STATUS.INTERNAL, message: `etcdserver: internal error (store error ${String(result.error)})` } : s;
}
