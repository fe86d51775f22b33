// A generator of plausible metadata records for tests, property tests and
// the simulator's metadata workload: given the current image and a seeded
// generator, it draws a record that is usually valid (a broker that exists,
// a partition in range, a known config key) and sometimes not (a stale
// epoch, a fenced replica, a duplicate topic, an unknown key), so that
// sequences exercise both acceptance and every kind of rejection.

import type { Prng } from '../../util/prng.js';
import { CONFIG_KEYS, type MetadataImage } from './image.js';
import type { ConfigEntry, ConfigResource, MetadataRecord, PartitionAssignment } from './types.js';

const TOPICS = ['orders', 'payments', 'audit.log', 'audit_log', 'clicks', 'a', 'metrics-1', '.', 'bad name', ''];
const BROKERS = 8;

/** A record drawn from `rng`, mostly valid against `image`. Deterministic in (rng state, image). */
export function randomRecord(rng: Prng, image: MetadataImage): MetadataRecord {
  const brokers = image.brokerList();
  const topics = image.topicList();
  const someBroker = (): number => (brokers.length > 0 && rng.chance(0.85) ? rng.pick(brokers).brokerId : rng.int(0, BROKERS + 1));
  const epochOf = (id: number): number => {
    const e = image.brokers.get(id)?.epoch ?? 1;
    return rng.chance(0.9) ? e : e + rng.int(-1, 2);
  };
  const someTopic = (): string => (topics.length > 0 && rng.chance(0.85) ? rng.pick(topics).name : rng.pick(TOPICS));
  const kind = rng.int(0, 100);
  if (kind < 18) {
    const brokerId = rng.int(0, BROKERS);
    const epoch = (image.brokers.get(brokerId)?.epoch ?? 0) + (rng.chance(0.9) ? rng.int(1, 3) : 0);
    return {
      type: 'registerBroker', brokerId, epoch, host: rng.chance(0.97) ? `broker-${brokerId}.local` : 'bad host',
      port: rng.chance(0.97) ? 9092 + brokerId : 0, rack: rng.chance(0.5) ? `rack-${brokerId % 3}` : null, fenced: rng.chance(0.3),
    };
  }
  if (kind < 22) {
    const brokerId = someBroker();
    return { type: 'unregisterBroker', brokerId, epoch: epochOf(brokerId) };
  }
  if (kind < 32) {
    const brokerId = someBroker();
    return { type: rng.chance(0.5) ? 'fenceBroker' : 'unfenceBroker', brokerId, epoch: epochOf(brokerId) };
  }
  if (kind < 48) {
    const configs: ConfigEntry[] = rng.chance(0.3) ? [{ key: 'retention.ms', value: String(rng.int(-1, 100_000)) }] : [];
    if (rng.chance(0.1)) configs.push({ key: 'cleanup.policy', value: rng.pick(['delete', 'compact', 'forever']) });
    return { type: 'createTopic', name: rng.chance(0.8) ? `${rng.pick(TOPICS)}${rng.int(0, 20)}` : rng.pick(TOPICS), partitions: rng.chance(0.95) ? rng.int(1, 6) : 0, configs };
  }
  if (kind < 53) return { type: 'deleteTopic', name: someTopic() };
  if (kind < 80) {
    const topic = someTopic();
    const count = image.topics.get(topic)?.partitions.length ?? 1;
    const assignments: PartitionAssignment[] = [];
    const n = rng.int(1, Math.min(count, 3) + 1);
    const first = rng.int(0, count);
    for (let i = 0; i < n; i++) {
      const replicas: number[] = [];
      const want = rng.int(1, 4);
      for (let j = 0; j < want; j++) {
        const id = someBroker();
        if (!replicas.includes(id) || rng.chance(0.05)) replicas.push(id);
      }
      assignments.push({ partition: (first + i) % count + (rng.chance(0.03) ? count : 0), replicas });
    }
    return { type: 'assignPartitions', topic, assignments };
  }
  const r = rng.int(0, 3);
  const resource: ConfigResource = r === 0 ? { type: 'topic', name: someTopic() } : r === 1 ? { type: 'broker', brokerId: rng.int(0, BROKERS) } : { type: 'cluster' };
  const keys = Object.keys(resource.type === 'topic' ? CONFIG_KEYS.topic : CONFIG_KEYS.broker);
  const key = rng.chance(0.95) ? rng.pick(keys) : 'no.such.key';
  const value = rng.chance(0.2) ? null : rng.pick(['1', '100', '-1', '0', 'compact', 'zstd', 'delete', 'x']);
  return { type: 'setConfig', resource, key, value };
}
