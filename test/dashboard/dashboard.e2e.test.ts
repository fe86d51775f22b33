// End-to-end test of the dashboard in a real browser (docs/DASHBOARD.md):
// Debian's chromium (scripts/system-deps.sh installs it) driven by
// playwright-core, against a cluster started by the real `quorumlog cluster`
// command, in push and pull mode. It opens the page, waits for a leader,
// kills the leader with its button and waits for another leader on the page,
// then restarts, pauses, resumes, partitions and heals a node with the
// buttons and sees its card change. Screenshots go to
// test-artifacts/dashboard/; the healthy push-mode one also to
// docs/img/dashboard.png (the README shows it) when QUORUMLOG_UPDATE_SCREENSHOT=1
// or when that file is missing.
//
// No browser is ever downloaded; if chromium is missing or does not start,
// the test fails with a message saying how to install it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { CLI_PATH } from '../../src/cli/cluster.js';
import { EtcdTestClient } from '../cluster/etcd-client.js';

const CHROMIUM = process.env['QUORUMLOG_CHROMIUM'] ?? '/usr/bin/chromium';

/** The repository's root (where package.json is), from this compiled or source file. */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) || !existsSync(join(dir, 'src', 'dashboard'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('repository root not found');
    dir = parent;
  }
  return dir;
}
const ROOT = repoRoot();
const ARTIFACTS = resolve(ROOT, 'test-artifacts', 'dashboard');

function portFree(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = createServer();
    s.once('error', () => res(false));
    s.listen(port, '127.0.0.1', () => s.close(() => res(true)));
  });
}

/** A base port with the 3 client, peer and metrics ports free, below the ephemeral range (as test/cluster/harness.ts does). */
async function freeBasePort(nodes: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 10_000 + Math.floor(Math.random() * 22_000);
    const ports: number[] = [];
    for (let i = 0; i < nodes; i++) ports.push(base + i, base + 100 + i, base + 200 + i);
    if ((await Promise.all(ports.map(portFree))).every((x) => x)) return base;
  }
  throw new Error('no free port range found');
}

async function launch(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`chromium not found at ${CHROMIUM}: the dashboard's browser test needs Debian's chromium; install it with \`bash scripts/system-deps.sh\` (or apt-get install -y chromium)`);
  }
  try {
    return await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  } catch (e) {
    throw new Error(`chromium at ${CHROMIUM} did not start: ${String(e)}`, { cause: e });
  }
}

interface RunningCluster {
  readonly child: ChildProcess;
  readonly base: number;
  readonly dir: string;
  output(): string;
  stop(): Promise<void>;
}

