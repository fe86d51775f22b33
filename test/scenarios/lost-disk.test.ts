// Scenario tests for lost disks (issue 7, docs/LOST-DISKS.md), in both modes:
// every data directory has an id, the leader records each member's in the
// configuration, and a node restarted on an empty directory (a new id) may
// neither vote nor count until it is removed and added again. Without the
// rule (the planted bug wipedNodeVotes) a committed entry is lost.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidConfigChangeError } from '../../src/core/errors.js';
import { recordedDirId } from '../../src/protocol/entry.js';
import { nodeId } from '../../src/protocol/ids.js';
import { Cluster, MODES, type ClusterOptions } from './harness.js';

const n = nodeId;

/** True when `id`'s configuration in force is committed and records `dirIds` (node -> id) for those nodes. */
function records(c: Cluster, id: string, dirIds: Record<string, number | undefined>): boolean {
  const cfg = c.core(id).configuration();
  if (!cfg.committed) return false;
  for (const [node, dirId] of Object.entries(dirIds)) if (recordedDirId(cfg.config, n(node)) !== dirId) return false;
  return true;
}

/** Three voters with directory ids, n1 leading, and every member's id recorded and known to all. */
function recordedCluster(opts: Omit<ClusterOptions, 'voters' | 'directoryIds'>): Cluster {
  const c = new Cluster({ ...opts, voters: 3, directoryIds: true });
  c.elect('n1');
  const ids = { n1: c.node('n1').dirId, n2: c.node('n2').dirId, n3: c.node('n3').dirId };
  c.runUntil(() => ['n1', 'n2', 'n3'].every((id) => records(c, id, ids)), 60, 'every voter knows the recorded directory ids');
  return c;
}

/** n1 records n2 (added back as an observer) under directory `fresh`; n2 catches up, has no conflict, and is promoted. */
function recordedThenPromoted(c: Cluster, fresh: number): void {
  c.runUntil(() => records(c, 'n1', { n2: fresh }), 60, 'n2 is recorded under the directory it runs on now');
  c.propose('n1', 'a');
  c.runUntil(() => c.applied('n2').includes('a'), 60, 'n2 catches up');
  assert.equal(c.core('n2').dirIdConflict(), null);
  c.run(2);
  const promoted = c.changeConfig('n1', { kind: 'promote', node: n('n2') });
  c.runUntil(() => c.core('n1').log.commit >= promoted, 40, 'n2 is promoted');
}

/**
 * The loss the rule prevents: `x` is committed on n1 and n2 while n3 is cut
 * off; n2's disk is then lost and n1 goes down. n3, which lacks `x`, asks the
 * wiped n2 for its vote, and n2, with an empty log and no memory of its vote
 * or of `x`, grants it.
 */
function wipeAfterCommit(c: Cluster): { x: number; oldDir: number; newDir: number } {
  c.isolate('n3');
  const x = c.propose('n1', 'x');
  c.runUntil(() => c.core('n1').log.commit >= x && c.applied('n1').includes('x'), 30, 'x commits on n1 and n2');
  const oldDir = c.node('n2').dirId as number;
  c.crash('n2');
  c.wipe('n2');
  c.restart('n2');
  c.crash('n1');
  c.heal();
  return { x, oldDir, newDir: c.node('n2').dirId as number };
}

