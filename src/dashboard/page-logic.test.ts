// The dashboard page's decisions (page-logic.ts, which the browser loads
// compiled): where it goes when its node dies, when it decides that, which
// member relays a control, what travels with it, and the timeline's bars and
// count.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  controlRoute, dashboardUrl, decodeCarry, encodeCarry, isUp, leaderBars, leaderChangesSince, streamLost, switchCandidates,
  STREAM_LOST_AFTER_MS, type MemberLike,
} from './page-logic.js';

const m = (id: string, role: string, process: string | null = 'running'): MemberLike => ({ id, metrics: `127.0.0.1:${2578 + Number(id.slice(1))}`, role, process });

test('up: answered the last poll and its process (when known) runs', () => {
  assert.equal(isUp(m('n1', 'follower')), true);
  assert.equal(isUp(m('n1', 'leader', null)), true);
  assert.equal(isUp(m('n1', 'down')), false);
  assert.equal(isUp(m('n1', 'follower', 'paused')), false, 'paused since the last poll');
  assert.equal(isUp(m('n1', 'follower', 'killed')), false);
});

test('switch candidates: never the dead server, the members that answered first, in the configuration\'s order', () => {
  const members = [m('n1', 'down', 'killed'), m('n2', 'follower', 'paused'), m('n3', 'leader'), m('n4', 'follower'), m('n5', 'down')];
  assert.deepEqual(switchCandidates(members, 'n3').map((x) => x.id), ['n4', 'n1', 'n2', 'n5']);
  assert.deepEqual(switchCandidates(members, 'n4').map((x) => x.id), ['n3', 'n1', 'n2', 'n5']);
  assert.deepEqual(switchCandidates([m('n1', 'leader')], 'n1'), [], 'alone: nowhere to go');
});

test('the stream counts as lost after the grace period of silence, not before', () => {
  assert.equal(streamLost(10_000, 10_000 + STREAM_LOST_AFTER_MS - 1), false);
  assert.equal(streamLost(10_000, 10_000 + STREAM_LOST_AFTER_MS), true);
  assert.equal(streamLost(10_000, 10_500, 400), true);
});

test('a control aimed at the serving node, or sent while its stream is down, goes through another member that is up; any other through the serving node', () => {
  const members = [m('n1', 'down', 'killed'), m('n2', 'follower'), m('n3', 'leader')];
  assert.deepEqual(controlRoute('n3', 'n3', members), { kind: 'via', member: members[1] }, 'kill the leader from its own page: through n2');
  assert.deepEqual(controlRoute('n1', 'n3', members), { kind: 'self' });
  assert.deepEqual(controlRoute('n2', 'n3', members), { kind: 'self' });
  assert.deepEqual(controlRoute('n3', 'n3', [m('n1', 'down'), m('n3', 'leader')]), { kind: 'self' }, 'no other member up: the serving node itself');
  // The page's own node is restarting (its stream is down): nothing goes through it, nor through the target if it can be helped.
  assert.deepEqual(controlRoute('n1', 'n3', members, false), { kind: 'via', member: members[1] });
  assert.deepEqual(controlRoute('n2', 'n3', members, false), { kind: 'self' }, 'only the target is up besides: no better relay than the serving node');
});

test('what the page carries to the next member survives the URL fragment, and anything else reads as nothing', () => {
  const c = { from: 'n3', at: 1_795_730_672_767, note: 'kill n3: done (through n1, since n3 serves this page) & more #?=' };
  assert.deepEqual(decodeCarry(`#${encodeCarry(c)}`), c);
  assert.deepEqual(decodeCarry(encodeCarry({ from: 'n2', at: 5, note: null })), { from: 'n2', at: 5, note: null });
  for (const h of ['', '#', '#from=&at=5', '#from=n1', '#from=n1&at=soon', '#at=5']) assert.equal(decodeCarry(h), null, h);
  const url = dashboardUrl(m('n2', 'follower'), c);
  assert.ok(url.startsWith('http://127.0.0.1:2580/dashboard#'), url);
  assert.deepEqual(decodeCarry(new URL(url).hash), c);
  assert.equal(dashboardUrl(m('n2', 'follower'), null), 'http://127.0.0.1:2580/dashboard');
});

test('timeline bars: each leader from its first report to the first sign of a later term; the last one to now', () => {
  const terms = [{ term: 5, leader: 'n3', at: 5000 }, { term: 1, leader: 'n3', at: 1000 }, { term: 2, leader: 'n1', at: 2000 }];
  // n2 started an election in term 4 at 4500 (term 3 had no leader), before n3 won term 5.
  const events = [{ at: 1900, term: 2 }, { at: 4500, term: 4 }, { at: 4000, term: 2 }];
  assert.deepEqual(leaderBars(terms, events, 9000), [
    { term: 1, leader: 'n3', from: 1000, to: 1900 },
    { term: 2, leader: 'n1', from: 2000, to: 4500 },
    { term: 5, leader: 'n3', from: 5000, to: 9000 },
  ]);
  // A later-term event stamped before the bar's start (clocks of two nodes) never makes a bar run backwards.
  assert.deepEqual(leaderBars([{ term: 1, leader: 'n1', at: 100 }], [{ at: 90, term: 2 }], 500), [{ term: 1, leader: 'n1', from: 100, to: 100 }]);
});

test('leader changes: the leaders that took office in the window, the first included', () => {
  const terms = [{ term: 1, leader: 'n3', at: 1000 }, { term: 2, leader: 'n1', at: 2000 }, { term: 5, leader: 'n3', at: 5000 }];
  assert.equal(leaderChangesSince(terms, 0), 3);
  assert.equal(leaderChangesSince(terms, 2000), 2);
  assert.equal(leaderChangesSince(terms, 6000), 0);
});
