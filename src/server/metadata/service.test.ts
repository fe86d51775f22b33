// The metadata gRPC service in process, over the unreplicated backend: writes
// answered with their offsets, rejections with their codes, malformed
// requests refused, GetImage, and Follow from the start, from a recent
// offset, from behind the retained records (image first), live, and through a
// snapshot that replaces the state.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { encodeImage } from '../../services/metadata/codec.js';
import { MetadataStateMachine } from '../../services/metadata/state-machine.js';
import { MetadataRejectedError, type MetadataRecord } from '../../services/metadata/types.js';
import { MetadataClient, type FollowEvent } from './client.js';
import { LocalMetadataBackend } from './local-backend.js';
import { addMetadataService, metadataServiceClient, type MetadataService } from './service.js';

async function serve(machine = new MetadataStateMachine()): Promise<{ backend: LocalMetadataBackend; svc: MetadataService; client: MetadataClient; address: string; close(): Promise<void> }> {
  const server = new grpc.Server();
  const backend = new LocalMetadataBackend(machine);
  const svc = addMetadataService(server, backend, { logger: pino({ level: 'silent' }), followBatchRecords: 3 });
  const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  const address = `127.0.0.1:${port}`;
  const client = new MetadataClient([address], 5000);
  return {
    backend, svc, client, address,
    close: async () => {
      svc.close();
      client.close();
      await new Promise<void>((r) => server.tryShutdown(() => r()));
    },
  };
}

const register = (id: number): MetadataRecord => ({ type: 'registerBroker', brokerId: id, epoch: 0, host: 'localhost', port: 9000 + id, rack: null, fenced: false });

