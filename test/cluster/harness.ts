// A cluster of real quorumlog processes on 127.0.0.1 for tests: written
// with the same layout as `quorumlog cluster` (src/cli/cluster.ts), each node
// started as `quorumlog start --config ...`, and faults made with real
// signals: kill -9, SIGSTOP/SIGCONT, restart from the same data directory.
// Every process is killed when the cluster closes, even after a failure.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, openSync, readFileSync, rmSync, closeSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fetchStatus, prepareCluster, startCommand, type ClusterLayout } from '../../src/cli/cluster.js';
import { formatAddress, type MemberConfig } from '../../src/server/config.js';
import type { NodeStatus } from '../../src/server/metrics.js';

export interface TestClusterOptions {
  readonly nodes: number;
  readonly mode: 'push' | 'pull';
  readonly observers?: number;
  /** Extra node settings (e.g. snapshotEveryEntries). */
  readonly extra?: Record<string, unknown>;
  /** Start the observers too (default: only voters start). */
  readonly startObservers?: boolean;
  /** Port slots kept free for nodes that join at run time (join()). */
  readonly spares?: number;
  /** Lay the cluster out but start nothing (default: start). */
  readonly start?: boolean;
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

/** Finds a base port whose client, peer, metrics and AMQP ranges (base, +100, +200, +300) are free. */
async function freeBasePort(count: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    // Below the ephemeral range (32768+ here), so that outgoing connections cannot take a port a node will listen on after a restart.
    const base = 10_000 + Math.floor(Math.random() * 22_000);
    const ports = [];
    for (let i = 0; i < count; i++) ports.push(base + i, base + 100 + i, base + 200 + i, base + 300 + i);
    const ok = await Promise.all(ports.map((p) => portFree(p)));
    if (ok.every((x) => x)) return base;
  }
  throw new Error('no free port range found');
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One node process of a {@link TestCluster}. */
export class TestNode {
  process: ChildProcess | null = null;
  paused = false;
  constructor(readonly cluster: TestCluster, readonly member: MemberConfig) {}

  get id(): string {
    return this.member.id;
  }

  /** The etcd API endpoint, host:port. */
  get endpoint(): string {
    return formatAddress(this.member.client);
  }

  /** The AMQP 0-9-1 URL (guest/guest while auth is off). */
  get amqpUrl(): string {
    if (this.member.amqp === undefined) throw new Error(`node ${this.id} has no AMQP port`);
    return `amqp://guest:guest@${formatAddress(this.member.amqp)}`;
  }

  get running(): boolean {
    return this.process !== null;
  }

  /** Starts the process (again) from its config and data directory. */
  start(): void {
    if (this.process !== null) throw new Error(`${this.id} is already running`);
    const [exe, ...args] = startCommand(this.cluster.layout, this.id);
    const fd = openSync(join(this.cluster.dir, this.id, 'node.log'), 'a');
    const child = spawn(exe as string, args, { stdio: ['ignore', fd, fd] });
    closeSync(fd);
    live.add(child);
    this.process = child;
    this.paused = false;
    child.once('exit', () => {
      live.delete(child);
      if (this.process === child) this.process = null;
    });
  }

  /** kill -9: no clean shutdown, unsynced data is the OS's to keep or lose. */
  async kill9(): Promise<void> {
    const p = this.process;
    if (p === null) return;
    if (this.paused) p.kill('SIGCONT');
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGKILL');
    await exited;
  }

  /** SIGTERM and wait for a clean exit. */
  async stop(): Promise<void> {
    const p = this.process;
    if (p === null) return;
    if (this.paused) p.kill('SIGCONT');
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGTERM');
    const t = setTimeout(() => p.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
  }

  pause(): void {
    this.process?.kill('SIGSTOP');
    this.paused = true;
  }

  resume(): void {
    this.process?.kill('SIGCONT');
    this.paused = false;
  }

  /** The node's status from its metrics port, or null. */
  status(): Promise<NodeStatus | null> {
    return this.paused || this.process === null ? Promise.resolve(null) : fetchStatus(this.member, 500);
  }
}

/** A cluster of node processes in a temporary directory. */
export class TestCluster {
  readonly nodes: TestNode[];
  private constructor(readonly dir: string, readonly layout: ClusterLayout, readonly options: TestClusterOptions) {
    this.nodes = layout.members.map((m) => new TestNode(this, m));
  }

  /** Lays the cluster out and starts its voters (and observers if asked). */
  static async start(o: TestClusterOptions): Promise<TestCluster> {
    const dir = mkdtempSync(join(tmpdir(), `quorumlog-${o.mode}-`));
    const total = o.nodes + (o.observers ?? 0);
    const layout = prepareCluster({
      nodes: o.nodes, mode: o.mode, dataDir: dir, basePort: await freeBasePort(total + (o.spares ?? 0)),
      ...(o.observers !== undefined ? { observers: o.observers } : {}),
      extra: { logLevel: 'info', ...o.extra },
    });
    const c = new TestCluster(dir, layout, o);
    if (o.start !== false) for (const n of c.nodes) if (n.member.role === 'voter' || o.startObservers === true) n.start();
    return c;
  }

