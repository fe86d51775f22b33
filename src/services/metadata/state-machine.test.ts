import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Prng } from '../../util/prng.js';
import { encodeServiceCommand, ServiceStateMachine } from '../machine.js';
import { encodeImage, encodeRecord } from './codec.js';
import { MetadataImage } from './image.js';
import { metadataCommand, prepareRecord } from './prepare.js';
import { MetadataStateMachine, type MetadataEvent } from './state-machine.js';
import { MetadataRejectedError, type MetadataApplyResult, type MetadataErrorCode, type MetadataRecord } from './types.js';
import { randomRecord } from './workload.js';

const register = (brokerId: number, epoch: number, fenced = false): Extract<MetadataRecord, { type: 'registerBroker' }> =>
  ({ type: 'registerBroker', brokerId, epoch, host: `b${brokerId}.example`, port: 9092, rack: null, fenced });

/** Applies records in turn; returns the machine and each result. */
function run(records: readonly MetadataRecord[], sm = new MetadataStateMachine()): { sm: MetadataStateMachine; results: MetadataApplyResult[] } {
  let index = 0;
  const results = records.map((r) => sm.apply(encodeRecord(r), ++index));
  return { sm, results };
}

function rejectedWith(result: MetadataApplyResult | undefined, code: MetadataErrorCode): void {
  assert.ok(result !== undefined && result.type === 'rejected', JSON.stringify(result));
  assert.equal(result.error, code);
}

