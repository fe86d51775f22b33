// Auth on a real node: the auth service registered in the node's service
// multiplexer with its gate in front of every service (before recovery, so
// that the log replays through them), then, once the runtime runs, the
// AuthBackend the client API checks requests with.

import type { NodeRuntime } from '../../node/runtime.js';
import { encodeAuthCommand } from '../../services/auth/codec.js';
import { AuthGate } from '../../services/auth/gate.js';
import { kvApplyCheck, metadataApplyCheck, queueApplyCheck } from '../../services/auth/needs.js';
import { AuthStateMachine } from '../../services/auth/state-machine.js';
import type { AuthDeniedResult, AuthResult } from '../../services/auth/types.js';
import type { KvStore } from '../../services/kv/store.js';
import { QueueStateMachine } from '../../services/queue/state-machine.js';
import { encodeServiceCommand, stampCommand, type ServiceStateMachine } from '../../services/machine.js';
import type { AuthBackend } from '../etcd/backend.js';
import { Authorizer } from './authorizer.js';
import { LoginThrottle } from './login-throttle.js';
import { PasswordHasher } from './password-hasher.js';

/** The auth service of one node, registered and gated; `start` gives the backend once the runtime runs. */
export interface NodeAuth {
  readonly machine: AuthStateMachine;
  readonly gate: AuthGate;
  /** The backend, with its hasher and throttle as they are (their stats feed /metrics: registerAuthMetrics). */
  start(runtime: NodeRuntime, o: { tokenTtlSeconds: number; bcryptCost: number; clientCertAuth: boolean }): AuthBackend & {
    readonly hasher: PasswordHasher; readonly throttle: LoginThrottle; close(): Promise<void>;
  };
}

/**
 * Registers the auth service on `services` and sets its gate (call before the
 * runtime recovers, after the queue and metadata services are registered:
 * their commands are checked against the queue machine registered then).
 */
export function attachAuth(services: ServiceStateMachine, store: KvStore): NodeAuth {
  const machine = new AuthStateMachine();
  const queue = services.service('queue');
  const gate = new AuthGate(machine, {
    kv: kvApplyCheck(machine, store),
    ...(queue instanceof QueueStateMachine ? { queue: queueApplyCheck(machine, queue) } : {}),
    metadata: metadataApplyCheck(machine),
  });
  services.register('auth', machine).setGate(gate);
  return {
    machine,
    gate,
    start(runtime, o) {
      const authorizer = new Authorizer(machine, { tokenTtlMs: o.tokenTtlSeconds * 1000, clientCertAuth: o.clientCertAuth });
      const hasher = new PasswordHasher({ cost: o.bcryptCost });
      const throttle = new LoginThrottle();
      return {
        authorizer, hasher, throttle,
        async write(cmd, stamp): Promise<AuthResult | AuthDeniedResult> {
          const bytes = encodeServiceCommand('auth', encodeAuthCommand(cmd));
          return (await runtime.submit(stamp === null ? bytes : stampCommand(stamp, bytes))) as AuthResult | AuthDeniedResult;
        },
        close: () => hasher.close(),
      };
    },
  };
}