async function waitFor(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test('Write answers with the offset and the completed record; a rejection comes back with its code', async () => {
  const s = await serve();
  try {
    const a = await s.client.write(register(1));
    assert.deepEqual([a.offset, a.index], [1, 1]);
    assert.deepEqual(a.record, { ...register(1), epoch: 1 }, 'the controller filled in the epoch');
    const b = await s.client.write(register(1));
    assert.equal(b.record.type === 'registerBroker' && b.record.epoch, 2);
    await s.client.write({ type: 'createTopic', name: 'orders', partitions: 2, configs: [{ key: 'retention.ms', value: '1000' }] });
    await s.client.write({ type: 'assignPartitions', topic: 'orders', assignments: [{ partition: 1, replicas: [1] }] });
    await s.client.write({ type: 'setConfig', resource: { type: 'broker', brokerId: 1 }, key: 'num.io.threads', value: '4' });
    await s.client.write({ type: 'setConfig', resource: { type: 'topic', name: 'orders' }, key: 'retention.ms', value: null });
    await assert.rejects(s.client.write({ type: 'createTopic', name: 'orders', partitions: 1, configs: [] }),
      (e: unknown) => e instanceof MetadataRejectedError && e.code === 'topicExists' && /already exists/.test(e.message));
    await assert.rejects(s.client.write({ type: 'assignPartitions', topic: 'orders', assignments: [{ partition: 0, replicas: [7] }] }),
      (e: unknown) => e instanceof MetadataRejectedError && e.code === 'unknownBroker');
    assert.equal(s.backend.machine.image.offset, 6, 'rejected writes were never appended');
    const img = await s.client.image();
    assert.deepEqual(encodeImage(img), encodeImage(s.backend.machine.image));
    assert.equal(s.svc.stats.rejected, 2);
  } finally {
    await s.close();
  }
});

test('malformed requests get INVALID_ARGUMENT and change nothing', async () => {
  const s = await serve();
  const Ctor = metadataServiceClient();
  const raw = new Ctor(s.address, grpc.credentials.createInsecure()) as unknown as Record<string, (req: object, cb: (e: grpc.ServiceError | null) => void) => void>;
  const write = (req: object): Promise<grpc.ServiceError | null> => new Promise((r) => (raw['Write'] as (req: object, cb: (e: grpc.ServiceError | null) => void) => void).call(raw, req, (e) => r(e)));
  try {
    assert.equal((await write({}))?.code, grpc.status.INVALID_ARGUMENT);
    assert.equal((await write({ record: {} }))?.code, grpc.status.INVALID_ARGUMENT);
    assert.equal((await write({ record: { set_config: { resource: { type: 'BROKER', name: 'x' }, key: 'num.io.threads', value: '1' } } }))?.code, grpc.status.INVALID_ARGUMENT);
    assert.equal((await write({ record: { delete_topic: { name: 'caf\u00e9' } } }))?.code, grpc.status.FAILED_PRECONDITION, 'an invalid name is a rejection');
    assert.equal(s.backend.machine.image.offset, 0);
  } finally {
    (raw as unknown as grpc.Client).close();
    await s.close();
  }
});

test('Follow: from the start, then live; from behind the retained records the image comes first', async () => {
  const s = await serve(new MetadataStateMachine({ historyRecords: 4 }));
  try {
    for (let i = 1; i <= 10; i++) await s.client.write(register(i));
    const fromStart: FollowEvent[] = [];
    let ended: Error | null | undefined;
    const cancel = s.client.follow(0, (e) => fromStart.push(e), (err) => { ended = err; });
    await waitFor(() => fromStart.length >= 1, 'the first event');
    // Offsets 1..10, but only 7.. are retained (4 + what the amortised trim keeps): an image comes first, then records.
    const first = fromStart[0];
    assert.equal(first?.type, 'image');
    const imageOffset = first?.type === 'image' ? first.image.offset : -1;
    await s.client.write({ type: 'createTopic', name: 'live', partitions: 1, configs: [] });
    await waitFor(() => fromStart.some((e) => e.type === 'record' && e.offset === 11), 'the live record');
    const offsets = fromStart.slice(1).map((e) => (e.type === 'record' ? e.offset : -1));
    assert.deepEqual(offsets, Array.from({ length: 11 - imageOffset }, (_, i) => imageOffset + 1 + i));
    // From a retained offset: records only, in order.
    const recent: FollowEvent[] = [];
    const cancel2 = s.client.follow(9, (e) => recent.push(e), () => {});
    await waitFor(() => recent.length >= 3, 'records 9-11');
    assert.deepEqual(recent.map((e) => (e.type === 'record' ? e.offset : 'image')), [9, 10, 11]);
    assert.equal(s.svc.followStreams(), 2);
    cancel();
    cancel2();
    await waitFor(() => s.svc.followStreams() === 0, 'the streams to close');
    assert.equal(ended, null);
  } finally {
    await s.close();
  }
});

test('Follow: a snapshot that replaces the state past a stream\'s offset sends the image', async () => {
  const s = await serve(new MetadataStateMachine({ historyRecords: 2 }));
  try {
    await s.client.write(register(1));
    const events: FollowEvent[] = [];
    s.client.follow(1, (e) => events.push(e), () => {});
    await waitFor(() => events.length === 1, 'the first record');
    const other = new MetadataStateMachine({ historyRecords: 2 });
    const b = new LocalMetadataBackend(other);
    for (let i = 1; i <= 8; i++) await b.write(register(i));
    s.backend.machine.restore(other.snapshot());
    await waitFor(() => events.length === 2, 'the image');
    const e = events[1];
    assert.ok(e?.type === 'image');
    assert.equal(e.image.offset, 8);
    assert.equal(e.image.brokers.size, 8);
    // The server ends streams when it closes; the client hears a clean end.
  } finally {
    await s.close();
  }
});

test('Follow: thousands of records arrive complete and in order (the stream waits for gRPC to drain)', async () => {
  const s = await serve(new MetadataStateMachine({ historyRecords: 10_000 }));
  try {
    for (let i = 0; i < 3000; i++) {
      await s.backend.write({ type: 'setConfig', resource: { type: 'cluster' }, key: 'num.io.threads', value: String(1 + i) });
    }
    const offsets: number[] = [];
    s.client.follow(1, (e) => offsets.push(e.type === 'record' ? e.offset : -1), () => {});
    await waitFor(() => offsets.length >= 3000, 'every record');
    await s.backend.write({ type: 'setConfig', resource: { type: 'cluster' }, key: 'num.io.threads', value: '1' });
    await waitFor(() => offsets.length === 3001, 'the live record');
    assert.deepEqual(offsets, Array.from({ length: 3001 }, (_, i) => i + 1));
  } finally {
    await s.close();
  }
});