  /**
   * Lays out a node that joins at run time (docs/MEMBERSHIP.md): the next
   * spare port slot, and a config that lists the members as the first
   * node's config does plus itself as an observer. Not started.
   */
  join(id: string): TestNode {
    const first = this.nodes[0] as TestNode;
    const base = first.member.client.port;
    const k = this.nodes.length;
    const member: MemberConfig = {
      id, role: 'observer',
      client: { host: '127.0.0.1', port: base + k }, peer: { host: '127.0.0.1', port: base + 100 + k }, metrics: { host: '127.0.0.1', port: base + 200 + k },
    };
    const cfg = JSON.parse(readFileSync(this.layout.configPath(first.id), 'utf8')) as Record<string, unknown> & { members: unknown[] };
    mkdirSync(join(this.dir, id), { recursive: true });
    writeFileSync(this.layout.configPath(id), JSON.stringify({
      ...cfg, nodeId: id, dataDir: join(this.dir, id, 'data'),
      members: [...cfg.members, { id, role: 'observer', peer: formatAddress(member.peer), client: formatAddress(member.client), metrics: formatAddress(member.metrics) }],
    }, null, 2) + '\n');
    const n = new TestNode(this, member);
    this.nodes.push(n);
    return n;
  }

  node(id: string): TestNode {
    const n = this.nodes.find((x) => x.id === id);
    if (n === undefined) throw new Error(`no node ${id}`);
    return n;
  }

  get endpoints(): string[] {
    return this.nodes.filter((n) => n.member.role === 'voter').map((n) => n.endpoint);
  }

  /**
   * Waits until exactly one running node says it leads (and the others that answer agree, members removed from the
   * cluster aside), and every running node answers (so serves its client port); returns the leader.
   */
  async waitForLeader(timeoutMs = 20_000, exclude: readonly string[] = []): Promise<TestNode> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const statuses = await Promise.all(this.nodes.map(async (n) => ({ n, s: await n.status() })));
      // Every running node serves first: a node takes part in elections before its client port opens (its protocol
      // worker starts alongside), and /status answers only once it is open; tests use any node's endpoint next.
      if (statuses.some((x) => x.s === null && x.n.running && !x.n.paused)) {
        await sleep(50);
        continue;
      }
      const leaders = statuses.filter((x) => x.s?.role === 'leader' && !exclude.includes(x.n.id));
      if (leaders.length === 1) {
        const l = leaders[0] as { n: TestNode; s: NodeStatus };
        const agree = statuses.filter((x) => x.s !== null && x.n.member.role === 'voter' && x.s.removed !== true).every((x) => x.s?.leader === l.n.id || x.s?.term !== l.s.term);
        if (agree) return l.n;
      }
      await sleep(50);
    }
    throw new Error(`no leader within ${timeoutMs} ms; logs in ${this.dir}`);
  }

  /** Waits until `pred` holds for a node's status. */
  async waitFor(n: TestNode, pred: (s: NodeStatus) => boolean, timeoutMs = 20_000, what = 'a condition'): Promise<NodeStatus> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const s = await n.status();
      if (s !== null && pred(s)) return s;
      await sleep(50);
    }
    throw new Error(`${n.id}: ${what} did not happen within ${timeoutMs} ms; logs in ${this.dir}`);
  }

  /** The last `lines` lines of each node's log: what a failed test prints, since CI removes the directory. */
  logTails(lines = 20): string {
    return this.nodes.map((n) => {
      let text = '';
      try {
        text = readFileSync(join(this.dir, n.id, 'node.log'), 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
      return `--- ${n.id} (last ${lines} lines of node.log) ---\n${text.trimEnd().split('\n').slice(-lines).join('\n')}`;
    }).join('\n');
  }

  /** Kills every process and removes the directory (kept when KEEP_CLUSTER_DIRS is set). */
  async close(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.kill9()));
    if (process.env['KEEP_CLUSTER_DIRS'] === undefined) rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Polls `fn` until it returns non-null (a throw counts as null); throws after `timeoutMs`. */
export async function until<T>(what: string, fn: () => Promise<T | null>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => null);
    if (v !== null) return v;
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Retries `f` while it throws (the cluster elects: UNAVAILABLE, deadlines), every 100 ms, up to `ms`; then throws with the last error. */
export async function retry<T>(what: string, f: () => Promise<T>, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      return await f();
    } catch (e) {
      last = e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`${what} kept failing for ${ms} ms: ${(last as Error).message}`);
}
