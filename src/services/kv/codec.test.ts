// Tests of the command codec: examples, and fast-check properties — every
// command round-trips and re-encodes to the same bytes; random or mutated bytes
// either decode to a command that re-encodes identically or raise KvCodecError.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { decodeCommand, encodeCommand, KvCodecError, MAX_TXN_DEPTH } from './codec.js';
import type { Compare, CompareResult, KvCommand, RangeRequest, RequestOp, SortOrder, SortTarget, TxnRequest } from './types.js';

const bytesArb = fc.uint8Array({ maxLength: 6 });
/** fc.record, with ordinary prototypes so that deepStrictEqual matches the decoder's plain objects. */
const rec: typeof fc.record = ((model: never) => fc.record(model, { noNullPrototype: true })) as typeof fc.record;
const intArb = fc.oneof(fc.integer({ min: -3, max: 300 }), fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }));
const compareResultArb = fc.constantFrom<CompareResult>('equal', 'greater', 'less', 'notEqual');

const rangeArb: fc.Arbitrary<RangeRequest> = rec({
  key: bytesArb, rangeEnd: bytesArb, limit: intArb, revision: intArb,
  sortOrder: fc.constantFrom<SortOrder>('none', 'ascend', 'descend'),
  sortTarget: fc.constantFrom<SortTarget>('key', 'version', 'create', 'mod', 'value'),
  serializable: fc.boolean(), keysOnly: fc.boolean(), countOnly: fc.boolean(),
  minModRevision: intArb, maxModRevision: intArb, minCreateRevision: intArb, maxCreateRevision: intArb,
});
const putArb = rec({ key: bytesArb, value: bytesArb, lease: intArb, prevKv: fc.boolean(), ignoreValue: fc.boolean(), ignoreLease: fc.boolean() });
const delArb = rec({ key: bytesArb, rangeEnd: bytesArb, prevKv: fc.boolean() });
const compareArb: fc.Arbitrary<Compare> = fc.oneof(
  rec({ target: fc.constant('version' as const), result: compareResultArb, key: bytesArb, rangeEnd: bytesArb, version: intArb }),
  rec({ target: fc.constant('create' as const), result: compareResultArb, key: bytesArb, rangeEnd: bytesArb, createRevision: intArb }),
  rec({ target: fc.constant('mod' as const), result: compareResultArb, key: bytesArb, rangeEnd: bytesArb, modRevision: intArb }),
  rec({ target: fc.constant('value' as const), result: compareResultArb, key: bytesArb, rangeEnd: bytesArb, value: bytesArb }),
  rec({ target: fc.constant('lease' as const), result: compareResultArb, key: bytesArb, rangeEnd: bytesArb, lease: intArb }),
);
const { txn: txnArb } = fc.letrec<{ op: RequestOp; txn: TxnRequest }>((tie) => ({
  op: fc.oneof(
    { maxDepth: 3, depthIdentifier: 'txn' },
    rec({ type: fc.constant('range' as const), request: rangeArb }),
    rec({ type: fc.constant('put' as const), request: putArb }),
    rec({ type: fc.constant('deleteRange' as const), request: delArb }),
    rec({ type: fc.constant('txn' as const), request: tie('txn') }),
  ),
  txn: rec({
    compare: fc.array(compareArb, { maxLength: 3 }),
    success: fc.array(tie('op'), { maxLength: 3, depthIdentifier: 'txn' }),
    failure: fc.array(tie('op'), { maxLength: 3, depthIdentifier: 'txn' }),
  }),
}));
/** Any command the codec must carry. */
const commandArb: fc.Arbitrary<KvCommand> = fc.oneof(
  rec({ type: fc.constant('put' as const), request: putArb }),
  rec({ type: fc.constant('deleteRange' as const), request: delArb }),
  rec({ type: fc.constant('txn' as const), request: txnArb }),
  rec({ type: fc.constant('compact' as const), request: rec({ revision: intArb, physical: fc.boolean() }) }),
);

/** Decoding either fails with KvCodecError or gives a command that re-encodes to exactly these bytes. */
function decodesCanonicallyOrRejects(bytes: Uint8Array): 'decoded' | 'rejected' {
  let cmd: KvCommand;
  try {
    cmd = decodeCommand(bytes);
  } catch (err) {
    assert.ok(err instanceof KvCodecError, `expected KvCodecError, got ${String(err)}`);
    return 'rejected';
  }
  assert.deepEqual(encodeCommand(cmd), bytes);
  return 'decoded';
}

