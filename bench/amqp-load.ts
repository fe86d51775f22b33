// The AMQP 0-9-1 load generator of issue 20, written against amqplib (the
// client a Node team would use), so that the same code drives RabbitMQ and
// quorumlog's AMQP listener. Against a list of AMQP URLs it:
//
// - declares one durable quorum queue (x-queue-type: quorum);
// - runs P publishers, each on its own connection and confirm channel (spread
//   over the URLs round-robin), publishing persistent messages of
//   `messageBytes` to the queue through the default exchange, with at most
//   `window` unconfirmed at a time;
// - runs C consumers, each on its own connection (also round-robin), with
//   basic.qos prefetch and manual acks, on the same queue;
// - stamps each message's first 8 bytes with process.hrtime.bigint() at
//   publish (CLOCK_MONOTONIC: one clock for every process on this host), so a
//   consumer in any worker process measures publish → deliver; the publisher
//   measures publish → confirm;
// - counts, for a measured interval after a warm-up, the confirms and
//   deliveries that arrive in it, with their latencies in HDR histograms
//   (µs), and each worker process's own CPU (process.cpuUsage, user + sys
//   over wall) in the same interval;
// - stops publishing at the end, lets the consumers drain what was confirmed
//   (up to `drainMs`), and deletes the queue.
//
// Window: the default is 1 unconfirmed message per publisher, as the other
// benchmarks run one request in flight per client. Then "publishers" is the
// concurrency, publish → confirm is exactly the broker's commit latency (no
// time spent queued behind the publisher's own earlier messages), and the
// 1-publisher figure is the latency-bound one a request/response caller
// sees. A larger window (--window) measures pipelined throughput instead;
// its latencies then include queueing inside the window.
//
// Publishers and consumers run in `procs` worker processes (child_process.
// fork), publisher i and consumer j in worker i mod procs and j mod procs, so
// that 64 publishers are not held back by one Node thread on this 2-core
// machine; the workers start on one schedule of absolute hrtime instants and
// send back their counts and encoded histograms, which are added up here.
// The parent only orchestrates (its CPU is not the generator's).
//
//   node dist/bench/amqp-load.js --urls amqp://guest:guest@127.0.0.1:5682,... [--publishers 64] [--consumers 4]
//        [--window 1] [--prefetch 100] [--bytes 1024] [--seconds 15] [--warmup-seconds 3] [--procs 2]
//
// prints the result as one JSON line.

import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import amqp from 'amqplib';
import type { ChannelModel, ConfirmChannel, ConsumeMessage } from 'amqplib';
import hdr from 'hdr-histogram-js';

/** What one run of the generator does. */
export interface AmqpLoadSpec {
  /** AMQP URLs; publishers and consumers go to them round-robin. Non-empty. */
  readonly urls: readonly string[];
  /** The queue's name (declared quorum and durable; deleted at the end). */
  readonly queue: string;
  /** ≥ 1. */
  readonly publishers: number;
  /** ≥ 0. */
  readonly consumers: number;
  /** Unconfirmed messages a publisher may have at a time, ≥ 1. */
  readonly window: number;
  /** basic.qos prefetch per consumer, ≥ 1. */
  readonly prefetch: number;
  /** Message body size, ≥ 8 (the timestamp). */
  readonly messageBytes: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  /** Worker processes, 1 ≤ procs ≤ publishers + consumers. */
  readonly procs: number;
  /** After the measured interval, how long consumers may take to receive every confirmed message. */
  readonly drainMs: number;
}

/** Sensible defaults for everything but the URLs. */
export const AMQP_LOAD_DEFAULTS = {
  publishers: 1, consumers: 1, window: 1, prefetch: 100, messageBytes: 1024, warmupMs: 3000, durationMs: 15_000, procs: 1, drainMs: 10_000,
} as const;

/** Latency percentiles in ms (from an HDR histogram of µs values). */
export interface LatencySummary {
  readonly count: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
  readonly mean: number;
}

