// The node's side of its client-protocol workers: forks them through Node's
// cluster module (they share the client port; the cluster module hands each
// accepted connection to one of them), serves their batches on the Raft
// thread, and forks a new worker when one dies. A batch's writes go to the
// log as the commands the worker encoded; its linearizable reads share one
// read barrier; serializable reads read the store at once. Each result goes
// back in the next batch of results to that worker.
//
// A worker's death loses nothing acknowledged: a write is acknowledged only
// by the worker, after the Raft process answered it, i.e. after it applied.
// What was in flight still commits (or not) on its own; its answers are
// dropped, and the client sees its connection fail, as after any lost
// connection.

import cluster, { type Worker } from 'node:cluster';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { decodeCommand, decodeCommandView } from '../../services/kv/codec.js';
import type { AuthStamp } from '../../services/auth/codec.js';
import { kvCommandNeeds, rangeNeeds } from '../../services/auth/needs.js';
import { sendStamped, type Authorizer, type Credentials } from '../auth/authorizer.js';
import type { AuthDeniedResult } from '../../services/auth/types.js';
import type { KvResult } from '../../services/kv/types.js';
import type { KvBackend } from '../etcd/backend.js';
import { AUTH_ERROR_STATUS, ETCD_STATUS, etcdStatusOf, KV_ERROR_STATUS } from '../etcd/errors.js';
import { evaluateReadOnlyTxn } from '../etcd/readonly-txn.js';
import type { EtcdServerStats } from '../etcd/server.js';
import { GRPC_STATUS } from './grpc-frame.js';
import { encodeResults, HOT_CHANNEL_FD, HotFrameError, HotFrameReader } from './hot-channel.js';
import { forEachPackedWrite, PackedBatchError, PackedPutsBuilder } from './packed.js';
import type { PrimaryToWorker, WorkerCounters, WorkerIdentity, WorkerInit, WorkerRequest, WorkerResult, WorkerToPrimary } from './messages.js';

/** The backend's write, or one that takes the command already encoded (the runtime's, skipping a decode and re-encode). */
export type WorkerBackend = KvBackend & { submitEncoded?(command: Uint8Array, stamp?: AuthStamp | null): Promise<KvResult | AuthDeniedResult> };

/** The identity of a request that carried none. */
const ANONYMOUS: Credentials = {};


export interface ProtocolWorkersOptions {
  readonly count: number;
  readonly backend: WorkerBackend;
  /** Everything a worker needs but its index. */
  readonly init: Omit<WorkerInit, 'index'>;
  readonly logger: Logger;
  /** The client API's counters: refusals answered here, and those the workers report, are added to them. */
  readonly stats: EtcdServerStats;
  /** How long a worker may take to start listening. Default 20 s. */
  readonly startTimeoutMs?: number;
  /** Workers forked earlier, taken before any new one is forked. */
  readonly preforked?: PreforkedWorkers;
}

/** A worker could not listen on the client port; `code` is the errno when known. */
export class WorkerListenError extends Error {
  override readonly name = 'WorkerListenError';
  constructor(readonly code: string | null, message: string) {
    super(message);
  }
}

/** A worker did not start (it exited first, or took too long). */
export class WorkerStartError extends Error {
  override readonly name = 'WorkerStartError';
}

/** Counters of the workers, for /metrics. */
export interface ProtocolWorkerStats {
  /** Workers serving now. */
  readonly alive: number;
  /** Workers that died and were replaced. */
  readonly restarts: number;
  /** Batches and requests served for them. */
  readonly batches: number;
  readonly requests: number;
  /** Answers dropped because their worker had died. */
  readonly orphanedAnswers: number;
  /** Summed over the live workers: client connections, calls proxied. */
  readonly connections: number;
  readonly proxied: number;
}

const WORKER_SCRIPT = fileURLToPath(new URL('./worker.js', import.meta.url));
const RESTART_BACKOFF_MIN_MS = 50;
const RESTART_BACKOFF_MAX_MS = 5_000;
/** A worker that served this long resets the backoff. */
const HEALTHY_AFTER_MS = 30_000;

