import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { NodeStorage } from '../node/node-storage.js';
import { encodeAuthCommand } from '../services/auth/codec.js';
import { AuthStateMachine } from '../services/auth/state-machine.js';
import type { AuthCommand } from '../services/auth/types.js';
import { ServiceStateMachine } from '../services/machine.js';
import { encodeCommand } from '../services/kv/codec.js';
import type { KvCommand } from '../services/kv/types.js';
import { KvStateMachine } from '../services/kv/state-machine.js';
import { encodeMembersCommand, MembersStateMachine } from '../services/members/state-machine.js';
import { MetadataStateMachine } from '../services/metadata/state-machine.js';
import { attachQueue } from '../services/queue/state-machine.js';
import { NodeFileSystem } from '../storage/fs.js';
import { BackupFormatError, decodeBackup, encodeBackup, restoreBackup } from './backup.js';
import { parseConfig } from './config.js';

const b = (s: string): Uint8Array => new TextEncoder().encode(s);
const put = (key: string, value: string): KvCommand =>
  ({ type: 'put', request: { key: b(key), value: b(value), lease: 0, prevKv: false, ignoreValue: false, ignoreLease: false } });

/** A node's services with three keys, a members record, and auth on (root and a reader) in them. */
function someState(): { services: ServiceStateMachine; kv: KvStateMachine; auth: AuthStateMachine } {
  const kv = new KvStateMachine();
  const services = new ServiceStateMachine().register('kv', kv);
  attachQueue(services);
  services.register('metadata', new MetadataStateMachine());
  const members = new MembersStateMachine();
  services.register('members', members);
  const auth = new AuthStateMachine();
  services.register('auth', auth);
  let i = 1;
  for (const [k, v] of [['a', '1'], ['b', '2'], ['a', '3']] as const) services.apply(encodeCommand(put(k, v)), i++);
  services.apply(new Uint8Array([0x43, ...encodeMembersCommand({ op: 'put', record: { id: 'n9', peer: '10.0.0.9:2380', clients: [], promoteWhenCaughtUp: false } })]), i++);
  assert.equal(members.get('n9')?.peer, '10.0.0.9:2380');
  const authCommands: AuthCommand[] = [
    { type: 'userAdd', name: 'root', passwordHash: '$2b$04$rootroot' }, { type: 'roleAdd', name: 'root' }, { type: 'userGrantRole', user: 'root', role: 'root' },
    { type: 'userAdd', name: 'reader', passwordHash: '$2b$04$readread' }, { type: 'roleAdd', name: 'reader' },
    { type: 'roleGrantPermission', role: 'reader', permission: { resource: 'kv', type: 'read', key: b('a'), rangeEnd: new Uint8Array(0) } },
    { type: 'userGrantRole', user: 'reader', role: 'reader' }, { type: 'enable', tokenKey: new Uint8Array(32).fill(9) },
  ];
  for (const cmd of authCommands) services.apply(new Uint8Array([0x41, ...encodeAuthCommand(cmd)]), i++);
  assert.equal(auth.enabled, true);
  return { services, kv, auth };
}

const header = { clusterId: 'old', nodeId: 'n2', index: 42, term: 7, takenAt: '2026-11-26T22:00:00.000Z' };

test('a backup round-trips, and any damage to it is refused with BackupFormatError', () => {
  const { services } = someState();
  const bytes = encodeBackup({ header, services: services.snapshot() });
  assert.equal(bytes.length % 512, 32, 'etcdctl snapshot save keeps only a stream whose length is 32 past a multiple of 512');
  const back = decodeBackup(bytes);
  assert.deepEqual(back.header, header);
  assert.deepEqual(back.services, services.snapshot());
  const damaged = Uint8Array.from(bytes);
  damaged[40] = (damaged[40] ?? 0) ^ 1;
  assert.throws(() => decodeBackup(damaged), (e: unknown) => e instanceof BackupFormatError && /SHA-256 does not match/.test(e.message));
  assert.throws(() => decodeBackup(bytes.subarray(0, bytes.length - 1)), /SHA-256 does not match/);
  assert.throws(() => decodeBackup(b('QKVS not a backup at all, but long enough to be read as one.....')), /not a quorumlog backup/);
  assert.throws(() => decodeBackup(new Uint8Array(10)), /not a quorumlog backup/);
  const v2 = Uint8Array.from(bytes);
  v2[4] = 2;
  assert.throws(() => decodeBackup(v2), /format version 2 is not known/);
});

test('restore seeds an empty data directory: snapshot at the backup\'s index and term, the new bootstrap configuration, no old run-time members', () => {
  const dir = mkdtempSync(join(tmpdir(), 'quorumlog-restore-'));
  try {
    const { services, kv, auth } = someState();
    const bytes = encodeBackup({ header, services: services.snapshot() });
    const config = parseConfig({
      clusterId: 'new', nodeId: 'm1', dataDir: join(dir, 'm1'),
      members: [
        { id: 'm1', peer: '127.0.0.1:7001', client: '127.0.0.1:7101', metrics: '127.0.0.1:7201' },
        { id: 'm2', peer: '127.0.0.1:7002', client: '127.0.0.1:7102', metrics: '127.0.0.1:7202' },
        { id: 'm3', role: 'observer', peer: '127.0.0.1:7003', client: '127.0.0.1:7103', metrics: '127.0.0.1:7203' },
      ],
    });
    const r = restoreBackup(bytes, config);
    assert.equal(r.index, 42);
    assert.equal(r.term, 7);
    const storage = new NodeStorage(new NodeFileSystem(), config.dataDir);
    try {
      const p = storage.recover();
      assert.deepEqual(p.hardState, { term: 7, vote: null, commit: 42 });
      assert.deepEqual(p.entries, []);
      assert.equal(p.snapshot?.index, 42);
      assert.equal(p.snapshot?.term, 7);
      assert.deepEqual(p.snapshot?.config, { voters: ['m1', 'm2'], observers: ['m3'] });
      const restored = someState();
      restored.services.restore(storage.readSnapshot(p.snapshot as NonNullable<typeof p.snapshot>));
      assert.deepEqual(restored.kv.snapshot(), kv.snapshot(), 'every key, at its revision');
      assert.equal(restored.kv.store.revision, kv.store.revision);
      const members = restored.services.service('members') as MembersStateMachine;
      assert.equal(members.get('n9'), undefined, 'the old cluster\'s run-time member addresses were dropped');
      // Auth as it was: on, the same users, roles, permissions, revision and token key (tokens issued before still hold).
      assert.deepEqual(restored.auth.snapshot(), auth.snapshot());
      assert.equal(restored.auth.enabled, true);
      assert.ok(restored.auth.permitted('reader', 'kv', 'read', b('a'), new Uint8Array(0)));
      assert.ok(!restored.auth.permitted('reader', 'kv', 'read', b('b'), new Uint8Array(0)));
    } finally {
      storage.close();
    }
    // Not twice: the directory holds Raft data now.
    assert.throws(() => restoreBackup(bytes, config), /already holds Raft data/);
    // A damaged backup writes nothing.
    const other = { ...config, dataDir: join(dir, 'm2') };
    const damaged = Uint8Array.from(bytes);
    damaged[damaged.length - 1] = (damaged[damaged.length - 1] ?? 0) ^ 1;
    assert.throws(() => restoreBackup(damaged, other), BackupFormatError);
    mkdirSync(other.dataDir, { recursive: true });
    writeFileSync(join(other.dataDir, 'keep'), '');
    assert.throws(() => restoreBackup(damaged, other), BackupFormatError);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
