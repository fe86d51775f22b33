// Example-based tests of KvStore against etcd v3's documented behaviour:
// revision numbering, versions across delete and recreate, ranges (at old
// revisions, limits, sorting, filters), txn branches and nesting, the txn
// checks (tooManyOps, duplicateKey), compaction, watch history and snapshots.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KvSnapshotError, KvStore, MAX_TXN_OPS } from './store.js';
import { KvError, type Compare, type KeyValue, type KvCommand, type KvEvent, type KvResult, type RangeRequest, type RequestOp, type TxnRequest } from './types.js';

const b = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'));
const str = (u: Uint8Array): string => Buffer.from(u).toString('latin1');

function put(key: string, value: string, opts: Partial<{ prevKv: boolean; ignoreValue: boolean; ignoreLease: boolean; lease: number }> = {}): KvCommand {
  return { type: 'put', request: { key: b(key), value: b(value), lease: 0, prevKv: false, ignoreValue: false, ignoreLease: false, ...opts } };
}
function del(key: string, rangeEnd = '', prevKv = false): KvCommand {
  return { type: 'deleteRange', request: { key: b(key), rangeEnd: b(rangeEnd), prevKv } };
}
function txn(t: Partial<TxnRequest>): KvCommand {
  return { type: 'txn', request: { compare: [], success: [], failure: [], ...t } };
}
function rq(key: string, rangeEnd = '', opts: Partial<RangeRequest> = {}): RangeRequest {
  return {
    key: b(key), rangeEnd: b(rangeEnd), limit: 0, revision: 0, sortOrder: 'none', sortTarget: 'key', serializable: false,
    keysOnly: false, countOnly: false, minModRevision: 0, maxModRevision: 0, minCreateRevision: 0, maxCreateRevision: 0, ...opts,
  };
}
const op = {
  put: (key: string, value: string): RequestOp => ({ type: 'put', request: (put(key, value) as Extract<KvCommand, { type: 'put' }>).request }),
  del: (key: string, rangeEnd = ''): RequestOp => ({ type: 'deleteRange', request: { key: b(key), rangeEnd: b(rangeEnd), prevKv: false } }),
  range: (key: string, rangeEnd = '', opts: Partial<RangeRequest> = {}): RequestOp => ({ type: 'range', request: rq(key, rangeEnd, opts) }),
  txn: (t: Partial<TxnRequest>): RequestOp => ({ type: 'txn', request: { compare: [], success: [], failure: [], ...t } }),
};
function cmpVersion(key: string, result: Compare['result'], version: number, rangeEnd = ''): Compare {
  return { target: 'version', result, key: b(key), rangeEnd: b(rangeEnd), version };
}
function cmpValue(key: string, result: Compare['result'], value: string, rangeEnd = ''): Compare {
  return { target: 'value', result, key: b(key), rangeEnd: b(rangeEnd), value: b(value) };
}

/** Applies and checks the store's invariants after the step. */
function run(store: KvStore, cmd: KvCommand): KvResult {
  const r = store.apply(cmd);
  store.checkInvariants();
  return r;
}
function keys(kvs: readonly KeyValue[]): string[] {
  return kvs.map((kv) => str(kv.key));
}
function get(store: KvStore, key: string, revision = 0): KeyValue | undefined {
  return store.range(rq(key, '', { revision })).kvs[0];
}
function errorOf(r: KvResult): string | undefined {
  return r.type === 'error' ? r.error : undefined;
}
function throwsKv(fn: () => unknown, code: string): void {
  assert.throws(fn, (e: unknown) => e instanceof KvError && e.code === code);
}

test('an empty store is at revision 1, compactRevision 0', () => {
  const s = new KvStore();
  assert.equal(s.revision, 1);
  assert.equal(s.compactRevision, 0);
  assert.deepEqual(s.range(rq('\0', '\0')), { kvs: [], more: false, count: 0 });
  s.checkInvariants();
});

