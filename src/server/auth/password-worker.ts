// The password-hashing thread: a worker_threads Worker that runs bcrypt
// (bcryptjs, pure JS) one job at a time, so that a login's tens of
// milliseconds of key stretching never run on the Raft thread, nor on libuv's
// thread pool, where the log's fdatasync waits. PasswordHasher
// (password-hasher.ts) starts it, bounds its queue and restarts it when it dies.
//
// Jobs arrive as messages and are answered in the order they came; each is
// synchronous here, which is what this thread is for. A verify that cannot
// parse its hash answers false: a stored hash is data, and a bad one fails a
// login, never the thread.

import { parentPort } from 'node:worker_threads';
import bcrypt from 'bcryptjs';
import { assertNever } from '../../util/assert.js';

/** A job for the worker. `id` is the hasher's, echoed in the answer. */
export type PasswordJob =
  | { readonly type: 'hash'; readonly id: number; readonly password: string; readonly cost: number }
  | { readonly type: 'verify'; readonly id: number; readonly password: string; readonly hash: string };

/** The worker's answer to one job. `failed` is a hash that bcryptjs refused (a bug: the hasher validates the cost). */
export type PasswordAnswer =
  | { readonly type: 'hashed'; readonly id: number; readonly hash: string }
  | { readonly type: 'verified'; readonly id: number; readonly match: boolean }
  | { readonly type: 'failed'; readonly id: number; readonly message: string };

/** Runs one job to its answer; never throws. */
export function runPasswordJob(job: PasswordJob): PasswordAnswer {
  switch (job.type) {
    case 'hash':
      try {
        return { type: 'hashed', id: job.id, hash: bcrypt.hashSync(job.password, job.cost) };
      } catch (e) {
        return { type: 'failed', id: job.id, message: e instanceof Error ? e.message : String(e) };
      }
    case 'verify': {
      let match = false;
      try {
        match = bcrypt.compareSync(job.password, job.hash);
      } catch {
        match = false; // bcryptjs throws on a bad salt, revision or cost: a malformed hash matches nothing
      }
      return { type: 'verified', id: job.id, match };
    }
    default:
      return assertNever(job, 'password job');
  }
}

const port = parentPort;
if (port !== null) {
  port.on('message', (job: PasswordJob) => port.postMessage(runPasswordJob(job)));
}
