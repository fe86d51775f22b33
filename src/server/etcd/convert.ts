// Translation between etcd's protobuf messages, as @grpc/proto-loader hands
// them over (snake_case fields, bytes as Buffer, 64-bit integers as decimal
// strings, enums as their names), and the KV service's types
// (src/services/kv/types.ts). Everything that arrives from the network is
// validated here: a bad enum, a non-integer or out-of-range number, or a
// missing union member throws MalformedRequestError (INVALID_ARGUMENT), never
// something that could crash the node or reach the log.

import type {
  Compare,
  CompareResult,
  CompactionRequest,
  DeleteRangeRequest,
  KeyValue,
  KvEvent,
  PutRequest,
  RangeRequest,
  RangeResponse,
  RequestOp,
  ResponseOp,
  SortOrder,
  SortTarget,
  TxnRequest,
  TxnResponse,
  PutResponse,
  DeleteRangeResponse,
} from '../../services/kv/types.js';
import { EtcdRequestError, ETCD_STATUS, MalformedRequestError } from './errors.js';
import { KV_ERROR_STATUS } from './errors.js';

// ---- Wire shapes (what proto-loader produces with keepCase, longs: String, enums: String, defaults, oneofs) ----

/** A 64-bit integer field as received (decimal string) or sent (string or number). */
export type Int64 = string | number;

/** mvccpb.KeyValue on the wire. */
export interface WireKeyValue {
  key: Buffer;
  create_revision: Int64;
  mod_revision: Int64;
  version: Int64;
  value: Buffer;
  lease: Int64;
}

/** etcdserverpb.ResponseHeader on the wire. */
export interface WireHeader {
  cluster_id: Int64;
  member_id: Int64;
  revision: Int64;
  raft_term: Int64;
}

/** etcdserverpb.RangeRequest as received. */
export interface WireRangeRequest {
  key?: Buffer;
  range_end?: Buffer;
  limit?: Int64;
  revision?: Int64;
  sort_order?: string | number;
  sort_target?: string | number;
  serializable?: boolean;
  keys_only?: boolean;
  count_only?: boolean;
  min_mod_revision?: Int64;
  max_mod_revision?: Int64;
  min_create_revision?: Int64;
  max_create_revision?: Int64;
}

/** etcdserverpb.PutRequest as received. */
export interface WirePutRequest {
  key?: Buffer;
  value?: Buffer;
  lease?: Int64;
  prev_kv?: boolean;
  ignore_value?: boolean;
  ignore_lease?: boolean;
}

/** etcdserverpb.DeleteRangeRequest as received. */
export interface WireDeleteRangeRequest {
  key?: Buffer;
  range_end?: Buffer;
  prev_kv?: boolean;
}

/** etcdserverpb.Compare as received. */
export interface WireCompare {
  result?: string | number;
  target?: string | number;
  key?: Buffer;
  range_end?: Buffer;
  version?: Int64;
  create_revision?: Int64;
  mod_revision?: Int64;
  value?: Buffer;
  lease?: Int64;
  target_union?: string;
}

/** etcdserverpb.RequestOp as received. */
export interface WireRequestOp {
  request?: string;
  request_range?: WireRangeRequest | null;
  request_put?: WirePutRequest | null;
  request_delete_range?: WireDeleteRangeRequest | null;
  request_txn?: WireTxnRequest | null;
}

/** etcdserverpb.TxnRequest as received. */
export interface WireTxnRequest {
  compare?: WireCompare[];
  success?: WireRequestOp[];
  failure?: WireRequestOp[];
}

/** etcdserverpb.CompactionRequest as received. */
export interface WireCompactionRequest {
  revision?: Int64;
  physical?: boolean;
}

/** mvccpb.Event as sent. */
export interface WireEvent {
  type: 'PUT' | 'DELETE';
  kv: WireKeyValue;
  prev_kv: WireKeyValue | null;
}

// ---- Scalars ----

/**
 * An int64 field as a JS number. Values beyond ±(2^53 - 1) are clamped there:
 * no real revision, count or version gets that far, so a clamped revision is
 * still "a future revision" to the store, a clamped lease id still "not
 * found", a clamped limit still "no limit". With `negativeAsZero`, negative
 * values read as 0, as etcd reads a negative revision (the current one) or
 * limit (none). Anything that is not an integer is malformed.
 */
export function parseInt64(value: Int64 | undefined | null, field: string, negativeAsZero = false): number {
  if (value === undefined || value === null || value === '') return 0;
  let n: number;
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new MalformedRequestError(`${field} is not an integer: ${value}`);
    n = value;
  } else {
    if (!/^-?\d{1,20}$/.test(value)) throw new MalformedRequestError(`${field} is not an integer: ${JSON.stringify(value.slice(0, 40))}`);
    n = Number(value);
  }
  n = Math.max(-Number.MAX_SAFE_INTEGER, Math.min(Number.MAX_SAFE_INTEGER, n));
  return negativeAsZero && n < 0 ? 0 : n;
}