for (const mode of MODES) {
  describe(`lost disks [${mode}]`, () => {
    test('the leader records the directory ids of the bootstrap members, then of an observer it adds', () => {
      const c = new Cluster({ mode, voters: 3, spares: 1, directoryIds: true });
      c.elect('n1');
      c.runUntil(() => records(c, 'n1', { n1: 101, n2: 102, n3: 103 }), 30, 'the bootstrap members are recorded');
      const cfg = c.core('n1').configuration().config;
      assert.deepEqual([...cfg.voters], ['n1', 'n2', 'n3'], 'the same voters');
      assert.deepEqual([...cfg.observers], []);
      const at = c.changeConfig('n1', { kind: 'addObserver', node: n('s1') });
      assert.equal(recordedDirId(c.core('n1').configuration().config, n('s1')), undefined, 'nothing recorded for s1 at first');
      c.runUntil(() => c.core('n1').configuration().index > at && records(c, 'n1', { s1: 104 }), 40, 's1 is recorded once heard from');
      c.runUntil(() => records(c, 's1', { n1: 101, n2: 102, n3: 103, s1: 104 }), 40, 's1 knows the records');
      assert.equal(c.core('s1').dirIdConflict(), null);
    });

    test('nodes without a directory id record nothing (as before issue 7)', () => {
      const c = new Cluster({ mode, voters: 3 });
      c.elect('n1');
      c.propose('n1', 'a');
      c.runUntil(() => c.applied('n3').includes('a'), 40, 'a is applied');
      assert.equal(c.core('n1').configuration().index, 0, 'still the bootstrap configuration');
    });

    test('a wiped voter cannot vote for a candidate that lacks a committed entry, so the entry survives', () => {
      const c = recordedCluster({ mode });
      const { x, oldDir, newDir } = wipeAfterCommit(c);
      assert.notEqual(oldDir, newDir);
      assert.equal(c.forceCampaign('n3'), false, 'n2 grants its vote, but from a directory n3 does not count');
      const granted = c.countSent((m) => m.type === 'voteResponse' && m.from === 'n2' && m.to === 'n3' && m.granted);
      assert.ok(granted > 0, 'n2, empty, did grant it (it cannot know better yet)');
      assert.notEqual(c.core('n3').role.kind, 'leader');
      c.restart('n1');
      c.runUntil(() => c.leader() !== null && c.applied(c.leader() as string).includes('x'), 200, 'a leader with x');
      const y = c.propose(c.leader() as string, 'y');
      c.runUntil(() => c.applied('n3').includes('y'), 100, 'n3 catches up');
      assert.deepEqual(c.applied('n3'), ['x', 'y'], 'x survived at its index');
      assert.ok(y > x);
    });

    test('without the rule (planted bug wipedNodeVotes) the wiped voter elects that candidate and the committed entry is lost', () => {
      const c = recordedCluster({ mode, config: { plantedBug: 'wipedNodeVotes' } });
      const { x } = wipeAfterCommit(c);
      assert.equal(c.forceCampaign('n3'), true, 'n3 wins with the vote of the wiped n2');
      const y = c.propose('n3', 'y');
      c.runUntil(() => c.core('n3').log.commit >= y, 40, 'y commits with n3 and the wiped n2');
      const at = c.core('n3').log.entry(x);
      assert.ok(at !== undefined && at.type !== 'data', `n3 committed another entry (${at?.type}) at ${x}, where x was committed`);
      c.runUntil(() => c.applied('n3').includes('y'), 40, 'n3 applies y');
      assert.deepEqual(c.applied('n3'), ['y'], 'x, committed before, is gone');
    });

    test('a stale node refuses to campaign and to vote, counts for nobody, and reports the conflict in softState', () => {
      const c = recordedCluster({ mode });
      const oldDir = c.node('n2').dirId as number;
      c.crash('n2');
      c.wipe('n2');
      c.restart('n2');
      const newDir = c.node('n2').dirId as number;
      c.runUntil(() => c.core('n2').dirIdConflict() !== null, 60, 'n2 receives the configuration that records its old directory');
      assert.deepEqual(c.core('n2').dirIdConflict(), { recorded: oldDir, mine: newDir });
      assert.deepEqual(c.node('n2').softState?.dirIdConflict, { recorded: oldDir, mine: newDir });
      assert.equal(c.core('n2').isStale(), true);
      assert.equal(c.core('n2').role.kind, 'observer', 'it may not elect');
      // It never campaigns, even when nobody leads.
      c.crash('n1');
      const before = c.core('n2').stats.electionsStarted;
      c.tick('n2', 100);
      c.deliverAll();
      assert.equal(c.core('n2').stats.electionsStarted, before);
      // It refuses n3's vote request, and n3 cannot win without n1.
      const tick = c.ticks;
      assert.equal(c.forceCampaign('n3'), false);
      assert.ok(c.countSent((m) => m.type === 'voteResponse' && m.from === 'n2', tick) > 0, 'n2 answered');
      assert.equal(c.countSent((m) => m.type === 'voteResponse' && m.from === 'n2' && m.granted, tick), 0, 'and refused');
      // With n1 back, n1 and n3 commit; n2 keeps receiving the log but is not counted.
      c.restart('n1');
      c.runUntil(() => c.leader() !== null, 200, 'a leader');
      const leader = c.leader() as string;
      const other = leader === 'n1' ? 'n3' : 'n1';
      c.isolate(other);
      const i = c.propose(leader, 'needs-two');
      c.runUntil(() => c.core('n2').log.lastIndex() >= i, 40, 'n2 receives the entry');
      c.run(10);
      assert.ok(c.core(leader).log.commit < i, 'the leader and the stale n2 are not a majority');
      c.heal();
      c.runUntil(() => c.core(leader).log.commit >= i, 40, 'with the other voter it commits');
    });

    test('remove, add as an observer, promote: the wiped node counts again, under its new directory id', () => {
      const c = recordedCluster({ mode });
      c.crash('n2');
      c.wipe('n2');
      c.restart('n2');
      const newDir = c.node('n2').dirId as number;
      c.runUntil(() => c.core('n2').dirIdConflict() !== null, 60, 'n2 is stale');
      const demoted = c.changeConfig('n1', { kind: 'demote', node: n('n2') });
      c.runUntil(() => c.core('n1').log.commit >= demoted, 30, 'the demotion commits');
      assert.throws(() => c.changeConfig('n1', { kind: 'promote', node: n('n2') }), InvalidConfigChangeError, 'a stale node cannot be promoted back');
      const removed = c.changeConfig('n1', { kind: 'remove', node: n('n2') });
      c.runUntil(() => c.core('n1').log.commit >= removed, 30, 'the removal commits');
      assert.equal(recordedDirId(c.core('n1').configuration().config, n('n2')), undefined, 'the removal drops the record');
      c.changeConfig('n1', { kind: 'addObserver', node: n('n2') });
      c.runUntil(() => records(c, 'n1', { n2: newDir }), 60, 'n2 is recorded under its new directory id');
      c.propose('n1', 'a');
      c.runUntil(() => c.applied('n2').includes('a'), 60, 'n2 catches up');
      assert.equal(c.core('n2').dirIdConflict(), null, 'no conflict any more');
      c.run(2);
      const promoted = c.changeConfig('n1', { kind: 'promote', node: n('n2') });
      c.runUntil(() => c.core('n1').log.commit >= promoted && c.core('n2').role.kind === 'follower', 40, 'n2 is a voter again');
      c.isolate('n3');
      const i = c.propose('n1', 'with-n2');
      c.runUntil(() => c.core('n1').log.commit >= i, 40, 'n1 and n2 commit without n3: n2 counts');
    });

    test('a member added back is recorded under the directory it is heard from after the add, not one heard while it was out', () => {
      // Pull mode keeps tracking a removed node that still fetches; that directory may be gone by the time the node is
      // added back (wiped again, as an operator re-adding a lost disk does). Recording it would make the new one stale.
      const c = recordedCluster({ mode });
      c.crash('n2');
      c.wipe('n2');
      c.restart('n2');
      c.runUntil(() => c.core('n2').dirIdConflict() !== null, 60, 'n2 is stale');
      const removed = c.changeConfig('n1', { kind: 'remove', node: n('n2') });
      c.runUntil(() => c.core('n1').log.commit >= removed, 30, 'the removal commits');
      c.run(10); // n2 keeps fetching as a non-member (pull)
      const dead = c.node('n2').dirId as number;
      c.crash('n2');
      c.wipe('n2');
      const added = c.changeConfig('n1', { kind: 'addObserver', node: n('n2') });
      c.runUntil(() => c.core('n1').log.commit >= added, 30, 'the add commits');
      c.run(10);
      assert.notEqual(recordedDirId(c.core('n1').configuration().config, n('n2')), dead, 'the directory of a replica that is gone was recorded');
      c.restart('n2');
      recordedThenPromoted(c, c.node('n2').dirId as number);
    });

    /**
     * n2, stale, is removed; its last packet to n1 is held (on a lossy network
     * TCP retransmits it seconds after the process died); n2 is wiped again
     * and added back, and the held packet reaches n1 before the new replica
     * speaks. Returns the directory the held packet names and the new one.
     */
    function latePacketAfterReAdd(c: Cluster): { dead: number; fresh: number } {
      c.crash('n2');
      c.wipe('n2');
      c.restart('n2');
      c.runUntil(() => c.core('n2').dirIdConflict() !== null, 60, 'n2 is stale');
      c.propose('n1', 'before');
      c.tickAll();
      c.deliver((m) => m.to === 'n2'); // n2 answers the leader's latest
      const held = c.take((m) => m.from === 'n2' && m.to === 'n1');
      assert.ok(held.length > 0, 'n2 had a packet on its way to n1');
      const removed = c.changeConfig('n1', { kind: 'remove', node: n('n2') });
      c.runUntil(() => c.core('n1').log.commit >= removed, 30, 'the removal commits');
      const dead = c.node('n2').dirId as number;
      c.crash('n2');
      c.wipe('n2');
      const added = c.changeConfig('n1', { kind: 'addObserver', node: n('n2') });
      for (const m of held) c.inject(m);
      c.runUntil(() => c.core('n1').log.commit >= added, 30, 'the add commits');
      c.run(5);
      c.restart('n2');
      return { dead, fresh: c.node('n2').dirId as number };
    }

    test('a removed replica\'s late packet does not get its directory recorded for the member added back', () => {
      const c = recordedCluster({ mode });
      const { dead, fresh } = latePacketAfterReAdd(c);
      assert.notEqual(recordedDirId(c.core('n1').configuration().config, n('n2')), dead);
      recordedThenPromoted(c, fresh);
    });

    test('without the rule (planted bug recordStaleDirectory) the late packet\'s directory is recorded and the member can never be promoted', () => {
      const c = recordedCluster({ mode, config: { plantedBug: 'recordStaleDirectory' } });
      const { dead } = latePacketAfterReAdd(c);
      c.runUntil(() => records(c, 'n1', { n2: dead }), 60, 'the dead directory is recorded');
      c.propose('n1', 'a');
      c.runUntil(() => c.applied('n2').includes('a'), 60, 'n2 catches up');
      assert.notEqual(c.core('n2').dirIdConflict(), null, 'the new replica is stale from the start');
      c.run(2);
      assert.throws(() => c.changeConfig('n1', { kind: 'promote', node: n('n2') }), InvalidConfigChangeError);
    });

    test('a snapshot carries the recorded directory ids, and a restart recovers them from it', () => {
      const c = recordedCluster({ mode });
      c.propose('n1', 'a', 'b');
      c.run(5);
      const want = c.core('n1').configuration().config.dirIds;
      assert.equal(want?.length, 3);
      c.compact('n1');
      assert.deepEqual(c.node('n1').disk.snapshot?.meta.config?.dirIds, want);
      c.crash('n1');
      c.restart('n1');
      assert.deepEqual(c.core('n1').configuration().config.dirIds, want, 'recovered from the snapshot');
      // A follower that needs the snapshot gets the records with it.
      c.crash('n3');
      c.wipe('n3');
      c.restart('n3');
      c.runUntil(() => c.leader() !== null, 200, 'a leader');
      c.compact(c.leader() as string);
      c.runUntil(() => c.core('n3').dirIdConflict() !== null, 100, 'the wiped n3 learns the records, from the snapshot if not from the log');
      assert.deepEqual(c.core('n3').configuration().config.dirIds, c.core(c.leader() as string).configuration().config.dirIds);
    });
  });
}
