// Errors the runtime gives to clients. The etcd gRPC layer maps each to the
// status code and message etcd uses, so that clients retry as they would
// against etcd.

/** No leader is known (an election is under way): etcd's "etcdserver: no leader". */
export class NoLeaderError extends Error {
  override readonly name = 'NoLeaderError';
  constructor(options?: ErrorOptions) {
    super('no leader is known; an election is in progress', options);
  }
}

/** The request did not complete in time; its outcome is unknown: "etcdserver: request timed out". */
export class RequestTimeoutError extends Error {
  override readonly name = 'RequestTimeoutError';
  constructor(what: string, timeoutMs: number, options?: ErrorOptions) {
    super(`${what} did not complete within ${timeoutMs} ms; its outcome is unknown`, options);
  }
}

/**
 * What is known of a request that failed because the leader changed:
 * `notApplied`, its entry was replaced (it will never apply); `unknown`, it
 * may have applied or may still apply (a retry may apply it twice).
 */
export type LeaderChangedOutcome = 'notApplied' | 'unknown';

/**
 * The leader changed while the request was in flight: "etcdserver: leader
 * changed" (UNAVAILABLE), which clients treat as retryable. `outcome` says
 * whether the request is known not to have applied.
 */
export class LeaderChangedError extends Error {
  override readonly name = 'LeaderChangedError';
  readonly outcome: LeaderChangedOutcome;
  constructor(outcome: LeaderChangedOutcome = 'notApplied', options?: ErrorOptions) {
    super(outcome === 'notApplied'
      ? 'leadership changed before the request committed; it was not applied'
      : 'the leader changed while the request was in flight and no other leader settled it in time; it may or may not have been applied', options);
    this.outcome = outcome;
  }
}

/** Too many requests are waiting (a bounded queue is full): "etcdserver: too many requests". */
export class TooManyRequestsError extends Error {
  override readonly name = 'TooManyRequestsError';
  constructor(what: string, options?: ErrorOptions) {
    super(`too many requests: ${what}`, options);
  }
}

/** The node is shutting down or stopped. */
export class NodeStoppedError extends Error {
  override readonly name = 'NodeStoppedError';
  constructor(options?: ErrorOptions) {
    super('the node is stopping', options);
  }
}
