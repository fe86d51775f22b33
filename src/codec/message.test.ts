// Tests of the message codec: golden bytes, hand-written round trips of every
// message type, property-based round trips, every rejection the decoder must
// make, and fuzzing (random and mutated input decodes to a message that
// re-encodes to the same bytes, or throws CodecError — never anything else).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Configuration, Entry, SnapshotMeta } from '../protocol/entry.js';
import { nodeId, type NodeId } from '../protocol/ids.js';
import type { FetchResult, Message } from '../protocol/messages.js';
import { CodecError, decodeMessage, encodeMessage, MESSAGE_TYPES } from './index.js';

const a = nodeId('n1');
const b = nodeId('n2');
const bytes = (...xs: number[]): Uint8Array => new Uint8Array(xs);
const entry = (index: number, term: number, data = bytes(1, 2, 3), type: 'data' | 'noop' = 'data'): Entry => ({ index, term, type, data });
const snap: SnapshotMeta = { index: 100, term: 3 };

/** One hand-written example of every message type. */
const EXAMPLES: readonly Message[] = [
  { type: 'vote', from: a, to: b, term: 5, preVote: true, lastIndex: 10, lastTerm: 4, transfer: false },
  { type: 'voteResponse', from: b, to: a, term: 5, preVote: false, granted: true },
  { type: 'append', from: a, to: b, term: 7, prevIndex: 9, prevTerm: 6, entries: [entry(10, 6), entry(11, 7, bytes(), 'noop')], commit: 9 },
  { type: 'append', from: a, to: b, term: 2 ** 53 - 1, prevIndex: 2 ** 53 - 3, prevTerm: 1, entries: [entry(2 ** 53 - 2, 1), entry(2 ** 53 - 1, 2 ** 53 - 1)], commit: 0 },
  { type: 'appendResponse', from: b, to: a, term: 7, success: false, matchIndex: 0, rejectedIndex: 12, hintIndex: 8, hintTerm: 5 },
  { type: 'heartbeat', from: a, to: b, term: 7, commit: 11, readSeq: 99 },
  { type: 'heartbeatResponse', from: b, to: a, term: 7, readSeq: 99 },
  { type: 'installSnapshot', from: a, to: b, term: 8, snapshot: snap, offset: 262144, data: new Uint8Array(1000).fill(7), done: true },
  { type: 'installSnapshotResponse', from: b, to: a, term: 8, snapshot: snap, nextOffset: 263144, installed: true },
  { type: 'timeoutNow', from: a, to: b, term: 8 },
  { type: 'beginQuorumEpoch', from: a, to: b, term: 9 },
  { type: 'fetch', from: b, to: a, term: 9, fetchOffset: 12, lastFetchedTerm: 7, maxWaitTicks: 10, maxBytes: 1 << 20, commit: 11, readSeq: 3 },
  { type: 'fetchResponse', from: a, to: b, term: 9, fetchOffset: 12, lastFetchedTerm: 7, readSeq: 3, result: { kind: 'entries', entries: [entry(12, 9)], commit: 12 } },
  { type: 'fetchResponse', from: a, to: b, term: 9, fetchOffset: 0, lastFetchedTerm: 0, readSeq: 0, result: { kind: 'entries', entries: [], commit: 12 } },
  { type: 'fetchResponse', from: a, to: b, term: 9, fetchOffset: 12, lastFetchedTerm: 8, readSeq: 3, result: { kind: 'diverging', divergingTerm: 7, endOffset: 11 } },
  { type: 'fetchResponse', from: a, to: b, term: 9, fetchOffset: 2, lastFetchedTerm: 1, readSeq: 3, result: { kind: 'snapshot', snapshot: snap } },
  { type: 'fetchResponse', from: a, to: b, term: 9, fetchOffset: 2, lastFetchedTerm: 1, readSeq: 3, result: { kind: 'notLeader', leader: nodeId('n3') } },
  { type: 'fetchResponse', from: a, to: b, term: 9, fetchOffset: 2, lastFetchedTerm: 1, readSeq: 3, result: { kind: 'notLeader', leader: null } },
  { type: 'fetchSnapshot', from: b, to: a, term: 9, snapshot: snap, position: 0, maxBytes: 262144 },
  { type: 'fetchSnapshotResponse', from: a, to: b, term: 9, snapshot: snap, position: 0, data: bytes(9, 9), done: false, missing: false },
  { type: 'vote', from: nodeId('nœud-é'), to: nodeId('ノード'.repeat(28)), term: 1, preVote: false, lastIndex: 0, lastTerm: 0, transfer: true },
];

