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
//
// AMQP 0-9-1 (RabbitMQ's model) lives here too, so that what an AMQP channel
// does goes through the log and applies deterministically: exchanges (direct,
// fanout, topic, headers) and their bindings to queues, publishes routed at
// apply time, queue declare / delete / purge with RabbitMQ's arguments,
// basic.get (dequeue), exclusive and no-ack consumers. Messages carry what the
// AMQP layer needs to deliver them again (its property bytes, exchange,
// routing key and x-death history); the machine never parses the properties.
// The texts of refusals are RabbitMQ's (3.10), so the AMQP layer can put them
// in its channel.close / connection.close as they are.

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
  /** Exchange names and routing keys (AMQP shortstrs): 0..255 bytes of UTF-8 ('' is the default exchange). */
  shortBytesMax: 255,
  /** Most headers in a publish, pairs in a binding's arguments, routing keys in a death. */
  headersMax: 1000,
} as const;

/** Why a message went to the dead-letter queue (or was dropped), as the gRPC API reports it. */
export type DeadLetterReason = 'deliveryLimit' | 'rejected';

/** Where a dead-lettered message came from; carried by the copy in the dead-letter queue (the gRPC API's view of its last death). */
export interface DeadLetterOrigin {
  readonly queue: string;
  readonly messageId: number;
  readonly reason: DeadLetterReason;
}

/**
 * The AMQP basic properties of a message as the publisher sent them: the
 * 16-bit property flags and the encoded property list that follows them in
 * the content header. Opaque to the machine (the AMQP layer encodes and
 * decodes it); null for a gRPC publish.
 */
export interface MessageProperties {
  /** 0..0xffff. */
  readonly flags: number;
  readonly bytes: Uint8Array;
}

/** RabbitMQ's x-death reasons ('expired' and 'maxlen' are never produced here yet; they exist so the AMQP layer can carry client-supplied history). */
export type DeathReason = 'rejected' | 'delivery_limit' | 'expired' | 'maxlen';

/**
 * One entry of a message's dead-letter history, as RabbitMQ's x-death header
 * holds it. A message's deaths are newest first; dead-lettering again from
 * the same queue for the same reason increments that entry's count and moves
 * it to the front (its exchange and routing keys stay those of its first
 * time). The machine never mutates a Death it has handed out: a merge makes
 * a new object.
 */
export interface Death {
  readonly queue: string;
  readonly reason: DeathReason;
  /** >= 1. */
  count: number;
  /** The exchange and routing keys the message had been published with when it died. */
  readonly exchange: string;
  readonly routingKeys: readonly string[];
}

/**
 * A value in AMQP headers (message headers and headers-exchange binding
 * arguments), reduced to what headers matching compares. Two values are
 * equal when their kinds are equal and: 'number' by ===; 'bigint' by ===;
 * 'string' by code units; 'bool' by ===; 'void' always; 'other' bytewise.
 * The AMQP layer chooses the kind: AMQP integers that fit a signed 64-bit
 * integer → 'bigint' (so a short 1 equals a long 1, as RabbitMQ's integer
 * type class does), float/double → 'number' (NaN is refused by the codec),
 * longstr/shortstr → 'string' (or 'other' when not UTF-8), boolean → 'bool',
 * void → 'void', anything else (tables, arrays, decimals, timestamps, bytes,
 * unsigned 64-bit beyond the signed range) → 'other' with the AMQP field
 * value's encoding (type byte included), compared bytewise.
 */
export type HeaderValue =
  | { readonly kind: 'string'; readonly value: string }
  | { readonly kind: 'number'; readonly value: number }
  /** A signed 64-bit integer: [-2^63, 2^63). */
  | { readonly kind: 'bigint'; readonly value: bigint }
  | { readonly kind: 'bool'; readonly value: boolean }
  | { readonly kind: 'void' }
  | { readonly kind: 'other'; readonly value: Uint8Array };

/** One header: its name (0..255 bytes of UTF-8, an AMQP shortstr) and its value. */
export type Header = readonly [string, HeaderValue];

/**
 * A headers-exchange binding's arguments: x-match (default 'all') and the
 * other pairs. Keys starting with 'x-' are ignored in matching (on both
 * sides), as RabbitMQ does. 'all': every pair is present in the message's
 * headers with an equal value (a 'void' pair only needs the key present);
 * 'any': at least one is. 'all' with no pairs matches every message, 'any'
 * with none matches none. Bindings with the same pairs in another order are
 * the same binding (the machine sorts them by key).
 */
export interface HeaderMatch {
  readonly match: 'all' | 'any';
  readonly pairs: readonly Header[];
}

/** The kinds of exchange: RabbitMQ's four built-in types. */
export type ExchangeKind = 'direct' | 'fanout' | 'topic' | 'headers';

