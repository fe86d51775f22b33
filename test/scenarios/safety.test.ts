// Scenario tests for Raft section 5.4 (safety), in both modes: the Figure 8
// scenario (an entry of an earlier term stored on a majority is not committed
// by counting; only an entry of the leader's own term commits it), and leader
// completeness across a chain of failovers.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, MODES, entriesOf } from './harness.js';

/** Forces campaigns on `id` until it leads (a stale term may need more than one). */
function forceElect(c: Cluster, id: string, attempts = 3): boolean {
  for (let i = 0; i < attempts; i++) if (c.forceCampaign(id)) return true;
  return false;
}

/**
 * Figure 8 (a)-(c) with five voters and one entry per message. Returns the
 * cluster with n1 leading term 3, x (term 1) at index 2 on n1, n2, n3, n4,
 * n1's no-op at index 3, n5 crashed holding its own term-2 no-op at index 2,
 * and n2 cut off. Unless `letTermThreeThrough`, no voter but n1 holds index 3.
 */
function figure8(mode: 'push' | 'pull', letTermThreeThrough: boolean): Cluster {
  const c = new Cluster({ mode, voters: 5, config: { maxMessageBytes: 1 } });
  c.elect('n1');
  c.run(3);
  // (a) n1 leads term 1 and replicates x at index 2 to n2 only.
  c.partition(['n1', 'n2'], ['n3', 'n4', 'n5']);
  c.propose('n1', 'x');
  c.deliverAll();
  assert.equal(c.core('n2').log.term(2), 1);
  // (b) n1 crashes; n5 wins term 2 with n3 and n4, and its no-op at 2 stays on n5 alone.
  c.crash('n1');
  const keepOnN5 = c.addDropRule((m) => m.from === 'n5' && entriesOf(m).length > 0);
  assert.ok(forceElect(c, 'n5'));
  assert.equal(c.core('n5').term, 2);
  assert.equal(c.core('n5').log.term(2), 2);
  c.crash('n5');
  keepOnN5();
  // (c) n1 restarts and wins term 3 with n3 and n4; x reaches them, n1's no-op does not.
  c.heal();
  c.partition(['n2']);
  c.restart('n1');
  const holdIndexThree = letTermThreeThrough ? () => undefined : c.addDropRule((m) =>
    (m.to === 'n3' || m.to === 'n4') && entriesOf(m).some((e) => e.index === 3) && (c.node(m.to).core?.log.lastIndex() ?? 0) >= 2);
  assert.ok(forceElect(c, 'n1'));
  assert.equal(c.core('n1').term, 3);
  c.run(6);
  for (const id of ['n1', 'n3', 'n4']) assert.equal(c.core(id).log.term(2), 1, `x is on ${id}`);
  assert.equal(c.core('n1').log.term(3), 3);
  holdIndexThree();
  return c;
}

