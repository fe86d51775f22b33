// Scenario tests for membership changes, one server at a time, named after
// the sections of Ongaro's dissertation (chapter 4) and KRaft's behaviours,
// in both modes. docs/MEMBERSHIP.md explains the rules they check.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigChangeInProgressError, LeaderNotReadyError, NotCaughtUpError, InvalidConfigChangeError } from '../../src/core/errors.js';
import { nodeId } from '../../src/protocol/ids.js';
import { Cluster, MODES } from './harness.js';

const n = nodeId;

for (const mode of MODES) {
  describe(`membership [${mode}]`, () => {
    test('4.1: a configuration takes effect as soon as it is in the log, before it commits', () => {
      const c = new Cluster({ mode, voters: 3, spares: 1 });
      c.elect('n1');
      c.run(3);
      c.isolate('n2');
      c.isolate('n3');
      const at = c.changeConfig('n1', { kind: 'addObserver', node: n('s1') });
      const cfg = c.core('n1').configuration();
      assert.equal(cfg.index, at);
      assert.equal(cfg.committed, false);
      assert.deepEqual(cfg.config.observers, ['s1'], 'in force on the leader at once');
      c.heal();
      c.runUntil(() => c.core('n2').configuration().index === at, 30, 'n2 has the entry');
      c.runUntil(() => c.core('n1').configuration().committed, 30, 'the change commits');
      c.propose('n1', 'a');
      c.runUntil(() => c.applied('s1').includes('a'), 40, 's1 receives the log');
      assert.equal(c.core('s1').role.kind, 'observer');
      assert.equal(c.core('s1').configuration().index, at, 's1 knows the configuration that added it');
    });

    test('4.1: one change at a time: a second change waits until the first has committed', () => {
      const c = new Cluster({ mode, voters: 3, spares: 2 });
      c.elect('n1');
      c.run(3);
      c.isolate('n2');
      c.isolate('n3');
      c.changeConfig('n1', { kind: 'addObserver', node: n('s1') });
      assert.throws(() => c.changeConfig('n1', { kind: 'addObserver', node: n('s2') }), ConfigChangeInProgressError);
      c.heal();
      c.runUntil(() => c.core('n1').configuration().committed, 30, 'the first change commits');
      c.changeConfig('n1', { kind: 'addObserver', node: n('s2') });
      assert.deepEqual(c.core('n1').configuration().config.observers, ['s1', 's2']);
    });

    test('4.1: a new leader changes nothing before it has committed an entry of its term', () => {
      const c = new Cluster({ mode, voters: 3, spares: 1 });
      const undo = c.addDropRule((m) => m.to === 'n1' && (m.type === 'appendResponse' || m.type === 'fetch'));
      c.elect('n1');
      assert.throws(() => c.changeConfig('n1', { kind: 'addObserver', node: n('s1') }), LeaderNotReadyError);
      undo();
      c.runUntil(() => c.core('n1').log.term(c.core('n1').log.commit) === c.core('n1').term, 30, 'the no-op commits');
      c.changeConfig('n1', { kind: 'addObserver', node: n('s1') });
    });

    test('4.1: changes that do not apply are refused by name', () => {
      const c = new Cluster({ mode, voters: 1, observers: 1 });
      c.elect('n1');
      c.run(3);
      assert.throws(() => c.changeConfig('n1', { kind: 'addObserver', node: n('o1') }), InvalidConfigChangeError);
      assert.throws(() => c.changeConfig('n1', { kind: 'remove', node: n('n1') }), /last voter/);
      assert.throws(() => c.changeConfig('n1', { kind: 'promote', node: n('n1') }), InvalidConfigChangeError);
    });

    test('4.1: a server whose log is truncated past a configuration entry falls back to the previous one', () => {
      const c = new Cluster({ mode, voters: 5 });
      c.elect('n1');
      c.run(3);
      c.partition(['n1', 'n2'], ['n3', 'n4', 'n5']);
      const at = c.changeConfig('n1', { kind: 'demote', node: n('n5') });
      c.run(3);
      const n2 = c.core('n2').configuration();
      assert.equal(n2.index, at, 'n2 uses the new configuration, uncommitted');
      assert.equal(n2.committed, false);
      assert.deepEqual(n2.config.voters, ['n1', 'n2', 'n3', 'n4']);
      c.heal();
      c.isolate('n1');
      assert.ok(c.forceCampaign('n3'), 'n3 wins with n4 and n5');
      c.runUntil(() => c.core('n2').configuration().index === 0, 40, 'n2 truncates the entry');
      assert.deepEqual(c.core('n2').configuration().config.voters, ['n1', 'n2', 'n3', 'n4', 'n5'], 'back to the bootstrap configuration');
      assert.equal(c.core('n2').role.kind, 'follower');
    });

    test('4.1: a voter promoted by an entry it has not received yet still votes (as etcd\'s learners do)', () => {
      const c = new Cluster({ mode, voters: 2, spares: 1 });
      c.elect('n1');
      c.run(3);
      c.changeConfig('n1', { kind: 'addObserver', node: n('s1') });
      c.propose('n1', 'a');
      c.runUntil(() => c.applied('s1').includes('a') && c.core('n1').configuration().committed, 40, 's1 added and caught up');
      c.run(2);
      c.blockLink('n1', 's1');
      const at = c.changeConfig('n1', { kind: 'promote', node: n('s1') });
      c.runUntil(() => c.core('n2').log.commit >= at, 30, 'the promotion commits on n1 and n2');
      assert.equal(c.core('s1').role.kind, 'observer', 's1 has not heard of it');
      c.crash('n1');
      c.unblockLink('n1', 's1');
      // n2 needs two of {n1, n2, s1}: only s1's vote can elect it.
      assert.ok(c.forceCampaign('n2'), 'n2 wins with the vote of s1, which still thinks it is an observer');
      c.runUntil(() => c.core('s1').role.kind === 'follower', 40, 's1 learns of its promotion');
    });

    test('4.1: a server whose own removal is not yet committed still campaigns, since only it may be able to win', () => {
      const c = new Cluster({ mode, voters: 2 });
      c.elect('n1');
      c.run(3);
      c.blockLink('n1', 'n2');
      c.changeConfig('n1', { kind: 'remove', node: n('n1') });
      c.deliverAll(); // the entry never reaches n2
      c.crash('n1');
      c.restart('n1');
      assert.equal(c.core('n1').role.kind, 'follower', 'n1 may still elect: its removal is uncommitted');
      c.unblockLink('n1', 'n2');
      // n2 alone cannot win: it needs n1's vote, and n1's log is longer. n1 must campaign, lead, and commit its removal.
      c.runUntil(() => c.leader() === 'n2', 300, 'n2 leads in the end');
      assert.ok(c.core('n1').stats.electionsStarted > 0, 'n1 campaigned');
      assert.equal(c.core('n1').role.kind, 'observer');
      assert.deepEqual(c.core('n2').configuration().config.voters, ['n2']);
      assert.ok(c.core('n2').configuration().committed);
    });

    test('4.2.1: an observer is promoted only once it has caught up, and then counts', () => {
      const c = new Cluster({ mode, voters: 3, spares: 1 });
      c.elect('n1');
      c.run(3);
      c.isolate('s1');
      c.propose('n1', ...Array.from({ length: 10 }, (_, i) => `x${i}`));
      c.changeConfig('n1', { kind: 'addObserver', node: n('s1') });
      c.runUntil(() => c.core('n1').configuration().committed, 30, 'the observer is added');
      assert.throws(() => c.changeConfig('n1', { kind: 'promote', node: n('s1') }), NotCaughtUpError);
      c.heal();
      c.runUntil(() => c.applied('s1').length === 10, 60, 's1 catches up');
      c.run(2);
      const at = c.changeConfig('n1', { kind: 'promote', node: n('s1') });
      c.runUntil(() => c.core('s1').role.kind === 'follower', 30, 's1 becomes a follower');
      c.runUntil(() => c.core('n1').log.commit >= at, 30, 'the promotion commits');
      // Four voters now: n1 and n2 alone are not a majority.
      c.isolate('n3');
      c.isolate('s1');
      const i = c.propose('n1', 'needs-three');
      c.run(4);
      assert.ok(c.core('n1').log.commit < i, 'two of four voters do not commit');
      c.heal();
      c.runUntil(() => c.core('n1').log.commit >= i, 30, 'three of four do');
    });

    test('4.2.2: a leader that removes itself leads until the removal commits, without counting itself, then steps down for good', () => {
      const c = new Cluster({ mode, voters: 3 });
      c.elect('n1');
      c.run(3);
      c.isolate('n3');
      const at = c.changeConfig('n1', { kind: 'remove', node: n('n1') });
      c.run(4);
      assert.equal(c.core('n1').role.kind, 'leader', 'still leading');
      assert.ok(c.core('n1').log.commit < at, 'n1 and n2 hold the entry, but n1 does not count: n2 alone is not a majority of {n2, n3}');
      c.heal();
      c.runUntil(() => c.core('n1').role.kind === 'observer', 30, 'n1 steps down once the removal commits');
      assert.ok(c.core('n1').log.commit >= at);
      c.runUntil(() => c.leader() !== null, 60, 'a new leader');
      const leader = c.leader() as string;
      assert.notEqual(leader, 'n1');
      const elections = c.core('n1').stats.electionsStarted;
      c.propose(leader, 'after');
      c.run(80);
      assert.ok(c.applied('n2').includes('after') && c.applied('n3').includes('after'));
      assert.equal(c.core('n1').stats.electionsStarted, elections, 'the removed server never campaigns');
      assert.equal(c.core('n1').role.kind, 'observer');
    });

    test('4.2.3: a removed server that never learnt of its removal cannot disrupt the cluster (the leader lease)', () => {
      // Without pre-vote, so that the removed server asks for real votes in higher terms.
      const c = new Cluster({ mode, voters: 3, config: { preVote: false, checkQuorum: true } });
      c.elect('n1');
      c.run(3);
      c.isolate('n3');
      const at = c.changeConfig('n1', { kind: 'remove', node: n('n3') });
      c.runUntil(() => c.core('n1').log.commit >= at, 30, 'the removal commits with n1 and n2');
      c.run(30); // n3's election timer runs out while it is cut off
      const term = c.core('n1').term;
      c.heal();
      c.run(100);
      assert.equal(c.leader(), 'n1');
      assert.equal(c.core('n1').term, term, 'no term was raised by the removed server');
      assert.equal(c.core('n2').term, term);
    });

    test('the snapshot carries the configuration: a restart after compaction past the entry keeps it', () => {
      const c = new Cluster({ mode, voters: 3, spares: 1 });
      c.elect('n1');
      c.run(3);
      const at = c.changeConfig('n1', { kind: 'addObserver', node: n('s1') });
      c.propose('n1', 'a', 'b');
      c.run(5);
      const snap = c.compact('n1');
      assert.ok(snap > at);
      assert.deepEqual(c.node('n1').disk.snapshot?.meta.config?.observers, ['s1']);
      c.crash('n1');
      c.restart('n1');
      assert.deepEqual(c.core('n1').configuration().config.observers, ['s1'], 'recovered from the snapshot');
      assert.ok(c.core('n1').log.firstIndex() > at, 'the entry itself is gone');
    });
  });
}

describe('membership, KRaft: observers outside the configuration [pull]', () => {
  test('a node that is not a member fetches the log; the leader tracks it and never counts it', () => {
    const c = new Cluster({ mode: 'pull', voters: 3, spares: 1 });
    c.elect('n1');
    c.propose('n1', 'a');
    c.runUntil(() => c.applied('s1').includes('a'), 60, 's1 fetches without being a member');
    const leader = c.core('n1').role;
    assert.ok(leader.kind === 'leader');
    const pr = leader.progress.get(n('s1'));
    assert.ok(pr !== undefined && !pr.member && !pr.isVoter, 'tracked as a non-member');
    c.isolate('n2');
    c.isolate('n3');
    c.unblockLink('s1', 'n1');
    c.unblockLink('n1', 's1');
    const i = c.propose('n1', 'b');
    c.run(4);
    assert.ok(c.core('s1').log.lastIndex() >= i, 's1 has it');
    assert.ok(c.core('n1').log.commit < i, 'but it does not count');
  });
});
