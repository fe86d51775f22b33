import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { encodeBatch, encodeResults, HotFrameError, HotFrameReader, MAX_HOT_FRAME_BYTES, type HotFrame } from './hot-channel.js';
import type { WorkerRequest, WorkerResult } from './messages.js';
import { cutAt } from '../../util/test-chunks.js';

function readAll(chunks: readonly Buffer[]): HotFrame[] {
  const out: HotFrame[] = [];
  const r = new HotFrameReader((f) => out.push(f));
  for (const c of chunks) r.push(c);
  return out;
}

const request: WorkerRequest = { op: 'range', id: 7, request: { key: new Uint8Array([1, 2]), rangeEnd: new Uint8Array(0), limit: 0, revision: 0, serializable: false, keysOnly: false, countOnly: false, sortOrder: 0, sortTarget: 0, minModRevision: 0, maxModRevision: 0, minCreateRevision: 0, maxCreateRevision: 0 } } as unknown as WorkerRequest;
const refusal: WorkerResult = { ok: false, id: 9, code: 3, message: 'etcdserver: key is not provided' };

test('a batch and results cross whole, in order, however the stream cuts them', () => {
  fc.assert(fc.property(
    fc.uint8Array({ maxLength: 300 }), fc.uint8Array({ maxLength: 300 }), fc.boolean(), fc.array(fc.nat(2000), { maxLength: 12 }),
    (writes, puts, withObjects, cuts) => {
      const a = encodeBatch(writes.byteLength === 0 ? null : writes, withObjects ? [request] : [], withObjects ? [{ id: 7, token: 't' }] : null);
      const b = encodeResults(puts.byteLength === 0 ? null : puts, withObjects ? [refusal] : []);
      const frames = readAll(cutAt(Buffer.concat([a, b, a]), cuts));
      assert.equal(frames.length, 3);
      const [f1, f2, f3] = frames as [HotFrame, HotFrame, HotFrame];
      assert.equal(f1.kind, 'batch');
      assert.equal(f2.kind, 'results');
      assert.deepEqual(f3, f1);
      if (f1.kind !== 'batch' || f2.kind !== 'results') return;
      assert.deepEqual(f1.batch.writes === null ? null : [...f1.batch.writes], writes.byteLength === 0 ? null : [...writes]);
      assert.deepEqual(f1.batch.requests, withObjects ? [request] : []);
      assert.deepEqual(f1.batch.identities, withObjects ? [{ id: 7, token: 't' }] : null);
      assert.deepEqual(f2.results.puts === null ? null : [...f2.results.puts], puts.byteLength === 0 ? null : [...puts]);
      assert.deepEqual(f2.results.results, withObjects ? [refusal] : []);
    },
  ), { numRuns: 200 });
});

test('a batch\'s packed writes are a copy: reusing the chunk does not change a frame already handed out', () => {
  const chunk = encodeBatch(new Uint8Array([1, 2, 3]), [], null);
  const frames = readAll([chunk]);
  chunk.fill(0);
  const f = frames[0] as HotFrame;
  assert.ok(f.kind === 'batch' && f.batch.writes !== null);
  assert.deepEqual([...f.batch.writes], [1, 2, 3]);
});

test('malformed frames are refused with HotFrameError', () => {
  const header = (body: number, kind: number): Buffer => {
    const b = Buffer.alloc(5);
    b.writeUInt32LE(body, 0);
    b[4] = kind;
    return b;
  };
  const cases: Array<[string, Buffer]> = [
    ['an unknown kind', Buffer.concat([header(4, 9), Buffer.alloc(4)])],
    ['no packed length', Buffer.concat([header(2, 1), Buffer.alloc(2)])],
    ['a packed part past the frame', (() => { const b = Buffer.concat([header(6, 1), Buffer.alloc(6)]); b.writeUInt32LE(100, 5); return b; })()],
    ['an oversized frame', header(MAX_HOT_FRAME_BYTES + 1, 1)],
    ['a structured part that is not V8 data', Buffer.concat([header(7, 2), Buffer.from([0, 0, 0, 0, 0xff, 0x00, 0x7f])])],
  ];
  for (const [what, buf] of cases) {
    assert.throws(() => readAll([buf]), HotFrameError, what);
  }
});