/** Declares a queue; idempotent when the arguments are equal, an error when they differ. The gRPC API's declare: a dead-letter queue q means dead-letter exchange '' with routing key q. */
export interface DeclareCommand {
  readonly type: 'declare';
  readonly queue: string;
  /** Most deliveries per message; 0 = unlimited. */
  readonly deliveryLimit: number;
  /** Where messages past the limit (or rejected) go; null = they are dropped and counted. */
  readonly deadLetterQueue: string | null;
}

/**
 * AMQP queue.declare of a quorum queue. Equivalence (else 'queueMismatch',
 * RabbitMQ's PRECONDITION_FAILED): durable, deliveryLimit
 * (x-delivery-limit), deadLetterExchange (x-dead-letter-exchange),
 * deadLetterRoutingKey (x-dead-letter-routing-key). Passive: only looks.
 * A new name starting with 'amq.' is refused ('accessRefused').
 */
export interface DeclareQueueCommand {
  readonly type: 'declareQueue';
  readonly queue: string;
  readonly durable: boolean;
  readonly passive: boolean;
  /** 0 = unlimited. */
  readonly deliveryLimit: number;
  /** Exchange name (0..255 bytes, '' = the default exchange); null = no dead-lettering (messages are dropped and counted). */
  readonly deadLetterExchange: string | null;
  /** Routing key for dead letters; null = the message's own routing key. */
  readonly deadLetterRoutingKey: string | null;
}

/** AMQP queue.delete. A missing queue is not an error (RabbitMQ 3.10 answers delete-ok, 0 messages). */
export interface DeleteQueueCommand {
  readonly type: 'deleteQueue';
  readonly queue: string;
  /** Refuse ('inUse') while the queue has consumers (getters do not count). */
  readonly ifUnused: boolean;
  /** Refuse ('notEmpty') while the queue has ready messages. */
  readonly ifEmpty: boolean;
}

/** AMQP queue.purge: removes the ready messages (not those in flight). */
export interface PurgeCommand {
  readonly type: 'purge';
  readonly queue: string;
}

/** AMQP exchange.declare. */
export interface ExchangeDeclareCommand {
  readonly type: 'exchangeDeclare';
  /** 1..255 bytes ('' is the default exchange, which cannot be declared). */
  readonly exchange: string;
  readonly kind: ExchangeKind;
  readonly durable: boolean;
  /** Deleted when its last binding goes (not when it is created with none). */
  readonly autoDelete: boolean;
  /** Refuses client publishes. */
  readonly internal: boolean;
  readonly passive: boolean;
}

/** AMQP exchange.delete (its bindings go with it). A missing exchange is not an error (RabbitMQ 3.10). */
export interface ExchangeDeleteCommand {
  readonly type: 'exchangeDelete';
  readonly exchange: string;
  /** Refuse ('inUse') while the exchange has bindings. */
  readonly ifUnused: boolean;
}

/** AMQP queue.bind / queue.unbind. Both are idempotent. */
export interface BindCommand {
  readonly type: 'bind' | 'unbind';
  readonly queue: string;
  readonly exchange: string;
  /** 0..255 bytes. */
  readonly routingKey: string;
  /** For a headers exchange: its x-match and pairs; null otherwise (and for a headers binding with no arguments, which matches like 'all' with none). */
  readonly arguments: HeaderMatch | null;
}

/** AMQP basic.publish: routed at apply, enqueued once in each queue it reaches (in queue name order). */
export interface PublishCommand {
  readonly type: 'publish';
  /** '' = the default exchange: the queue named by the routing key. */
  readonly exchange: string;
  readonly routingKey: string;
  /** Logged for completeness: the AMQP layer returns the message (basic.return) when the result says it reached no queue. */
  readonly mandatory: boolean;
  readonly properties: MessageProperties | null;
  /** The message's headers, for headers-exchange routing (extracted from the properties by the AMQP layer); empty when none. */
  readonly headers: readonly Header[];
  readonly body: Uint8Array;
}

/** Appends a message to a queue (the gRPC API's publish: the default exchange, to one queue). */
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
  /** Most unacknowledged deliveries at a time, 1..prefetchMax (ignored with noAck: nothing stays unacknowledged). */
  readonly prefetch: number;
  /** Deliveries are settled as they are made: the message is gone once delivered; the consumer's credit never runs out. */
  readonly noAck: boolean;
  /** Refused ('accessRefused') when the queue has other consumers; while it exists, other attaches are refused. */
  readonly exclusive: boolean;
}

/**
 * AMQP basic.get: takes the next ready message. With noAck it is gone;
 * otherwise the consumer `consumerId` holds it, created (on `node`, as a
 * getter: never sent deliveries, no prefetch limit) when it does not exist
 * and a message is taken. Its holds are settled / returned / discarded /
 * cancelled like any consumer's.
 */
