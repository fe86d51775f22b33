// Conversions between the metadata protos (proto/quorumlog/metadata.proto, as
// @grpc/proto-loader decodes them: keepCase, longs as Number, enums as
// String, defaults and oneof names on) and our records and images. A request
// that cannot be understood (no record set, a broker id that is not a
// number) gives MalformedMetadataRequestError; ranges are left to the
// validation rules, which give the precise rejection.

import { MetadataImage } from '../../services/metadata/image.js';
import type { BrokerState, ConfigResource, MetadataRecord, TopicState } from '../../services/metadata/types.js';
import { assertNever } from '../../util/assert.js';

/** A request the metadata service cannot understand: INVALID_ARGUMENT. */
export class MalformedMetadataRequestError extends Error {
  override readonly name = 'MalformedMetadataRequestError';
}

export interface WireConfigEntry { key?: string; value?: string }
export interface WireBrokerEpoch { broker_id?: number; epoch?: number }
export interface WireRecord {
  record?: string;
  register_broker?: { broker_id?: number; epoch?: number; host?: string; port?: number; rack?: string; fenced?: boolean } | null;
  unregister_broker?: WireBrokerEpoch | null;
  fence_broker?: WireBrokerEpoch | null;
  unfence_broker?: WireBrokerEpoch | null;
  create_topic?: { name?: string; partitions?: number; configs?: WireConfigEntry[] } | null;
  delete_topic?: { name?: string } | null;
  assign_partitions?: { topic?: string; assignments?: { partition?: number; replicas?: number[] }[] } | null;
  set_config?: { resource?: { type?: string | number; name?: string } | null; key?: string; value?: string; delete?: boolean } | null;
}
export interface WireImage {
  offset?: number;
  brokers?: { broker_id?: number; epoch?: number; host?: string; port?: number; rack?: string; fenced?: boolean }[];
  topics?: { name?: string; topic_id?: number; partitions?: { partition?: number; replicas?: number[] }[]; configs?: WireConfigEntry[] }[];
  broker_configs?: { broker_id?: number; configs?: WireConfigEntry[] }[];
  cluster_configs?: WireConfigEntry[];
}

const num = (v: unknown, what: string): number => {
  const n = typeof v === 'string' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n)) throw new MalformedMetadataRequestError(`${what} must be an integer`);
  return n;
};
const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const entries = (xs: WireConfigEntry[] | undefined): { key: string; value: string }[] => (xs ?? []).map((c) => ({ key: str(c.key), value: str(c.value) }));

function brokerEpoch(x: WireBrokerEpoch | null | undefined, what: string): { brokerId: number; epoch: number } {
  if (x == null) throw new MalformedMetadataRequestError(`${what} is empty`);
  return { brokerId: num(x.broker_id ?? 0, 'broker_id'), epoch: num(x.epoch ?? 0, 'epoch') };
}

function resourceFromWire(r: { type?: string | number; name?: string } | null | undefined): ConfigResource {
  const type = r?.type ?? 'CLUSTER';
  const name = str(r?.name);
  if (type === 'CLUSTER' || type === 0) return { type: 'cluster' };
  if (type === 'TOPIC' || type === 1) return { type: 'topic', name };
  if (type === 'BROKER' || type === 2) {
    if (!/^(0|[1-9][0-9]{0,9})$/.test(name)) throw new MalformedMetadataRequestError(`a broker resource is named by the broker's id in decimal, not ${JSON.stringify(name)}`);
    return { type: 'broker', brokerId: Number(name) };
  }
  throw new MalformedMetadataRequestError(`unknown resource type ${String(type)}`);
}

/** The record a WriteRequest carries. */
export function recordFromWire(w: WireRecord | null | undefined): MetadataRecord {
  if (w == null) throw new MalformedMetadataRequestError('no record given');
  const which = w.record ?? (Object.keys(w) as (keyof WireRecord)[]).find((k) => k !== 'record' && w[k] != null);
  switch (which) {
    case 'register_broker': {
      const r = w.register_broker;
      if (r == null) break;
      const rack = str(r.rack);
      return {
        type: 'registerBroker', brokerId: num(r.broker_id ?? 0, 'broker_id'), epoch: num(r.epoch ?? 0, 'epoch'), host: str(r.host),
        port: num(r.port ?? 0, 'port'), rack: rack === '' ? null : rack, fenced: r.fenced === true,
      };
    }
    case 'unregister_broker': return { type: 'unregisterBroker', ...brokerEpoch(w.unregister_broker, which) };
    case 'fence_broker': return { type: 'fenceBroker', ...brokerEpoch(w.fence_broker, which) };
    case 'unfence_broker': return { type: 'unfenceBroker', ...brokerEpoch(w.unfence_broker, which) };
    case 'create_topic': {
      const r = w.create_topic;
      if (r == null) break;
      return { type: 'createTopic', name: str(r.name), partitions: num(r.partitions ?? 0, 'partitions'), configs: entries(r.configs) };
    }
    case 'delete_topic': {
      const r = w.delete_topic;
      if (r == null) break;
      return { type: 'deleteTopic', name: str(r.name) };
    }
    case 'assign_partitions': {
      const r = w.assign_partitions;
      if (r == null) break;
      return {
        type: 'assignPartitions', topic: str(r.topic),
        assignments: (r.assignments ?? []).map((a) => ({ partition: num(a.partition ?? 0, 'partition'), replicas: (a.replicas ?? []).map((x) => num(x, 'replica')) })),
      };
    }
    case 'set_config': {
      const r = w.set_config;
      if (r == null) break;
      return { type: 'setConfig', resource: resourceFromWire(r.resource), key: str(r.key), value: r.delete === true ? null : str(r.value) };
    }
    default: break;
  }
  throw new MalformedMetadataRequestError('no record given (set one of register_broker, unregister_broker, fence_broker, unfence_broker, create_topic, delete_topic, assign_partitions, set_config)');
}

