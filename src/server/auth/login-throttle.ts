// Slows down repeated failed logins per client key (the client's address),
// without slowing anyone else (issue 19). A refused attempt is answered
// without touching bcrypt, so guessing passwords from one address costs the
// server almost nothing past the first few tries.
//
// The rule: a key may make `freeAttempts` (3) attempts; from then on, each
// attempt must come at least `baseDelayMs × 2^(n − freeAttempts)` after the
// key's last attempt or failure, n being its attempts so far (failed, or still
// running), capped at `maxDelayMs`: 100 ms, 200 ms, 400 ms, … 10 s. A success
// forgets the key; so does a quiet `windowMs` (no attempt allowed, no failure).
//
// An attempt counts from the moment `check` allows it, not when it fails:
// logins are asynchronous (bcrypt runs on another thread), and counting only
// finished failures would let a burst of concurrent attempts from one address
// all pass before the first one failed. An attempt never reported (the call
// failed on the way) counts as running until the key's window ends.
//
// At most `maxKeys` keys are remembered, least recently used (allowed,
// refused or reported) evicted first, so a flood of addresses cannot grow
// memory. The price: an attacker with more
// addresses than that can push its own keys out. Time is passed in (`nowMs`,
// any monotonic-ish milliseconds), so tests drive it; a clock that steps back
// never makes a key wait longer than `maxDelayMs`.

/** The answer to an attempt: go ahead, or come back in `retryAfterMs`. */
export type LoginDecision = { readonly allowed: true } | { readonly allowed: false; readonly retryAfterMs: number };

export interface LoginThrottleOptions {
  /** Attempts a key may make without delay. Default 3. */
  readonly freeAttempts?: number;
  /** The first delay, doubled at each further attempt. Default 100 ms. */
  readonly baseDelayMs?: number;
  /** The longest delay. Default 10,000 ms. */
  readonly maxDelayMs?: number;
  /** A key with no attempt allowed and no failure for this long starts afresh. Default 60,000 ms; must exceed maxDelayMs. */
  readonly windowMs?: number;
  /** Keys remembered at most. Default 10,000. */
  readonly maxKeys?: number;
}

/** Counters for /metrics. */
export interface LoginThrottleStats {
  /** Attempts refused. */
  readonly refused: number;
  /** Keys remembered now, in [0, maxKeys]. */
  readonly keys: number;
  /** Keys forgotten to make room for another. */
  readonly evicted: number;
}

/** An option out of its range. */
export class LoginThrottleOptionError extends Error {
  override readonly name = 'LoginThrottleOptionError';
}

/**
 * What the throttle knows of one key. Invariants: `failures ≥ 0`,
 * `running ≥ 0`, and an entry with both 0 is not kept.
 */
interface KeyState {
  /** Attempts that failed since the key was last forgotten. */
  failures: number;
  /** Attempts allowed and not yet reported (success, failure or abandon) in this window. */
  running: number;
  /** When the key last had an attempt allowed or a failure reported. */
  lastMs: number;
}

/** Per-key exponential delay of failed logins, over a bounded LRU of keys. */
export class LoginThrottle {
  private readonly freeAttempts: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly windowMs: number;
  private readonly maxKeys: number;
  /** In least-recently-used order (a Map iterates in insertion order; a use re-inserts). */
  private readonly keys = new Map<string, KeyState>();
  private refused = 0;
  private evicted = 0;

  constructor(options: LoginThrottleOptions = {}) {
    this.freeAttempts = nonNegativeInteger('freeAttempts', options.freeAttempts ?? 3);
    this.baseDelayMs = positive('baseDelayMs', options.baseDelayMs ?? 100);
    this.maxDelayMs = positive('maxDelayMs', options.maxDelayMs ?? 10_000);
    this.windowMs = positive('windowMs', options.windowMs ?? 60_000);
    this.maxKeys = positive('maxKeys', options.maxKeys ?? 10_000);
    if (!Number.isSafeInteger(this.maxKeys)) throw new LoginThrottleOptionError(`maxKeys must be an integer, not ${this.maxKeys}`);
    if (this.windowMs <= this.maxDelayMs) {
      throw new LoginThrottleOptionError(`windowMs (${this.windowMs}) must exceed maxDelayMs (${this.maxDelayMs}), or the delay would never be reached`);
    }
  }