/** One worker position: the process in it now, and its answers waiting to go. */
class Slot {
  worker: Worker | null = null;
  /** The worker's hot channel (hot-channel.ts): its batches in, their results out. */
  hot: Socket | null = null;
  listening = false;
  out: WorkerResult[] = [];
  /** Answers to plain puts, packed. */
  readonly puts = new PackedPutsBuilder();
  flushScheduled = false;
  startedAt = 0;
  backoffMs = RESTART_BACKOFF_MIN_MS;
  counters: WorkerCounters = { connections: 0, invalid: 0, refused: 0, proxied: 0 };
  /** Calls proxied by the workers that held this slot before (the live one's are in `counters`). */
  prevProxied = 0;
  constructor(readonly index: number) {}
}

/** A forked worker and its readiness (its code loaded, listening for its init). */
interface Spawned {
  readonly worker: Worker;
  /** Resolves at the worker's 'ready'; rejects if it exits first. */
  readonly ready: Promise<void>;
}

function spawnWorker(index: number): Spawned {
  // fd HOT_CHANNEL_FD (4) is the hot channel, a socket pair of its own; 3 is the cluster's IPC channel.
  cluster.setupPrimary({ exec: WORKER_SCRIPT, args: [], serialization: 'advanced', stdio: ['inherit', 'inherit', 'inherit', 'ipc', 'pipe'] });
  const worker = cluster.fork({ QUORUMLOG_PROTOCOL_WORKER: String(index) });
  const ready = new Promise<void>((resolve, reject) => {
    const onMessage = (m: WorkerToPrimary): void => {
      if (m.t !== 'ready') return;
      worker.off('message', onMessage);
      resolve();
    };
    worker.on('message', onMessage);
    worker.once('exit', (code, signal) => reject(new WorkerStartError(`protocol worker ${index} exited before it was ready (code ${code}, signal ${signal})`)));
  });
  ready.catch(() => { /* observed by whoever takes it */ });
  return { worker, ready };
}

/**
 * Workers forked ahead of time: a node forks them first thing, so that they
 * load their code while it recovers its log, and its client port opens as
 * soon as it can serve (not a process start-up later).
 */
export class PreforkedWorkers {
  private readonly spawned: Spawned[];
  constructor(count: number) {
    if (!cluster.isPrimary) throw new Error('protocol workers are forked by the node process, not by a worker');
    this.spawned = Array.from({ length: count }, (_, i) => spawnWorker(i));
  }

  /** One preforked worker, or undefined when none is left. */
  take(): Spawned | undefined {
    return this.spawned.shift();
  }

  /** Kills the workers nobody took (the node did not start). */
  cancel(): void {
    for (const s of this.spawned.splice(0)) if (!s.worker.isDead()) s.worker.process.kill('SIGKILL');
  }
}

function decodeAndWrite(backend: KvBackend, command: Uint8Array, stamp: AuthStamp | null): Promise<KvResult | AuthDeniedResult> {
  try {
    return backend.write(decodeCommand(command), stamp);
  } catch (err) {
    return Promise.reject(err);
  }
}

export class ProtocolWorkers {
  private readonly slots: Slot[];
  private closing = false;
  private restarts = 0;
  private batches = 0;
  private requests = 0;
  private orphaned = 0;
  private readonly restartTimers = new Set<NodeJS.Timeout>();
  port = 0;

  private constructor(private readonly o: ProtocolWorkersOptions) {
    this.slots = Array.from({ length: o.count }, (_, i) => new Slot(i));
  }

  /** Forks the workers and resolves once every one listens (with the port they share). */
  static async start(o: ProtocolWorkersOptions): Promise<ProtocolWorkers> {
    if (!Number.isInteger(o.count) || o.count < 1) throw new RangeError(`protocol workers: count must be a positive integer, got ${o.count}`);
    if (!cluster.isPrimary) throw new Error('protocol workers are forked by the node process, not by a worker');
    const pw = new ProtocolWorkers(o);
    try {
      // The first worker asks for port 0 when so configured; the others then join the port it got.
      pw.port = await pw.fork(pw.slots[0] as Slot, o.init.port);
      await Promise.all(pw.slots.slice(1).map((s) => pw.fork(s, pw.port)));
    } catch (e) {
      await pw.close(0);
      throw e;
    }
    return pw;
  }

