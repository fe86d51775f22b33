// The Watch service through a raw grpc-js client built from our protos:
// creation and ids, filters and prev_kv, compacted start revisions, progress
// (requested and periodic), and slow readers (bounded server memory, then
// catch-up from history or cancellation when history was compacted).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ClientDuplexStream } from '@grpc/grpc-js';
import { rawClient, startTestServer, utf8, waitFor, type TestServer } from './test-util.js';
import type { KvBackend } from './backend.js';

interface WatchRes {
  header: { revision: string };
  watch_id: string;
  created: boolean;
  canceled: boolean;
  compact_revision: string;
  cancel_reason: string;
  events: { type: string; kv: { key: Buffer; value: Buffer; mod_revision: string }; prev_kv: { value: Buffer } | null }[];
}

type WatchStream = ClientDuplexStream<object, WatchRes>;

function openWatch(address: string): { stream: WatchStream; got: WatchRes[] } {
  const client = rawClient(address, 'Watch');
  const stream = (client as unknown as { Watch(): WatchStream }).Watch();
  const got: WatchRes[] = [];
  stream.on('data', (r: WatchRes) => got.push(r));
  stream.on('error', () => undefined); // cancelled at the end of a test
  return { stream, got };
}

function put(backend: KvBackend, key: string, value: string | Buffer): Promise<unknown> {
  return backend.write({
    type: 'put',
    request: { key: utf8(key), value: typeof value === 'string' ? utf8(value) : value, lease: 0, prevKv: false, ignoreValue: false, ignoreLease: false },
  });
}