for (const mode of MODES) {
  describe(`5.4 safety [${mode}]`, () => {
    test('Figure 8 (c)-(d): an old-term entry on a majority is not committed by counting, and may be overwritten', () => {
      const c = figure8(mode, false);
      assert.equal(c.core('n3').log.lastIndex(), 2, 'n3 lacks the term-3 no-op');
      assert.equal(c.core('n4').log.lastIndex(), 2, 'n4 lacks the term-3 no-op');
      assert.equal(c.core('n1').log.commit, 1, 'x (term 1) is on 4 of 5 voters, yet not committed by counting');
      assert.deepEqual(c.applied('n1'), []);
      // (d) n1 crashes; n5 (last term 2) wins with n2, n3, n4 and overwrites x.
      c.crash('n1');
      c.heal();
      c.restart('n5');
      assert.ok(forceElect(c, 'n5'), 'n5 is more up to date than n2, n3, n4');
      c.run(10);
      c.restart('n1');
      c.run(20);
      for (const id of c.voterIds) {
        assert.equal(c.core(id).log.term(2), 2, `${id} holds n5's entry at index 2`);
        assert.deepEqual(c.applied(id), [], `${id} never applied the uncommitted x`);
        assert.ok(c.core(id).log.commit >= 3);
      }
    });

    test('Figure 8 (e): once an entry of the leader\'s term commits, the older entry before it is committed and survives', () => {
      const c = figure8(mode, true);
      assert.equal(c.core('n3').log.term(3), 3, 'n3 holds the term-3 no-op');
      assert.equal(c.core('n1').log.commit, 3, 'the term-3 no-op on a majority commits, and x with it');
      assert.deepEqual(c.applied('n1'), ['x']);
      c.crash('n1');
      c.heal();
      c.restart('n5');
      assert.equal(forceElect(c, 'n5'), false, 'n5 can no longer win: a majority holds a newer last term');
      c.runUntil(() => c.leader() !== null, 100, 'a new leader');
      assert.ok(['n3', 'n4'].includes(c.leader() as string), `leader ${c.leader()} holds the committed entries`);
      c.restart('n1');
      c.run(20);
      for (const id of c.voterIds) {
        assert.equal(c.core(id).log.term(2), 1, `${id} keeps x at index 2`);
        assert.deepEqual(c.applied(id), ['x']);
      }
    });

    test('leader completeness: every committed entry survives a chain of leader crashes', () => {
      const c = new Cluster({ mode, voters: 5, seed: 7 });
      const expected: string[] = [];
      for (let round = 0; round < 4; round++) {
        c.runUntil(() => c.leader() !== null, 100, `a leader in round ${round}`);
        c.run(2);
        const old = c.leader() as string;
        const batch = [`r${round}a`, `r${round}b`, `r${round}c`];
        c.propose(old, ...batch);
        expected.push(...batch);
        c.run(3);
        assert.deepEqual(c.applied(old), expected, `${old} committed round ${round}`);
        const log = c.core(old).log;
        const committed = Array.from({ length: log.commit }, (_, i) => log.term(i + 1));
        c.crash(old);
        c.runUntil(() => c.leader() !== null, 100, `a leader after ${old} crashed`);
        const fresh = c.core(c.leader() as string);
        assert.notEqual(fresh.id, old);
        assert.deepEqual(Array.from({ length: committed.length }, (_, i) => fresh.log.term(i + 1)), committed,
          `new leader ${fresh.id} holds every entry ${old} committed`);
        c.restart(old);
      }
      c.run(20);
      for (const id of c.voterIds) assert.deepEqual(c.applied(id), expected, `${id} applied every committed entry`);
    });

    test('an entry counts toward commit only once durable: a follower that crashes before persisting is not counted', () => {
      const c = new Cluster({ mode, voters: 3 });
      c.elect('n1');
      c.run(3);
      const commit = c.core('n1').log.commit;
      c.isolate('n3');
      c.crashBeforePersist('n2');
      c.propose('n1', 'a');
      c.deliverAll();
      assert.equal(c.node('n2').core, null, 'n2 crashed while taking the entry');
      assert.equal(c.core('n1').log.commit, commit, 'nothing committed on an acknowledgement that was never durable');
      c.crash('n1'); // had it committed, only n1's disk would hold the entry
      c.heal();
      c.restart('n2');
      c.runUntil(() => c.leader() !== null, 100, 'a leader among n2, n3');
      c.restart('n1');
      c.run(20);
      for (const id of c.voterIds) assert.deepEqual(c.applied(id), c.applied(c.leader() as string), `${id} agrees`);
    });

    test('a vote is sent only once durable: a voter that crashes before persisting cannot vote twice', () => {
      const c = new Cluster({ mode, voters: 3, config: { preVote: false } });
      for (let i = 0; c.core('n1').role.kind !== 'candidate'; i++) c.tick('n1');
      c.crashBeforePersist('n2');
      c.deliver((m) => m.type === 'vote' && m.from === 'n1' && m.to === 'n2');
      assert.equal(c.node('n2').core, null);
      c.restart('n2');
      for (let i = 0; c.core('n3').role.kind !== 'candidate'; i++) c.tick('n3');
      assert.equal(c.core('n3').term, 1);
      // n2, which remembers no vote, hears n3 first; then everything else arrives.
      c.deliver((m) => m.type === 'vote' && m.from === 'n3' && m.to === 'n2');
      c.deliver((m) => m.type === 'voteResponse' && m.from === 'n2' && m.to === 'n3');
      const leadersOfTermOne = new Set<string>();
      do {
        for (const n of c.leaders()) if (n.core?.term === 1) leadersOfTermOne.add(n.id);
      } while (c.deliver() > 0);
      assert.ok(leadersOfTermOne.size <= 1, `leaders of term 1: ${[...leadersOfTermOne].join(', ')}`);
    });
  });
}
