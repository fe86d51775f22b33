// The metadata image (what KRaft calls the MetadataImage): brokers with their
// epochs and fenced state, topics with their partitions, replica assignments
// and configs, and broker and cluster configs — plus the rules a record must
// pass against it, and applying a record to it.
//
// An image is immutable: applying a record gives a new image that shares
// everything the record did not touch, so a reader (a broker's application)
// can hold one for as long as it likes. Everything here is deterministic:
// integer arithmetic, no clocks, and nothing depends on Map iteration order
// (the canonical form, codec.ts encodeImage, sorts).
//
// Invariants of an image (validation keeps them; restore checks them):
// - every replica of every partition is a registered broker;
// - topic names are valid and no two collide ('.' versus '_');
// - every config key is known for its resource type, every value valid;
// - offset >= every topic's topicId.

import type {
  BrokerId, BrokerState, ConfigEntry, ConfigResource, MetadataDelta, MetadataRecord, MetadataRejection, PartitionState, TopicState,
} from './types.js';
import { assertNever } from '../../util/assert.js';

/** Largest partition count of a topic (bounds the image a record can make). */
export const MAX_PARTITIONS = 10_000;
/** Largest replication factor. */
export const MAX_REPLICAS = 16;
/** Largest broker id + 1. */
export const BROKER_ID_LIMIT = 2 ** 31;
/** Longest topic name (Kafka's). */
export const MAX_TOPIC_NAME = 249;
/** Longest host, rack or config value. */
export const MAX_STRING = 255;

/** The immutable state the metadata records build. */
export class MetadataImage {
  /** The image of an empty log. */
  static readonly EMPTY = new MetadataImage(0, new Map(), new Map(), new Map(), new Map());

  constructor(
    /** The offset of the last accepted record (0: none). */
    readonly offset: number,
    readonly brokers: ReadonlyMap<BrokerId, BrokerState>,
    readonly topics: ReadonlyMap<string, TopicState>,
    /** Per-broker configs (a broker id need not be registered to be configured, as in Kafka). */
    readonly brokerConfigs: ReadonlyMap<BrokerId, ReadonlyMap<string, string>>,
    /** Cluster-wide broker defaults. */
    readonly clusterConfigs: ReadonlyMap<string, string>,
  ) {}

  /** Brokers sorted by id. */
  brokerList(): BrokerState[] {
    return [...this.brokers.values()].sort((a, b) => a.brokerId - b.brokerId);
  }

  /** Topics sorted by name. */
  topicList(): TopicState[] {
    return [...this.topics.values()].sort((a, b) => compareStrings(a.name, b.name));
  }

  /** A resource's configs, or an empty map (a topic that does not exist has none). */
  configsOf(resource: ConfigResource): ReadonlyMap<string, string> {
    switch (resource.type) {
      case 'topic': return this.topics.get(resource.name)?.configs ?? EMPTY_CONFIGS;
      case 'broker': return this.brokerConfigs.get(resource.brokerId) ?? EMPTY_CONFIGS;
      case 'cluster': return this.clusterConfigs;
      default: return assertNever(resource, 'config resource');
    }
  }

  /** Plain JSON-ready data, sorted (for printing and tests). */
  toJSON(): MetadataImageJson {
    const configs = (m: ReadonlyMap<string, string>): Record<string, string> => Object.fromEntries(sortedEntries(m));
    return {
      offset: this.offset,
      brokers: this.brokerList().map((b) => ({ ...b })),
      topics: this.topicList().map((t) => ({
        name: t.name, topicId: t.topicId, partitions: t.partitions.map((p) => ({ partition: p.partition, replicas: [...p.replicas] })),
        configs: configs(t.configs),
      })),
      brokerConfigs: [...this.brokerConfigs.keys()].sort((a, b) => a - b).map((id) => ({ brokerId: id, configs: configs(this.brokerConfigs.get(id) ?? EMPTY_CONFIGS) })),
      clusterConfigs: configs(this.clusterConfigs),
    };
  }
}

/** {@link MetadataImage.toJSON}'s shape. */
export interface MetadataImageJson {
  readonly offset: number;
  readonly brokers: BrokerState[];
  readonly topics: { name: string; topicId: number; partitions: { partition: number; replicas: number[] }[]; configs: Record<string, string> }[];
  readonly brokerConfigs: { brokerId: number; configs: Record<string, string> }[];
  readonly clusterConfigs: Record<string, string>;
}

