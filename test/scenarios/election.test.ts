// Scenario tests for Raft section 5.2 (leader election) and the election
// extensions the core implements: the up-to-date check (5.4.1), pre-vote,
// check-quorum, leader transfer, and NotLeaderError's leader hint. Each runs
// in both replication modes unless it is about one mode's rule.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { LeaderTransferInProgressError, NotLeaderError } from '../../src/core/errors.js';
import type { RoleKind } from '../../src/core/roles.js';
import { Cluster, MODES } from './harness.js';

/** Ticks `id` alone until it holds `role` (at most an election timeout and a bit). */
function tickUntilRole(c: Cluster, id: string, role: RoleKind): void {
  for (let i = 0; c.core(id).role.kind !== role; i++) {
    assert.ok(i <= c.core(id).config.electionTimeoutMaxTicks, `${id} never became ${role}`);
    c.tick(id);
  }
}

for (const mode of MODES) {
  describe(`5.2 leader election [${mode}]`, () => {
    test('a leader is elected from a cold start, and stays while the network is healthy', () => {
      const c = new Cluster({ mode, voters: 3 });
      c.runUntil(() => c.leader() !== null, 60, 'a leader');
      c.run(5);
      const leader = c.leader();
      assert.notEqual(leader, null);
      const term = c.core(leader as string).term;
      assert.equal(c.leaders().length, 1);
      for (const id of c.voterIds) {
        assert.equal(c.core(id).term, term, `${id} is in the leader's term`);
        assert.equal(c.core(id).leaderId(), leader, `${id} knows the leader`);
        assert.ok(c.core(id).log.commit >= 1, `${id} learned that the leader's no-op committed`);
      }
      const elections = c.voterIds.reduce((s, id) => s + c.core(id).stats.electionsStarted, 0);
      c.run(100);
      assert.equal(c.leader(), leader, 'no other leader while the leader is healthy');
      assert.equal(c.core(leader as string).term, term, 'the term does not move');
      assert.equal(c.voterIds.reduce((s, id) => s + c.core(id).stats.electionsStarted, 0), elections, 'no election started');
    });

    test('a split vote resolves in a later term', () => {
      const c = new Cluster({ mode, voters: 4 });
      // n1 and n2 time out together; both pass the pre-vote (when on) and campaign in term 1.
      tickUntilRole(c, 'n1', c.core('n1').config.preVote ? 'preCandidate' : 'candidate');
      tickUntilRole(c, 'n2', c.core('n2').config.preVote ? 'preCandidate' : 'candidate');
      c.deliverAll((m) => (m.type === 'vote' || m.type === 'voteResponse') && m.preVote);
      assert.equal(c.core('n1').role.kind, 'candidate');
      assert.equal(c.core('n2').role.kind, 'candidate');
      // n3 hears n1 first and n4 hears n2 first: two votes each, three needed.
      c.deliver((m) => m.type === 'vote' && ((m.from === 'n1' && m.to === 'n3') || (m.from === 'n2' && m.to === 'n4')));
      c.deliverAll();
      assert.equal(c.leader(), null, 'nobody wins the split term');
      assert.equal(c.core('n1').term, 1);
      assert.equal(c.core('n2').term, 1);
      assert.equal(c.core('n3').vote, 'n1');
      assert.equal(c.core('n4').vote, 'n2');
      c.runUntil(() => c.leader() !== null, 100, 'a leader after the split vote');
      c.run(5);
      assert.equal(c.leaders().length, 1);
      assert.ok(c.core(c.leader() as string).term >= 2, 'the winner was elected in a later term');
    });

    for (const preVote of [true, false]) {
      test(`5.4.1 a candidate with a stale log loses (preVote ${preVote})`, () => {
        const c = new Cluster({ mode, voters: 3, config: { preVote } });
        c.elect('n1');
        c.run(3);
        c.isolate('n3');
        c.propose('n1', 'a', 'b', 'c');
        c.deliverAll();
        assert.equal(c.core('n1').log.commit, 4, 'committed on n1 and n2');
        // n1 is lost for good; n2 and n3 restart knowing no leader; stale n3 times out first.
        c.crash('n1');
        c.crash('n2');
        c.crash('n3');
        c.heal();
        c.restart('n2');
        c.restart('n3');
        const before = c.sent.length;
        for (let round = 0; round < 3; round++) {
          c.tick('n3', c.core('n3').config.electionTimeoutMaxTicks);
          c.deliverAll();
          assert.notEqual(c.core('n3').role.kind, 'leader');
        }
        const answers = c.sent.slice(before).map((s) => s.msg).filter((m) => m.type === 'voteResponse' && m.from === 'n2');
        assert.ok(answers.length > 0, 'n2 answered n3');
        assert.ok(answers.every((m) => m.type === 'voteResponse' && !m.granted), 'n2 never grants its vote to the stale n3');
        if (preVote) assert.equal(c.core('n3').term, 1, 'failed pre-votes never raise the term');
        // n2 holds every committed entry and wins with n3's vote.
        c.elect('n2');
        c.run(5);
        assert.deepEqual(c.applied('n2'), ['a', 'b', 'c']);
        assert.deepEqual(c.applied('n3'), ['a', 'b', 'c']);
      });
    }

    test('pre-vote: a partitioned node that rejoins neither raises the term nor disrupts the leader', () => {
      const c = new Cluster({ mode, voters: 3 });
      c.elect('n1');
      c.run(5);
      const term = c.core('n1').term;
      c.isolate('n3');
      c.run(80); // several election timeouts on n3
      assert.ok(c.countSent((m) => m.type === 'vote' && m.from === 'n3') > 0, 'n3 did try to campaign');
      assert.equal(c.core('n3').term, term, 'pre-votes do not raise the term');
      assert.equal(c.core('n3').stats.electionsStarted, 0, 'no real election without a pre-vote majority');
      c.heal();
      c.run(30);
      assert.equal(c.leader(), 'n1');
      assert.equal(c.core('n1').term, term, 'the leader was not disrupted');
      assert.equal(c.core('n3').leaderId(), 'n1');
      c.propose('n1', 'after');
      c.run(10);
      assert.deepEqual(c.applied('n3'), ['after']);
    });

    test('without pre-vote, the same rejoining node does raise the term (the contrast)', () => {
      const c = new Cluster({ mode, voters: 3, config: { preVote: false } });
      c.elect('n1');
      c.run(5);
      const term = c.core('n1').term;
      c.isolate('n3');
      c.run(80);
      assert.ok(c.core('n3').term > term);
      c.heal();
      c.runUntil(() => c.leader() !== null && c.core(c.leader() as string).term > term, 60, 'a new term');
    });

    test('transfer: the target is brought up to date, then elected; proposals meanwhile are refused', () => {
      const c = new Cluster({ mode, voters: 3 });
      c.elect('n1');
      c.run(3);
      const term = c.core('n1').term;
      c.isolate('n3');
      c.propose('n1', 'a', 'b', 'c');
      c.deliverAll();
      c.heal();
      assert.ok(c.core('n3').log.lastIndex() < c.core('n1').log.lastIndex(), 'n3 lags');
      c.transferLeadership('n1', 'n3');
      assert.throws(() => c.propose('n1', 'x'), (e: unknown) => e instanceof LeaderTransferInProgressError && e.target === 'n3');
      let timeoutNowSeen = false;
      for (let round = 0; round < 30 && c.leader() !== 'n3'; round++) {
        c.tickAll();
        do {
          if (!timeoutNowSeen && c.queue.some((m) => m.type === 'timeoutNow' && m.to === 'n3')) {
            timeoutNowSeen = true;
            assert.equal(c.core('n3').log.lastIndex(), c.core('n1').log.lastIndex(), 'TimeoutNow only once n3 has the whole log');
            assert.equal(c.core('n3').log.stable, c.core('n3').log.lastIndex(), 'and holds it durably');
          }
        } while (c.deliver() > 0);
      }
      assert.ok(timeoutNowSeen, 'the leader sent TimeoutNow');
      assert.equal(c.leader(), 'n3');
      assert.equal(c.core('n3').term, term + 1);
      c.run(5);
      assert.throws(() => c.propose('n1', 'y'), (e: unknown) => e instanceof NotLeaderError && e.leaderHint === 'n3');
      c.propose('n3', 'd');
      c.run(5);
      for (const id of c.voterIds) assert.deepEqual(c.applied(id), ['a', 'b', 'c', 'd']);
    });

    test('a transfer that cannot finish is abandoned after an election timeout, and proposals resume', () => {
      const c = new Cluster({ mode, voters: 3 });
      c.elect('n1');
      c.run(3);
      const term = c.core('n1').term;
      c.isolate('n3');
      c.transferLeadership('n1', 'n3');
      assert.throws(() => c.propose('n1', 'x'), LeaderTransferInProgressError);
      c.run(c.core('n1').config.electionTimeoutMinTicks);
      c.propose('n1', 'a');
      c.run(3);
      assert.equal(c.leader(), 'n1');
      assert.equal(c.core('n1').term, term);
      assert.deepEqual(c.applied('n2'), ['a']);
    });

    test('a granted vote survives a restart: at most one vote per term', () => {
      const c = new Cluster({ mode, voters: 3, config: { preVote: false } });
      tickUntilRole(c, 'n1', 'candidate');
      c.deliver((m) => m.type === 'vote' && m.from === 'n1' && m.to === 'n2');
      const grant = c.take((m) => m.type === 'voteResponse' && m.from === 'n2');
      assert.ok(grant.length === 1 && grant[0]?.type === 'voteResponse' && grant[0].granted, 'n2 voted for n1');
      c.crash('n2');
      c.restart('n2');
      assert.equal(c.core('n2').vote, 'n1', 'the vote was durable before it was sent');
      tickUntilRole(c, 'n3', 'candidate');
      assert.equal(c.core('n3').term, 1, 'n3 campaigns in the same term');
      c.deliver((m) => m.type === 'vote' && m.from === 'n3' && m.to === 'n2');
      const answer = c.queue.find((m) => m.type === 'voteResponse' && m.from === 'n2' && m.to === 'n3');
      assert.ok(answer?.type === 'voteResponse' && !answer.granted, 'the restarted n2 does not vote again in term 1');
      for (const m of grant) c.inject(m);
      c.deliverAll();
      assert.equal(c.core('n1').role.kind, 'leader');
      assert.equal(c.core('n1').term, 1);
      assert.notEqual(c.core('n3').role.kind, 'leader');
    });

    test('NotLeaderError carries the leader hint', () => {
      const c = new Cluster({ mode, voters: 3 });
      const noLeader = (e: unknown): boolean => e instanceof NotLeaderError && e.leaderHint === null;
      assert.throws(() => c.propose('n2', 'x'), noLeader);
      assert.throws(() => c.readIndex('n2', 1), noLeader);
      c.elect('n1');
      c.run(3);
      const hint = (e: unknown): boolean => e instanceof NotLeaderError && e.leaderHint === 'n1';
      assert.throws(() => c.propose('n2', 'x'), hint);
      assert.throws(() => c.readIndex('n3', 1), hint);
      assert.throws(() => c.transferLeadership('n3', 'n2'), hint);
      assert.deepEqual(c.applied('n1'), []);
    });
  });
}

describe('check-quorum [push]', () => {
  test('a leader cut off from the majority steps down within an election timeout', () => {
    const c = new Cluster({ mode: 'push', voters: 3 });
    c.elect('n1');
    c.run(50);
    assert.equal(c.leader(), 'n1', 'a connected leader keeps its role');
    c.isolate('n1');
    const min = c.core('n1').config.electionTimeoutMinTicks;
    let ticks = 0;
    while (c.core('n1').role.kind === 'leader') {
      assert.ok(ticks < 2 * min, `still leading after ${ticks} ticks cut off`);
      c.tick('n1');
      ticks++;
    }
    assert.ok(ticks > min - 1, `stepped down after ${ticks} ticks, not earlier than one check period`);
    assert.equal(c.core('n1').role.kind, 'follower');
  });

  test('without check-quorum a cut-off push leader keeps leading (the contrast)', () => {
    const c = new Cluster({ mode: 'push', voters: 3, config: { checkQuorum: false } });
    c.elect('n1');
    c.isolate('n1');
    c.tick('n1', 100);
    assert.equal(c.core('n1').role.kind, 'leader');
  });
});