/** What one worker process reports. Counts named *InWindow are for the measured interval. */
export interface WorkerResult {
  readonly pid: number;
  readonly publishers: number;
  readonly consumers: number;
  /** Every publish, confirm, nack and delivery of the run (warm-up and drain included). */
  readonly published: number;
  readonly confirmed: number;
  readonly nacked: number;
  readonly delivered: number;
  readonly publishedInWindow: number;
  readonly confirmedInWindow: number;
  readonly deliveredInWindow: number;
  /** Wall seconds between the worker's two CPU readings (≈ the measured interval). */
  readonly wallSeconds: number;
  readonly userSeconds: number;
  readonly systemSeconds: number;
  /** HDR histograms (µs) in hdr-histogram-js's compressed base64 encoding. */
  readonly confirmHistogram: string;
  readonly deliverHistogram: string;
  readonly errors: readonly string[];
}

/** CPU of one generator process over the measured interval. */
export interface GeneratorProcessCpu {
  readonly pid: number;
  readonly publishers: number;
  readonly consumers: number;
  readonly userSeconds: number;
  readonly systemSeconds: number;
  /** (user + sys) / wall, in % of one core. */
  readonly percentOfCore: number;
}

/** The aggregate over the workers. */
export interface AmqpLoadResult {
  readonly spec: AmqpLoadSpec;
  readonly seconds: number;
  readonly published: number;
  readonly confirmed: number;
  readonly nacked: number;
  readonly delivered: number;
  readonly confirmedPerSecond: number;
  readonly deliveredPerSecond: number;
  readonly publishedPerSecond: number;
  readonly confirmLatencyMs: LatencySummary;
  readonly deliverLatencyMs: LatencySummary;
  /** Per worker process. */
  readonly generator: readonly GeneratorProcessCpu[];
  /** Sum over the workers, in CPU seconds. */
  readonly generatorCpuSeconds: number;
  /** Confirmed messages that no consumer had received when the drain ended (0 with consumers and a healthy broker). */
  readonly undelivered: number;
  readonly errors: readonly string[];
  /** The measured interval in this (the parent) process's performance.now() clock, ms: for sampling the servers' CPU over it. */
  readonly measuredFromMs: number;
  readonly measuredToMs: number;
}

