// `quorumlog cluster`: the embedded default for trying quorumlog out. Starts
// N nodes as separate OS processes on 127.0.0.1, each with a config file
// written under the data directory, waits for a leader, and prints the etcd
// endpoints, the leader, the dashboard link and how to restart each node
// alone. A node that exits is reported, never restarted silently (a node
// killed from the dashboard stays down until restarted there).
// SIGINT/SIGTERM stop all nodes.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigFileError, formatAddress, type MemberConfig } from '../server/config.js';
import type { NodeStatus } from '../server/metrics.js';

export interface ClusterOptions {
  readonly nodes: number;
  readonly mode: 'push' | 'pull';
  readonly dataDir: string;
  readonly basePort: number;
  /** Non-voting members (o1, o2, ...) added after the voters. */
  readonly observers?: number;
  /** Extra settings for every node's config (tests use faster timeouts). */
  readonly extra?: Record<string, unknown>;
  /** The control server's port on 127.0.0.1 (the dashboard's buttons); 0 or absent: an ephemeral one. */
  readonly controlPort?: number;
}

/** The layout of a local cluster: ports and config paths, derived from the options. */
export interface ClusterLayout {
  readonly clusterId: string;
  readonly members: readonly MemberConfig[];
  readonly configPath: (id: string) => string;
}

/** The script that runs one node (this package's CLI). */
export const CLI_PATH = join(dirname(fileURLToPath(import.meta.url)), 'quorumlog.js');

/**
 * Writes (or checks) the cluster's files under dataDir: cluster.json with the
 * cluster id and shape, and one config per node. Client ports are
 * basePort + i, peer ports basePort + 100 + i, metrics basePort + 200 + i.
 */
export function prepareCluster(o: ClusterOptions): ClusterLayout {
  if (!Number.isInteger(o.observers ?? 0) || (o.observers ?? 0) < 0) throw new ConfigFileError('--observers', `${o.observers} must be a whole number`);
  if (!Number.isInteger(o.nodes) || o.nodes < 1 || o.nodes + (o.observers ?? 0) > 99) throw new ConfigFileError('--nodes', `${o.nodes} must be 1-99 (with the observers)`);
  if (!Number.isInteger(o.basePort) || o.basePort < 1 || o.basePort + 299 > 65535) {
    throw new ConfigFileError('--base-port', `${o.basePort} leaves no room for ${o.nodes} nodes (ports base .. base+299 are used)`);
  }
  const dir = resolve(o.dataDir);
  mkdirSync(dir, { recursive: true });
  const meta = join(dir, 'cluster.json');
  let clusterId = `local-${randomBytes(4).toString('hex')}`;
  if (existsSync(meta)) {
    const old = JSON.parse(readFileSync(meta, 'utf8')) as { clusterId: string; nodes: number; mode: string; basePort: number };
    if (old.nodes !== o.nodes) throw new ConfigFileError('--nodes', `the cluster in ${dir} has ${old.nodes} nodes, not ${o.nodes} (use another --data-dir)`);
    if (old.mode !== o.mode) throw new ConfigFileError('--mode', `the cluster in ${dir} was created in ${old.mode} mode, not ${o.mode} (use another --data-dir)`);
    if (old.basePort !== o.basePort) throw new ConfigFileError('--base-port', `the cluster in ${dir} uses base port ${old.basePort}, not ${o.basePort}`);
    clusterId = old.clusterId;
  } else {
    writeFileSync(meta, JSON.stringify({ clusterId, nodes: o.nodes, mode: o.mode, basePort: o.basePort }, null, 2) + '\n');
  }
  const members: MemberConfig[] = [];
  for (let i = 0; i < o.nodes; i++) {
    members.push({
      id: `n${i + 1}`, role: 'voter',
      client: { host: '127.0.0.1', port: o.basePort + i },
      peer: { host: '127.0.0.1', port: o.basePort + 100 + i },
      metrics: { host: '127.0.0.1', port: o.basePort + 200 + i },
    });
  }
  for (let i = 0; i < (o.observers ?? 0); i++) {
    const k = o.nodes + i;
    members.push({
      id: `o${i + 1}`, role: 'observer',
      client: { host: '127.0.0.1', port: o.basePort + k },
      peer: { host: '127.0.0.1', port: o.basePort + 100 + k },
      metrics: { host: '127.0.0.1', port: o.basePort + 200 + k },
    });
  }
  const configPath = (id: string): string => join(dir, id, 'config.json');
  for (const m of members) {
    mkdirSync(join(dir, m.id), { recursive: true });
    const cfg = {
      clusterId, nodeId: m.id, mode: o.mode, dataDir: join(dir, m.id, 'data'),
      members: members.map((x) => ({ id: x.id, role: x.role, peer: formatAddress(x.peer), client: formatAddress(x.client), metrics: formatAddress(x.metrics) })),
      ...o.extra,
    };
    writeFileSync(configPath(m.id), JSON.stringify(cfg, null, 2) + '\n');
  }
  return { clusterId, members, configPath };
}

