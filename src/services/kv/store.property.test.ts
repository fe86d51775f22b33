// Property-based tests of KvStore (fast-check): random command sequences
// against a naive reference model (per key, the list of all its writes) must
// agree on every result, every range at every revision and the watch history;
// snapshot + restore must give an identical store; two stores fed the same
// commands (one of them through the codec) must produce identical snapshots.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { decodeCommand, encodeCommand } from './codec.js';
import { KvStore } from './store.js';
import {
  KvError,
  type Compare,
  type KeyValue,
  type KvCommand,
  type KvErrorCode,
  type KvEvent,
  type KvResult,
  type RangeRequest,
  type RangeResponse,
  type RequestOp,
  type ResponseOp,
  type SortOrder,
  type SortTarget,
  type TxnRequest,
  type TxnResponse,
} from './types.js';

const b = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'));
const str = (u: Uint8Array): string => Buffer.from(u).toString('latin1');
const rec: typeof fc.record = ((model: never) => fc.record(model, { noNullPrototype: true })) as typeof fc.record;

// ---- the reference model: nothing clever, every write of every key kept forever ----

interface ModelWrite {
  readonly rev: number;
  readonly sub: number;
  /** null for a delete. */
  readonly value: string | null;
  readonly create: number;
  readonly version: number;
}

type Outcome<T> = { ok: T } | { err: KvErrorCode };

class Model {
  revision = 1;
  compacted = 0;
  readonly writes = new Map<string, ModelWrite[]>();

  private at(key: string, rev: number): ModelWrite | undefined {
    return (this.writes.get(key) ?? []).filter((w) => w.rev <= rev).at(-1);
  }

  kvAt(key: string, rev: number): KeyValue | null {
    const w = this.at(key, rev);
    if (w === undefined || w.value === null) return null;
    return { key: b(key), createRevision: w.create, modRevision: w.rev, version: w.version, value: b(w.value), lease: 0 };
  }

  static inRange(k: string, key: string, rangeEnd: string): boolean {
    if (rangeEnd === '') return k === key;
    if (rangeEnd === '\0') return k >= key;
    return key <= k && k < rangeEnd;
  }

  private keysIn(key: string, rangeEnd: string): string[] {
    return [...this.writes.keys()].filter((k) => Model.inRange(k, key, rangeEnd)).sort();
  }

  range(req: RangeRequest, current = this.revision): Outcome<RangeResponse> {
    if (req.key.length === 0) return { err: 'emptyKey' };
    if (req.revision > current) return { err: 'futureRevision' };
    const rev = req.revision > 0 ? req.revision : current;
    if (rev < this.compacted) return { err: 'compacted' };
    let kvs = this.keysIn(str(req.key), str(req.rangeEnd)).map((k) => this.kvAt(k, rev)).filter((kv): kv is KeyValue => kv !== null);
    const count = kvs.length;
    if (req.countOnly) return { ok: { kvs: [], more: false, count } };
    kvs = kvs.filter((kv) => (req.minModRevision === 0 || kv.modRevision >= req.minModRevision) && (req.maxModRevision === 0 || kv.modRevision <= req.maxModRevision)
      && (req.minCreateRevision === 0 || kv.createRevision >= req.minCreateRevision) && (req.maxCreateRevision === 0 || kv.createRevision <= req.maxCreateRevision));
    const order = req.sortOrder === 'none' && req.sortTarget !== 'key' ? 'ascend' : req.sortOrder;
    if (order !== 'none') {
      const field = (kv: KeyValue): string | number => {
        switch (req.sortTarget) {
          case 'key': return str(kv.key);
          case 'value': return str(kv.value);
          case 'version': return kv.version;
          case 'create': return kv.createRevision;
          case 'mod': return kv.modRevision;
        }
      };
      kvs = [...kvs].sort((x, y) => {
        const [fx, fy] = [field(x), field(y)];
        const c = fx < fy ? -1 : fx > fy ? 1 : 0;
        return order === 'ascend' ? c : -c;
      });
    }
    const more = req.limit > 0 && kvs.length > req.limit;
    if (more) kvs = kvs.slice(0, req.limit);
    if (req.keysOnly) kvs = kvs.map((kv) => ({ ...kv, value: new Uint8Array(0) }));
    return { ok: { kvs, more, count } };
  }

