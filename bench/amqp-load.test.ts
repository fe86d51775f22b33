// The AMQP generator's own arithmetic, without a broker: that publishers and
// consumers are spread over workers and URLs as its header says (each once,
// balanced, round-robin), that histograms merged from workers give the
// percentiles of all the values together, that a body carries its publish
// instant, that a run's counts are added up per second of the measured
// interval, and that a URL nobody listens on fails with AmqpLoadError.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import hdr from 'hdr-histogram-js';
import {
  aggregate, AmqpLoadError, assign, AMQP_LOAD_DEFAULTS, bodyStamp, mergeEncoded, newHistogram, runAmqpLoad, stampBody, validateSpec,
  type AmqpLoadSpec, type WorkerResult,
} from './amqp-load.js';
import { portOpen } from './rabbitmq.js';

const baseSpec = (over: Partial<AmqpLoadSpec> = {}): AmqpLoadSpec => ({ ...AMQP_LOAD_DEFAULTS, urls: ['amqp://a', 'amqp://b', 'amqp://c'], queue: 'q', ...over });

test('assign places every publisher and consumer once, round-robin over URLs, balanced over workers', () => {
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 80 }), fc.integer({ min: 0, max: 20 }), fc.integer({ min: 1, max: 8 }),
    (nUrls, publishers, consumers, procsWanted) => {
      const procs = Math.min(procsWanted, publishers + consumers);
      const urls = Array.from({ length: nUrls }, (_, i) => `amqp://h${i}`);
      const a = assign({ urls, publishers, consumers, procs });
      for (const [role, n] of [['publisher', publishers], ['consumer', consumers]] as const) {
        const mine = a.filter((x) => x.role === role);
        assert.deepEqual(mine.map((x) => x.index).sort((x, y) => x - y), Array.from({ length: n }, (_, i) => i));
        const perWorker = Array.from({ length: procs }, (_, w) => mine.filter((x) => x.worker === w).length);
        assert.ok(Math.max(...perWorker) - Math.min(...perWorker) <= 1, `${role}s per worker ${perWorker.join(',')}`);
        const perUrl = urls.map((u) => mine.filter((x) => x.url === u).length);
        assert.ok(Math.max(...perUrl) - Math.min(...perUrl) <= 1, `${role}s per URL ${perUrl.join(',')}`);
        for (const x of mine) assert.ok(x.worker >= 0 && x.worker < procs);
      }
      // Every worker has something to do.
      for (let w = 0; w < procs; w++) assert.ok(a.some((x) => x.worker === w), `worker ${w} idle`);
    },
  ));
});

test('assign keeps the lone publisher and consumer on different nodes and, with 2 workers, in different processes', () => {
  const [p, c] = assign({ urls: ['u1', 'u2', 'u3'], publishers: 1, consumers: 1, procs: 2 });
  assert.equal(p?.url, 'u1');
  assert.equal(c?.url, 'u2');
  assert.notEqual(p?.worker, c?.worker);
});

test('a body carries the hrtime instant it was stamped with', () => {
  fc.assert(fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.integer({ min: 8, max: 2048 }), (t, size) => {
    const b = Buffer.alloc(size, 0x61);
    stampBody(b, t);
    assert.equal(bodyStamp(b), t);
    assert.equal(b.subarray(8).every((x) => x === 0x61), true, 'the rest of the body is untouched');
  }));
});

test('merging encoded histograms gives the percentiles of all the values together', () => {
  fc.assert(fc.property(fc.array(fc.array(fc.integer({ min: 1, max: 5_000_000 }), { maxLength: 200 }), { minLength: 1, maxLength: 4 }), (parts) => {
    const all = newHistogram();
    const encoded = parts.map((values) => {
      const h = newHistogram();
      for (const v of values) {
        h.recordValue(v);
        all.recordValue(v);
      }
      const e = hdr.encodeIntoCompressedBase64(h);
      h.destroy();
      return e;
    });
    const merged = mergeEncoded(encoded);
    assert.equal(merged.totalCount, all.totalCount);
    for (const p of [0, 50, 90, 99, 99.9, 100]) assert.equal(merged.getValueAtPercentile(p), all.getValueAtPercentile(p), `p${p}`);
    // The encoding keeps values to the histogram's resolution: the exact maximum becomes its bucket's highest equivalent.
    if (all.totalCount > 0) assert.equal(merged.maxValue, all.getValueAtPercentile(100));
    merged.destroy();
    all.destroy();
  }), { numRuns: 50 });
});