/** The command that starts one node of the layout. */
export function startCommand(layout: ClusterLayout, id: string): string[] {
  return [process.execPath, CLI_PATH, 'start', '--config', layout.configPath(id)];
}

/** Asks a node's metrics port for its status; null when it does not answer. */
export async function fetchStatus(m: MemberConfig, timeoutMs = 1000): Promise<NodeStatus | null> {
  try {
    const res = await fetch(`http://${formatAddress(m.metrics)}/status`, { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) return null;
    return await res.json() as NodeStatus;
  } catch {
    return null;
  }
}

/** What the control server (the dashboard's buttons) knows of each node's process. */
export type ProcessState = 'running' | 'paused' | 'killed' | 'exited';

/**
 * Runs the cluster in the foreground until SIGINT or SIGTERM. A small
 * control server on 127.0.0.1 (o.controlPort, or an ephemeral port) lets the
 * nodes' dashboards kill, pause, resume, restart, partition and heal a node;
 * its URL reaches each node in QUORUMLOG_CLUSTER_CONTROL, and each node is
 * started with QUORUMLOG_FAULT_INJECTION=1 (for partition and heal).
 */
export async function runCluster(o: ClusterOptions, out: (line: string) => void): Promise<number> {
  const layout = prepareCluster(o);
  const dir = resolve(o.dataDir);
  const children = new Map<string, ChildProcess>();
  const states = new Map<string, ProcessState>();
  let stopping = false;
  let controlUrl = '';
  const startChild = (m: MemberConfig): void => {
    const logFile = join(dir, m.id, 'node.log');
    const fd = openSync(logFile, 'a');
    const [exe, ...args] = startCommand(layout, m.id);
    const child = spawn(exe as string, args, {
      stdio: ['ignore', fd, fd],
      env: { ...process.env, QUORUMLOG_CLUSTER_CONTROL: controlUrl, QUORUMLOG_FAULT_INJECTION: '1' },
    });
    closeSync(fd);
    children.set(m.id, child);
    states.set(m.id, 'running');
    child.on('exit', (code, signal) => {
      if (children.get(m.id) === child) children.delete(m.id);
      if (stopping) return;
      if (states.get(m.id) === 'killed') {
        out(`node ${m.id} killed (${signal ?? `code ${code}`}) from the dashboard; it stays down until restarted (dashboard button, or: ${startCommand(layout, m.id).join(' ')})`);
        return;
      }
      states.set(m.id, 'exited');
      out(`node ${m.id} exited (${signal ?? `code ${code}`}); see ${logFile}. It is not restarted; to restart it: ${startCommand(layout, m.id).join(' ')}`);
    });
  };
  const control = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const reply = (code: number, body: unknown): void => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body) + '\n');
    };
    if (url.pathname === '/state' && req.method === 'GET') return reply(200, Object.fromEntries(states));
    if (req.method !== 'POST') return reply(405, { error: 'POST only' });
    const id = url.searchParams.get('node') ?? '';
    const m = layout.members.find((x) => x.id === id);
    if (m === undefined) return reply(404, { error: `no node ${id}` });
    if (stopping) return reply(409, { error: 'the cluster is stopping' });
    controlAction(url.pathname.slice(1), m).then((r) => reply(r.code, r.body), (e: unknown) => reply(500, { error: String(e) }));
  });
  const killAndWait = async (id: string): Promise<void> => {
    const c = children.get(id);
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill('SIGKILL');
    await exited;
  };
  const controlAction = async (action: string, m: MemberConfig): Promise<{ code: number; body: unknown }> => {
    const c = children.get(m.id);
    const alive = c !== undefined && c.exitCode === null && c.signalCode === null;
    switch (action) {
      case 'kill':
        if (!alive) return { code: 409, body: { error: `${m.id} is not running` } };
        states.set(m.id, 'killed');
        await killAndWait(m.id);
        return { code: 200, body: { node: m.id, state: 'killed' } };
      case 'pause':
        if (!alive) return { code: 409, body: { error: `${m.id} is not running` } };
        c.kill('SIGSTOP');
        states.set(m.id, 'paused');
        out(`node ${m.id} paused (SIGSTOP) from the dashboard`);
        return { code: 200, body: { node: m.id, state: 'paused' } };
      case 'resume':
        if (!alive) return { code: 409, body: { error: `${m.id} is not running` } };
        c.kill('SIGCONT');
        states.set(m.id, 'running');
        out(`node ${m.id} resumed (SIGCONT) from the dashboard`);
        return { code: 200, body: { node: m.id, state: 'running' } };
      case 'restart':
        states.set(m.id, 'killed');
        await killAndWait(m.id);
        startChild(m);
        out(`node ${m.id} restarted from the dashboard (pid ${children.get(m.id)?.pid})`);
        return { code: 200, body: { node: m.id, state: 'running' } };
      case 'partition':
      case 'heal': {
        if (!alive || states.get(m.id) === 'paused') return { code: 409, body: { error: `${m.id} is not running` } };
        const r = await fetch(`http://${formatAddress(m.metrics)}/debug/${action}`, { method: 'POST', signal: AbortSignal.timeout(5000) });
        if (r.ok) out(`node ${m.id} ${action === 'partition' ? 'partitioned from its peers' : 'healed'} from the dashboard`);
        return { code: r.status, body: r.ok ? { node: m.id, partitioned: action === 'partition' } : { error: await r.text() } };
      }
      default:
        return { code: 404, body: { error: `unknown action ${action}` } };
    }
  };
  await new Promise<void>((res, rej) => {
    control.once('error', rej);
    control.listen(o.controlPort ?? 0, '127.0.0.1', () => res());
  });
  controlUrl = `http://127.0.0.1:${(control.address() as AddressInfo).port}`;
  for (const m of layout.members) startChild(m);
  const dashboard = `http://${formatAddress((layout.members[0] as MemberConfig).metrics)}/dashboard`;
  out(`dashboard: ${dashboard}`);
  const stopAll = async (): Promise<void> => {
    stopping = true;
    const waits = [...children.values()].map((c) => new Promise<void>((res) => {
      c.once('exit', () => res());
      c.kill('SIGCONT'); // a paused node must run to stop
      c.kill('SIGTERM');
    }));
    const timer = setTimeout(() => { for (const c of children.values()) c.kill('SIGKILL'); }, 10_000);
    await Promise.all(waits);
    clearTimeout(timer);
    control.closeAllConnections();
    await new Promise<void>((r) => control.close(() => r()));
  };
  const done = new Promise<number>((res) => {
    const onSignal = (sig: NodeJS.Signals): void => {
      out(`${sig}: stopping all nodes`);
      void stopAll().then(() => {
        out('all nodes stopped');
        res(0);
      });
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  });
  // Wait for a leader (bounded), then say how to reach the cluster.
  const deadline = Date.now() + 30_000;
  let leader: string | null = null;
  while (leader === null && Date.now() < deadline && !stopping) {
    await new Promise((r) => setTimeout(r, 100));
    for (const m of layout.members) {
      const s = await fetchStatus(m, 300);
      if (s !== null && s.leader !== null && s.role === 'leader') leader = s.id;
    }
  }
  if (leader === null) {
    out(`no leader was elected within 30 s; see the logs in ${dir}/n*/node.log`);
  } else {
    out(`endpoints: ${layout.members.map((m) => formatAddress(m.client)).join(',')}`);
    out(`leader: ${leader}`);
    out(`mode: ${o.mode}; data: ${dir}; metrics: ${layout.members.map((m) => `http://${formatAddress(m.metrics)}/metrics`).join(' ')}`);
    out(`dashboard (any node serves it; kill, pause, restart or partition a node there): ${dashboard}`);
    for (const m of layout.members) out(`restart ${m.id} alone: ${startCommand(layout, m.id).join(' ')}`);
    out('try: ETCDCTL_API=3 etcdctl --endpoints ' + layout.members.map((m) => formatAddress(m.client)).join(',') + ' put hello world');
    out('Ctrl-C stops all nodes.');
  }
  return done;
}
