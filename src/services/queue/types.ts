// The quorum queue service's vocabulary: the commands the replicated log
// carries (src/services/queue/codec.ts encodes them), the results a command
// gives back to its proposer, the events the state machine emits to local
// listeners (the node serving a consumer pushes its deliveries from them), and
// the statistics it answers. Modelled on RabbitMQ's rabbit_fifo: enqueue,
// checkout (attach), settle (ack), return (nack, requeue), discard (nack
// without requeue, i.e. dead-letter), cancel, and "down" for the consumers of
// a node that is gone.
//
// Words used throughout:
// - delivery count: which delivery of a message this is, 1 on the first.
// - delivery limit: the most deliveries a message may have (0 = no limit).
//   A message that comes back (nack, cancel, node down) after its
//   `deliveryLimit`-th delivery is dead-lettered instead of requeued.
// - delivery tag: a consumer's own number for one delivery, 1, 2, 3, ...

/** The format version every encoded command starts with. */
export const QUEUE_COMMAND_FORMAT_VERSION = 1;

/** Bounds the codec and the state machine enforce (the gRPC layer checks them first, with clearer messages). */
export const QUEUE_LIMITS = {
  /** Queue names: 1..255 bytes of UTF-8. */
  nameBytesMax: 255,
  /** Consumer ids and node ids: 1..255 bytes of UTF-8. */
  idBytesMax: 255,
  /** Largest prefetch (unacknowledged deliveries per consumer). */
  prefetchMax: 10_000,
  /** Largest delivery limit. */
  deliveryLimitMax: 1_000_000,
  /** Most delivery tags in one settle / return / discard. */
  tagsPerCommandMax: 10_000,
} as const;

/** Why a message went to the dead-letter queue (or was dropped). */
export type DeadLetterReason = 'deliveryLimit' | 'rejected';

/** Where a dead-lettered message came from; carried by the copy in the dead-letter queue. */
export interface DeadLetterOrigin {
  readonly queue: string;
  readonly messageId: number;
  readonly reason: DeadLetterReason;
}

/** Declares a queue; idempotent when the arguments are equal, an error when they differ. */
export interface DeclareCommand {
  readonly type: 'declare';
  readonly queue: string;
  /** Most deliveries per message; 0 = unlimited. */
  readonly deliveryLimit: number;
  /** Where messages past the limit (or rejected) go; null = they are dropped and counted. */
  readonly deadLetterQueue: string | null;
}

/** Appends a message to a queue (publish). */
export interface EnqueueCommand {
  readonly type: 'enqueue';
  readonly queue: string;
  readonly body: Uint8Array;
}

/** Adds a consumer to a queue (rabbit_fifo's checkout). */
export interface AttachCommand {
  readonly type: 'attach';
  /** Unique among live consumers; chosen by the node serving it. */
  readonly consumerId: string;
  readonly queue: string;
  /** The node whose client stream receives the deliveries. */
  readonly node: string;
  /** Most unacknowledged deliveries at a time, 1..prefetchMax. */
  readonly prefetch: number;
}

/** Acknowledges deliveries: the messages are done with. */
export interface SettleCommand {
  readonly type: 'settle';
  readonly consumerId: string;
  readonly deliveryTags: readonly number[];
}

/** Negative acknowledgement with requeue: the messages go back (ahead of newer ones), or to the dead-letter queue past the limit. */
export interface ReturnCommand {
  readonly type: 'return';
  readonly consumerId: string;
  readonly deliveryTags: readonly number[];
}

/** Negative acknowledgement without requeue: the messages are dead-lettered (reason 'rejected'). */
export interface DiscardCommand {
  readonly type: 'discard';
  readonly consumerId: string;
  readonly deliveryTags: readonly number[];
}

/** Removes a consumer; its unacknowledged messages come back. */
export interface CancelCommand {
  readonly type: 'cancel';
  readonly consumerId: string;
}

/**
 * The consumers that `node` serves, attached at a log index <= `attachedUpTo`,
 * are gone: they are removed and their unacknowledged messages come back. The
 * leader proposes it with its applied index for a node it has not heard from;
 * a starting node proposes it for itself with Number.MAX_SAFE_INTEGER.
 */
