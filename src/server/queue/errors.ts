// Errors of the quorum queue gRPC service and their gRPC statuses. A command's
// own failure (a QueueErrorCode result) and the runtime's errors (no leader,
// timeout, ...) each map to one status with a message that says what to do;
// anything else is INTERNAL (and logged by the caller). Nothing escapes to
// crash the node.

import { Metadata, status as Status, type ServiceError } from '@grpc/grpc-js';
import { LeaderChangedError, NodeStoppedError, NoLeaderError, RequestTimeoutError, TooManyRequestsError } from '../../node/errors.js';
import { QueueCodecError } from '../../services/queue/codec.js';
import { AUTH_ERROR_STATUS, AuthRefusedError, EtcdRequestError } from '../etcd/errors.js';
import type { QueueErrorCode } from '../../services/queue/types.js';

/** A gRPC status: code and message. */
export interface QueueStatus {
  readonly code: Status;
  readonly message: string;
}

/** The status of each command failure. */
export const QUEUE_ERROR_CODES: Readonly<Record<QueueErrorCode, Status>> = {
  malformed: Status.INVALID_ARGUMENT,
  queueNotFound: Status.NOT_FOUND,
  queueMismatch: Status.FAILED_PRECONDITION,
  consumerExists: Status.ALREADY_EXISTS,
  consumerNotFound: Status.NOT_FOUND,
  invalid: Status.INVALID_ARGUMENT,
  exchangeNotFound: Status.NOT_FOUND,
  exchangeMismatch: Status.FAILED_PRECONDITION,
  accessRefused: Status.PERMISSION_DENIED,
  inUse: Status.FAILED_PRECONDITION,
  notEmpty: Status.FAILED_PRECONDITION,
};

/** A request refused before it reached the log (bad field), or a command's failure: carries its status. */
export class QueueRequestError extends Error {
  override readonly name = 'QueueRequestError';
  readonly status: QueueStatus;
  constructor(status: QueueStatus, options?: ErrorOptions) {
    super(status.message, options);
    this.status = status;
  }
}

/** A malformed request: INVALID_ARGUMENT. */
export function invalidArgument(message: string): QueueRequestError {
  return new QueueRequestError({ code: Status.INVALID_ARGUMENT, message: `queue: ${message}` });
}

/** The status for `err`, or null when it is not one we know (the caller answers INTERNAL and logs it). */
export function queueStatusOf(err: unknown): QueueStatus | null {
  if (err instanceof QueueRequestError) return err.status;
  if (err instanceof QueueCodecError) return { code: Status.INVALID_ARGUMENT, message: `queue: ${err.message}` };
  // Auth refusals keep etcd's texts (etcd's clients and ours match on them): PERMISSION_DENIED, "user name is empty", "invalid auth token", ...
  if (err instanceof AuthRefusedError) return AUTH_ERROR_STATUS[err.code];
  if (err instanceof EtcdRequestError) return err.status;
  if (err instanceof NoLeaderError) return { code: Status.UNAVAILABLE, message: 'queue: no leader (an election is in progress); retry' };
  if (err instanceof RequestTimeoutError) return { code: Status.UNAVAILABLE, message: 'queue: request timed out; its outcome is unknown' };
  if (err instanceof LeaderChangedError) return { code: Status.UNAVAILABLE, message: 'queue: leader changed before the request committed; it was not applied' };
  if (err instanceof TooManyRequestsError) return { code: Status.RESOURCE_EXHAUSTED, message: 'queue: too many requests; retry later' };
  if (err instanceof NodeStoppedError) return { code: Status.UNAVAILABLE, message: 'queue: the node is stopping' };
  return null;
}

/** The error object to hand to a grpc-js callback or stream. */
export function serviceError(s: QueueStatus): ServiceError {
  const err = new Error(s.message) as ServiceError;
  err.code = s.code;
  err.details = s.message;
  err.metadata = new Metadata();
  return err;
}