function worker(over: Partial<WorkerResult>, confirmsUs: number[] = [], deliversUs: number[] = []): WorkerResult {
  const enc = (vs: number[]): string => {
    const h = newHistogram();
    for (const v of vs) h.recordValue(v);
    const e = hdr.encodeIntoCompressedBase64(h);
    h.destroy();
    return e;
  };
  return {
    pid: 1, publishers: 1, consumers: 1, published: 0, confirmed: 0, nacked: 0, delivered: 0, publishedInWindow: 0, confirmedInWindow: 0, deliveredInWindow: 0,
    wallSeconds: 2, userSeconds: 0.5, systemSeconds: 0.1, confirmHistogram: enc(confirmsUs), deliverHistogram: enc(deliversUs), errors: [], ...over,
  };
}

test('aggregate adds the workers up over the measured interval, and counts confirmed messages never delivered', () => {
  const spec = baseSpec({ durationMs: 2000, consumers: 2, procs: 2, publishers: 2 });
  const r = aggregate(spec, [
    worker({ pid: 10, published: 120, confirmed: 110, delivered: 50, confirmedInWindow: 100, deliveredInWindow: 40, publishedInWindow: 101 }, [1000, 2000], [3000]),
    worker({ pid: 11, published: 90, confirmed: 90, nacked: 1, delivered: 140, confirmedInWindow: 80, deliveredInWindow: 130, publishedInWindow: 81, errors: ['x'] }, [4000], [5000, 6000]),
  ], 1234);
  assert.equal(r.confirmedPerSecond, (100 + 80) / 2);
  assert.equal(r.deliveredPerSecond, (40 + 130) / 2);
  assert.equal(r.publishedPerSecond, (101 + 81) / 2);
  assert.equal(r.published, 210);
  assert.equal(r.nacked, 1);
  assert.equal(r.undelivered, 200 - 190);
  assert.equal(r.confirmLatencyMs.count, 3);
  assert.equal(r.deliverLatencyMs.count, 3);
  assert.ok(Math.abs(r.confirmLatencyMs.max - 4) < 0.004, `max ${r.confirmLatencyMs.max}`); // 3 significant digits
  assert.deepEqual(r.generator.map((g) => [g.pid, Math.round(g.percentOfCore)]), [[10, 30], [11, 30]]);
  assert.ok(Math.abs(r.generatorCpuSeconds - 1.2) < 1e-9);
  assert.deepEqual(r.errors, ['x']);
  assert.equal(r.measuredToMs - r.measuredFromMs, 2000);
});

test('validateSpec refuses specs that break its invariants', () => {
  assert.doesNotThrow(() => validateSpec(baseSpec()));
  for (const bad of [{ urls: [] }, { publishers: 0 }, { window: 0 }, { messageBytes: 7 }, { procs: 0 }, { procs: 3, publishers: 1, consumers: 1 }, { consumers: -1 }, { durationMs: 0 }]) {
    assert.throws(() => validateSpec(baseSpec(bad)), RangeError, JSON.stringify(bad));
  }
});

test('a URL where nothing listens fails the run with AmqpLoadError naming it', async () => {
  const port = 5699; // in this worktree's range; nothing of ours listens there
  assert.equal(await portOpen(port), false, `port ${port} is taken: the test needs it closed`);
  await assert.rejects(runAmqpLoad(baseSpec({ urls: [`amqp://guest:guest@127.0.0.1:${port}`], durationMs: 100, warmupMs: 0 })),
    (e: unknown) => e instanceof AmqpLoadError && e.message.includes(`127.0.0.1:${port}`) && !e.message.includes('guest:guest'));
});
