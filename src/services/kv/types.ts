// The key-value service's data model and requests, with etcd v3's meaning
// (mvccpb.KeyValue, etcdserverpb.*Request). The store (store.ts) applies the
// write commands deterministically as committed log entries; the gRPC layer
// (src/server/etcd) translates etcd's protobuf messages to and from these.
//
// Keys and values are bytes. Ranges follow etcd: `rangeEnd` empty means the
// single key `key`; `rangeEnd` = [0x00] means every key >= `key`; otherwise
// the half-open range [key, rangeEnd). `key` = [0x00] with rangeEnd = [0x00]
// means every key.

/** One revision of one key (mvccpb.KeyValue). */
export interface KeyValue {
  readonly key: Uint8Array;
  /** The revision of the write that created the key (since its last delete). */
  readonly createRevision: number;
  /** The revision of the key's latest write. */
  readonly modRevision: number;
  /** Writes to the key since it was created; 1 for a new key; a delete resets it. */
  readonly version: number;
  readonly value: Uint8Array;
  /** The lease id attached to the key; 0 for none. */
  readonly lease: number;
}

/** A put or delete seen by a watcher (mvccpb.Event). */
export interface KvEvent {
  readonly type: 'put' | 'delete';
  /** For a delete: the key, with modRevision = the delete's revision and version 0. */
  readonly kv: KeyValue;
  /** The key's previous value, when the watcher asked for it. */
  readonly prevKv?: KeyValue;
}

export type SortOrder = 'none' | 'ascend' | 'descend';
export type SortTarget = 'key' | 'version' | 'create' | 'mod' | 'value';

/** KV.Range. */
export interface RangeRequest {
  readonly key: Uint8Array;
  readonly rangeEnd: Uint8Array;
  /** At most this many keys; 0 = no limit. */
  readonly limit: number;
  /** Read at this revision; 0 = the current one. Below the compacted revision: CompactedError; above the current: FutureRevisionError. */
  readonly revision: number;
  readonly sortOrder: SortOrder;
  readonly sortTarget: SortTarget;
  /** Serve from the local state without a read barrier (the store ignores it; the server uses it). */
  readonly serializable: boolean;
  readonly keysOnly: boolean;
  readonly countOnly: boolean;
  /** Filters (0 = none), as etcd: keep keys whose mod/create revision is within the bounds. */
  readonly minModRevision: number;
  readonly maxModRevision: number;
  readonly minCreateRevision: number;
  readonly maxCreateRevision: number;
}

export interface RangeResponse {
  readonly kvs: readonly KeyValue[];
  /** True when `limit` cut the result short. */
  readonly more: boolean;
  /** Keys in the range (before `limit`). */
  readonly count: number;
}

/** KV.Put. */
export interface PutRequest {
  readonly key: Uint8Array;
  readonly value: Uint8Array;
  readonly lease: number;
  readonly prevKv: boolean;
  /** Keep the current value (the key must exist, else KeyNotFoundError). */
  readonly ignoreValue: boolean;
  /** Keep the current lease (the key must exist, else KeyNotFoundError). */
  readonly ignoreLease: boolean;
}

export interface PutResponse {
  readonly prevKv: KeyValue | null;
}

/** KV.DeleteRange. */
export interface DeleteRangeRequest {
  readonly key: Uint8Array;
  readonly rangeEnd: Uint8Array;
  readonly prevKv: boolean;
}

export interface DeleteRangeResponse {
  readonly deleted: number;
  readonly prevKvs: readonly KeyValue[];
}

export type CompareResult = 'equal' | 'greater' | 'less' | 'notEqual';

/** One Txn condition (etcdserverpb.Compare); it holds when it holds for every key in the range. */
export type Compare =
  | { readonly target: 'version'; readonly result: CompareResult; readonly key: Uint8Array; readonly rangeEnd: Uint8Array; readonly version: number }
  | { readonly target: 'create'; readonly result: CompareResult; readonly key: Uint8Array; readonly rangeEnd: Uint8Array; readonly createRevision: number }
  | { readonly target: 'mod'; readonly result: CompareResult; readonly key: Uint8Array; readonly rangeEnd: Uint8Array; readonly modRevision: number }
  | { readonly target: 'value'; readonly result: CompareResult; readonly key: Uint8Array; readonly rangeEnd: Uint8Array; readonly value: Uint8Array }
  | { readonly target: 'lease'; readonly result: CompareResult; readonly key: Uint8Array; readonly rangeEnd: Uint8Array; readonly lease: number };

export type RequestOp =
  | { readonly type: 'range'; readonly request: RangeRequest }
  | { readonly type: 'put'; readonly request: PutRequest }
  | { readonly type: 'deleteRange'; readonly request: DeleteRangeRequest }
  | { readonly type: 'txn'; readonly request: TxnRequest };

export type ResponseOp =
  | { readonly type: 'range'; readonly response: RangeResponse }
  | { readonly type: 'put'; readonly response: PutResponse }
  | { readonly type: 'deleteRange'; readonly response: DeleteRangeResponse }
  | { readonly type: 'txn'; readonly response: TxnResponse };

/** KV.Txn: if every compare holds, run `success`, else `failure`; one revision for all its writes. */
export interface TxnRequest {
  readonly compare: readonly Compare[];
  readonly success: readonly RequestOp[];
  readonly failure: readonly RequestOp[];
}

export interface TxnResponse {
  readonly succeeded: boolean;
  readonly responses: readonly ResponseOp[];
}

/** KV.Compact: forget revisions below `revision`. */
export interface CompactionRequest {
  readonly revision: number;
  /** etcd waits for the compaction to be on disk; here the apply is synchronous either way. */
  readonly physical: boolean;
}

