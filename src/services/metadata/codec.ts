// The metadata log's binary formats: records (what the controllers append)
// and the state machine's snapshot (the image plus the retained record
// history). Canonical and strict, like the key-value codec it builds on
// (ByteWriter/ByteReader of src/services/kv/codec.ts): one value has one
// encoding, and decoding refuses everything else — unknown tags or flag bits,
// overlong varints, trailing bytes, strings that are not printable ASCII,
// snapshot items out of order. Malformed bytes give MetadataCodecError,
// never anything else.
//
// Record (format version 1): u8 version, u8 tag, then the fields.
//   str     = bytes of printable ASCII (0x20-0x7e); int and count as in the KV codec
//   1 registerBroker    int brokerId, int epoch, str host, int port, u8 flags (1 fenced, 2 rack present), [str rack]
//   2 unregisterBroker  int brokerId, int epoch
//   3 fenceBroker       int brokerId, int epoch
//   4 unfenceBroker     int brokerId, int epoch
//   5 createTopic       str name, int partitions, count n, n x (str key, str value)
//   6 deleteTopic       str name
//   7 assignPartitions  str topic, count n, n x (int partition, count r, r x int brokerId)
//   8 setConfig         resource, str key, u8 flags (1 value present), [str value]
//   resource            u8 type (0 cluster, 1 topic + str name, 2 broker + int brokerId)
//
// Snapshot (version 1): "QMDS", u8 version, int offset,
//   count n, n x broker   (ascending ids)  int id, int epoch, str host, int port, u8 flags (1 fenced, 2 rack), [str rack]
//   count n, n x topic    (ascending names) str name, int topicId, count p, p x (count r, r x int), configs
//   count n, n x (int brokerId, configs)   (ascending ids, each non-empty)
//   configs (cluster)
//   count n, n x (int offset, int index, bytes record)   the retained history, consecutive offsets ending at `offset`
//   configs = count n, n x (str key, str value), ascending keys

import { ByteReader, ByteWriter, KvCodecError } from '../kv/codec.js';
import { assertNever } from '../../util/assert.js';
import { compareStrings, MetadataImage, sortedEntries } from './image.js';
import type { AcceptedRecord, BrokerState, ConfigResource, MetadataRecord, PartitionState, TopicState } from './types.js';

/** Malformed metadata bytes (or a value that cannot be encoded). */
export class MetadataCodecError extends Error {
  override readonly name = 'MetadataCodecError';
}

/** The record format version written by encodeRecord. */
export const RECORD_FORMAT_VERSION = 1;
const SNAPSHOT_MAGIC = new Uint8Array([0x51, 0x4d, 0x44, 0x53]); // "QMDS"
const SNAPSHOT_VERSION = 1;

const TAGS = {
  registerBroker: 1, unregisterBroker: 2, fenceBroker: 3, unfenceBroker: 4, createTopic: 5, deleteTopic: 6, assignPartitions: 7, setConfig: 8,
} as const satisfies Record<MetadataRecord['type'], number>;

const encoder = new TextEncoder();

function writeStr(w: ByteWriter, s: string): void {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) throw new MetadataCodecError(`strings are printable ASCII; ${JSON.stringify(s)} is not`);
  }
  w.bytes(encoder.encode(s));
}

function readStr(r: ByteReader): string {
  const at = r.position;
  const b = r.bytes();
  let s = '';
  for (const c of b) {
    if (c < 0x20 || c > 0x7e) throw new KvCodecError('a string byte outside printable ASCII', at);
    s += String.fromCharCode(c);
  }
  return s;
}

function writeConfigs(w: ByteWriter, entries: readonly (readonly [string, string])[]): void {
  w.count(entries.length);
  for (const [k, v] of entries) {
    writeStr(w, k);
    writeStr(w, v);
  }
}

