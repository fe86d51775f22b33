// The one virtual host ("/") the AMQP listener serves: the node's quorum
// queues (src/services/queue) as AMQP's connections and channels reach them.
//
// - Logins: PLAIN against the auth service's users while auth is on
//   (src/server/auth/login.ts: throttled, bcrypt off the Raft thread);
//   while it is off, RabbitMQ's default user guest/guest.
// - Writes: every command goes through the node's QueueBackend (a follower
//   forwards it to the leader), checked against the user's permissions when
//   it is sent and stamped with the user, so that the auth gate checks it
//   again where it applies (src/services/auth/gate.ts), as the gRPC queue
//   API does. A refusal is AMQP's 403 ACCESS_REFUSED.
// - Deliveries: the queue machine emits its events on every replica; this
//   node hands those of its own consumers to the channel that serves each
//   (a ConsumerSink, by consumer id).

import type { Logger } from 'pino';
import { SYSTEM_STAMP as SYSTEM } from '../../services/auth/codec.js';
import { queueCommandNeeds, type ConsumerQueue } from '../../services/auth/needs.js';
import { isAuthDenied } from '../../services/auth/types.js';
import type { QueueStateMachine } from '../../services/queue/state-machine.js';
import type { ConsumerRemovedReason, QueueCommand, QueueEvent, QueueResult } from '../../services/queue/types.js';
import { AuthRefusedError } from '../etcd/errors.js';
import { sendStamped, type Authorizer, type Principal } from '../auth/authorizer.js';
import type { PasswordLogin } from '../auth/login.js';
import type { QueueBackend } from '../queue/backend.js';
import { AmqpError, REPLY } from './errors.js';

/** Who a connection logged in as. */
export interface AmqpUser {
  readonly name: string;
  /** A user of the auth service (checked and stamped while auth is on); false: guest, while auth was off. */
  readonly authUser: boolean;
  /** The password revision it logged in with: a change of password ends what it may do. */
  readonly passwordRevision: number;
}

export type VhostLogin = { readonly type: 'ok'; readonly user: AmqpUser } | { readonly type: 'failed' | 'throttled' };

export type DeliveredEvent = Extract<QueueEvent, { type: 'delivered' }>;

/** Where this node's consumers' events go: the channel serving the consumer. */
export interface ConsumerSink {
  deliver(e: DeliveredEvent): void;
  /** The log removed the consumer (its queue deleted, its node declared down). */
  removed(reason: ConsumerRemovedReason): void;
  /** The state was replaced by a snapshot: re-read what the consumer holds. */
  restored(): void;
}

export interface AmqpVhostOptions {
  readonly logger: Logger;
  readonly authorizer?: Authorizer;
  readonly login?: PasswordLogin;
  /** Consumer ids served on this node, shared with the gRPC queue API's reconciler so that it does not take them for orphans. */
  readonly served?: Set<string>;
}

export class AmqpVhost {
  readonly machine: QueueStateMachine;
  readonly nodeId: string;
  private readonly sinks = new Map<string, ConsumerSink>();
  private readonly authz: Authorizer | undefined;
  private readonly consumerQueue: ConsumerQueue;
  private readonly stopListening: () => void;
  readonly log: Logger;

  constructor(readonly backend: QueueBackend, private readonly opts: AmqpVhostOptions) {
    this.machine = backend.machine;
    this.nodeId = backend.nodeId;
    this.authz = opts.authorizer;
    this.log = opts.logger;
    this.consumerQueue = (id) => this.machine.consumer(id)?.queue;
    this.stopListening = this.machine.on((e) => this.onEvent(e));
  }

  close(): void {
    this.stopListening();
  }

  // ---- logins ----

  async login(user: string, password: string, clientAddress: string): Promise<VhostLogin> {
    const authz = this.authz;
    if (authz === undefined || !authz.enabled || this.opts.login === undefined) {
      return user === 'guest' && password === 'guest' ? { type: 'ok', user: { name: 'guest', authUser: false, passwordRevision: 0 } } : { type: 'failed' };
    }
    const outcome = await this.opts.login.login(user, password, clientAddress);
    switch (outcome.type) {
      case 'ok': return { type: 'ok', user: { name: user, authUser: true, passwordRevision: outcome.passwordRevision } };
      case 'throttled': return { type: 'throttled' };
      case 'failed':
      case 'authDisabled': return { type: 'failed' };
    }
  }

  // ---- writes ----

  /** The user as the auth service knows it now (null while auth is off); throws 403 when it may not act at all. */
  private principal(user: AmqpUser): Principal | null {
    const authz = this.authz;
    if (authz === undefined || !authz.enabled) return null;
    if (!user.authUser) throw new AmqpError(REPLY.ACCESS_REFUSED, `auth was enabled after user '${user.name}' logged in; log in again as a user of the auth service`);
    const u = authz.state.user(user.name);
    if (u === undefined || u.passwordRevision !== user.passwordRevision) throw new AmqpError(REPLY.ACCESS_REFUSED, `user '${user.name}' was deleted or its password changed; log in again`);
    return { user: user.name, revision: authz.state.revision };
  }

  /**
   * Sends `cmd` through the log as `user`, resolving with its result once this
   * node has applied it. Throws AmqpError 403 when auth refuses it; rejects
   * with the runtime's errors (src/node/errors.ts) when its outcome is unknown.
   */
  async write(cmd: QueueCommand, user: AmqpUser, what: () => string): Promise<QueueResult> {
    const authz = this.authz;
    const check = (): Principal | null => {
      const p = this.principal(user);
      if (p !== null) {
        try {
          authz!.require(p, queueCommandNeeds(cmd, this.consumerQueue));
        } catch (e) {
          if (e instanceof AuthRefusedError) throw new AmqpError(REPLY.ACCESS_REFUSED, `access to ${what()} refused for user '${user.name}'`);
          throw e;
        }
      }
      return p;
    };
    const answer = await sendStamped(authz, check, (stamp) => this.backend.write(cmd, stamp));
    if (isAuthDenied(answer)) throw new AmqpError(REPLY.ACCESS_REFUSED, `access to ${what()} refused for user '${user.name}'`);
    return answer;
  }

  /** The node's own clean-up (a channel gone, a consumer cancelled as its connection ended): stamped as the system's. */
  writeAsSystem(cmd: QueueCommand): Promise<QueueResult> {
    return this.backend.write(cmd, SYSTEM).then((r) => {
      if (isAuthDenied(r)) throw new Error(`the auth gate refused the system's ${cmd.type}`);
      return r;
    });
  }

  // ---- consumers ----

  addConsumer(id: string, sink: ConsumerSink): void {
    this.sinks.set(id, sink);
    this.opts.served?.add(id);
  }

  removeConsumer(id: string): void {
    this.sinks.delete(id);
    this.opts.served?.delete(id);
  }

  private onEvent(e: QueueEvent): void {
    switch (e.type) {
      case 'delivered':
        if (e.node === this.nodeId) this.sinks.get(e.consumerId)?.deliver(e);
        return;
      case 'consumerRemoved':
        if (e.node === this.nodeId) this.sinks.get(e.consumerId)?.removed(e.reason);
        return;
      case 'restored':
        for (const s of [...this.sinks.values()]) s.restored();
        return;
      case 'deadLettered':
        return;
      default:
        return;
    }
  }
}