/** The broker refused or dropped a connection the generator needs (e.g. nothing listens at a URL). */
export class AmqpLoadError extends Error {
  override readonly name = 'AmqpLoadError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Queue arguments of every queue the generator declares. */
export const QUORUM_QUEUE_ARGS = { 'x-queue-type': 'quorum' } as const;

/** Checks a spec's invariants; throws RangeError naming the first one broken. */
export function validateSpec(s: AmqpLoadSpec): void {
  const whole = (x: number, min: number, what: string): void => {
    if (!Number.isInteger(x) || x < min) throw new RangeError(`${what} must be a whole number ≥ ${min}, not ${x}`);
  };
  if (s.urls.length === 0) throw new RangeError('no AMQP URLs');
  whole(s.publishers, 1, 'publishers');
  whole(s.consumers, 0, 'consumers');
  whole(s.window, 1, 'window');
  whole(s.prefetch, 1, 'prefetch');
  whole(s.messageBytes, 8, 'messageBytes');
  whole(s.procs, 1, 'procs');
  if (s.procs > s.publishers + s.consumers) throw new RangeError(`procs (${s.procs}) exceeds publishers + consumers (${s.publishers + s.consumers})`);
  if (!(s.durationMs > 0) || !(s.warmupMs >= 0) || !(s.drainMs >= 0)) throw new RangeError('durationMs must be > 0, warmupMs and drainMs ≥ 0');
}

/** One publisher or consumer: which worker runs it and which URL it connects to. */
export interface Assignment {
  readonly role: 'publisher' | 'consumer';
  /** Index among its role, [0, publishers) or [0, consumers). */
  readonly index: number;
  readonly worker: number;
  readonly url: string;
}

/**
 * Where each publisher and consumer runs: index i of a role in worker
 * i mod procs, on URL i mod urls.length; consumers' URLs start after the
 * publishers' so that with 1 publisher and 1 consumer on 3 nodes they land
 * on different nodes, as separate applications would.
 */
export function assign(s: Pick<AmqpLoadSpec, 'urls' | 'publishers' | 'consumers' | 'procs'>): Assignment[] {
  const out: Assignment[] = [];
  for (let i = 0; i < s.publishers; i++) out.push({ role: 'publisher', index: i, worker: i % s.procs, url: s.urls[i % s.urls.length] as string });
  for (let j = 0; j < s.consumers; j++) {
    // Consumers fill the workers from the last one down, so that procs ≥ 2 keeps one publisher and one consumer apart.
    out.push({ role: 'consumer', index: j, worker: s.procs - 1 - (j % s.procs), url: s.urls[(s.publishers + j) % s.urls.length] as string });
  }
  return out;
}

/** Writes the publish instant (ns, process.hrtime.bigint()) into the first 8 bytes of a body. */
export function stampBody(body: Buffer, atNs: bigint): void {
  body.writeBigUInt64BE(atNs, 0);
}

/** The publish instant a body carries. */
export function bodyStamp(body: Buffer): bigint {
  return body.readBigUInt64BE(0);
}

/** A histogram of µs values up to 10 minutes, 3 significant digits. */
export function newHistogram(): hdr.Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: 3 });
}

/** The percentiles of a µs histogram, in ms. */
export function summarize(h: hdr.Histogram): LatencySummary {
  const ms = (p: number): number => (h.totalCount === 0 ? NaN : h.getValueAtPercentile(p) / 1000);
  return {
    count: h.totalCount, p50: ms(50), p90: ms(90), p99: ms(99), p999: ms(99.9),
    max: h.totalCount === 0 ? NaN : h.maxValue / 1000, mean: h.totalCount === 0 ? NaN : h.mean / 1000,
  };
}

/** Adds up encoded histograms (one per worker) into one. */
export function mergeEncoded(encoded: readonly string[]): hdr.Histogram {
  const total = newHistogram();
  for (const e of encoded) {
    const h = hdr.decodeFromCompressedBase64(e);
    total.add(h);
    h.destroy();
  }
  return total;
}

/** Adds up the workers' reports. */
export function aggregate(spec: AmqpLoadSpec, workers: readonly WorkerResult[], measuredFromMs = NaN): AmqpLoadResult {
  const sum = (f: (w: WorkerResult) => number): number => workers.reduce((a, w) => a + f(w), 0);
  // Every worker measured the same interval of the shared clock; its wall time differs only by timer lateness.
  const seconds = spec.durationMs / 1000;
  const confirm = mergeEncoded(workers.map((w) => w.confirmHistogram));
  const deliver = mergeEncoded(workers.map((w) => w.deliverHistogram));
  const result: AmqpLoadResult = {
    spec, seconds,
    published: sum((w) => w.published), confirmed: sum((w) => w.confirmed), nacked: sum((w) => w.nacked), delivered: sum((w) => w.delivered),
    confirmedPerSecond: sum((w) => w.confirmedInWindow) / seconds,
    deliveredPerSecond: sum((w) => w.deliveredInWindow) / seconds,
    publishedPerSecond: sum((w) => w.publishedInWindow) / seconds,
    confirmLatencyMs: summarize(confirm), deliverLatencyMs: summarize(deliver),
    generator: workers.map((w) => ({
      pid: w.pid, publishers: w.publishers, consumers: w.consumers, userSeconds: w.userSeconds, systemSeconds: w.systemSeconds,
      percentOfCore: (100 * (w.userSeconds + w.systemSeconds)) / w.wallSeconds,
    })),
    generatorCpuSeconds: sum((w) => w.userSeconds + w.systemSeconds),
    undelivered: spec.consumers === 0 ? 0 : Math.max(0, sum((w) => w.confirmed) - sum((w) => w.delivered)),
    errors: workers.flatMap((w) => w.errors),
    measuredFromMs, measuredToMs: measuredFromMs + spec.durationMs,
  };
  confirm.destroy();
  deliver.destroy();
  return result;
}