/** Configs in ascending key order, no key twice (strict) — or in the order given (records). */
function readConfigs(r: ByteReader, sorted: boolean): [string, string][] {
  const n = r.count(2);
  const out: [string, string][] = [];
  for (let i = 0; i < n; i++) {
    const at = r.position;
    const k = readStr(r);
    const v = readStr(r);
    const prev = out[out.length - 1];
    if (sorted && prev !== undefined && compareStrings(prev[0], k) >= 0) throw new KvCodecError('config keys out of order', at);
    out.push([k, v]);
  }
  return out;
}

function writeResource(w: ByteWriter, res: ConfigResource): void {
  switch (res.type) {
    case 'cluster': w.u8(0); return;
    case 'topic': w.u8(1); writeStr(w, res.name); return;
    case 'broker': w.u8(2); w.int(res.brokerId); return;
    default: assertNever(res, 'config resource');
  }
}

function readResource(r: ByteReader): ConfigResource {
  const at = r.position;
  const t = r.u8();
  if (t === 0) return { type: 'cluster' };
  if (t === 1) return { type: 'topic', name: readStr(r) };
  if (t === 2) return { type: 'broker', brokerId: r.int() };
  throw new KvCodecError(`unknown config resource type ${t}`, at);
}

function writeRecordBody(w: ByteWriter, rec: MetadataRecord): void {
  w.u8(RECORD_FORMAT_VERSION);
  w.u8(TAGS[rec.type]);
  switch (rec.type) {
    case 'registerBroker':
      w.int(rec.brokerId);
      w.int(rec.epoch);
      writeStr(w, rec.host);
      w.int(rec.port);
      w.u8((rec.fenced ? 1 : 0) | (rec.rack !== null ? 2 : 0));
      if (rec.rack !== null) writeStr(w, rec.rack);
      return;
    case 'unregisterBroker':
    case 'fenceBroker':
    case 'unfenceBroker':
      w.int(rec.brokerId);
      w.int(rec.epoch);
      return;
    case 'createTopic':
      writeStr(w, rec.name);
      w.int(rec.partitions);
      writeConfigs(w, rec.configs.map((c) => [c.key, c.value] as const));
      return;
    case 'deleteTopic':
      writeStr(w, rec.name);
      return;
    case 'assignPartitions':
      writeStr(w, rec.topic);
      w.count(rec.assignments.length);
      for (const a of rec.assignments) {
        w.int(a.partition);
        w.count(a.replicas.length);
        for (const id of a.replicas) w.int(id);
      }
      return;
    case 'setConfig':
      writeResource(w, rec.resource);
      writeStr(w, rec.key);
      w.u8(rec.value !== null ? 1 : 0);
      if (rec.value !== null) writeStr(w, rec.value);
      return;
    default: assertNever(rec, 'metadata record');
  }
}

/** Encodes a record for the log. Throws MetadataCodecError on a value with no encoding (a non-ASCII string, an unsafe integer). */
export function encodeRecord(rec: MetadataRecord): Uint8Array {
  const w = new ByteWriter();
  try {
    writeRecordBody(w, rec);
  } catch (e) {
    if (e instanceof MetadataCodecError) throw e;
    throw new MetadataCodecError(`cannot encode the ${rec.type} record: ${(e as Error).message}`, { cause: e });
  }
  return w.finish();
}

