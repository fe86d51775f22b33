// PendingRequests' settlement of writes after a leader change (the header of
// requests.ts): an entry of a later term that applies settles every write of
// an earlier term at or after its index, and every forwarded batch whose
// answer never came: proposed again when it cannot have applied, failed with
// LeaderChangedError('unknown') when an equal batch applied or a snapshot
// skipped entries. Driven by hand, entry by entry, on a fake clock.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Entry } from '../protocol/entry.js';
import { encodeBatch } from './batch.js';
import { LeaderChangedError } from './errors.js';
import { PendingRequests, requestIdBase } from './requests.js';
import { newRuntimeMetrics } from './runtime-metrics.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

function pending(firstId?: number) {
  let now = 0;
  const metrics = newRuntimeMetrics();
  const committed = new Set<string>();
  const r = new PendingRequests({
    now: () => now, metrics, requestTimeoutMs: 10_000, maxPendingRequests: 100, maxPendingBytes: 1 << 20, maxEntryBytes: 1 << 16,
    wake: () => undefined, isCommitted: (i, t) => committed.has(`${i}/${t}`), orphanGraceMs: 1000, ...(firstId === undefined ? {} : { firstId }),
  });
  return { r, metrics, committed, advance: (ms: number) => (now += ms) };
}

const data = (index: number, term: number, bytes: Uint8Array): Entry => ({ index, term, type: 'data', data: bytes });
const noop = (index: number, term: number): Entry => ({ index, term, type: 'noop', data: new Uint8Array(0) });

/** Submits `cmds`, takes them as one batch as the runtime would, and records how each promise settles. */
function batchOf(r: PendingRequests, cmds: string[]) {
  const outcomes: (unknown)[] = cmds.map(() => 'pending');
  cmds.forEach((c, i) => void r.submit(enc(c)).then((v) => (outcomes[i] = v), (e: unknown) => (outcomes[i] = e)));
  const [b] = r.packQueue();
  assert.ok(b !== undefined && b.length === cmds.length);
  return { b, bytes: encodeBatch(b.map((q) => q.command)), outcomes };
}

const settle = (): Promise<void> => new Promise((res) => setImmediate(res));

test('a forwarded batch that no applied entry of its term holds is proposed again once a later term applies', async () => {
  const { r, metrics } = pending();
  const { b, bytes, outcomes } = batchOf(r, ['x', 'y']);
  r.forwardedAs(r.newId(), b, 3, bytes);
  r.entryApplied(data(10, 3, encodeBatch([enc('other')])), [1]);
  assert.equal(r.hasQueuedCommands(), false, 'term 3 is not settled yet');
  r.entryApplied(noop(11, 4), []);
  await settle();
  assert.deepEqual(outcomes, ['pending', 'pending'], 'nobody was answered');
  assert.equal(r.hasQueuedCommands(), true);
  assert.deepEqual(r.packQueue().flat().map((q) => new TextDecoder().decode(q.command)), ['x', 'y']);
  assert.equal(metrics.reproposedWrites, 2);
});

test('a forwarded batch whose bytes an applied entry of its term held fails with LeaderChangedError(unknown)', async () => {
  const { r, metrics } = pending();
  const { b, bytes, outcomes } = batchOf(r, ['x']);
  r.forwardedAs(r.newId(), b, 3, bytes);
  r.entryApplied(data(10, 3, bytes.slice()), [1]); // equal bytes: ours, or a client's identical retry
  r.entryApplied(noop(11, 4), []);
  await settle();
  assert.ok(outcomes[0] instanceof LeaderChangedError);
  assert.equal(outcomes[0].outcome, 'unknown');
  assert.equal(r.hasQueuedCommands(), false);
  assert.equal(metrics.leaderChangedUnknown, 1);
});

test('equal bytes in an entry of another term do not count', async () => {
  const { r } = pending();
  const { b, bytes } = batchOf(r, ['x']);
  r.forwardedAs(r.newId(), b, 3, bytes);
  r.entryApplied(data(10, 2, bytes.slice()), [1]);
  r.entryApplied(noop(11, 4), []);
  await settle();
  assert.equal(r.hasQueuedCommands(), true);
});

