// The asynchronous persistence contract (ready.ts), on the core alone: Readies
// handed out while earlier ones are not yet durable, acknowledged in order by
// persisted(); a leader counts its own entries only then; committed entries
// are handed out only once durable here; the in-flight bound. Run in both
// replication modes. (The simulator checks the same rules under faults, with
// planted bugs countOwnBeforeDurable and ackUnsyncedReadies.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nodeId, type NodeId } from '../protocol/ids.js';
import type { Message } from '../protocol/messages.js';
import { Prng } from '../util/prng.js';
import type { ReplicationMode } from './config.js';
import { ApiMisuseError } from './errors.js';
import { RaftNode } from './node.js';
import type { Ready } from './ready.js';

const enc = new TextEncoder();
const MODES: readonly ReplicationMode[] = ['push', 'pull'];

/** Ticks a lone voter until it leads, taking and acknowledging every Ready at once. */
function loneLeader(mode: ReplicationMode, maxInflightReadies = 64): RaftNode {
  const n = new RaftNode({ id: nodeId('a'), voters: [nodeId('a')], replication: mode, random: new Prng(7), maxInflightReadies });
  for (let i = 0; i < 100 && n.role.kind !== 'leader'; i++) {
    n.tick();
    settle(n);
  }
  assert.equal(n.role.kind, 'leader');
  settle(n);
  return n;
}

/** Takes every Ready and acknowledges each at once (synchronous persistence). */
function settle(n: RaftNode): void {
  while (n.hasReady()) {
    const r = n.ready();
    n.advance(r);
    n.persisted(r);
  }
}

/** Takes one Ready and advances, leaving it in flight. */
function take(n: RaftNode): Ready {
  const r = n.ready();
  n.advance(r);
  return r;
}

for (const mode of MODES) {
  test(`${mode}: a lone leader commits its entry only once persisted() says it is durable`, () => {
    const n = loneLeader(mode);
    const index = n.propose([enc.encode('x')]);
    const r = take(n);
    assert.deepEqual(r.entries.map((e) => e.index), [index]);
    assert.ok(n.log.commit < index, 'not committed while its only copy is in flight');
    assert.equal(n.hasReady(), false, 'nothing to do until the write is durable');
    n.persisted(r);
    assert.equal(n.log.commit, index, 'committed once durable');
    const next = take(n);
    assert.deepEqual(next.committed.map((e) => e.index), [index], 'and then handed out to apply');
    n.persisted(next);
  });

  test(`${mode}: Readies overlap; persisted() must follow their order`, () => {
    const n = loneLeader(mode);
    const i1 = n.propose([enc.encode('one')]);
    const r1 = take(n);
    const i2 = n.propose([enc.encode('two')]);
    const r2 = take(n);
    assert.deepEqual([r1.entries[0]?.index, r2.entries[0]?.index], [i1, i2], 'the second Ready carries only the new entry');
    assert.ok(r2.seq > r1.seq);
    assert.throws(() => n.persisted(r2), ApiMisuseError, 'out of order');
    n.persisted(r1);
    assert.equal(n.log.commit, i1, 'the first entry commits alone');
    n.persisted(r2);
    assert.equal(n.log.commit, i2);
    settle(n);
    assert.equal(n.log.applied, i2);
  });

  test(`${mode}: at most maxInflightReadies are handed out before one is durable`, () => {
    const n = loneLeader(mode, 2);
    const taken: Ready[] = [];
    for (let i = 0; i < 5; i++) {
      n.propose([enc.encode(`p${i}`)]);
      if (n.hasReady()) taken.push(take(n));
    }
    assert.equal(taken.length, 2);
    assert.equal(n.inflightReadies(), 2);
    assert.throws(() => n.ready(), ApiMisuseError);
    n.persisted(taken[0] as Ready);
    assert.equal(n.hasReady(), true, 'room again after the oldest is durable');
  });
}

/** Three voters; a delivers messages by hand. Returns the leader a and its followers. */
function threeVoters(mode: ReplicationMode): { nodes: Map<NodeId, RaftNode>; net: Message[] } {
  const ids = ['a', 'b', 'c'].map(nodeId);
  const rng = new Prng(3);
  const nodes = new Map(ids.map((id) => [id, new RaftNode({ id, voters: ids, replication: mode, random: rng.fork() })]));
  const net: Message[] = [];
  const a = nodes.get(ids[0] as NodeId) as RaftNode;
  for (let i = 0; i < 200 && a.role.kind !== 'leader'; i++) {
    a.tick();
    pump(nodes, net);
  }
  assert.equal(a.role.kind, 'leader');
  for (let i = 0; i < 50; i++) {
    for (const n of nodes.values()) n.tick();
    pump(nodes, net);
  }
  return { nodes, net };
}

/** Synchronous persistence everywhere, every message delivered, until quiet. */
function pump(nodes: Map<NodeId, RaftNode>, net: Message[]): void {
  for (let guard = 0; guard < 1000; guard++) {
    for (const n of nodes.values()) {
      while (n.hasReady()) {
        const r = n.ready();
        net.push(...r.messages);
        n.advance(r);
        n.persisted(r);
        net.push(...r.persistedMessages);
      }
    }
    const m = net.shift();
    if (m === undefined) return;
    nodes.get(m.to)?.step(m);
  }
}

for (const mode of MODES) {
  test(`${mode}: a follower applies a committed entry only once its own copy is durable, and acknowledges only then`, () => {
    const { nodes, net } = threeVoters(mode);
    const a = nodes.get(nodeId('a')) as RaftNode;
    const b = nodes.get(nodeId('b')) as RaftNode;
    const index = a.propose([enc.encode('v')]);
    // The leader's own write is durable at once; b's and c's are held.
    const held = new Map<NodeId, Ready[]>();
    for (let guard = 0; guard < 500; guard++) {
      for (const [id, n] of nodes) {
        while (n.hasReady()) {
          const r = n.ready();
          net.push(...r.messages);
          n.advance(r);
          if (id === 'a') {
            n.persisted(r);
            net.push(...r.persistedMessages);
          } else {
            held.set(id, [...(held.get(id) ?? []), r]);
          }
        }
      }
      const m = net.shift();
      if (m === undefined) break;
      nodes.get(m.to)?.step(m);
    }
    assert.ok(b.log.lastIndex() >= index, 'b holds the entry in memory');
    assert.ok(a.log.commit < index, 'no follower has acknowledged: not committed');
    const acks = (held.get(nodeId('b')) ?? []).flatMap((r) => r.persistedMessages);
    assert.ok(acks.length > 0, "b's acknowledgement waits in its Ready");
    for (const r of held.get(nodeId('b')) ?? []) {
      assert.ok(r.committed.every((e) => e.index <= b.log.stable), 'only durable entries are handed out to apply');
      b.persisted(r);
    }
    for (const m of acks) a.step(m);
    assert.ok(a.log.commit >= index, "b's acknowledgement, sent once durable, commits the entry");
  });
}
