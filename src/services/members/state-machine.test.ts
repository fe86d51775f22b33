// The members registry: records by node id, deterministic validation, a
// snapshot section of its own behind tag 0x43 on the service machine.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KvStateMachine } from '../kv/state-machine.js';
import { encodeServiceCommand, ServiceStateMachine } from '../machine.js';
import { decodeMembersCommand, encodeMembersCommand, MembersCodecError, MembersStateMachine, type MemberRecord } from './state-machine.js';

const n4: MemberRecord = { id: 'n4', peer: '127.0.0.1:7004', clients: ['127.0.0.1:7104'], promoteWhenCaughtUp: true };

test('put inserts or replaces a record, delete drops it; listeners hear each change', () => {
  const m = new MembersStateMachine();
  let changes = 0;
  m.onChange(() => changes++);
  assert.deepEqual(m.apply(encodeMembersCommand({ op: 'put', record: n4 }), 1), { type: 'ok', existed: false });
  assert.deepEqual(m.get('n4'), n4);
  const moved = { ...n4, peer: '127.0.0.1:7005', name: 'four', promoteWhenCaughtUp: false };
  assert.deepEqual(m.apply(encodeMembersCommand({ op: 'put', record: moved }), 2), { type: 'ok', existed: true });
  assert.deepEqual(m.get('n4'), moved);
  assert.deepEqual(m.apply(encodeMembersCommand({ op: 'delete', id: 'n4' }), 3), { type: 'ok', existed: true });
  assert.deepEqual(m.apply(encodeMembersCommand({ op: 'delete', id: 'n4' }), 4), { type: 'ok', existed: false });
  assert.equal(m.get('n4'), undefined);
  assert.equal(changes, 4);
});

test('malformed commands give the same error result everywhere and change nothing', () => {
  const m = new MembersStateMachine();
  const bad = [
    Uint8Array.of(2, 0x7b, 0x7d), // unknown version
    Uint8Array.of(1, 0x7b), // not JSON
    new Uint8Array([1, ...Buffer.from(JSON.stringify({ op: 'put', record: { ...n4, peer: 'nowhere' } }))]),
    new Uint8Array([1, ...Buffer.from(JSON.stringify({ op: 'put', record: { ...n4, extra: 1 } }))]),
    new Uint8Array([1, ...Buffer.from(JSON.stringify({ op: 'drop', id: 'n4' }))]),
    new Uint8Array([1, ...Buffer.from(JSON.stringify({ op: 'delete', id: '../x' }))]),
  ];
  for (const b of bad) {
    const r = m.apply(b, 1);
    assert.equal(r.type, 'error');
    assert.throws(() => decodeMembersCommand(b), MembersCodecError);
  }
  assert.deepEqual(m.all(), []);
  assert.throws(() => encodeMembersCommand({ op: 'put', record: { ...n4, clients: ['x'] } }), MembersCodecError);
});

test('snapshot and restore round-trip, sorted; a bad snapshot is refused', () => {
  const m = new MembersStateMachine();
  m.apply(encodeMembersCommand({ op: 'put', record: n4 }), 1);
  m.apply(encodeMembersCommand({ op: 'put', record: { ...n4, id: 'm-0a', peer: '[::1]:7', clients: [] } }), 2);
  const m2 = new MembersStateMachine();
  m2.restore(m.snapshot());
  assert.deepEqual(m2.all(), m.all());
  assert.deepEqual(m2.all().map((r) => r.id), ['m-0a', 'n4']);
  assert.throws(() => m2.restore(Uint8Array.of(1, 0x7b)), MembersCodecError);
  assert.throws(() => m2.restore(new Uint8Array([1, ...Buffer.from(JSON.stringify([n4, n4]))])), /twice/);
});

test('on the service machine: tag 0x43, its own snapshot section, reset by a snapshot without it', () => {
  const members = new MembersStateMachine();
  const svc = new ServiceStateMachine().register('kv', new KvStateMachine()).register('members', members);
  const cmd = encodeServiceCommand('members', encodeMembersCommand({ op: 'put', record: n4 }));
  assert.equal(cmd[0], 0x43);
  assert.deepEqual(svc.apply(cmd, 1), { type: 'ok', existed: false });
  const snap = svc.snapshot();
  const members2 = new MembersStateMachine();
  const svc2 = new ServiceStateMachine().register('kv', new KvStateMachine()).register('members', members2);
  svc2.restore(snap);
  assert.deepEqual(members2.get('n4'), n4);
  svc2.restore(new ServiceStateMachine().register('kv', new KvStateMachine()).register('members', new MembersStateMachine()).snapshot());
  assert.deepEqual(members2.all(), []);
});