test('a write in an entry of an earlier term at or after the index where a later term applied is proposed again; one before it is answered', async () => {
  const { r } = pending();
  const early = batchOf(r, ['early']);
  r.inEntry(10, 3, early.b);
  const late = batchOf(r, ['late']);
  r.inEntry(12, 3, late.b);
  r.entryApplied(data(10, 3, early.bytes), ['result']);
  r.entryApplied(noop(11, 4), []);
  await settle();
  assert.deepEqual(early.outcomes, ['result']);
  assert.deepEqual(late.outcomes, ['pending']);
  assert.deepEqual(r.packQueue().flat().map((q) => new TextDecoder().decode(q.command)), ['late']);
  // An answer naming a settled term is settled at once.
  const stale = batchOf(r, ['stale']);
  r.inEntry(20, 3, stale.b);
  assert.deepEqual(r.packQueue().flat().map((q) => new TextDecoder().decode(q.command)), ['stale']);
});

test('a snapshot of a later term settles too, but a forwarded batch it may hide is unknown', async () => {
  const { r } = pending();
  const inLog = batchOf(r, ['in-log']);
  r.inEntry(30, 3, inLog.b);
  const fwd = batchOf(r, ['forwarded']);
  r.forwardedAs(r.newId(), fwd.b, 3, fwd.bytes);
  r.snapshotInstalled(20, 4);
  await settle();
  assert.ok(fwd.outcomes[0] instanceof LeaderChangedError && fwd.outcomes[0].outcome === 'unknown');
  assert.deepEqual(r.packQueue().flat().map((q) => new TextDecoder().decode(q.command)), ['in-log']);
});

test('a write whose term has had no leader for the orphan grace fails, unless its entry is committed', async () => {
  const { r, committed, advance } = pending();
  const a = batchOf(r, ['a']);
  r.inEntry(5, 2, a.b);
  const c = batchOf(r, ['c']);
  r.inEntry(6, 2, c.b);
  committed.add('6/2');
  r.expire({ term: 2, leader: 'n1' as never, reachable: true });
  advance(500);
  r.expire({ term: 2, leader: null, reachable: false });
  await settle();
  assert.equal(a.outcomes[0], 'pending', 'within the grace');
  advance(600);
  r.expire({ term: 3, leader: null, reachable: false });
  await settle();
  const failed: unknown = a.outcomes[0];
  assert.ok(failed instanceof LeaderChangedError && failed.outcome === 'unknown', String(failed));
  assert.deepEqual(c.outcomes, ['pending'], 'a committed entry will apply: it is not failed');
});

test('a later process of the same node never reuses a request id of an earlier one, so a late answer meant for the earlier one matches nothing', async () => {
  // The earlier process: started at t0, handed out 3000 ids (far more than a node forwards in the 5 ms it lived).
  const t0 = 1_796_000_000_000;
  const earlier = pending(requestIdBase(t0)).r;
  assert.equal(earlier.newId(), t0 * 1024);
  let lastOfEarlier = 0;
  for (let i = 0; i < 3000; i++) lastOfEarlier = earlier.newId();
  // The later one, started 5 ms on, forwards a batch; a leader's answer to the earlier process's last request arrives.
  const { r } = pending(requestIdBase(t0 + 5));
  const { b, bytes, outcomes } = batchOf(r, ['x']);
  const id = r.newId();
  assert.ok(id > lastOfEarlier, `${id} must be above every id of the earlier process (${lastOfEarlier})`);
  assert.ok(Number.isSafeInteger(requestIdBase(Date.UTC(2200, 0, 1))), 'ids stay exact doubles for a long while');
  r.forwardedAs(id, b, 3, bytes);
  assert.equal(r.takeForwarded(lastOfEarlier), undefined, 'the stale answer matches no request of this process');
  await settle();
  assert.deepEqual(outcomes, ['pending']);
  assert.equal(r.takeForwarded(id)?.length, 1, 'its own request still waits for its own answer');
});
