// End-to-end test of the dashboard in a real browser (docs/DASHBOARD.md):
// Debian's chromium (scripts/system-deps.sh installs it) driven by
// playwright-core, against a cluster started by the real `quorumlog cluster`
// command, in push and pull mode. It opens the leader's own page, waits for a
// leader, kills the leader with its button *on that page* and sees the page
// move (same tab) to another member and show another leader, with the kill
// reported done; then restarts, pauses, resumes, partitions and heals a node
// with the buttons and sees its card change; restarts the node serving the
// page from its own page; kills the next leader; and checks that the
// elections timeline names every leader the nodes' logs name, by term,
// across those restarts. Screenshots go to
// test-artifacts/dashboard/; the healthy push-mode one also to
// docs/img/dashboard.png (the README shows it) when QUORUMLOG_UPDATE_SCREENSHOT=1
// or when that file is missing.
//
// No browser is ever downloaded; if chromium is missing or does not start,
// the test fails with a message saying how to install it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { CLI_PATH } from '../../src/cli/cluster.js';
import { LeaderHistory } from '../../src/dashboard/history.js';
import { dashboardHandler } from '../../src/dashboard/server.js';
import type { NodeStatus } from '../../src/server/metrics.js';
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

/**
 * Every leader by term, as the nodes' own logs say ("became leader", one
 * line per node per term it won; node.log is appended across restarts), as
 * "term:leader" ascending by term: the truth the timeline must show.
 */
function leadersFromLogs(dir: string): string[] {
  const byTerm = new Map<number, string>();
  for (const id of ['n1', 'n2', 'n3']) {
    for (const line of readFileSync(join(dir, id, 'node.log'), 'utf8').split('\n')) {
      if (!line.includes('"became leader"')) continue;
      const rec = JSON.parse(line) as { term: number; msg: string; role: string };
      if (rec.msg !== 'became leader' || rec.role !== 'leader') continue;
      const had = byTerm.get(rec.term);
      assert.ok(had === undefined || had === id, `two leaders in term ${rec.term}: ${had} and ${id}`);
      byTerm.set(rec.term, id);
    }
  }
  return [...byTerm.entries()].sort((a, b) => a[0] - b[0]).map(([term, id]) => `${term}:${id}`);
}

const metricsPort = (base: number, id: string): number => base + 200 + Number(id.slice(1)) - 1;

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
const servedBy = (page: Page): Promise<string> => page.$eval('#served-by', (e) => e.textContent ?? '');
const controlResult = (page: Page): Promise<string> => page.$eval('#control-result', (e) => e.textContent ?? '');
const roleOf = (page: Page, id: string): Promise<string | null> =>
  page.$eval(`section.node[data-node="${id}"]`, (e) => e.getAttribute('data-role')).catch(() => null);

/** The page is moving to another member: a query of the old document fails with one of these. */
const NAVIGATING = /Execution context was destroyed|navigat|Target page, context or browser has been closed|Cannot find context/i;

async function waitPage(page: Page, what: string, fn: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      if (await fn()) return;
    } catch (e) {
      if (!NAVIGATING.test(String(e))) throw e;
    }
    await sleep(150);
  }
  await page.screenshot({ path: join(ARTIFACTS, `timeout-${Date.now()}.png`) });
  throw new Error(`timed out waiting for ${what}`);
}

