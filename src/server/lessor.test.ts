// The lessor on fake time, over a real KvStore: renewals move deadlines,
// an expired lease gets exactly one revoke (retried only after revokeRetryMs
// if it did not apply), a new leader restarts every deadline at its full TTL,
// a follower decides nothing, and keep-alives wait for the barrier and are
// refused when leadership was lost meanwhile.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KvStore } from '../services/kv/store.js';
import type { KvCommand } from '../services/kv/types.js';
import { Lessor, LessorNotLeaderError } from './lessor.js';

const b = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'));

/** A lessor over a store, with a fake clock, leadership and barrier under the test's control. */
function setup(opts: { applyRevokes?: boolean; applyEpochs?: boolean; revokeRetryMs?: number } = {}) {
  const store = new KvStore();
  const clock = { now: 0 };
  const leadership = { leader: true, term: 1 };
  const proposed: number[] = [];
  const epochs: number[] = [];
  let barrierGate: Promise<void> | null = null;
  const lessor = new Lessor({
    leases: store,
    now: () => clock.now,
    leadership: () => ({ ...leadership }),
    barrier: () => barrierGate ?? Promise.resolve(),
    proposeExpire: (id, term) => {
      proposed.push(id);
      if (opts.applyRevokes === false) return Promise.reject(new Error('not committed'));
      return Promise.resolve(store.apply({ type: 'leaseExpire', request: { id, term } }));
    },
    proposeEpoch: (term) => {
      epochs.push(term);
      if (opts.applyEpochs === false) return Promise.reject(new Error('not committed'));
      return Promise.resolve(store.apply({ type: 'leaseEpoch', request: { term } }));
    },
    ...(opts.revokeRetryMs !== undefined ? { revokeRetryMs: opts.revokeRetryMs } : {}),
  });
  const apply = (cmd: KvCommand): void => {
    const r = store.apply(cmd);
    assert.notEqual(r.type, 'error', JSON.stringify(r));
  };
  const grant = (id: number, ttlSeconds: number): void => apply({ type: 'leaseGrant', request: { id, ttlSeconds } });
  /** Advances the clock to `ms`, checking every 100 ms on the way as the timer would. */
  const advanceTo = (ms: number): void => {
    while (clock.now + 100 <= ms) {
      clock.now += 100;
      lessor.check();
    }
    clock.now = ms;
    lessor.check();
  };
  const gate = (): (() => void) => {
    let open!: () => void;
    barrierGate = new Promise<void>((r) => (open = () => r()));
    return () => {
      barrierGate = null;
      open();
    };
  };
  return { store, clock, leadership, proposed, epochs, lessor, apply, grant, advanceTo, gate };
}

