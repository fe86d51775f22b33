// Tests of the linearizability checker: hand-written histories that are and
// are not linearizable, property tests on simulated histories (always
// accepted; rejected once one read is corrupted), agreement with a brute-force
// checker on small random histories, the history recorder, and a time budget guard.

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { checkLinearizable, InvalidHistoryError, type KvOp, type KvOutput, type Operation } from './checker.js';
import { HistoryRecorder, HistoryRecorderError } from './history.js';
import { corruptRead, simulateRegister } from './simulate.js';

const U = Infinity;

/** Shorthands: an operation by `client` on interval [call, ret] (ret omitted = unknown outcome). */
function put(client: number, key: string, value: string, call: number, ret: number = U): Operation {
  return { client, op: { kind: 'put', key, value }, call, ret, output: ret === U ? null : { kind: 'put' } };
}
function get(client: number, key: string, value: string | null, call: number, ret: number): Operation {
  return { client, op: { kind: 'get', key }, call, ret, output: { kind: 'get', value } };
}
function getUnknown(client: number, key: string, call: number): Operation {
  return { client, op: { kind: 'get', key }, call, ret: U, output: null };
}
function cas(client: number, key: string, expected: string | null, value: string, ok: boolean | null, call: number, ret: number = U): Operation {
  return { client, op: { kind: 'cas', key, expected, value }, call, ret, output: ok === null ? null : { kind: 'cas', ok } };
}

function accepts(history: Operation[], initial?: Map<string, string | null>): void {
  const r = checkLinearizable(history, initial === undefined ? {} : { initial });
  assert.equal(r.timedOut, false);
  assert.equal(r.ok, true, r.failure?.explanation);
  assert.equal(r.failure, undefined);
}

function rejects(history: Operation[], key: string): string {
  const r = checkLinearizable(history);
  assert.equal(r.timedOut, false);
  assert.equal(r.ok, false);
  assert.ok(r.failure !== undefined);
  assert.equal(r.failure.key, key);
  return r.failure.explanation;
}

describe('linearizable histories are accepted', () => {
  test('empty history', () => {
    assert.deepEqual(checkLinearizable([]), { ok: true, keysChecked: 0, timedOut: false });
  });

  test('sequential put, get, cas on several keys', () => {
    const r = checkLinearizable([
      get(0, 'a', null, 0, 1),
      put(0, 'a', 'x', 2, 3),
      get(1, 'a', 'x', 4, 5),
      cas(1, 'a', 'x', 'y', true, 6, 7),
      cas(0, 'a', 'x', 'z', false, 8, 9),
      get(0, 'a', 'y', 10, 11),
      put(2, 'b', 'q', 0, 1),
      get(2, 'b', 'q', 2, 3),
    ]);
    assert.deepEqual(r, { ok: true, keysChecked: 2, timedOut: false });
  });

  test('overlapping writes may be read in either order', () => {
    for (const [first, second] of [['1', '2'], ['2', '1']] as const) {
      // Either write may be the last one.
      accepts([put(0, 'k', '1', 0, 10), put(1, 'k', '2', 1, 11), get(2, 'k', second, 12, 13)]);
      // A reader concurrent with both writes sees one, then the other.
      accepts([
        put(0, 'k', '1', 0, 10),
        put(1, 'k', '2', 0, 10),
        get(2, 'k', first, 1, 2),
        get(2, 'k', second, 3, 4),
      ]);
    }
  });

  test('a read concurrent with a write sees the old or the new value', () => {
    accepts([put(0, 'k', 'a', 0, 1), put(0, 'k', 'b', 2, 6), get(1, 'k', 'a', 3, 4)]);
    accepts([put(0, 'k', 'a', 0, 1), put(0, 'k', 'b', 2, 6), get(1, 'k', 'b', 3, 4)]);
  });

  test('cas success and failure, including on an absent key', () => {
    accepts([
      cas(0, 'k', null, 'a', true, 0, 1),
      cas(1, 'k', null, 'b', false, 2, 3),
      cas(1, 'k', 'a', 'b', true, 4, 5),
      get(0, 'k', 'b', 6, 7),
    ]);
    // Two concurrent cas from the same expected value: exactly one wins.
    accepts([
      put(0, 'k', 'a', 0, 1),
      cas(1, 'k', 'a', 'b', false, 2, 5),
      cas(2, 'k', 'a', 'c', true, 3, 4),
      get(0, 'k', 'c', 6, 7),
    ]);
  });

  test('initial values', () => {
    accepts([get(0, 'k', 'seed', 0, 1), cas(0, 'k', 'seed', 'x', true, 2, 3)], new Map([['k', 'seed']]));
    accepts([get(0, 'k', null, 0, 1)], new Map([['other', 'seed']]));
  });

  test('unknown put that took effect (read later) and one that did not', () => {
    accepts([put(0, 'k', 'a', 0, 1), put(1, 'k', 'lost', 2), get(2, 'k', 'lost', 10, 11)]);
    accepts([put(0, 'k', 'a', 0, 1), put(1, 'k', 'lost', 2), get(2, 'k', 'a', 10, 11), get(2, 'k', 'a', 12, 13)]);
    // It may take effect long after its caller gave up, even after later ops of the same client.
    accepts([put(1, 'k', 'late', 0), put(1, 'k', 'b', 5, 6), get(2, 'k', 'b', 7, 8), get(2, 'k', 'late', 9, 10)]);
  });

  test('unknown cas that took effect and one that did not', () => {
    accepts([put(0, 'k', 'a', 0, 1), cas(1, 'k', 'a', 'b', null, 2), get(2, 'k', 'b', 10, 11)]);
    accepts([put(0, 'k', 'a', 0, 1), cas(1, 'k', 'a', 'b', null, 2), get(2, 'k', 'a', 10, 11)]);
  });

  test('unknown gets constrain nothing', () => {
    accepts([getUnknown(0, 'k', 0), put(1, 'k', 'a', 1, 2), getUnknown(0, 'k', 3)]);
  });

  test('ties: a call and a return at the same instant are concurrent', () => {
    // get's call at 5 equals put's return at 5: the get may be ordered before the put.
    accepts([put(0, 'k', 'a', 0, 5), get(1, 'k', null, 5, 6)]);
    accepts([put(0, 'k', 'a', 0, 5), get(1, 'k', 'a', 5, 6)]);
    // Zero-length intervals are fine too.
    accepts([put(0, 'k', 'a', 3, 3), get(1, 'k', 'a', 3, 3)]);
  });
});