describe('Watch service', () => {
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer({ progressNotifyIntervalMs: 100 });
  });
  after(async () => {
    await srv.close();
  });

  it('assigns ids, honours a requested id, refuses a duplicate one, cancels', async () => {
    const { stream, got } = openWatch(srv.address);
    stream.write({ create_request: { key: utf8('id/a') } });
    stream.write({ create_request: { key: utf8('id/b'), watch_id: 7 } });
    stream.write({ create_request: { key: utf8('id/c'), watch_id: 7 } });
    stream.write({ create_request: { key: utf8('id/d') } });
    await waitFor(() => got.length >= 4, 3000, 'create responses');
    assert.deepEqual(got.map((r) => [r.watch_id, r.created, r.canceled]), [
      ['0', true, false],
      ['7', true, false],
      ['-1', true, true],
      ['1', true, false],
    ]);
    assert.match(got[2]?.cancel_reason ?? '', /duplicate watch ID/);
    stream.write({ cancel_request: { watch_id: 7 } });
    await waitFor(() => got.length >= 5, 3000, 'cancel response');
    assert.equal(got[4]?.watch_id, '7');
    assert.equal(got[4]?.canceled, true);
    await put(srv.backend, 'id/b', 'x');
    await put(srv.backend, 'id/a', 'y');
    await waitFor(() => got.length >= 6, 3000, 'event');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(got.length, 6, 'the cancelled watcher got nothing');
    assert.equal(got[5]?.watch_id, '0');
    stream.cancel();
  });

  it('filters (NOPUT) and prev_kv', async () => {
    await put(srv.backend, 'f/k', 'v1');
    const { stream, got } = openWatch(srv.address);
    stream.write({ create_request: { key: utf8('f/k'), filters: ['NOPUT'], prev_kv: true } });
    await waitFor(() => got.length >= 1, 3000, 'created');
    await put(srv.backend, 'f/k', 'v2');
    await srv.backend.write({ type: 'deleteRange', request: { key: utf8('f/k'), rangeEnd: new Uint8Array(0), prevKv: false } });
    await waitFor(() => got.length >= 2, 3000, 'delete event');
    const ev = got[1]?.events[0];
    assert.equal(got[1]?.events.length, 1);
    assert.equal(ev?.type, 'DELETE');
    assert.equal(ev?.prev_kv?.value.toString(), 'v2');
    assert.equal(got[1]?.header.revision, String(srv.backend.store.revision));
    stream.cancel();
  });

  it('a start revision below the compaction point is cancelled with compact_revision', async () => {
    await put(srv.backend, 'c/k', '1');
    const old = srv.backend.store.revision;
    await put(srv.backend, 'c/k', '2');
    await put(srv.backend, 'c/k', '3');
    const compactAt = srv.backend.store.revision;
    const r = await srv.backend.write({ type: 'compact', request: { revision: compactAt, physical: false } });
    assert.equal(r.type, 'compact');
    const { stream, got } = openWatch(srv.address);
    stream.write({ create_request: { key: utf8('c/k'), start_revision: old } });
    await waitFor(() => got.length >= 2, 3000, 'created and canceled');
    assert.equal(got[0]?.created, true);
    assert.equal(got[1]?.watch_id, got[0]?.watch_id);
    assert.equal(got[1]?.canceled, true);
    assert.equal(got[1]?.compact_revision, String(compactAt));
    stream.cancel();
  });

  it('answers a progress request (watch_id -1) and sends periodic progress notifications', async () => {
    const { stream, got } = openWatch(srv.address);
    stream.write({ create_request: { key: utf8('prog/k'), progress_notify: true } });
    await waitFor(() => got.length >= 1, 3000, 'created');
    stream.write({ progress_request: {} });
    await waitFor(() => got.some((r) => r.watch_id === '-1'), 3000, 'progress response');
    const manual = got.find((r) => r.watch_id === '-1');
    assert.equal(manual?.header.revision, String(srv.backend.store.revision));
    assert.equal(manual?.events.length, 0);
    await waitFor(() => got.some((r) => r.watch_id === got[0]?.watch_id && !r.created && r.events.length === 0), 3000, 'periodic progress');
    stream.cancel();
  });

  it('history then live while writes go on: no gap and no duplicate at the switch-over', async () => {
    const first = srv.backend.store.revision + 1;
    const total = 600; // more than one catch-up batch
    let written = 0;
    const writer = (async () => {
      while (written < total) {
        const batch = [];
        for (let i = 0; i < 10 && written < total; i++, written++) batch.push(put(srv.backend, `sw/${written % 7}`, String(written)));
        await Promise.all(batch);
        await new Promise((r) => setImmediate(r));
      }
    })();
    await waitFor(() => written >= 300, 5000, 'half the writes');
    const { stream, got } = openWatch(srv.address);
    stream.write({ create_request: { key: utf8('sw/'), range_end: utf8('sw0'), start_revision: first } });
    await writer;
    const revisions = () => got.flatMap((r) => r.events.map((ev) => Number(ev.kv.mod_revision)));
    await waitFor(() => revisions().length >= total, 10000, 'every write seen');
    assert.deepEqual(revisions(), Array.from({ length: total }, (_, i) => first + i));
    assert.deepEqual(got.flatMap((r) => r.events.map((ev) => ev.kv.value.toString())), Array.from({ length: total }, (_, i) => String(i)));
    stream.cancel();
  });

  it('watches from a future revision: nothing until it is reached', async () => {
    const { stream, got } = openWatch(srv.address);
    const future = srv.backend.store.revision + 2;
    stream.write({ create_request: { key: utf8('fut/k'), start_revision: future } });
    await waitFor(() => got.length >= 1, 3000, 'created');
    await put(srv.backend, 'fut/k', 'too early');
    await put(srv.backend, 'fut/k', 'on time');
    await waitFor(() => got.length >= 2, 3000, 'event');
    assert.equal(got[1]?.events[0]?.kv.value.toString(), 'on time');
    stream.cancel();
  });
});

