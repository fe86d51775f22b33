// What a client can send cannot hurt a controller: any request body either
// fails to convert (MalformedMetadataRequestError), is refused by validation
// (MetadataRejectedError), or is a record that encodes, decodes to itself and
// is accepted when applied to the image it was prepared against. And records
// and images survive the trip through their wire forms.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Prng } from '../../util/prng.js';
import { decodeRecord, encodeImage, encodeRecord } from '../../services/metadata/codec.js';
import { prepareRecord } from '../../services/metadata/prepare.js';
import { MetadataStateMachine } from '../../services/metadata/state-machine.js';
import { MetadataRejectedError, type MetadataRecord } from '../../services/metadata/types.js';
import { randomRecord } from '../../services/metadata/workload.js';
import { imageFromWire, imageToWire, MalformedMetadataRequestError, recordFromWire, recordToWire, type WireRecord } from './convert.js';

/** A machine with some brokers and topics, so that random requests can be valid. */
function populated(): MetadataStateMachine {
  const sm = new MetadataStateMachine();
  const rng = new Prng(99);
  for (let i = 1; i <= 300; i++) sm.applyRecord(randomRecord(rng, sm.image), i);
  return sm;
}

const text = fc.oneof(fc.constantFrom('orders', 'audit.log', 'a', '', '..', 'retention.ms', 'num.io.threads', '1', '-1', 'compact', 'h.local', '7'), fc.string({ maxLength: 12 }));
const int = fc.oneof(fc.integer({ min: -3, max: 12 }), fc.integer(), fc.constantFrom(2 ** 31, 2 ** 53, -(2 ** 53), 65536, 0), fc.double(), fc.constant('12'));
const entry = fc.record({ key: text, value: text }, { requiredKeys: [] });
const brokerEpoch = fc.record({ broker_id: int, epoch: int }, { requiredKeys: [] });
const wireRecord: fc.Arbitrary<unknown> = fc.oneof(
  fc.record({ register_broker: fc.record({ broker_id: int, epoch: int, host: text, port: int, rack: text, fenced: fc.boolean() }, { requiredKeys: [] }) }),
  fc.record({ unregister_broker: brokerEpoch }), fc.record({ fence_broker: brokerEpoch }), fc.record({ unfence_broker: brokerEpoch }),
  fc.record({ create_topic: fc.record({ name: text, partitions: int, configs: fc.array(entry, { maxLength: 3 }) }, { requiredKeys: [] }) }),
  fc.record({ delete_topic: fc.record({ name: text }, { requiredKeys: [] }) }),
  fc.record({ assign_partitions: fc.record({ topic: text, assignments: fc.array(fc.record({ partition: int, replicas: fc.array(int, { maxLength: 4 }) }, { requiredKeys: [] }), { maxLength: 3 }) }, { requiredKeys: [] }) }),
  fc.record({ set_config: fc.record({
    resource: fc.option(fc.record({ type: fc.constantFrom('CLUSTER', 'TOPIC', 'BROKER', 'OTHER', 0, 1, 2, 9), name: text }, { requiredKeys: [] })),
    key: text, value: text, delete: fc.boolean(),
  }, { requiredKeys: [] }) }),
  fc.constant({}), fc.constant(null), fc.anything(),
);

test('any request body converts, is rejected with a named error, or becomes a record every replica accepts', () => {
  const base = populated();
  let accepted = 0;
  fc.assert(fc.property(wireRecord, (w) => {
    let record: MetadataRecord;
    try {
      record = prepareRecord(base.image, recordFromWire(w as WireRecord));
    } catch (e) {
      assert.ok(e instanceof MalformedMetadataRequestError || e instanceof MetadataRejectedError, String(e));
      return;
    }
    const bytes = encodeRecord(record);
    assert.deepEqual(decodeRecord(bytes), record);
    const replica = new MetadataStateMachine();
    replica.restore(base.snapshot());
    assert.equal(replica.apply(bytes, 1000).type, 'accepted');
    accepted++;
  }), { numRuns: 5000 });
  assert.ok(accepted > 10, `only ${accepted} of the random requests were valid`);
});

test('records and images survive their wire forms', () => {
  const sm = populated();
  const rng = new Prng(5);
  for (let i = 0; i < 500; i++) {
    const r = randomRecord(rng, sm.image);
    assert.deepEqual(recordFromWire(recordToWire(r) as WireRecord), r);
  }
  assert.deepEqual(encodeImage(imageFromWire(imageToWire(sm.image))), encodeImage(sm.image));
});
