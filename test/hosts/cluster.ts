// A quorumlog cluster whose nodes live in their own network namespaces
// (netns.ts): node i runs the real `quorumlog start --config ...` under
// `ip netns exec qlh-n<i>`, and its config advertises (and listens on) its
// own address, 10.77.0.i, with the same ports on every node as on separate
// hosts (client 2379, peer 2380, metrics 2381). The test process reaches them
// over the bridge. Every node process is killed when the cluster closes, and
// on process exit.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI_PATH, fetchStatus } from '../../src/cli/cluster.js';
import type { MemberConfig } from '../../src/server/config.js';
import type { NodeStatus } from '../../src/server/metrics.js';
import { nodeAddress, nsName } from './netns.js';

export const CLIENT_PORT = 2379;
export const PEER_PORT = 2380;
export const METRICS_PORT = 2381;

const live = new Set<ChildProcess>();
/** Kills every node process this module started (synchronous: safe in an 'exit' handler). */
export function killAllNodes(): void {
  for (const c of live) c.kill('SIGKILL');
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A node that exited without being told to (a crash): its id and how. */
export interface UnexpectedExit {
  readonly id: string;
  readonly how: string;
}

/** One node process in its namespace. */
export class HostNode {
  process: ChildProcess | null = null;
  /** Set while we kill it on purpose. */
  private expectingExit = false;

  constructor(readonly cluster: HostCluster, readonly index: number, readonly member: MemberConfig) {}

  get id(): string {
    return this.member.id;
  }

  get ns(): string {
    return nsName(this.index);
  }

  /** The etcd API endpoint, host:port. */
  get endpoint(): string {
    return `${this.member.client.host}:${this.member.client.port}`;
  }

  get running(): boolean {
    return this.process !== null;
  }

  get configPath(): string {
    return join(this.cluster.dir, this.id, 'config.json');
  }

  /** Where the node's process writes its log. */
  get logPath(): string {
    return join(this.cluster.dir, this.id, 'node.log');
  }

  /** Deletes its data directory, as a lost disk would (the node must not be running). */
  wipeData(): void {
    if (this.process !== null) throw new Error(`${this.id} is running`);
    const cfg = JSON.parse(readFileSync(this.configPath, 'utf8')) as { dataDir: string };
    rmSync(cfg.dataDir, { recursive: true, force: true });
  }

  /** Rewrites its own entry in its config file with `role`, as an operator re-adding it would (it must join as an observer). */
  setOwnRole(role: 'voter' | 'observer'): void {
    const cfg = JSON.parse(readFileSync(this.configPath, 'utf8')) as { members: { id: string; role: string }[] };
    for (const m of cfg.members) if (m.id === this.id) m.role = role;
    writeFileSync(this.configPath, JSON.stringify(cfg, null, 2) + '\n');
  }

  /** Starts the node (again) in its namespace, from its config and data directory. */
  start(): void {
    if (this.process !== null) throw new Error(`${this.id} is already running`);
    const fd = openSync(this.logPath, 'a');
    // `ip netns exec` execs the command, so the child's pid is the node's.
    const child = spawn('ip', ['netns', 'exec', this.ns, process.execPath, CLI_PATH, 'start', '--config', this.configPath], { stdio: ['ignore', fd, fd] });
    closeSync(fd);
    live.add(child);
    this.process = child;
    this.expectingExit = false;
    child.once('exit', (code, signal) => {
      live.delete(child);
      if (this.process === child) this.process = null;
      if (!this.expectingExit) this.cluster.unexpectedExits.push({ id: this.id, how: signal ?? `exit code ${code}` });
    });
  }

  /** kill -9, and wait until it is gone. */
  async kill9(): Promise<void> {
    const p = this.process;
    if (p === null) return;
    this.expectingExit = true;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGKILL');
    await exited;
  }

  /** Its status from its metrics port, or null when it does not answer. */
  status(): Promise<NodeStatus | null> {
    return this.process === null ? Promise.resolve(null) : fetchStatus(this.member, 700);
  }
}

/** Five (or n) voters in namespaces qlh-n1.., data under `dir`. */
export class HostCluster {
  readonly nodes: HostNode[];
  readonly unexpectedExits: UnexpectedExit[] = [];

  private constructor(readonly dir: string, readonly mode: 'push' | 'pull', members: MemberConfig[]) {
    this.nodes = members.map((m, i) => new HostNode(this, i, m));
  }

  /** Writes every node's config under `dir` (each advertising its own address) and starts the nodes. */
  static start(o: { n: number; mode: 'push' | 'pull'; dir: string; extra?: Record<string, unknown> }): HostCluster {
    const clusterId = `hosts-${o.mode}-${randomBytes(3).toString('hex')}`;
    const members: MemberConfig[] = [];
    for (let i = 0; i < o.n; i++) {
      const host = nodeAddress(i);
      members.push({ id: `n${i + 1}`, role: 'voter', client: { host, port: CLIENT_PORT }, peer: { host, port: PEER_PORT }, metrics: { host, port: METRICS_PORT } });
    }
    const c = new HostCluster(o.dir, o.mode, members);
    for (const node of c.nodes) {
      mkdirSync(join(o.dir, node.id), { recursive: true });
      const cfg = {
        clusterId, nodeId: node.id, mode: o.mode, dataDir: join(o.dir, node.id, 'data'),
        members: members.map((m) => ({ id: m.id, role: m.role, peer: `${m.peer.host}:${m.peer.port}`, client: `${m.client.host}:${m.client.port}`, metrics: `${m.metrics.host}:${m.metrics.port}` })),
        logLevel: 'info',
        ...o.extra,
      };
      writeFileSync(node.configPath, JSON.stringify(cfg, null, 2) + '\n');
    }
    for (const node of c.nodes) node.start();
    return c;
  }

  /** Every running node's status (null for those that do not answer). */
  statuses(): Promise<{ node: HostNode; status: NodeStatus | null }[]> {
    return Promise.all(this.nodes.map(async (node) => ({ node, status: await node.status() })));
  }

  /**
   * Waits until exactly one node says it leads and every node that answers
   * agrees (same leader, or an older term); returns it, or null after `timeoutMs`.
   */
  async waitForLeader(timeoutMs: number): Promise<HostNode | null> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const all = await this.statuses();
      const leaders = all.filter((x) => x.status?.role === 'leader');
      const l = leaders[0];
      if (leaders.length === 1 && l !== undefined && l.status !== null) {
        const term = l.status.term;
        if (all.every((x) => x.status === null || x.status.leader === l.node.id || x.status.term < term)) return l.node;
      }
      await sleep(50);
    }
    return null;
  }

  /** Kills every node. */
  async close(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.kill9()));
  }
}
