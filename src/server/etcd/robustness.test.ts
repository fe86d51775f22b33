// Bad input and failing backends: malformed bytes, out-of-range fields, bad
// enums, and runtime errors (no leader, timeouts, ...) come back as etcd's
// gRPC statuses, and the server keeps serving.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { callUnary, rawClient, startTestServer, utf8, waitFor, type TestServer } from './test-util.js';
import { LocalKvBackend } from './local-backend.js';
import type { KvBackend } from './backend.js';
import type { KvCommand, KvResult } from '../../services/kv/types.js';
import { LeaderChangedError, NoLeaderError, RequestTimeoutError, TooManyRequestsError } from '../../node/errors.js';

function rawBytesCall(address: string, method: string, bytes: Buffer): Promise<grpc.ServiceError | null> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      method,
      (b: Buffer) => b,
      (b: Buffer) => b,
      bytes,
      (err) => {
        client.close();
        resolve(err);
      },
    );
  });
}

async function expectStatus(p: Promise<unknown>, code: grpc.status, message?: string | RegExp): Promise<void> {
  await assert.rejects(p, (err: grpc.ServiceError) => {
    assert.equal(err.code, code, `code ${err.code} (${err.details})`);
    if (typeof message === 'string') assert.equal(err.details, message);
    else if (message) assert.match(err.details, message);
    return true;
  });
}

for (const protocolWorkers of [0, 1]) describe(`malformed requests${protocolWorkers > 0 ? ' (through a protocol worker process)' : ''}`, () => {
  let srv: TestServer;
  let kv: grpc.Client;
  before(async () => {
    srv = await startTestServer({ protocolWorkers });
    kv = rawClient(srv.address, 'KV');
  });
  after(async () => {
    kv.close();
    await srv.close();
  });

  it('garbage bytes get INVALID_ARGUMENT or INTERNAL and the server keeps serving', async () => {
    const garbage = [
      Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff]),
      Buffer.from([0x0a, 0xff, 0x01]), // key field claiming 255 bytes, 1 present
      Buffer.from([0x12, 0x05, 0x01]),
      Buffer.from('this is not protobuf at all'),
    ];
    for (const method of ['/etcdserverpb.KV/Range', '/etcdserverpb.KV/Put', '/etcdserverpb.KV/Txn', '/etcdserverpb.Maintenance/Status']) {
      for (const bytes of garbage) {
        const err = await rawBytesCall(srv.address, method, bytes);
        if (method.endsWith('Status') && err === null) continue; // every field unknown: a valid empty StatusRequest
        assert.ok(err, `${method} accepted garbage`);
        assert.ok([grpc.status.INVALID_ARGUMENT, grpc.status.INTERNAL].includes(err.code), `${method}: ${err.code} ${err.details}`);
      }
    }
    await callUnary(kv, 'Put', { key: utf8('still'), value: utf8('alive') });
    const res = await callUnary<{ kvs: { value: Buffer }[] }>(kv, 'Range', { key: utf8('still') });
    assert.equal(res.kvs[0]?.value.toString(), 'alive');
  });

  it('bad fields get etcd\'s statuses', async () => {
    const negative = await callUnary<{ kvs: unknown[] }>(kv, 'Range', { key: utf8('k'), limit: '-1', revision: '-5' }); // etcd: no limit, current revision
    assert.ok(Array.isArray(negative.kvs));
    await expectStatus(callUnary(kv, 'Put', { key: Buffer.alloc(0), value: utf8('v') }), grpc.status.INVALID_ARGUMENT, 'etcdserver: key is not provided');
    await expectStatus(callUnary(kv, 'Range', { key: Buffer.alloc(0) }), grpc.status.INVALID_ARGUMENT, 'etcdserver: key is not provided');
    await expectStatus(callUnary(kv, 'Put', { key: utf8('k'), value: utf8('v'), ignore_value: true }), grpc.status.INVALID_ARGUMENT, 'etcdserver: value is provided');
    await expectStatus(callUnary(kv, 'Range', { key: utf8('k'), sort_order: 9 }), grpc.status.INVALID_ARGUMENT, 'etcdserver: invalid sort option');
    await expectStatus(callUnary(kv, 'Range', { key: utf8('k'), revision: '9223372036854775807' }), grpc.status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision is a future revision');
    await expectStatus(callUnary(kv, 'Put', { key: utf8('k'), value: utf8('v'), lease: '7587855535838339000' }), grpc.status.NOT_FOUND, 'etcdserver: requested lease not found');
    await expectStatus(callUnary(kv, 'Txn', { success: [{}] }), grpc.status.INVALID_ARGUMENT, /RequestOp/);
    await expectStatus(callUnary(kv, 'Range', { key: utf8('k'), revision: 1_000_000 }), grpc.status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision is a future revision');
    // (A protocol worker reports its own refusals to the node process in a message of their own, right after them.)
    await waitFor(() => srv.api.stats.invalidRequests >= 4, 3000, 'invalid requests counted');
    assert.equal(srv.api.stats.internalErrors, 0);
  });

  it('membership changes are UNIMPLEMENTED with a reason; unknown services too (leases are served: lease.test.ts)', async () => {
    const cluster = rawClient(srv.address, 'Cluster');
    await expectStatus(callUnary(cluster, 'MemberAdd', { peerURLs: ['http://x:2380'] }), grpc.status.UNIMPLEMENTED, /membership/);
    cluster.close();
    const err = await rawBytesCall(srv.address, '/etcdserverpb.Auth/Authenticate', Buffer.alloc(0));
    assert.equal(err?.code, grpc.status.UNIMPLEMENTED);
  });
});

