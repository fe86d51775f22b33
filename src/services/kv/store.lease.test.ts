// Leases in the KvStore, as etcd's lessor and mvcc treat them: grant (id and
// TTL decided by the proposer), put with a lease attaches the key (the lease
// must exist), a re-put without the lease or a delete detaches it, revoke
// deletes every attached key in one revision and watchers see the deletes,
// snapshots carry leases (format 2, format 1 still read), an expiry from a
// deposed leader's term is ignored once a later epoch applied, and a property
// test: random commands keep the lease invariants and survive snapshot and
// codec round trips identically.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { decodeCommand, encodeCommand, ByteWriter } from './codec.js';
import { KvSnapshotError, KvStore } from './store.js';
import type { KvCommand, KvEvent, KvResult, LeaseChange, RangeRequest } from './types.js';

const b = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'));
const str = (u: Uint8Array): string => Buffer.from(u).toString('latin1');

function put(key: string, value: string, lease = 0, opts: Partial<{ ignoreLease: boolean; ignoreValue: boolean }> = {}): KvCommand {
  return { type: 'put', request: { key: b(key), value: b(value), lease, prevKv: false, ignoreValue: false, ignoreLease: false, ...opts } };
}
const del = (key: string, rangeEnd = ''): KvCommand => ({ type: 'deleteRange', request: { key: b(key), rangeEnd: b(rangeEnd), prevKv: false } });
const grant = (id: number, ttlSeconds: number): KvCommand => ({ type: 'leaseGrant', request: { id, ttlSeconds } });
const revoke = (id: number): KvCommand => ({ type: 'leaseRevoke', request: { id } });
const expire = (id: number, term: number): KvCommand => ({ type: 'leaseExpire', request: { id, term } });
const epoch = (term: number): KvCommand => ({ type: 'leaseEpoch', request: { term } });
function rq(key: string, rangeEnd = ''): RangeRequest {
  return {
    key: b(key), rangeEnd: b(rangeEnd), limit: 0, revision: 0, sortOrder: 'none', sortTarget: 'key', serializable: false,
    keysOnly: false, countOnly: false, minModRevision: 0, maxModRevision: 0, minCreateRevision: 0, maxCreateRevision: 0,
  };
}
function run(s: KvStore, cmd: KvCommand): KvResult {
  const r = s.apply(cmd);
  s.checkInvariants();
  return r;
}
const leaseOf = (s: KvStore, key: string): number | undefined => s.range(rq(key)).kvs[0]?.lease;
const keysOf = (s: KvStore, id: number): string[] => s.leaseKeys(id).map(str);

test('grant: no revision used; the id must be new; TTL in range; leases listed by id', () => {
  const s = new KvStore();
  assert.deepEqual(run(s, grant(7, 10)), { type: 'leaseGrant', id: 7, ttlSeconds: 10, revision: 1 });
  assert.equal(s.revision, 1, 'a grant uses no revision');
  const again = run(s, grant(7, 20));
  assert.equal(again.type === 'error' && again.error, 'leaseExists');
  assert.deepEqual(s.lease(7), { id: 7, ttlSeconds: 10 });
  const big = run(s, grant(8, 9_000_000_001));
  assert.equal(big.type === 'error' && big.error, 'leaseTtlTooLarge');
  run(s, grant(-3, 5));
  run(s, grant(2, 5));
  assert.deepEqual(s.leases().map((l) => l.id), [-3, 2, 7]);
  assert.equal(s.leaseCount, 3);
  assert.equal(s.lease(99), null);
});

test('put with a lease attaches the key; the lease must exist; ignoreLease keeps it', () => {
  const s = new KvStore();
  const missing = run(s, put('k', 'v', 5));
  assert.equal(missing.type === 'error' && missing.error, 'leaseNotFound');
  assert.equal(s.revision, 1);
  run(s, grant(5, 10));
  run(s, put('k', 'v', 5));
  run(s, put('j', 'v', 5));
  assert.equal(leaseOf(s, 'k'), 5);
  assert.deepEqual(keysOf(s, 5), ['j', 'k']);
  run(s, put('k', 'v2', 0, { ignoreLease: true }));
  assert.equal(leaseOf(s, 'k'), 5, 'ignoreLease keeps the lease');
  assert.deepEqual(keysOf(s, 5), ['j', 'k']);
  // A txn's put checks the lease too.
  const t = run(s, { type: 'txn', request: { compare: [], success: [{ type: 'put', request: (put('x', '1', 6) as Extract<KvCommand, { type: 'put' }>).request }], failure: [] } });
  assert.equal(t.type === 'error' && t.error, 'leaseNotFound');
});