  /**
   * Asks whether `key` may attempt a login at `nowMs`. When allowed, the
   * attempt counts (as running) until reported with `recordSuccess`,
   * `recordFailure` or `abandon`; a refusal counts nothing.
   */
  check(key: string, nowMs: number): LoginDecision {
    let state = this.keys.get(key);
    if (state !== undefined && nowMs - state.lastMs >= this.windowMs) {
      this.keys.delete(key); // quiet for a window: start afresh (attempts never reported are long over)
      state = undefined;
    }
    if (state !== undefined) {
      if (state.lastMs > nowMs) state.lastMs = nowMs; // the clock stepped back: the wait counts from now
      const retryAfterMs = state.lastMs + this.delayMs(state.failures + state.running) - nowMs;
      if (retryAfterMs > 0) {
        this.refused++;
        this.touch(key, state); // a key being refused is the last one to forget
        return { allowed: false, retryAfterMs };
      }
    }
    const next: KeyState = state ?? { failures: 0, running: 0, lastMs: nowMs };
    next.running++;
    next.lastMs = nowMs;
    this.touch(key, next);
    return { allowed: true };
  }

  /** The attempt `check` allowed failed (a wrong password, or no such user), at `nowMs`. */
  recordFailure(key: string, nowMs: number): void {
    const state = this.keys.get(key) ?? { failures: 0, running: 1, lastMs: nowMs }; // evicted meanwhile: still a failure
    state.running = Math.max(0, state.running - 1);
    state.failures++;
    state.lastMs = nowMs;
    this.touch(key, state);
  }

  /** The attempt succeeded: the key starts afresh (its attempts still running count nothing more). */
  recordSuccess(key: string): void {
    this.keys.delete(key);
  }

  /** The attempt ended with neither verdict (the server was busy, or not the leader): it no longer counts. */
  abandon(key: string): void {
    const state = this.keys.get(key);
    if (state === undefined) return;
    state.running = Math.max(0, state.running - 1);
    if (state.running === 0 && state.failures === 0) this.keys.delete(key);
  }

  get stats(): LoginThrottleStats {
    return { refused: this.refused, keys: this.keys.size, evicted: this.evicted };
  }

  /** The wait a key owes after `attempts` attempts: 0 while free, then doubling, capped. */
  private delayMs(attempts: number): number {
    if (attempts < this.freeAttempts) return 0;
    const doublings = attempts - this.freeAttempts;
    // 2^doublings overflows to Infinity long after the cap; min() handles both.
    return Math.min(this.baseDelayMs * 2 ** doublings, this.maxDelayMs);
  }

  /** Stores `state` as the most recently used key, evicting the least recently used beyond maxKeys. */
  private touch(key: string, state: KeyState): void {
    this.keys.delete(key);
    this.keys.set(key, state);
    while (this.keys.size > this.maxKeys) {
      const oldest = this.keys.keys().next();
      if (oldest.done === true) break;
      this.keys.delete(oldest.value);
      this.evicted++;
    }
  }
}

function positive(name: string, value: number): number {
  if (!(Number.isFinite(value) && value > 0)) throw new LoginThrottleOptionError(`${name} must be a positive number, not ${value}`);
  return value;
}

function nonNegativeInteger(name: string, value: number): number {
  if (!(Number.isSafeInteger(value) && value >= 0)) throw new LoginThrottleOptionError(`${name} must be a non-negative integer, not ${value}`);
  return value;
}
