// Scenario tests for snapshot transfer (Raft section 7) in both modes: a
// follower behind the leader's compacted log start receives the snapshot in
// several chunks (push: InstallSnapshot; pull: the fetch answer names the
// snapshot, then FetchSnapshot), resumes at the right byte position after a
// lost chunk, and then continues with entries; the result survives a restart.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Message } from '../../src/protocol/messages.js';
import { Cluster, MODES } from './harness.js';

const CHUNK_BYTES = 64;
const PAD_BYTES = 400;

/** n1 leads, n3 was cut off while 20 entries committed, and n1 and n2 compacted them away. */
function laggingBehindSnapshot(mode: 'push' | 'pull'): { c: Cluster; expected: string[] } {
  const c = new Cluster({ mode, voters: 3, config: { snapshotChunkBytes: CHUNK_BYTES }, snapshotPadBytes: PAD_BYTES });
  c.elect('n1');
  c.run(3);
  c.isolate('n3');
  const expected = Array.from({ length: 20 }, (_, i) => `s${i}`);
  c.propose('n1', ...expected);
  c.run(3);
  assert.deepEqual(c.applied('n2'), expected);
  const at = c.compact('n1');
  c.compact('n2');
  assert.equal(c.core('n1').log.firstIndex(), at + 1);
  assert.ok(c.core('n3').log.lastIndex() < at, 'n3 is behind the log start');
  return { c, expected };
}

/** The snapshot chunks sent to n3 since `since` (sent index), with their byte positions. */
function chunksToN3(c: Cluster, since: number): Array<{ position: number; bytes: number; msg: Message }> {
  const out: Array<{ position: number; bytes: number; msg: Message }> = [];
  for (const { msg } of c.sent.slice(since)) {
    if (msg.to !== 'n3') continue;
    if (msg.type === 'installSnapshot') out.push({ position: msg.offset, bytes: msg.data.byteLength, msg });
    if (msg.type === 'fetchSnapshotResponse') out.push({ position: msg.position, bytes: msg.data.byteLength, msg });
  }
  return out;
}

for (const mode of MODES) {
  describe(`snapshot transfer [${mode}]`, () => {
    test('a follower behind the compacted log start gets the snapshot in chunks, then entries', () => {
      const { c, expected } = laggingBehindSnapshot(mode);
      const since = c.sent.length;
      c.heal();
      c.runUntil(() => c.applied('n3').length === expected.length, 80, 'n3 restored from the snapshot');
      assert.deepEqual(c.applied('n3'), expected);
      const leaderSnap = c.node('n1').disk.snapshot;
      assert.deepEqual(c.node('n3').disk.snapshot?.meta, leaderSnap?.meta, 'n3 holds the leader\'s snapshot');
      assert.deepEqual(c.node('n3').disk.snapshot?.data, leaderSnap?.data, 'byte for byte');
      const chunks = chunksToN3(c, since);
      const size = leaderSnap?.data.byteLength ?? 0;
      assert.ok(size > 3 * CHUNK_BYTES);
      assert.equal(chunks.length, Math.ceil(size / CHUNK_BYTES), 'one message per chunk, none repeated');
      assert.deepEqual(chunks.map((ch) => ch.position), chunks.map((_, i) => i * CHUNK_BYTES), 'in order');
      if (mode === 'pull') {
        const named = c.sent.slice(since).filter(({ msg }) => msg.type === 'fetchResponse' && msg.to === 'n3' && msg.result.kind === 'snapshot');
        assert.equal(named.length, 1, 'the fetch answer named the snapshot once');
        assert.equal(c.countSent((m) => m.type === 'fetchSnapshot' && m.from === 'n3'), chunks.length);
      }
      c.propose('n1', 'after');
      c.run(5);
      assert.deepEqual(c.applied('n3'), [...expected, 'after'], 'entries follow the snapshot');
      assert.ok(c.core('n3').log.lastIndex() > (leaderSnap?.meta.index ?? 0));
      c.crash('n3');
      c.restart('n3');
      c.run(5);
      assert.deepEqual(c.applied('n3'), [...expected, 'after'], 'snapshot and entries survive a restart');
    });

    test('a lost chunk is sent again from the same byte position, not from the start', () => {
      const { c, expected } = laggingBehindSnapshot(mode);
      const since = c.sent.length;
      let seen = 0;
      let lost: number | null = null;
      c.addDropRule((m) => {
        const position = m.type === 'installSnapshot' ? m.offset : m.type === 'fetchSnapshotResponse' ? m.position : null;
        if (position === null || m.to !== 'n3' || lost !== null || ++seen !== 3) return false;
        lost = position;
        return true;
      });
      c.heal();
      c.runUntil(() => c.applied('n3').length === expected.length, 80, 'n3 restored from the snapshot');
      assert.equal(lost, 2 * CHUNK_BYTES, 'the third chunk was lost');
      const positions = chunksToN3(c, since).map((ch) => ch.position);
      assert.deepEqual(positions.slice(0, 4), [0, CHUNK_BYTES, 2 * CHUNK_BYTES, 2 * CHUNK_BYTES], 'resumed at the lost chunk');
      assert.equal(new Set(positions).size, positions.length - 1, 'only the lost chunk travelled twice');
      if (mode === 'pull') {
        const asked = c.sent.slice(since).flatMap(({ msg }) => (msg.type === 'fetchSnapshot' ? [msg.position] : []));
        assert.deepEqual(asked.slice(0, 4), [0, CHUNK_BYTES, 2 * CHUNK_BYTES, 2 * CHUNK_BYTES], 'the follower asked again for the same position');
      }
      assert.deepEqual(c.node('n3').disk.snapshot?.data, c.node('n1').disk.snapshot?.data);
      c.propose('n1', 'after');
      c.run(5);
      assert.deepEqual(c.applied('n3'), [...expected, 'after']);
    });

    test('a snapshot replaced during the transfer: the follower ends with the newer one', () => {
      const { c, expected } = laggingBehindSnapshot(mode);
      const since = c.sent.length;
      c.heal();
      while (chunksToN3(c, since).length < 2) if (c.deliver() === 0) c.tickAll();
      c.isolate('n3');
      c.deliverAll(); // the transfer stalls part-way
      const more = ['m0', 'm1', 'm2'];
      c.propose('n1', ...more);
      c.run(3);
      const old = c.node('n1').disk.snapshot?.meta;
      c.compact('n1');
      c.compact('n2');
      const fresh = c.node('n1').disk.snapshot?.meta;
      assert.ok(fresh !== undefined && old !== undefined && fresh.index > old.index);
      c.heal();
      c.runUntil(() => c.applied('n3').length === expected.length + more.length, 100, 'n3 restored from the newer snapshot');
      assert.deepEqual(c.applied('n3'), [...expected, ...more]);
      assert.deepEqual(c.node('n3').disk.snapshot?.meta, fresh);
      assert.deepEqual(c.node('n3').disk.snapshot?.data, c.node('n1').disk.snapshot?.data);
    });
  });
}
