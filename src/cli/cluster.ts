// `quorumlog cluster`: the embedded default for trying quorumlog out. Starts
// N nodes as separate OS processes on 127.0.0.1, each with a config file
// written under the data directory, waits for a leader, and prints the etcd
// endpoints, the leader, and how to restart each node alone. A node that
// exits is reported, never restarted silently. SIGINT/SIGTERM stop all nodes.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
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
  if (!Number.isInteger(o.nodes) || o.nodes < 1 || o.nodes + (o.observers ?? 0) > 99) throw new ConfigFileError('--nodes', `${o.nodes} must be 1-99`);
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

/** Runs the cluster in the foreground until SIGINT or SIGTERM. */
export async function runCluster(o: ClusterOptions, out: (line: string) => void): Promise<number> {
  const layout = prepareCluster(o);
  const dir = resolve(o.dataDir);
  const children = new Map<string, ChildProcess>();
  let stopping = false;
  for (const m of layout.members) {
    const logFile = join(dir, m.id, 'node.log');
    const fd = openSync(logFile, 'a');
    const [exe, ...args] = startCommand(layout, m.id);
    const child = spawn(exe as string, args, { stdio: ['ignore', fd, fd] });
    children.set(m.id, child);
    child.on('exit', (code, signal) => {
      children.delete(m.id);
      if (stopping) return;
      out(`node ${m.id} exited (${signal ?? `code ${code}`}); see ${logFile}. It is not restarted; to restart it: ${startCommand(layout, m.id).join(' ')}`);
    });
  }
  const stopAll = async (): Promise<void> => {
    stopping = true;
    const waits = [...children.values()].map((c) => new Promise<void>((res) => {
      c.once('exit', () => res());
      c.kill('SIGTERM');
    }));
    const timer = setTimeout(() => { for (const c of children.values()) c.kill('SIGKILL'); }, 10_000);
    await Promise.all(waits);
    clearTimeout(timer);
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
    for (const m of layout.members) out(`restart ${m.id} alone: ${startCommand(layout, m.id).join(' ')}`);
    out('try: ETCDCTL_API=3 etcdctl --endpoints ' + layout.members.map((m) => formatAddress(m.client)).join(',') + ' put hello world');
    out('Ctrl-C stops all nodes.');
  }
  return done;
}
