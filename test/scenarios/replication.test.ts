// Scenario tests for Raft section 5.3 (log replication), in both modes:
// commit on a majority, in-order apply, conflicting suffixes replaced, lagging
// followers caught up, batching; and push mode's flow control: fast back-off
// with the conflict hint and the bounded window of in-flight AppendEntries.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Message } from '../../src/protocol/messages.js';
import { Cluster, MODES, entriesOf } from './harness.js';

/** `count` payloads named `${prefix}${i}`. */
function payloads(prefix: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}${i}`);
}

/** The (index, term) pairs of `id`'s log after its snapshot. */
function logTerms(c: Cluster, id: string): Array<[number, number | undefined]> {
  const log = c.core(id).log;
  const out: Array<[number, number | undefined]> = [];
  for (let i = log.firstIndex(); i <= log.lastIndex(); i++) out.push([i, log.term(i)]);
  return out;
}

for (const mode of MODES) {
  describe(`5.3 log replication [${mode}]`, () => {
    test('entries commit once on a majority and apply everywhere in order', () => {
      const c = new Cluster({ mode, voters: 3 });
      c.elect('n1');
      c.run(3);
      const commit = c.core('n1').log.commit;
      c.partition(['n1'], ['n2', 'n3']);
      c.propose('n1', 'a');
      c.deliverAll();
      c.run(3);
      assert.equal(c.core('n1').log.commit, commit, 'no commit without a majority');
      assert.deepEqual(c.applied('n1'), []);
      c.heal();
      c.partition(['n3']); // n1 + n2 are a majority
      c.run(10);
      assert.equal(c.core('n1').log.commit, commit + 1, 'committed on n1 + n2');
      assert.deepEqual(c.applied('n1'), ['a']);
      assert.deepEqual(c.applied('n2'), ['a']);
      c.propose('n1', 'b');
      c.run(1);
      c.propose('n1', 'c', 'd');
      c.run(1);
      c.heal();
      c.propose('n1', 'e');
      c.run(15);
      for (const id of c.voterIds) assert.deepEqual(c.applied(id), ['a', 'b', 'c', 'd', 'e'], `${id} applied in order`);
    });

    test('a follower with extra uncommitted entries from an old leader has them replaced', () => {
      const c = new Cluster({ mode, voters: 3 });
      c.elect('n1');
      c.propose('n1', 'a');
      c.run(3);
      c.isolate('n1');
      c.propose('n1', 'x1', 'x2', 'x3'); // only n1 ever holds these
      c.deliverAll();
      assert.equal(c.core('n1').log.lastIndex(), 5);
      assert.ok(c.forceCampaign('n2'), 'n2 wins with n3');
      c.propose('n2', 'b', 'c');
      c.deliverAll();
      assert.deepEqual(c.applied('n2'), ['a', 'b', 'c']);
      c.heal();
      c.run(30);
      assert.equal(c.leader(), 'n2');
      assert.deepEqual(logTerms(c, 'n1'), logTerms(c, 'n2'), 'n1 now holds the leader\'s log');
      for (const id of c.voterIds) assert.deepEqual(c.applied(id), ['a', 'b', 'c'], `${id} never applies the old leader's extras`);
    });

    test('a lagging follower catches up over many messages', () => {
      const c = new Cluster({ mode, voters: 3, config: { maxMessageBytes: 300 } });
      c.elect('n1');
      c.run(3);
      c.isolate('n3');
      const all = payloads('p', 100);
      for (let i = 0; i < 100; i += 10) {
        c.propose('n1', ...all.slice(i, i + 10));
        c.run(1);
      }
      assert.deepEqual(c.applied('n2'), all);
      assert.deepEqual(c.applied('n3'), []);
      c.heal();
      const since = c.ticks;
      c.runUntil(() => c.applied('n3').length === 100, 60, 'n3 caught up');
      assert.deepEqual(c.applied('n3'), all);
      const carriers = c.countSent((m) => m.to === 'n3' && entriesOf(m).length > 0, since);
      assert.ok(carriers >= 10, `the catch-up took several bounded messages (${carriers})`);
    });

    test('many proposals between two ready() calls travel in one message per follower', () => {
      const c = new Cluster({ mode, voters: 3 });
      c.elect('n1');
      c.run(10); // idle: push followers replicate, pull fetches are parked
      const before = c.sent.length;
      const batch = payloads('b', 20);
      c.propose('n1', ...batch); // 20 propose() calls, then one ready()
      const carriers = c.sent.slice(before).map((s) => s.msg).filter((m) => entriesOf(m).length > 0);
      assert.deepEqual(carriers.map((m) => m.to).sort(), ['n2', 'n3'], 'one message to each follower');
      for (const m of carriers) assert.equal(entriesOf(m).length, 20, `all 20 entries to ${m.to} at once`);
      c.run(3);
      for (const id of c.voterIds) assert.deepEqual(c.applied(id), batch);
    });
  });
}

