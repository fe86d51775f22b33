// Unit tests for RaftLog: appends, conflicts, truncation bounds, compaction,
// and the two divergence helpers (push's conflict hint, pull's endOffsetForTerm).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Configuration, Entry } from '../protocol/entry.js';
import { nodeId } from '../protocol/ids.js';
import { AssertionError } from '../util/assert.js';
import { RaftLog } from './log.js';

const BOOT: Configuration = { voters: [nodeId('a')], observers: [] };

function entries(terms: number[], from = 1): Entry[] {
  return terms.map((term, i) => ({ index: from + i, term, type: 'data', data: new Uint8Array([i]) }));
}

test('append keeps indexes consecutive and terms non-decreasing', () => {
  const log = new RaftLog({ index: 0, term: 0 }, [], 0, BOOT);
  log.append(entries([1, 1, 2]));
  assert.equal(log.lastIndex(), 3);
  assert.equal(log.lastTerm(), 2);
  assert.throws(() => log.append(entries([1], 4)), AssertionError);
  assert.throws(() => log.append(entries([2], 6)), AssertionError);
});

test('appendFromLeader keeps matching entries and cuts at the first conflict', () => {
  const log = new RaftLog({ index: 0, term: 0 }, entries([1, 1, 1, 1]), 0, BOOT);
  const last = log.appendFromLeader(entries([1, 2, 2], 2), 1);
  assert.equal(last, 4);
  assert.deepEqual([1, 2, 3, 4].map((i) => log.term(i)), [1, 1, 2, 2]);
});

test('truncation never cuts a committed entry', () => {
  const log = new RaftLog({ index: 0, term: 0 }, entries([1, 1, 1]), 2, BOOT);
  assert.throws(() => log.truncateFrom(2), AssertionError);
  log.truncateFrom(3);
  assert.equal(log.lastIndex(), 2);
});

test('findConflictByTerm skips a whole term', () => {
  const log = new RaftLog({ index: 0, term: 0 }, entries([1, 1, 3, 3, 3]), 0, BOOT);
  assert.deepEqual(log.findConflictByTerm(5, 2), { index: 2, term: 1 });
  assert.deepEqual(log.findConflictByTerm(5, 3), { index: 5, term: 3 });
  assert.deepEqual(log.findConflictByTerm(5, 0), { index: 0, term: 0 });
});

test('endOffsetForTerm finds the end of the largest term not above the asked one', () => {
  const log = new RaftLog({ index: 0, term: 0 }, entries([1, 1, 3, 3, 5]), 0, BOOT);
  assert.deepEqual(log.endOffsetForTerm(4), { term: 3, endOffset: 5 });
  assert.deepEqual(log.endOffsetForTerm(2), { term: 1, endOffset: 3 });
  assert.deepEqual(log.endOffsetForTerm(0), { term: 0, endOffset: 1 });
  assert.deepEqual(log.endOffsetForTerm(9), { term: 5, endOffset: 6 });
});

test('compaction drops the prefix and keeps terms answerable at the snapshot', () => {
  const log = new RaftLog({ index: 0, term: 0 }, entries([1, 1, 2, 2]), 3, BOOT);
  log.appliedTo(3);
  const meta = log.compact(3);
  assert.deepEqual(meta, { index: 3, term: 2, config: BOOT }, 'the snapshot carries the configuration in force');
  assert.equal(log.term(3), 2);
  assert.equal(log.term(2), undefined);
  assert.equal(log.firstIndex(), 4);
  assert.throws(() => log.compact(4), AssertionError); // beyond applied
  assert.equal(log.endOffsetForTerm(1), undefined); // inside the snapshot
});

test('restore replaces a conflicting log and keeps a matching suffix', () => {
  const a = new RaftLog({ index: 0, term: 0 }, entries([1, 1, 2, 2]), 1, BOOT);
  a.restore({ index: 3, term: 2 });
  assert.equal(a.lastIndex(), 4);
  assert.equal(a.commit, 3);
  const b = new RaftLog({ index: 0, term: 0 }, entries([1, 1, 1, 1]), 1, BOOT);
  b.restore({ index: 3, term: 2 });
  assert.equal(b.lastIndex(), 3);
  assert.equal(b.lastTerm(), 2);
});

test('the configuration in force is the latest in the log, and falls back when a truncation cuts it', () => {
  const c1: Configuration = { voters: [nodeId('a')], observers: [nodeId('b')] };
  const c2: Configuration = { voters: [nodeId('a'), nodeId('b')], observers: [] };
  const log = new RaftLog({ index: 0, term: 0 }, entries([1, 1]), 0, BOOT);
  assert.deepEqual(log.configuration(), { index: 0, config: BOOT });
  log.append([{ index: 3, term: 1, type: 'config', config: c1, data: new Uint8Array(0) }]);
  log.append([{ index: 4, term: 2, type: 'data', data: new Uint8Array(0) }]);
  log.append([{ index: 5, term: 2, type: 'config', config: c2, data: new Uint8Array(0) }]);
  assert.deepEqual(log.configuration(), { index: 5, config: c2 });
  assert.deepEqual(log.configurationAt(4), { index: 3, config: c1 });
  const version = log.configVersion;
  log.truncateFrom(5);
  assert.deepEqual(log.configuration(), { index: 3, config: c1 }, 'back to the previous configuration');
  assert.ok(log.configVersion > version);
  log.commitTo(4);
  log.takeUnstable();
  log.stableTo(4, 2);
  log.appliedTo(4);
  const meta = log.compact(4);
  assert.deepEqual(meta, { index: 4, term: 2, config: c1 }, 'the snapshot carries the configuration in force at its index');
  assert.deepEqual(log.configuration(), { index: 4, config: c1 });
  log.checkInvariants();
});
