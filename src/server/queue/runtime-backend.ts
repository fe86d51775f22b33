// The quorum queue service on a real node: commands are encoded, tagged for
// the queue service (src/services/machine.ts) and submitted to the runtime,
// which batches them into the log and forwards them from a follower to the
// leader; Stats waits on the runtime's ReadIndex barrier; the liveness
// monitor (liveness.ts) runs over the runtime's service channel 3.
//
// Wiring, in src/server/node-process.ts (see docs/QUEUES.md):
//   const queues = new QueueStateMachine();            // register before recovery
//   services.register('queue', queues);
//   ... after runtime.start():
//   const queue = startQueueRuntime(runtime, queues, { peers, downAfterMs, logger });
//   addQueueService(grpcServer, queue.backend, { logger });   // client-api.ts
//   ... on stop: queueService.close(); queue.stop();

import type { Logger } from 'pino';
import { nodeId } from '../../protocol/ids.js';
import type { NodeRuntime } from '../../node/runtime.js';
import { encodeServiceCommand, stampCommand } from '../../services/machine.js';
import { SYSTEM_STAMP, type AuthStamp } from '../../services/auth/codec.js';
import type { AuthDeniedResult } from '../../services/auth/types.js';
import { encodeQueueCommand } from '../../services/queue/codec.js';
import type { QueueStateMachine } from '../../services/queue/state-machine.js';
import type { QueueCommand, QueueResult } from '../../services/queue/types.js';
import type { QueueBackend } from './backend.js';
import { QueueLiveness, type LivenessHost } from './liveness.js';

/** The node's leader does not run the queue service (a mixed-version cluster): the command was not applied. */
export class QueueServiceMissingError extends Error {
  override readonly name = 'QueueServiceMissingError';
}

/** QueueBackend over a NodeRuntime whose ServiceStateMachine has `machine` registered as 'queue'. */
export class RuntimeQueueBackend implements QueueBackend {
  readonly nodeId: string;

  /** `ready`: what whenReady() waits for (the liveness monitor's own release); none = ready at once. */
  constructor(private readonly runtime: NodeRuntime, readonly machine: QueueStateMachine, private readonly ready: (() => Promise<void>) | null = null) {
    this.nodeId = runtime.id;
  }

  async write(cmd: QueueCommand, stamp?: AuthStamp | null): Promise<QueueResult | AuthDeniedResult> {
    const bytes = encodeServiceCommand('queue', encodeQueueCommand(cmd));
    const r = (await this.runtime.submit(stamp === undefined || stamp === null ? bytes : stampCommand(stamp, bytes))) as
      QueueResult | AuthDeniedResult | { type: 'error'; error: 'unknownService'; message: string };
    if (r.type === 'error' && r.error === 'unknownService') throw new QueueServiceMissingError(r.message);
    return r as QueueResult | AuthDeniedResult;
  }

  readBarrier(): Promise<void> {
    return this.runtime.readBarrier();
  }

  isLeader(): boolean {
    return this.runtime.isLeader();
  }

  whenReady(): Promise<void> {
    return this.ready === null ? Promise.resolve() : this.ready();
  }
}

/** The liveness host over a runtime. */
export function runtimeLivenessHost(runtime: NodeRuntime, backend: QueueBackend): LivenessHost {
  return {
    nodeId: runtime.id,
    isLeader: () => runtime.isLeader(),
    appliedIndex: () => runtime.appliedIndex,
    write: async (cmd) => {
      const r = await backend.write(cmd, SYSTEM_STAMP);
      if (r.type === 'authDenied') throw new Error(`the auth gate refused a system command: ${r.message}`); // never: the system may do anything
      return r;
    },
    onChannel: (channel, handler) => runtime.onChannel(channel, (from, payload) => handler(from, payload)),
    sendChannel: (to, channel, payload) => runtime.sendChannel(nodeId(to), channel, payload),
    lastHeardFrom: (node) => runtime.lastHeardFrom(nodeId(node)),
  };
}

/** The queue service's runtime side of one node, started. */
export interface QueueRuntime {
  readonly backend: RuntimeQueueBackend;
  readonly liveness: QueueLiveness;
  stop(): void;
}

/** One queue runtime per node runtime (the channel has one handler). */
const started = new WeakMap<NodeRuntime, QueueRuntime>();

/**
 * Starts the queue service's runtime side: the backend for the gRPC service
 * and the liveness monitor (this node's own release, "alive" frames, the
 * leader's nodeDown proposals). Call after runtime.start(). Calling it again
 * for the same runtime gives the one already started.
 */
export function startQueueRuntime(runtime: NodeRuntime, machine: QueueStateMachine, opts: {
  /** The voters' ids (this node's may be included). */
  readonly peers: readonly string[];
  /** The election timeout (max) in ms. */
  readonly downAfterMs: number;
  readonly logger: Logger;
}): QueueRuntime {
  const already = started.get(runtime);
  if (already !== undefined) {
    if (already.backend.machine !== machine) throw new Error('the queue runtime of this node runs over another machine');
    return already;
  }
  const ready = { wait: (): Promise<void> => Promise.resolve() };
  const backend = new RuntimeQueueBackend(runtime, machine, () => ready.wait());
  const liveness = new QueueLiveness(runtimeLivenessHost(runtime, backend), machine, { peers: opts.peers, downAfterMs: opts.downAfterMs, logger: opts.logger });
  ready.wait = () => liveness.whenReady();
  liveness.start();
  const rt: QueueRuntime = { backend, liveness, stop: () => liveness.stop() };
  started.set(runtime, rt);
  return rt;
}
