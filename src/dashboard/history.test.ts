// The leaders-by-term history behind the elections timeline: merging by
// term (earliest report wins the time, the first report the leader), what a
// node's own events name, the check of histories from elsewhere, and the
// file that carries a node's history over its restart.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  LEADER_HISTORY_FILE, LeaderHistory, LeaderHistoryFormatError, leaderTermsFromEvents, mergeLeaderTerms, parseLeaderTerms,
} from './history.js';

test('merging by term: one entry per term, ascending, the earliest report of each, whatever the order of the lists', () => {
  // Four leaders in a row, as three nodes reported them: n3 only knows the terms after its restart, n1 died after term 2.
  const n1 = [{ term: 1, leader: 'n3', at: 1010 }, { term: 2, leader: 'n1', at: 2000 }];
  const n2 = [{ term: 1, leader: 'n3', at: 1005 }, { term: 2, leader: 'n1', at: 2004 }, { term: 3, leader: 'n2', at: 3000 }, { term: 5, leader: 'n3', at: 5010 }];
  const n3 = [{ term: 5, leader: 'n3', at: 5000 }, { term: 3, leader: 'n2', at: 3020 }];
  const want = [
    { term: 1, leader: 'n3', at: 1005 }, { term: 2, leader: 'n1', at: 2000 }, { term: 3, leader: 'n2', at: 3000 }, { term: 5, leader: 'n3', at: 5000 },
  ];
  for (const lists of [[n1, n2, n3], [n3, n2, n1], [n2, n3, n1]]) {
    const r = mergeLeaderTerms(lists);
    assert.deepEqual(r.terms, want);
    assert.deepEqual(r.conflicts, []);
  }
  assert.deepEqual(n3[0], { term: 5, leader: 'n3', at: 5000 }, 'inputs untouched');
});

test('two leaders reported for one term: the first list\'s is kept and the conflict reported', () => {
  const r = mergeLeaderTerms([[{ term: 4, leader: 'n1', at: 10 }], [{ term: 4, leader: 'n2', at: 5 }]]);
  assert.deepEqual(r.terms, [{ term: 4, leader: 'n1', at: 10 }]);
  assert.deepEqual(r.conflicts, [{ term: 4, kept: 'n1', other: 'n2' }]);
});

test('merging keeps the newest terms only, up to the bound', () => {
  const many = Array.from({ length: 20 }, (_, i) => ({ term: i + 1, leader: 'n1', at: i }));
  assert.deepEqual(mergeLeaderTerms([many], 5).terms.map((t) => t.term), [16, 17, 18, 19, 20]);
});

test('a node\'s own events name the leader of each term it saw, first sighting first; events without a leader name none', () => {
  const events = [
    { at: 100, term: 1, leader: null, role: 'follower' },
    { at: 200, term: 1, leader: 'n2', role: 'follower' },
    { at: 900, term: 2, leader: null, role: 'candidate' },
    { at: 950, term: 2, leader: 'n1', role: 'leader' },
    { at: 990, term: 2, leader: 'n1', role: 'leader' },
  ];
  assert.deepEqual(leaderTermsFromEvents(events), [{ term: 1, leader: 'n2', at: 200 }, { term: 2, leader: 'n1', at: 950 }]);
});

test('a history from elsewhere is checked item by item, and the error names where it came from', () => {
  assert.deepEqual(parseLeaderTerms([{ term: 2, leader: 'n1', at: 5 }], 'n2'), [{ term: 2, leader: 'n1', at: 5 }]);
  const bad: [unknown, RegExp][] = [
    [{ term: 1 }, /n2.*not a list/],
    [[{ term: -1, leader: 'n1', at: 1 }], /item 0: bad term/],
    [[{ term: 1, leader: 'n1', at: 1 }, { term: 1.5, leader: 'n1', at: 1 }], /item 1: bad term/],
    [[{ term: 1, leader: '', at: 1 }], /bad leader/],
    [[{ term: 1, leader: 'n1', at: 'yesterday' }], /bad time/],
    [[null], /item 0 is not an object/],
    [Array.from({ length: 10_000 }, () => ({ term: 1, leader: 'n1', at: 1 })), /more than/],
  ];
  for (const [value, message] of bad) {
    assert.throws(() => parseLeaderTerms(value, 'n2'), (e: unknown) => e instanceof LeaderHistoryFormatError && message.test(e.message));
  }
});

test('the history file carries a node\'s leaders over its restart; a malformed file is ignored and rewritten', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ql-leaders-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, LEADER_HISTORY_FILE);
  const before = new LeaderHistory(file, null);
  assert.deepEqual(before.list(), [], 'no file yet: empty');
  assert.equal(before.add([{ term: 1, leader: 'n3', at: 10 }]), true);
  assert.equal(before.add([{ term: 2, leader: 'n1', at: 20 }, { term: 1, leader: 'n3', at: 15 }]), true);
  assert.equal(before.add([{ term: 2, leader: 'n1', at: 25 }]), false, 'nothing new');
  assert.equal(before.add([{ term: 2, leader: 'n2', at: 5 }], 'n2'), false, 'a conflicting report changes nothing');
  assert.equal(before.conflicts, 1);
  await before.flushed();
  // The node restarts: a new history on the same file.
  const after = new LeaderHistory(file, null);
  assert.deepEqual(after.list(), [{ term: 1, leader: 'n3', at: 10 }, { term: 2, leader: 'n1', at: 20 }]);
  writeFileSync(file, '{"not": "a list"}');
  const broken = new LeaderHistory(file, null);
  assert.deepEqual(broken.list(), []);
  assert.equal(broken.rejected, 1);
  broken.add([{ term: 7, leader: 'n2', at: 70 }]);
  await broken.flushed();
  assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), [{ term: 7, leader: 'n2', at: 70 }]);
});

test('a history that cannot be written stays in memory and counts the failure', async () => {
  const h = new LeaderHistory(join(tmpdir(), 'ql-no-such-dir-for-leaders', 'x', LEADER_HISTORY_FILE), null);
  h.add([{ term: 1, leader: 'n1', at: 1 }]);
  await h.flushed();
  assert.equal(h.writeFailures, 1);
  assert.deepEqual(h.list(), [{ term: 1, leader: 'n1', at: 1 }]);
});
