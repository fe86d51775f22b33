// Errors of the etcd gRPC layer and their translation to gRPC statuses.
// etcd clients recognise an error by its gRPC code and exact message (etcd's
// rpctypes package: "etcdserver: ..."), and decide from them whether to retry;
// so every KvErrorCode and every runtime error of src/node/errors.ts maps to
// the status etcd itself would send. Anything unexpected becomes INTERNAL
// (and is logged by the caller); it never escapes to crash the node.

import { status as Status, type ServiceError, Metadata } from '@grpc/grpc-js';
import { KvError, type KvErrorCode } from '../../services/kv/types.js';
import { AUTH_ERROR_MESSAGES, isAuthDenied, type AuthErrorCode } from '../../services/auth/types.js';
import {
  ConfigChangeInProgressError, InvalidConfigChangeError, LeaderNotReadyError, LeaderTransferInProgressError, NotCaughtUpError, NotLeaderError,
} from '../../core/errors.js';
import { MembershipError, type MembershipErrorCode } from '../membership.js';
import { AuthBusyError, PasswordHasherClosedError, PasswordWorkerExitedError } from '../auth/password-hasher.js';
import {
  LeaderChangedError,
  NodeStoppedError,
  NoLeaderError,
  RequestTimeoutError,
  TooManyRequestsError,
} from '../../node/errors.js';

/** A gRPC status as etcd sends it: code and message. */
export interface EtcdStatus {
  readonly code: Status;
  readonly message: string;
}

/** etcd's status for each store error (rpctypes.ErrGRPC*). */
export const KV_ERROR_STATUS: Readonly<Record<KvErrorCode, EtcdStatus>> = {
  compacted: { code: Status.OUT_OF_RANGE, message: 'etcdserver: mvcc: required revision has been compacted' },
  futureRevision: { code: Status.OUT_OF_RANGE, message: 'etcdserver: mvcc: required revision is a future revision' },
  keyNotFound: { code: Status.INVALID_ARGUMENT, message: 'etcdserver: key not found' },
  emptyKey: { code: Status.INVALID_ARGUMENT, message: 'etcdserver: key is not provided' },
  duplicateKey: { code: Status.INVALID_ARGUMENT, message: 'etcdserver: duplicate key given in txn request' },
  tooManyOps: { code: Status.INVALID_ARGUMENT, message: 'etcdserver: too many operations in txn request' },
  leaseNotFound: { code: Status.NOT_FOUND, message: 'etcdserver: requested lease not found' },
  leaseExists: { code: Status.FAILED_PRECONDITION, message: 'etcdserver: lease already exists' },
  leaseTtlTooLarge: { code: Status.OUT_OF_RANGE, message: 'etcdserver: too large lease TTL' },
};

/** etcd's status for each auth error (rpctypes.ErrGRPC*: codes as etcd 3.4 sends them). */
export const AUTH_ERROR_STATUS: Readonly<Record<AuthErrorCode, EtcdStatus>> = {
  rootUserNotExist: { code: Status.FAILED_PRECONDITION, message: AUTH_ERROR_MESSAGES.rootUserNotExist },
  rootRoleNotExist: { code: Status.FAILED_PRECONDITION, message: AUTH_ERROR_MESSAGES.rootRoleNotExist },
  userAlreadyExist: { code: Status.FAILED_PRECONDITION, message: AUTH_ERROR_MESSAGES.userAlreadyExist },
  userEmpty: { code: Status.INVALID_ARGUMENT, message: AUTH_ERROR_MESSAGES.userEmpty },
  userNotFound: { code: Status.FAILED_PRECONDITION, message: AUTH_ERROR_MESSAGES.userNotFound },
  roleAlreadyExist: { code: Status.FAILED_PRECONDITION, message: AUTH_ERROR_MESSAGES.roleAlreadyExist },
  roleNotFound: { code: Status.FAILED_PRECONDITION, message: AUTH_ERROR_MESSAGES.roleNotFound },
  roleEmpty: { code: Status.INVALID_ARGUMENT, message: AUTH_ERROR_MESSAGES.roleEmpty },
  permissionDenied: { code: Status.PERMISSION_DENIED, message: AUTH_ERROR_MESSAGES.permissionDenied },
  roleNotGranted: { code: Status.FAILED_PRECONDITION, message: AUTH_ERROR_MESSAGES.roleNotGranted },
  permissionNotGranted: { code: Status.FAILED_PRECONDITION, message: AUTH_ERROR_MESSAGES.permissionNotGranted },
  invalidAuthMgmt: { code: Status.INVALID_ARGUMENT, message: AUTH_ERROR_MESSAGES.invalidAuthMgmt },
  oldRevision: { code: Status.INVALID_ARGUMENT, message: AUTH_ERROR_MESSAGES.oldRevision },
  malformed: { code: Status.INTERNAL, message: AUTH_ERROR_MESSAGES.malformed },
};