function hex(u: Uint8Array): string {
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString('hex');
}

/** Asserts that `fn` throws a CodecError whose reason matches `re`. */
function rejects(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof CodecError, `expected CodecError, got ${String(e)}`);
    assert.match(e.reason, re);
    return true;
  });
}

test('every message type has an example', () => {
  assert.deepEqual(new Set(EXAMPLES.map((m) => m.type)), new Set(MESSAGE_TYPES));
  assert.equal(MESSAGE_TYPES.length, 14);
});

test('golden bytes (a change here is a wire format change)', () => {
  assert.equal(hex(encodeMessage(EXAMPLES[5]!)), '05026e31026e3207000b63');
  assert.equal(hex(encodeMessage(EXAMPLES[2]!)), '03026e31026e320700090609020a060003010203070100');
  assert.equal(hex(encodeMessage(EXAMPLES[17]!)), '0c026e31026e3209000201030300');
});

test('hand-written examples round trip', () => {
  for (const m of EXAMPLES) {
    const enc = encodeMessage(m);
    const dec = decodeMessage(enc);
    assert.deepEqual(dec, m);
    assert.deepEqual(encodeMessage(dec), enc);
  }
});

test('decoded data is a copy, not a view of the input', () => {
  const enc = encodeMessage(EXAMPLES[2]!);
  const dec = decodeMessage(enc) as Extract<Message, { type: 'append' }>;
  enc.fill(0);
  assert.deepEqual(dec.entries[0]!.data, bytes(1, 2, 3));
  assert.equal(dec.entries[0]!.data.buffer.byteLength, 3);
  // from a Buffer (as sockets deliver): still a plain, separate Uint8Array (Buffer#slice would be a view)
  const buf = Buffer.from(encodeMessage(EXAMPLES[2]!));
  const fromBuf = decodeMessage(buf) as Extract<Message, { type: 'append' }>;
  buf.fill(0);
  assert.equal(Object.getPrototypeOf(fromBuf.entries[0]!.data), Uint8Array.prototype);
  assert.deepEqual(fromBuf.entries[0]!.data, bytes(1, 2, 3));
});

// ------------------------------------------------------------ arbitraries ---

const utf8Length = (s: string): number => Buffer.byteLength(s, 'utf8');
const arbNodeId: fc.Arbitrary<NodeId> = fc.oneof(
  fc.constantFrom('n1', 'n2', 'n3'),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }).filter((s) => utf8Length(s) <= 255),
  fc.string({ unit: 'grapheme-ascii', minLength: 255, maxLength: 255 }),
).map(nodeId);
const arbUint = fc.oneof(fc.nat(200), fc.nat(), fc.maxSafeNat());
const arbDirIdValue = fc.oneof(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: 2 ** 48 - 1 }));
const arbData = fc.oneof(fc.uint8Array({ maxLength: 8 }), fc.uint8Array({ maxLength: 300 }));
/** Valid configurations: distinct ids, at least one voter. */
const arbConfig: fc.Arbitrary<Configuration> = fc.uniqueArray(arbNodeId, { minLength: 1, maxLength: 7 })
  .chain((ids) => fc.tuple(fc.integer({ min: 1, max: ids.length }), fc.subarray(ids), fc.array(arbDirIdValue, { minLength: ids.length, maxLength: ids.length }))
    .map(([v, recorded, dirIds]): Configuration => {
      const c = { voters: ids.slice(0, v), observers: ids.slice(v) };
      return recorded.length === 0 ? c : { ...c, dirIds: recorded.map((node, i) => ({ node, dirId: dirIds[i] as number })) };
    }));
const arbSnap = fc.tuple(fc.record({ index: arbUint, term: arbUint }), fc.option(arbConfig, { nil: undefined }))
  .map(([s, config]): SnapshotMeta => (config === undefined ? { ...s } : { ...s, config })); // plain prototype, for deepEqual

