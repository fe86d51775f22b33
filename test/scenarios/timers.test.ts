// RaftNode.ticksUntilDue() (src/core/timers.ts): how long an idle runtime may
// sleep. The simulator checks the promise under faults on every tick; these
// pin down the everyday cases, so that a change that makes an idle node wake
// on every tick again (or sleep through its heartbeat) shows up by name.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { RaftNode } from '../../src/core/node.js';
import { Cluster, MODES, type Mode } from './harness.js';

for (const mode of MODES) {
  describe(`ticksUntilDue [${mode}]`, () => {
    test('an idle follower may sleep until its election timeout; the promised ticks send nothing', () => {
      const c = new Cluster({ mode, voters: 3 });
      c.runUntil(() => c.leader() !== null, 60, 'a leader');
      c.deliverAll();
      const follower = c.voterIds.find((id) => id !== c.leader()) as string;
      const core = c.core(follower);
      const due = core.ticksUntilDue();
      if (mode === 'push') {
        assert.equal(due, core.electionTimeoutTicks - core.electionElapsedTicks, 'push: the election timeout is the only timer');
        assert.ok(due > core.config.heartbeatIntervalTicks, `an idle push follower sleeps past a heartbeat interval (${due})`);
      } else {
        assert.ok(due >= 1, 'pull: the fetch retry or the election timeout');
      }
      const sent = c.queue.length;
      c.tick(follower, due - 1);
      assert.equal(c.queue.length, sent, 'the quiet ticks sent nothing');
      assert.equal(core.role.kind, 'follower');
    });

    test('an idle leader wakes no later than its next heartbeat or parked-fetch deadline, and that tick acts', () => {
      const c = new Cluster({ mode, voters: 3 });
      c.runUntil(() => c.leader() !== null, 60, 'a leader');
      c.deliverAll();
      const leader = c.leader() as string;
      const core = c.core(leader);
      const due = core.ticksUntilDue();
      const bound = mode === 'push' ? core.config.heartbeatIntervalTicks : core.config.fetchMaxWaitTicks;
      assert.ok(due >= 1 && due <= bound, `due in ${due} ticks, at most ${bound}`);
      const sent = c.queue.length;
      c.tick(leader, due - 1);
      assert.equal(c.queue.length, sent, 'nothing before the due tick');
      c.tick(leader, 1);
      assert.ok(c.queue.length > sent, 'the due tick sent (a heartbeat, or a parked fetch answered)');
    });

    /** A 3-voter cluster with observer o1, a leader elected and every message delivered. */
    const settledObserver = (m: Mode): { c: Cluster; observer: RaftNode } => {
      const c = new Cluster({ mode: m, voters: 3, observers: 1 });
      c.runUntil(() => c.leader() !== null, 60, 'a leader');
      c.deliverAll();
      const observer = c.core('o1');
      assert.equal(observer.role.kind, 'observer');
      return { c, observer };
    };

    // An observer's timers differ by mode, so each mode has its own case (none returns early and shows as passed).
    if (mode === 'push') {
      test('a push observer never needs a tick; the runtime caps its sleep itself', () => {
        const { observer } = settledObserver(mode);
        assert.equal(observer.ticksUntilDue(), Infinity);
      });
    } else {
      test('a pull observer fetches, so it may sleep no longer than its election timeout; the promised ticks send nothing', () => {
        const { c, observer } = settledObserver(mode);
        const due = observer.ticksUntilDue();
        assert.ok(due >= 1 && due <= observer.electionTimeoutTicks, `due in ${due} ticks, at most ${observer.electionTimeoutTicks}`);
        const sent = c.queue.length;
        c.tick('o1', due - 1);
        assert.equal(c.queue.length, sent, 'the quiet ticks sent nothing');
        assert.equal(observer.role.kind, 'observer');
      });
    }
  });
}
