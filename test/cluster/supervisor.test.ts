// `quorumlog cluster` as the supervisor of its nodes (issue 17, items 2 and
// 4): a second cluster on the same ports or the same data directory is
// refused, naming the port and the first cluster; the banner names the
// first cluster's own leader; a node killed with kill -9 comes back through
// `quorumlog cluster restart`, and `quorumlog start` on one of its configs
// is handed to the supervisor (or refused while the node runs); Ctrl-C
// leaves no process, no port and no supervisor file; a node that cannot
// start makes the cluster exit 1 with its other nodes stopped; and each of a
// node's four listeners says "address in use" when its port is taken; an
// AMQP client reaches the queues on the URLs the banner prints.

import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import amqp from 'amqplib';
import { CLI_PATH } from '../../src/cli/cluster.js';
import { checkClusterCanStart, clusterPorts, probePort } from '../../scripts/cluster-ports.mjs';
import type { NodeStatus } from '../../src/server/metrics.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A base port with the 9 ports of a 3-node cluster (and the 9 of base+1000) free, below the ephemeral range (as test/cluster/harness.ts does). */
async function freeBase(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 10_000 + Math.floor(Math.random() * 20_000);
    const ports = clusterPorts({ nodes: 3, observers: 0, basePort: base, controlPort: 0 }).map((p) => p.port);
    if ((await Promise.all(ports.map((p) => probePort(p)))).every((r) => r.free)) return base;
  }
  throw new Error('no free port range');
}

/** A `quorumlog cluster` child process and everything it printed. */
class ClusterProcess {
  output = '';
  readonly exited: Promise<number | null>;
  constructor(readonly child: ChildProcess) {
    child.stdout?.on('data', (d: Buffer) => { this.output += d.toString(); });
    child.stderr?.on('data', (d: Buffer) => { this.output += d.toString(); });
    this.exited = new Promise((r) => child.once('exit', (code) => r(code)));
  }