  private compareHolds(c: Compare): boolean {
    const kvs = this.keysIn(str(c.key), str(c.rangeEnd)).map((k) => this.kvAt(k, this.revision)).filter((kv): kv is KeyValue => kv !== null);
    if (kvs.length === 0) {
      if (c.target === 'value') return false;
      kvs.push({ key: c.key, createRevision: 0, modRevision: 0, version: 0, value: new Uint8Array(0), lease: 0 });
    }
    return kvs.every((kv) => {
      const [x, y] = c.target === 'version' ? [kv.version, c.version] : c.target === 'value' ? [str(kv.value), str(c.value)] : [0, 0];
      const r = x < y ? -1 : x > y ? 1 : 0;
      return c.result === 'equal' ? r === 0 : c.result === 'notEqual' ? r !== 0 : c.result === 'greater' ? r > 0 : r < 0;
    });
  }

  apply(cmd: KvCommand): KvResult {
    const next = this.revision + 1;
    let sub = 0;
    const write = (key: string, value: string | null): void => {
      const prev = this.kvAt(key, next);
      const list = this.writes.get(key) ?? [];
      this.writes.set(key, list);
      list.push({ rev: next, sub: sub++, value, create: value === null ? 0 : prev?.createRevision ?? next, version: value === null ? 0 : (prev?.version ?? 0) + 1 });
    };
    const put = (key: string, value: string): KeyValue | null => {
      const prev = this.kvAt(key, next);
      write(key, value);
      return prev;
    };
    const del = (key: string, rangeEnd: string): KeyValue[] => {
      const gone = this.keysIn(key, rangeEnd).map((k) => this.kvAt(k, next)).filter((kv): kv is KeyValue => kv !== null);
      for (const kv of gone) write(str(kv.key), null);
      return gone;
    };
    const finish = (): number => (sub > 0 ? (this.revision = next) : this.revision);
    const error = (code: KvErrorCode): KvResult => ({ type: 'error', error: code, message: '', revision: this.revision });
    switch (cmd.type) {
      case 'put': {
        const r = cmd.request;
        if (r.lease !== 0) return error('leaseNotFound');
        const cur = this.kvAt(str(r.key), this.revision);
        if (r.ignoreValue && cur === null) return error('keyNotFound');
        const prev = put(str(r.key), r.ignoreValue && cur !== null ? str(cur.value) : str(r.value));
        return { type: 'put', response: { prevKv: r.prevKv ? prev : null }, revision: finish() };
      }
      case 'deleteRange': {
        const gone = del(str(cmd.request.key), str(cmd.request.rangeEnd));
        return { type: 'deleteRange', response: { deleted: gone.length, prevKvs: cmd.request.prevKv ? gone : [] }, revision: finish() };
      }
      case 'compact': {
        const rev = cmd.request.revision;
        if (rev <= this.compacted) return error('compacted');
        if (rev > this.revision) return error('futureRevision');
        this.compacted = rev;
        return { type: 'compact', revision: this.revision };
      }
      case 'leaseGrant':
      case 'leaseRevoke':
      case 'leaseExpire':
      case 'leaseEpoch':
        throw new Error('the model has no leases; store.lease.test.ts tests them');
      case 'txn': {
        // Every branch, nested ones included, is chosen on the state before the txn writes (etcd's compareToPath).
        type Plan = { succeeded: boolean; ops: readonly RequestOp[]; nested: (Plan | undefined)[] };
        const plan = (t: TxnRequest): Plan => {
          const succeeded = t.compare.every((c) => this.compareHolds(c));
          const ops = succeeded ? t.success : t.failure;
          return { succeeded, ops, nested: ops.map((op) => (op.type === 'txn' ? plan(op.request) : undefined)) };
        };
        const rangeError = (p: Plan): KvErrorCode | null => {
          for (const [i, op] of p.ops.entries()) {
            const o = op.type === 'range' ? this.range(op.request) : null;
            if (o !== null && 'err' in o) return o.err;
            const nested = p.nested[i];
            const e = nested === undefined ? null : rangeError(nested);
            if (e !== null) return e;
          }
          return null;
        };
        const top = plan(cmd.request);
        const err = rangeError(top);
        if (err !== null) return error(err);
        const run = (p: Plan): TxnResponse => ({ succeeded: p.succeeded, responses: p.ops.map((op, i) => exec(op, p.nested[i])) });
        const exec = (op: RequestOp, nested: Plan | undefined): ResponseOp => {
          switch (op.type) {
            case 'put': return { type: 'put', response: { prevKv: op.request.prevKv ? put(str(op.request.key), str(op.request.value)) : (put(str(op.request.key), str(op.request.value)), null) } };
            case 'deleteRange': {
              const gone = del(str(op.request.key), str(op.request.rangeEnd));
              return { type: 'deleteRange', response: { deleted: gone.length, prevKvs: op.request.prevKv ? gone : [] } };
            }
            case 'range': {
              const o = this.range(op.request, sub > 0 ? next : this.revision);
              if ('err' in o) throw new Error('checked above');
              return { type: 'range', response: o.ok };
            }
            case 'txn': return { type: 'txn', response: run(nested as Plan) };
          }
        };
        const response = run(top);
        return { type: 'txn', response, revision: finish() };
      }
    }
  }