  /** Forks a worker into `slot`; resolves with its port once it listens. */
  private fork(slot: Slot, port: number): Promise<number> {
    const spawned = this.o.preforked?.take() ?? spawnWorker(slot.index);
    const w = spawned.worker;
    const hot = w.process.stdio[HOT_CHANNEL_FD] as Socket | null | undefined;
    slot.worker = w;
    slot.hot = hot ?? null;
    slot.listening = false;
    slot.startedAt = Date.now();
    slot.out = [];
    const log = this.o.logger;
    return new Promise<number>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        w.process.kill('SIGKILL');
        reject(new WorkerStartError(`protocol worker ${slot.index} did not listen within ${this.o.startTimeoutMs ?? 20_000} ms`));
      }, this.o.startTimeoutMs ?? 20_000);
      spawned.ready.then(
        () => this.sendTo(w, { t: 'init', init: { ...this.o.init, port, index: slot.index } }),
        (err: unknown) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          reject(err);
        },
      );
      if (hot != null) {
        const reader = new HotFrameReader((f) => {
          if (f.kind !== 'batch') throw new HotFrameError(`a worker sent ${f.kind}`);
          if (slot.worker === w) this.serve(slot, f.batch.writes, f.batch.requests, f.batch.identities);
        });
        hot.on('data', (chunk: Buffer) => {
          try {
            reader.push(chunk);
          } catch (err) {
            if (!(err instanceof HotFrameError)) throw err;
            // Our own child, broken: replace it rather than guess where its stream resumes.
            log.error({ err, worker: slot.index }, 'protocol worker sent a malformed hot-channel frame; killing it (another starts)');
            w.process.kill('SIGKILL');
          }
        });
        hot.on('error', (err) => log.debug({ err, worker: slot.index }, 'protocol worker: hot channel failed'));
      }
      w.on('message', (m: WorkerToPrimary) => {
        switch (m.t) {
          case 'ready':
            break;
          case 'listening':
            slot.listening = true;
            if (!settled) {
              settled = true;
              clearTimeout(timer);
              resolve(m.port);
            }
            break;
          case 'listenFailed':
            if (!settled) {
              settled = true;
              clearTimeout(timer);
              reject(new WorkerListenError(m.code, m.message));
            } else {
              log.error({ worker: slot.index, code: m.code }, `protocol worker: cannot listen on the client port: ${m.message}`);
            }
            w.process.kill('SIGKILL');
            break;
          case 'counters':
            if (slot.worker === w) this.noteCounters(slot, m.counters);
            break;
        }
      });
      w.on('error', (err) => log.warn({ err, worker: slot.index }, 'protocol worker: IPC error'));
      w.on('exit', (code, signal) => {
        if (!settled) {
          settled = true;
          clearTimeout(timer);
          reject(new WorkerStartError(`protocol worker ${slot.index} exited before it listened (code ${code}, signal ${signal})`));
        }
        if (slot.worker !== w) return;
        const dropped = slot.out.length + slot.puts.count;
        this.retire(slot);
        if (this.closing) return;
        log.error({ worker: slot.index, pid: w.process.pid, code, signal, answersDropped: dropped },
          'protocol worker died; its client connections dropped; starting another');
        this.restarts++;
        if (Date.now() - slot.startedAt > HEALTHY_AFTER_MS) slot.backoffMs = RESTART_BACKOFF_MIN_MS;
        const delay = slot.backoffMs;
        slot.backoffMs = Math.min(RESTART_BACKOFF_MAX_MS, slot.backoffMs * 2);
        const t = setTimeout(() => {
          this.restartTimers.delete(t);
          if (this.closing) return;
          this.fork(slot, this.port).then(
            () => log.info({ worker: slot.index, pid: slot.worker?.process.pid }, 'protocol worker started again'),
            (err) => log.error({ err, worker: slot.index }, 'protocol worker could not start again; retrying'),
          );
        }, delay);
        this.restartTimers.add(t);
      });
    });
  }

  /** A worker is gone: keep its counters' totals, drop what waited for it. */
  private retire(slot: Slot): void {
    slot.prevProxied += slot.counters.proxied;
    slot.counters = { connections: 0, invalid: 0, refused: 0, proxied: 0 };
    this.orphaned += slot.out.length + slot.puts.count;
    slot.out = [];
    slot.puts.take();
    slot.worker = null;
    slot.hot = null;
    slot.listening = false;
  }

  private noteCounters(slot: Slot, c: WorkerCounters): void {
    this.o.stats.invalidRequests += Math.max(0, c.invalid - slot.counters.invalid);
    this.o.stats.etcdErrors += Math.max(0, c.refused - slot.counters.refused);
    slot.counters = c;
  }

  private sendTo(w: Worker, m: PrimaryToWorker): void {
    if (!w.isConnected()) return;
    try {
      w.send(m);
    } catch (err) {
      this.o.logger.warn({ err }, 'protocol worker: cannot send to a worker');
    }
  }

  // ---- serving a batch, on the Raft thread ----

  private serve(slot: Slot, writes: Uint8Array | null, requests: readonly WorkerRequest[], identities: readonly WorkerIdentity[] | null): void {
    this.batches++;
    this.requests += requests.length;
    const backend = this.o.backend;
    const removed = backend.removed?.() === true;
    // While auth is on, each request is checked as its identity's (the worker sends those of requests that carry one),
    // and an anonymous one is refused ("user name is empty"), as by the grpc-js server (src/server/etcd/server.ts).
    const authz = backend.auth?.authorizer;
    const checking = authz !== undefined && authz.enabled ? authz : null;
    const who = checking !== null && identities !== null ? new Map(identities.map((i) => [i.id, i])) : null;
    if (writes !== null) {
      try {
        forEachPackedWrite(writes, (id, command) => {
          this.requests++;
          if (removed) this.refusal(slot, id, ETCD_STATUS.memberRemoved.code, ETCD_STATUS.memberRemoved.message);
          else if (checking !== null) this.checkedWrite(slot, id, command, checking, who?.get(id) ?? ANONYMOUS);
          else this.write(slot, id, command);
        });
      } catch (err) {
        if (!(err instanceof PackedBatchError)) throw err;
        this.o.logger.error({ err, worker: slot.index }, 'protocol worker sent a malformed batch; its writes past the fault are not answered');
      }
    }
    if (removed) {
      for (const r of requests) this.refusal(slot, r.id, ETCD_STATUS.memberRemoved.code, ETCD_STATUS.memberRemoved.message);
      return;
    }
    let barrier: Promise<void> | null = null;
    for (const r of requests) {
      // Checked before the barrier (a refused read waits for nothing) and again after it, against the state the read sees.
      let check: (() => void) | null = null;
      if (checking !== null) {
        const creds = who?.get(r.id) ?? ANONYMOUS;
        const store = backend.store;
        const needs = r.op === 'range' ? rangeNeeds(r.request) : kvCommandNeeds({ type: 'txn', request: r.request }, (id) => store.leaseKeys(id));
        check = () => void checking.check(creds, needs);
        try {
          check();
        } catch (err) {
          this.answerError(slot, r.id, err);
          continue;
        }
      }
      switch (r.op) {
        case 'range':
          if (r.request.serializable) this.answerRange(slot, r, check);
          else (barrier ??= backend.readBarrier()).then(() => this.answerRange(slot, r, check), (err) => this.answerError(slot, r.id, err));
          break;
        case 'readTxn':
          (barrier ??= backend.readBarrier()).then(() => this.answerReadTxn(slot, r, check), (err) => this.answerError(slot, r.id, err));
          break;
      }
    }
  }

  private write(slot: Slot, id: number, command: Uint8Array): void {
    const backend = this.o.backend;
    // A backend that takes no encoded commands (a test's LocalKvBackend) gets the command decoded.
    const p = backend.submitEncoded !== undefined ? backend.submitEncoded(command) : decodeAndWrite(backend, command, null);
    p.then((res) => this.answerWrite(slot, id, res), (err) => this.answerError(slot, id, err));
  }

  /**
   * A write while auth is on: checked as its identity's, then stamped into the log (the gate checks it again where it
   * applies); stamped at an auth revision the state has since moved past, it is checked and sent again (server.ts does the same).
   */
  private checkedWrite(slot: Slot, id: number, command: Uint8Array, authz: Authorizer, creds: Credentials): void {
    const backend = this.o.backend;
    const store = backend.store;
    const attempt = async (): Promise<KvResult | AuthDeniedResult> => {
      const cmd = decodeCommandView(command);
      return sendStamped(authz, () => authz.check(creds, kvCommandNeeds(cmd, (lease) => store.leaseKeys(lease))),
        (stamp) => (backend.submitEncoded !== undefined ? backend.submitEncoded(command, stamp) : decodeAndWrite(backend, command, stamp)));
    };
    attempt().then((res) => this.answerWrite(slot, id, res), (err) => this.answerError(slot, id, err));
  }

  private answerWrite(slot: Slot, id: number, res: KvResult | AuthDeniedResult): void {
    if (res.type === 'authDenied') {
      const s = AUTH_ERROR_STATUS[res.error];
      this.refusal(slot, id, s.code, s.message);
      return;
    }
    if (res.type === 'error') {
      const s = KV_ERROR_STATUS[res.error];
      if (s === undefined) this.answerError(slot, id, new Error(`store returned unknown error code ${String(res.error)}: ${res.message}`));
      else this.refusal(slot, id, s.code, s.message);
      return;
    }
    const raftTerm = this.o.backend.header().raftTerm;
    if (res.type === 'put' && res.response.prevKv === null) {
      // The common case goes packed: 16 bytes, not an object tree to serialize.
      if (slot.worker === null) {
        this.orphaned++;
        return;
      }
      slot.puts.add(id, raftTerm, res.revision);
      this.scheduleFlush(slot);
      return;
    }
    this.answer(slot, { ok: 'write', id, revision: res.revision, raftTerm, result: res });
  }

  private answerRange(slot: Slot, r: Extract<WorkerRequest, { op: 'range' }>, check: (() => void) | null): void {
    const store = this.o.backend.store;
    try {
      check?.();
      const response = store.range(r.request);
      this.answer(slot, { ok: 'range', id: r.id, revision: store.revision, raftTerm: this.o.backend.header().raftTerm, response });
    } catch (err) {
      this.answerError(slot, r.id, err);
    }
  }

  private answerReadTxn(slot: Slot, r: Extract<WorkerRequest, { op: 'readTxn' }>, check: (() => void) | null): void {
    const store = this.o.backend.store;
    try {
      check?.();
      const response = evaluateReadOnlyTxn(store, r.request);
      this.answer(slot, { ok: 'readTxn', id: r.id, revision: store.revision, raftTerm: this.o.backend.header().raftTerm, response });
    } catch (err) {
      this.answerError(slot, r.id, err);
    }
  }

  private answerError(slot: Slot, id: number, err: unknown): void {
    const s = etcdStatusOf(err);
    if (s !== null) {
      this.refusal(slot, id, s.code, s.message);
      return;
    }
    this.o.stats.internalErrors++;
    this.o.logger.error({ err }, 'etcd API (protocol worker request): unexpected error');
    // No message: the worker says which method failed, as the grpc-js server does ("etcdserver: internal error in Put").
    this.answer(slot, { ok: false, id, code: GRPC_STATUS.INTERNAL, message: '' });
  }

  private refusal(slot: Slot, id: number, code: number, message: string): void {
    if (code === GRPC_STATUS.INVALID_ARGUMENT) this.o.stats.invalidRequests++;
    else this.o.stats.etcdErrors++;
    this.answer(slot, { ok: false, id, code, message });
  }

  private answer(slot: Slot, r: WorkerResult): void {
    if (slot.worker === null) {
      this.orphaned++;
      return;
    }
    slot.out.push(r);
    this.scheduleFlush(slot);
  }

  /** Sends the slot's answers once this turn of the Raft thread is over, all in one message. */
  private scheduleFlush(slot: Slot): void {
    if (slot.flushScheduled) return;
    slot.flushScheduled = true;
    setImmediate(() => {
      slot.flushScheduled = false;
      const hot = slot.hot;
      const results = slot.out;
      slot.out = [];
      const puts = slot.puts.take();
      if (hot === null || hot.destroyed || (results.length === 0 && puts === null)) return;
      hot.write(encodeResults(puts, results));
    });
  }

  stats(): ProtocolWorkerStats {
    let alive = 0;
    let connections = 0;
    let proxied = 0;
    for (const s of this.slots) {
      if (s.listening) alive++;
      connections += s.counters.connections;
      proxied += s.prevProxied + s.counters.proxied;
    }
    return { alive, restarts: this.restarts, batches: this.batches, requests: this.requests, orphanedAnswers: this.orphaned, connections, proxied };
  }

  /** The workers' process ids (tests, benchmarks). */
  pids(): number[] {
    return this.slots.flatMap((s) => (s.worker?.process.pid === undefined ? [] : [s.worker.process.pid]));
  }

  /** Asks every worker to stop accepting and finish within graceMs, then waits for them (killing stragglers). */
  async close(graceMs = 2000): Promise<void> {
    this.closing = true;
    for (const t of this.restartTimers) clearTimeout(t);
    this.restartTimers.clear();
    await Promise.all(this.slots.map(async (s) => {
      const w = s.worker;
      if (w === null || w.isDead()) return;
      const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
      this.sendTo(w, { t: 'close', graceMs });
      const timer = setTimeout(() => w.process.kill('SIGKILL'), graceMs + 1000);
      await exited;
      clearTimeout(timer);
    }));
  }
}