test('revisions, versions and createRevision across put, delete and recreate (etcd numbering)', () => {
  const s = new KvStore();
  assert.deepEqual(run(s, put('foo', 'bar')), { type: 'put', response: { prevKv: null }, revision: 2 });
  assert.deepEqual(get(s, 'foo'), { key: b('foo'), createRevision: 2, modRevision: 2, version: 1, value: b('bar'), lease: 0 });
  const r2 = run(s, put('foo', 'baz', { prevKv: true }));
  assert.equal(r2.revision, 3);
  assert.equal(r2.type === 'put' && r2.response.prevKv?.version, 1);
  assert.deepEqual(get(s, 'foo'), { key: b('foo'), createRevision: 2, modRevision: 3, version: 2, value: b('baz'), lease: 0 });
  const d = run(s, del('foo', '', true));
  assert.equal(d.revision, 4);
  assert.equal(d.type === 'deleteRange' && d.response.deleted, 1);
  assert.equal(d.type === 'deleteRange' && str(d.response.prevKvs[0]?.value ?? b('')), 'baz');
  // Deleting nothing does not make a revision.
  assert.deepEqual(run(s, del('foo')), { type: 'deleteRange', response: { deleted: 0, prevKvs: [] }, revision: 4 });
  assert.equal(s.revision, 4);
  assert.equal(get(s, 'foo'), undefined);
  // Recreated: version 1 again, a new createRevision.
  assert.equal(run(s, put('foo', 'new')).revision, 5);
  assert.deepEqual(get(s, 'foo'), { key: b('foo'), createRevision: 5, modRevision: 5, version: 1, value: b('new'), lease: 0 });
  // Reads at old revisions.
  assert.equal(get(s, 'foo', 1), undefined);
  assert.equal(str(get(s, 'foo', 2)?.value ?? b('')), 'bar');
  assert.equal(get(s, 'foo', 3)?.version, 2);
  assert.equal(get(s, 'foo', 4), undefined);
  throwsKv(() => get(s, 'foo', 6), 'futureRevision');
});

test('put options: prevKv, ignoreValue, ignoreLease, lease, empty key', () => {
  const s = new KvStore();
  assert.deepEqual(run(s, put('k', '', { ignoreValue: true })), { type: 'error', error: 'keyNotFound', message: 'etcdserver: key not found', revision: 1 });
  assert.equal(errorOf(run(s, put('k', 'v', { ignoreLease: true }))), 'keyNotFound');
  assert.equal(errorOf(run(s, put('k', 'v', { lease: 7 }))), 'leaseNotFound');
  assert.equal(errorOf(run(s, put('', 'v'))), 'emptyKey');
  assert.equal(s.revision, 1, 'errors make no revision');
  run(s, put('k', 'v1'));
  const r = run(s, put('k', 'ignored', { ignoreValue: true, prevKv: true }));
  assert.equal(r.revision, 3);
  assert.equal(r.type === 'put' && str(r.response.prevKv?.value ?? b('')), 'v1');
  assert.deepEqual(get(s, 'k'), { key: b('k'), createRevision: 2, modRevision: 3, version: 2, value: b('v1'), lease: 0 });
  run(s, put('k', 'v3', { ignoreLease: true }));
  assert.equal(str(get(s, 'k')?.value ?? b('')), 'v3');
  // prevKv not asked: null.
  const r4 = run(s, put('k', 'v4'));
  assert.equal(r4.type === 'put' && r4.response.prevKv, null);
});

function abcd(): KvStore {
  const s = new KvStore();
  run(s, put('a', '4')); // rev 2
  run(s, put('b', '3')); // rev 3
  run(s, put('c', '2')); // rev 4
  run(s, put('d', '1')); // rev 5
  run(s, put('b', '33')); // rev 6, b version 2
  return s;
}