  /** Every write since `from` in (revision, sub) order, for keys in range, as watch events. */
  events(from: number, key: string, rangeEnd: string, withPrev: boolean): KvEvent[] {
    const all: { w: ModelWrite; key: string; prev: ModelWrite | undefined }[] = [];
    for (const [k, list] of this.writes) {
      if (!Model.inRange(k, key, rangeEnd)) continue;
      list.forEach((w, i) => { if (w.rev >= from) all.push({ w, key: k, prev: list[i - 1] }); });
    }
    all.sort((x, y) => x.w.rev - y.w.rev || x.w.sub - y.w.sub);
    return all.map(({ w, key: k, prev }) => {
      const kv: KeyValue = w.value === null
        ? { key: b(k), createRevision: 0, modRevision: w.rev, version: 0, value: new Uint8Array(0), lease: 0 }
        : { key: b(k), createRevision: w.create, modRevision: w.rev, version: w.version, value: b(w.value), lease: 0 };
      const type = w.value === null ? 'delete' : 'put';
      if (withPrev && prev !== undefined && prev.value !== null) {
        return { type, kv, prevKv: { key: b(k), createRevision: prev.create, modRevision: prev.rev, version: prev.version, value: b(prev.value), lease: 0 } };
      }
      return { type, kv };
    });
  }
}

// ---- generators: small key space so that commands collide ----

const KEYS = ['a', 'ab', 'b', 'b\0', 'c', '\xff'];
const keyArb = fc.constantFrom(...KEYS);
const rangeEndArb = fc.constantFrom('', '', '\0', 'b', 'c', 'a');
const valueArb = fc.constantFrom('', 'x', 'y', 'zz');
const smallRev = fc.integer({ min: 0, max: 12 });

const rangeReqArb: fc.Arbitrary<RangeRequest> = rec({
  key: fc.constantFrom(...KEYS, '\0').map(b),
  rangeEnd: rangeEndArb.map(b),
  limit: fc.integer({ min: 0, max: 3 }),
  revision: fc.constant(0),
  sortOrder: fc.constantFrom<SortOrder>('none', 'ascend', 'descend'),
  sortTarget: fc.constantFrom<SortTarget>('key', 'version', 'create', 'mod', 'value'),
  serializable: fc.boolean(),
  keysOnly: fc.boolean(),
  countOnly: fc.boolean(),
  minModRevision: fc.oneof(fc.constant(0), smallRev),
  maxModRevision: fc.oneof(fc.constant(0), smallRev),
  minCreateRevision: fc.oneof(fc.constant(0), smallRev),
  maxCreateRevision: fc.oneof(fc.constant(0), smallRev),
});

const putCmdArb: fc.Arbitrary<KvCommand> = rec({
  key: keyArb, value: valueArb, prevKv: fc.boolean(),
  ignoreValue: fc.constantFrom(false, false, false, true), // rare
  lease: fc.constantFrom(0, 0, 0, 0, 0, 0, 1),
}).map(({ key, value, prevKv, ignoreValue, lease }) => ({ type: 'put', request: { key: b(key), value: b(value), lease, prevKv, ignoreValue, ignoreLease: false } }));
const delCmdArb: fc.Arbitrary<KvCommand> = rec({ key: keyArb, rangeEnd: rangeEndArb, prevKv: fc.boolean() })
  .map(({ key, rangeEnd, prevKv }) => ({ type: 'deleteRange', request: { key: b(key), rangeEnd: b(rangeEnd), prevKv } }));
