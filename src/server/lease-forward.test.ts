// The lease channel: its frame codec is strict (round trips, every malformed
// input is a LeaseFrameError), and LeaseService answers from its own lessor
// when the node leads, forwards to the leader otherwise, retries refusals and
// silences until its deadline, and tells "no leader" from "timed out".
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { NoLeaderError, RequestTimeoutError } from '../node/errors.js';
import { nodeId, type NodeId } from '../protocol/ids.js';
import { KvStore } from '../services/kv/store.js';
import { decodeLeaseFrame, encodeLeaseFrame, LEASE_CHANNEL, LeaseFrameError, LeaseService, minLeaseTtlSeconds, type LeaseFrame, type LeaseHost } from './lease-forward.js';
import { Lessor } from './lessor.js';

describe('lease frames', () => {
  const frames: LeaseFrame[] = [
    { type: 'keepAlive', reqId: 1, leaseId: 2 ** 53 - 1 },
    { type: 'timeToLive', reqId: 7, leaseId: -5 },
    { type: 'keptAlive', reqId: 3, ttlSeconds: 0 },
    { type: 'timeToLiveIs', reqId: 4, remainingSeconds: -1, grantedSeconds: 0 },
    { type: 'timeToLiveIs', reqId: 4, remainingSeconds: 9, grantedSeconds: 10 },
    { type: 'refused', reqId: 2 ** 40 },
  ];

  it('round-trip', () => {
    for (const f of frames) assert.deepEqual(decodeLeaseFrame(encodeLeaseFrame(f)), f);
  });

  it('refuse out-of-range fields when encoding and decoding', () => {
    for (const f of [
      { type: 'keepAlive', reqId: 0, leaseId: 1 },
      { type: 'keepAlive', reqId: 1, leaseId: 0 },
      { type: 'keptAlive', reqId: 1, ttlSeconds: -1 },
      { type: 'timeToLiveIs', reqId: 1, remainingSeconds: -2, grantedSeconds: 1 },
      { type: 'refused', reqId: 1.5 },
    ] as LeaseFrame[]) assert.throws(() => encodeLeaseFrame(f), LeaseFrameError);
    for (const bad of [[], [2, 1, 2, 2], [1, 9, 2], [1, 1, 0, 2], [1, 1, 2, 0], [1, 5, 2, 0], [1, 1, 2], [1, 1, 0x80]]) {
      assert.throws(() => decodeLeaseFrame(new Uint8Array(bad)), LeaseFrameError, JSON.stringify(bad));
    }
  });

  it('random bytes decode to a frame that re-encodes identically, or a LeaseFrameError', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 24 }), (bytes) => {
      let f: LeaseFrame;
      try {
        f = decodeLeaseFrame(bytes);
      } catch (e) {
        assert.ok(e instanceof LeaseFrameError);
        return;
      }
      assert.deepEqual(encodeLeaseFrame(f), bytes);
    }), { numRuns: 2000 });
  });

  it('minimum TTL is 1.5 election timeouts in whole seconds', () => {
    assert.equal(minLeaseTtlSeconds(1000), 2);
    assert.equal(minLeaseTtlSeconds(100), 1);
    assert.equal(minLeaseTtlSeconds(2000), 3);
  });
});

/** Two or more nodes whose lease channels are wired together in memory; `drop` loses frames to a node. */
class Net {
  readonly handlers = new Map<NodeId, (from: NodeId, p: Uint8Array) => void>();
  leader: NodeId | null = null;
  readonly drop = new Set<NodeId>();
  readonly sent: { from: NodeId; to: NodeId; frame: LeaseFrame }[] = [];

  host(id: NodeId): LeaseHost {
    return {
      id,
      leaderId: () => this.leader,
      onChannel: (channel, h) => {
        assert.equal(channel, LEASE_CHANNEL);
        this.handlers.set(id, h);
      },
      sendChannel: (to, channel, payload) => {
        assert.equal(channel, LEASE_CHANNEL);
        this.sent.push({ from: id, to, frame: decodeLeaseFrame(payload) });
        if (this.drop.has(to)) return true;
        setImmediate(() => this.handlers.get(to)?.(id, payload));
        return true;
      },
    };
  }
}