test('range: single key, [key, rangeEnd), >= key, all keys, prefix', () => {
  const s = abcd();
  run(s, put('\0x', 'z')); // rev 7: a key that starts with 0x00
  assert.deepEqual(keys(s.range(rq('b')).kvs), ['b']);
  assert.deepEqual(keys(s.range(rq('bb')).kvs), []);
  assert.deepEqual(keys(s.range(rq('b', 'd')).kvs), ['b', 'c']);
  assert.deepEqual(keys(s.range(rq('b', '\0')).kvs), ['b', 'c', 'd']);
  assert.deepEqual(keys(s.range(rq('\0', '\0')).kvs), ['\0x', 'a', 'b', 'c', 'd']);
  assert.deepEqual(keys(s.range(rq('d', 'b')).kvs), [], 'key >= rangeEnd is empty');
  run(s, put('ab', '')); // prefix "a": [a, b)
  assert.deepEqual(keys(s.range(rq('a', 'b')).kvs), ['a', 'ab']);
});

test('range: limit, more, count, countOnly, keysOnly', () => {
  const s = abcd();
  const r = s.range(rq('a', 'z', { limit: 2 }));
  assert.deepEqual(keys(r.kvs), ['a', 'b']);
  assert.equal(r.more, true);
  assert.equal(r.count, 4);
  assert.equal(s.range(rq('a', 'z', { limit: 4 })).more, false);
  assert.deepEqual(s.range(rq('a', 'z', { countOnly: true })), { kvs: [], more: false, count: 4 });
  const ko = s.range(rq('a', 'z', { keysOnly: true }));
  assert.deepEqual(ko.kvs.map((kv) => kv.value.length), [0, 0, 0, 0]);
  assert.equal(ko.kvs[1]?.version, 2);
  throwsKv(() => s.range(rq('')), 'emptyKey');
});

test('range: sort orders and targets (etcd defaults)', () => {
  const s = abcd();
  assert.deepEqual(keys(s.range(rq('a', 'z', { sortOrder: 'descend' })).kvs), ['d', 'c', 'b', 'a']);
  assert.deepEqual(keys(s.range(rq('a', 'z', { sortOrder: 'ascend' })).kvs), ['a', 'b', 'c', 'd']);
  // Target value with order none means ascend.
  assert.deepEqual(keys(s.range(rq('a', 'z', { sortTarget: 'value' })).kvs), ['d', 'c', 'b', 'a']); // values 1, 2, 33, 4
  assert.deepEqual(keys(s.range(rq('a', 'z', { sortTarget: 'mod', sortOrder: 'descend' })).kvs), ['b', 'd', 'c', 'a']);
  assert.deepEqual(keys(s.range(rq('a', 'z', { sortTarget: 'create', sortOrder: 'descend' })).kvs), ['d', 'c', 'b', 'a']);
  // Version ties keep key order (stable sort).
  assert.deepEqual(keys(s.range(rq('a', 'z', { sortTarget: 'version', sortOrder: 'descend' })).kvs), ['b', 'a', 'c', 'd']);
  // Sort happens before limit: the two newest.
  const r = s.range(rq('a', 'z', { sortTarget: 'mod', sortOrder: 'descend', limit: 2 }));
  assert.deepEqual(keys(r.kvs), ['b', 'd']);
  assert.equal(r.more, true);
  assert.equal(r.count, 4);
});

test('range: min/max mod and create revision filters; count stays the range size', () => {
  const s = abcd(); // a c2 m2, b c3 m6, c c4 m4, d c5 m5
  assert.deepEqual(keys(s.range(rq('a', 'z', { minModRevision: 5 })).kvs), ['b', 'd']);
  assert.deepEqual(keys(s.range(rq('a', 'z', { maxModRevision: 4 })).kvs), ['a', 'c']);
  assert.deepEqual(keys(s.range(rq('a', 'z', { minCreateRevision: 3, maxCreateRevision: 4 })).kvs), ['b', 'c']);
  const r = s.range(rq('a', 'z', { minModRevision: 5, limit: 1 }));
  assert.deepEqual(keys(r.kvs), ['b']);
  assert.equal(r.more, true);
  assert.equal(r.count, 4);
});

test('range at a past revision sees that revision\'s state', () => {
  const s = abcd();
  run(s, del('a', 'c')); // rev 7 deletes a, b
  assert.deepEqual(keys(s.range(rq('a', 'z')).kvs), ['c', 'd']);
  assert.deepEqual(keys(s.range(rq('a', 'z', { revision: 6 })).kvs), ['a', 'b', 'c', 'd']);
  assert.equal(s.range(rq('b', '', { revision: 5 })).kvs[0]?.version, 1);
  assert.deepEqual(keys(s.range(rq('a', 'z', { revision: 3 })).kvs), ['a', 'b']);
  assert.equal(s.range(rq('a', 'z', { revision: 1 })).count, 0);
});