const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('lessor', () => {
  it('expires a lease TTL after its grant, with one revoke that deletes its keys', async () => {
    const t = setup();
    t.lessor.check(); // becomes leader at 0
    t.grant(1, 10);
    t.apply({ type: 'put', request: { key: b('k'), value: b('v'), lease: 1, prevKv: false, ignoreValue: false, ignoreLease: false } });
    t.advanceTo(9_999);
    assert.deepEqual(t.proposed, [], 'not before the TTL');
    t.advanceTo(10_000);
    assert.deepEqual(t.proposed, [1]);
    t.advanceTo(12_000);
    assert.deepEqual(t.proposed, [1], 'one revoke');
    assert.equal(t.store.lease(1), null);
    assert.equal(t.store.range({ key: b('k'), rangeEnd: b(''), limit: 0, revision: 0, sortOrder: 'none', sortTarget: 'key', serializable: false, keysOnly: false, countOnly: false, minModRevision: 0, maxModRevision: 0, minCreateRevision: 0, maxCreateRevision: 0 }).count, 0);
    assert.equal(t.lessor.stats.revokesProposed, 1);
  });

  it('a keep-alive moves the deadline to arrival + TTL and answers the TTL; an unknown lease answers 0', async () => {
    const t = setup();
    t.lessor.check();
    t.grant(1, 10);
    t.advanceTo(8_000);
    assert.equal(await t.lessor.renew(1), 10);
    assert.equal(t.lessor.deadlineOf(1), 18_000);
    t.advanceTo(17_900);
    assert.deepEqual(t.proposed, []);
    assert.deepEqual(await t.lessor.timeToLive(1), { remainingSeconds: 0, grantedSeconds: 10 });
    t.advanceTo(18_000);
    assert.deepEqual(t.proposed, [1]);
    assert.equal(await t.lessor.renew(1), 0, 'revoked');
    assert.equal(await t.lessor.renew(42), 0);
    assert.equal(await t.lessor.timeToLive(42), null);
    assert.equal(t.lessor.stats.renewals, 1);
  });

  it('timeToLive truncates the remaining seconds, as etcd does', async () => {
    const t = setup();
    t.lessor.check();
    t.grant(5, 10);
    assert.deepEqual(await t.lessor.timeToLive(5), { remainingSeconds: 10, grantedSeconds: 10 });
    t.advanceTo(1);
    assert.deepEqual(await t.lessor.timeToLive(5), { remainingSeconds: 9, grantedSeconds: 10 });
    t.advanceTo(9_500);
    assert.deepEqual(await t.lessor.timeToLive(5), { remainingSeconds: 0, grantedSeconds: 10 });
  });

  it('a keep-alive that arrives after the deadline is answered 0 once the revoke applied', async () => {
    const t = setup();
    t.lessor.check();
    t.grant(1, 10);
    t.clock.now = 10_500; // no check ran since: the timer was late
    assert.equal(await t.lessor.renew(1), 0);
    assert.deepEqual(t.proposed, [1]);
    assert.equal(t.store.lease(1), null);
  });

  it('a revoke that does not apply is proposed again only after revokeRetryMs; a keep-alive meanwhile is refused', async () => {
    const t = setup({ applyRevokes: false, revokeRetryMs: 1000 });
    t.lessor.check();
    t.grant(1, 2);
    t.advanceTo(2_000);
    assert.deepEqual(t.proposed, [1]);
    await settle();
    t.advanceTo(2_900);
    assert.deepEqual(t.proposed, [1]);
    await assert.rejects(t.lessor.renew(1), LessorNotLeaderError);
    t.advanceTo(3_000);
    assert.deepEqual(t.proposed, [1, 1]);
  });

  it('leadership change: the new leader restarts every deadline at its full TTL (never early)', () => {
    const t = setup();
    t.lessor.check();
    t.grant(1, 10);
    t.grant(2, 4);
    t.advanceTo(8_000);
    // Lease 2 expired at 4 s on this leader.
    assert.deepEqual(t.proposed, [2]);
    t.leadership.leader = false;
    t.advanceTo(9_000);
    assert.equal(t.lessor.leading, false);
    assert.equal(t.lessor.deadlineOf(1), undefined, 'a follower keeps no deadlines');
    // Leader again in a later term (as if another node had led in between).
    t.leadership.leader = true;
    t.leadership.term = 3;
    t.clock.now = 9_500;
    t.lessor.check();
    assert.equal(t.lessor.deadlineOf(1), 19_500, 'full TTL from the moment it leads');
    t.advanceTo(19_400);
    assert.deepEqual(t.proposed, [2], 'lease 1 not revoked at its old deadline (10 s)');
    t.advanceTo(19_500);
    assert.deepEqual(t.proposed, [2, 1]);
    assert.equal(t.lessor.stats.leaderships, 2);
  });

  it('a new term without a visible step-down (leader in term 1, then in term 2) also resets', () => {
    const t = setup();
    t.lessor.check();
    t.grant(1, 10);
    t.advanceTo(9_000);
    t.leadership.term = 2;
    t.advanceTo(9_100);
    assert.equal(t.lessor.deadlineOf(1), 19_100);
  });

  it('a follower makes no expiry decisions, however long it waits; a grant applied there sets no deadline', async () => {
    const t = setup();
    t.leadership.leader = false;
    t.grant(1, 1);
    t.advanceTo(60_000);
    assert.deepEqual(t.proposed, []);
    assert.equal(t.lessor.deadlineOf(1), undefined);
    await assert.rejects(t.lessor.renew(1), LessorNotLeaderError);
    await assert.rejects(t.lessor.timeToLive(1), LessorNotLeaderError);
    t.leadership.leader = true;
    t.advanceTo(60_100);
    assert.equal(t.lessor.deadlineOf(1), 61_100);
  });

  it('a keep-alive waits for the barrier, and is refused if leadership was lost meanwhile', async () => {
    const t = setup();
    t.lessor.check();
    t.grant(1, 10);
    let open = t.gate();
    const p = t.lessor.renew(1);
    t.clock.now = 500;
    open();
    assert.equal(await p, 10);
    assert.equal(t.lessor.deadlineOf(1), 10_000, 'counted from arrival (0), never past what it was');
    t.clock.now = 3_000;
    open = t.gate();
    const q = t.lessor.renew(1);
    t.leadership.leader = false;
    open();
    await assert.rejects(q, LessorNotLeaderError);
  });

  it('a new leader decides nothing (no expiry, no keep-alive) until its lease epoch has applied; the epoch is retried', async () => {
    const t = setup({ applyEpochs: false, revokeRetryMs: 1000 });
    t.grant(1, 1);
    t.lessor.check();
    assert.deepEqual(t.epochs, [1]);
    assert.equal(t.lessor.leading, true);
    assert.equal(t.lessor.deciding, false);
    t.advanceTo(5_000);
    assert.deepEqual(t.proposed, [], 'no expiry before the epoch');
    assert.ok(t.epochs.length >= 5, `epoch retried every second (${t.epochs.length})`);
    await assert.rejects(t.lessor.renew(1), LessorNotLeaderError);
    // The epoch commits (a retry got through): deadlines start now.
    t.apply({ type: 'leaseEpoch', request: { term: 1 } });
    assert.equal(t.lessor.deciding, true);
    assert.equal(t.lessor.deadlineOf(1), 6_000);
    assert.equal(await t.lessor.renew(1), 1);
    // A later leader's epoch applied here (this node was deposed without noticing yet): it stops deciding.
    t.apply({ type: 'leaseEpoch', request: { term: 2 } });
    t.store.restore(t.store.snapshot());
    assert.equal(t.lessor.deciding, false);
    t.advanceTo(20_000);
    assert.deepEqual(t.proposed, []);
  });

  it('an expiry carries the leader\'s term: proposed by a deposed leader, it changes nothing once a later epoch applied', () => {
    const t = setup();
    t.lessor.check();
    t.grant(1, 2);
    t.apply({ type: 'leaseEpoch', request: { term: 5 } }); // the next leader took over before this one's expiry applied
    t.advanceTo(2_000);
    assert.deepEqual(t.proposed, [], 'no longer deciding: the store names a later epoch');
    assert.deepEqual(t.store.apply({ type: 'leaseExpire', request: { id: 1, term: 1 } }), { type: 'leaseExpire', expired: false, deleted: 0, revision: 1 });
    assert.notEqual(t.store.lease(1), null);
  });

  it('leases granted and revoked while leading are followed; a restore resets every deadline', () => {
    const t = setup();
    t.lessor.check();
    t.grant(1, 10);
    t.advanceTo(1_000);
    t.grant(2, 10);
    assert.equal(t.lessor.deadlineOf(2), 11_000);
    t.apply({ type: 'leaseRevoke', request: { id: 2 } });
    assert.equal(t.lessor.deadlineOf(2), undefined);
    const snap = t.store.snapshot();
    t.advanceTo(5_000);
    t.store.restore(snap);
    assert.equal(t.lessor.deadlineOf(1), 15_000);
    t.lessor.stop();
  });
});
