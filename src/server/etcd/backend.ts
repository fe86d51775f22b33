// What the etcd-API gRPC server needs from the node it runs in. The runtime
// (src/node) implements it; tests may implement it over a bare KvStore.
// Writes go through the replicated log; linearizable reads wait on a
// ReadIndex barrier; serializable reads read `store` directly. Leases are
// granted and revoked through `write` like any other command; keep-alives and
// time-to-live need the leader's clock and go through `leases`.

import type { AuthStamp } from '../../services/auth/codec.js';
import type { AuthCommand, AuthDeniedResult, AuthResult } from '../../services/auth/types.js';
import type { KvStore } from '../../services/kv/store.js';
import type { KvCommand, KvResult } from '../../services/kv/types.js';
import type { Authorizer } from '../auth/authorizer.js';

/** Identity and Raft position for etcd's ResponseHeader (revision comes from the store). */
export interface HeaderInfo {
  readonly clusterId: bigint;
  readonly memberId: bigint;
  readonly raftTerm: number;
}

/** Maintenance.Status. */
export interface StatusInfo {
  readonly version: string;
  readonly dbSizeBytes: number;
  /** The leader's member id; 0n when there is none. */
  readonly leader: bigint;
  readonly raftIndex: number;
  readonly raftTerm: number;
  readonly raftAppliedIndex: number;
  readonly isLearner: boolean;
  readonly errors: readonly string[];
}

/** Cluster.MemberList. */
export interface MemberInfo {
  readonly id: bigint;
  readonly name: string;
  readonly peerURLs: readonly string[];
  readonly clientURLs: readonly string[];
  readonly isLearner: boolean;
}

/** A lease's remaining and granted TTL, as the leader's lessor sees it (Lease.LeaseTimeToLive). */
export interface LeaseTimeToLive {
  /** Whole seconds left before the leader revokes it (truncated, as etcd reports it); 0 once expired. */
  readonly remainingSeconds: number;
  readonly grantedSeconds: number;
}

/**
 * What the Lease service needs beyond the log: the leader's deadlines. On a
 * follower, an implementation forwards to the leader. Rejects with the errors
 * of src/node/errors.ts (NoLeaderError, RequestTimeoutError, ...).
 */
export interface LeaseKeeper {
  /** Grants below this TTL get it instead (etcd's minimum lease TTL: 1.5 election timeouts, in whole seconds). */
  readonly minTtlSeconds: number;
  /** Renews a lease on the leader; resolves with its granted TTL, or 0 when no such lease exists (any more). */
  keepAlive(id: number): Promise<number>;
  /** The lease's TTLs, or null when no such lease exists. */
  timeToLive(id: number): Promise<LeaseTimeToLive | null>;
}

export interface KvBackend {
  /** This node's applied key-value state. */
  readonly store: KvStore;
  /**
   * Submits a write through the log and resolves with its result once this
   * node has applied it. On a follower the command is forwarded to the
   * leader. Rejects with the errors of src/node/errors.ts (NoLeaderError,
   * RequestTimeoutError, BackpressureError, ...), never with a KvError: a
   * command's own failure is a `{type: 'error'}` result. With `stamp` the
   * command goes into the log stamped (src/services/auth/gate.ts), and the
   * result may be the gate's refusal (AuthDeniedResult).
   */
  write(cmd: KvCommand, stamp?: AuthStamp | null): Promise<KvResult | AuthDeniedResult>;
  /** Resolves once `store` reflects every write committed before the call (ReadIndex). */
  readBarrier(): Promise<void>;
  /** Keep-alives and time-to-live of leases; when absent the Lease service answers UNIMPLEMENTED. */
  readonly leases?: LeaseKeeper;
  header(): HeaderInfo;
  status(): StatusInfo;
  members(): readonly MemberInfo[];
  /**
   * Maintenance.MoveLeader: hands leadership to the member `target` (a member
   * id as MemberList reports it) and resolves once it leads. Only the leader
   * can; rejects with EtcdRequestError (not leader, bad transferee, timeout).
   * Absent: the backend cannot move leadership (a single unreplicated store).
   */
  moveLeader?(target: bigint): Promise<void>;
  /**
   * Maintenance.Snapshot: a backup of the node's whole state
   * (src/server/backup.ts), taken after a read barrier. Absent: UNIMPLEMENTED.
   */
  backup?(): Promise<Uint8Array>;
  /**
   * The Cluster API's changes (MemberAdd, MemberRemove, MemberPromote,
   * MemberUpdate); absent: they answer UNIMPLEMENTED.
   */
  readonly membership?: ClusterMembership;
  /** True once this member has been removed from the cluster: every request but Status is refused. */
  removed?(): boolean;
  /** Users, roles and tokens; absent: the Auth service answers UNIMPLEMENTED and no request is checked. */
  readonly auth?: AuthBackend;
}

/** Password hashing off the Raft thread (src/server/auth/password-hasher.ts). */
export interface PasswordHashing {
  hash(password: string): Promise<string>;
  verify(password: string, hash: string): Promise<boolean>;
}

/** Slows down repeated failed logins per client (src/server/auth/login-throttle.ts). */
export interface LoginThrottling {
  check(key: string, nowMs: number): { readonly allowed: true } | { readonly allowed: false; readonly retryAfterMs: number };
  recordFailure(key: string, nowMs: number): void;
  recordSuccess(key: string): void;
  /** An allowed attempt that ended without an answer either way (the barrier failed, the hasher was busy). */
  abandon(key: string): void;
}

/** What the Auth service and the checks need from the node. */
export interface AuthBackend {
  readonly authorizer: Authorizer;
  readonly hasher: PasswordHashing;
  readonly throttle: LoginThrottling;
  /** Submits an auth command through the log; resolves with its result once applied here (or the gate's refusal). */
  write(cmd: AuthCommand, stamp: AuthStamp | null): Promise<AuthResult | AuthDeniedResult>;
}

/**
 * Membership changes as etcd's Cluster service asks for them. Each resolves
 * once the change has committed; a follower forwards to the leader. Rejects
 * with errors that etcdStatusOf() maps (MembershipError, the core's
 * NotCaughtUpError, ...).
 */
export interface ClusterMembership {
  /** Adds a member at `peerURLs` (http://host:port[#nodeId]); a learner stays one until promoted, else it is promoted once caught up. */
  add(peerURLs: readonly string[], isLearner: boolean, clientURLs: readonly string[]): Promise<MemberInfo>;
  remove(id: bigint): Promise<void>;
  promote(id: bigint): Promise<void>;
  update(id: bigint, peerURLs: readonly string[]): Promise<void>;
}