test('a re-put without the lease, or with another, detaches; a delete detaches', () => {
  const s = new KvStore();
  run(s, grant(1, 10));
  run(s, grant(2, 10));
  run(s, put('a', '1', 1));
  run(s, put('b', '1', 1));
  run(s, put('c', '1', 1));
  run(s, put('a', '2'));
  assert.equal(leaseOf(s, 'a'), 0);
  run(s, put('b', '2', 2));
  assert.deepEqual(keysOf(s, 1), ['c']);
  assert.deepEqual(keysOf(s, 2), ['b']);
  run(s, del('c'));
  assert.deepEqual(keysOf(s, 1), []);
  // Revoking lease 1 now deletes nothing and uses no revision.
  const rev = s.revision;
  assert.deepEqual(run(s, revoke(1)), { type: 'leaseRevoke', deleted: 0, revision: rev });
  assert.equal(s.lease(1), null);
  assert.equal(str(s.range(rq('a')).kvs[0]?.value ?? b('')), '2', 'a detached key survives the revoke');
});

test('revoke deletes every attached key in one revision, in key order, and watchers see the deletes', () => {
  const s = new KvStore();
  run(s, grant(9, 30));
  run(s, put('svc/b', 'B', 9));
  run(s, put('svc/a', 'A', 9));
  run(s, put('other', 'O'));
  const seen: [readonly KvEvent[], number][] = [];
  s.onEvents((events, revision) => seen.push([events, revision]));
  const changes: LeaseChange[] = [];
  s.onLeaseChange((c) => changes.push(c));
  const before = s.revision;
  const r = run(s, revoke(9));
  assert.deepEqual(r, { type: 'leaseRevoke', deleted: 2, revision: before + 1 });
  assert.equal(seen.length, 1, 'one revision');
  const [events, revision] = seen[0] as [readonly KvEvent[], number];
  assert.equal(revision, before + 1);
  assert.deepEqual(events.map((e) => [e.type, str(e.kv.key), e.kv.modRevision]), [['delete', 'svc/a', before + 1], ['delete', 'svc/b', before + 1]]);
  assert.deepEqual(events.map((e) => e.prevKv?.lease), [9, 9]);
  assert.deepEqual(s.eventsSince(before + 1, b('svc/'), b('svc0'), false, 0).map((e) => str(e.kv.key)), ['svc/a', 'svc/b']);
  assert.equal(s.range(rq('svc/', 'svc0')).count, 0);
  assert.equal(str(s.range(rq('other')).kvs[0]?.value ?? b('')), 'O');
  assert.deepEqual(changes, [{ type: 'revoke', id: 9 }]);
  const gone = run(s, revoke(9));
  assert.equal(gone.type === 'error' && gone.error, 'leaseNotFound');
  const late = run(s, put('svc/a', 'again', 9));
  assert.equal(late.type === 'error' && late.error, 'leaseNotFound');
});

test('a txn put and delete in one revision keep the attachment right', () => {
  const s = new KvStore();
  run(s, grant(3, 10));
  const p = (put('k', 'v', 3) as Extract<KvCommand, { type: 'put' }>).request;
  // A put in one nested txn and a delete of it in a later sibling pass etcd's checks; the key ends deleted.
  run(s, {
    type: 'txn',
    request: {
      compare: [],
      success: [
        { type: 'txn', request: { compare: [], success: [{ type: 'put', request: p }], failure: [] } },
        { type: 'txn', request: { compare: [], success: [{ type: 'deleteRange', request: { key: b('k'), rangeEnd: b(''), prevKv: false } }], failure: [] } },
      ],
      failure: [],
    },
  });
  assert.deepEqual(keysOf(s, 3), []);
  run(s, { type: 'txn', request: { compare: [], success: [{ type: 'put', request: p }], failure: [] } });
  assert.deepEqual(keysOf(s, 3), ['k']);
});

test('snapshot round trip keeps leases and attachments; format 1 snapshots still restore', () => {
  const s = new KvStore();
  run(s, grant(11, 60));
  run(s, grant(12, 5));
  run(s, put('a', '1', 11));
  run(s, put('b', '1', 12));
  run(s, put('c', '1'));
  run(s, put('b', '2', 11));
  run(s, { type: 'compact', request: { revision: 3, physical: false } });
  const snap = s.snapshot();
  const t = new KvStore();
  const changes: LeaseChange[] = [];
  t.onLeaseChange((c) => changes.push(c));
  t.restore(snap);
  t.checkInvariants();
  assert.deepEqual(changes, [{ type: 'reset' }]);
  assert.deepEqual(t.snapshot(), snap, 'identical state, identical bytes');
  assert.deepEqual(t.leases(), [{ id: 11, ttlSeconds: 60 }, { id: 12, ttlSeconds: 5 }]);
  assert.deepEqual(keysOf(t, 11), ['a', 'b']);
  assert.deepEqual(keysOf(t, 12), []);
  run(t, revoke(11));
  assert.equal(t.range(rq('a', 'c')).count, 0);

  // Format 1: the same bytes without the lease section, version 1 (only possible with no leased keys).
  const plain = new KvStore();
  run(plain, put('x', '1'));
  const v2 = plain.snapshot();
  const v1 = v2.slice(0, v2.length - 2); // drop "count 0 leases" and "leaseTerm 0"
  v1[4] = 2; // zigzag(1)
  const u = new KvStore();
  u.restore(v1);
  u.checkInvariants();
  assert.equal(str(u.range(rq('x')).kvs[0]?.value ?? b('')), '1');
  assert.equal(u.leaseCount, 0);
});