/** etcd's statuses for checks the gRPC layer makes itself (rpctypes). */
export const ETCD_STATUS = {
  valueProvided: { code: Status.INVALID_ARGUMENT, message: 'etcdserver: value is provided' },
  leaseProvided: { code: Status.INVALID_ARGUMENT, message: 'etcdserver: lease is provided' },
  invalidSortOption: { code: Status.INVALID_ARGUMENT, message: 'etcdserver: invalid sort option' },
  noLeader: { code: Status.UNAVAILABLE, message: 'etcdserver: no leader' },
  timeout: { code: Status.UNAVAILABLE, message: 'etcdserver: request timed out' },
  leaderChanged: { code: Status.UNAVAILABLE, message: 'etcdserver: leader changed' },
  tooManyRequests: { code: Status.RESOURCE_EXHAUSTED, message: 'etcdserver: too many requests' },
  stopped: { code: Status.UNAVAILABLE, message: 'etcdserver: server stopped' },
  notLeader: { code: Status.FAILED_PRECONDITION, message: 'etcdserver: not leader' },
  badLeaderTransferee: { code: Status.FAILED_PRECONDITION, message: 'etcdserver: bad leader transferee' },
  leaderTransferTimeout: { code: Status.UNAVAILABLE, message: 'etcdserver: request timed out, leader transfer took too long' },
  memberRemoved: { code: Status.FAILED_PRECONDITION, message: 'etcdserver: the member has been permanently removed from the cluster' },
  learnerNotReady: { code: Status.FAILED_PRECONDITION, message: 'etcdserver: can only promote a learner member which is in sync with leader' },
  authFailed: { code: Status.INVALID_ARGUMENT, message: 'etcdserver: authentication failed, invalid user ID or password' },
  invalidAuthToken: { code: Status.UNAUTHENTICATED, message: 'etcdserver: invalid auth token' },
  authNotEnabled: { code: Status.FAILED_PRECONDITION, message: 'etcdserver: authentication is not enabled' },
} as const satisfies Record<string, EtcdStatus>;

/** etcd's statuses for refused member requests (rpctypes.ErrGRPCMember*, ErrGRPCPeerURLExist). */
export const MEMBERSHIP_ERROR_STATUS: Readonly<Record<MembershipErrorCode, EtcdStatus>> = {
  memberNotFound: { code: Status.NOT_FOUND, message: 'etcdserver: member not found' },
  memberExists: { code: Status.FAILED_PRECONDITION, message: 'etcdserver: member ID already exist' },
  peerUrlExists: { code: Status.FAILED_PRECONDITION, message: 'etcdserver: Peer URLs already exists' },
  notLearner: { code: Status.FAILED_PRECONDITION, message: 'etcdserver: can only promote a learner member' },
  badUrls: { code: Status.INVALID_ARGUMENT, message: 'etcdserver: given member URLs are invalid' },
};