/** etcd's largest lease TTL, in seconds (lease.MaxLeaseTTL); a grant above it is 'leaseTtlTooLarge'. */
export const MAX_LEASE_TTL_SECONDS = 9_000_000_000;

/**
 * Lease.LeaseGrant as it goes through the log: the id and TTL are decided
 * before proposing (the server picks a random nonzero id when the client
 * gives 0, and raises the TTL to its minimum), so that every replica applies
 * the same grant. Invariant (the codec enforces it): id != 0, 1 <= ttlSeconds <= MAX_LEASE_TTL_SECONDS.
 */
export interface LeaseGrantRequest {
  readonly id: number;
  readonly ttlSeconds: number;
}

/** Lease.LeaseRevoke, and the leader's expiry of a lease: deletes the lease and every key attached to it, in one revision. */
export interface LeaseRevokeRequest {
  readonly id: number;
}

/**
 * The leader's expiry of a lease: revokes it like LeaseRevokeRequest, unless
 * a leader of a later term has taken over lease expiry (its LeaseEpochRequest
 * applied first), in which case it does nothing: a revoke decided by a
 * deposed leader, forwarded and committed late, must not cut short a lease
 * the new leader has renewed.
 */
export interface LeaseExpireRequest {
  readonly id: number;
  /** The term of the leader that decided the expiry (>= 1). */
  readonly term: number;
}

/**
 * A new leader takes over lease expiry: the store's leaseTerm becomes
 * max(leaseTerm, term). The leader's lessor decides nothing (no keep-alive
 * answered, no expiry) before its epoch has applied.
 */
export interface LeaseEpochRequest {
  readonly term: number;
}

/** A lease as the store holds it (replicated state: no deadline; the leader's lessor keeps that in memory). */
export interface LeaseInfo {
  readonly id: number;
  /** The TTL it was granted with, in seconds. */
  readonly ttlSeconds: number;
}

/** What changed in the store's set of leases (KvStore.onLeaseChange): a grant, a revoke, or everything (a snapshot was restored). */
export type LeaseChange =
  | { readonly type: 'grant'; readonly lease: LeaseInfo }
  | { readonly type: 'revoke'; readonly id: number }
  | { readonly type: 'epoch'; readonly term: number }
  | { readonly type: 'reset' };

/** A command that goes through the log: every write, compaction, and lease grants and revokes. */
export type KvCommand =
  | { readonly type: 'put'; readonly request: PutRequest }
  | { readonly type: 'deleteRange'; readonly request: DeleteRangeRequest }
  | { readonly type: 'txn'; readonly request: TxnRequest }
  | { readonly type: 'compact'; readonly request: CompactionRequest }
  | { readonly type: 'leaseGrant'; readonly request: LeaseGrantRequest }
  | { readonly type: 'leaseRevoke'; readonly request: LeaseRevokeRequest }
  | { readonly type: 'leaseExpire'; readonly request: LeaseExpireRequest }
  | { readonly type: 'leaseEpoch'; readonly request: LeaseEpochRequest };

/** The result of applying a {@link KvCommand}: its response, or the etcd error it deterministically raised. */
export type KvResult =
  | { readonly type: 'put'; readonly response: PutResponse; readonly revision: number }
  | { readonly type: 'deleteRange'; readonly response: DeleteRangeResponse; readonly revision: number }
  | { readonly type: 'txn'; readonly response: TxnResponse; readonly revision: number }
  | { readonly type: 'compact'; readonly revision: number }
  /** A grant uses no revision (as in etcd): `revision` is the current one. */
  | { readonly type: 'leaseGrant'; readonly id: number; readonly ttlSeconds: number; readonly revision: number }
  /** `deleted` keys went in one revision (`revision`); with no keys attached no revision is used. */
  | { readonly type: 'leaseRevoke'; readonly deleted: number; readonly revision: number }
  /** `expired` false: the lease no longer existed, or a later leader's epoch made this expiry stale (nothing changed). */
  | { readonly type: 'leaseExpire'; readonly expired: boolean; readonly deleted: number; readonly revision: number }
  /** `term`: the store's leaseTerm after the epoch. Uses no revision. */
  | { readonly type: 'leaseEpoch'; readonly term: number; readonly revision: number }
  | { readonly type: 'error'; readonly error: KvErrorCode; readonly message: string; readonly revision: number };

/**
 * Errors a command or read can raise, named as etcd's gRPC errors are
 * (rpctypes): the gRPC layer maps each to etcd's status code and message so
 * that clients recognise them.
 */
export type KvErrorCode =
  | 'compacted' // etcdserver: mvcc: required revision has been compacted (OUT_OF_RANGE)
  | 'futureRevision' // etcdserver: mvcc: required revision is a future revision (OUT_OF_RANGE)
  | 'keyNotFound' // etcdserver: key not found (INVALID_ARGUMENT)
  | 'emptyKey' // etcdserver: key is not provided (INVALID_ARGUMENT)
  | 'duplicateKey' // etcdserver: duplicate key given in txn request (INVALID_ARGUMENT)
  | 'tooManyOps' // etcdserver: too many operations in txn request (INVALID_ARGUMENT)
  | 'leaseNotFound' // etcdserver: requested lease not found (NOT_FOUND)
  | 'leaseExists' // etcdserver: lease already exists (FAILED_PRECONDITION)
  | 'leaseTtlTooLarge'; // etcdserver: too large lease TTL (OUT_OF_RANGE)

/** Thrown by store reads (commands return `{type: 'error'}` instead). */
export class KvError extends Error {
  override readonly name = 'KvError';
  readonly code: KvErrorCode;
  constructor(code: KvErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}
