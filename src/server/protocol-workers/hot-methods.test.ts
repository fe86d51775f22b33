// The worker's hand-encoded answer to a plain Put decodes, with protobufjs and
// our etcd protos, to the header the generic encoder would send; requests
// decode to the same KV command the grpc-js path builds.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { decodeCommand } from '../../services/kv/codec.js';
import { HotMethods, loadEtcdRoot } from './hot-methods.js';

test('framedPlainPut: a gRPC frame whose PutResponse carries exactly the header, for any ids, revision and term', () => {
  const type = loadEtcdRoot().lookupType('etcdserverpb.PutResponse');
  const uint64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
  fc.assert(fc.property(uint64, uint64, fc.maxSafeNat(), fc.nat({ max: 2 ** 32 - 1 }), (cluster, member, revision, term) => {
    const hot = new HotMethods({ clusterId: cluster.toString(), memberId: member.toString() });
    const framed = hot.framedPlainPut(revision, term);
    assert.equal(framed[0], 0, 'uncompressed');
    assert.equal(framed.readUInt32BE(1), framed.byteLength - 5, 'the prefix gives the message length');
    const msg = type.toObject(type.decode(framed.subarray(5)), { longs: String, defaults: true }) as {
      header: { cluster_id: string; member_id: string; revision: string; raft_term: string }; prev_kv?: unknown;
    };
    assert.deepEqual(msg.header, { cluster_id: cluster.toString(), member_id: member.toString(), revision: String(revision), raft_term: String(term) });
    assert.equal(msg.prev_kv ?? null, null);
  }), { numRuns: 300 });
});

test('decode: a Put becomes the KV command the log takes; bad fields get etcd\'s statuses', () => {
  const hot = new HotMethods({ clusterId: '1', memberId: '2' });
  const PutRequest = loadEtcdRoot().lookupType('etcdserverpb.PutRequest');
  const body = PutRequest.encode(PutRequest.fromObject({ key: Buffer.from('k'), value: Buffer.from('v'), prev_kv: true })).finish();
  const d = hot.decode('Put', body);
  assert.ok('op' in d && d.op === 'write');
  const cmd = decodeCommand(d.command);
  assert.equal(cmd.type, 'put');
  if (cmd.type === 'put') {
    assert.equal(Buffer.from(cmd.request.key).toString(), 'k');
    assert.equal(Buffer.from(cmd.request.value).toString(), 'v');
    assert.equal(cmd.request.prevKv, true);
  }
  const bad = hot.decode('Put', PutRequest.encode(PutRequest.fromObject({ key: Buffer.from('k'), value: Buffer.from('v'), ignore_value: true })).finish());
  assert.deepEqual(bad, { code: 3, message: 'etcdserver: value is provided' });
  const garbage = hot.decode('Range', Buffer.from([0x0a, 0xff, 0x01]));
  assert.ok('code' in garbage && garbage.code === 13, JSON.stringify(garbage));
});