const compactCmdArb: fc.Arbitrary<KvCommand> = rec({ revision: fc.integer({ min: 0, max: 16 }), physical: fc.boolean() }).map((request) => ({ type: 'compact', request }));
const compareArb: fc.Arbitrary<Compare> = fc.oneof(
  rec({ key: keyArb, rangeEnd: rangeEndArb, result: fc.constantFrom('equal', 'greater', 'less', 'notEqual' as const), version: fc.integer({ min: 0, max: 3 }) })
    .map(({ key, rangeEnd, result, version }) => ({ target: 'version' as const, key: b(key), rangeEnd: b(rangeEnd), result, version })),
  rec({ key: keyArb, rangeEnd: rangeEndArb, result: fc.constantFrom('equal', 'greater', 'less', 'notEqual' as const), value: valueArb })
    .map(({ key, rangeEnd, result, value }) => ({ target: 'value' as const, key: b(key), rangeEnd: b(rangeEnd), result, value: b(value) })),
);
/** One txn branch without nested txns: ops on distinct keys, single-key deletes, ranges anywhere. */
const flatBranchArb: fc.Arbitrary<RequestOp[]> = fc.uniqueArray(
  rec({ key: keyArb, kind: fc.constantFrom('put', 'del', 'range'), value: valueArb, prevKv: fc.boolean(), range: rangeReqArb, rangeRev: fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: -1, max: 14 })) }),
  { selector: (o) => o.key, maxLength: 4 },
).map((ops) => ops.map((o): RequestOp => {
  if (o.kind === 'put') return { type: 'put', request: { key: b(o.key), value: b(o.value), lease: 0, prevKv: o.prevKv, ignoreValue: false, ignoreLease: false } };
  if (o.kind === 'del') return { type: 'deleteRange', request: { key: b(o.key), rangeEnd: new Uint8Array(0), prevKv: o.prevKv } };
  return { type: 'range', request: { ...o.range, revision: Math.max(0, o.rangeRev) } };
}));
const flatTxnArb: fc.Arbitrary<TxnRequest> = rec({ compare: fc.array(compareArb, { maxLength: 2 }), success: flatBranchArb, failure: flatBranchArb });
/** A branch that may hold nested (flat) txns. */
const branchArb: fc.Arbitrary<RequestOp[]> = fc.tuple(flatBranchArb, fc.array(fc.tuple(fc.nat(), flatTxnArb), { maxLength: 2 }))
  .map(([ops, txns]) => {
    const out = [...ops];
    for (const [at, t] of txns) out.splice(at % (out.length + 1), 0, { type: 'txn', request: t });
    return out;
  });
/** The keys a txn writes (puts and single-key deletes), every branch and nesting level. */
function writtenKeys(ops: readonly RequestOp[]): string[] {
  return ops.flatMap((op) => op.type === 'txn' ? [...writtenKeys(op.request.success), ...writtenKeys(op.request.failure)]
    : op.type === 'range' ? [] : [str(op.request.key)]);
}
/** Txns whose written keys are all distinct across the whole tree, so etcd's duplicateKey rule never fires (it has its own examples). */
const txnCmdArb: fc.Arbitrary<KvCommand> = rec({ compare: fc.array(compareArb, { maxLength: 2 }), success: branchArb, failure: branchArb })
  .filter((t) => [t.success, t.failure].every((ops) => new Set(writtenKeys(ops)).size === writtenKeys(ops).length))
  .map((request) => ({ type: 'txn', request }));
const commandArb: fc.Arbitrary<KvCommand> = fc.oneof(
  { arbitrary: putCmdArb, weight: 5 },
  { arbitrary: delCmdArb, weight: 2 },
  { arbitrary: txnCmdArb, weight: 3 },
  { arbitrary: compactCmdArb, weight: 1 },
);
const commandsArb = fc.array(commandArb, { maxLength: 30, size: 'max' });

// ---- helpers ----

function outcome(fn: () => RangeResponse): Outcome<RangeResponse> {
  try {
    return { ok: fn() };
  } catch (err) {
    if (err instanceof KvError) return { err: err.code };
    throw err;
  }
}

/** KvResults compare equal except the error message (the model does not know etcd's wording). */
function sameResult(actual: KvResult, expected: KvResult): void {
  if (actual.type === 'error' && expected.type === 'error') assert.deepEqual({ ...actual, message: '' }, expected);
  else assert.deepEqual(actual, expected);
}