test('restore refuses lease sections that are malformed or inconsistent, leaving the store unchanged', () => {
  const s = new KvStore();
  run(s, grant(4, 10));
  run(s, put('k', 'v', 4));
  const good = s.snapshot();
  // The lease section is the tail: count 1, int 4 (zigzag 8), int 10 (zigzag 20), then leaseTerm 0.
  assert.deepEqual([...good.subarray(good.length - 4)], [1, 8, 20, 0]);
  const cases: Uint8Array[] = [];
  const withLeases = (...bytes: number[]): Uint8Array => new Uint8Array([...good.subarray(0, good.length - 4), ...bytes]);
  cases.push(withLeases(0, 0)); // no leases, but a key names lease 4
  cases.push(withLeases(1, 0, 20, 0)); // lease id 0
  cases.push(withLeases(1, 8, 0, 0)); // TTL 0
  cases.push(withLeases(2, 8, 20, 8, 20, 0)); // duplicate id
  cases.push(withLeases(1, 8, 20, 1)); // negative lease term
  cases.push(withLeases(1, 8, 20)); // no lease term
  cases.push(withLeases(1, 8, 20, 0, 0)); // trailing byte
  const w = new ByteWriter();
  w.raw(good.subarray(0, 4));
  w.int(1); // format 1 with a leased key
  w.raw(good.subarray(5, good.length - 4));
  cases.push(w.finish());
  for (const bad of cases) {
    const t = new KvStore();
    run(t, put('keep', 'me'));
    assert.throws(() => t.restore(bad), KvSnapshotError);
    assert.equal(t.range(rq('keep')).count, 1);
    t.checkInvariants();
  }
});

test('an expiry from an older term than the latest epoch changes nothing; epochs only grow and survive snapshots', () => {
  const s = new KvStore();
  const changes: LeaseChange[] = [];
  s.onLeaseChange((c) => changes.push(c));
  run(s, grant(1, 10));
  run(s, grant(2, 10));
  run(s, put('k1', 'v', 1));
  run(s, put('k2', 'v', 2));
  assert.deepEqual(run(s, epoch(3)), { type: 'leaseEpoch', term: 3, revision: s.revision });
  assert.equal(s.leaseTerm, 3);
  assert.deepEqual(run(s, epoch(2)), { type: 'leaseEpoch', term: 3, revision: s.revision }, 'never back');
  const rev = s.revision;
  // The leader of term 2 decided lease 1 expired, but its expiry arrives after term 3's epoch: nothing happens.
  assert.deepEqual(run(s, expire(1, 2)), { type: 'leaseExpire', expired: false, deleted: 0, revision: rev });
  assert.notEqual(s.lease(1), null);
  assert.equal(s.range(rq('k1')).count, 1);
  // The current leader's expiry revokes, in one revision.
  assert.deepEqual(run(s, expire(1, 3)), { type: 'leaseExpire', expired: true, deleted: 1, revision: rev + 1 });
  assert.equal(s.lease(1), null);
  assert.deepEqual(run(s, expire(1, 3)), { type: 'leaseExpire', expired: false, deleted: 0, revision: rev + 1 }, 'already gone');
  // A client's revoke is unconditional.
  assert.deepEqual(run(s, revoke(2)), { type: 'leaseRevoke', deleted: 1, revision: rev + 2 });
  assert.deepEqual(changes, [
    { type: 'grant', lease: { id: 1, ttlSeconds: 10 } }, { type: 'grant', lease: { id: 2, ttlSeconds: 10 } },
    { type: 'epoch', term: 3 }, { type: 'revoke', id: 1 }, { type: 'revoke', id: 2 },
  ]);
  const t = new KvStore();
  t.restore(s.snapshot());
  assert.equal(t.leaseTerm, 3);
});

