// Scenario tests for pull replication's KRaft behaviours: Diverging and
// truncation, long-poll fetches (parked, woken by new entries or by a moved
// commit index, answered empty at maxWait), no busy polling when idle, the
// fetch-timeout election, leader resignation without fetches, and
// BeginQuorumEpoch. Observers (never vote, never count) run in both modes.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { FetchResponse, Message } from '../../src/protocol/messages.js';
import { Cluster, MODES, entriesOf } from './harness.js';

/** Queued fetch answers addressed to `to`. */
function answersTo(c: Cluster, to: string): FetchResponse[] {
  return c.queue.filter((m): m is FetchResponse => m.type === 'fetchResponse' && m.to === to);
}

/** A pull cluster of `voters` with an elected, idle n1 (every follower's fetch parked). */
function idlePull(voters: number, observers = 0): Cluster {
  const c = new Cluster({ mode: 'pull', voters, observers });
  c.elect('n1');
  c.run(10);
  return c;
}

describe('KRaft: Diverging', () => {
  test('a follower with a divergent tail gets Diverging and truncates, never below its commit', () => {
    const c = new Cluster({ mode: 'pull', voters: 3 });
    c.elect('n1');
    c.propose('n1', 'a', 'b');
    c.run(3);
    assert.equal(c.core('n1').log.commit, 3);
    c.isolate('n1');
    c.propose('n1', 'x1', 'x2', 'x3', 'x4', 'x5'); // indexes 4..8, term 1, only on n1
    c.deliverAll();
    assert.ok(c.forceCampaign('n2'));
    c.propose('n2', 'c'); // n2: no-op at 4 and c at 5, term 2
    c.deliverAll();
    const committedPrefix = [1, 2, 3].map((i) => c.core('n1').log.term(i));
    let commit = c.core('n1').log.commit;
    const before = c.sent.length;
    c.heal();
    const isDiverging = (m: Message): boolean => m.type === 'fetchResponse' && m.to === 'n1' && m.result.kind === 'diverging';
    for (let round = 0; round < 40 && c.core('n1').log.lastTerm() !== 2; round++) {
      c.tickAll();
      for (let pass = 0; pass < 1000 && c.queue.length > 0; pass++) {
        if (c.queue.some(isDiverging)) {
          c.deliver(isDiverging);
          assert.equal(c.core('n1').log.lastIndex(), 3, 'the Diverging answer truncated n1 to the end of term 1 on the leader');
        }
        c.deliver();
      }
      const log = c.core('n1').log;
      assert.ok(log.commit >= commit, `n1's commit went back from ${commit} to ${log.commit}`);
      commit = log.commit;
      assert.deepEqual([1, 2, 3].map((i) => log.term(i)), committedPrefix, 'the committed prefix is untouched');
    }
    const diverging = c.sent.slice(before).map((s) => s.msg)
      .filter((m) => m.type === 'fetchResponse' && m.to === 'n1' && m.result.kind === 'diverging');
    assert.equal(diverging.length, 1, 'one Diverging answer');
    assert.deepEqual((diverging[0] as FetchResponse).result, { kind: 'diverging', divergingTerm: 1, endOffset: 4 });
    c.run(5);
    assert.equal(c.core('n1').log.lastIndex(), 5);
    assert.equal(c.core('n1').log.term(4), 2);
    for (const id of c.voterIds) assert.deepEqual(c.applied(id), ['a', 'b', 'c']);
  });
});