export interface DequeueCommand {
  readonly type: 'dequeue';
  readonly queue: string;
  readonly consumerId: string;
  readonly node: string;
  readonly noAck: boolean;
}

/** Acknowledges deliveries: the messages are done with. */
export interface SettleCommand {
  readonly type: 'settle';
  readonly consumerId: string;
  readonly deliveryTags: readonly number[];
}

/** Negative acknowledgement with requeue: the messages go back (ahead of newer ones), or are dead-lettered past the limit. */
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
 * AMQP's basic.cancel: the consumer receives nothing more, but keeps what it
 * holds until that is settled, returned or discarded, or it is cancelled (its
 * channel closes), as RabbitMQ keeps a cancelled consumer's unacknowledged
 * messages with the channel. It becomes a getter; one that holds nothing is
 * removed at once.
 */
export interface DetachCommand {
  readonly type: 'detach';
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
  | DeclareQueueCommand
  | DeleteQueueCommand
  | PurgeCommand
  | ExchangeDeclareCommand
  | ExchangeDeleteCommand
  | BindCommand
  | PublishCommand
  | EnqueueCommand
  | DequeueCommand
  | AttachCommand
  | SettleCommand
  | ReturnCommand
  | DiscardCommand
  | CancelCommand
  | DetachCommand
  | NodeDownCommand;

/** Why a command changed nothing. */
export type QueueErrorCode =
  /** The command bytes did not decode (only a bug or a newer version could log them). */
  | 'malformed'
  /** AMQP 404 NOT_FOUND. */
  | 'queueNotFound'
  /** declare with arguments that differ from the existing queue's (RabbitMQ's 406 PRECONDITION_FAILED). */
  | 'queueMismatch'
  | 'consumerExists'
  | 'consumerNotFound'
  /** Arguments the codec accepts but the machine refuses (e.g. a gRPC declare of a queue that dead-letters into itself). */
  | 'invalid'
  /** AMQP 404 NOT_FOUND. */
  | 'exchangeNotFound'
  /** exchange.declare with other type / durable / auto_delete / internal than the existing exchange's (406). */
  | 'exchangeMismatch'
  /** AMQP 403 ACCESS_REFUSED: the default exchange or an amq.* name touched, an internal exchange published to, an exclusive consumer in the way. */
  | 'accessRefused'
  /** if-unused delete of a queue with consumers or an exchange with bindings (406). */
  | 'inUse'
  /** if-empty delete of a queue with ready messages (406). */
  | 'notEmpty';

export interface QueueErrorResult {
  readonly type: 'error';
  readonly error: QueueErrorCode;
  readonly message: string;
}

/** What basic.get took (see {@link DequeueCommand}). */
export interface Dequeued {
  /** The getter's tag to settle it with; 0 with noAck (nothing to settle). */
  readonly deliveryTag: number;
  readonly messageId: number;
  /** Shared with the state machine: must not be modified. */
  readonly body: Uint8Array;
  readonly properties: MessageProperties | null;
  readonly exchange: string;
  readonly routingKey: string;
  readonly deliveryCount: number;
  /** deliveryCount > 1. */
  readonly redelivered: boolean;
  readonly deaths: readonly Death[];
  readonly deadLetter: DeadLetterOrigin | null;
}

/** What a command gives back to its proposer. */
export type QueueResult =
  /** declare / declareQueue: messageCount is the queue's ready messages, consumerCount its consumers (getters not counted). */
  | { readonly type: 'declared'; readonly queue: string; readonly created: boolean; readonly messageCount: number; readonly consumerCount: number }
  /** deleteQueue: the ready messages it had (0 for a queue that did not exist). */
  | { readonly type: 'queueDeleted'; readonly queue: string; readonly messageCount: number }
  /** purge: how many ready messages went. */
  | { readonly type: 'purged'; readonly queue: string; readonly messageCount: number }
  | { readonly type: 'exchangeDeclared'; readonly exchange: string; readonly created: boolean }
  /** existed false: there was no such exchange (answered delete-ok all the same). */
  | { readonly type: 'exchangeDeleted'; readonly exchange: string; readonly existed: boolean }
  | { readonly type: 'bound' | 'unbound' }
  /** routed: how many queues the message went to (0: unroutable, the AMQP layer returns it when mandatory). */
  | { readonly type: 'published'; readonly routed: number }
  | { readonly type: 'enqueued'; readonly queue: string; readonly messageId: number }
  /** message null: the queue had no ready message (basic.get-empty). messageCount: ready messages left. */
  | { readonly type: 'dequeued'; readonly queue: string; readonly message: Dequeued | null; readonly messageCount: number }
  | { readonly type: 'attached'; readonly consumerId: string; readonly queue: string }
  /** settle / return / discard: how many tags matched a delivery in flight, how many did not (already settled, unknown). */
  | { readonly type: 'settled' | 'returned' | 'discarded'; readonly consumerId: string; readonly count: number; readonly unknown: number }
  | { readonly type: 'cancelled'; readonly consumerId: string; readonly returned: number }
  /** `held`: what it keeps (0: it was removed). */
  | { readonly type: 'detached'; readonly consumerId: string; readonly held: number }
  | { readonly type: 'nodeDown'; readonly node: string; readonly consumers: number; readonly returned: number }
  | QueueErrorResult;

/** Why a consumer stopped existing. 'queueDeleted': its queue was deleted (the AMQP layer sends basic.cancel; what it held is gone with the queue). */
export type ConsumerRemovedReason = 'cancelled' | 'nodeDown' | 'queueDeleted';

/** What applying a command tells local listeners. Emitted on every replica alike; each node acts on its own consumers' only. */
export type QueueEvent =
  | {
    readonly type: 'delivered';
    readonly queue: string;
    readonly consumerId: string;
    readonly node: string;
    /** With a noAck consumer: nothing to settle, the message is already gone. */
    readonly deliveryTag: number;
    readonly messageId: number;
    /** Shared with the state machine: listeners must not modify it. */
    readonly body: Uint8Array;
    readonly properties: MessageProperties | null;
    readonly exchange: string;
    readonly routingKey: string;
    readonly deaths: readonly Death[];
    readonly deliveryCount: number;
    /** deliveryCount > 1 (AMQP's redelivered flag). */
    readonly redelivered: boolean;
    readonly deadLetter: DeadLetterOrigin | null;
  }
  | { readonly type: 'consumerRemoved'; readonly queue: string; readonly consumerId: string; readonly node: string; readonly reason: ConsumerRemovedReason }
  /**
   * A message left `queue` dead: `targets` are the queues its copy went to
   * (sorted), `target` the first of them; null / empty: dropped (no
   * dead-letter exchange, it routed nowhere, or only into a cycle).
   */
  | {
    readonly type: 'deadLettered'; readonly queue: string; readonly messageId: number; readonly reason: DeadLetterReason;
    readonly target: string | null; readonly targets: readonly string[];
  }
  /** The state was replaced by a snapshot: listeners re-read what they need (deliveries inside the snapshot were never emitted). */
  | { readonly type: 'restored' };

/** One queue's numbers, as the gRPC API reports them. */
export interface GrpcQueueStats {
  readonly queue: string;
  readonly deliveryLimit: number;
  /** The dead-letter queue as the gRPC API sees it: set when the dead-letter exchange is '' with a routing key (that queue); null otherwise. */
  readonly deadLetterQueue: string | null;
  /** Messages waiting for a consumer. */
  readonly ready: number;
  /** Messages delivered and not yet acknowledged. */
  readonly unacked: number;
  /** Consumers (getters not counted). */
  readonly consumers: number;
  /** Messages ever enqueued (published or dead-lettered into this queue). */
  readonly enqueued: number;
  /** Acknowledged, including deliveries to noAck consumers and noAck gets. */
  readonly acked: number;
  /** Messages that left this queue dead-lettered to at least one queue. */
  readonly deadLettered: number;
  /** Messages dead and dropped (no dead-letter exchange, routed nowhere, or a cycle cut). */
  readonly dropped: number;
}

/** One queue's numbers. Invariant: enqueued = ready + unacked + acked + deadLettered + dropped + purged. */
export interface QueueStats extends GrpcQueueStats {
  readonly durable: boolean;
  readonly deadLetterExchange: string | null;
  readonly deadLetterRoutingKey: string | null;
  /** Ready messages removed by purge. */
  readonly purged: number;
}

/** One unacknowledged delivery, as the state machine holds it. */
export interface InFlight {
  readonly deliveryTag: number;
  readonly messageId: number;
  readonly body: Uint8Array;
  readonly properties: MessageProperties | null;
  readonly exchange: string;
  readonly routingKey: string;
  readonly deaths: readonly Death[];
  readonly deliveryCount: number;
  readonly redelivered: boolean;
  readonly deadLetter: DeadLetterOrigin | null;
}

/** A consumer, as the state machine holds it. */
export interface ConsumerInfo {
  readonly consumerId: string;
  readonly queue: string;
  readonly node: string;
  /** 0 for a getter (no limit). */
  readonly prefetch: number;
  /** The log index of its attach command (of the dequeue that created it, for a getter). */
  readonly attachIndex: number;
  readonly noAck: boolean;
  readonly exclusive: boolean;
  /** Created by dequeue (basic.get): holds what it took, is never sent deliveries. */
  readonly getter: boolean;
}
