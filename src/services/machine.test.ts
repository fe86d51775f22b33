import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyEntry } from '../node/apply.js';
import { encodeBatch } from '../node/batch.js';
import type { LogIndex } from '../protocol/ids.js';
import { decodeCommand, decodeCommandView, encodeCommand } from './kv/codec.js';
import { KvStateMachine } from './kv/state-machine.js';
import type { KvResult } from './kv/types.js';
import { encodeServiceCommand, ServiceSnapshotError, ServiceStateMachine, type ServiceMachine } from './machine.js';

/** A toy service: appends what it is given; its snapshot is the concatenation. */
class Echo implements ServiceMachine {
  data: number[] = [];
  apply(command: Uint8Array): unknown {
    this.data.push(...command);
    return this.data.length;
  }
  snapshot(): Uint8Array {
    return Uint8Array.from(this.data);
  }
  restore(data: Uint8Array): void {
    this.data = [...data];
  }
}

const put = (k: string, v: string): Uint8Array =>
  encodeCommand({ type: 'put', request: { key: Buffer.from(k), value: Buffer.from(v), lease: 0, prevKv: false, ignoreValue: false, ignoreLease: false } });

function machines(): { m: ServiceStateMachine; kv: KvStateMachine; q: Echo } {
  const kv = new KvStateMachine();
  const q = new Echo();
  return { m: new ServiceStateMachine().register('kv', kv).register('queue', q), kv, q };
}

test('key-value commands go as they are (logs from before services read unchanged); others by their tag', () => {
  const { m, kv, q } = machines();
  const r = m.apply(encodeServiceCommand('kv', put('a', '1')), 1) as KvResult;
  assert.equal(r.type, 'put');
  assert.equal(kv.store.revision, 2);
  assert.equal(m.apply(encodeServiceCommand('queue', Uint8Array.of(7, 8)), 2), 2);
  assert.deepEqual(q.data, [7, 8]);
  assert.throws(() => encodeServiceCommand('kv', Uint8Array.of(0x51)), RangeError);
});

test('a command for a service this node does not run fails alike everywhere and changes nothing', () => {
  const { m, kv, q } = machines();
  const r = m.apply(encodeServiceCommand('metadata', Uint8Array.of(1)), 1) as { type: string; error: string };
  assert.equal(r.error, 'unknownService');
  assert.equal(kv.store.revision, 1);
  assert.deepEqual(q.data, []);
  assert.equal((m.apply(Uint8Array.of(), 2) as { error: string }).error, 'unknownService');
});

test('a snapshot carries every service and restores each; a service it does not mention is reset', () => {
  const a = machines();
  a.m.apply(put('k', 'v'), 1);
  a.m.apply(encodeServiceCommand('queue', Uint8Array.of(1, 2, 3)), 2);
  const snap = a.m.snapshot();
  const b = machines();
  b.m.apply(encodeServiceCommand('queue', Uint8Array.of(9)), 1);
  b.m.restore(snap);
  assert.deepEqual(b.q.data, [1, 2, 3]);
  assert.deepEqual(b.kv.store.snapshot(), a.kv.store.snapshot());
  assert.deepEqual(b.m.snapshot(), snap, 'identical states give identical bytes');
  // A snapshot of the key-value store alone (written before services were multiplexed).
  const c = machines();
  c.m.apply(encodeServiceCommand('queue', Uint8Array.of(5)), 1);
  c.m.restore(a.kv.snapshot());
  assert.deepEqual(c.q.data, [], 'the other services start empty');
  assert.deepEqual(c.kv.store.snapshot(), a.kv.store.snapshot());
});

test('malformed snapshots are refused with ServiceSnapshotError', () => {
  const { m } = machines();
  const good = m.snapshot();
  assert.throws(() => m.restore(Uint8Array.of(1, 2, 3)), ServiceSnapshotError);
  assert.throws(() => m.restore(good.subarray(0, good.byteLength - 1)), ServiceSnapshotError);
  assert.throws(() => m.restore(Uint8Array.from([...good, 0])), ServiceSnapshotError);
  const other = new ServiceStateMachine().register('kv', new KvStateMachine()).register('metadata', new Echo());
  other.apply(encodeServiceCommand('metadata', Uint8Array.of(1)), 1);
  assert.throws(() => m.restore(other.snapshot()), /does not run/);
});

test('a committed batch applies in place: same results as command by command, and the store keeps copies, not views of the entry', () => {
  const del = encodeCommand({ type: 'deleteRange', request: { key: Buffer.from('b'), rangeEnd: new Uint8Array(0), prevKv: true } });
  const withPrev = encodeCommand({ type: 'put', request: { key: Buffer.from('a'), value: Buffer.from('3'), lease: 0, prevKv: true, ignoreValue: false, ignoreLease: false } });
  const commands = [put('a', '1'), put('b', '2'), encodeServiceCommand('queue', Uint8Array.of(7, 8)), del, withPrev, put('a-long-key-of-many-bytes', 'x'.repeat(300)), Uint8Array.of(0x99)];
  const data = encodeBatch(commands);
  const inPlace = machines();
  const results = applyEntry(inPlace.m, { index: 5 as LogIndex, term: 1, type: 'data', data }, (err) => assert.fail(err));
  const oneByOne = machines();
  assert.deepEqual(results, commands.map((c) => oneByOne.m.apply(c.slice(), 5 as LogIndex)));
  assert.deepEqual(inPlace.q.data, [7, 8]);
  assert.deepEqual(inPlace.m.snapshot(), oneByOne.m.snapshot());
  data.fill(0); // the log's buffer is reused or gone: the store must not notice
  assert.deepEqual(inPlace.m.snapshot(), oneByOne.m.snapshot());
  const kvs = inPlace.kv.store.range({ key: Buffer.from('a'), rangeEnd: Uint8Array.of(0), limit: 0, revision: 0, sortOrder: 'none', sortTarget: 'key',
    serializable: false, keysOnly: false, countOnly: false, minModRevision: 0, maxModRevision: 0, minCreateRevision: 0, maxCreateRevision: 0 }).kvs;
  assert.deepEqual(kvs.map((kv) => [Buffer.from(kv.key).toString(), Buffer.from(kv.value).toString()]), [['a', '3'], ['a-long-key-of-many-bytes', 'x'.repeat(300)]]);
  inPlace.kv.store.checkInvariants();
  let malformed = 0;
  assert.deepEqual(applyEntry(inPlace.m, { index: 6 as LogIndex, term: 1, type: 'data', data: data.subarray(0, 9) }, () => malformed++), []);
  assert.equal(malformed, 1);
});

test('decodeCommandView decodes a command inside a larger buffer into views; decodeCommand copies', () => {
  const cmd = put('key', 'value');
  const buf = new Uint8Array(cmd.length + 10);
  buf.set(cmd, 4);
  const view = decodeCommandView(buf, 4, 4 + cmd.length);
  assert.deepEqual(view, decodeCommand(cmd));
  assert.ok(view.type === 'put');
  assert.equal(view.request.value.buffer, buf.buffer);
  const copied = decodeCommand(cmd);
  assert.ok(copied.type === 'put');
  assert.notEqual(copied.request.value.buffer, cmd.buffer);
  assert.throws(() => decodeCommandView(buf, 4, 4 + cmd.length - 1), (e: unknown) => e instanceof Error && e.name === 'KvCodecError');
});
