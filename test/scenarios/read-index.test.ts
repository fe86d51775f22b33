// Scenario tests for linearizable reads (ReadIndex, Raft dissertation 6.4) in
// both modes: a read is released only after a quorum confirms the leader; a
// partitioned old leader never serves one (it is aborted when it steps down);
// a new leader's reads wait for the first commit of its own term.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, MODES } from './harness.js';

for (const mode of MODES) {
  describe(`ReadIndex [${mode}]`, () => {
    test('a read is released only once a quorum has confirmed the leadership', () => {
      const c = new Cluster({ mode, voters: 3 });
      c.elect('n1');
      c.propose('n1', 'a');
      c.run(5);
      const commit = c.core('n1').log.commit;
      c.isolate('n3');
      const holdN2 = c.addDropRule((m) => m.from === 'n2' && m.to === 'n1');
      c.readIndex('n1', 7);
      c.run(4);
      assert.deepEqual(c.node('n1').readStates, [], 'the leader alone is not a quorum');
      assert.equal(c.core('n1').role.kind, 'leader');
      holdN2();
      c.runUntil(() => c.node('n1').readStates.length > 0, 12, 'the read released');
      assert.deepEqual(c.node('n1').readStates, [{ ctx: 7, index: commit }], 'released at the commit index it was asked at');
      assert.deepEqual(c.node('n1').readsAborted, []);
    });

    test('a partitioned old leader never serves a read; it is aborted when the leader steps down', () => {
      const c = new Cluster({ mode, voters: 3 });
      c.elect('n1');
      c.propose('n1', 'a');
      c.run(5);
      c.isolate('n1');
      c.readIndex('n1', 1);
      const newLeader = (): boolean => ['n2', 'n3'].some((id) => c.core(id).role.kind === 'leader');
      c.runUntil(newLeader, 60, 'a leader on the majority side');
      const leader = c.leader() as string;
      c.propose(leader, 'b'); // a write the old leader never sees
      c.run(3);
      c.runUntil(() => c.core('n1').role.kind !== 'leader', 40, 'the old leader stepping down');
      assert.deepEqual(c.node('n1').readStates, [], 'the old leader never released the read');
      assert.deepEqual(c.node('n1').readsAborted, [1], 'the read was aborted');
      c.heal();
      c.readIndex(leader, 2);
      c.run(5);
      const rs = c.node(leader).readStates;
      assert.equal(rs.length, 1);
      assert.ok((rs[0]?.index ?? 0) >= c.core(leader).log.commit, 'the new leader\'s read covers b');
      assert.deepEqual(c.applied('n1'), ['a', 'b']);
    });

    test('a new leader\'s reads wait until an entry of its own term commits', () => {
      const c = new Cluster({ mode, voters: 3 });
      c.elect('n1');
      c.run(5);
      c.propose('n1', 'a', 'b');
      c.deliver((m) => m.from === 'n1'); // the entries reach n2 and n3
      c.deliver((m) => m.to === 'n1'); // their acknowledgements reach n1
      const committed = c.core('n1').log.commit;
      assert.equal(committed, 3);
      assert.ok(c.core('n2').log.commit < committed, 'n2 has not learned the commit');
      c.crash('n1');
      c.take(() => true); // n1's news of the commit is lost with it
      // n2 campaigns (TimeoutNow stands in for etcd's MsgHup) and wins; stop right there.
      c.inject({ type: 'timeoutNow', from: c.core('n2').id, to: c.core('n2').id, term: c.core('n2').term });
      for (let pass = 0; c.core('n2').role.kind !== 'leader'; pass++) {
        assert.ok(pass < 10);
        c.deliver();
      }
      assert.ok(c.core('n2').log.commit < committed);
      c.readIndex('n2', 9);
      c.deliver((m) => m.type !== 'append' && m.type !== 'fetchResponse'); // confirmations may flow, entries not
      assert.deepEqual(c.node('n2').readStates, [], 'no read before the no-op of the new term commits');
      c.run(5);
      const rs = c.node('n2').readStates;
      assert.equal(rs.length, 1);
      assert.ok((rs[0]?.index ?? 0) >= committed, `the read index ${rs[0]?.index} covers what n1 committed (${committed})`);
      assert.equal(rs[0]?.index, 4, 'the index of n2\'s no-op');
    });
  });
}