// ---- the parent: queue, workers, schedule ----

type ToWorker =
  | { readonly type: 'go'; readonly startNs: string; readonly fromNs: string; readonly toNs: string }
  | { readonly type: 'finish' };

type FromWorker =
  | { readonly type: 'ready' }
  | { readonly type: 'progress'; readonly confirmed: number; readonly delivered: number; readonly publishing: boolean }
  | { readonly type: 'result'; readonly result: WorkerResult }
  | { readonly type: 'fatal'; readonly message: string };

/** Connects to a URL, naming it in the error when that fails. */
async function connectTo(url: string): Promise<ChannelModel> {
  try {
    return await amqp.connect(url, { timeout: 10_000 });
  } catch (e) {
    throw new AmqpLoadError(`cannot connect to ${url.replace(/\/\/[^@]*@/, '//')}: ${(e as Error).message}`, { cause: e });
  }
}

/** Declares the spec's queue as a durable quorum queue, empty. */
export async function declareQueue(url: string, queue: string): Promise<void> {
  const c = await connectTo(url);
  try {
    const ch = await c.createChannel();
    await ch.assertQueue(queue, { durable: true, arguments: QUORUM_QUEUE_ARGS });
    await ch.purgeQueue(queue);
    await ch.close();
  } finally {
    await c.close().catch(() => undefined);
  }
}

/** Deletes the queue; returns how many messages it still held. */
export async function deleteQueue(url: string, queue: string): Promise<number> {
  const c = await connectTo(url);
  try {
    const ch = await c.createChannel();
    const r = await ch.deleteQueue(queue);
    await ch.close();
    return r.messageCount;
  } finally {
    await c.close().catch(() => undefined);
  }
}