function readRecord(r: ByteReader): MetadataRecord {
  const at = r.position;
  const version = r.u8();
  if (version !== RECORD_FORMAT_VERSION) throw new KvCodecError(`unknown record format version ${version}`, at);
  const tagAt = r.position;
  const tag = r.u8();
  switch (tag) {
    case TAGS.registerBroker: {
      const brokerId = r.int();
      const epoch = r.int();
      const host = readStr(r);
      const port = r.int();
      const flags = r.flags(3);
      const rack = (flags & 2) !== 0 ? readStr(r) : null;
      return { type: 'registerBroker', brokerId, epoch, host, port, rack, fenced: (flags & 1) !== 0 };
    }
    case TAGS.unregisterBroker: return { type: 'unregisterBroker', brokerId: r.int(), epoch: r.int() };
    case TAGS.fenceBroker: return { type: 'fenceBroker', brokerId: r.int(), epoch: r.int() };
    case TAGS.unfenceBroker: return { type: 'unfenceBroker', brokerId: r.int(), epoch: r.int() };
    case TAGS.createTopic: {
      const name = readStr(r);
      const partitions = r.int();
      const configs = readConfigs(r, false).map(([key, value]) => ({ key, value }));
      return { type: 'createTopic', name, partitions, configs };
    }
    case TAGS.deleteTopic: return { type: 'deleteTopic', name: readStr(r) };
    case TAGS.assignPartitions: {
      const topic = readStr(r);
      const n = r.count(2);
      const assignments: { partition: number; replicas: number[] }[] = [];
      for (let i = 0; i < n; i++) {
        const partition = r.int();
        const k = r.count(1);
        const replicas: number[] = [];
        for (let j = 0; j < k; j++) replicas.push(r.int());
        assignments.push({ partition, replicas });
      }
      return { type: 'assignPartitions', topic, assignments };
    }
    case TAGS.setConfig: {
      const resource = readResource(r);
      const key = readStr(r);
      const flags = r.flags(1);
      const value = (flags & 1) !== 0 ? readStr(r) : null;
      return { type: 'setConfig', resource, key, value };
    }
    default: throw new KvCodecError(`unknown record tag ${tag}`, tagAt);
  }
}

/** Decodes exactly one record; MetadataCodecError on anything malformed. */
export function decodeRecord(bytes: Uint8Array): MetadataRecord {
  try {
    const r = new ByteReader(bytes);
    const rec = readRecord(r);
    r.end();
    return rec;
  } catch (e) {
    if (e instanceof KvCodecError) throw new MetadataCodecError(`malformed metadata record at byte ${e.offset}: ${e.message}`, { cause: e });
    throw e;
  }
}

// ---- snapshot -----------------------------------------------------------------------

/** What a metadata snapshot holds. */
export interface MetadataSnapshot {
  readonly image: MetadataImage;
  /** Retained accepted records, consecutive offsets ending at image.offset (may be empty). */
  readonly history: readonly AcceptedRecord[];
}

function writeBroker(w: ByteWriter, b: BrokerState): void {
  w.int(b.brokerId);
  w.int(b.epoch);
  writeStr(w, b.host);
  w.int(b.port);
  w.u8((b.fenced ? 1 : 0) | (b.rack !== null ? 2 : 0));
  if (b.rack !== null) writeStr(w, b.rack);
}

/** The image in canonical bytes (no history): equal images, equal bytes, whatever order they were built in. */
export function encodeImage(image: MetadataImage): Uint8Array {
  const w = new ByteWriter();
  writeImage(w, image);
  return w.finish();
}

function writeImage(w: ByteWriter, image: MetadataImage): void {
  w.int(image.offset);
  const brokers = image.brokerList();
  w.count(brokers.length);
  for (const b of brokers) writeBroker(w, b);
  const topics = image.topicList();
  w.count(topics.length);
  for (const t of topics) {
    writeStr(w, t.name);
    w.int(t.topicId);
    w.count(t.partitions.length);
    for (const p of t.partitions) {
      w.count(p.replicas.length);
      for (const id of p.replicas) w.int(id);
    }
    writeConfigs(w, sortedEntries(t.configs));
  }
  const ids = [...image.brokerConfigs.keys()].sort((a, b) => a - b);
  w.count(ids.length);
  for (const id of ids) {
    w.int(id);
    writeConfigs(w, sortedEntries(image.brokerConfigs.get(id) ?? new Map<string, string>()));
  }
  writeConfigs(w, sortedEntries(image.clusterConfigs));
}

