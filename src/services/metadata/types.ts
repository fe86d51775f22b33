// The metadata log's vocabulary (Kafka's KRaft use of Raft): the typed
// records the controllers append, the image they build up, what applying a
// record changed (the delta), and the errors a rejected record gets.
//
// Records are event-sourced facts. Each one is validated against the image
// before it is appended (on the controller that takes the write) and again,
// authoritatively, when it is applied on every replica (src/services/metadata/
// image.ts). An accepted record gets the next metadata offset (1, 2, 3, ...:
// accepted records only, so a rejected record changes nothing, not even the
// offset); the image's offset is the last accepted record's.

/** A broker's id: an integer in [0, 2^31). */
export type BrokerId = number;

/** Where a resource's configuration applies: one topic, one broker, or every broker (the cluster default). */
export type ConfigResource =
  | { readonly type: 'topic'; readonly name: string }
  | { readonly type: 'broker'; readonly brokerId: BrokerId }
  | { readonly type: 'cluster' };

/** One configuration setting. */
export interface ConfigEntry {
  readonly key: string;
  readonly value: string;
}

/** The replicas of one partition; the first is the preferred leader. */
export interface PartitionAssignment {
  readonly partition: number;
  readonly replicas: readonly BrokerId[];
}

/**
 * One metadata record. Invariants checked by validation (not by the type):
 * ids and counts in range, names well formed, replicas distinct.
 */
export type MetadataRecord =
  /** A broker (re)joins with a new, higher epoch; it replaces the previous registration of its id. */
  | {
    readonly type: 'registerBroker'; readonly brokerId: BrokerId; readonly epoch: number;
    readonly host: string; readonly port: number; readonly rack: string | null; readonly fenced: boolean;
  }
  /** A broker leaves; it must hold no replicas (reassign them first). `epoch` must be its current one. */
  | { readonly type: 'unregisterBroker'; readonly brokerId: BrokerId; readonly epoch: number }
  /** A broker may no longer be given replicas (it is lagging, or its session ended). */
  | { readonly type: 'fenceBroker'; readonly brokerId: BrokerId; readonly epoch: number }
  | { readonly type: 'unfenceBroker'; readonly brokerId: BrokerId; readonly epoch: number }
  /** A topic with `partitions` partitions, unassigned until an assignPartitions record. */
  | { readonly type: 'createTopic'; readonly name: string; readonly partitions: number; readonly configs: readonly ConfigEntry[] }
  | { readonly type: 'deleteTopic'; readonly name: string }
  /** Sets the replicas of some of a topic's partitions (each to registered, unfenced brokers). */
  | { readonly type: 'assignPartitions'; readonly topic: string; readonly assignments: readonly PartitionAssignment[] }
  /** Sets (value) or removes (null) one known configuration key of a resource. */
  | { readonly type: 'setConfig'; readonly resource: ConfigResource; readonly key: string; readonly value: string | null };

export type MetadataRecordType = MetadataRecord['type'];

/** A broker as the image holds it. */
export interface BrokerState {
  readonly brokerId: BrokerId;
  /** Increases with every registration of this id. */
  readonly epoch: number;
  readonly host: string;
  readonly port: number;
  readonly rack: string | null;
  readonly fenced: boolean;
}

/** One partition: its replicas (empty until assigned; every replica a registered broker). */
export interface PartitionState {
  readonly partition: number;
  readonly replicas: readonly BrokerId[];
}

/** A topic as the image holds it. Invariant: partitions[i].partition === i. */
export interface TopicState {
  readonly name: string;
  /** The offset of the record that created it: tells a re-created topic apart from the old one. */
  readonly topicId: number;
  readonly partitions: readonly PartitionState[];
  /** Sorted by key. */
  readonly configs: ReadonlyMap<string, string>;
}

/** What one accepted record changed: each item's state before and after (null = absent). */
export interface MetadataDelta {
  readonly brokers: readonly { readonly brokerId: BrokerId; readonly before: BrokerState | null; readonly after: BrokerState | null }[];
  readonly topics: readonly { readonly name: string; readonly before: TopicState | null; readonly after: TopicState | null }[];
  readonly configs: readonly { readonly resource: ConfigResource; readonly key: string; readonly before: string | null; readonly after: string | null }[];
}

/** Why a record was rejected. */
export type MetadataErrorCode =
  | 'malformedRecord' // the bytes do not decode (only a bug or a newer version could log them)
  | 'invalidRecord' // a field out of range (an id, a port, a count, a host)
  | 'invalidTopicName'
  | 'topicExists'
  | 'topicCollision' // differs from an existing topic only by '.' versus '_' (Kafka refuses these too)
  | 'unknownTopic'
  | 'invalidPartition'
  | 'invalidReplicas'
  | 'unknownBroker'
  | 'brokerFenced'
  | 'staleBrokerEpoch' // a registration whose epoch is not above the current one
  | 'brokerEpochMismatch' // fence/unfence/unregister naming an epoch that is not the broker's current one
  | 'brokerAlreadyFenced'
  | 'brokerNotFenced'
  | 'brokerHasReplicas'
  | 'unknownConfigKey'
  | 'invalidConfigValue';

/** A rejection: a code and a sentence for people. */
export interface MetadataRejection {
  readonly error: MetadataErrorCode;
  readonly message: string;
}

/** A record the controllers accepted, where it sits in the metadata log. */
export interface AcceptedRecord {
  /** The metadata offset (1, 2, ...: accepted records only). */
  readonly offset: number;
  /** The Raft log index of the entry that carried it. */
  readonly index: number;
  readonly record: MetadataRecord;
}

/** What applying one metadata command returns, alike on every replica. */
export type MetadataApplyResult =
  | ({ readonly type: 'accepted' } & AcceptedRecord)
  | ({ readonly type: 'rejected' } & MetadataRejection);

/** A record was refused (before it was appended, or when it was applied). */
export class MetadataRejectedError extends Error {
  override readonly name = 'MetadataRejectedError';
  readonly code: MetadataErrorCode;
  constructor(rejection: MetadataRejection, options?: ErrorOptions) {
    super(rejection.message, options);
    this.code = rejection.error;
  }
}