/** Consecutive entries from `first`, terms non-decreasing from a start >= 1. */
function arbEntries(first: number): fc.Arbitrary<Entry[]> {
  return fc.tuple(fc.integer({ min: 1, max: 1000 }), fc.array(fc.tuple(fc.nat(3), fc.nat(2), arbData, arbConfig), { maxLength: 6 }))
    .map(([term0, specs]) => {
      let term = term0;
      return specs.map(([dt, kind, data, config], i): Entry => {
        term += dt;
        if (kind === 2) return { index: first + i, term, type: 'config', config, data: new Uint8Array(0) };
        return { index: first + i, term, type: kind === 1 ? 'noop' : 'data', data };
      });
    });
}
const arbIndex = fc.oneof(fc.nat(1000), fc.integer({ min: 0, max: 2 ** 53 - 100 }));
const arbResult = (fetchOffset: number): fc.Arbitrary<FetchResult> => fc.oneof(
  (fetchOffset >= 1 ? arbEntries(fetchOffset) : fc.constant([])).chain((entries) => arbUint.map((commit): FetchResult => ({ kind: 'entries', entries, commit }))),
  fc.record({ divergingTerm: arbUint, endOffset: arbUint }).map((r): FetchResult => ({ kind: 'diverging', ...r })),
  arbSnap.map((snapshot): FetchResult => ({ kind: 'snapshot', snapshot })),
  fc.option(arbNodeId, { nil: null }).map((leader): FetchResult => ({ kind: 'notLeader', leader })),
);

const arbDirId = fc.oneof(fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 1, max: 2 ** 48 - 1 }));
const arbEnvelope = fc.tuple(fc.record({ from: arbNodeId, to: arbNodeId, term: arbUint }), fc.option(arbDirId, { nil: undefined }))
  .map(([env, dirId]) => (dirId === undefined ? env : { ...env, dirId }));
const arbMessage: fc.Arbitrary<Message> = arbEnvelope.chain((env) => fc.oneof(
  fc.record({ preVote: fc.boolean(), lastIndex: arbUint, lastTerm: arbUint, transfer: fc.boolean() }).map((f): Message => ({ type: 'vote', ...env, ...f })),
  fc.record({ preVote: fc.boolean(), granted: fc.boolean() }).map((f): Message => ({ type: 'voteResponse', ...env, ...f })),
  arbIndex.chain((prevIndex) => fc.record({ prevTerm: arbUint, commit: arbUint, entries: arbEntries(prevIndex + 1) })
    .map((f): Message => ({ type: 'append', ...env, prevIndex, ...f }))),
  fc.record({ success: fc.boolean(), matchIndex: arbUint, rejectedIndex: arbUint, hintIndex: arbUint, hintTerm: arbUint }).map((f): Message => ({ type: 'appendResponse', ...env, ...f })),
  fc.record({ commit: arbUint, readSeq: arbUint }).map((f): Message => ({ type: 'heartbeat', ...env, ...f })),
  fc.record({ readSeq: arbUint }).map((f): Message => ({ type: 'heartbeatResponse', ...env, ...f })),
  fc.record({ snapshot: arbSnap, offset: arbUint, data: arbData, done: fc.boolean() }).map((f): Message => ({ type: 'installSnapshot', ...env, ...f })),
  fc.record({ snapshot: arbSnap, nextOffset: arbUint, installed: fc.boolean() }).map((f): Message => ({ type: 'installSnapshotResponse', ...env, ...f })),
  fc.constant<Message>({ type: 'timeoutNow', ...env }),
  fc.constant<Message>({ type: 'beginQuorumEpoch', ...env }),
  fc.record({ fetchOffset: arbUint, lastFetchedTerm: arbUint, maxWaitTicks: arbUint, maxBytes: arbUint, commit: arbUint, readSeq: arbUint })
    .map((f): Message => ({ type: 'fetch', ...env, ...f })),
  arbIndex.chain((fetchOffset) => fc.record({ lastFetchedTerm: arbUint, readSeq: arbUint, result: arbResult(fetchOffset) })
    .map((f): Message => ({ type: 'fetchResponse', ...env, fetchOffset, ...f }))),
  fc.record({ snapshot: arbSnap, position: arbUint, maxBytes: arbUint }).map((f): Message => ({ type: 'fetchSnapshot', ...env, ...f })),
  fc.record({ snapshot: arbSnap, position: arbUint, data: arbData, done: fc.boolean(), missing: fc.boolean() })
    .map((f): Message => ({ type: 'fetchSnapshotResponse', ...env, ...f })),
));