for (const mode of ['push', 'pull'] as const) {
  test(`dashboard in a real browser (${mode} mode): kill the leader from its own page, the page moves to another member and shows the new leader; pause/resume and partition/heal show on the card; the timeline counts every leader across restarts`, { timeout: 240_000 }, async (t) => {
    mkdirSync(ARTIFACTS, { recursive: true });
    const browser = await launch();
    t.after(() => browser.close());
    const cluster = await startCluster(mode);
    t.after(() => cluster.stop());
    const started = Date.now();
    const link = /^dashboard: (http:\/\/127\.0\.0\.1:\d+\/dashboard)$/m.exec(cluster.output())?.[1];
    assert.equal(link, `http://127.0.0.1:${cluster.base + 200}/dashboard`, cluster.output());
    const firstLeader = /^leader: (n\d)$/m.exec(cluster.output())?.[1] as string;
    // The leader's own page: the one whose node this test kills from it.
    const page = await browser.newPage({ viewport: { width: 1366, height: 768 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`http://127.0.0.1:${metricsPort(cluster.base, firstLeader)}/dashboard`);
    await waitPage(page, 'a leader on the page', async () => (await leaderOnPage(page)) !== '');
    assert.equal(await servedBy(page), firstLeader);
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

    // Kill the leader with its button, on its own page: the kill is reported done (it went through another member, so
    // the killed node did not cut its own reply), and the page moves, in this tab, to another member and shows
    // another leader.
    if (leader !== firstLeader) await page.goto(`http://127.0.0.1:${metricsPort(cluster.base, leader)}/dashboard`); // leadership moved meanwhile
    await waitPage(page, `${leader}'s own page`, async () => (await servedBy(page)) === leader && (await leaderOnPage(page)) === leader);
    await page.click(`button[data-action="kill"][data-node="${leader}"]`);
    await waitPage(page, `the page served by a member other than ${leader}`, async () => {
      const by = await servedBy(page);
      return by !== '' && by !== '?' && by !== leader;
    });
    await waitPage(page, `a leader other than ${leader}`, async () => {
      const now = await leaderOnPage(page);
      return now !== '' && now !== leader;
    });
    await waitPage(page, `${leader}'s card down`, async () => (await roleOf(page, leader)) === 'down');
    const viewer = await servedBy(page);
    assert.equal(new URL(page.url()).port, String(metricsPort(cluster.base, viewer)), 'the tab now shows the other member\'s own dashboard');
    assert.equal(await page.$eval('#switch-note', (e) => e.getAttribute('data-from')), leader, 'the page says which node it left');
    assert.match(await controlResult(page), new RegExp(`^kill ${leader}: done`), 'the kill that worked is reported done');
    assert.doesNotMatch(await page.$eval('body', (e) => e.textContent ?? ''), /Failed to fetch|failed \(/);
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

    // Restart the node serving the page, from its own page: reported done; the page carries on (back on it, or on
    // another member) and shows it a follower again.
    const pidOf = (id: string): Promise<string | null> => page.$eval(`section.node[data-node="${id}"]`, (e) => e.getAttribute('data-pid'));
    const viewerPid = await pidOf(viewer);
    assert.ok(viewerPid !== null && viewerPid !== '', 'the card shows the pid');
    await page.click(`button[data-action="restart"][data-node="${viewer}"]`);
    await waitPage(page, `restart ${viewer} reported`, async () => /^restart n\d: /.test(await controlResult(page)));
    assert.match(await controlResult(page), new RegExp(`^restart ${viewer}: done`));
    await waitPage(page, `${viewer} back (a new pid) as a follower or leader`, async () => {
      const pid = await pidOf(viewer);
      return pid !== null && pid !== viewerPid && ['follower', 'leader'].includes(await roleOf(page, viewer) ?? '');
    }, 45_000);

    // Kill the leader once more (if it serves the page, the kill goes through another member again): a third leader.
    await waitPage(page, 'a leader on the page', async () => (await leaderOnPage(page)) !== '');
    const third = await leaderOnPage(page);
    await page.click(`button[data-action="kill"][data-node="${third}"]`);
    await waitPage(page, `a leader other than ${third}`, async () => {
      const now = await leaderOnPage(page);
      return now !== '' && now !== third;
    }, 45_000);
    await waitPage(page, `kill ${third} reported`, async () => new RegExp(`^kill ${third}: `).test(await controlResult(page)));
    assert.match(await controlResult(page), new RegExp(`^kill ${third}: done`));

    // The timeline names every leader the nodes' logs name, by term, after these failovers and restarts; and its
    // count is their number. (The timeline is five minutes wide; this test takes well under that.)
    const truth = leadersFromLogs(cluster.dir);
    assert.ok(truth.length >= 3, `at least three leaders in the logs: ${truth.join(' ')}`);
    let shown = '';
    await waitPage(page, `the timeline's leaders to be ${truth.join(',')}`, async () => {
      shown = await page.$eval('#timeline', (e) => e.getAttribute('data-leader-terms') ?? '');
      return shown === leadersFromLogs(cluster.dir).join(',');
    }).catch((e: unknown) => { throw new Error(`${String(e)}; the timeline shows ${shown}`, { cause: e }); });
    assert.equal(await page.$eval('#timeline', (e) => e.getAttribute('data-leader-changes')), String(leadersFromLogs(cluster.dir).length));
    const summary = await page.$$eval('#timeline text', (els) => els.map((e) => e.textContent ?? '').find((x) => x.includes('leader change')) ?? '');
    assert.match(summary, new RegExp(`^${leadersFromLogs(cluster.dir).length} leader change\\(s\\); last: `));
    await page.screenshot({ path: join(ARTIFACTS, `${mode}-6-after-failovers.png`) });
    assert.doesNotMatch(await page.$eval('body', (e) => e.textContent ?? ''), /Failed to fetch/);
    assert.deepEqual(errors, [], 'the page threw');
    t.diagnostic(`${mode}: ${Date.now() - started} ms from cluster up to healed`);
  });
}

test('dashboard in a real browser: a node without controls says why its buttons are missing and where they are', { timeout: 60_000 }, async (t) => {
  const browser = await launch();
  t.after(() => browser.close());
  // One node's dashboard, started by hand (no QUORUMLOG_CLUSTER_CONTROL), in a cluster whose other members have
  // controls (their /dashboard/history says so), as after a restart with the printed command.
  const status = (id: string): NodeStatus => ({
    id, clusterId: 'c', pid: 4242, mode: 'push', role: id === 'n1' ? 'leader' : 'follower', term: 2, leader: 'n1', commitIndex: 5, appliedIndex: 5, lastIndex: 5,
    removed: false, dirId: null, lostDisk: null, configuration: { index: 1, committed: true, voters: ['n1', 'n2', 'n3'], observers: [], dirIds: {} },
    replication: [], now: Date.now(), proposalsTotal: 0, fsync: { samples: 0, p50Ms: null, p99Ms: null, lastMs: null }, leadershipEvents: [], partitioned: false, supervisor: null, protocolWorkers: null,
  });
  const h = dashboardHandler({
    self: 'n2', mode: 'push', controlUrl: null, setPartitioned: null, history: new LeaderHistory(null, null),
    members: () => [{ id: 'n1', role: 'voter', metrics: '127.0.0.1:1' }, { id: 'n2', role: 'voter', metrics: '127.0.0.1:2' }, { id: 'n3', role: 'voter', metrics: '127.0.0.1:3' }],
    fetchStatus: async (m) => status(m.id),
    fetchHistory: async (m) => ({ node: m.id, controls: true, leaderTerms: [] }),
  });
  const server = createHttpServer((req, res) => { if (!h.handle(req, res)) { res.writeHead(404); res.end(); } });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.after(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }));
  const page = await browser.newPage({ viewport: { width: 1366, height: 768 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`http://127.0.0.1:${(server.address() as AddressInfo).port}/dashboard`);
  await waitPage(page, 'the note on missing buttons', async () => (await page.$eval('#control-note', (e) => e.getAttribute('data-controls'))) === 'none');
  const note = await page.$eval('#control-note', (e) => e.textContent ?? '');
  assert.match(note, /^No buttons: n2 was not started by `quorumlog cluster`/);
  assert.match(note, /open the page of a node it started: n1, n3/);
  assert.equal(await page.locator('button[data-action]').count(), 0);
  assert.equal(await page.locator('section.node').count(), 3);
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, 'no-controls.png') });
  assert.deepEqual(errors, [], 'the page threw');
});
