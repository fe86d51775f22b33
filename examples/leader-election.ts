// Leader election for an application on quorumlog's etcd API, with the etcd3
// npm client's election() helper (the same recipe as etcd's Go concurrency
// package): each candidate puts a key under election/<name>/ with its own
// lease, in a txn that only creates it; the candidate whose key has the lowest
// create revision leads, and the others watch the key just before theirs.
// A leader that resigns revokes its lease; a leader that dies stops its
// keep-alives, and its key goes when the cluster's leader expires the lease.
// Either way the next candidate is elected, and observers see the change.
//
// Each candidate is a process of its own (this file, run with `candidate
// <name>`), so that a crash is a real one: kill -9.
//
// Run against a local cluster (`npm run cluster` in another terminal):
//   npm run build && node dist/examples/leader-election.js
// Endpoints: QUORUMLOG_ENDPOINTS=127.0.0.1:2379,127.0.0.1:2380,127.0.0.1:2381 (the default).
// It exits 0 once leadership has passed by resignation and by a crash.

import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Etcd3 } from 'etcd3';

const ELECTION = 'scheduler';
const TTL_SECONDS = 3;
const hosts = (process.env['QUORUMLOG_ENDPOINTS'] ?? '127.0.0.1:2379,127.0.0.1:2380,127.0.0.1:2381').split(',');

/** A candidate process: campaigns, says when it is elected, resigns on SIGTERM, and dies on SIGKILL. */
async function runCandidate(name: string): Promise<void> {
  const client = new Etcd3({ hosts });
  const campaign = client.election(ELECTION, TTL_SECONDS).campaign(name);
  campaign.on('elected', () => console.log(`[${name}] elected: doing the leader's work now`));
  campaign.on('error', (err) => {
    console.log(`[${name}] campaign failed: ${err.message}`);
    process.exit(1);
  });
  process.on('SIGTERM', () => {
    console.log(`[${name}] resigning`);
    campaign.resign().then(() => {
      client.close();
      process.exit(0);
    }, () => process.exit(1));
  });
  console.log(`[${name}] campaigning with key ${await campaign.getCampaignKey()}`);
}

function waitUntil(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + timeoutMs;
    const poll = (): void => {
      Promise.resolve(cond()).then((ok) => {
        if (ok) resolve();
        else if (Date.now() > deadline) reject(new Error(`timed out waiting for ${what}`));
        else setTimeout(poll, 20);
      }, reject);
    };
    poll();
  });
}

async function main(): Promise<void> {
  const client = new Etcd3({ hosts });
  const children = new Map<string, ChildProcess>();
  const elected = new Set<string>();
  try {
    const prefix = `election/${ELECTION}/`;
    await client.delete().prefix(prefix); // a clean slate for the demonstration
    const election = client.election(ELECTION, TTL_SECONDS);

    // Candidates start one after the other (each once its key exists), so that the order of leadership is known.
    for (const name of ['alpha', 'beta', 'gamma']) {
      const child = spawn(process.execPath, [fileURLToPath(import.meta.url), 'candidate', name], { stdio: ['ignore', 'pipe', 'inherit'] });
      child.stdout?.on('data', (d: Buffer) => {
        for (const line of d.toString().split('\n').filter((l) => l !== '')) {
          console.log(line);
          if (line.includes('elected')) elected.add(name);
        }
      });
      children.set(name, child);
      const count = children.size;
      await waitUntil(async () => (await client.getAll().prefix(prefix).count()) === count, 10_000, `${name}'s campaign key`);
    }
    await waitUntil(() => elected.has('alpha'), 10_000, 'alpha to be elected');

    const observer = await election.observe();
    const seen: string[] = [];
    observer.on('change', (leader) => {
      seen.push(String(leader));
      console.log(`[observer] the leader is now ${String(leader)}`);
    });
    console.log(`[observer] the leader is ${String(observer.leader())}`);
    if (elected.has('beta') || elected.has('gamma')) throw new Error('two leaders at once');

    // alpha steps down cleanly (it revokes its lease): beta is next.
    children.get('alpha')?.kill('SIGTERM');
    await waitUntil(() => elected.has('beta'), 10_000, 'beta to be elected');
    if (elected.has('gamma')) throw new Error('gamma elected while beta leads');

    // beta crashes: nothing keeps its lease alive any more; gamma takes over once the cluster expires it.
    const crashedAt = Date.now();
    children.get('beta')?.kill('SIGKILL');
    console.log('[beta] killed with SIGKILL');
    await waitUntil(() => elected.has('gamma'), (TTL_SECONDS + 10) * 1000, 'gamma to be elected after beta\'s lease expired');
    console.log(`[gamma] took over ${((Date.now() - crashedAt) / 1000).toFixed(1)} s after beta crashed (TTL ${TTL_SECONDS} s)`);
    await waitUntil(() => seen.includes('gamma'), 10_000, 'the observer to see gamma');
    if (await election.leader() !== 'gamma') throw new Error('the election does not name gamma');

    children.get('gamma')?.kill('SIGTERM');
    await waitUntil(async () => (await client.getAll().prefix(prefix).count()) === 0, 10_000, 'gamma to resign');
    await observer.cancel();
    console.log('leader-election: done');
  } finally {
    for (const child of children.values()) if (child.exitCode === null) child.kill('SIGKILL');
    client.close();
  }
}

const role = process.argv[2];
const run = role === 'candidate' ? runCandidate(process.argv[3] ?? 'anonymous') : main();
run.then(
  () => {
    if (role !== 'candidate') process.exit(0);
  },
  (err: unknown) => {
    console.error('leader-election failed:', err);
    process.exit(1);
  },
);