test('txn: compares choose the branch; writes share one revision; reads do not make one', () => {
  const s = new KvStore();
  // Missing key: version compares against 0 ...
  const r1 = run(s, txn({ compare: [cmpVersion('k', 'equal', 0)], success: [op.put('k', 'v'), op.put('j', 'w')], failure: [op.put('f', 'x')] }));
  assert.equal(r1.type, 'txn');
  assert.equal(r1.type === 'txn' && r1.response.succeeded, true);
  assert.equal(r1.revision, 2);
  assert.equal(get(s, 'k')?.modRevision, 2);
  assert.equal(get(s, 'j')?.modRevision, 2);
  assert.equal(get(s, 'f'), undefined);
  // ... while a value compare on a missing key always fails, even notEqual.
  const r2 = run(s, txn({ compare: [cmpValue('missing', 'notEqual', 'x')], success: [op.put('k', 's')], failure: [op.range('k')] }));
  assert.equal(r2.type === 'txn' && r2.response.succeeded, false);
  assert.equal(r2.revision, 2, 'a txn that only reads makes no revision');
  const resp = r2.type === 'txn' ? r2.response.responses[0] : undefined;
  assert.equal(resp?.type === 'range' && str(resp.response.kvs[0]?.value ?? b('')), 'v');
  // Compare over a range: must hold for every key in it.
  run(s, put('k', 'v2')); // rev 3: k version 2, j version 1
  const r3 = run(s, txn({ compare: [cmpVersion('j', 'greater', 0, 'l')], success: [op.put('ok', '1')], failure: [op.put('no', '1')] }));
  assert.equal(r3.type === 'txn' && r3.response.succeeded, true);
  const r4 = run(s, txn({ compare: [cmpVersion('j', 'greater', 1, 'l')], success: [op.put('ok', '2')], failure: [op.put('no', '2')] }));
  assert.equal(r4.type === 'txn' && r4.response.succeeded, false);
  // mod / create / value / lease compares.
  const mods: Compare[] = [
    { target: 'mod', result: 'equal', key: b('k'), rangeEnd: b(''), modRevision: 3 },
    { target: 'create', result: 'less', key: b('k'), rangeEnd: b(''), createRevision: 3 },
    { target: 'value', result: 'greater', key: b('k'), rangeEnd: b(''), value: b('v1') },
    { target: 'lease', result: 'equal', key: b('k'), rangeEnd: b(''), lease: 0 },
    { target: 'lease', result: 'equal', key: b('nokey'), rangeEnd: b(''), lease: 0 },
  ];
  const r5 = run(s, txn({ compare: mods }));
  assert.equal(r5.type === 'txn' && r5.response.succeeded, true);
});

test('txn: the events of one revision come in the order applied; prevKv filled', () => {
  const s = new KvStore();
  run(s, put('b', 'old')); // 2
  const seen: [readonly KvEvent[], number][] = [];
  const off = s.onEvents((events, revision) => seen.push([events, revision]));
  run(s, txn({ success: [op.put('c', '1'), op.del('b'), op.put('a', '2')] })); // 3
  assert.equal(seen.length, 1);
  const [events, revision] = seen[0] ?? [[], 0];
  assert.equal(revision, 3);
  assert.deepEqual(events.map((e) => [e.type, str(e.kv.key), e.kv.modRevision, e.kv.version]), [['put', 'c', 3, 1], ['delete', 'b', 3, 0], ['put', 'a', 3, 1]]);
  assert.equal(str(events[1]?.prevKv?.value ?? b('')), 'old');
  assert.equal(events[0]?.prevKv, undefined);
  run(s, txn({ success: [op.range('a')] })); // no revision, no call
  run(s, del('zzz')); // deletes nothing
  assert.equal(seen.length, 1);
  off();
  run(s, put('x', '1'));
  assert.equal(seen.length, 1, 'unsubscribed');
});