const EMPTY_CONFIGS: ReadonlyMap<string, string> = new Map();

/** Code-unit order (deterministic, locale-free). */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A map's entries sorted by key. */
export function sortedEntries<V>(m: ReadonlyMap<string, V>): [string, V][] {
  return [...m.entries()].sort((a, b) => compareStrings(a[0], b[0]));
}

// ---- configuration keys -------------------------------------------------------

type ValueRule = { readonly kind: 'int'; readonly min: number } | { readonly kind: 'enum'; readonly values: readonly string[] };

/** The configuration keys each resource type accepts, and their values' rules (a subset of Kafka's). */
export const CONFIG_KEYS: { readonly topic: Readonly<Record<string, ValueRule>>; readonly broker: Readonly<Record<string, ValueRule>> } = {
  topic: {
    'cleanup.policy': { kind: 'enum', values: ['delete', 'compact', 'compact,delete'] },
    'compression.type': { kind: 'enum', values: ['producer', 'uncompressed', 'gzip', 'snappy', 'lz4', 'zstd'] },
    'retention.ms': { kind: 'int', min: -1 },
    'retention.bytes': { kind: 'int', min: -1 },
    'segment.bytes': { kind: 'int', min: 14 },
    'min.insync.replicas': { kind: 'int', min: 1 },
    'max.message.bytes': { kind: 'int', min: 0 },
  },
  broker: {
    'log.retention.ms': { kind: 'int', min: -1 },
    'message.max.bytes': { kind: 'int', min: 0 },
    'num.io.threads': { kind: 'int', min: 1 },
    'num.network.threads': { kind: 'int', min: 1 },
    'log.cleaner.threads': { kind: 'int', min: 0 },
  },
};

function ruleFor(resource: ConfigResource, key: string): ValueRule | undefined {
  const table = resource.type === 'topic' ? CONFIG_KEYS.topic : CONFIG_KEYS.broker;
  return Object.hasOwn(table, key) ? table[key] : undefined;
}

/** Why `key=value` is not acceptable for `resource`, or null. */
export function checkConfig(resource: ConfigResource, key: string, value: string | null): MetadataRejection | null {
  const rule = ruleFor(resource, key);
  const where = describeResource(resource);
  if (rule === undefined) {
    const known = Object.keys(resource.type === 'topic' ? CONFIG_KEYS.topic : CONFIG_KEYS.broker).join(', ');
    return reject('unknownConfigKey', `${JSON.stringify(key)} is not a ${resource.type === 'topic' ? 'topic' : 'broker'} config key (known: ${known}) for ${where}`);
  }
  if (value === null) return null;
  switch (rule.kind) {
    case 'int': {
      if (!/^-?(0|[1-9][0-9]{0,15})$/.test(value) || value === '-0' || !Number.isSafeInteger(Number(value))) {
        return reject('invalidConfigValue', `${key}=${JSON.stringify(value)} for ${where}: an integer is required`);
      }
      if (Number(value) < rule.min) return reject('invalidConfigValue', `${key}=${value} for ${where}: must be at least ${rule.min}`);
      return null;
    }
    case 'enum':
      if (!rule.values.includes(value)) return reject('invalidConfigValue', `${key}=${JSON.stringify(value)} for ${where}: must be one of ${rule.values.join(', ')}`);
      return null;
    default: return assertNever(rule, 'value rule');
  }
}

/** "topic orders", "broker 3", "the cluster". */
export function describeResource(r: ConfigResource): string {
  switch (r.type) {
    case 'topic': return `topic ${JSON.stringify(r.name)}`;
    case 'broker': return `broker ${r.brokerId}`;
    case 'cluster': return 'the cluster';
    default: return assertNever(r, 'config resource');
  }
}

// ---- validation -----------------------------------------------------------------

function reject(error: MetadataRejection['error'], message: string): MetadataRejection {
  return { error, message };
}

const TOPIC_NAME = /^[A-Za-z0-9._-]+$/;
const HOST = /^[A-Za-z0-9._:[\]-]+$/;
const PRINTABLE = /^[\x21-\x7e]+$/;

