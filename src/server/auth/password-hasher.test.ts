// PasswordHasher over its real worker: hashes verify, wrong and malformed
// ones do not, salts differ, a full queue refuses at once, the main thread
// keeps its timers running while the worker stretches keys, and a worker's
// death fails its jobs but not the next call.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import {
  AuthBusyError,
  bcryptTruncates,
  PasswordHasher,
  PasswordHasherClosedError,
  PasswordHasherOptionError,
  PasswordWorkerExitedError,
} from './password-hasher.js';
import { runPasswordJob } from './password-worker.js';

/** A hasher at bcrypt's lowest cost, for tests about behaviour rather than time. */
function quickHasher(queueMax?: number): PasswordHasher {
  return new PasswordHasher({ cost: 4, ...(queueMax !== undefined ? { queueMax } : {}) });
}

describe('PasswordHasher', () => {
  const open: PasswordHasher[] = [];
  const make = (h: PasswordHasher): PasswordHasher => {
    open.push(h);
    return h;
  };
  after(async () => {
    await Promise.all(open.map((h) => h.close()));
  });

  it('verifies a password against its own hash, and no other password', async () => {
    const h = make(quickHasher());
    const hash = await h.hash('s3cret');
    assert.match(hash, /^\$2b\$04\$[./A-Za-z0-9]{53}$/);
    assert.equal(await h.verify('s3cret', hash), true);
    assert.equal(await h.verify('s3cret ', hash), false);
    assert.equal(await h.verify('', hash), false);
    assert.deepEqual({ hashes: h.stats.hashes, verifies: h.stats.verifies, queueDepth: h.stats.queueDepth }, { hashes: 1, verifies: 3, queueDepth: 0 });
  });

  it('hashes at the default cost 10 unless told otherwise', async () => {
    const h = make(new PasswordHasher());
    assert.equal(h.cost, 10);
    assert.match(await h.hash('x'), /^\$2b\$10\$/);
  });

  it('salts every hash at random: one password, two different hashes, both verify', async () => {
    const h = make(quickHasher());
    const [a, b] = await Promise.all([h.hash('same'), h.hash('same')]);
    assert.notEqual(a, b);
    assert.notEqual(a.slice(0, 29), b.slice(0, 29), 'the salts themselves differ');
    assert.equal(await h.verify('same', a), true);
    assert.equal(await h.verify('same', b), true);
  });

  it('verifies a hash written by Go (etcd) as $2a$', async () => {
    const h = make(quickHasher());
    const ours = await h.hash('from-go');
    assert.equal(await h.verify('from-go', `$2a$${ours.slice(4)}`), true); // the revision letter does not enter the digest for ASCII
  });

  it('answers false, never an error, for a malformed hash (and leaves the worker out of it)', async () => {
    const h = make(quickHasher());
    const good = await h.hash('pw');
    const started = h.stats.workersStarted;
    const malformed = [
      '',
      'not a hash',
      good.slice(0, 59),
      `${good}x`,
      `$2c$${good.slice(4)}`, // unknown revision
      `$2b$03$${good.slice(7)}`, // cost below bcrypt's minimum
      `$2b$32$${good.slice(7)}`, // above its maximum
      `$2b$10$${'!'.repeat(53)}`, // outside bcrypt's alphabet
      `$2b$1x$${good.slice(7)}`,
    ];
    for (const hash of malformed) assert.equal(await h.verify('pw', hash), false, hash);
    assert.equal(h.stats.workersStarted, started);
  });

  it('answers false for a hash whose cost exceeds verifyCostMax, without running it', async () => {
    const h = make(new PasswordHasher({ cost: 4, verifyCostMax: 5 }));
    const costly = `$2b$31$${(await h.hash('pw')).slice(7)}`; // well-formed, and days of work
    const t0 = performance.now();
    assert.equal(await h.verify('pw', costly), false);
    assert.ok(performance.now() - t0 < 1000);
  });

  it('the worker itself answers false for a hash bcrypt cannot parse', () => {
    // The hasher filters these out first; the worker must not throw on one that gets through.
    for (const hash of ['$2b$10$' + '.'.repeat(53), '$3b$10$' + '.'.repeat(53), '$2b$99$' + '.'.repeat(53)]) {
      assert.deepEqual(runPasswordJob({ type: 'verify', id: 7, password: 'pw', hash }), { type: 'verified', id: 7, match: false });
    }
  });

  it('uses the first 72 bytes of a password, as bcrypt does, and says when it would', async () => {
    const h = make(quickHasher());
    const first72 = 'é'.repeat(36); // 72 bytes in UTF-8
    assert.equal(bcryptTruncates(first72), false);
    assert.equal(bcryptTruncates(`${first72}!`), true);
    const hash = await h.hash(`${first72}tail`);
    assert.equal(await h.verify(`${first72}other tail`, hash), true);
    assert.equal(await h.verify(first72.slice(1), hash), false);
  });

  it('refuses a job beyond queueMax at once with AuthBusyError, and takes jobs again once it drains', async () => {
    const h = make(new PasswordHasher({ cost: 10, queueMax: 4 }));
    const hash = await h.hash('pw');
    const running = Array.from({ length: 4 }, () => h.verify('pw', hash));
    assert.equal(h.stats.queueDepth, 4);
    let busy: unknown = null;
    await h.verify('pw', hash).catch((e: unknown) => {
      busy = e;
    });
    assert.ok(busy instanceof AuthBusyError, String(busy));
    assert.equal(busy.message, 'etcdserver: too many requests');
    assert.equal(h.stats.rejectedBusy, 1);
    await assert.rejects(h.hash('other'), AuthBusyError);
    assert.equal(h.stats.rejectedBusy, 2);
    // refused before any of the four (tens of ms each at cost 10) could finish
    assert.equal(h.stats.queueDepth, 4);
    assert.deepEqual(await Promise.all(running), [true, true, true, true]);
    assert.equal(h.stats.queueDepth, 0);
    assert.equal(await h.verify('pw', hash), true);
  });

  it('keeps the main thread responsive while 30 verifies at cost 10 run', async () => {
    const h = make(new PasswordHasher({ cost: 10 }));
    const hash = await h.hash('pw');
    const intervalMs = 10;
    const lagsMs: number[] = [];
    let last = performance.now();
    const timer = setInterval(() => {
      const t = performance.now();
      lagsMs.push(t - last - intervalMs);
      last = t;
    }, intervalMs);
    const t0 = performance.now();
    try {
      const results = await Promise.all(Array.from({ length: 30 }, (_, i) => h.verify(i % 2 === 0 ? 'pw' : 'wrong', hash)));
      assert.deepEqual(results, Array.from({ length: 30 }, (_, i) => i % 2 === 0));
    } finally {
      clearInterval(timer);
    }
    const end = performance.now();
    lagsMs.push(end - last - intervalMs); // a loop blocked to the end shows as one long lag
    const elapsedMs = end - t0;
    const lateTicks = lagsMs.filter((l) => l >= 50).length;
    const lagMaxMs = Math.max(...lagsMs);
    // One verify at cost 10 is tens of ms of CPU (about 100 ms here). Run on
    // this thread one by one, each would make a tick late by that much (30
    // late ticks); run in slices (bcryptjs's async API), the slices of all 30
    // run back to back and the timer waits for them all (one lag of seconds).
    // One late tick is allowed for the OS: with more runnable threads than
    // cores, this one may wait for a time slice whatever the hasher does.
    assert.ok(lateTicks <= 1 && lagMaxMs < 500,
      `${lateTicks} ticks late by 50 ms or more, the latest by ${lagMaxMs.toFixed(1)} ms, in ${elapsedMs.toFixed(0)} ms`);
    assert.ok(lagsMs.length >= elapsedMs / intervalMs / 2, `only ${lagsMs.length} ticks in ${elapsedMs.toFixed(0)} ms`);
    assert.ok(elapsedMs > 300, `the verifies took ${elapsedMs.toFixed(0)} ms: too little work for the lag to say anything`);
  });

  it('fails the jobs of a worker that dies, and starts a new worker for the next call', async () => {
    const h = make(new PasswordHasher({ cost: 10 }));
    const hash = await h.hash('pw');
    const pending = Array.from({ length: 3 }, () => h.verify('pw', hash));
    const outcomes = Promise.allSettled(pending);
    await h.stopWorker();
    for (const o of await outcomes) {
      assert.equal(o.status, 'rejected');
      assert.ok(o.reason instanceof PasswordWorkerExitedError, String(o.reason));
    }
    assert.equal(h.stats.queueDepth, 0);
    assert.equal(await h.verify('pw', hash), true);
    assert.equal(h.stats.workersStarted, 2);
  });

  it('does not hold the process open while idle', async () => {
    // A child process that hashes once and never closes the hasher must still exit by itself.
    const { spawnSync } = await import('node:child_process');
    const { mkdtempSync, rmSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = mkdtempSync(join(tmpdir(), 'quorumlog-hasher-'));
    const file = join(dir, 'child.mjs');
    const url = new URL('./password-hasher.js', import.meta.url).href;
    writeFileSync(file, `import { PasswordHasher } from ${JSON.stringify(url)};
      const h = new PasswordHasher({ cost: 4 });
      const hash = await h.hash('pw');
      console.log(await h.verify('pw', hash));\n`);
    const r = spawnSync(process.execPath, [file], { encoding: 'utf8', timeout: 10_000 });
    rmSync(dir, { recursive: true, force: true });
    assert.equal(r.signal, null, 'the child had to be killed: the idle worker held it open');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'true');
  });

  it('rejects every call after close, and the calls close cut short', async () => {
    const h = new PasswordHasher({ cost: 10 });
    const hash = await h.hash('pw');
    const cut = assert.rejects(h.verify('pw', hash), PasswordHasherClosedError);
    await h.close();
    await cut;
    await assert.rejects(h.hash('pw'), PasswordHasherClosedError);
    await assert.rejects(h.verify('pw', hash), PasswordHasherClosedError);
  });

  it('refuses costs and bounds out of range', () => {
    for (const o of [{ cost: 3 }, { cost: 32 }, { cost: 10.5 }, { queueMax: 0 }, { verifyCostMax: 40 }]) {
      assert.throws(() => new PasswordHasher(o), PasswordHasherOptionError, JSON.stringify(o));
    }
  });
});
