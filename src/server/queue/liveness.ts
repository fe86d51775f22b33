// Which nodes' consumers are gone: the rule that brings back the messages
// held by consumers of a node that died (RabbitMQ's rabbit_fifo learns it
// from Erlang's process monitors; we have no such thing, so we say it here).
//
// The rule.
// 1. A node is heard when any frame of it reaches the leader (the runtime's
//    lastHeardFrom: heartbeat answers or fetches arrive several times an
//    election timeout), and from a small "alive" frame on the queue
//    service's transport channel (3) that every node sends to the voters
//    when it starts, once its own release (3.) is applied, and every
//    `heartbeatMs` while it serves consumers. Each node records, per peer,
//    when it last heard one (or, before the first, when this monitor
//    started). With no consumer anywhere the check runs once a second
//    (`idleMs`) and nothing is sent, so an idle cluster pays nothing.
// 2. The leader, every `heartbeatMs`, looks at the nodes that serve
//    consumers in its applied state. For each node N other than itself that
//    it has not heard from for `downAfterMs` (an election timeout by
//    default), it proposes nodeDown{node: N, attachedUpTo: its applied
//    index}: the consumers of N that it knew of are removed and their
//    unacknowledged messages go back (or to the dead-letter queue past the
//    delivery limit). Consumers N attached later (N came back meanwhile)
//    are spared. N's streams, if N is alive after all (a partition), end
//    with UNAVAILABLE when N applies the command; its clients consume again.
// 3. A node that starts proposes nodeDown{node: itself, attachedUpTo: MAX}
//    before it serves any Consume (QueueBackend.whenReady), retrying until
//    the log takes it: the consumers of its previous run are released at
//    once instead of after the leader's timeout, and none of its new
//    consumers can be caught by it.
// Messages held by a dead node's consumers are therefore redelivered within
// about an election (if the leader died) plus `downAfterMs` plus a commit.
// Everything here only proposes commands; the decisions that change state
// are the log's, so replicas never disagree.

import type { Logger } from 'pino';
import { QUEUE_CHANNEL } from '../../node/channels.js';
import type { QueueStateMachine } from '../../services/queue/state-machine.js';
import type { QueueCommand, QueueResult } from '../../services/queue/types.js';

/** The transport channel of the queue service (numbered in src/node/channels.ts). */
export { QUEUE_CHANNEL };

const FRAME_VERSION = 1;
const FRAME_ALIVE = 1;
const ALIVE = new Uint8Array([FRAME_VERSION, FRAME_ALIVE]);

/** What the monitor needs from the node (the runtime adapter is in runtime-backend.ts; tests use fakes). */
export interface LivenessHost {
  readonly nodeId: string;
  isLeader(): boolean;
  /** The index up to which this node has applied the log. */
  appliedIndex(): number;
  /** Proposes a command through the log; resolves with its result once applied here. */
  write(cmd: QueueCommand): Promise<QueueResult>;
  /** Registers the handler of a transport channel. */
  onChannel(channel: number, handler: (from: string, payload: Uint8Array) => void): void;
  /** Sends bytes to a peer on a channel; false when they were not queued. */
  sendChannel(to: string, channel: number, payload: Uint8Array): boolean;
  /**
   * When this node last received any frame from `node` (the `now` clock's
   * scale), or null: a leader hears every live member several times an
   * election timeout, so this detects failures without extra messages.
   */
  lastHeardFrom?(node: string): number | null;
}

/** Options of {@link QueueLiveness}. */
export interface LivenessOptions {
  /** The nodes to send "alive" to: those that can lead (the voters), this one excluded or not. */
  readonly peers: readonly string[];
  /** Silence after which the leader declares a node's consumers down. Use the election timeout (max) in ms. */
  readonly downAfterMs: number;
  /** Period of "alive" frames and of the leader's check while consumers exist. Default downAfterMs / 4. */
  readonly heartbeatMs?: number;
  /** Period of the check while no node serves a consumer (nothing to watch). Default 1000 ms (at least heartbeatMs). */
  readonly idleMs?: number;
  /** Pause between attempts of this node's own release at start. Default 200 ms. */
  readonly retryMs?: number;
  readonly logger: Logger;
  /** The clock (ms); tests pass their own. Default performance.now. */
  readonly now?: () => number;
}

/** Counters for metrics and tests. */
export interface LivenessStats {
  aliveSent: number;
  aliveReceived: number;
  malformedFrames: number;
  nodeDownProposed: number;
}

