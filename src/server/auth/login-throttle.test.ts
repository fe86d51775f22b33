// LoginThrottle on a fake clock: three free attempts, then delays doubling
// from 100 ms to a 10 s cap; a success or a quiet window forgets the key;
// other keys are never slowed; concurrent attempts count while they run; and
// the keys remembered stay within maxKeys.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LoginThrottle, LoginThrottleOptionError, type LoginThrottleOptions } from './login-throttle.js';

function setup(options: LoginThrottleOptions = {}) {
  const clock = { ms: 1_000 };
  const t = new LoginThrottle(options);
  /** The throttle on the fake clock. */
  const throttle = {
    check: (key: string) => t.check(key, clock.ms),
    recordFailure: (key: string) => t.recordFailure(key, clock.ms),
    recordSuccess: (key: string) => t.recordSuccess(key),
    abandon: (key: string) => t.abandon(key),
    get stats() {
      return t.stats;
    },
  };
  /** One login from `key` that fails, which must have been allowed. */
  const fail = (key: string): void => {
    assert.deepEqual(throttle.check(key), { allowed: true }, `${key} at ${clock.ms}`);
    throttle.recordFailure(key);
  };
  return { clock, throttle, fail };
}

describe('LoginThrottle', () => {
  it('lets three failures through, then makes each attempt wait 100 ms, 200 ms, 400 ms … after the last', () => {
    const { clock, throttle, fail } = setup();
    fail('10.0.0.1');
    fail('10.0.0.1');
    fail('10.0.0.1');
    for (const delayMs of [100, 200, 400, 800, 1600]) {
      assert.deepEqual(throttle.check('10.0.0.1'), { allowed: false, retryAfterMs: delayMs });
      clock.ms += delayMs - 1;
      assert.deepEqual(throttle.check('10.0.0.1'), { allowed: false, retryAfterMs: 1 });
      clock.ms += 1;
      fail('10.0.0.1');
    }
    assert.equal(throttle.stats.refused, 10);
  });

  it('caps the delay at 10 s', () => {
    const { clock, throttle, fail } = setup();
    const waits: number[] = [];
    for (let i = 0; i < 15; i++) {
      const d = throttle.check('k');
      if (d.allowed) {
        throttle.recordFailure('k');
        continue;
      }
      waits.push(d.retryAfterMs);
      clock.ms += d.retryAfterMs;
      fail('k');
    }
    assert.deepEqual(waits, [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000, 10_000, 10_000]);
  });

  it('never slows another key', () => {
    const { throttle, fail } = setup();
    for (let i = 0; i < 3; i++) fail('attacker');
    assert.equal(throttle.check('attacker').allowed, false);
    for (let i = 0; i < 10; i++) {
      assert.deepEqual(throttle.check('bystander'), { allowed: true });
      throttle.recordSuccess('bystander');
    }
    fail('someone-else');
    fail('someone-else');
    fail('someone-else');
    assert.equal(throttle.check('attacker').allowed, false);
  });

  it('forgets a key on success', () => {
    const { clock, throttle, fail } = setup();
    for (let i = 0; i < 3; i++) fail('k');
    clock.ms += 100;
    assert.deepEqual(throttle.check('k'), { allowed: true });
    throttle.recordSuccess('k');
    for (let i = 0; i < 3; i++) fail('k'); // three free ones again, no wait
    assert.equal(throttle.check('k').allowed, false);
    assert.equal(throttle.stats.keys, 1);
  });

  it('forgets a key after a quiet window, and not before', () => {
    const { clock, throttle, fail } = setup({ windowMs: 60_000 });
    for (let i = 0; i < 3; i++) fail('k');
    clock.ms += 59_999;
    fail('k'); // allowed (past the 100 ms), and still remembered: the fourth failure
    assert.deepEqual(throttle.check('k'), { allowed: false, retryAfterMs: 200 });
    clock.ms += 60_000;
    for (let i = 0; i < 3; i++) fail('k');
    assert.equal(throttle.check('k').allowed, false);
  });

  it('counts attempts while they run: a burst from one key gets three through, not all', () => {
    const { clock, throttle } = setup();
    const decisions = Array.from({ length: 20 }, () => throttle.check('burst'));
    assert.equal(decisions.filter((d) => d.allowed).length, 3);
    assert.deepEqual(decisions[3], { allowed: false, retryAfterMs: 100 });
    // the three fail later; the next attempt waits from the last failure
    clock.ms += 50;
    for (let i = 0; i < 3; i++) throttle.recordFailure('burst');
    assert.deepEqual(throttle.check('burst'), { allowed: false, retryAfterMs: 100 });
  });

  it('does not count an attempt that was abandoned (busy server, lost leadership)', () => {
    const { throttle, fail } = setup();
    fail('k');
    fail('k');
    assert.deepEqual(throttle.check('k'), { allowed: true });
    throttle.abandon('k');
    fail('k');
    assert.equal(throttle.check('k').allowed, false);
    assert.deepEqual(setup().throttle.stats.keys, 0);
    const other = setup();
    assert.deepEqual(other.throttle.check('x'), { allowed: true });
    other.throttle.abandon('x');
    assert.equal(other.throttle.stats.keys, 0, 'an abandoned first attempt leaves nothing behind');
  });

  it('forgets attempts never reported once their window ends', () => {
    const { clock, throttle } = setup({ windowMs: 60_000 });
    for (let i = 0; i < 3; i++) assert.equal(throttle.check('k').allowed, true); // all three calls failed on the way
    assert.equal(throttle.check('k').allowed, false);
    clock.ms += 60_000;
    assert.deepEqual(throttle.check('k'), { allowed: true });
  });

  it('never asks for more than the delay when the clock steps back', () => {
    const { clock, throttle, fail } = setup();
    for (let i = 0; i < 3; i++) fail('k');
    clock.ms -= 3_600_000; // a wall clock set back an hour
    assert.deepEqual(throttle.check('k'), { allowed: false, retryAfterMs: 100 });
    clock.ms += 100;
    assert.deepEqual(throttle.check('k'), { allowed: true });
  });

  it('remembers at most maxKeys keys, forgetting the least recently used', () => {
    const { throttle, fail } = setup({ maxKeys: 100 });
    for (let i = 0; i < 3; i++) fail('old');
    for (let i = 0; i < 3; i++) fail('kept');
    for (let n = 0; n < 98; n++) fail(`flood-${n}`);
    assert.equal(throttle.stats.keys, 100);
    assert.equal(throttle.check('kept').allowed, false); // a refusal is a use: 'kept' is now the most recent
    fail('flood-98'); // one key too many: the least recently used goes
    assert.equal(throttle.stats.keys, 100);
    assert.equal(throttle.stats.evicted, 1);
    assert.equal(throttle.check('kept').allowed, false, 'a key in use stays');
    assert.deepEqual(throttle.check('old'), { allowed: true }, 'the least recently used was forgotten');
    for (let n = 0; n < 10_000; n++) {
      fail(`more-${n}`);
      assert.ok(throttle.stats.keys <= 100);
    }
    assert.equal(throttle.stats.keys, 100);
  });

  it('refuses options that make no sense', () => {
    for (const o of [{ windowMs: 5_000 }, { maxKeys: 0 }, { baseDelayMs: -1 }, { freeAttempts: 1.5 }, { maxKeys: 2.5 }]) {
      assert.throws(() => new LoginThrottle(o), LoginThrottleOptionError, JSON.stringify(o));
    }
  });
});