test('txn: a range inside sees the txn\'s earlier writes; nested txns; nested compares see the state before the txn', () => {
  const s = new KvStore();
  run(s, put('a', '0')); // 2
  const r = run(s, txn({
    success: [
      op.range('a'),
      op.put('a', '1'),
      op.range('a'),
      op.range('a', '', { revision: 2 }),
      // etcd decides every nested branch before writing (compareToPath): a's version is still 1 here.
      op.txn({ compare: [cmpVersion('a', 'equal', 1)], success: [op.put('n', 'then'), op.range('n')], failure: [op.put('n', 'else')] }),
    ],
  }));
  assert.equal(r.revision, 3);
  assert.equal(r.type, 'txn');
  const rs = r.type === 'txn' ? r.response.responses : [];
  const val = (i: number): string | undefined => { const x = rs[i]; return x?.type === 'range' ? str(x.response.kvs[0]?.value ?? b('-')) : undefined; };
  assert.equal(val(0), '0');
  assert.equal(val(2), '1');
  assert.equal(val(3), '0');
  const nested = rs[4];
  assert.equal(nested?.type === 'txn' && nested.response.succeeded, true);
  const nr = nested?.type === 'txn' ? nested.response.responses[1] : undefined;
  assert.equal(nr?.type === 'range' && nr.response.kvs[0]?.modRevision, 3);
  assert.equal(str(get(s, 'n')?.value ?? b('')), 'then');
  assert.equal(get(s, 'a')?.version, 2);
});

test('txn: tooManyOps (128 per level, nested share the budget), emptyKey, duplicateKey rules', () => {
  const s = new KvStore();
  const many = (n: number): RequestOp[] => Array.from({ length: n }, (_, i) => op.put(`k${i}`, 'v'));
  assert.equal(run(s, txn({ success: many(MAX_TXN_OPS) })).revision, 2);
  assert.equal(errorOf(run(s, txn({ failure: many(MAX_TXN_OPS + 1) }))), 'tooManyOps');
  assert.equal(errorOf(run(s, txn({ compare: Array.from({ length: 129 }, () => cmpVersion('a', 'equal', 0)) }))), 'tooManyOps');
  // A nested txn gets 128 - (its parent's widest list): 100 + 29 > 128.
  assert.equal(errorOf(run(s, txn({ success: [...many(99), op.txn({ success: many(29).map(() => op.range('x')) })] }))), 'tooManyOps');
  assert.equal(errorOf(run(s, txn({ success: [...many(99), op.txn({ success: many(28).map(() => op.range('x')) })] }))), undefined);
  assert.equal(errorOf(run(s, txn({ success: [op.range('')] }))), 'emptyKey');
  assert.equal(errorOf(run(s, txn({ compare: [cmpVersion('', 'equal', 0)] }))), 'emptyKey');
  assert.equal(errorOf(run(s, txn({ success: [op.put('a', '1'), op.put('a', '2')] }))), 'duplicateKey');
  assert.equal(errorOf(run(s, txn({ failure: [op.put('b', '1'), op.del('a', 'c')] }))), 'duplicateKey');
  assert.equal(errorOf(run(s, txn({ success: [op.put('x', '1'), op.del('a', '\0')] }))), 'duplicateKey');
  assert.equal(errorOf(run(s, txn({ success: [op.put('a', '1'), op.txn({ success: [op.put('a', '2')] })] }))), 'duplicateKey');
  assert.equal(errorOf(run(s, txn({ success: [op.del('a'), op.txn({ failure: [op.put('a', '2')] })] }))), 'duplicateKey');
  // Allowed: the same key in both branches of a nested txn (only one runs), overlapping deletes, duplicates in different top-level branches.
  const before = s.revision;
  assert.equal(errorOf(run(s, txn({ success: [op.txn({ success: [op.put('a', '1')], failure: [op.put('a', '2')] })] }))), undefined);
  assert.equal(errorOf(run(s, txn({ success: [op.del('a', 'c'), op.del('b', 'd')] }))), undefined);
  assert.equal(errorOf(run(s, txn({ success: [op.put('a', '1')], failure: [op.put('a', '2')] }))), undefined);
  assert.equal(s.revision, before + 3);
});