/** A request that cannot be understood (bad enum, out-of-range integer, missing union member): INVALID_ARGUMENT. */
export class MalformedRequestError extends Error {
  override readonly name = 'MalformedRequestError';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** A request that etcd itself rejects with a fixed rpctypes status (e.g. "etcdserver: value is provided"). */
export class EtcdRequestError extends Error {
  override readonly name = 'EtcdRequestError';
  readonly status: EtcdStatus;
  constructor(status: EtcdStatus, options?: ErrorOptions) {
    super(status.message, options);
    this.status = status;
  }
}

/** A request the auth service refused: etcd's status for `code`. */
export class AuthRefusedError extends Error {
  override readonly name = 'AuthRefusedError';
  readonly code: AuthErrorCode;
  constructor(code: AuthErrorCode, options?: ErrorOptions) {
    super(AUTH_ERROR_MESSAGES[code], options);
    this.code = code;
  }
}

/** Throws AuthRefusedError when `result` is the auth gate's refusal (src/services/auth/gate.ts); returns it otherwise. */
export function throwIfAuthDenied<T>(result: T): T {
  if (isAuthDenied(result)) throw new AuthRefusedError(result.error);
  return result;
}

/** The request's method is not served by quorumlog (UNIMPLEMENTED, with the reason). */
export class NotServedError extends Error {
  override readonly name = 'NotServedError';
  constructor(message: string) {
    super(message);
  }
}

/**
 * The status etcd would send for `err`, or null when `err` is not one we
 * know (the caller answers INTERNAL and logs it).
 */
export function etcdStatusOf(err: unknown): EtcdStatus | null {
  if (err instanceof KvError) return KV_ERROR_STATUS[err.code] ?? null;
  if (err instanceof EtcdRequestError) return err.status;
  if (err instanceof AuthRefusedError) return AUTH_ERROR_STATUS[err.code];
  if (err instanceof AuthBusyError) return ETCD_STATUS.tooManyRequests;
  if (err instanceof PasswordWorkerExitedError || err instanceof PasswordHasherClosedError) return { code: Status.UNAVAILABLE, message: `etcdserver: ${err.message}` };
  if (err instanceof MalformedRequestError) return { code: Status.INVALID_ARGUMENT, message: `etcdserver: malformed request: ${err.message}` };
  if (err instanceof NotServedError) return { code: Status.UNIMPLEMENTED, message: err.message };
  if (err instanceof NoLeaderError) return ETCD_STATUS.noLeader;
  if (err instanceof RequestTimeoutError) return ETCD_STATUS.timeout;
  if (err instanceof LeaderChangedError) return ETCD_STATUS.leaderChanged;
  if (err instanceof TooManyRequestsError) return ETCD_STATUS.tooManyRequests;
  if (err instanceof NodeStoppedError) return ETCD_STATUS.stopped;
  // membership (src/server/membership.ts and the core's refusals)
  if (err instanceof MembershipError) return MEMBERSHIP_ERROR_STATUS[err.code];
  if (err instanceof NotCaughtUpError) return ETCD_STATUS.learnerNotReady;
  if (err instanceof NotLeaderError) return ETCD_STATUS.notLeader;
  if (err instanceof ConfigChangeInProgressError || err instanceof LeaderNotReadyError || err instanceof LeaderTransferInProgressError) {
    // etcd has no such status (it queues changes); UNAVAILABLE says "retry"
    return { code: Status.UNAVAILABLE, message: `etcdserver: ${err.message}` };
  }
  if (err instanceof InvalidConfigChangeError) return { code: Status.FAILED_PRECONDITION, message: `etcdserver: ${err.message}` };
  return null;
}

/** The gRPC error object to hand to a grpc-js callback for `status`. */
export function serviceError(s: EtcdStatus): ServiceError {
  const err = new Error(s.message) as ServiceError;
  err.code = s.code;
  err.details = s.message;
  err.metadata = new Metadata();
  return err;
}