/** Every range request at every revision from just below the compaction revision to just above the current one. */
function sameReads(store: KvStore, readsOf: (req: RangeRequest) => Outcome<RangeResponse>, ranges: readonly RangeRequest[]): void {
  for (let rev = Math.max(0, store.compactRevision - 1); rev <= store.revision + 1; rev++) {
    for (const r of ranges) {
      const req = { ...r, revision: rev };
      assert.deepEqual(outcome(() => store.range(req)), readsOf(req), `range ${JSON.stringify({ key: str(r.key), end: str(r.rangeEnd), rev })}`);
    }
  }
}

function allEvents(store: KvStore, from: number): KvEvent[] | string {
  try {
    return store.eventsSince(from, b('\0'), b('\0'), true, 0);
  } catch (err) {
    if (err instanceof KvError) return err.code;
    throw err;
  }
}

test('property: the store agrees with a naive model on every result, range at every revision, and watch history', (t) => {
  const seen = { runs: 0, revisions: 0, compactions: 0, compactionsThatFreed: 0, txnsSucceeded: 0, txnsFailed: 0, errors: 0 };
  fc.assert(fc.property(commandsArb, fc.array(rangeReqArb, { minLength: 1, maxLength: 3 }), (cmds, ranges) => {
    const store = new KvStore();
    const model = new Model();
    seen.runs++;
    for (const cmd of cmds) {
      const size = store.sizeBytes();
      const result = store.apply(cmd);
      sameResult(result, model.apply(cmd));
      if (result.type === 'compact') {
        seen.compactions++;
        if (store.sizeBytes() < size) seen.compactionsThatFreed++;
      }
      if (result.type === 'txn') seen[result.response.succeeded ? 'txnsSucceeded' : 'txnsFailed']++;
      if (result.type === 'error') seen.errors++;
      store.checkInvariants();
      assert.equal(store.revision, model.revision);
      assert.equal(store.compactRevision, model.compacted);
    }
    sameReads(store, (req) => model.range(req), ranges);
    for (let from = store.compactRevision + 1; from <= store.revision + 1; from++) {
      assert.deepEqual(store.eventsSince(from, b('\0'), b('\0'), true, 0), model.events(from, '\0', '\0', true));
      assert.deepEqual(store.eventsSince(from, b('b'), b('c'), false, 0), model.events(from, 'b', 'c', false));
    }
    if (store.compactRevision > 0) assert.equal(allEvents(store, store.compactRevision), 'compacted');
    seen.revisions += store.revision;
  }), { numRuns: 300 });
  t.diagnostic(`coverage: ${JSON.stringify(seen)}`);
});

test('property: snapshot then restore gives an identical store, which then evolves identically', () => {
  fc.assert(fc.property(commandsArb, commandsArb, fc.array(rangeReqArb, { minLength: 1, maxLength: 3 }), (before, after, ranges) => {
    const store = new KvStore();
    for (const cmd of before) store.apply(cmd);
    const copy = new KvStore();
    copy.apply({ type: 'put', request: { key: b('old'), value: b('state'), lease: 0, prevKv: false, ignoreValue: false, ignoreLease: false } });
    copy.restore(store.snapshot());
    copy.checkInvariants();
    assert.deepEqual(copy.snapshot(), store.snapshot());
    assert.equal(copy.revision, store.revision);
    assert.equal(copy.compactRevision, store.compactRevision);
    assert.equal(copy.sizeBytes(), store.sizeBytes());
    sameReads(copy, (req) => outcome(() => store.range(req)), ranges);
    for (let from = Math.max(1, store.compactRevision); from <= store.revision + 1; from++) assert.deepEqual(allEvents(copy, from), allEvents(store, from));
    for (const cmd of after) assert.deepEqual(copy.apply(cmd), store.apply(cmd));
    assert.deepEqual(copy.snapshot(), store.snapshot());
  }), { numRuns: 200 });
});

test('property: two stores fed the same commands (one through the codec) produce byte-identical snapshots', () => {
  fc.assert(fc.property(commandsArb, (cmds) => {
    const a = new KvStore();
    const c = new KvStore();
    for (const cmd of cmds) assert.deepEqual(c.apply(decodeCommand(encodeCommand(cmd))), a.apply(cmd));
    assert.deepEqual(c.snapshot(), a.snapshot());
  }), { numRuns: 200 });
});