export interface NodeDownCommand {
  readonly type: 'nodeDown';
  readonly node: string;
  readonly attachedUpTo: number;
}

/** Every command the queue service logs. */
export type QueueCommand =
  | DeclareCommand
  | EnqueueCommand
  | AttachCommand
  | SettleCommand
  | ReturnCommand
  | DiscardCommand
  | CancelCommand
  | NodeDownCommand;

/** Why a command changed nothing. */
export type QueueErrorCode =
  /** The command bytes did not decode (only a bug or a newer version could log them). */
  | 'malformed'
  | 'queueNotFound'
  /** declare with arguments that differ from the existing queue's (RabbitMQ's PRECONDITION_FAILED). */
  | 'queueMismatch'
  | 'consumerExists'
  | 'consumerNotFound'
  /** Arguments the codec accepts but the machine refuses (e.g. a queue that dead-letters into itself). */
  | 'invalid';

export interface QueueErrorResult {
  readonly type: 'error';
  readonly error: QueueErrorCode;
  readonly message: string;
}

/** What a command gives back to its proposer. */
export type QueueResult =
  | { readonly type: 'declared'; readonly queue: string; readonly created: boolean }
  | { readonly type: 'enqueued'; readonly queue: string; readonly messageId: number }
  | { readonly type: 'attached'; readonly consumerId: string; readonly queue: string }
  /** settle / return / discard: how many tags matched a delivery in flight, how many did not (already settled, unknown). */
  | { readonly type: 'settled' | 'returned' | 'discarded'; readonly consumerId: string; readonly count: number; readonly unknown: number }
  | { readonly type: 'cancelled'; readonly consumerId: string; readonly returned: number }
  | { readonly type: 'nodeDown'; readonly node: string; readonly consumers: number; readonly returned: number }
  | QueueErrorResult;

/** Why a consumer stopped existing. */
export type ConsumerRemovedReason = 'cancelled' | 'nodeDown';

/** What applying a command tells local listeners. Emitted on every replica alike; each node acts on its own consumers' only. */
export type QueueEvent =
  | {
    readonly type: 'delivered';
    readonly queue: string;
    readonly consumerId: string;
    readonly node: string;
    readonly deliveryTag: number;
    readonly messageId: number;
    /** Shared with the state machine: listeners must not modify it. */
    readonly body: Uint8Array;
    readonly deliveryCount: number;
    readonly deadLetter: DeadLetterOrigin | null;
  }
  | { readonly type: 'consumerRemoved'; readonly queue: string; readonly consumerId: string; readonly node: string; readonly reason: ConsumerRemovedReason }
  /** `target` null: no dead-letter queue (or it does not exist), the message was dropped. */
  | { readonly type: 'deadLettered'; readonly queue: string; readonly messageId: number; readonly reason: DeadLetterReason; readonly target: string | null }
  /** The state was replaced by a snapshot: listeners re-read what they need (deliveries inside the snapshot were never emitted). */
  | { readonly type: 'restored' };

/** One queue's numbers. */
export interface QueueStats {
  readonly queue: string;
  readonly deliveryLimit: number;
  readonly deadLetterQueue: string | null;
  /** Messages waiting for a consumer. */
  readonly ready: number;
  /** Messages delivered and not yet acknowledged. */
  readonly unacked: number;
  readonly consumers: number;
  /** Messages ever enqueued (published or dead-lettered into this queue). */
  readonly enqueued: number;
  readonly acked: number;
  /** Messages that left this queue for a dead-letter queue. */
  readonly deadLettered: number;
  /** Messages dropped for lack of a dead-letter queue. */
  readonly dropped: number;
}

/** One unacknowledged delivery, as the state machine holds it. */
export interface InFlight {
  readonly deliveryTag: number;
  readonly messageId: number;
  readonly body: Uint8Array;
  readonly deliveryCount: number;
  readonly deadLetter: DeadLetterOrigin | null;
}

/** A consumer, as the state machine holds it. */
export interface ConsumerInfo {
  readonly consumerId: string;
  readonly queue: string;
  readonly node: string;
  readonly prefetch: number;
  /** The log index of its attach command. */
  readonly attachIndex: number;
}