test('property: every generated message round trips to equal value and identical bytes', () => {
  fc.assert(fc.property(arbMessage, (m) => {
    const enc = encodeMessage(m);
    const dec = decodeMessage(enc);
    assert.deepEqual(dec, m);
    assert.deepEqual(encodeMessage(dec), enc);
  }), { numRuns: 2000 });
});

// ------------------------------------------------------------ rejections ---

test('decode rejects malformed input with a CodecError naming the field', () => {
  const hb = encodeMessage(EXAMPLES[5]!); // 05 | 02 6e31 | 02 6e32 | 07 | 00 (no dirId) | 0b | 63
  const patch = (at: number, ...xs: number[]): Uint8Array => {
    const c = hb.slice();
    c.set(xs, at);
    return c;
  };
  rejects(() => decodeMessage(bytes()), /type tag: truncated/);
  rejects(() => decodeMessage(bytes(0)), /type tag: unknown tag 0/);
  rejects(() => decodeMessage(bytes(15)), /unknown tag 15/);
  rejects(() => decodeMessage(hb.subarray(0, hb.length - 1)), /readSeq: truncated/);
  rejects(() => decodeMessage(new Uint8Array([...hb, 0])), /1 trailing bytes/);
  rejects(() => decodeMessage(patch(1, 0)), /from: empty/);
  rejects(() => decodeMessage(patch(1, 9)), /truncated/);
  rejects(() => decodeMessage(patch(4, 2, 0xc3, 0x28)), /to: invalid UTF-8/);
  rejects(() => decodeMessage(patch(4, 2, 0xed, 0xa0)), /to: invalid UTF-8/); // a UTF-16 surrogate in UTF-8
  // term as a non-minimal varint (0x87 0x00), and beyond 2^53 - 1
  rejects(() => decodeMessage(new Uint8Array([...hb.subarray(0, 7), 0x87, 0x00, 0x00, 0x0b, 0x63])), /term: non-minimal varint/);
  rejects(() => decodeMessage(new Uint8Array([...hb.subarray(0, 7), 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10, 0x00, 0x0b, 0x63])), /term: value exceeds/);
  rejects(() => decodeMessage(new Uint8Array([...hb.subarray(0, 7), ...new Array<number>(9).fill(0x81), 0x01, 0x00, 0x0b, 0x63])), /term: varint longer/);
  const maxSafe = new Uint8Array([...hb.subarray(0, 7), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, 0x0b, 0x63]);
  assert.equal(decodeMessage(maxSafe).term, 2 ** 53 - 1);
  // bad boolean
  const vr = encodeMessage(EXAMPLES[1]!);
  vr[vr.length - 1] = 2;
  rejects(() => decodeMessage(vr), /granted: boolean byte is 2/);
  // unknown entry type, unknown result kind
  const app = encodeMessage(EXAMPLES[2]!);
  const typeAt = 15; // tag, ids (6), term, dirId, prevIndex, prevTerm, commit, count, first index, term → type
  assert.equal(app[typeAt], 0);
  app[typeAt] = 3;
  rejects(() => decodeMessage(app), /entries\[0\]\.type: unknown entry type 3/);
  const fr = encodeMessage(EXAMPLES[16]!);
  fr[12] = 4; // tag, ids (6), term, dirId, fetchOffset, lastFetchedTerm, readSeq → result kind
  rejects(() => decodeMessage(fr), /result kind: unknown kind 4/);
});