test('txn: put checks on the chosen branch only; failures write nothing', () => {
  const s = new KvStore();
  run(s, put('a', '1')); // 2
  const bad: KvCommand = txn({ success: [op.put('b', '1'), { type: 'put', request: { key: b('c'), value: b(''), lease: 0, prevKv: false, ignoreValue: true, ignoreLease: false } }] });
  assert.equal(errorOf(run(s, bad)), 'keyNotFound');
  assert.equal(get(s, 'b'), undefined);
  assert.equal(s.revision, 2);
  // The same bad put in the branch not taken is fine.
  const ok = run(s, txn({ compare: [cmpVersion('a', 'equal', 1)], success: [op.put('b', '1')], failure: (bad.type === 'txn' ? bad.request.success : []) }));
  assert.equal(ok.revision, 3);
  assert.equal(errorOf(run(s, txn({ success: [op.range('a', '', { revision: 9 })] }))), 'futureRevision');
});

test('compaction: errors, ranges at and below the compaction revision, deleted keys vanish', () => {
  const s = new KvStore();
  assert.equal(errorOf(run(s, { type: 'compact', request: { revision: 0, physical: false } })), 'compacted');
  run(s, put('a', '1')); // 2
  run(s, put('b', '1')); // 3
  run(s, put('a', '2')); // 4
  run(s, del('b')); // 5
  run(s, put('c', '1')); // 6
  assert.equal(errorOf(run(s, { type: 'compact', request: { revision: 7, physical: true } })), 'futureRevision');
  const size = s.sizeBytes();
  assert.deepEqual(run(s, { type: 'compact', request: { revision: 5, physical: true } }), { type: 'compact', revision: 6 });
  assert.equal(s.compactRevision, 5);
  assert.equal(s.revision, 6, 'compaction makes no revision');
  assert.ok(s.sizeBytes() < size);
  throwsKv(() => s.range(rq('a', '', { revision: 4 })), 'compacted');
  assert.deepEqual(s.range(rq('a', '', { revision: 5 })).kvs[0]?.version, 2);
  assert.equal(s.range(rq('\0', '\0', { revision: 5 })).count, 1);
  assert.deepEqual(keys(s.range(rq('\0', '\0')).kvs), ['a', 'c']);
  assert.equal(errorOf(run(s, { type: 'compact', request: { revision: 5, physical: false } })), 'compacted');
  assert.equal(errorOf(run(s, { type: 'compact', request: { revision: 3, physical: false } })), 'compacted');
  assert.equal(errorOf(run(s, txn({ success: [op.range('a', '', { revision: 4 })] }))), 'compacted');
  throwsKv(() => s.eventsSince(5, b('\0'), b('\0'), false, 0), 'compacted');
  assert.deepEqual(s.eventsSince(6, b('\0'), b('\0'), true, 0).map((e) => str(e.kv.key)), ['c']);
  // Recreating b after its delete was compacted starts again at version 1.
  run(s, put('b', 'again')); // 7
  assert.deepEqual(get(s, 'b'), { key: b('b'), createRevision: 7, modRevision: 7, version: 1, value: b('again'), lease: 0 });
  assert.deepEqual(run(s, { type: 'compact', request: { revision: 7, physical: false } }), { type: 'compact', revision: 7 });
  assert.equal(get(s, 'a')?.version, 2);
});