/** Why `name` is not a valid topic name, or null (Kafka's rules: 1-249 of [A-Za-z0-9._-], not "." or ".."). */
export function checkTopicName(name: string): MetadataRejection | null {
  if (name.length === 0 || name.length > MAX_TOPIC_NAME) return reject('invalidTopicName', `a topic name has 1-${MAX_TOPIC_NAME} characters, not ${name.length}`);
  if (!TOPIC_NAME.test(name)) return reject('invalidTopicName', `topic name ${JSON.stringify(name)} may contain only ASCII letters, digits, '.', '_' and '-'`);
  if (name === '.' || name === '..') return reject('invalidTopicName', `topic name ${JSON.stringify(name)} is reserved`);
  return null;
}

const isBrokerId = (id: number): boolean => Number.isSafeInteger(id) && id >= 0 && id < BROKER_ID_LIMIT;
const isEpoch = (e: number): boolean => Number.isSafeInteger(e) && e >= 1;

function checkBrokerId(id: number): MetadataRejection | null {
  return isBrokerId(id) ? null : reject('invalidRecord', `broker id ${id} is not an integer in [0, ${BROKER_ID_LIMIT})`);
}

/** The broker named by a fence/unfence/unregister record, if it is registered at `epoch`. */
function currentBroker(image: MetadataImage, brokerId: number, epoch: number): BrokerState | MetadataRejection {
  const bad = checkBrokerId(brokerId);
  if (bad !== null) return bad;
  const b = image.brokers.get(brokerId);
  if (b === undefined) return reject('unknownBroker', `broker ${brokerId} is not registered`);
  if (b.epoch !== epoch) return reject('brokerEpochMismatch', `broker ${brokerId} is at epoch ${b.epoch}, not ${epoch}`);
  return b;
}

const isRejection = (x: object): x is MetadataRejection => 'error' in x;