describe('5.3 log replication, push flow control', () => {
  test('fast back-off with the conflict hint skips a long divergent log in a few round trips', () => {
    const c = new Cluster({ mode: 'push', voters: 3 });
    c.elect('n1');
    c.run(3);
    c.isolate('n1');
    c.propose('n1', ...payloads('old', 50)); // n1: indexes 2..51 of term 1, never committed
    c.deliverAll();
    assert.ok(c.forceCampaign('n2'));
    c.propose('n2', ...payloads('new', 50)); // n2, n3: no-op at 2, then 3..52 of term 2
    c.deliverAll();
    assert.equal(c.core('n3').log.commit, 52);
    c.crash('n2');
    c.heal();
    const before = c.sent.length;
    assert.ok(c.forceCampaign('n3'), 'n3 wins with the vote of n1, whose log is older');
    c.run(5);
    const fromN1 = c.sent.slice(before).map((s) => s.msg).filter((m) => m.type === 'appendResponse' && m.from === 'n1');
    const rejections = fromN1.filter((m) => m.type === 'appendResponse' && !m.success).length;
    assert.ok(rejections >= 1, 'the divergence was detected');
    assert.ok(rejections <= 3, `${rejections} rejections for a 50-entry divergent tail (one index per round trip would take ~50)`);
    assert.deepEqual(logTerms(c, 'n1'), logTerms(c, 'n3'));
    assert.deepEqual(c.applied('n1'), payloads('new', 50));
    assert.equal(c.core('n3').log.commit, 53, 'n3\'s no-op committed with n1');
  });

  test('the window of in-flight AppendEntries never exceeds maxInflightMessages', () => {
    const window = 3;
    const c = new Cluster({ mode: 'push', voters: 3, config: { maxInflightMessages: window, maxMessageBytes: 64 } });
    c.elect('n1');
    c.run(3);
    const before = c.sent.length;
    const all = payloads('w', 40); // about two entries per message
    c.propose('n1', ...all);
    const isCarrierTo = (to: string) => (m: Message): boolean => m.type === 'append' && m.to === to && m.entries.length > 0;
    for (const f of ['n2', 'n3']) {
      assert.equal(c.sent.slice(before).filter((s) => isCarrierTo(f)(s.msg)).length, window, `the window to ${f} fills, then stops`);
    }
    const acked = new Map<string, number>([['n2', 0], ['n3', 0]]);
    for (let steps = 0; c.queue.length > 0; steps++) {
      assert.ok(steps < 10_000);
      const m = c.queue[0] as Message;
      c.deliver((x) => x === m);
      if (m.type === 'appendResponse' && m.success) acked.set(m.from, (acked.get(m.from) ?? 0) + 1);
      for (const f of ['n2', 'n3']) {
        const out = c.sent.slice(before).filter((s) => isCarrierTo(f)(s.msg)).length - (acked.get(f) ?? 0);
        assert.ok(out <= window, `${out} AppendEntries in flight to ${f}`);
      }
    }
    const carriers = c.sent.slice(before).filter((s) => isCarrierTo('n2')(s.msg)).length;
    assert.ok(carriers >= 15, `the window refilled as answers came back (${carriers} messages)`);
    c.run(3);
    for (const id of c.voterIds) assert.deepEqual(c.applied(id), all);
  });
});
