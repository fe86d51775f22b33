// The README's five-minute tour, run as written (issue 17, "Done when"):
// `npm run cluster` in a fresh copy of the repository (so that its build
// rebuilds the copy's dist/, not the one the tests run from, and its data
// goes to the copy's ./quorumlog-data), then every command of the tour,
// each taken from README.md (the test fails if the README no longer has
// it) and run by bash with the tour's own variables. It uses the default
// ports 2379-2381, 2479-2481 and 2579-2581, as the README does: no other
// test may use them.
//
// Covered: put, get and watch with etcdctl; `quorumlog status`; kill -9 of
// the leader followed at once by a put that must succeed and be read back;
// restarting the node through the cluster (`quorumlog cluster restart`);
// the dashboard's kill and restart of the leader; a second `npm run
// cluster`, which must refuse, naming the port, without rebuilding dist/,
// while the first still serves; Ctrl-C leaving no process and no port;
// pull mode and the other services; Ctrl-C again.

import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { clusterPorts, probePort } from '../../scripts/cluster-ports.mjs';
import type { NodeStatus } from '../../src/server/metrics.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..'); // dist/test/cluster -> the repository
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const PORTS = clusterPorts({ nodes: 3, observers: 0, basePort: 2379, controlPort: 0 }).map((p) => p.port);

/** A line of the README's tour, verbatim (the test fails when the README no longer has it). */
function tour(line: string): string {
  assert.ok(README.includes(line), `the README's tour no longer has the line: ${line}`);
  return line;
}

/** The tour's variables, set as its step 1 sets them. */
const SETUP = [tour('export ETCDCTL_API=3 E=127.0.0.1:2379,127.0.0.1:2380,127.0.0.1:2381'), tour('Q="node dist/src/cli/quorumlog.js"')].join('\n');

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A long-running command of the tour (the cluster, a watch), in its own process group, as a terminal runs it. */
class Running {
  output = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly child: ChildProcess;
  constructor(readonly cwd: string, script: string) {
    this.child = spawn('bash', ['-c', `${SETUP}\nexec ${script}`], { cwd, detached: true });
    this.child.stdout?.on('data', (d: Buffer) => { this.output += d.toString(); });
    this.child.stderr?.on('data', (d: Buffer) => { this.output += d.toString(); });
    this.exited = new Promise((r) => this.child.once('exit', (code, signal) => r({ code, signal })));
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  async waitFor(text: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.output.includes(text)) {
      if (Date.now() > deadline || !this.running && !this.output.includes(text)) throw new Error(`did not print "${text}" within ${timeoutMs} ms:\n${this.output}`);
      await sleep(100);
    }
  }

  /** Ctrl-C: SIGINT to the whole process group, as the terminal sends it. */
  ctrlC(): void {
    process.kill(-(this.child.pid as number), 'SIGINT');
  }
}

/** Runs one command line of the tour with bash in the copy; its exit code and output. */
function sh(cwd: string, line: string, timeoutMs = 60_000): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync('bash', ['-c', `${SETUP}\n${line}`], { cwd, encoding: 'utf8', timeout: timeoutMs });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function status(port: number): Promise<NodeStatus | null> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/status`, { signal: AbortSignal.timeout(1000) });
    return res.ok ? await res.json() as NodeStatus : null;
  } catch {
    return null;
  }
}

/** The statuses of the three nodes, by id (a node that does not answer is absent). */
async function statuses(): Promise<Map<string, NodeStatus>> {
  const all = await Promise.all([2579, 2580, 2581].map(status));
  return new Map(all.filter((s): s is NodeStatus => s !== null).map((s) => [s.id, s]));
}

async function until<T>(what: string, fn: () => Promise<T | null>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== null) return v;
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs} ms`);
    await sleep(100);
  }
}

/** Parses `quorumlog status`'s table into rows by column name. */
function statusRows(text: string): Record<string, string>[] {
  const lines = text.split('\n');
  const header = (lines[0] ?? '').split(/\s+/);
  const rows: Record<string, string>[] = [];
  for (const l of lines.slice(1)) {
    if (l.trim() === '') break;
    const cells = l.split(/\s{2,}/);
    rows.push(Object.fromEntries(header.map((h, i) => [h, cells[i] ?? ''])));
  }
  return rows;
}

/** After Ctrl-C: the cluster printed `all nodes stopped`, and no node process and no port is left. */
async function assertAllStopped(c: Running, pids: Iterable<number>): Promise<void> {
  const { code, signal } = await c.exited;
  // npm re-raises the SIGINT it got from the terminal once the script has exited.
  assert.ok(code === 0 || signal === 'SIGINT', `npm run cluster ended with ${code ?? signal}:\n${c.output}`);
  assert.match(c.output, /^all nodes stopped$/m, c.output);
  assert.doesNotMatch(c.output, /not everything stopped/);
  for (const pid of pids) assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' }, `node process ${pid} outlived Ctrl-C`);
  for (const port of PORTS) assert.deepEqual(await probePort(port), { free: true }, `port ${port} is still held after Ctrl-C`);
}