/** Why `record` cannot be applied to `image`, or null when it can. Pure and deterministic. */
export function validateRecord(image: MetadataImage, record: MetadataRecord): MetadataRejection | null {
  switch (record.type) {
    case 'registerBroker': {
      const bad = checkBrokerId(record.brokerId);
      if (bad !== null) return bad;
      if (!isEpoch(record.epoch)) return reject('invalidRecord', `broker epoch ${record.epoch} is not a positive integer`);
      if (record.host.length === 0 || record.host.length > MAX_STRING || !HOST.test(record.host)) {
        return reject('invalidRecord', `host ${JSON.stringify(record.host)} is not a host name or address`);
      }
      if (!Number.isInteger(record.port) || record.port < 1 || record.port > 65535) return reject('invalidRecord', `port ${record.port} is not in 1-65535`);
      if (record.rack !== null && (record.rack.length === 0 || record.rack.length > MAX_STRING || !PRINTABLE.test(record.rack))) {
        return reject('invalidRecord', `rack ${JSON.stringify(record.rack)} must be 1-${MAX_STRING} printable ASCII characters`);
      }
      const old = image.brokers.get(record.brokerId);
      if (old !== undefined && record.epoch <= old.epoch) {
        return reject('staleBrokerEpoch', `broker ${record.brokerId} is registered at epoch ${old.epoch}; a new registration needs a higher epoch than ${record.epoch}`);
      }
      return null;
    }
    case 'unregisterBroker': {
      const b = currentBroker(image, record.brokerId, record.epoch);
      if (isRejection(b)) return b;
      let held: { topic: string; partition: number } | null = null; // in the smallest topic name: the same message on every replica
      for (const t of image.topics.values()) {
        if (held !== null && t.name >= held.topic) continue;
        const p = t.partitions.find((x) => x.replicas.includes(b.brokerId));
        if (p !== undefined) held = { topic: t.name, partition: p.partition };
      }
      return held === null ? null : reject('brokerHasReplicas', `broker ${b.brokerId} still holds a replica of ${held.topic}-${held.partition}; reassign its partitions first`);
    }
    case 'fenceBroker':
    case 'unfenceBroker': {
      const b = currentBroker(image, record.brokerId, record.epoch);
      if (isRejection(b)) return b;
      if (record.type === 'fenceBroker' && b.fenced) return reject('brokerAlreadyFenced', `broker ${b.brokerId} is already fenced`);
      if (record.type === 'unfenceBroker' && !b.fenced) return reject('brokerNotFenced', `broker ${b.brokerId} is not fenced`);
      return null;
    }
    case 'createTopic': {
      const bad = checkTopicName(record.name);
      if (bad !== null) return bad;
      if (image.topics.has(record.name)) return reject('topicExists', `topic ${JSON.stringify(record.name)} already exists`);
      const folded = foldTopicName(record.name);
      let hit: string | null = null; // the smallest colliding name: the same message on every replica, however its Map was built
      for (const t of image.topics.keys()) if (foldTopicName(t) === folded && (hit === null || t < hit)) hit = t;
      if (hit !== null) return reject('topicCollision', `topic ${JSON.stringify(record.name)} collides with ${JSON.stringify(hit)} ('.' and '_' are the same in metric names)`);
      if (!Number.isInteger(record.partitions) || record.partitions < 1 || record.partitions > MAX_PARTITIONS) {
        return reject('invalidPartition', `a topic has 1-${MAX_PARTITIONS} partitions, not ${record.partitions}`);
      }
      const seen = new Set<string>();
      const resource: ConfigResource = { type: 'topic', name: record.name };
      for (const c of record.configs) {
        if (seen.has(c.key)) return reject('invalidConfigValue', `config key ${c.key} is given twice`);
        seen.add(c.key);
        const badConfig = checkConfig(resource, c.key, c.value);
        if (badConfig !== null) return badConfig;
      }
      return null;
    }
    case 'deleteTopic':
      return image.topics.has(record.name) ? null : reject('unknownTopic', `topic ${JSON.stringify(record.name)} does not exist`);
    case 'assignPartitions': {
      const t = image.topics.get(record.topic);
      if (t === undefined) return reject('unknownTopic', `topic ${JSON.stringify(record.topic)} does not exist`);
      if (record.assignments.length === 0) return reject('invalidPartition', 'no partitions to assign');
      const seen = new Set<number>();
      for (const a of record.assignments) {
        if (!Number.isInteger(a.partition) || a.partition < 0 || a.partition >= t.partitions.length) {
          return reject('invalidPartition', `${t.name} has partitions 0-${t.partitions.length - 1}, not ${a.partition}`);
        }
        if (seen.has(a.partition)) return reject('invalidPartition', `partition ${a.partition} is assigned twice`);
        seen.add(a.partition);
        if (a.replicas.length === 0 || a.replicas.length > MAX_REPLICAS) {
          return reject('invalidReplicas', `${t.name}-${a.partition}: a partition has 1-${MAX_REPLICAS} replicas, not ${a.replicas.length}`);
        }
        if (new Set(a.replicas).size !== a.replicas.length) return reject('invalidReplicas', `${t.name}-${a.partition}: replicas ${a.replicas.join(',')} repeat a broker`);
        for (const id of a.replicas) {
          const b = image.brokers.get(id);
          if (b === undefined) return reject('unknownBroker', `${t.name}-${a.partition}: broker ${id} is not registered`);
          if (b.fenced) return reject('brokerFenced', `${t.name}-${a.partition}: broker ${id} is fenced`);
        }
      }
      return null;
    }
    case 'setConfig': {
      const r = record.resource;
      if (r.type === 'topic' && !image.topics.has(r.name)) return reject('unknownTopic', `topic ${JSON.stringify(r.name)} does not exist`);
      if (r.type === 'broker') {
        const bad = checkBrokerId(r.brokerId);
        if (bad !== null) return bad;
      }
      return checkConfig(r, record.key, record.value);
    }
    default: return assertNever(record, 'metadata record');
  }
}

/** A topic name with '.' read as '_' (two names that fold alike collide). */
export function foldTopicName(name: string): string {
  return name.replaceAll('.', '_');
}

// ---- applying -------------------------------------------------------------------

/** A config map with `key` set to `value` (or removed when null), sorted by key. */
function withConfig(m: ReadonlyMap<string, string>, key: string, value: string | null): ReadonlyMap<string, string> {
  const next = new Map(m);
  if (value === null) next.delete(key);
  else next.set(key, value);
  return new Map(sortedEntries(next));
}