  /** Stops it as Ctrl-C would if it still runs (it stops its nodes), then kills it. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGINT');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 20_000);
    await this.exited;
    clearTimeout(t);
  }

  static start(args: string[]): ClusterProcess {
    return new ClusterProcess(spawn(process.execPath, [CLI_PATH, 'cluster', ...args]));
  }

  async waitFor(text: string | RegExp, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const seen = (): boolean => (typeof text === 'string' ? this.output.includes(text) : text.test(this.output));
    while (!seen()) {
      if (Date.now() > deadline) throw new Error(`did not print ${String(text)} within ${timeoutMs} ms:\n${this.output}`);
      await sleep(100);
    }
  }
}

async function status(metricsPort: number): Promise<NodeStatus | null> {
  try {
    const res = await fetch(`http://127.0.0.1:${metricsPort}/status`, { signal: AbortSignal.timeout(1000) });
    return res.ok ? await res.json() as NodeStatus : null;
  } catch {
    return null;
  }
}

function cli(...args: string[]): { code: number | null; out: string } {
  const r = spawnSync(process.execPath, [CLI_PATH, ...args], { encoding: 'utf8', timeout: 90_000 });
  return { code: r.status, out: r.stdout + r.stderr };
}

const startedLines = (dir: string, id: string): number =>
  readFileSync(join(dir, id, 'node.log'), 'utf8').split('\n').filter((l) => l.includes('"msg":"node started"')).length;

test('a second cluster is refused, a node comes back through the supervisor, and Ctrl-C leaves nothing behind', { timeout: 240_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'quorumlog-sup-'));
  const other = mkdtempSync(join(tmpdir(), 'quorumlog-sup2-'));
  const base = await freeBase();
  const first = ClusterProcess.start(['--data-dir', dir, '--base-port', String(base)]);
  const pids = new Set<number>();
  try {
    // Generous: three node processes start on a machine shared with other test runs.
    await first.waitFor('Ctrl-C stops all nodes.', 60_000);
    const sup = JSON.parse(readFileSync(join(dir, 'supervisor.json'), 'utf8')) as { pid: number; clusterId: string; controlUrl: string };
    assert.equal(sup.pid, first.child.pid);
    const leader = /^leader: (n\d)$/m.exec(first.output)?.[1];
    const statuses = await Promise.all([0, 1, 2].map((i) => status(base + 200 + i)));
    const named = statuses.find((s) => s?.id === leader);
    assert.equal(named?.clusterId, sup.clusterId, 'the banner names a node of its own cluster');
    for (const s of statuses) if (s !== null) pids.add(s.pid);
    for (const s of statuses) assert.deepEqual(s?.supervisor, { pid: sup.pid, dataDir: dir });

    // The same ports, another data directory: refused, naming the port and the first cluster.
    const second = ClusterProcess.start(['--data-dir', other, '--base-port', String(base)]);
    assert.equal(await second.exited, 1, second.output);
    assert.match(second.output, new RegExp(`port ${base} \\(n1 client\\) on 127\\.0\\.0\\.1 is in use \\(EADDRINUSE\\)`));
    assert.ok(second.output.includes(`supervisor pid ${sup.pid} and data dir ${dir}`), second.output);
    assert.doesNotMatch(second.output, /^leader:/m);
    assert.equal(existsSync(join(other, 'cluster.json')), false, 'a refused cluster writes nothing');
    // The same data directory: refused as already running.
    const third = ClusterProcess.start(['--data-dir', dir, '--base-port', String(base)]);
    assert.equal(await third.exited, 1, third.output);
    assert.ok(third.output.includes(`the cluster in ${dir} is already running (cluster ${sup.clusterId}, supervisor pid ${sup.pid}`), third.output);
    // The first still serves, with the same leader.
    assert.equal(cli('put', 'sup/a', 'one', '--endpoints', `127.0.0.1:${base}`).code, 0);
    // RabbitMQ's clients reach its queues on the AMQP URLs the banner prints (base + 300.. off the default base).
    const urls = /^amqp \(RabbitMQ's clients, user guest, password guest\): (.+)$/m.exec(first.output)?.[1]?.split(' ');
    assert.deepEqual(urls, [0, 1, 2].map((i) => `amqp://127.0.0.1:${base + 300 + i}`));
    const conn = await amqp.connect(`amqp://guest:guest@127.0.0.1:${base + 301}`);
    try {
      const ch = await conn.createConfirmChannel();
      await ch.assertQueue('sup', { durable: true });
      ch.sendToQueue('sup', Buffer.from('through the supervisor\'s cluster'));
      await ch.waitForConfirms();
      const m = await ch.get('sup', { noAck: true });
      assert.equal(m === false ? null : m.content.toString(), 'through the supervisor\'s cluster');
    } finally {
      await conn.close();
    }

    // kill -9 of a node: reported with the restart command, which brings it back through the supervisor.
    const victim = statuses.find((s) => s?.id !== leader) as NodeStatus;
    const before = startedLines(dir, victim.id);
    process.kill(victim.pid, 'SIGKILL');
    const restart = `${process.execPath} ${CLI_PATH} cluster restart ${victim.id} --data-dir ${dir}`;
    await first.waitFor(`node ${victim.id} exited (SIGKILL); see ${join(dir, victim.id, 'node.log')}. It is not restarted; to restart it through this cluster: ${restart}`, 10_000);
    const r = cli('cluster', 'restart', victim.id, '--data-dir', dir);
    assert.equal(r.code, 0, r.out);
    const slot = Number(victim.id.slice(1)) - 1;
    const back = await status(base + 200 + slot);
    if (back !== null) pids.add(back.pid);
    assert.ok(back !== null && back.pid !== victim.pid && back.clusterId === sup.clusterId, JSON.stringify(back));
    assert.ok(r.out.includes(`as pid ${back.pid}`), r.out);
    assert.equal(startedLines(dir, victim.id), before + 1, 'the restarted node logs to its node.log');
    const info = await (await fetch(`${sup.controlUrl}/info`)).json() as { nodes: Record<string, { pid: number | null }> };
    assert.equal(info.nodes[victim.id]?.pid, back.pid, 'the supervisor owns the restarted process');

    // quorumlog start on the config of a running node: refused, with the restart command.
    const dup = cli('start', '--config', join(dir, victim.id, 'config.json'));
    assert.equal(dup.code, 1, dup.out);
    assert.ok(dup.out.includes(`already running under this cluster (pid ${back.pid}); to restart it: ${restart}`), dup.out);
    // With other flags beside --config (which the supervisor could not pass on): refused, with the restart command.
    const flagged = cli('start', '--config', join(dir, victim.id, 'config.json'), '--log-level', 'debug');
    assert.equal(flagged.code, 2, flagged.out);
    assert.ok(flagged.out.includes(`(--log-level would be lost): restart it through the cluster with ${restart}`), flagged.out);
    // ... and on the config of a node killed from the dashboard's control: handed to the supervisor.
    const killed = await fetch(`${sup.controlUrl}/kill?node=${victim.id}`, { method: 'POST' });
    assert.equal(killed.status, 200);
    const handed = cli('start', '--config', join(dir, victim.id, 'config.json'));
    assert.equal(handed.code, 0, handed.out);
    assert.match(handed.out, /handed to it, it runs as pid (\d+)/);
    const adoptedPid = Number(/runs as pid (\d+)/.exec(handed.out)?.[1]);
    pids.add(adoptedPid);
    assert.equal((await status(base + 200 + slot))?.pid, adoptedPid);
    // The cluster took the write path back: a write through the adopted node is read back.
    assert.equal(cli('put', 'sup/b', 'two', '--endpoints', `127.0.0.1:${base + slot}`).code, 0);
    assert.equal(cli('get', 'sup/b', '--endpoints', `127.0.0.1:${base}`).out, 'sup/b\ntwo\n');

    // Ctrl-C: every node it started or adopted is gone, every port is free, the supervisor file removed.
    first.child.kill('SIGINT');
    assert.equal(await first.exited, 0, first.output);
    assert.match(first.output, /^all nodes stopped$/m);
    for (const pid of [...statuses.map((s) => (s as NodeStatus).pid), back.pid, adoptedPid]) {
      assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' }, `process ${pid} outlived the cluster`);
    }
    for (const p of clusterPorts({ nodes: 3, observers: 0, basePort: base, controlPort: 0 })) assert.deepEqual(await probePort(p.port), { free: true }, `port ${p.port}`);
    assert.equal(existsSync(join(dir, 'supervisor.json')), false);
  } finally {
    await first.stop();
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone, as it should be
      }
    }
    rmSync(dir, { recursive: true, force: true });
    rmSync(other, { recursive: true, force: true });
  }
});

test('a node that cannot start makes the cluster exit 1, naming it, with its other nodes stopped', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'quorumlog-sup-'));
  const base = await freeBase();
  let c: ClusterProcess | null = null;
  try {
    // n2's data directory belongs to another cluster: n2 refuses to start (after the port check, as a late failure would).
    mkdirSync(join(dir, 'n2', 'data'), { recursive: true });
    writeFileSync(join(dir, 'n2', 'data', 'identity.json'), JSON.stringify({ clusterId: 'someone-else', nodeId: 'n2', dirId: 7 }));
    c = ClusterProcess.start(['--data-dir', dir, '--base-port', String(base)]);
    assert.equal(await c.exited, 1, c.output);
    assert.match(c.output, /node n2 could not start \(code 2\): config: dataDir: .* belongs to node "n2" of cluster "someone-else"/);
    assert.match(c.output, /the cluster did not start: stopping its other nodes/);
    assert.doesNotMatch(c.output, /^leader:/m);
    assert.match(c.output, /^all nodes stopped$/m);
    for (const p of clusterPorts({ nodes: 3, observers: 0, basePort: base, controlPort: 0 })) assert.deepEqual(await probePort(p.port), { free: true }, `port ${p.port}`);
    assert.equal(spawnSync('pgrep', ['-f', join(dir, 'n1', 'config.json')], { encoding: 'utf8' }).stdout.trim(), '', 'n1 outlived the cluster');
  } finally {
    await c?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('each listener of a node says "address in use", naming host:port, when its port is taken', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'quorumlog-listen-'));
  const base = await freeBase();
  const config = join(dir, 'n1.json');
  writeFileSync(config, JSON.stringify({
    clusterId: 'listen', nodeId: 'n1', dataDir: join(dir, 'data'),
    members: [{ id: 'n1', peer: `127.0.0.1:${base + 100}`, client: `127.0.0.1:${base}`, metrics: `127.0.0.1:${base + 200}`, amqp: `127.0.0.1:${base + 300}` }],
  }));
  try {
    for (const [kind, port] of [['peer', base + 100], ['client', base], ['metrics', base + 200], ['amqp', base + 300]] as const) {
      const squatter: Server = createServer();
      await new Promise<void>((r) => squatter.listen(port, '127.0.0.1', () => r()));
      try {
        const r = spawnSync(process.execPath, [CLI_PATH, 'start', '--config', config], { encoding: 'utf8', timeout: 60_000 });
        assert.equal(r.status, 1, r.stderr);
        assert.equal(r.stderr.trim().split('\n').at(-1),
          `cannot start node n1: cannot listen on 127.0.0.1:${port} (${kind} port): address in use (EADDRINUSE): another process listens on it (another quorumlog node or cluster?)`);
      } finally {
        await new Promise<void>((r) => squatter.close(() => r()));
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a port held by something that is not quorumlog is named as such, with a free base port to use instead', async () => {
  const base = await freeBase();
  const squatter: Server = createServer();
  await new Promise<void>((r) => squatter.listen(base + 101, '127.0.0.1', () => r()));
  try {
    const lines = await checkClusterCanStart({ nodes: 3, observers: 0, basePort: base, controlPort: 0, dataDir: join(tmpdir(), 'quorumlog-no-such-dir') });
    assert.ok(lines !== null);
    assert.equal(lines[0], `cannot start the cluster: port ${base + 101} (n2 peer) on 127.0.0.1 is in use (EADDRINUSE).`);
    assert.equal(lines[1], `It is probably held by something else, not a quorumlog node (\`ss -ltnp 'sport = :${base + 101}'\` shows what).`);
    assert.match(lines[2] ?? '', /or start this cluster on other ports with --base-port \d+ and its own --data-dir\.$/);
    const suggested = Number(/--base-port (\d+)/.exec(lines[2] ?? '')?.[1]);
    assert.equal(await checkClusterCanStart({ nodes: 3, observers: 0, basePort: suggested, controlPort: 0, dataDir: join(tmpdir(), 'quorumlog-no-such-dir') }), null,
      'the suggested base port is free');
  } finally {
    await new Promise<void>((r) => squatter.close(() => r()));
  }
  assert.equal(await checkClusterCanStart({ nodes: 3, observers: 0, basePort: base, controlPort: 0, dataDir: join(tmpdir(), 'quorumlog-no-such-dir') }), null);
});