describe('Watch service with a slow reader', () => {
  const maxPendingBytes = 64 * 1024;
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer({ watchMaxPendingBytes: maxPendingBytes });
  });
  after(async () => {
    await srv.close();
  });

  it('keeps queued bytes bounded, catches up from history, and cancels when history is compacted', async () => {
    const client = rawClient(srv.address, 'Watch');
    const stream = (client as unknown as { Watch(): WatchStream }).Watch();
    stream.on('error', () => undefined);
    stream.write({ create_request: { key: utf8('slow/'), range_end: utf8('slow0') } });
    const created = await new Promise<WatchRes>((resolve) => stream.once('data', resolve));
    assert.equal(created.created, true);
    stream.pause(); // the client stops reading

    const value = Buffer.alloc(8 * 1024, 'x');
    const first = srv.backend.store.revision + 1;
    const writes = 400; // 3.2 MB of events for a reader that does not read
    for (let i = 0; i < writes; i++) {
      await put(srv.backend, `slow/${i % 10}`, value);
      if (i % 20 === 0) await new Promise((r) => setImmediate(r));
    }
    await new Promise((r) => setTimeout(r, 100));
    const [session] = [...srv.api.watchSessions];
    assert.ok(session);
    const eventBytes = value.length + 200;
    assert.ok(session.stats.blockedCount >= 1, 'the session noticed the reader is slow');
    assert.ok(
      session.stats.pendingBytesPeak <= maxPendingBytes + eventBytes,
      `queued bytes stayed bounded: peak ${session.stats.pendingBytesPeak} > ${maxPendingBytes} + one event`,
    );

    // The reader wakes up: every revision arrives once, in order, partly from history.
    const revisions: number[] = [];
    const responses: WatchRes[] = [];
    stream.on('data', (r: WatchRes) => {
      responses.push(r);
      for (const ev of r.events) revisions.push(Number(ev.kv.mod_revision));
    });
    stream.resume();
    await waitFor(() => revisions.length >= writes, 10000, 'all events after resuming');
    assert.deepEqual(revisions, Array.from({ length: writes }, (_, i) => first + i));
    assert.ok(session.stats.catchUpEvents > 0, 'some events came from history');

    // Live again?
    await put(srv.backend, 'slow/live', 'v');
    await waitFor(() => revisions.length === writes + 1, 3000, 'live event after catch-up');

    // Stop reading again; the history it needs is compacted meanwhile: the watcher is cancelled.
    stream.pause();
    await new Promise((r) => setTimeout(r, 50));
    for (let i = 0; i < writes; i++) {
      await put(srv.backend, `slow/${i % 10}`, value);
      if (i % 20 === 0) await new Promise((r) => setImmediate(r));
    }
    const compactAt = srv.backend.store.revision;
    await srv.backend.write({ type: 'compact', request: { revision: compactAt, physical: true } });
    assert.ok(session.stats.pendingBytesPeak <= maxPendingBytes + eventBytes, 'still bounded');
    stream.resume();
    await waitFor(() => responses.some((r) => r.canceled), 10000, 'cancellation for compacted history');
    const cancel = responses.find((r) => r.canceled);
    assert.equal(cancel?.compact_revision, String(compactAt));
    const received = revisions.slice(writes + 1);
    assert.ok(received.length < writes, 'some events were never sent (they were compacted)');
    assert.deepEqual(received, Array.from({ length: received.length }, (_, i) => (received[0] ?? 0) + i), 'no gaps before the cancel');
    stream.cancel();
    client.close();
  });

  it('a client flooding create requests without reading: the queue stays bounded, every create is answered', async () => {
    const earlier = new Set(srv.api.watchSessions);
    const client = rawClient(srv.address, 'Watch');
    const stream = (client as unknown as { Watch(): WatchStream }).Watch();
    stream.on('error', () => undefined);
    stream.pause();
    const requests = 5000; // answers worth several times watchMaxPendingBytes
    for (let i = 0; i < requests; i++) stream.write({ create_request: { key: utf8(`flood/${i}`) } });
    const fresh = () => [...srv.api.watchSessions].find((s) => !earlier.has(s));
    await waitFor(() => fresh() !== undefined, 3000, 'session');
    const session = fresh();
    assert.ok(session);
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(session.stats.pendingBytesPeak < 2 * maxPendingBytes, `peak ${session.stats.pendingBytesPeak}`);
    let created = 0;
    stream.on('data', (r: WatchRes) => {
      if (r.created) created++;
    });
    stream.resume();
    await waitFor(() => created === requests, 10000, 'every create answered once the client reads');
    assert.equal(session.watcherCount, requests);
    stream.cancel();
    client.close();
    await waitFor(() => srv.api.watchSessions.size === 0, 3000, 'sessions released when their streams end');
    assert.equal(session.watcherCount, 0);
  });
});