test('examples: a put and a compact encode compactly and decode back', () => {
  const put: KvCommand = { type: 'put', request: { key: new Uint8Array([0x66]), value: new Uint8Array([1, 2]), lease: 0, prevKv: true, ignoreValue: false, ignoreLease: false } };
  assert.deepEqual(encodeCommand(put), new Uint8Array([1, 1, 1, 0x66, 2, 1, 2, 0, 1]));
  assert.deepEqual(decodeCommand(encodeCommand(put)), put);
  const compact: KvCommand = { type: 'compact', request: { revision: -1, physical: true } };
  assert.deepEqual(encodeCommand(compact), new Uint8Array([1, 4, 1, 1]));
  assert.deepEqual(decodeCommand(new Uint8Array([1, 4, 1, 1])), compact);
});

test('examples: malformed bytes are KvCodecErrors with an offset', () => {
  const cases: [number[], string][] = [
    [[], 'truncated'],
    [[2, 4, 0, 0], 'version'],
    [[1, 9], 'command tag'],
    [[1, 4, 0, 0, 0], 'trailing'],
    [[1, 4, 0x80, 0x00, 0], 'overlong'],
    [[1, 4, 0, 2], 'flag'],
    [[1, 1, 200, 1], 'count'],
    [[1, 4, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0], 'safe'],
  ];
  for (const [bytes, what] of cases) {
    assert.throws(() => decodeCommand(new Uint8Array(bytes)), (e: unknown) => e instanceof KvCodecError && e.message.includes(what) && e.offset >= 0, what);
  }
});

test('examples: encodeCommand refuses what it cannot carry', () => {
  assert.throws(() => encodeCommand({ type: 'compact', request: { revision: 2 ** 60, physical: false } }), KvCodecError);
  assert.throws(() => encodeCommand({ type: 'compact', request: { revision: 1.5, physical: false } }), KvCodecError);
  const bad = { type: 'txn', request: { compare: [], success: [{ type: 'range', request: { sortOrder: 'sideways' } }], failure: [] } } as unknown as KvCommand;
  assert.throws(() => encodeCommand(bad), KvCodecError);
  let deep: TxnRequest = { compare: [], success: [], failure: [] };
  for (let i = 0; i < MAX_TXN_DEPTH + 1; i++) deep = { compare: [], success: [{ type: 'txn', request: deep }], failure: [] };
  assert.throws(() => encodeCommand({ type: 'txn', request: deep }), KvCodecError);
});

test('deeply nested txn bytes are rejected, not a stack overflow', () => {
  // [1, 3] then (compare 0, success 1, op txn) repeated.
  const bytes = [1, 3];
  for (let i = 0; i < 100_000; i++) bytes.push(0, 1, 4);
  assert.throws(() => decodeCommand(new Uint8Array(bytes)), KvCodecError);
});

test('property: every command round-trips, and its encoding is canonical', () => {
  fc.assert(fc.property(commandArb, (cmd) => {
    const bytes = encodeCommand(cmd);
    assert.deepEqual(decodeCommand(bytes), cmd);
    assert.deepEqual(encodeCommand(decodeCommand(bytes)), bytes);
  }), { numRuns: 1000 });
});

test('property: random bytes decode canonically or raise KvCodecError', () => {
  const arb = fc.oneof(
    fc.uint8Array({ maxLength: 48 }),
    fc.tuple(fc.integer({ min: 1, max: 4 }), fc.uint8Array({ maxLength: 48 })).map(([tag, rest]) => new Uint8Array([1, tag, ...rest])),
    fc.tuple(fc.integer({ min: 1, max: 4 }), fc.uint8Array({ maxLength: 4, max: 2 })).map(([tag, rest]) => new Uint8Array([1, tag, ...rest])),
  );
  let decoded = 0;
  fc.assert(fc.property(arb, (bytes) => {
    if (decodesCanonicallyOrRejects(bytes) === 'decoded') decoded++;
  }), { numRuns: 3000 });
  assert.ok(decoded > 0, 'some random inputs should decode');
});

test('property: mutated encodings decode canonically or raise KvCodecError', () => {
  const mutation = rec({ at: fc.nat(), kind: fc.constantFrom('flip', 'set', 'insert', 'delete', 'truncate'), byte: fc.integer({ min: 0, max: 255 }) });
  fc.assert(fc.property(commandArb, fc.array(mutation, { minLength: 1, maxLength: 3 }), (cmd, mutations) => {
    const bytes = [...encodeCommand(cmd)];
    for (const m of mutations) {
      const at = m.at % (bytes.length + 1);
      if (m.kind === 'flip') bytes[at] = (bytes[at] ?? 0) ^ (1 << (m.byte % 8));
      else if (m.kind === 'set') bytes[at] = m.byte;
      else if (m.kind === 'insert') bytes.splice(at, 0, m.byte);
      else if (m.kind === 'delete') bytes.splice(at, 1);
      else bytes.length = Math.min(bytes.length, at);
    }
    decodesCanonicallyOrRejects(new Uint8Array(bytes));
  }), { numRuns: 2000 });
});