function node(net: Net, id: NodeId, store: KvStore, leads: () => boolean = () => net.leader === id) {
  const lessor = new Lessor({
    leases: store,
    now: () => performance.now(),
    leadership: () => ({ leader: leads(), term: 1 }),
    barrier: () => Promise.resolve(),
    proposeExpire: (lease, term) => Promise.resolve(store.apply({ type: 'leaseExpire', request: { id: lease, term } })),
    proposeEpoch: (term) => Promise.resolve(store.apply({ type: 'leaseEpoch', request: { term } })),
  });
  const service = new LeaseService(net.host(id), lessor, { minTtlSeconds: 2, requestTimeoutMs: 400, attemptTimeoutMs: 100, retryMs: 20 });
  return { lessor, service };
}

describe('LeaseService', () => {
  const a = nodeId('a');
  const b = nodeId('b');

  it('answers on the leader, forwards from a follower, and answers TTL 0 / null for unknown leases', async () => {
    const net = new Net();
    net.leader = a;
    const storeA = new KvStore();
    const storeB = new KvStore();
    for (const s of [storeA, storeB]) s.apply({ type: 'leaseGrant', request: { id: 9, ttlSeconds: 30 } });
    const na = node(net, a, storeA);
    const nb = node(net, b, storeB);
    assert.equal(await na.service.keepAlive(9), 30);
    assert.equal(await nb.service.keepAlive(9), 30);
    assert.equal(await nb.service.keepAlive(10), 0);
    assert.deepEqual(await nb.service.timeToLive(9), { remainingSeconds: 29, grantedSeconds: 30 });
    assert.equal(await nb.service.timeToLive(10), null);
    assert.equal(nb.lessor.stats.renewals, 0, 'the follower renewed nothing itself');
    assert.equal(na.lessor.stats.renewals, 2);
    assert.ok(net.sent.some((m) => m.from === b && m.to === a && m.frame.type === 'keepAlive'));
    na.service.close();
    nb.service.close();
  });

  it('a refusal (the addressee does not lead) is retried until the leader is known', async () => {
    const net = new Net();
    net.leader = a; // b thinks a leads, but a's lessor does not lead yet: a refuses
    const storeA = new KvStore();
    const storeB = new KvStore();
    for (const s of [storeA, storeB]) s.apply({ type: 'leaseGrant', request: { id: 1, ttlSeconds: 5 } });
    // a's lessor refuses for a while (as a deposed leader would), then leads again.
    const leadership = { leader: false };
    const na = node(net, a, storeA, () => leadership.leader);
    const nb = node(net, b, storeB);
    setTimeout(() => (leadership.leader = true), 100);
    assert.equal(await nb.service.keepAlive(1), 5);
    assert.ok(nb.service.stats.retries >= 1);
    assert.ok(net.sent.some((m) => m.frame.type === 'refused'));
    na.service.close();
    nb.service.close();
  });

  it('no leader: NoLeaderError after the deadline; a silent leader: RequestTimeoutError', async () => {
    const net = new Net();
    const store = new KvStore();
    const nb = node(net, b, store);
    node(net, a, new KvStore());
    await assert.rejects(nb.service.keepAlive(1), NoLeaderError);
    net.leader = a;
    net.drop.add(a);
    const t0 = performance.now();
    await assert.rejects(nb.service.timeToLive(1), RequestTimeoutError);
    assert.ok(performance.now() - t0 < 1000);
    nb.service.close();
  });

  it('malformed frames are counted and dropped; late answers are ignored', async () => {
    const net = new Net();
    net.leader = a;
    const na = node(net, a, new KvStore());
    net.handlers.get(a)?.(b, new Uint8Array([1, 99]));
    net.handlers.get(a)?.(b, encodeLeaseFrame({ type: 'keptAlive', reqId: 12345, ttlSeconds: 1 }));
    assert.equal(na.service.stats.malformedFrames, 1);
    na.service.close();
  });
});