function configsFrom(entries: readonly ConfigEntry[]): ReadonlyMap<string, string> {
  return new Map(entries.map((c) => [c.key, c.value] as [string, string]).sort((a, b) => compareStrings(a[0], b[0])));
}

/**
 * Applies a record that {@link validateRecord} accepted against `image`,
 * as the record at `offset` (image.offset + 1). Returns the new image and
 * what changed. The result for a record that does not validate is undefined:
 * always validate first.
 */
export function applyRecord(image: MetadataImage, record: MetadataRecord, offset: number): { image: MetadataImage; delta: MetadataDelta } {
  const brokersDelta: MetadataDelta['brokers'][number][] = [];
  const topicsDelta: MetadataDelta['topics'][number][] = [];
  const configsDelta: MetadataDelta['configs'][number][] = [];
  let { brokers, topics, brokerConfigs, clusterConfigs } = image;
  const setBroker = (id: number, after: BrokerState | null): void => {
    const next = new Map(brokers);
    if (after === null) next.delete(id);
    else next.set(id, after);
    brokersDelta.push({ brokerId: id, before: brokers.get(id) ?? null, after });
    brokers = next;
  };
  const setTopic = (name: string, after: TopicState | null): void => {
    const next = new Map(topics);
    if (after === null) next.delete(name);
    else next.set(name, after);
    topicsDelta.push({ name, before: topics.get(name) ?? null, after });
    topics = next;
  };
  switch (record.type) {
    case 'registerBroker': {
      const { brokerId, epoch, host, port, rack, fenced } = record;
      setBroker(brokerId, { brokerId, epoch, host, port, rack, fenced });
      break;
    }
    case 'unregisterBroker':
      setBroker(record.brokerId, null);
      break;
    case 'fenceBroker':
    case 'unfenceBroker': {
      const b = brokers.get(record.brokerId) as BrokerState;
      setBroker(b.brokerId, { ...b, fenced: record.type === 'fenceBroker' });
      break;
    }
    case 'createTopic': {
      const partitions: PartitionState[] = [];
      for (let i = 0; i < record.partitions; i++) partitions.push({ partition: i, replicas: [] });
      const configs = configsFrom(record.configs);
      setTopic(record.name, { name: record.name, topicId: offset, partitions, configs });
      for (const [key, value] of configs) configsDelta.push({ resource: { type: 'topic', name: record.name }, key, before: null, after: value });
      break;
    }
    case 'deleteTopic': {
      const t = topics.get(record.name) as TopicState;
      for (const [key, value] of t.configs) configsDelta.push({ resource: { type: 'topic', name: t.name }, key, before: value, after: null });
      setTopic(record.name, null);
      break;
    }
    case 'assignPartitions': {
      const t = topics.get(record.topic) as TopicState;
      const partitions = [...t.partitions];
      for (const a of record.assignments) partitions[a.partition] = { partition: a.partition, replicas: [...a.replicas] };
      setTopic(t.name, { ...t, partitions });
      break;
    }
    case 'setConfig': {
      const r = record.resource;
      const before = image.configsOf(r).get(record.key) ?? null;
      configsDelta.push({ resource: r, key: record.key, before, after: record.value });
      switch (r.type) {
        case 'topic': {
          const t = topics.get(r.name) as TopicState;
          setTopic(t.name, { ...t, configs: withConfig(t.configs, record.key, record.value) });
          break;
        }
        case 'broker': {
          const next = new Map(brokerConfigs);
          const m = withConfig(brokerConfigs.get(r.brokerId) ?? EMPTY_CONFIGS, record.key, record.value);
          if (m.size === 0) next.delete(r.brokerId);
          else next.set(r.brokerId, m);
          brokerConfigs = next;
          break;
        }
        case 'cluster':
          clusterConfigs = withConfig(clusterConfigs, record.key, record.value);
          break;
        default: return assertNever(r, 'config resource');
      }
      break;
    }
    default: return assertNever(record, 'metadata record');
  }
  return {
    image: new MetadataImage(offset, brokers, topics, brokerConfigs, clusterConfigs),
    delta: { brokers: brokersDelta, topics: topicsDelta, configs: configsDelta },
  };
}