/** A backend whose writes and barriers fail with a chosen error. */
class FailingBackend extends LocalKvBackend implements KvBackend {
  failure: Error | null = null;
  override write(cmd: KvCommand): Promise<KvResult> {
    return this.failure ? Promise.reject(this.failure) : super.write(cmd);
  }
  override readBarrier(): Promise<void> {
    return this.failure ? Promise.reject(this.failure) : super.readBarrier();
  }
}

for (const protocolWorkers of [0, 1]) describe(`runtime errors map to etcd's statuses${protocolWorkers > 0 ? ' (through a protocol worker process)' : ''}`, () => {
  const backend = new FailingBackend();
  let srv: TestServer;
  let kv: grpc.Client;
  before(async () => {
    srv = await startTestServer({ backend, protocolWorkers });
    kv = rawClient(srv.address, 'KV');
  });
  after(async () => {
    kv.close();
    await srv.close();
  });

  const cases: [Error, grpc.status, string][] = [
    [new NoLeaderError(), grpc.status.UNAVAILABLE, 'etcdserver: no leader'],
    [new RequestTimeoutError('put', 100), grpc.status.UNAVAILABLE, 'etcdserver: request timed out'],
    [new LeaderChangedError(), grpc.status.UNAVAILABLE, 'etcdserver: leader changed'],
    [new TooManyRequestsError('proposals'), grpc.status.RESOURCE_EXHAUSTED, 'etcdserver: too many requests'],
    [new Error('boom'), grpc.status.INTERNAL, 'etcdserver: internal error in Put'],
  ];
  for (const [error, code, message] of cases) {
    it(`${error.name}: ${message}`, async () => {
      backend.failure = error;
      try {
        await expectStatus(callUnary(kv, 'Put', { key: utf8('k'), value: utf8('v') }), code, message);
      } finally {
        backend.failure = null;
      }
      await callUnary(kv, 'Put', { key: utf8('k'), value: utf8('v') });
    });
  }

  it('counted an INTERNAL answer for the unexpected error', () => {
    assert.equal(srv.api.stats.internalErrors, 1);
  });

  it('a linearizable read waits on the barrier; a serializable one does not', async () => {
    backend.failure = new NoLeaderError();
    try {
      await expectStatus(callUnary(kv, 'Range', { key: utf8('k') }), grpc.status.UNAVAILABLE, 'etcdserver: no leader');
      const res = await callUnary<{ kvs: unknown[] }>(kv, 'Range', { key: utf8('k'), serializable: true });
      assert.equal(res.kvs.length, 1);
    } finally {
      backend.failure = null;
    }
  });
});