function bytes(b: Buffer | Uint8Array | undefined | null): Uint8Array {
  return b ?? Buffer.alloc(0);
}

function asBuffer(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

function enumValue<T extends string>(value: string | number | undefined, names: readonly string[], map: readonly T[], field: string): T {
  if (value === undefined) return map[0] as T;
  const index = typeof value === 'number' ? value : names.indexOf(value);
  const out = map[index];
  if (out === undefined) throw new MalformedRequestError(`${field} has an unknown value: ${String(value)}`);
  return out;
}

// ---- Requests ----

const SORT_ORDERS = ['NONE', 'ASCEND', 'DESCEND'] as const;
const SORT_ORDER_VALUES: readonly SortOrder[] = ['none', 'ascend', 'descend'];
const SORT_TARGETS = ['KEY', 'VERSION', 'CREATE', 'MOD', 'VALUE'] as const;
const SORT_TARGET_VALUES: readonly SortTarget[] = ['key', 'version', 'create', 'mod', 'value'];

function sortOption<T extends string>(value: string | number | undefined, names: readonly string[], map: readonly T[]): T {
  try {
    return enumValue(value, names, map, 'sort option');
  } catch {
    throw new EtcdRequestError(ETCD_STATUS.invalidSortOption); // etcd: "etcdserver: invalid sort option"
  }
}

function requireKey(key: Uint8Array): void {
  if (key.length === 0) throw new EtcdRequestError(KV_ERROR_STATUS.emptyKey);
}

/** KV.Range request → RangeRequest; an empty key is etcd's "key is not provided". */
export function rangeRequestFromWire(w: WireRangeRequest): RangeRequest {
  const key = bytes(w.key);
  requireKey(key);
  return {
    key,
    rangeEnd: bytes(w.range_end),
    limit: parseInt64(w.limit, 'limit', true),
    revision: parseInt64(w.revision, 'revision', true),
    sortOrder: sortOption(w.sort_order, SORT_ORDERS, SORT_ORDER_VALUES),
    sortTarget: sortOption(w.sort_target, SORT_TARGETS, SORT_TARGET_VALUES),
    serializable: w.serializable === true,
    keysOnly: w.keys_only === true,
    countOnly: w.count_only === true,
    minModRevision: parseInt64(w.min_mod_revision, 'min_mod_revision', true),
    maxModRevision: parseInt64(w.max_mod_revision, 'max_mod_revision', true),
    minCreateRevision: parseInt64(w.min_create_revision, 'min_create_revision', true),
    maxCreateRevision: parseInt64(w.max_create_revision, 'max_create_revision', true),
  };
}

/** KV.Put request → PutRequest, with etcd's checks (key given; no value with ignore_value; no lease with ignore_lease). */
export function putRequestFromWire(w: WirePutRequest): PutRequest {
  const key = bytes(w.key);
  requireKey(key);
  const value = bytes(w.value);
  const lease = parseInt64(w.lease, 'lease');
  const ignoreValue = w.ignore_value === true;
  const ignoreLease = w.ignore_lease === true;
  if (ignoreValue && value.length !== 0) throw new EtcdRequestError(ETCD_STATUS.valueProvided);
  if (ignoreLease && lease !== 0) throw new EtcdRequestError(ETCD_STATUS.leaseProvided);
  return { key, value, lease, prevKv: w.prev_kv === true, ignoreValue, ignoreLease };
}

/** KV.DeleteRange request → DeleteRangeRequest. */
export function deleteRangeRequestFromWire(w: WireDeleteRangeRequest): DeleteRangeRequest {
  const key = bytes(w.key);
  requireKey(key);
  return { key, rangeEnd: bytes(w.range_end), prevKv: w.prev_kv === true };
}

const COMPARE_RESULTS = ['EQUAL', 'GREATER', 'LESS', 'NOT_EQUAL'] as const;
const COMPARE_RESULT_VALUES: readonly CompareResult[] = ['equal', 'greater', 'less', 'notEqual'];
const COMPARE_TARGETS = ['VERSION', 'CREATE', 'MOD', 'VALUE', 'LEASE'] as const;
const COMPARE_TARGET_VALUES = ['version', 'create', 'mod', 'value', 'lease'] as const;

function compareFromWire(w: WireCompare): Compare {
  const result = enumValue(w.result, COMPARE_RESULTS, COMPARE_RESULT_VALUES, 'compare.result');
  const target = enumValue(w.target, COMPARE_TARGETS, COMPARE_TARGET_VALUES, 'compare.target');
  const key = bytes(w.key);
  requireKey(key);
  const rangeEnd = bytes(w.range_end);
  switch (target) {
    case 'version':
      return { target, result, key, rangeEnd, version: parseInt64(w.version, 'compare.version') };
    case 'create':
      return { target, result, key, rangeEnd, createRevision: parseInt64(w.create_revision, 'compare.create_revision') };
    case 'mod':
      return { target, result, key, rangeEnd, modRevision: parseInt64(w.mod_revision, 'compare.mod_revision') };
    case 'value':
      return { target, result, key, rangeEnd, value: bytes(w.value) };
    case 'lease':
      return { target, result, key, rangeEnd, lease: parseInt64(w.lease, 'compare.lease') };
  }
}

/** Nesting deeper than this is refused (etcd bounds a txn by its op count; this bounds recursion). */
const TXN_DEPTH_MAX = 16;

function requestOpFromWire(w: WireRequestOp, depth: number): RequestOp {
  if (w.request_range) return { type: 'range', request: rangeRequestFromWire(w.request_range) };
  if (w.request_put) return { type: 'put', request: putRequestFromWire(w.request_put) };
  if (w.request_delete_range) return { type: 'deleteRange', request: deleteRangeRequestFromWire(w.request_delete_range) };
  if (w.request_txn) return { type: 'txn', request: txnRequestFromWire(w.request_txn, depth + 1) };
  throw new MalformedRequestError('a txn RequestOp holds no request');
}

/** KV.Txn request → TxnRequest. */
export function txnRequestFromWire(w: WireTxnRequest, depth = 0): TxnRequest {
  if (depth > TXN_DEPTH_MAX) throw new MalformedRequestError(`txn nested deeper than ${TXN_DEPTH_MAX}`);
  return {
    compare: (w.compare ?? []).map(compareFromWire),
    success: (w.success ?? []).map((op) => requestOpFromWire(op, depth)),
    failure: (w.failure ?? []).map((op) => requestOpFromWire(op, depth)),
  };
}

/** KV.Compact request → CompactionRequest. */
export function compactionRequestFromWire(w: WireCompactionRequest): CompactionRequest {
  return { revision: parseInt64(w.revision, 'revision', true), physical: w.physical === true };
}

// ---- Responses ----

/** KeyValue → mvccpb.KeyValue. */
export function keyValueToWire(kv: KeyValue): WireKeyValue {
  return {
    key: asBuffer(kv.key),
    create_revision: kv.createRevision,
    mod_revision: kv.modRevision,
    version: kv.version,
    value: asBuffer(kv.value),
    lease: kv.lease,
  };
}

/** RangeResponse → etcd's fields (without header). */
export function rangeResponseToWire(r: RangeResponse): { kvs: WireKeyValue[]; more: boolean; count: number } {
  return { kvs: r.kvs.map(keyValueToWire), more: r.more, count: r.count };
}

/** PutResponse → etcd's fields (without header). */
export function putResponseToWire(r: PutResponse): { prev_kv: WireKeyValue | null } {
  return { prev_kv: r.prevKv ? keyValueToWire(r.prevKv) : null };
}

/** DeleteRangeResponse → etcd's fields (without header). */
export function deleteRangeResponseToWire(r: DeleteRangeResponse): { deleted: number; prev_kvs: WireKeyValue[] } {
  return { deleted: r.deleted, prev_kvs: r.prevKvs.map(keyValueToWire) };
}

/** TxnResponse → etcd's fields; nested responses carry `header` as etcd's do. */
export function txnResponseToWire(r: TxnResponse, header: WireHeader): { succeeded: boolean; responses: object[] } {
  return { succeeded: r.succeeded, responses: r.responses.map((op) => responseOpToWire(op, header)) };
}

function responseOpToWire(op: ResponseOp, header: WireHeader): object {
  switch (op.type) {
    case 'range':
      return { response_range: { header, ...rangeResponseToWire(op.response) } };
    case 'put':
      return { response_put: { header, ...putResponseToWire(op.response) } };
    case 'deleteRange':
      return { response_delete_range: { header, ...deleteRangeResponseToWire(op.response) } };
    case 'txn':
      return { response_txn: { header, ...txnResponseToWire(op.response, header) } };
  }
}

/** KvEvent → mvccpb.Event; prev_kv only when `withPrevKv`. */
export function eventToWire(ev: KvEvent, withPrevKv: boolean): WireEvent {
  return {
    type: ev.type === 'put' ? 'PUT' : 'DELETE',
    kv: keyValueToWire(ev.kv),
    prev_kv: withPrevKv && ev.prevKv ? keyValueToWire(ev.prevKv) : null,
  };
}

/** Rough bytes an event takes on the wire, for the watch queue bound. */
export function eventSizeBytes(ev: KvEvent): number {
  let n = 48 + ev.kv.key.length + ev.kv.value.length;
  if (ev.prevKv) n += 40 + ev.prevKv.key.length + ev.prevKv.value.length;
  return n;
}