test('lease commands round-trip through the codec; bad ids, TTLs and terms are refused both ways', () => {
  for (const cmd of [grant(1, 1), grant(-(2 ** 53 - 1), 9_000_000_000), revoke(2 ** 53 - 1), revoke(-1), expire(5, 1), expire(-5, 2 ** 40), epoch(1), epoch(2 ** 53 - 1)]) {
    const bytes = encodeCommand(cmd);
    assert.deepEqual(decodeCommand(bytes), cmd);
    assert.deepEqual(encodeCommand(decodeCommand(bytes)), bytes);
  }
  for (const cmd of [grant(0, 5), grant(1, 0), grant(1, 9_000_000_001), grant(1.5, 5), revoke(0), expire(0, 1), expire(1, 0), epoch(0), epoch(-1)]) {
    assert.throws(() => encodeCommand(cmd), { name: 'KvCodecError' });
  }
  // Hand-made bytes: version 1, tag 5 (grant), id 0 / ttl 0; tag 6 (revoke) id 0; trailing byte.
  for (const bad of [[1, 5, 0, 2], [1, 5, 2, 0], [1, 6, 0], [1, 6, 2, 0], [1, 7, 2, 0], [1, 7, 0, 2], [1, 8, 0], [1, 8, 1], [1, 8, 2, 0]]) {
    assert.throws(() => decodeCommand(new Uint8Array(bad)), { name: 'KvCodecError' });
  }
});

// ---- property: random lease and key commands ----

const keyArb = fc.constantFrom('a', 'b', 'c', 'd');
const idArb = fc.constantFrom(1, 2, 3);
const cmdArb: fc.Arbitrary<KvCommand> = fc.oneof(
  fc.tuple(idArb, fc.integer({ min: 1, max: 100 })).map(([id, ttl]) => grant(id, ttl)),
  idArb.map(revoke),
  fc.tuple(idArb, fc.integer({ min: 1, max: 4 })).map(([id, term]) => expire(id, term)),
  fc.integer({ min: 1, max: 4 }).map(epoch),
  fc.tuple(keyArb, fc.constantFrom(0, 0, 1, 2, 3), fc.boolean()).map(([k, lease, ignoreLease]) => put(k, 'v', ignoreLease ? 0 : lease, { ignoreLease })),
  keyArb.map((k) => del(k)),
  fc.constant(del('a', '\x00')),
  fc.tuple(keyArb, keyArb, idArb).map(([k1, k2, lease]): KvCommand => ({
    type: 'txn',
    request: {
      compare: [],
      success: [
        { type: 'put', request: (put(k1, 'x', lease) as Extract<KvCommand, { type: 'put' }>).request },
        ...(k1 !== k2 ? [{ type: 'deleteRange' as const, request: { key: b(k2), rangeEnd: b(''), prevKv: false } }] : []),
      ],
      failure: [],
    },
  })),
);

test('property: lease invariants hold after any commands; keys of a lease are the live keys naming it; replicas agree; snapshots round-trip', () => {
  fc.assert(fc.property(fc.array(cmdArb, { maxLength: 60 }), (cmds) => {
    const s = new KvStore();
    const replica = new KvStore();
    for (const cmd of cmds) {
      const before = s.revision;
      const r = s.apply(cmd);
      const r2 = replica.apply(decodeCommand(encodeCommand(cmd)));
      assert.deepEqual(r2, r);
      s.checkInvariants();
      if ((cmd.type === 'leaseRevoke' && r.type === 'leaseRevoke') || (cmd.type === 'leaseExpire' && r.type === 'leaseExpire')) {
        assert.equal(s.revision, r.deleted > 0 ? before + 1 : before, 'a revoke takes at most one revision');
      }
      if (cmd.type === 'leaseExpire' && cmd.request.term < s.leaseTerm) assert.equal(r.type === 'leaseExpire' && r.expired, false, 'a stale expiry changes nothing');
      // Every live key's lease exists and lists it; every lease lists only live keys naming it.
      const live = s.range(rq('\x00', '\x00')).kvs;
      for (const l of s.leases()) {
        assert.deepEqual(keysOf(s, l.id), live.filter((kv) => kv.lease === l.id).map((kv) => str(kv.key)));
      }
      for (const kv of live) if (kv.lease !== 0) assert.notEqual(s.lease(kv.lease), null);
    }
    const t = new KvStore();
    t.restore(s.snapshot());
    t.checkInvariants();
    assert.deepEqual(t.snapshot(), s.snapshot());
    assert.deepEqual(replica.snapshot(), s.snapshot());
    // The restored store behaves the same afterwards.
    for (const id of [1, 2, 3]) assert.deepEqual(t.apply(revoke(id)), s.apply(revoke(id)));
    assert.deepEqual(t.snapshot(), s.snapshot());
  }), { numRuns: 300 });
});