test('a cluster comes together: brokers register, a topic is created and assigned, configs change, a broker is fenced', () => {
  const { sm, results } = run([
    register(1, 1), register(2, 1), register(3, 1),
    { type: 'createTopic', name: 'orders', partitions: 3, configs: [{ key: 'retention.ms', value: '86400000' }] },
    { type: 'assignPartitions', topic: 'orders', assignments: [{ partition: 0, replicas: [1, 2] }, { partition: 2, replicas: [3, 1] }] },
    { type: 'setConfig', resource: { type: 'topic', name: 'orders' }, key: 'cleanup.policy', value: 'compact' },
    { type: 'setConfig', resource: { type: 'cluster' }, key: 'num.io.threads', value: '8' },
    { type: 'setConfig', resource: { type: 'broker', brokerId: 2 }, key: 'message.max.bytes', value: '1048576' },
    { type: 'fenceBroker', brokerId: 3, epoch: 1 },
  ]);
  assert.deepEqual(results.map((r) => (r.type === 'accepted' ? r.offset : r.error)), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
  const img = sm.image.toJSON();
  assert.equal(img.offset, 9);
  assert.deepEqual(img.brokers.map((b) => [b.brokerId, b.epoch, b.fenced]), [[1, 1, false], [2, 1, false], [3, 1, true]]);
  assert.deepEqual(img.topics, [{
    name: 'orders', topicId: 4,
    partitions: [{ partition: 0, replicas: [1, 2] }, { partition: 1, replicas: [] }, { partition: 2, replicas: [3, 1] }],
    configs: { 'cleanup.policy': 'compact', 'retention.ms': '86400000' },
  }]);
  assert.deepEqual(img.clusterConfigs, { 'num.io.threads': '8' });
  assert.deepEqual(img.brokerConfigs, [{ brokerId: 2, configs: { 'message.max.bytes': '1048576' } }]);
});

test('each validation rule rejects with its own code and changes nothing', () => {
  const base = run([
    register(1, 5), register(2, 1, true),
    { type: 'createTopic', name: 'audit.log', partitions: 2, configs: [] },
    { type: 'assignPartitions', topic: 'audit.log', assignments: [{ partition: 0, replicas: [1] }] },
  ]).sm;
  const cases: [MetadataRecord, MetadataErrorCode][] = [
    [{ type: 'createTopic', name: 'bad name', partitions: 1, configs: [] }, 'invalidTopicName'],
    [{ type: 'createTopic', name: '..', partitions: 1, configs: [] }, 'invalidTopicName'],
    [{ type: 'createTopic', name: 'x'.repeat(250), partitions: 1, configs: [] }, 'invalidTopicName'],
    [{ type: 'createTopic', name: 'audit.log', partitions: 1, configs: [] }, 'topicExists'],
    [{ type: 'createTopic', name: 'audit_log', partitions: 1, configs: [] }, 'topicCollision'],
    [{ type: 'createTopic', name: 't', partitions: 0, configs: [] }, 'invalidPartition'],
    [{ type: 'createTopic', name: 't', partitions: 1, configs: [{ key: 'retention.ms', value: 'soon' }] }, 'invalidConfigValue'],
    [{ type: 'createTopic', name: 't', partitions: 1, configs: [{ key: 'num.io.threads', value: '1' }] }, 'unknownConfigKey'],
    [{ type: 'deleteTopic', name: 'nope' }, 'unknownTopic'],
    [{ type: 'assignPartitions', topic: 'nope', assignments: [{ partition: 0, replicas: [1] }] }, 'unknownTopic'],
    [{ type: 'assignPartitions', topic: 'audit.log', assignments: [{ partition: 2, replicas: [1] }] }, 'invalidPartition'],
    [{ type: 'assignPartitions', topic: 'audit.log', assignments: [{ partition: 1, replicas: [] }] }, 'invalidReplicas'],
    [{ type: 'assignPartitions', topic: 'audit.log', assignments: [{ partition: 1, replicas: [1, 1] }] }, 'invalidReplicas'],
    [{ type: 'assignPartitions', topic: 'audit.log', assignments: [{ partition: 1, replicas: [9] }] }, 'unknownBroker'],
    [{ type: 'assignPartitions', topic: 'audit.log', assignments: [{ partition: 1, replicas: [2] }] }, 'brokerFenced'],
    [register(1, 5), 'staleBrokerEpoch'],
    [register(1, 4), 'staleBrokerEpoch'],
    [{ ...register(3, 1), port: 70000 }, 'invalidRecord'],
    [{ ...register(3, 1), host: 'two words' }, 'invalidRecord'],
    [register(-1, 1), 'invalidRecord'],
    [{ type: 'fenceBroker', brokerId: 1, epoch: 4 }, 'brokerEpochMismatch'],
    [{ type: 'fenceBroker', brokerId: 7, epoch: 1 }, 'unknownBroker'],
    [{ type: 'fenceBroker', brokerId: 2, epoch: 1 }, 'brokerAlreadyFenced'],
    [{ type: 'unfenceBroker', brokerId: 1, epoch: 5 }, 'brokerNotFenced'],
    [{ type: 'unregisterBroker', brokerId: 1, epoch: 5 }, 'brokerHasReplicas'],
    [{ type: 'setConfig', resource: { type: 'topic', name: 'nope' }, key: 'retention.ms', value: '1' }, 'unknownTopic'],
    [{ type: 'setConfig', resource: { type: 'cluster' }, key: 'retention.ms', value: '1' }, 'unknownConfigKey'],
    [{ type: 'setConfig', resource: { type: 'cluster' }, key: 'num.io.threads', value: '0' }, 'invalidConfigValue'],
    [{ type: 'setConfig', resource: { type: 'cluster' }, key: 'num.io.threads', value: '08' }, 'invalidConfigValue'],
    [{ type: 'setConfig', resource: { type: 'topic', name: 'audit.log' }, key: 'compression.type', value: 'brotli' }, 'invalidConfigValue'],
  ];
  for (const [record, code] of cases) {
    const before = base.snapshot();
    const r = base.apply(encodeRecord(record), 100);
    rejectedWith(r, code);
    assert.deepEqual(base.snapshot(), before, `${record.type} changed the state although rejected`);
    assert.throws(() => prepareRecord(base.image, record), (e: unknown) => e instanceof MetadataRejectedError && e.code === code);
  }
  const malformed = base.apply(Uint8Array.of(1, 42), 101);
  rejectedWith(malformed, 'malformedRecord');
  assert.equal(base.image.offset, 4);
});

test('a registration epoch left to the controller (0) becomes the next one', () => {
  const { sm } = run([register(4, 3)]);
  const rec = prepareRecord(sm.image, register(4, 0));
  assert.equal(rec.type === 'registerBroker' ? rec.epoch : 0, 4);
  assert.equal((prepareRecord(MetadataImage.EMPTY, register(9, 0)) as { epoch: number }).epoch, 1);
});

test('a record valid when prepared but invalid by the time it applies is rejected alike on every replica', () => {
  const a = run([register(1, 1)]).sm;
  const b = run([register(1, 1)]).sm;
  const create = prepareRecord(a.image, { type: 'createTopic', name: 'x', partitions: 1, configs: [] });
  const again = prepareRecord(a.image, create); // a second writer prepared the same one concurrently
  for (const sm of [a, b]) {
    assert.equal(sm.apply(encodeRecord(create), 2).type, 'accepted');
    rejectedWith(sm.apply(encodeRecord(again), 3), 'topicExists');
  }
  assert.deepEqual(a.snapshot(), b.snapshot());
});

test('unregistering a broker after its partitions moved; deleting a topic; re-creating it gets a new topic id', () => {
  const { sm, results } = run([
    register(1, 1), register(2, 1),
    { type: 'createTopic', name: 't', partitions: 1, configs: [] },
    { type: 'assignPartitions', topic: 't', assignments: [{ partition: 0, replicas: [1] }] },
    { type: 'assignPartitions', topic: 't', assignments: [{ partition: 0, replicas: [2] }] },
    { type: 'unregisterBroker', brokerId: 1, epoch: 1 },
    { type: 'deleteTopic', name: 't' },
    { type: 'createTopic', name: 't', partitions: 2, configs: [] },
  ]);
  assert.ok(results.every((r) => r.type === 'accepted'), JSON.stringify(results));
  assert.deepEqual([...sm.image.brokers.keys()], [2]);
  assert.equal(sm.image.topics.get('t')?.topicId, 8);
  assert.equal(sm.image.topics.get('t')?.partitions.length, 2);
});

test('listeners hear each accepted record with its delta and the image after it, and a reset on restore', () => {
  const sm = new MetadataStateMachine();
  const events: MetadataEvent[] = [];
  const off = sm.subscribe((e) => events.push(e));
  sm.subscribe(() => { throw new Error('a bad listener'); });
  run([register(1, 1), { type: 'deleteTopic', name: 'none' }, { type: 'createTopic', name: 't', partitions: 1, configs: [{ key: 'retention.ms', value: '5' }] }], sm);
  assert.equal(events.length, 2, 'the rejected record is not heard');
  const [first, second] = events;
  assert.equal(first?.type === 'record' && first.offset, 1);
  assert.deepEqual(first?.type === 'record' && first.delta.brokers.map((d) => [d.brokerId, d.before, d.after?.epoch]), [[1, null, 1]]);
  assert.ok(second?.type === 'record');
  assert.equal(second.index, 3);
  assert.deepEqual(second.delta.topics.map((d) => [d.name, d.before, d.after?.topicId]), [['t', null, 2]]);
  assert.deepEqual(second.delta.configs, [{ resource: { type: 'topic', name: 't' }, key: 'retention.ms', before: null, after: '5' }]);
  assert.equal(second.image, sm.image);
  sm.restore(new MetadataStateMachine().snapshot());
  assert.deepEqual(events[2], { type: 'reset', image: sm.image });
  off();
  run([register(1, 1)], sm);
  assert.equal(events.length, 3);
});

test('the retained history serves followers from a recent offset; older offsets read the image', () => {
  const sm = new MetadataStateMachine({ historyRecords: 4 });
  run(Array.from({ length: 10 }, (_, i) => register(i, 1)), sm);
  assert.deepEqual(sm.recordsFrom(9)?.map((r) => r.offset), [9, 10]);
  assert.deepEqual(sm.recordsFrom(11), []);
  const restored = new MetadataStateMachine({ historyRecords: 4 });
  restored.restore(sm.snapshot());
  assert.equal(restored.firstRetainedOffset, 7);
  assert.equal(restored.recordsFrom(6), null);
  assert.deepEqual(restored.recordsFrom(7)?.map((r) => r.offset), [7, 8, 9, 10]);
  assert.deepEqual(restored.recordsFrom(7, 2)?.map((r) => r.record.type === 'registerBroker' && r.record.brokerId), [6, 7]);
});

test('behind the service multiplexer: a metadata command by its tag; results come back to the proposer', () => {
  const m = new ServiceStateMachine();
  const md = new MetadataStateMachine();
  m.register('metadata', md);
  const r = m.apply(metadataCommand(register(1, 1)), 1) as MetadataApplyResult;
  assert.equal(r.type, 'accepted');
  assert.deepEqual(metadataCommand(register(1, 1)), encodeServiceCommand('metadata', encodeRecord(register(1, 1))));
  const snap = m.snapshot();
  const m2 = new ServiceStateMachine();
  const md2 = new MetadataStateMachine();
  m2.register('metadata', md2);
  m2.restore(snap);
  assert.deepEqual(encodeImage(md2.image), encodeImage(md.image));
});

// ---- properties -----------------------------------------------------------------

test('property: the image from a full replay equals the image from a snapshot plus the suffix', () => {
  fc.assert(fc.property(fc.integer(), fc.integer({ min: 1, max: 150 }), fc.nat(150), fc.integer({ min: 0, max: 20 }), (seed, n, cut, history) => {
    const rng = new Prng(seed);
    const full = new MetadataStateMachine({ historyRecords: history });
    const commands: Uint8Array[] = [];
    for (let i = 0; i < n; i++) {
      const c = encodeRecord(randomRecord(rng, full.image));
      commands.push(c);
      full.apply(c, i + 1);
    }
    const k = Math.min(cut, n);
    const prefix = new MetadataStateMachine({ historyRecords: history });
    commands.slice(0, k).forEach((c, i) => prefix.apply(c, i + 1));
    const resumed = new MetadataStateMachine({ historyRecords: history });
    resumed.restore(prefix.snapshot());
    const results = commands.slice(k).map((c, i) => resumed.apply(c, k + i + 1));
    const replayed = new MetadataStateMachine({ historyRecords: history });
    const expected = commands.map((c, i) => replayed.apply(c, i + 1)).slice(k);
    assert.deepEqual(results, expected, 'the suffix gets the same results either way');
    assert.deepEqual(encodeImage(resumed.image), encodeImage(full.image));
    assert.deepEqual(resumed.snapshot(), full.snapshot(), 'and the same snapshot bytes');
  }), { numRuns: 150 });
});

test('property: a rejected record changes nothing; an accepted one moves the offset by one and its delta matches the image', () => {
  fc.assert(fc.property(fc.integer(), (seed) => {
    const rng = new Prng(seed);
    const sm = new MetadataStateMachine({ historyRecords: 8 });
    let lastDelta: MetadataEvent | null = null;
    sm.subscribe((e) => { lastDelta = e; });
    let accepted = 0;
    for (let i = 1; i <= 120; i++) {
      const before = sm.snapshot();
      const offset = sm.image.offset;
      const r = sm.apply(encodeRecord(randomRecord(rng, sm.image)), i);
      if (r.type === 'rejected') {
        assert.deepEqual(sm.snapshot(), before);
        continue;
      }
      accepted++;
      assert.equal(r.offset, offset + 1);
      const e = lastDelta as MetadataEvent | null;
      assert.ok(e !== null && e.type === 'record' && e.offset === r.offset);
      for (const d of e.delta.brokers) assert.deepEqual(sm.image.brokers.get(d.brokerId) ?? null, d.after);
      for (const d of e.delta.topics) assert.deepEqual(sm.image.topics.get(d.name) ?? null, d.after);
      for (const d of e.delta.configs) assert.equal(sm.image.configsOf(d.resource).get(d.key) ?? null, d.after);
      // The image's invariant: every replica is a registered broker.
      for (const t of sm.image.topics.values()) for (const p of t.partitions) for (const id of p.replicas) assert.ok(sm.image.brokers.has(id));
    }
    assert.ok(accepted > 0);
  }), { numRuns: 100 });
});
