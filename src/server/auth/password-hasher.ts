// Password hashing for etcd's auth (issue 19): bcrypt, as etcd stores its
// users' passwords, run on one dedicated worker thread (password-worker.ts)
// so that the Raft thread never spends a login's key stretching, and libuv's
// thread pool stays free for the log's fdatasync.
//
// The queue in front of the worker is bounded: a job beyond `queueMax` (in
// flight or waiting) is refused at once with AuthBusyError, so a flood of
// Authenticate calls costs a rejected promise each, never memory nor the main
// thread's time. The worker holds the process open only while it has jobs; if
// it dies, its jobs reject with PasswordWorkerExitedError and the next call
// starts a new one.
//
// bcrypt reads only the first 72 bytes of a password (UTF-8): two passwords
// that share those bytes hash alike. hash and verify accept longer passwords
// and use their first 72 bytes, as etcd's Authenticate does (Go's
// CompareHashAndPassword). etcd's UserAdd and UserChangePassword refuse them
// instead (Go's GenerateFromPassword returns ErrPasswordTooLong):
// `bcryptTruncates` lets a caller do the same before hashing.

import { Worker } from 'node:worker_threads';
import { assertNever } from '../../util/assert.js';
import type { PasswordAnswer, PasswordJob } from './password-worker.js';

/** bcrypt's own limits on the cost (log2 of the rounds), as Go's bcrypt.MinCost and bcrypt.MaxCost. */
export const BCRYPT_COST_MIN = 4;
export const BCRYPT_COST_MAX = 31;
/** etcd's default cost (Go's bcrypt.DefaultCost). */
export const BCRYPT_COST_DEFAULT = 10;
/** The bytes of a password bcrypt reads; the rest is ignored. */
export const BCRYPT_PASSWORD_BYTES_MAX = 72;

/** The queue is full: the caller should answer RESOURCE_EXHAUSTED and let the client retry. */
export class AuthBusyError extends Error {
  override readonly name = 'AuthBusyError';
  constructor() {
    super('etcdserver: too many requests');
  }
}

/** The hashing thread died (or was stopped) with this job in flight or waiting; the next call starts a new one. */
export class PasswordWorkerExitedError extends Error {
  override readonly name = 'PasswordWorkerExitedError';
  constructor(readonly exitCode: number, options?: ErrorOptions) {
    super(`password worker exited (code ${exitCode}) before it answered`, options);
  }
}

/** The hasher was closed: no job runs after `close()`. */
export class PasswordHasherClosedError extends Error {
  override readonly name = 'PasswordHasherClosedError';
  constructor() {
    super('password hasher is closed');
  }
}

/** bcrypt refused to hash (never expected: the cost is checked in the constructor). */
export class PasswordHashError extends Error {
  override readonly name = 'PasswordHashError';
}

/** An option out of its range. */
export class PasswordHasherOptionError extends Error {
  override readonly name = 'PasswordHasherOptionError';
}

export interface PasswordHasherOptions {
  /** bcrypt cost of new hashes, in [4, 31]. Default 10, etcd's (its `--bcrypt-cost`). */
  readonly cost?: number;
  /** Jobs in flight or waiting, at most; beyond it calls reject with AuthBusyError. Default 64. */
  readonly queueMax?: number;
  /**
   * The highest cost a stored hash may have for `verify` to run it; a hash
   * above it verifies false without running. A cost-31 hash takes days of
   * CPU, and the single worker would serve no other login meanwhile. Default
   * 16 (64 times the default's work). In [4, 31].
   */
  readonly verifyCostMax?: number;
}

/** Counters since the hasher was made, and the queue now. */
export interface PasswordHasherStats {
  /** Hashes computed. */
  readonly hashes: number;
  /** Verifies answered, by the worker or (a malformed or too costly hash) at once. */
  readonly verifies: number;
  /** Calls refused with AuthBusyError. */
  readonly rejectedBusy: number;
  /** Jobs in flight or waiting now, in [0, queueMax]. */
  readonly queueDepth: number;
  /** Workers started (the first, and one after each death). */
  readonly workersStarted: number;
}

/** One job waiting for its answer. */
interface PendingJob {
  readonly settle: (answer: PasswordAnswer) => void;
  readonly fail: (error: Error) => void;
}

/**
 * One worker and the jobs sent to it. Invariant: every job in `pending` was
 * posted to `worker` and is settled exactly once, by its answer or, when the
 * worker exits, by PasswordWorkerExitedError.
 */
interface WorkerSlot {
  readonly worker: Worker;
  readonly pending: Map<number, PendingJob>;
  /** The worker's uncaught error, if it threw one before exiting. */
  error: Error | null;
}

/** A stored bcrypt hash as Go writes it (and bcryptjs reads it): `$2a$` (or b, y), two-digit cost, 53 characters of salt and digest. */
const BCRYPT_HASH = /^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$/;

/** Whether bcrypt would ignore part of `password`: more than 72 bytes in UTF-8. */
export function bcryptTruncates(password: string): boolean {
  return Buffer.byteLength(password, 'utf8') > BCRYPT_PASSWORD_BYTES_MAX;
}

/** Hashes and verifies passwords with bcrypt on one worker thread, behind a bounded queue. */
export class PasswordHasher {
  readonly cost: number;
  readonly queueMax: number;
  readonly verifyCostMax: number;
  private slot: WorkerSlot | null = null;
  /** Jobs settled by no one yet, over every slot (a dying worker's jobs count until its exit). */
  private inFlight = 0;
  private nextId = 1;
  private closed = false;
  private hashes = 0;
  private verifies = 0;
  private rejectedBusy = 0;
  private workersStarted = 0;