test('decode rejects entries the core could not take', () => {
  const base = EXAMPLES[2] as Extract<Message, { type: 'append' }>;
  const raw = encodeMessage(base);
  // entries starting at 11 after prevIndex 9: the first-index byte is at 13
  const moved = raw.slice();
  moved[13] = 11;
  rejects(() => decodeMessage(moved), /append: entries start at 11, not at 10/);
  const zero = encodeMessage({ ...base, prevIndex: 0, entries: [entry(1, 6), entry(2, 7, bytes(), 'noop')] });
  zero[13] = 0;
  rejects(() => decodeMessage(zero), /first index: 0 with 2 entries/);
  // decreasing terms: 6 then 5
  const dec = raw.slice();
  dec[20] = 5;
  rejects(() => decodeMessage(dec), /entries\[1\]\.term: term 5 is below 6/);
  // a count larger than the bytes could hold is refused before allocating
  rejects(() => decodeMessage(new Uint8Array([...raw.subarray(0, 12), 0xff, 0xff, 0xff, 0x7f, 1])), /count: .* cannot fit/);
  const fr = EXAMPLES[12] as Extract<Message, { type: 'fetchResponse' }>;
  assert.throws(() => encodeMessage({ ...fr, fetchOffset: 13 }), CodecError);
});

test('encode rejects values the format cannot carry', () => {
  const hb = EXAMPLES[5] as Extract<Message, { type: 'heartbeat' }>;
  rejects(() => encodeMessage({ ...hb, term: -1 }), /term: -1 is not a non-negative safe integer/);
  rejects(() => encodeMessage({ ...hb, commit: 2 ** 53 }), /commit/);
  rejects(() => encodeMessage({ ...hb, readSeq: 1.5 }), /readSeq/);
  rejects(() => encodeMessage({ ...hb, readSeq: NaN }), /readSeq/);
  rejects(() => encodeMessage({ ...hb, from: nodeId('') }), /from: empty/);
  rejects(() => encodeMessage({ ...hb, to: nodeId('x'.repeat(256)) }), /to: 256 UTF-8 bytes/);
  rejects(() => encodeMessage({ ...hb, to: nodeId('é'.repeat(128)) }), /to: 256 UTF-8 bytes/);
  rejects(() => encodeMessage({ ...hb, to: nodeId('a\ud800b') }), /lone surrogate/);
  rejects(() => encodeMessage({ ...hb, type: 'nope' } as unknown as Message), /unknown message type/);
  const app = EXAMPLES[2] as Extract<Message, { type: 'append' }>;
  rejects(() => encodeMessage({ ...app, entries: [entry(10, 6), entry(12, 6)] }), /entries\[1\]: index 12 should be 11/);
  rejects(() => encodeMessage({ ...app, entries: [entry(10, 0)] }), /entries\[0\]: term 0/);
  rejects(() => encodeMessage({ ...app, entries: [{ ...entry(10, 6), type: 'x' as 'data' }] }), /type: unknown/);
  rejects(() => encodeMessage({ ...app, prevIndex: -1, entries: [] }), /prevIndex/);
});

// ------------------------------------------------------------------ fuzz ---

/** Decode, and if that succeeds, re-encoding must give the same bytes; any other exception fails. */
function decodesCanonicallyOrRejects(input: Uint8Array): void {
  let m: Message;
  try {
    m = decodeMessage(input);
  } catch (e) {
    if (e instanceof CodecError) return;
    throw e;
  }
  assert.deepEqual(encodeMessage(m), input);
}

test('fuzz: random bytes decode canonically or throw CodecError', () => {
  fc.assert(fc.property(
    fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.tuple(fc.integer({ min: 1, max: 14 }), fc.uint8Array({ maxLength: 64 })).map(([t, rest]) => new Uint8Array([t, ...rest]))),
    decodesCanonicallyOrRejects,
  ), { numRuns: 5000 });
});

