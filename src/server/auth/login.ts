// A password login, as every protocol that takes one does it: etcd's
// Authenticate (src/server/etcd/auth.ts) and AMQP's PLAIN (src/server/amqp).
//
// - Throttled per client address after repeated failures (LoginThrottle):
//   a refused attempt never touches bcrypt.
// - The stored hash is read after a read barrier, so a user added on one
//   member can log in on another at once.
// - An unknown user is checked against a decoy hash of a random password, so
//   a login takes as long whether or not the user exists.
// - The user is looked up again after the (slow) hash check: a user deleted,
//   or a password changed, meanwhile does not log in.
// Passwords are never logged.

import { randomBytes } from 'node:crypto';
import type { AuthBackend } from '../etcd/backend.js';

export type LoginOutcome =
  /** The password matches; `passwordRevision` identifies the password that matched (a change ends what it opened). */
  | { readonly type: 'ok'; readonly user: string; readonly passwordRevision: number }
  | { readonly type: 'failed' }
  | { readonly type: 'throttled'; readonly retryAfterMs: number }
  | { readonly type: 'authDisabled' };

export class PasswordLogin {
  /** A hash of a random password nobody knows. */
  private decoy: Promise<string> | null = null;

  constructor(private readonly auth: AuthBackend, private readonly readBarrier: () => Promise<void>, private readonly now: () => number = Date.now) {}

  /** Checks `user`'s `password`, as a client at `clientKey` (its address) sends it. Rejects only when the barrier or the hasher fails. */
  async login(user: string, password: string, clientKey: string): Promise<LoginOutcome> {
    const auth = this.auth;
    const state = auth.authorizer.state;
    if (!state.enabled) return { type: 'authDisabled' };
    const gate = auth.throttle.check(clientKey, this.now());
    if (!gate.allowed) return { type: 'throttled', retryAfterMs: gate.retryAfterMs };
    let matches: boolean;
    let hashUsed: string | null;
    try {
      await this.readBarrier();
      hashUsed = state.user(user)?.passwordHash ?? null;
      matches = await auth.hasher.verify(password, hashUsed ?? await this.decoyHash());
    } catch (err) {
      auth.throttle.abandon(clientKey);
      throw err;
    }
    const now = state.user(user); // the user may have changed while the hash was checked
    if (!matches || hashUsed === null || now === undefined || now.passwordHash !== hashUsed || !state.enabled) {
      auth.throttle.recordFailure(clientKey, this.now());
      auth.authorizer.counters.authFailed++;
      return { type: 'failed' };
    }
    auth.throttle.recordSuccess(clientKey);
    return { type: 'ok', user, passwordRevision: now.passwordRevision };
  }

  private decoyHash(): Promise<string> {
    const d = this.decoy ?? this.auth.hasher.hash(randomBytes(18).toString('base64'));
    this.decoy = d;
    d.catch(() => { if (this.decoy === d) this.decoy = null; });
    return d;
  }
}