describe('non-linearizable histories are rejected, naming the key', () => {
  test('stale read after a completed write', () => {
    const why = rejects([
      put(0, 'ok', 'fine', 0, 1),
      get(0, 'ok', 'fine', 2, 3),
      put(0, 'bad', 'a', 0, 1),
      put(1, 'bad', 'b', 2, 3),
      get(2, 'bad', 'a', 4, 5),
    ], 'bad');
    assert.match(why, /Longest linearizable prefix found: 2 op/);
    assert.match(why, /#4 client 2 get\("bad"\) -> "a" \[4, 5\]/);
  });

  test('a read returning a value never written', () => {
    const why = rejects([put(0, 'k', 'a', 0, 1), get(1, 'k', 'ghost', 2, 3)], 'k');
    assert.match(why, /needs value "ghost"/);
    rejects([get(1, 'k', 'ghost', 0, 3)], 'k');
  });

  test('two reads observing concurrent writes in opposite orders', () => {
    rejects([
      put(0, 'k', '1', 0, 20),
      put(1, 'k', '2', 0, 20),
      get(2, 'k', '1', 1, 2),
      get(2, 'k', '2', 3, 4),
      get(3, 'k', '2', 1, 2),
      get(3, 'k', '1', 3, 4),
    ], 'k');
  });

  test('a successful cas whose expected value could not be current', () => {
    rejects([put(0, 'k', 'a', 0, 1), put(0, 'k', 'b', 2, 3), cas(1, 'k', 'a', 'c', true, 4, 5)], 'k');
    rejects([cas(1, 'k', 'x', 'c', true, 0, 1)], 'k');
    // And a failed cas whose expected value was certainly current.
    rejects([put(0, 'k', 'a', 0, 1), cas(1, 'k', 'a', 'c', false, 2, 3)], 'k');
  });

  test('lost acknowledged write: a get after a completed put returns the older value', () => {
    rejects([
      put(0, 'k', 'v1', 0, 1),
      get(1, 'k', 'v1', 2, 3),
      put(0, 'k', 'v2', 4, 5),
      get(1, 'k', 'v1', 6, 7),
    ], 'k');
  });

  test('an unknown write cannot take effect before its call', () => {
    rejects([get(0, 'k', 'late', 0, 1), put(1, 'k', 'late', 2)], 'k');
  });

  test('ties: a return at t precedes a call at t only if strictly less', () => {
    rejects([put(0, 'k', 'a', 0, 4), get(1, 'k', null, 5, 6)], 'k');
  });

  test('only the first failing key (in sorted order) is reported', () => {
    const r = checkLinearizable([get(0, 'z', 'x', 0, 1), get(0, 'a', 'x', 0, 1), put(0, 'm', 'x', 0, 1)]);
    assert.equal(r.ok, false);
    assert.equal(r.failure?.key, 'a');
    assert.equal(r.keysChecked, 1);
  });
});

describe('malformed histories', () => {
  test('are refused with InvalidHistoryError', () => {
    const bad: Operation[] = [
      { ...put(0, 'k', 'a', 5, 6), ret: 4 },
      { ...put(0, 'k', 'a', 5, 6), output: null },
      { ...put(0, 'k', 'a', 5), output: { kind: 'put' } },
      { ...get(0, 'k', 'a', 5, 6), output: { kind: 'put' } },
      { ...get(0, 'k', 'a', 5, 6), call: NaN },
    ];
    for (const o of bad) assert.throws(() => checkLinearizable([o]), InvalidHistoryError);
  });
});

describe('budget', () => {
  test('a search that runs out of budget says timedOut instead of hanging', () => {
    // Many concurrent writes and reads that cannot all be explained force a long search.
    const history: Operation[] = [];
    for (let c = 0; c < 14; c++) history.push(put(c, 'k', `v${c}`, 0, 100));
    for (let c = 0; c < 14; c++) history.push(get(20 + c, 'k', `v${c}`, 1 + c, 1 + c));
    history.push(get(40, 'k', 'ghost', 50, 60));
    const r = checkLinearizable(history, { stepBudget: 5_000 });
    assert.deepEqual(r, { ok: false, keysChecked: 0, timedOut: true });
    const t0 = performance.now();
    const r2 = checkLinearizable(history, { timeBudgetMs: 50 });
    const elapsedMs = performance.now() - t0;
    // The answer is the check: without its budget this search ends in about half a second with timedOut false.
    // The time only catches a budget read far too rarely; its bound is wide (200 x the budget) for a busy shared machine.
    assert.equal(r2.timedOut, true);
    assert.ok(elapsedMs < 10_000, `took ${elapsedMs} ms`);
  });
});

// ---- brute force: every order of the ops, no memoization; for small histories only

function bruteForce(history: readonly Operation[]): boolean {
  const n = history.length;
  const done = new Array<boolean>(n).fill(false);
  const state = new Map<string, string | null>();
  const knownLeft = (): boolean => history.some((o, i) => !done[i] && o.output !== null);
  const search = (): boolean => {
    if (!knownLeft()) return true;
    for (let i = 0; i < n; i++) {
      if (done[i]) continue;
      const o = history[i]!;
      // i may go next only if no pending op returned before i was called.
      if (history.some((p, j) => !done[j] && j !== i && p.ret < o.call)) continue;
      const before = state.get(o.op.key) ?? null;
      const after = applyTo(o.op, o.output, before);
      if (after === undefined) continue;
      done[i] = true;
      state.set(o.op.key, after);
      const found = search();
      state.set(o.op.key, before);
      done[i] = false;
      if (found) return true;
    }
    return false;
  };
  return search();
}

/** The register after `op` with `output` (null: either outcome is fine), or undefined if the output is impossible. */
function applyTo(op: KvOp, output: KvOutput | null, state: string | null): string | null | undefined {
  switch (op.kind) {
    case 'put': return op.value;
    case 'get': return output === null || (output.kind === 'get' && output.value === state) ? state : undefined;
    case 'cas': {
      const succeeds = state === op.expected;
      if (output === null) return succeeds ? op.value : state;
      const ok = output.kind === 'cas' && output.ok;
      return ok === succeeds ? (ok ? op.value : state) : undefined;
    }
  }
}

const smallOp: fc.Arbitrary<Operation> = fc
  .record({
    client: fc.nat(3),
    key: fc.constantFrom('a', 'b'),
    kind: fc.constantFrom('put', 'get', 'cas'),
    value: fc.constantFrom('x', 'y', 'z', 'w'),
    expected: fc.constantFrom('x', 'y', null),
    read: fc.constantFrom('x', 'y', null),
    ok: fc.boolean(),
    call: fc.nat(8),
    length: fc.nat(4),
    unknown: fc.nat(4),
  })
  .map((r): Operation => {
    const unknown = r.unknown === 0;
    const ret = unknown ? U : r.call + r.length;
    switch (r.kind) {
      case 'put': return put(r.client, r.key, r.value, r.call, ret);
      case 'get': return unknown ? getUnknown(r.client, r.key, r.call) : get(r.client, r.key, r.read, r.call, ret);
      default: return cas(r.client, r.key, r.expected, r.value, unknown ? null : r.ok, r.call, ret);
    }
  });

describe('properties', () => {
  test('agrees with a brute-force search on small random histories', () => {
    let accepted = 0;
    let rejected = 0;
    fc.assert(
      fc.property(fc.array(smallOp, { minLength: 1, maxLength: 7 }), (history) => {
        const expected = bruteForce(history);
        const r = checkLinearizable(history);
        assert.equal(r.timedOut, false);
        assert.equal(r.ok, expected);
        if (expected) accepted++;
        else rejected++;
      }),
      { numRuns: 3_000 },
    );
    // Both verdicts must be exercised for the agreement to mean something.
    assert.ok(accepted > 300 && rejected > 300, `accepted ${accepted}, rejected ${rejected}`);
  });

  const simulation = fc.record({
    tape: fc.array(fc.nat(), { minLength: 1, maxLength: 400 }),
    clients: fc.integer({ min: 1, max: 10 }),
    keys: fc.integer({ min: 1, max: 3 }),
    unknownRate: fc.constantFrom(0, 0.05, 0.2, 0.5),
    casExpects: fc.constantFrom('held' as const, 'read' as const),
  });

  test('histories of a real linearizable register are always accepted', () => {
    fc.assert(
      fc.property(simulation, ({ tape, clients, keys, unknownRate, casExpects }) => {
        const history = simulateRegister(tape, { clients, keys, unknownRate, casExpects });
        const r = checkLinearizable(history);
        assert.equal(r.timedOut, false);
        assert.equal(r.ok, true, r.failure?.explanation);
      }),
      { numRuns: 500 },
    );
  });

  test('the same histories with one read corrupted to an impossible value are rejected, naming its key', () => {
    fc.assert(
      fc.property(simulation, fc.nat(), ({ tape, clients, keys, unknownRate, casExpects }, which) => {
        const history = simulateRegister(tape, { clients, keys, unknownRate, casExpects });
        const reads = history.flatMap((o, i) => (o.op.kind === 'get' && o.output !== null ? [i] : []));
        fc.pre(reads.length > 0);
        const index = reads[which % reads.length]!;
        const r = checkLinearizable(corruptRead(history, index));
        assert.equal(r.timedOut, false);
        assert.equal(r.ok, false);
        assert.equal(r.failure?.key, history[index]!.op.key);
      }),
      { numRuns: 500 },
    );
  });
});

describe('HistoryRecorder', () => {
  test('records calls, returns and unknown outcomes on one clock', () => {
    let now = 0;
    const rec = new HistoryRecorder(() => now);
    const a = rec.begin(0, { kind: 'put', key: 'k', value: 'v' });
    now = 1;
    const b = rec.begin(1, { kind: 'get', key: 'k' });
    const c = rec.begin(2, { kind: 'cas', key: 'k', expected: null, value: 'w' });
    now = 2;
    rec.end(b, { kind: 'get', value: 'v' });
    now = 3;
    rec.end(a, { kind: 'put' });
    rec.unknown(c);
    const pending = rec.begin(3, { kind: 'get', key: 'k' });
    assert.equal(pending, 3);
    assert.deepEqual(rec.operations(), [
      put(0, 'k', 'v', 0, 3),
      get(1, 'k', 'v', 1, 2),
      cas(2, 'k', null, 'w', null, 1),
      getUnknown(3, 'k', 3),
    ]);
    assert.equal(checkLinearizable(rec.operations()).ok, true);
    assert.throws(() => rec.end(a, { kind: 'put' }), HistoryRecorderError);
    assert.throws(() => rec.unknown(99), HistoryRecorderError);
    assert.throws(() => rec.end(pending, { kind: 'put' }), HistoryRecorderError);
  });

  test('defaults to performance.now and works with concurrent async clients', async () => {
    const rec = new HistoryRecorder();
    let register: string | null = null;
    const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
    await Promise.all(
      Array.from({ length: 5 }, async (_, client) => {
        for (let i = 0; i < 10; i++) {
          const value = `${client}.${i}`;
          const h = rec.begin(client, i % 2 === 0 ? { kind: 'put', key: 'k', value } : { kind: 'get', key: 'k' });
          await sleep(Math.random() * 2);
          let output: KvOutput;
          if (i % 2 === 0) {
            register = value;
            output = { kind: 'put' };
          } else {
            output = { kind: 'get', value: register };
          }
          await sleep(Math.random() * 2);
          rec.end(h, output);
        }
      }),
    );
    const ops = rec.operations();
    assert.equal(ops.length, 50);
    assert.ok(ops.every((o) => o.ret >= o.call && Number.isFinite(o.ret)));
    assert.equal(checkLinearizable(ops).ok, true);
  });
});

// These large histories check that the search stays polynomial. Their time limit is the checker's own default budget
// (10 s, some 20 x what they take on an idle machine): a search that runs past it answers timedOut, and the assertions
// on `ok` and `timedOut` fail. Tighter wall-clock limits would measure how busy a shared machine is; the times are
// printed as diagnostics.
describe('performance', () => {
  /** A deterministic pseudo-random tape (splitmix32). */
  function tape(seed: number, length: number): number[] {
    let s = seed >>> 0;
    return Array.from({ length }, () => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = Math.imul(s ^ (s >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    });
  }

  /** A simulated history of exactly `count` operations. */
  function history(seed: number, count: number, clients: number, keys: number, unknownRate: number): Operation[] {
    const h = simulateRegister(tape(seed, count * 20), { clients, keys, unknownRate, maxOperations: count });
    assert.equal(h.length, count);
    return h;
  }

  test('2,000 ops, 8 clients, 3 keys check within the default time budget', (t) => {
    const ops = history(1, 2_000, 8, 3, 0);
    const t0 = performance.now();
    const r = checkLinearizable(ops);
    const elapsedMs = performance.now() - t0;
    t.diagnostic(`2,000 ops, 8 clients, 3 keys: accepted in ${elapsedMs.toFixed(1)} ms`);
    assert.equal(r.timedOut, false);
    assert.equal(r.ok, true, r.failure?.explanation);

    // Rejecting takes an exhaustive search of everything before the bad read.
    const bad = corruptRead(ops, ops.findIndex((o) => o.op.kind === 'get' && o.output !== null && o.call > ops[ops.length - 1]!.call * 0.9));
    const t1 = performance.now();
    const r2 = checkLinearizable(bad);
    const rejectMs = performance.now() - t1;
    t.diagnostic(`same history with one stale read late in it: rejected in ${rejectMs.toFixed(1)} ms`);
    assert.equal(r2.timedOut, false);
    assert.equal(r2.ok, false);

    const withUnknowns = history(1, 2_000, 8, 3, 0.05);
    const t2 = performance.now();
    const r3 = checkLinearizable(withUnknowns);
    const unknownMs = performance.now() - t2;
    const unknownCount = withUnknowns.filter((o) => o.output === null).length;
    t.diagnostic(`2,000 ops, 8 clients, 3 keys, ${unknownCount} with unknown outcome: accepted in ${unknownMs.toFixed(1)} ms`);
    assert.equal(r3.timedOut, false);
    assert.equal(r3.ok, true, r3.failure?.explanation);
  });

  test('3,000 ops on one key, 10 clients, within the default time budget', (t) => {
    const ops = history(2, 3_000, 10, 1, 0.1);
    const t0 = performance.now();
    const r = checkLinearizable(ops);
    const elapsedMs = performance.now() - t0;
    const unknownCount = ops.filter((o) => o.output === null).length;
    t.diagnostic(`3,000 ops, 10 clients, 1 key, ${unknownCount} with unknown outcome: accepted in ${elapsedMs.toFixed(1)} ms`);
    assert.equal(r.timedOut, false);
    assert.equal(r.ok, true, r.failure?.explanation);
  });
});