  constructor(options: PasswordHasherOptions = {}) {
    this.cost = checkCost('cost', options.cost ?? BCRYPT_COST_DEFAULT);
    this.verifyCostMax = checkCost('verifyCostMax', options.verifyCostMax ?? 16);
    this.queueMax = options.queueMax ?? 64;
    if (!Number.isSafeInteger(this.queueMax) || this.queueMax < 1) {
      throw new PasswordHasherOptionError(`queueMax must be a positive integer, not ${this.queueMax}`);
    }
  }

  /** The bcrypt hash of `password` (its first 72 bytes) at this hasher's cost, with a random salt. */
  async hash(password: string): Promise<string> {
    const answer = await this.run((id) => ({ type: 'hash', id, password, cost: this.cost }));
    switch (answer.type) {
      case 'hashed':
        this.hashes++;
        return answer.hash;
      case 'failed':
        throw new PasswordHashError(answer.message);
      case 'verified':
        throw new PasswordHashError('password worker answered a hash with a verify');
      default:
        return assertNever(answer, 'password answer');
    }
  }

  /**
   * Whether `password` matches `hash` (bcrypt, compared in constant time).
   * A malformed hash, or one whose cost exceeds `verifyCostMax`, is false,
   * answered without the worker.
   */
  async verify(password: string, hash: string): Promise<boolean> {
    const parsed = BCRYPT_HASH.exec(hash);
    const hashCost = parsed?.[1] === undefined ? NaN : Number(parsed[1]);
    if (!(hashCost >= BCRYPT_COST_MIN && hashCost <= this.verifyCostMax)) {
      if (this.closed) throw new PasswordHasherClosedError();
      this.verifies++;
      return false;
    }
    const answer = await this.run((id) => ({ type: 'verify', id, password, hash }));
    switch (answer.type) {
      case 'verified':
        this.verifies++;
        return answer.match;
      case 'failed':
      case 'hashed':
        this.verifies++;
        return false;
      default:
        return assertNever(answer, 'password answer');
    }
  }

  /** Counters, and the queue's depth now. */
  get stats(): PasswordHasherStats {
    return {
      hashes: this.hashes,
      verifies: this.verifies,
      rejectedBusy: this.rejectedBusy,
      queueDepth: this.inFlight,
      workersStarted: this.workersStarted,
    };
  }

  /**
   * Stops the worker; its jobs reject with PasswordWorkerExitedError, and the
   * next call starts a new worker. For a job that must not run on (and for
   * tests of a worker's death).
   */
  async stopWorker(): Promise<void> {
    const slot = this.slot;
    if (slot === null) return;
    this.slot = null; // calls from now on go to a new worker, not to the dying one
    await slot.worker.terminate();
  }

  /** Stops the worker; jobs not yet answered, and every later call, reject with PasswordHasherClosedError. */
  async close(): Promise<void> {
    this.closed = true;
    const slot = this.slot;
    this.slot = null;
    if (slot === null) return;
    const jobs = [...slot.pending.values()];
    slot.pending.clear();
    this.inFlight -= jobs.length;
    for (const job of jobs) job.fail(new PasswordHasherClosedError());
    await slot.worker.terminate();
  }

  /** Sends one job to the worker (starting it if need be), unless closed or full. */
  private run(job: (id: number) => PasswordJob): Promise<PasswordAnswer> {
    if (this.closed) return Promise.reject(new PasswordHasherClosedError());
    if (this.inFlight >= this.queueMax) {
      this.rejectedBusy++;
      return Promise.reject(new AuthBusyError());
    }
    const slot = this.slot ?? this.startWorker();
    const id = this.nextId++;
    return new Promise<PasswordAnswer>((resolve, reject) => {
      slot.pending.set(id, { settle: resolve, fail: reject });
      this.inFlight++;
      if (slot.pending.size === 1) slot.worker.ref(); // answers are due: keep the process up for them
      slot.worker.postMessage(job(id));
    });
  }

  private startWorker(): WorkerSlot {
    const worker = new Worker(new URL('./password-worker.js', import.meta.url));
    const slot: WorkerSlot = { worker, pending: new Map(), error: null };
    this.slot = slot;
    this.workersStarted++;
    worker.unref(); // idle: never what keeps the process alive
    worker.on('message', (answer: PasswordAnswer) => {
      const job = slot.pending.get(answer.id);
      if (job === undefined) return; // answered after close()
      slot.pending.delete(answer.id);
      this.inFlight--;
      if (slot.pending.size === 0) worker.unref();
      job.settle(answer);
    });
    worker.on('error', (error) => {
      slot.error = error; // 'exit' follows, and fails the jobs
    });
    worker.on('exit', (exitCode) => {
      if (this.slot === slot) this.slot = null;
      const jobs = [...slot.pending.values()];
      slot.pending.clear();
      this.inFlight -= jobs.length;
      for (const job of jobs) {
        job.fail(new PasswordWorkerExitedError(exitCode, slot.error === null ? undefined : { cause: slot.error }));
      }
    });
    return slot;
  }
}

function checkCost(name: string, cost: number): number {
  if (!Number.isInteger(cost) || cost < BCRYPT_COST_MIN || cost > BCRYPT_COST_MAX) {
    throw new PasswordHasherOptionError(`${name} must be an integer in [${BCRYPT_COST_MIN}, ${BCRYPT_COST_MAX}], not ${cost}`);
  }
  return cost;
}
