// NodeStorage's snapshots carry the configuration in force at their index
// (membership changes, docs/MEMBERSHIP.md): saved with it, recovered with it
// at start-up, sent to followers inside the body and installed from it; the
// state machine only ever sees its own bytes. Snapshots written before this
// (no configuration prefix) still read, as the bootstrap configuration.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Ready } from '../core/ready.js';
import { nodeId } from '../protocol/ids.js';
import type { Configuration, Entry } from '../protocol/entry.js';
import { NodeFileSystem } from '../storage/fs.js';
import { NodeStorage, SnapshotConfigurationError } from './node-storage.js';

const config: Configuration = { voters: [nodeId('a'), nodeId('b'), nodeId('d')], observers: [nodeId('o1')] };
const body = new TextEncoder().encode('the state machine\'s own bytes');

function withDir(f: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'quorumlog-node-storage-'));
  try {
    f(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function entries(from: number, to: number): Entry[] {
  return Array.from({ length: to - from + 1 }, (_, i) => ({ index: from + i, term: 1, type: 'data' as const, data: Uint8Array.of(i) }));
}

function ready(over: Partial<Ready>): Ready {
  return {
    seq: 1, hardState: null, entries: [], snapshot: null, snapshotChunks: [], messages: [], persistedMessages: [], committed: [],
    readStates: [], readsAborted: [], softState: { role: 'follower', term: 1, leader: null } as Ready['softState'], ...over,
  };
}

test('a snapshot saved with a configuration is recovered with it, and restores only the state machine\'s bytes', () => {
  withDir((dir) => {
    const s = new NodeStorage(new NodeFileSystem(), dir);
    s.persist(ready({ entries: entries(1, 10) }));
    const meta = { index: 8, term: 1, config };
    s.saveSnapshot(meta, body);
    s.compactTo(meta);
    s.close();
    const again = new NodeStorage(new NodeFileSystem(), dir);
    const p = again.recover();
    assert.deepEqual(p.snapshot, meta);
    assert.deepEqual(new Uint8Array(again.readSnapshot(meta)), body);
    assert.deepEqual(p.entries.map((e) => e.index), [9, 10]);
    again.close();
  });
});

test('a snapshot without a configuration (written before membership changes) reads as before', () => {
  withDir((dir) => {
    const s = new NodeStorage(new NodeFileSystem(), dir);
    s.persist(ready({ entries: entries(1, 4) }));
    s.saveSnapshot({ index: 4, term: 1 }, body);
    s.close();
    const again = new NodeStorage(new NodeFileSystem(), dir);
    assert.deepEqual(again.recover().snapshot, { index: 4, term: 1 });
    assert.deepEqual(new Uint8Array(again.readSnapshot({ index: 4, term: 1 })), body);
    again.close();
  });
});

test('a follower stores the body as the leader sends it and recovers the configuration from it', () => {
  withDir((dir) => {
    const leader = new NodeStorage(new NodeFileSystem(), join(dir, 'leader'));
    leader.persist(ready({ entries: entries(1, 6) }));
    const meta = { index: 6, term: 1, config };
    leader.saveSnapshot(meta, body);
    const chunks = [];
    for (let pos = 0, done = false; !done;) {
      const c = leader.coreSnapshotReader(meta, pos, 7);
      assert.ok(c !== undefined);
      chunks.push({ snapshot: meta, offset: pos, data: c.data, done: c.done });
      pos += c.data.byteLength;
      done = c.done;
    }
    leader.close();
    const follower = new NodeStorage(new NodeFileSystem(), join(dir, 'follower'));
    follower.recover();
    follower.persist(ready({ snapshotChunks: chunks }));
    const { installed } = follower.persist(ready({ snapshot: meta }));
    assert.ok(installed !== null);
    assert.deepEqual(new Uint8Array(follower.readSnapshot(meta)), body);
    follower.close();
    const restarted = new NodeStorage(new NodeFileSystem(), join(dir, 'follower'));
    assert.deepEqual(restarted.recover().snapshot, meta);
    restarted.close();
  });
});

test('a configuration prefix that does not decode is refused as corruption', () => {
  withDir((dir) => {
    const s = new NodeStorage(new NodeFileSystem(), dir);
    s.persist(ready({ entries: entries(1, 3) }));
    // The magic, then a length past the end: written as the state machine's bytes of an old-style snapshot.
    const bogus = Uint8Array.from([0x51, 0x4c, 0x43, 0x46, 0xff, 0, 0, 0, 1, 2]);
    s.saveSnapshot({ index: 3, term: 1 }, bogus);
    s.close();
    const again = new NodeStorage(new NodeFileSystem(), dir);
    assert.throws(() => again.recover(), SnapshotConfigurationError);
    again.close();
  });
});

test('abandon() saves nothing more: neither the hard state held for the next sync nor a commit index held back by the lazy save', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'quorumlog-node-storage-'));
  try {
    let now = 0;
    const s = new NodeStorage(new NodeFileSystem(), dir, { now: () => now, commitSaveIntervalMs: 1000 });
    s.recover();
    assert.deepEqual(s.durableHardState, { term: 0, vote: null, commit: 0 });
    const a = nodeId('a');
    s.write(ready({ entries: entries(1, 3), hardState: { term: 1, vote: a, commit: 0 } }));
    // The log's fdatasync runs in the thread pool: the hard state is saved when it ends.
    assert.equal(await new Promise((resolve) => s.sync(resolve)), null);
    assert.deepEqual(s.durableHardState, { term: 1, vote: a, commit: 0 });
    // A commit-only change within the interval (on the injected clock) is held back.
    now = 10;
    s.persist(ready({ hardState: { term: 1, vote: a, commit: 2 } }));
    assert.deepEqual(s.durableHardState, { term: 1, vote: a, commit: 0 });
    // Written, not yet synced: held for the next sync.
    s.write(ready({ hardState: { term: 2, vote: null, commit: 2 } }));
    s.abandon();
    const again = new NodeStorage(new NodeFileSystem(), dir, { now: () => now, commitSaveIntervalMs: 1000 });
    assert.deepEqual(again.recover().hardState, { term: 1, vote: a, commit: 0 });
    assert.equal(again.currentSnapshot(), null);
    // close(), unlike abandon(), saves what was held back.
    again.persist(ready({ hardState: { term: 1, vote: a, commit: 3 } }));
    again.persist(ready({ hardState: { term: 1, vote: a, commit: 4 } }));
    assert.deepEqual(again.durableHardState, { term: 1, vote: a, commit: 3 });
    again.close();
    const third = new NodeStorage(new NodeFileSystem(), dir);
    assert.deepEqual(third.recover().hardState, { term: 1, vote: a, commit: 4 });
    third.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