describe('KRaft: long-poll fetch', () => {
  test('a fetch with nothing new is parked, and answered at once when an entry is proposed', () => {
    const c = idlePull(3);
    assert.equal(c.queue.length, 0, 'the idle followers\' fetches are parked, unanswered');
    const now = c.core('n1').now;
    c.propose('n1', 'a');
    assert.equal(c.core('n1').now, now, 'no tick was needed');
    for (const f of ['n2', 'n3']) {
      const answers = answersTo(c, f);
      assert.equal(answers.length, 1);
      assert.deepEqual(entriesOf(answers[0] as Message).map((e) => e.index), [c.core('n1').log.lastIndex()]);
    }
  });

  test('a parked fetch is answered when only the commit index moves', () => {
    const c = idlePull(5);
    c.propose('n1', 'a'); // index 2; needs n1 and two followers
    c.deliver((m) => m.type === 'fetchResponse' && ['n2', 'n3', 'n4'].includes(m.to));
    assert.equal(c.core('n4').log.lastIndex(), 2);
    c.deliver((m) => m.type === 'fetch' && m.from === 'n4'); // acknowledges 2: two of five
    assert.equal(c.core('n1').log.commit, 1);
    assert.equal(answersTo(c, 'n4').length, 0, 'n4\'s fetch has nothing new: parked');
    c.deliver((m) => m.type === 'fetch' && m.from === 'n3'); // three of five: 2 commits
    assert.equal(c.core('n1').log.commit, 2);
    const woken = answersTo(c, 'n4');
    assert.equal(woken.length, 1, 'the parked fetch is answered at once');
    assert.deepEqual((woken[0] as FetchResponse).result, { kind: 'entries', entries: [], commit: 2 });
    c.deliverAll();
    assert.deepEqual(c.applied('n4'), ['a']);
  });

  test('a parked fetch is answered empty at maxWait', () => {
    const c = idlePull(3);
    const maxWait = c.core('n1').config.fetchMaxWaitTicks;
    // Line both fetches up: answer whatever is parked, let the followers fetch again.
    while (c.queue.length === 0) c.tick('n1');
    c.deliverAll();
    assert.equal(c.queue.length, 0);
    for (let t = 1; t < maxWait; t++) {
      c.tick('n1');
      assert.equal(c.queue.length, 0, `no answer after ${t} ticks`);
    }
    c.tick('n1');
    for (const f of ['n2', 'n3']) {
      assert.deepEqual(answersTo(c, f).map((m) => m.result), [{ kind: 'entries', entries: [], commit: c.core('n1').log.commit }]);
    }
  });

  test('an idle cluster sends a bounded number of messages per tick (no busy polling)', () => {
    const c = idlePull(3);
    const rounds = 100;
    const since = c.ticks + 1;
    const maxWait = c.core('n1').config.fetchMaxWaitTicks;
    c.run(rounds);
    const total = c.countSent(() => true, since);
    const bound = 2 * 2 * Math.ceil(rounds / maxWait) + 4; // one fetch and one answer per follower per maxWait
    assert.ok(total <= bound, `${total} messages in ${rounds} idle ticks (bound ${bound})`);
    for (let t = since; t < since + rounds; t++) {
      assert.ok(c.sent.filter((s) => s.tick === t).length <= 4, `tick ${t} sent at most one round trip per follower`);
    }
    assert.equal(c.countSent((m) => m.type === 'beginQuorumEpoch', since), 0);
  });
});