/** The failure detector and self-release of one node (see the header for the rule). */
export class QueueLiveness {
  readonly stats: LivenessStats = { aliveSent: 0, aliveReceived: 0, malformedFrames: 0, nodeDownProposed: 0 };
  private readonly peers: readonly string[];
  private readonly downAfterMs: number;
  private readonly heartbeatMs: number;
  private readonly idleMs: number;
  private readonly retryMs: number;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly lastHeard = new Map<string, number>();
  /** Nodes whose nodeDown is being proposed. */
  private readonly proposing = new Set<string>();
  private startedAt = 0;
  private timer: NodeJS.Timeout | null = null;
  /** The next attempt of this node's own release, while one is due. */
  private retryTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  private isReady = false;
  private readyWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];

  constructor(private readonly host: LivenessHost, private readonly machine: QueueStateMachine, opts: LivenessOptions) {
    if (!(opts.downAfterMs > 0)) throw new RangeError(`downAfterMs must be positive, got ${opts.downAfterMs}`);
    this.peers = opts.peers.filter((p) => p !== host.nodeId);
    this.downAfterMs = opts.downAfterMs;
    this.heartbeatMs = opts.heartbeatMs ?? Math.max(10, Math.floor(opts.downAfterMs / 4));
    this.idleMs = Math.max(this.heartbeatMs, opts.idleMs ?? 1000);
    this.retryMs = opts.retryMs ?? 200;
    this.log = opts.logger;
    this.now = opts.now ?? (() => performance.now());
  }

  /** Listens on the channel, starts the periodic check, and starts this node's own release. */
  start(): void {
    this.startedAt = this.now();
    this.host.onChannel(QUEUE_CHANNEL, (from, payload) => this.onFrame(from, payload));
    this.sendAlive();
    this.scheduleNext(true);
    this.releaseSelf();
  }

  /** Stops everything; waiters on whenReady() are rejected. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    for (const w of this.readyWaiters.splice(0)) w.reject(new Error('the queue service stopped'));
  }

  /** Whether this node's own release has been applied. */
  get ready(): boolean {
    return this.isReady;
  }

  /** Resolves once this node's own release has been applied (QueueBackend.whenReady). */
  whenReady(): Promise<void> {
    if (this.isReady) return Promise.resolve();
    if (this.stopped) return Promise.reject(new Error('the queue service stopped'));
    return new Promise((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
  }

  /** A frame on the queue channel; malformed ones are counted and dropped. */
  onFrame(from: string, payload: Uint8Array): void {
    if (payload.byteLength !== ALIVE.byteLength || payload[0] !== FRAME_VERSION || payload[1] !== FRAME_ALIVE) {
      this.stats.malformedFrames++;
      return;
    }
    this.stats.aliveReceived++;
    this.lastHeard.set(from, this.now());
  }

  /** One period: say we are alive; as leader, propose nodeDown for the silent. Public for tests. */
  tick(): void {
    if (this.stopped) return;
    const nodes = this.machine.consumerNodes();
    const own = nodes.includes(this.host.nodeId);
    // Only a node that serves consumers needs to be heard; an idle cluster sends nothing here.
    if (own) this.sendAlive();
    const leader = this.host.isLeader();
    this.scheduleNext(own || (leader && nodes.some((n) => n !== this.host.nodeId)));
    if (!leader) return;
    const now = this.now();
    for (const node of nodes) {
      if (node === this.host.nodeId || this.proposing.has(node)) continue;
      const heard = Math.max(this.lastHeard.get(node) ?? this.startedAt, this.host.lastHeardFrom?.(node) ?? -Infinity);
      if (now - heard <= this.downAfterMs) continue;
      const attachedUpTo = this.host.appliedIndex();
      this.proposing.add(node);
      this.stats.nodeDownProposed++;
      this.log.info({ node, silentMs: Math.round(now - heard), attachedUpTo }, 'queue: proposing that the consumers of a silent node are down');
      this.host.write({ type: 'nodeDown', node, attachedUpTo }).then(
        (r) => this.log.info({ node, result: r }, 'queue: consumers of a silent node released'),
        (err: unknown) => this.log.info({ node, err: (err as Error).message }, 'queue: proposing nodeDown failed; the next check retries'),
      ).finally(() => this.proposing.delete(node));
    }
  }

  /** The next check: soon while there are consumers to watch, else at the idle period. */
  private scheduleNext(busy: boolean): void {
    if (this.stopped) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.tick();
    }, busy ? this.heartbeatMs : this.idleMs);
    this.timer.unref();
  }

  /** Tells every voter this node is alive. */
  private sendAlive(): void {
    for (const p of this.peers) {
      if (this.host.sendChannel(p, QUEUE_CHANNEL, ALIVE)) this.stats.aliveSent++;
    }
  }

  private releaseSelf(): void {
    if (this.stopped) return;
    this.host.write({ type: 'nodeDown', node: this.host.nodeId, attachedUpTo: Number.MAX_SAFE_INTEGER }).then((r) => {
      this.log.info({ result: r }, 'queue: released the consumers of this node\'s previous run');
      // Heard before any consumer attached from here reaches the leader (same connection, in order), so
      // that a leader that missed this node's restart does not mistake the new consumers for the old.
      this.sendAlive();
      this.isReady = true;
      for (const w of this.readyWaiters.splice(0)) w.resolve();
    }, (err: unknown) => {
      if (this.stopped) return;
      this.log.debug({ err: (err as Error).message }, 'queue: releasing this node\'s previous consumers failed; retrying');
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        this.releaseSelf();
      }, this.retryMs);
    });
  }
}