/** Runs the load: declares the queue, forks the workers, runs them on one schedule, deletes the queue. */
export async function runAmqpLoad(spec: AmqpLoadSpec): Promise<AmqpLoadResult> {
  validateSpec(spec);
  const first = spec.urls[0] as string;
  await declareQueue(first, spec.queue);
  const workers: ChildProcess[] = [];
  try {
    const script = fileURLToPath(import.meta.url);
    for (let w = 0; w < spec.procs; w++) {
      workers.push(fork(script, ['--worker', String(w), JSON.stringify(spec)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
    }
    const { results, measuredFromMs } = await orchestrate(spec, workers);
    return aggregate(spec, results, measuredFromMs);
  } finally {
    for (const w of workers) if (w.exitCode === null && w.signalCode === null) w.kill('SIGKILL');
    await deleteQueue(first, spec.queue).catch(() => undefined);
  }
}

function orchestrate(spec: AmqpLoadSpec, workers: readonly ChildProcess[]): Promise<{ results: WorkerResult[]; measuredFromMs: number }> {
  return new Promise((resolve, reject) => {
    let measuredFromMs = NaN;
    const ready = new Set<number>();
    const progress = new Map<number, { confirmed: number; delivered: number; publishing: boolean }>();
    const results = new Map<number, WorkerResult>();
    let drainDeadline = Infinity;
    let finishing = false;
    let failed = false;
    const send = (m: ToWorker): void => {
      for (const w of workers) w.send(m);
    };
    const fail = (e: Error): void => {
      if (failed) return;
      failed = true;
      clearInterval(timer);
      reject(e);
    };
    const timer = setInterval(() => {
      // Drain: once every worker has stopped publishing, wait until the consumers have all that was confirmed.
      if (finishing || progress.size < workers.length || [...progress.values()].some((p) => p.publishing)) return;
      if (drainDeadline === Infinity) drainDeadline = Date.now() + spec.drainMs;
      const confirmed = [...progress.values()].reduce((a, p) => a + p.confirmed, 0);
      const delivered = [...progress.values()].reduce((a, p) => a + p.delivered, 0);
      if (spec.consumers === 0 || delivered >= confirmed || Date.now() > drainDeadline) {
        finishing = true;
        send({ type: 'finish' });
      }
    }, 100);
    workers.forEach((w, i) => {
      w.on('message', (m: FromWorker) => {
        switch (m.type) {
          case 'ready': {
            ready.add(i);
            if (ready.size === workers.length) {
              // One schedule for all, on the shared monotonic clock; 100 ms lets every worker receive it first.
              const nowMs = performance.now();
              const startNs = process.hrtime.bigint() + 100_000_000n;
              measuredFromMs = nowMs + 100 + spec.warmupMs;
              const fromNs = startNs + BigInt(Math.round(spec.warmupMs * 1e6));
              const toNs = fromNs + BigInt(Math.round(spec.durationMs * 1e6));
              send({ type: 'go', startNs: String(startNs), fromNs: String(fromNs), toNs: String(toNs) });
            }
            break;
          }
          case 'progress':
            progress.set(i, { confirmed: m.confirmed, delivered: m.delivered, publishing: m.publishing });
            break;
          case 'result':
            results.set(i, m.result);
            if (results.size === workers.length) {
              clearInterval(timer);
              resolve({ results: [...results.entries()].sort((a, b) => a[0] - b[0]).map(([, r]) => r), measuredFromMs });
            }
            break;
          case 'fatal':
            fail(new AmqpLoadError(`generator worker ${i}: ${m.message}`));
            break;
          default:
            assertNeverMessage(m);
        }
      });
      w.once('exit', (code, signal) => {
        if (!results.has(i)) fail(new AmqpLoadError(`generator worker ${i} exited (${code ?? signal}) before reporting`));
      });
    });
  });
}

function assertNeverMessage(m: never): never {
  throw new Error(`unexpected message ${JSON.stringify(m)}`);
}

// ---- a worker: its publishers and consumers ----

interface WorkerState {
  published: number;
  confirmed: number;
  nacked: number;
  delivered: number;
  publishedInWindow: number;
  confirmedInWindow: number;
  deliveredInWindow: number;
  /** Measured interval [fromNs, toNs) on the shared clock; 0n until the schedule arrives. */
  fromNs: bigint;
  toNs: bigint;
  activePublishers: number;
  readonly confirmHist: hdr.Histogram;
  readonly deliverHist: hdr.Histogram;
  readonly errors: string[];
}

const inWindow = (s: WorkerState, t: bigint): boolean => t >= s.fromNs && t < s.toNs;

/** Publishes with at most `window` unconfirmed, from now until toNs; resolves when its last confirm is in. */
function runPublisher(ch: ConfirmChannel, spec: AmqpLoadSpec, s: WorkerState): Promise<void> {
  const template = Buffer.alloc(spec.messageBytes, 0x61);
  return new Promise((resolve) => {
    let inflight = 0;
    let blocked = false;
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      resolve();
    };
    const pump = (): void => {
      while (!blocked && inflight < spec.window) {
        const t0 = process.hrtime.bigint();
        if (t0 >= s.toNs) {
          if (inflight === 0) finish();
          return;
        }
        // Bodies under 2 KiB are copied into one frame buffer synchronously by amqplib; a fresh copy keeps that an implementation detail.
        const body = Buffer.allocUnsafe(spec.messageBytes);
        template.copy(body);
        stampBody(body, t0);
        inflight++;
        s.published++;
        if (inWindow(s, t0)) s.publishedInWindow++;
        let ok: boolean;
        try {
          ok = ch.sendToQueue(spec.queue, body, { persistent: true }, (err: unknown) => {
            inflight--;
            const t1 = process.hrtime.bigint();
            if (err !== null && err !== undefined) {
              s.nacked++;
            } else {
              s.confirmed++;
              if (inWindow(s, t1)) {
                s.confirmedInWindow++;
                s.confirmHist.recordValue(Math.max(1, Number((t1 - t0) / 1000n)));
              }
            }
            pump();
          });
        } catch (e) {
          s.errors.push(`publish: ${(e as Error).message}`);
          finish();
          return;
        }
        if (!ok) {
          blocked = true;
          ch.once('drain', () => {
            blocked = false;
            pump();
          });
        }
      }
    };
    ch.once('close', finish);
    pump();
  });
}

function onDelivery(ch: { ack(m: ConsumeMessage): void }, s: WorkerState, m: ConsumeMessage | null): void {
  if (m === null) {
    s.errors.push('consumer cancelled by the broker');
    return;
  }
  const now = process.hrtime.bigint();
  s.delivered++;
  if (inWindow(s, now)) {
    s.deliveredInWindow++;
    s.deliverHist.recordValue(Math.max(1, Number((now - bodyStamp(m.content)) / 1000n)));
  }
  ch.ack(m);
}

async function workerMain(index: number, spec: AmqpLoadSpec): Promise<void> {
  const send = (m: FromWorker): Promise<void> => new Promise((resolve) => {
    if (process.send === undefined) resolve();
    else process.send(m, undefined, undefined, () => resolve());
  });
  const finished = new Promise<void>((resolve) => {
    process.on('message', (m: ToWorker) => {
      if (m.type === 'finish') resolve();
    });
  });
  const mine = assign(spec).filter((a) => a.worker === index);
  const s: WorkerState = {
    published: 0, confirmed: 0, nacked: 0, delivered: 0, publishedInWindow: 0, confirmedInWindow: 0, deliveredInWindow: 0,
    fromNs: 0n, toNs: 0n, activePublishers: 0, confirmHist: newHistogram(), deliverHist: newHistogram(), errors: [],
  };
  const connections: ChannelModel[] = [];
  const note = (what: string) => (e: Error): void => {
    if (s.errors.length < 20) s.errors.push(`${what}: ${e.message}`);
  };
  const publishers: ConfirmChannel[] = [];
  for (const a of mine) {
    const c = await connectTo(a.url);
    connections.push(c);
    c.on('error', note(`${a.role} ${a.index} connection`));
    if (a.role === 'publisher') {
      const ch = await c.createConfirmChannel();
      ch.on('error', note(`publisher ${a.index} channel`));
      publishers.push(ch);
    } else {
      const ch = await c.createChannel();
      ch.on('error', note(`consumer ${a.index} channel`));
      await ch.prefetch(spec.prefetch);
      await ch.consume(spec.queue, (m) => onDelivery(ch, s, m), { noAck: false });
    }
  }
  const go = await new Promise<Extract<ToWorker, { type: 'go' }>>((resolve) => {
    process.on('message', function onGo(m: ToWorker) {
      if (m.type === 'go') {
        process.off('message', onGo);
        resolve(m);
      }
    });
    void send({ type: 'ready' });
  });
  s.fromNs = BigInt(go.fromNs);
  s.toNs = BigInt(go.toNs);
  const msUntil = (t: bigint): number => Math.max(0, Number(t - process.hrtime.bigint()) / 1e6);
  // CPU over the measured interval: read at its start and its end.
  let cpuFrom: NodeJS.CpuUsage = process.cpuUsage();
  let wallFrom = process.hrtime.bigint();
  let cpu: NodeJS.CpuUsage = { user: NaN, system: NaN };
  let wallSeconds = NaN;
  setTimeout(() => {
    cpuFrom = process.cpuUsage();
    wallFrom = process.hrtime.bigint();
  }, msUntil(s.fromNs));
  const measured = new Promise<void>((resolve) => setTimeout(() => {
    cpu = process.cpuUsage(cpuFrom);
    wallSeconds = Number(process.hrtime.bigint() - wallFrom) / 1e9;
    resolve();
  }, msUntil(s.toNs)));
  await new Promise((r) => setTimeout(r, msUntil(BigInt(go.startNs))));
  s.activePublishers = publishers.length;
  const publishing = Promise.all(publishers.map(async (ch) => {
    await runPublisher(ch, spec, s);
    s.activePublishers--;
  }));
  const report = setInterval(() => void send({ type: 'progress', confirmed: s.confirmed, delivered: s.delivered, publishing: s.activePublishers > 0 }), 100);
  await measured;
  await publishing;
  await finished;
  clearInterval(report);
  await Promise.all(connections.map((c) => c.close().catch(() => undefined)));
  const result: WorkerResult = {
    pid: process.pid, publishers: mine.filter((a) => a.role === 'publisher').length, consumers: mine.filter((a) => a.role === 'consumer').length,
    published: s.published, confirmed: s.confirmed, nacked: s.nacked, delivered: s.delivered,
    publishedInWindow: s.publishedInWindow, confirmedInWindow: s.confirmedInWindow, deliveredInWindow: s.deliveredInWindow,
    wallSeconds, userSeconds: cpu.user / 1e6, systemSeconds: cpu.system / 1e6,
    confirmHistogram: hdr.encodeIntoCompressedBase64(s.confirmHist), deliverHistogram: hdr.encodeIntoCompressedBase64(s.deliverHist),
    errors: s.errors,
  };
  await send({ type: 'result', result });
}

/** Parses the command line's options into a spec. */
export function specFromArgs(argv: readonly string[]): AmqpLoadSpec {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      urls: { type: 'string' }, queue: { type: 'string' }, publishers: { type: 'string' }, consumers: { type: 'string' },
      window: { type: 'string' }, prefetch: { type: 'string' }, bytes: { type: 'string' }, seconds: { type: 'string' },
      'warmup-seconds': { type: 'string' }, procs: { type: 'string' }, 'drain-seconds': { type: 'string' },
    },
  });
  if (values.urls === undefined) throw new RangeError('--urls is required (comma-separated AMQP URLs)');
  const num = (v: string | undefined, d: number): number => (v === undefined ? d : Number(v));
  const d = AMQP_LOAD_DEFAULTS;
  return {
    urls: values.urls.split(',').map((u) => u.trim()).filter((u) => u !== ''),
    queue: values.queue ?? `ql-bench-${process.pid}-${Date.now()}`,
    publishers: num(values.publishers, d.publishers), consumers: num(values.consumers, d.consumers),
    window: num(values.window, d.window), prefetch: num(values.prefetch, d.prefetch), messageBytes: num(values.bytes, d.messageBytes),
    warmupMs: 1000 * num(values['warmup-seconds'], d.warmupMs / 1000), durationMs: 1000 * num(values.seconds, d.durationMs / 1000),
    procs: num(values.procs, d.procs), drainMs: 1000 * num(values['drain-seconds'], d.drainMs / 1000),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv[2] === '--worker') {
    workerMain(Number(process.argv[3]), JSON.parse(process.argv[4] ?? '{}') as AmqpLoadSpec).then(
      () => process.exit(0),
      (e: unknown) => {
        process.send?.({ type: 'fatal', message: (e as Error).message } satisfies FromWorker);
        setTimeout(() => process.exit(1), 100);
      },
    );
  } else {
    runAmqpLoad(specFromArgs(process.argv.slice(2))).then((r) => {
      process.stdout.write(JSON.stringify(r) + '\n');
      process.exit(0);
    }, (e: unknown) => {
      console.error(e);
      process.exit(1);
    });
  }
}