function readImage(r: ByteReader): MetadataImage {
  const offset = r.int();
  if (offset < 0) r.fail('negative offset');
  const brokers = new Map<number, BrokerState>();
  let prevId = -1;
  for (let n = r.count(6), i = 0; i < n; i++) {
    const at = r.position;
    const brokerId = r.int();
    const epoch = r.int();
    const host = readStr(r);
    const port = r.int();
    const flags = r.flags(3);
    const rack = (flags & 2) !== 0 ? readStr(r) : null;
    if (brokerId <= prevId) throw new KvCodecError('broker ids out of order', at);
    prevId = brokerId;
    brokers.set(brokerId, { brokerId, epoch, host, port, rack, fenced: (flags & 1) !== 0 });
  }
  const topics = new Map<string, TopicState>();
  let prevName: string | null = null;
  for (let n = r.count(4), i = 0; i < n; i++) {
    const at = r.position;
    const name = readStr(r);
    if (prevName !== null && compareStrings(prevName, name) >= 0) throw new KvCodecError('topics out of order', at);
    prevName = name;
    const topicId = r.int();
    if (topicId < 1 || topicId > offset) throw new KvCodecError(`topic id ${topicId} outside [1, ${offset}]`, at);
    const partitions: PartitionState[] = [];
    for (let p = r.count(1), j = 0; j < p; j++) {
      const replicas: number[] = [];
      for (let k = r.count(1), x = 0; x < k; x++) {
        const rat = r.position;
        const id = r.int();
        if (!brokers.has(id)) throw new KvCodecError(`${name}-${j} names broker ${id}, which is not registered`, rat);
        replicas.push(id);
      }
      partitions.push({ partition: j, replicas });
    }
    topics.set(name, { name, topicId, partitions, configs: new Map(readConfigs(r, true)) });
  }
  const brokerConfigs = new Map<number, ReadonlyMap<string, string>>();
  prevId = -1;
  for (let n = r.count(2), i = 0; i < n; i++) {
    const at = r.position;
    const id = r.int();
    if (id <= prevId) throw new KvCodecError('broker config ids out of order', at);
    prevId = id;
    const configs = readConfigs(r, true);
    if (configs.length === 0) throw new KvCodecError(`broker ${id} has an empty config section`, at);
    brokerConfigs.set(id, new Map(configs));
  }
  const clusterConfigs = new Map(readConfigs(r, true));
  return new MetadataImage(offset, brokers, topics, brokerConfigs, clusterConfigs);
}

/** Encodes the state machine's snapshot. */
export function encodeSnapshot(s: MetadataSnapshot): Uint8Array {
  const w = new ByteWriter();
  w.raw(SNAPSHOT_MAGIC);
  w.u8(SNAPSHOT_VERSION);
  writeImage(w, s.image);
  w.count(s.history.length);
  for (const h of s.history) {
    w.int(h.offset);
    w.int(h.index);
    w.bytes(encodeRecord(h.record));
  }
  return w.finish();
}

/** Decodes a snapshot strictly; MetadataCodecError on anything malformed. */
export function decodeSnapshot(bytes: Uint8Array): MetadataSnapshot {
  try {
    const r = new ByteReader(bytes);
    const magic = r.raw(SNAPSHOT_MAGIC.byteLength);
    if (!magic.every((b, i) => b === SNAPSHOT_MAGIC[i])) r.fail('not a metadata snapshot (bad magic)');
    const version = r.u8();
    if (version !== SNAPSHOT_VERSION) r.fail(`unknown metadata snapshot version ${version}`);
    const image = readImage(r);
    const n = r.count(3);
    if (n > image.offset) r.fail(`${n} history records but the offset is ${image.offset}`);
    const history: AcceptedRecord[] = [];
    let prevIndex = 0;
    for (let i = 0; i < n; i++) {
      const at = r.position;
      const offset = r.int();
      const index = r.int();
      if (offset !== image.offset - n + 1 + i) throw new KvCodecError(`history offset ${offset} is not ${image.offset - n + 1 + i}`, at);
      if (index < prevIndex || index < 1) throw new KvCodecError(`history index ${index} goes backwards`, at);
      prevIndex = index;
      history.push({ offset, index, record: decodeRecord(r.bytes()) });
    }
    r.end();
    return { image, history };
  } catch (e) {
    if (e instanceof KvCodecError) throw new MetadataCodecError(`malformed metadata snapshot at byte ${e.offset}: ${e.message}`, { cause: e });
    throw e;
  }
}
