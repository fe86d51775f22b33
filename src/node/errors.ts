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

/** The entry holding the request was replaced by another leader's: "etcdserver: leader changed". */
export class LeaderChangedError extends Error {
  override readonly name = 'LeaderChangedError';
  constructor(options?: ErrorOptions) {
    super('leadership changed before the request committed; it was not applied', options);
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