describe('KRaft: failure detection', () => {
  test('followers elect a new leader once their fetches stop completing', () => {
    const c = idlePull(3);
    c.run(60);
    const term = c.core('n1').term;
    assert.equal(c.core('n2').stats.electionsStarted + c.core('n3').stats.electionsStarted, 0, 'no election while fetches complete');
    c.isolate('n1');
    const max = c.core('n2').config.electionTimeoutMaxTicks;
    const newLeader = (): boolean => ['n2', 'n3'].some((id) => c.core(id).role.kind === 'leader');
    const took = c.runUntil(newLeader, max + 2, 'a new leader among n2, n3');
    assert.ok(took <= max + 1, `took ${took} ticks`);
    assert.ok(c.core(c.leader() as string).term > term);
  });

  test('a leader that hears no fetches from a majority for 1.5 x electionTimeoutMin resigns', () => {
    const c = idlePull(3);
    c.isolate('n1');
    const { electionTimeoutMinTicks: min, fetchMaxWaitTicks: maxWait } = c.core('n1').config;
    const resignAfter = Math.floor(1.5 * min);
    let ticks = 0;
    while (c.core('n1').role.kind === 'leader') {
      assert.ok(ticks < resignAfter, `still leading after ${ticks} ticks without fetches`);
      c.tick('n1');
      ticks++;
    }
    assert.ok(ticks >= resignAfter - maxWait, `resigned after ${ticks} ticks, too early`);
    assert.equal(c.core('n1').leaderId(), null);
  });

  test('BeginQuorumEpoch makes the followers start fetching, and is repeated until they do', () => {
    const c = new Cluster({ mode: 'pull', voters: 3 });
    const release = c.addDropRule((m) => m.type === 'beginQuorumEpoch');
    c.elect('n1');
    c.tick('n2', 3);
    c.tick('n3', 3);
    c.deliverAll();
    assert.equal(c.countSent((m) => m.type === 'fetch'), 0, 'voting alone does not tell who leads');
    assert.equal(c.core('n2').leaderId(), null);
    release();
    c.tick('n1', c.core('n1').config.heartbeatIntervalTicks);
    assert.deepEqual(c.queue.filter((m) => m.type === 'beginQuorumEpoch').map((m) => m.to).sort(), ['n2', 'n3']);
    c.deliver((m) => m.type === 'beginQuorumEpoch');
    assert.deepEqual(c.queue.filter((m) => m.type === 'fetch').map((m) => `${m.from}>${m.to}`).sort(), ['n2>n1', 'n3>n1']);
    c.deliverAll();
    c.propose('n1', 'a');
    c.run(3);
    for (const id of c.voterIds) assert.deepEqual(c.applied(id), ['a']);
  });
});

for (const mode of MODES) {
  describe(`observers [${mode}]`, () => {
    test('observers receive the log, never vote, and never count toward commit', () => {
      const c = new Cluster({ mode, voters: 3, observers: 2 });
      c.elect('n1');
      c.propose('n1', 'a');
      c.run(8);
      for (const id of c.nodes.keys()) assert.deepEqual(c.applied(id), ['a'], `${id} applied`);
      c.partition(['n1', 'o1', 'o2'], ['n2', 'n3']);
      const commit = c.core('n1').log.commit;
      c.propose('n1', 'b');
      c.run(3);
      for (const o of c.observerIds) {
        assert.equal(c.core(o).log.lastIndex(), c.core('n1').log.lastIndex(), `${o} received b`);
      }
      assert.equal(c.core('n1').log.commit, commit, 'two observers and the leader are not a majority');
      assert.deepEqual(c.applied('o1'), ['a']);
      c.heal();
      c.run(10);
      for (const id of c.nodes.keys()) assert.deepEqual(c.applied(id), ['a', 'b'], `${id} applied after healing`);
      // The leader dies: the observers sit out the election and follow the winner.
      c.crash('n1');
      c.runUntil(() => c.leader() !== null, 100, 'a new leader');
      const leader = c.leader() as string;
      c.propose(leader, 'c');
      c.runUntil(() => c.observerIds.every((o) => c.applied(o).length === 3), 60, 'observers follow the new leader');
      for (const o of c.observerIds) {
        assert.equal(c.core(o).role.kind, 'observer');
        assert.equal(c.core(o).stats.electionsStarted, 0);
        assert.deepEqual(c.applied(o), ['a', 'b', 'c']);
      }
      const fromObservers = c.countSent((m) => (m.type === 'vote' || m.type === 'voteResponse') && m.from.startsWith('o'));
      assert.equal(fromObservers, 0, 'observers never ask for or cast a vote');
      assert.equal(c.countSent((m) => m.type === 'vote' && m.to.startsWith('o')), 0, 'nobody asks an observer to vote');
    });
  });
}