test('eventsSince: revision order, key range, prevKv, maxEvents never splits a revision', () => {
  const s = new KvStore();
  run(s, put('a', '1')); // 2
  run(s, txn({ success: [op.put('a', '2'), op.put('b', '1'), op.put('c', '1')] })); // 3
  run(s, del('a')); // 4
  run(s, put('z', '1')); // 5
  const all = s.eventsSince(2, b('\0'), b('\0'), true, 0);
  assert.deepEqual(all.map((e) => `${e.type} ${str(e.kv.key)}@${e.kv.modRevision}`), ['put a@2', 'put a@3', 'put b@3', 'put c@3', 'delete a@4', 'put z@5']);
  assert.equal(str(all[1]?.prevKv?.value ?? b('')), '1');
  assert.equal(str(all[4]?.prevKv?.value ?? b('')), '2');
  assert.equal(all[0]?.prevKv, undefined);
  assert.equal(s.eventsSince(2, b('\0'), b('\0'), false, 0)[1]?.prevKv, undefined);
  assert.deepEqual(s.eventsSince(3, b('a'), b(''), false, 0).map((e) => e.kv.modRevision), [3, 4]);
  assert.deepEqual(s.eventsSince(2, b('b'), b('d'), false, 0).map((e) => str(e.kv.key)), ['b', 'c']);
  assert.equal(s.eventsSince(2, b('\0'), b('\0'), false, 2).length, 1, '2 would split revision 3');
  assert.equal(s.eventsSince(2, b('\0'), b('\0'), false, 4).length, 4);
  assert.equal(s.eventsSince(3, b('\0'), b('\0'), false, 1).length, 3, 'one revision is never split');
  assert.deepEqual(s.eventsSince(6, b('\0'), b('\0'), false, 0), []);
  assert.deepEqual(s.eventsSince(0, b('\0'), b('\0'), false, 0), []);
});

test('snapshot/restore: same state and listeners kept; malformed input is a KvSnapshotError and changes nothing', () => {
  const s = abcd();
  run(s, del('a'));
  run(s, { type: 'compact', request: { revision: 4, physical: false } });
  const snap = s.snapshot();
  const t = new KvStore();
  let calls = 0;
  t.onEvents(() => calls++);
  t.restore(snap);
  t.checkInvariants();
  assert.deepEqual(t.snapshot(), snap);
  assert.equal(t.revision, s.revision);
  assert.equal(t.compactRevision, 4);
  assert.equal(t.sizeBytes(), s.sizeBytes());
  assert.deepEqual(t.range(rq('\0', '\0', { revision: 4 })), s.range(rq('\0', '\0', { revision: 4 })));
  assert.equal(calls, 0);
  t.apply(put('q', '1'));
  assert.equal(calls, 1);
  for (const bad of [new Uint8Array(0), snap.subarray(0, snap.length - 1), new Uint8Array([...snap, 0]), b('XKVS'), b('QKVS\x04')]) {
    const u = new KvStore();
    u.apply(put('keep', 'me'));
    assert.throws(() => u.restore(bad), KvSnapshotError);
    assert.equal(str(get(u, 'keep')?.value ?? b('')), 'me');
  }
  // Structurally valid but inconsistent: revision lowered below the writes.
  const wrongRev = snap.slice();
  wrongRev[5] = 2; // zigzag(1): revision 1
  assert.throws(() => new KvStore().restore(wrongRev), KvSnapshotError);
});

test('readTxn: a read-only txn evaluated without the log, as apply would', () => {
  const s = abcd();
  const t: TxnRequest = {
    compare: [cmpVersion('b', 'equal', 2)],
    success: [op.range('a', 'c'), op.txn({ compare: [cmpValue('zz', 'equal', '')], success: [op.range('a')], failure: [op.range('d')] })],
    failure: [],
  };
  const r = s.readTxn(t);
  const applied = s.apply({ type: 'txn', request: t });
  assert.deepEqual(applied, { type: 'txn', response: r, revision: 6 });
  assert.equal(r.succeeded, true);
  const nested = r.responses[1];
  assert.equal(nested?.type === 'txn' && nested.response.succeeded, false);
  throwsKv(() => s.readTxn({ compare: [], success: [op.range('a', '', { revision: 99 })], failure: [] }), 'futureRevision');
  throwsKv(() => s.readTxn({ compare: [cmpVersion('', 'equal', 0)], success: [], failure: [] }), 'emptyKey');
  assert.throws(() => s.readTxn({ compare: [], success: [], failure: [op.put('a', '1')] }), TypeError);
  assert.equal(s.revision, 6);
});