test('the README tour, as written, against npm run cluster', { timeout: 900_000 }, async () => {
  for (const port of PORTS) assert.deepEqual(await probePort(port), { free: true }, `port ${port} must be free for the README tour`);
  // A fresh copy of what a clone holds that the build and the cluster need; node_modules is the repository's own (no install).
  const copy = mkdtempSync(join(tmpdir(), 'quorumlog-tour-'));
  for (const f of ['package.json', 'package-lock.json', 'tsconfig.json', 'README.md', 'scripts', 'src', 'proto']) cpSync(join(ROOT, f), join(copy, f), { recursive: true });
  symlinkSync(realpathSync(join(ROOT, 'node_modules')), join(copy, 'node_modules'));
  const pids = new Set<number>();
  const running: Running[] = [];
  const start = (script: string): Running => {
    const r = new Running(copy, script);
    running.push(r);
    return r;
  };
  try {
    assert.ok(README.includes('npm ci && npm run cluster'), 'the README starts with npm ci && npm run cluster');
    const cluster = start('npm run cluster');
    // Generous: the build (tsc, ~15 s alone) and three node processes, on a machine shared with other test runs.
    await cluster.waitFor('Ctrl-C stops all nodes.', 300_000);
    const built = statSync(join(copy, 'dist', 'src', 'cli', 'quorumlog.js')).mtimeMs;
    writeFileSync(join(copy, 'dist', 'tour-marker'), 'a rebuild deletes this\n');
    assert.match(cluster.output, /^endpoints: 127\.0\.0\.1:2379,127\.0\.0\.1:2380,127\.0\.0\.1:2381$/m);
    assert.match(cluster.output, /^dashboard: http:\/\/127\.0\.0\.1:2579\/dashboard$/m);
    const bannerLeader = /^leader: (n[123])$/m.exec(cluster.output)?.[1];
    const cid = JSON.parse(readFileSync(join(copy, 'quorumlog-data', 'cluster.json'), 'utf8')).clusterId as string;
    const first = await statuses();
    assert.equal(first.get(bannerLeader ?? '')?.clusterId, cid, 'the banner names a node of this cluster');
    for (const s of first.values()) pids.add(s.pid);

    // 1. Write and read with etcd's own client.
    assert.equal(sh(copy, tour('etcdctl --endpoints $E put hello world')).stdout, 'OK\n');
    assert.equal(sh(copy, tour('etcdctl --endpoints $E get hello')).stdout, 'hello\nworld\n');
    assert.ok(README.includes('etcdctl --endpoints $E watch --prefix hel &'));
    const watch = start('etcdctl --endpoints $E watch --prefix hel');
    await sleep(1000); // the watch must be registered before the put it is to print; a late one would miss it and fail below
    assert.equal(sh(copy, tour('etcdctl --endpoints $E put help me')).stdout, 'OK\n');
    await watch.waitFor('PUT\nhelp\nme\n', 15_000);
    const endpointStatus = sh(copy, tour('etcdctl --endpoints $E endpoint status -w table'));
    assert.equal(endpointStatus.code, 0, endpointStatus.stderr);
    for (const e of ['127.0.0.1:2379', '127.0.0.1:2380', '127.0.0.1:2381']) assert.ok(endpointStatus.stdout.includes(e), endpointStatus.stdout);

    // 2. Find the leader and its process id.
    assert.ok(README.includes('$ $Q status --endpoints $E'));
    const st = sh(copy, '$Q status --endpoints $E');
    assert.equal(st.code, 0, st.stderr);
    const rows = statusRows(st.stdout);
    const leaderRow = rows.find((r) => r['role'] === 'leader');
    assert.ok(leaderRow !== undefined, st.stdout);
    const leaderId = leaderRow['node'] as string;
    const leaderPid = Number(leaderRow['pid']);
    assert.equal(first.get(leaderId)?.pid, leaderPid);
    const term = Number(leaderRow['term']);

    // 3. Kill the leader; a put sent at once must succeed, and be read back.
    assert.ok(README.includes('kill -9 14604                                   # the leader\'s pid from the status above'));
    const killed = sh(copy, `kill -9 ${leaderPid}`);
    assert.equal(killed.code, 0, killed.stderr);
    const again = sh(copy, tour('etcdctl --endpoints $E put hello again          # sent at once: held until a new leader is elected (0.5-1.5 s), then OK'));
    assert.equal(again.code, 0, `the put right after kill -9 failed: ${again.stderr}`);
    assert.equal(again.stdout, 'OK\n');
    assert.equal(sh(copy, 'etcdctl --endpoints $E get hello').stdout, 'hello\nagain\n');
    const after = sh(copy, tour('$Q status --endpoints $E                        # n1 or n2 leads, in a higher term; n3: unreachable: connection refused'));
    const afterRows = statusRows(after.stdout);
    const newLeader = afterRows.find((r) => r['role'] === 'leader');
    assert.ok(newLeader !== undefined && newLeader['node'] !== leaderId && Number(newLeader['term']) > term, after.stdout);
    const deadRow = afterRows.find((r) => r['endpoint'] === `127.0.0.1:${2379 + Number(leaderId.slice(1)) - 1}`);
    // An unreachable node's row: no id or pid, and the reason in the role column (aligned, short).
    assert.equal(deadRow?.['node'], '-', after.stdout);
    assert.match(deadRow?.['role'] ?? '', /^unreachable: connection refused$/, after.stdout);
    await cluster.waitFor(`node ${leaderId} exited (SIGKILL)`, 10_000);
    assert.ok(cluster.output.includes(`to restart it through this cluster: ${process.execPath} ${join(copy, 'dist', 'src', 'cli', 'quorumlog.js')} cluster restart ${leaderId} --data-dir ${join(copy, 'quorumlog-data')}`), cluster.output);
    // ... and restart it through the cluster, as the README says (with the killed leader's id and client port).
    tour('$Q cluster restart n3                           # n3 comes back from its disk and catches up');
    const logFile = join(copy, 'quorumlog-data', leaderId, 'node.log');
    const startsBefore = readFileSync(logFile, 'utf8').split('\n').filter((l) => l.includes('"msg":"node started"')).length;
    const restarted = sh(copy, `$Q cluster restart ${leaderId}`);
    assert.equal(restarted.code, 0, restarted.stderr);
    tour('etcdctl --endpoints 127.0.0.1:2381 get hello --consistency=s   # n3\'s own copy: hello again');
    const own = sh(copy, `etcdctl --endpoints 127.0.0.1:${2379 + Number(leaderId.slice(1)) - 1} get hello --consistency=s`);
    assert.equal(own.stdout, 'hello\nagain\n', own.stderr);
    const startsAfter = readFileSync(logFile, 'utf8').split('\n').filter((l) => l.includes('"msg":"node started"')).length;
    assert.equal(startsAfter, startsBefore + 1, 'the restarted node logs to its node.log');
    const back = (await statuses()).get(leaderId);
    assert.ok(back !== undefined && back.supervisor?.pid !== undefined && back.supervisor.pid === JSON.parse(readFileSync(join(copy, 'quorumlog-data', 'supervisor.json'), 'utf8')).pid);
    pids.add(back.pid);

    // 4. The dashboard: kill the leader from a page, watch the election, restart it from the page.
    const page = await fetch('http://127.0.0.1:2579/dashboard');
    assert.equal(page.status, 200);
    const now = await statuses();
    const leader2 = [...now.values()].find((s) => s.role === 'leader');
    assert.ok(leader2 !== undefined);
    const viewer = [...now.values()].find((s) => s.id !== leader2.id) as NodeStatus;
    const viewerPort = 2579 + Number(viewer.id.slice(1)) - 1;
    const kill = await fetch(`http://127.0.0.1:${viewerPort}/dashboard/control/kill?node=${leader2.id}`, { method: 'POST' });
    assert.equal(kill.status, 200, await kill.text());
    await until('a new leader after the dashboard\'s kill', async () => [...(await statuses()).values()].find((s) => s.role === 'leader' && s.term > leader2.term) ?? null, 30_000);
    const restart = await fetch(`http://127.0.0.1:${viewerPort}/dashboard/control/restart?node=${leader2.id}`, { method: 'POST' });
    assert.equal(restart.status, 200, await restart.text());
    const back2 = await until(`${leader2.id} back after the dashboard's restart`, async () => {
      const s = (await statuses()).get(leader2.id);
      return s !== undefined && s.pid !== leader2.pid && s.leader !== null ? s : null;
    }, 60_000);
    pids.add(back2.pid);

    // A second `npm run cluster` refuses, naming the port and the first cluster, and rebuilds nothing; the first still serves.
    const supervisorPid = JSON.parse(readFileSync(join(copy, 'quorumlog-data', 'supervisor.json'), 'utf8')).pid as number;
    for (const [script, names] of [
      ['npm run cluster', `the cluster in ${join(copy, 'quorumlog-data')} is already running (cluster ${cid}, supervisor pid ${supervisorPid}`],
      ['npm run cluster -- --data-dir other-data', `port 2379 (n1 client) on 127.0.0.1 is in use (EADDRINUSE)`],
    ] as const) {
      const second = start(script);
      const { code } = await second.exited;
      assert.notEqual(code, 0, second.output);
      assert.ok(second.output.includes(names), second.output);
      assert.ok(second.output.includes(`supervisor pid ${supervisorPid}`), second.output);
      assert.ok(second.output.includes('dist/ was not rebuilt'), second.output);
      assert.ok(existsSync(join(copy, 'dist', 'tour-marker')), `${script} rebuilt dist/`);
      assert.equal(statSync(join(copy, 'dist', 'src', 'cli', 'quorumlog.js')).mtimeMs, built);
    }
    assert.equal(existsSync(join(copy, 'other-data')), false);
    assert.equal(sh(copy, 'etcdctl --endpoints $E get hello').stdout, 'hello\nagain\n');
    assert.match(sh(copy, '$Q status --endpoints $E').stdout, /leader/);

    // 5. Ctrl-C: no process and no port left. Then pull mode, on its own data directory.
    watch.ctrlC();
    cluster.ctrlC();
    await assertAllStopped(cluster, pids);
    tour('npm run cluster -- --mode pull --data-dir quorumlog-pull');
    const pull = start('npm run cluster -- --mode pull --data-dir quorumlog-pull');
    await pull.waitFor('Ctrl-C stops all nodes.', 300_000);
    const pullStatus = sh(copy, '$Q status --endpoints $E');
    assert.equal(pullStatus.code, 0, pullStatus.stderr);
    const pullRows = statusRows(pullStatus.stdout);
    assert.deepEqual(pullRows.map((r) => r['mode']), ['pull', 'pull', 'pull'], pullStatus.stdout);
    for (const r of pullRows) pids.add(Number(r['pid']));
    assert.equal(sh(copy, 'etcdctl --endpoints $E put hello pull').stdout, 'OK\n');
    assert.equal(sh(copy, 'etcdctl --endpoints $E get hello').stdout, 'hello\npull\n');

    // 6. The other services.
    const lease = sh(copy, [
      tour('L=$(etcdctl --endpoints $E lease grant 10 | awk \'{print $2}\')   # etcd leases: keys that vanish when their owner does'),
      tour('etcdctl --endpoints $E put services/api 10.0.0.7:8080 --lease=$L'),
      'etcdctl --endpoints $E get services/api',
    ].join('\n'));
    assert.equal(lease.stdout, 'OK\nservices/api\n10.0.0.7:8080\n', lease.stderr);
    for (const line of [
      '$Q queue declare orders --delivery-limit 3 --dead-letter-queue orders.dead   # a quorum queue (RabbitMQ\'s use)',
      '$Q queue publish orders first second          # confirmed once committed',
    ]) {
      const r = sh(copy, tour(line));
      assert.equal(r.code, 0, `${line}: ${r.stdout}${r.stderr}`);
    }
    const consumed = sh(copy, tour('$Q queue consume orders --count 2             # deliveries with tags and counts, acked'));
    assert.equal(consumed.code, 0, consumed.stderr);
    assert.match(consumed.stdout, /first[\s\S]*second/);
    for (const line of [
      '$Q metadata register-broker --id 1 --host b1 --port 9092   # the metadata log (Kafka KRaft\'s use)',
      '$Q metadata create-topic orders --partitions 3',
    ]) {
      const r = sh(copy, tour(line));
      assert.equal(r.code, 0, `${line}: ${r.stdout}${r.stderr}`);
    }
    tour('$Q metadata follow --from 1                   # the committed records, then each new one (Ctrl-C ends it)');
    const follow = start('$Q metadata follow --from 1');
    await follow.waitFor('orders', 20_000);
    follow.ctrlC();
    await follow.exited;
    const members = sh(copy, tour('$Q member list --endpoints $E                 # as etcdctl member list; add/remove/promote: docs/MEMBERSHIP.md'));
    assert.equal(members.code, 0, members.stderr);
    for (const id of ['n1', 'n2', 'n3']) assert.match(members.stdout, new RegExp(`\\b${id}\\b`));

    pull.ctrlC();
    await assertAllStopped(pull, pids);
  } finally {
    for (const r of running) if (r.running) r.ctrlC();
    await Promise.all(running.map((r) => Promise.race([r.exited, sleep(20_000)])));
    for (const r of running) if (r.running) process.kill(-(r.child.pid as number), 'SIGKILL');
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone, as it should be
      }
    }
    if (process.env['KEEP_CLUSTER_DIRS'] === undefined) rmSync(copy, { recursive: true, force: true });
  }
});