test('fuzz: mutated valid encodings (bit flips, byte sets, truncation, extension) decode canonically or throw CodecError', () => {
  const mutation = fc.oneof(
    fc.record({ op: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat(7) }),
    fc.record({ op: fc.constant('set' as const), at: fc.nat(), value: fc.nat(255) }),
    fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
    fc.record({ op: fc.constant('extend' as const), extra: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
    fc.record({ op: fc.constant('insert' as const), at: fc.nat(), value: fc.nat(255) }),
    fc.record({ op: fc.constant('delete' as const), at: fc.nat() }),
  );
  fc.assert(fc.property(arbMessage, fc.array(mutation, { minLength: 1, maxLength: 4 }), (m, mutations) => {
    let buf = encodeMessage(m);
    for (const mu of mutations) {
      const at = buf.length === 0 ? 0 : ('at' in mu ? mu.at % buf.length : 0);
      switch (mu.op) {
        case 'flip': if (buf.length > 0) buf[at] = (buf[at] as number) ^ (1 << mu.bit); break;
        case 'set': if (buf.length > 0) buf[at] = mu.value; break;
        case 'truncate': buf = buf.slice(0, at); break;
        case 'extend': buf = new Uint8Array([...buf, ...mu.extra]); break;
        case 'insert': buf = new Uint8Array([...buf.subarray(0, at), mu.value, ...buf.subarray(at)]); break;
        case 'delete': buf = new Uint8Array([...buf.subarray(0, at), ...buf.subarray(at + 1)]); break;
      }
    }
    decodesCanonicallyOrRejects(buf);
  }), { numRuns: 5000 });
});

test('configuration entries and snapshot ids with a configuration round-trip; an invalid configuration is refused', () => {
  const config: Configuration = { voters: [a, b], observers: [nodeId('o1')] };
  const m: Message = {
    type: 'append', from: a, to: b, term: 3, prevIndex: 4, prevTerm: 2, commit: 4,
    entries: [{ index: 5, term: 3, type: 'config', config, data: new Uint8Array(0) }, entry(6, 3)],
  };
  assert.deepEqual(decodeMessage(encodeMessage(m)), m);
  const s: Message = { type: 'installSnapshot', from: a, to: b, term: 3, snapshot: { index: 9, term: 3, config }, offset: 0, data: bytes(1), done: true };
  assert.deepEqual(decodeMessage(encodeMessage(s)), s);
  const bad: Message = { ...m, entries: [{ index: 5, term: 3, type: 'config', config: { voters: [], observers: [] }, data: new Uint8Array(0) }] };
  assert.throws(() => encodeMessage(bad), CodecError);
  const twice: Message = { ...m, entries: [{ index: 5, term: 3, type: 'config', config: { voters: [a], observers: [a] }, data: new Uint8Array(0) }] };
  assert.throws(() => encodeMessage(twice), CodecError);
});

test('the sender\'s directory id: golden bytes, round trips, and what is refused', () => {
  const hb = EXAMPLES[5] as Extract<Message, { type: 'heartbeat' }>;
  const withDir: Message = { ...hb, dirId: 300 };
  assert.equal(hex(encodeMessage(withDir)), '05026e31026e3207ac020b63'); // 300 = ac 02
  assert.deepEqual(decodeMessage(encodeMessage(withDir)), withDir);
  const top: Message = { ...hb, dirId: 2 ** 48 - 1 };
  assert.deepEqual(decodeMessage(encodeMessage(top)), top);
  // absent is written as 0 and read back as absent
  assert.equal('dirId' in decodeMessage(encodeMessage(hb)), false);
  rejects(() => encodeMessage({ ...hb, dirId: 0 }), /dirId: 0 is not an integer in \[1, 2\^48\)/);
  rejects(() => encodeMessage({ ...hb, dirId: 2 ** 48 }), /dirId/);
  rejects(() => encodeMessage({ ...hb, dirId: 1.5 }), /dirId/);
  // 2^48 as a varint: 80 80 80 80 80 80 40
  rejects(() => decodeMessage(new Uint8Array([0x05, 0x02, 0x6e, 0x31, 0x02, 0x6e, 0x32, 0x07, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40, 0x0b, 0x63])),
    /dirId: 281474976710656 is not below 2\^48/);
  rejects(() => decodeMessage(new Uint8Array([0x05, 0x02, 0x6e, 0x31, 0x02, 0x6e, 0x32, 0x07, 0x80, 0x00, 0x0b, 0x63])), /dirId: non-minimal varint/);
});

test('a configuration with directory ids travels in entries and snapshot ids', () => {
  const config: Configuration = { voters: [a, b], observers: [nodeId('o1')], dirIds: [{ node: b, dirId: 7 }, { node: nodeId('o1'), dirId: 2 ** 40 }] };
  const s: Message = { type: 'installSnapshot', from: a, to: b, term: 3, snapshot: { index: 9, term: 3, config }, offset: 0, data: bytes(1), done: true, dirId: 5 };
  assert.deepEqual(decodeMessage(encodeMessage(s)), s);
  const bad: Message = { ...s, snapshot: { index: 9, term: 3, config: { ...config, dirIds: [{ node: nodeId('zz'), dirId: 1 }] } } };
  rejects(() => encodeMessage(bad), /not a member/);
});
