import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeCommand } from './kv/codec.js';
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