async function startCluster(mode: 'push' | 'pull'): Promise<RunningCluster> {
  const dir = mkdtempSync(join(tmpdir(), `ql-dash-${mode}-`));
  const base = await freeBasePort(3);
  const child = spawn(process.execPath, [CLI_PATH, 'cluster', '--nodes', '3', '--mode', mode, '--data-dir', dir, '--base-port', String(base)]);
  let out = '';
  child.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr?.on('data', (d: Buffer) => { out += d.toString(); });
  const deadline = Date.now() + 40_000;
  while (!out.includes('Ctrl-C') && Date.now() < deadline && child.exitCode === null) await sleep(100);
  assert.match(out, /Ctrl-C stops all nodes/, `the cluster did not come up:\n${out}`);
  return {
    child, base, dir, output: () => out,
    async stop(): Promise<void> {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise<void>((r) => child.once('exit', () => r()));
        child.kill('SIGINT');
        const t = setTimeout(() => child.kill('SIGKILL'), 20_000);
        await exited;
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Writes through every node (4 writers each) for `ms`, and after that until `stop` says so, so the proposals chart has a curve. */
async function writeFor(base: number, ms: number, stop: { done: boolean } = { done: true }): Promise<number> {
  const clients = [0, 1, 2].map((i) => new EtcdTestClient(`127.0.0.1:${base + i}`, 10_000));
  const end = Date.now() + ms;
  let done = 0;
  try {
    await Promise.all(clients.flatMap((c, i) => [0, 1, 2, 3].map(async (w) => {
      while (Date.now() < end || !stop.done) {
        await c.put(`dash/${i}/${w}/${done}`, 'x'.repeat(64));
        done++;
        await sleep(5);
      }
    })));
  } finally {
    for (const c of clients) c.close();
  }
  return done;
}

const leaderOnPage = (page: Page): Promise<string> => page.$eval('#leader', (e) => e.getAttribute('data-leader') ?? '');
const roleOf = (page: Page, id: string): Promise<string | null> =>
  page.$eval(`section.node[data-node="${id}"]`, (e) => e.getAttribute('data-role')).catch(() => null);

async function waitPage(page: Page, what: string, fn: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await fn()) return;
    await sleep(150);
  }
  await page.screenshot({ path: join(ARTIFACTS, `timeout-${Date.now()}.png`) });
  throw new Error(`timed out waiting for ${what}`);
}

for (const mode of ['push', 'pull'] as const) {
  test(`dashboard in a real browser (${mode} mode): kill the leader with its button, a new leader appears; pause/resume and partition/heal show on the card`, { timeout: 180_000 }, async (t) => {
    mkdirSync(ARTIFACTS, { recursive: true });
    const browser = await launch();
    t.after(() => browser.close());
    const cluster = await startCluster(mode);
    t.after(() => cluster.stop());
    const started = Date.now();
    const link = /^dashboard: (http:\/\/127\.0\.0\.1:\d+\/dashboard)$/m.exec(cluster.output())?.[1];
    assert.equal(link, `http://127.0.0.1:${cluster.base + 200}/dashboard`, cluster.output());
    const firstLeader = /^leader: (n\d)$/m.exec(cluster.output())?.[1] as string;
    // The page lives on one node: open it on one that is not the leader, which this test kills.
    const viewer = ['n1', 'n2', 'n3'].find((id) => id !== firstLeader) as string;
    const url = `http://127.0.0.1:${cluster.base + 200 + Number(viewer.slice(1)) - 1}/dashboard`;
    const page = await browser.newPage({ viewport: { width: 1366, height: 768 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(url);
    await waitPage(page, 'a leader on the page', async () => (await leaderOnPage(page)) !== '');
    assert.equal(await page.$eval('#mode', (e) => e.textContent), mode);
    assert.equal(await page.locator('section.node').count(), 3);
    // Some writes, so the proposals chart has a curve; they go on until the page shows a rate above zero (which it must,
    // within 30 s), since the rate is of the last sample and drops back once the writes stop.
    const writing = { done: false };
    const writes = writeFor(cluster.base, 4000, writing);
    writes.catch(() => undefined); // awaited below; a failure must not go unhandled while the page is watched
    try {
      await waitPage(page, 'a proposal rate on the page', async () => /now [1-9]/.test(await page.$eval('#rate-now', (e) => e.textContent ?? '')));
    } finally {
      writing.done = true;
    }
    const written = await writes;
    assert.ok(written > 0);
    await sleep(600);
    const leader = await leaderOnPage(page);
    assert.equal(await roleOf(page, leader), 'leader');
    for (const id of ['n1', 'n2', 'n3'].filter((x) => x !== leader)) assert.equal(await roleOf(page, id), 'follower');
    await page.screenshot({ path: join(ARTIFACTS, `${mode}-1-healthy.png`) });
    // The README's picture: rewritten only on request (or when missing), so that a test run leaves the work tree clean.
    const docShot = join(ROOT, 'docs', 'img', 'dashboard.png');
    if (mode === 'push' && (process.env['QUORUMLOG_UPDATE_SCREENSHOT'] === '1' || !existsSync(docShot))) {
      mkdirSync(dirname(docShot), { recursive: true });
      await page.screenshot({ path: docShot });
    }

    // Kill the leader with its button: another node must lead, on the page.
    await page.click(`button[data-action="kill"][data-node="${leader}"]`);
    await waitPage(page, `a leader other than ${leader}`, async () => {
      const now = await leaderOnPage(page);
      return now !== '' && now !== leader;
    });
    await waitPage(page, `${leader}'s card down`, async () => (await roleOf(page, leader)) === 'down');
    const newLeader = await leaderOnPage(page);
    assert.notEqual(newLeader, leader);
    await page.screenshot({ path: join(ARTIFACTS, `${mode}-2-leader-killed.png`) });

    // Restart it with its button: it comes back as a follower.
    await page.click(`button[data-action="restart"][data-node="${leader}"]`);
    await waitPage(page, `${leader} back as follower`, async () => (await roleOf(page, leader)) === 'follower');

    // Pause it (SIGSTOP), then resume it (SIGCONT).
    await page.click(`button[data-action="pause"][data-node="${leader}"]`);
    await waitPage(page, `${leader} paused`, async () => (await roleOf(page, leader)) === 'down'
      && (await page.$eval(`section.node[data-node="${leader}"]`, (e) => e.getAttribute('data-process'))) === 'paused');
    await page.screenshot({ path: join(ARTIFACTS, `${mode}-3-paused.png`) });
    await page.click(`button[data-action="resume"][data-node="${leader}"]`);
    await waitPage(page, `${leader} resumed`, async () => (await roleOf(page, leader)) === 'follower');

    // Partition it from its peers, then heal it.
    const partitioned = (): Promise<string | null> => page.$eval(`section.node[data-node="${leader}"]`, (e) => e.getAttribute('data-partitioned'));
    await page.click(`button[data-action="partition"][data-node="${leader}"]`);
    await waitPage(page, `${leader} partitioned`, async () => (await partitioned()) === 'true');
    await sleep(1500);
    assert.equal(await leaderOnPage(page), newLeader, 'a partitioned follower does not disturb the leader (pre-vote)');
    await page.screenshot({ path: join(ARTIFACTS, `${mode}-4-partitioned.png`) });
    await page.click(`button[data-action="heal"][data-node="${leader}"]`);
    await waitPage(page, `${leader} healed`, async () => (await partitioned()) === 'false' && (await roleOf(page, leader)) === 'follower');
    await page.screenshot({ path: join(ARTIFACTS, `${mode}-5-healed.png`) });
    assert.deepEqual(errors, [], 'the page threw');
    t.diagnostic(`${mode}: ${Date.now() - started} ms from cluster up to healed`);
  });
}