function resourceToWire(r: ConfigResource): { type: string; name: string } {
  switch (r.type) {
    case 'cluster': return { type: 'CLUSTER', name: '' };
    case 'topic': return { type: 'TOPIC', name: r.name };
    case 'broker': return { type: 'BROKER', name: String(r.brokerId) };
    default: return assertNever(r, 'config resource');
  }
}

/** A record as the protos carry it. */
export function recordToWire(r: MetadataRecord): WireRecord {
  switch (r.type) {
    case 'registerBroker':
      return { register_broker: { broker_id: r.brokerId, epoch: r.epoch, host: r.host, port: r.port, rack: r.rack ?? '', fenced: r.fenced } };
    case 'unregisterBroker': return { unregister_broker: { broker_id: r.brokerId, epoch: r.epoch } };
    case 'fenceBroker': return { fence_broker: { broker_id: r.brokerId, epoch: r.epoch } };
    case 'unfenceBroker': return { unfence_broker: { broker_id: r.brokerId, epoch: r.epoch } };
    case 'createTopic': return { create_topic: { name: r.name, partitions: r.partitions, configs: r.configs.map((c) => ({ ...c })) } };
    case 'deleteTopic': return { delete_topic: { name: r.name } };
    case 'assignPartitions':
      return { assign_partitions: { topic: r.topic, assignments: r.assignments.map((a) => ({ partition: a.partition, replicas: [...a.replicas] })) } };
    case 'setConfig':
      return { set_config: { resource: resourceToWire(r.resource), key: r.key, value: r.value ?? '', delete: r.value === null } };
    default: return assertNever(r, 'metadata record');
  }
}

const configsToWire = (m: ReadonlyMap<string, string>): WireConfigEntry[] =>
  [...m.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map(([key, value]) => ({ key, value }));

/** An image as the protos carry it (sorted). */
export function imageToWire(image: MetadataImage): WireImage {
  return {
    offset: image.offset,
    brokers: image.brokerList().map((b) => ({ broker_id: b.brokerId, epoch: b.epoch, host: b.host, port: b.port, rack: b.rack ?? '', fenced: b.fenced })),
    topics: image.topicList().map((t) => ({
      name: t.name, topic_id: t.topicId, partitions: t.partitions.map((p) => ({ partition: p.partition, replicas: [...p.replicas] })), configs: configsToWire(t.configs),
    })),
    broker_configs: [...image.brokerConfigs.keys()].sort((a, b) => a - b).map((id) => ({ broker_id: id, configs: configsToWire(image.brokerConfigs.get(id) ?? new Map()) })),
    cluster_configs: configsToWire(image.clusterConfigs),
  };
}

const configsFromWire = (xs: WireConfigEntry[] | undefined): Map<string, string> => new Map(entries(xs).map((c) => [c.key, c.value] as [string, string]));

/** An image received from a server (for clients: the CLI, tests). */
export function imageFromWire(w: WireImage): MetadataImage {
  const brokers = new Map<number, BrokerState>();
  for (const b of w.brokers ?? []) {
    const rack = str(b.rack);
    const id = num(b.broker_id ?? 0, 'broker_id');
    brokers.set(id, { brokerId: id, epoch: num(b.epoch ?? 0, 'epoch'), host: str(b.host), port: num(b.port ?? 0, 'port'), rack: rack === '' ? null : rack, fenced: b.fenced === true });
  }
  const topics = new Map<string, TopicState>();
  for (const t of w.topics ?? []) {
    const name = str(t.name);
    topics.set(name, {
      name, topicId: num(t.topic_id ?? 0, 'topic_id'),
      partitions: (t.partitions ?? []).map((p) => ({ partition: num(p.partition ?? 0, 'partition'), replicas: (p.replicas ?? []).map((x) => num(x, 'replica')) })),
      configs: configsFromWire(t.configs),
    });
  }
  const brokerConfigs = new Map<number, ReadonlyMap<string, string>>();
  for (const b of w.broker_configs ?? []) brokerConfigs.set(num(b.broker_id ?? 0, 'broker_id'), configsFromWire(b.configs));
  return new MetadataImage(num(w.offset ?? 0, 'offset'), brokers, topics, brokerConfigs, configsFromWire(w.cluster_configs));
}
