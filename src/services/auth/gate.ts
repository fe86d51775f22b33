// The auth gate: what stands between the replicated log and every service's
// state while auth is on. The service multiplexer (src/services/machine.ts)
// asks it about each command before the command applies; a refused command
// changes nothing and its proposer gets the refusal (AuthDeniedResult).
//
// While auth is on, a command of the key-value, queue, metadata or auth
// service must come stamped (codec.ts AuthStamp):
//   - by a user, with the auth revision its request was checked at: the
//     revision must still be current (else 'oldRevision', as etcd's
//     ErrAuthOldRevision), and the user must still be allowed what the command
//     needs (needs.ts), judged against the state it applies to;
//   - or by the cluster itself (lease expiry, auto-compaction, queue liveness,
//     brokers embedded in the node's process), which may do anything.
// An unstamped command is refused ('userEmpty'): it was admitted while auth
// was off and reached the log after AuthEnable, which orders it after auth was
// on. Membership records are not gated: membership changes are root-only
// when they are asked for (src/server/etcd/server.ts), and the configuration
// changes themselves are the core's, not a service's.
//
// While auth is off every command applies, stamped or not.

import type { CommandGate, ServiceName } from '../machine.js';
import type { AuthStamp } from './codec.js';
import type { AuthStateMachine } from './state-machine.js';
import { authDenied, type AuthDeniedResult } from './types.js';

/** Whether `user` may run the service command in data[start, end) (the bytes after the service tag; for the key-value service, its whole command). */
export type ApplyCheck = (user: string, data: Uint8Array, start: number, end: number) => boolean;

const GATED: ReadonlySet<ServiceName> = new Set<ServiceName>(['kv', 'queue', 'metadata', 'auth']);

export class AuthGate implements CommandGate {
  /** Commands refused, by reason (metrics). */
  readonly refused = { oldRevision: 0, userEmpty: 0, permissionDenied: 0 };

  /**
   * `checks`: per service, what a user may do; a gated service without one
   * (and the auth service itself) needs root.
   */
  constructor(
    private readonly auth: AuthStateMachine,
    private readonly checks: Partial<Record<ServiceName, ApplyCheck>> = {},
  ) {}

  admit(service: ServiceName, stamp: AuthStamp | null, data: Uint8Array, start: number, end: number): AuthDeniedResult | null {
    if (!this.auth.enabled || !GATED.has(service)) return null;
    if (stamp === null) return this.refuse('userEmpty');
    if (stamp.kind === 'system') return null;
    if (stamp.revision < this.auth.revision) return this.refuse('oldRevision');
    if (this.auth.isRoot(stamp.user)) return null;
    const check = service === 'auth' ? undefined : this.checks[service];
    if (check === undefined || !check(stamp.user, data, start, end)) return this.refuse('permissionDenied');
    return null;
  }

  private refuse(error: AuthDeniedResult['error']): AuthDeniedResult {
    this.refused[error]++;
    return authDenied(error);
  }
}
