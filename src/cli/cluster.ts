// `quorumlog cluster`: the embedded default for trying quorumlog out. Starts
// N nodes as separate OS processes on 127.0.0.1, each with a config file
// written under the data directory, waits for a leader of its own cluster,
// and prints the etcd endpoints, the leader, the dashboard link and how to
// restart a node. It refuses to start, naming the port and what probably
// holds it, when any of its ports is taken or its data directory already runs
// (scripts/cluster-ports.mjs, which `npm run cluster` also runs before it
// rebuilds), and exits 1, every node stopped, when a node cannot start.
//
// The process is the cluster's supervisor: it records itself in
// DATA_DIR/supervisor.json, and its control server on 127.0.0.1 (the
// dashboard's buttons, `quorumlog cluster restart`, and `quorumlog start`
// on one of its configs) starts, kills, pauses and restarts its nodes, so
// that every node logs to its node.log and stops with the cluster. A node
// that exits is reported, never restarted silently. SIGINT/SIGTERM stop all
// nodes; `all nodes stopped` is printed only once no node process and no
// port of the cluster is left.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  PORT_OFFSETS, PORT_SPAN, SUPERVISOR_FILE, amqpPort, checkClusterCanStart, clusterPorts, liveSupervisor, probePort, processAlive, readSupervisor,
  type SupervisorRecord,
} from '../../scripts/cluster-ports.mjs';
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

/** Refuses options that leave no valid layout (before anything is written or checked). */
function validateOptions(o: ClusterOptions): void {
  if (!Number.isInteger(o.observers ?? 0) || (o.observers ?? 0) < 0) throw new ConfigFileError('--observers', `${o.observers} must be a whole number`);
  if (!Number.isInteger(o.nodes) || o.nodes < 1 || o.nodes + (o.observers ?? 0) > 99) throw new ConfigFileError('--nodes', `${o.nodes} must be 1-99 (with the observers)`);
  if (!Number.isInteger(o.basePort) || o.basePort < 1 || o.basePort + PORT_SPAN > 65535) {
    throw new ConfigFileError('--base-port', `${o.basePort} leaves no room for ${o.nodes} nodes (ports base .. base+${PORT_SPAN} are used)`);
  }
  const control = o.controlPort ?? 0;
  if (!Number.isInteger(control) || control < 0 || control > 65535) throw new ConfigFileError('--control-port', `${o.controlPort} is not a port (0: any free one)`);
}

/**
 * Writes (or checks) the cluster's files under dataDir: cluster.json with the
 * cluster id and shape, and one config per node. Client ports are
 * basePort + i, peer ports basePort + 100 + i, metrics basePort + 200 + i
 * (PORT_OFFSETS, shared with the check that runs before a build), AMQP
 * 5672 + i on the default base, else basePort + 300 + i (amqpPort).
 */
export function prepareCluster(o: ClusterOptions): ClusterLayout {
  validateOptions(o);
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
  const member = (id: string, role: 'voter' | 'observer', i: number): MemberConfig => ({
    id, role,
    client: { host: '127.0.0.1', port: o.basePort + PORT_OFFSETS.client + i },
    peer: { host: '127.0.0.1', port: o.basePort + PORT_OFFSETS.peer + i },
    metrics: { host: '127.0.0.1', port: o.basePort + PORT_OFFSETS.metrics + i },
    amqp: { host: '127.0.0.1', port: amqpPort(o.basePort, i) },
  });
  for (let i = 0; i < o.nodes; i++) members.push(member(`n${i + 1}`, 'voter', i));
  for (let i = 0; i < (o.observers ?? 0); i++) members.push(member(`o${i + 1}`, 'observer', o.nodes + i));
  const configPath = (id: string): string => join(dir, id, 'config.json');
  for (const m of members) {
    mkdirSync(join(dir, m.id), { recursive: true });
    const cfg = {
      clusterId, nodeId: m.id, mode: o.mode, dataDir: join(dir, m.id, 'data'),
      members: members.map((x) => ({
        id: x.id, role: x.role, peer: formatAddress(x.peer), client: formatAddress(x.client), metrics: formatAddress(x.metrics),
        ...(x.amqp !== undefined ? { amqp: formatAddress(x.amqp) } : {}),
      })),
      ...o.extra,
    };
    writeFileSync(configPath(m.id), JSON.stringify(cfg, null, 2) + '\n');
  }
  return { clusterId, members, configPath };
}

/** The command that starts one node of the layout in the foreground (what the supervisor runs for each node). */
export function startCommand(layout: ClusterLayout, id: string): string[] {
  return [process.execPath, CLI_PATH, 'start', '--config', layout.configPath(id)];
}

/** The command that asks the supervisor running from dataDir to restart one of its nodes. */
export function restartCommand(dataDir: string, id: string): string[] {
  return [process.execPath, CLI_PATH, 'cluster', 'restart', id, '--data-dir', resolve(dataDir)];
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

/** The control server's actions, POST /<action>?node=<id>. */
type ControlAction = 'start' | 'restart' | 'kill' | 'pause' | 'resume' | 'partition' | 'heal';
const CONTROL_ACTIONS: readonly ControlAction[] = ['start', 'restart', 'kill', 'pause', 'resume', 'partition', 'heal'];

/** The last non-empty line of a node's log (where `quorumlog start` writes why it could not start). */
function lastLogLine(file: string): string {
  try {
    const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '');
    return lines.at(-1) ?? '(the log is empty)';
  } catch (e) {
    return `(cannot read ${file}: ${(e as Error).message})`;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Runs the cluster in the foreground until SIGINT or SIGTERM; resolves with
 * the exit code (0 after a clean stop; 1 when it refused to start, a node
 * could not start, or something of the cluster outlived the stop). A small
 * control server on 127.0.0.1 (o.controlPort, or an ephemeral port) lets the
 * nodes' dashboards and `quorumlog cluster restart` act on a node; its URL
 * reaches each node in QUORUMLOG_CLUSTER_CONTROL (with the supervisor's pid
 * and data directory in QUORUMLOG_SUPERVISOR_PID and QUORUMLOG_CLUSTER_DIR),
 * and each node is started with QUORUMLOG_FAULT_INJECTION=1 (for partition and heal).
 */
export async function runCluster(o: ClusterOptions, out: (line: string) => void, err: (line: string) => void = out): Promise<number> {
  validateOptions(o);
  const dir = resolve(o.dataDir);
  const refusal = await checkClusterCanStart({ nodes: o.nodes, observers: o.observers ?? 0, basePort: o.basePort, controlPort: o.controlPort ?? 0, dataDir: dir });
  if (refusal !== null) {
    for (const line of refusal) err(line);
    return 1;
  }
  const layout = prepareCluster(o);
  const children = new Map<string, ChildProcess>();
  /** Every node process this supervisor started, to check at the end that none is left. */
  const started: ChildProcess[] = [];
  const states = new Map<string, ProcessState>();
  let stopping = false;
  let startingUp = true;
  let startFailure: string | null = null;
  let controlUrl = '';
  /** Nodes being killed by a restart: their exit is expected and not reported. */
  const restarting = new Set<string>();
  const logFile = (id: string): string => join(dir, id, 'node.log');
  const restartHint = (id: string): string => restartCommand(dir, id).join(' ');
  const startChild = (m: MemberConfig): ChildProcess => {
    const fd = openSync(logFile(m.id), 'a');
    const [exe, ...args] = startCommand(layout, m.id);
    const child = spawn(exe as string, args, {
      stdio: ['ignore', fd, fd],
      env: {
        ...process.env, QUORUMLOG_CLUSTER_CONTROL: controlUrl, QUORUMLOG_FAULT_INJECTION: '1',
        QUORUMLOG_SUPERVISOR_PID: String(process.pid), QUORUMLOG_CLUSTER_DIR: dir,
      },
    });
    closeSync(fd);
    children.set(m.id, child);
    started.push(child);
    states.set(m.id, 'running');
    child.on('exit', (code, signal) => {
      if (children.get(m.id) === child) children.delete(m.id);
      if (stopping || restarting.has(m.id)) return;
      const how = signal ?? `code ${code}`;
      if (startingUp) {
        startFailure ??= `node ${m.id} could not start (${how}): ${lastLogLine(logFile(m.id))}`;
        states.set(m.id, 'exited');
        return;
      }
      if (states.get(m.id) === 'killed') {
        out(`node ${m.id} killed (${how}) from the dashboard; it stays down until restarted (dashboard button, or: ${restartHint(m.id)})`);
        return;
      }
      states.set(m.id, 'exited');
      out(`node ${m.id} exited (${how}); see ${logFile(m.id)}. It is not restarted; to restart it through this cluster: ${restartHint(m.id)}`);
    });
    return child;
  };
  const alive = (c: ChildProcess | undefined): c is ChildProcess => c !== undefined && c.exitCode === null && c.signalCode === null;
  /**
   * Waits until a freshly started node answers as itself (this cluster, this
   * pid) and has applied what the leader had committed when it answered, or
   * exits; null when it runs and caught up, else what went wrong.
   */
  const waitStarted = async (m: MemberConfig, child: ChildProcess): Promise<string | null> => {
    const deadline = Date.now() + 30_000; // a node recovers its log before it listens: generous on a loaded machine
    let target: number | null = null;
    while (Date.now() < deadline) {
      if (!alive(child)) return `${m.id} could not start: ${lastLogLine(logFile(m.id))}`;
      const s = await fetchStatus(m, 500);
      if (s !== null && s.pid === child.pid && s.clusterId === layout.clusterId && s.leader !== null) {
        if (s.role === 'leader') return null;
        const leader = layout.members.find((x) => x.id === s.leader);
        if (target === null && leader !== undefined) target = (await fetchStatus(leader, 500))?.commitIndex ?? null;
        if (target !== null && s.appliedIndex >= target) return null;
      }
      await sleep(100);
    }
    return `${m.id} (pid ${child.pid}) did not answer and catch up with the leader within 30 s; see ${logFile(m.id)}`;
  };
  const killAndWait = async (id: string): Promise<void> => {
    const c = children.get(id);
    if (!alive(c)) return;
    const exited = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill('SIGCONT'); // a paused node must run to die
    c.kill('SIGKILL');
    await exited;
  };
  const controlAction = async (action: ControlAction, m: MemberConfig, wait: boolean): Promise<{ code: number; body: unknown }> => {
    const c = children.get(m.id);
    const running = alive(c);
    switch (action) {
      case 'start':
      case 'restart': {
        if (action === 'start' && running) {
          return { code: 409, body: { error: `${m.id} is already running under this cluster (pid ${c.pid}); to restart it: ${restartHint(m.id)}` } };
        }
        if (running) {
          restarting.add(m.id);
          await killAndWait(m.id).finally(() => restarting.delete(m.id));
        }
        const child = startChild(m);
        out(`node ${m.id} ${action === 'start' ? 'started' : 'restarted'} (pid ${child.pid}); its log: ${logFile(m.id)}`);
        if (!wait) return { code: 200, body: { node: m.id, state: 'running', pid: child.pid } };
        const problem = await waitStarted(m, child);
        return problem === null ? { code: 200, body: { node: m.id, state: 'running', pid: child.pid } } : { code: 500, body: { error: problem } };
      }
      case 'kill':
        if (!running) return { code: 409, body: { error: `${m.id} is not running` } };
        states.set(m.id, 'killed');
        await killAndWait(m.id);
        return { code: 200, body: { node: m.id, state: 'killed' } };
      case 'pause':
        if (!running) return { code: 409, body: { error: `${m.id} is not running` } };
        c.kill('SIGSTOP');
        states.set(m.id, 'paused');
        out(`node ${m.id} paused (SIGSTOP) from the dashboard`);
        return { code: 200, body: { node: m.id, state: 'paused' } };
      case 'resume':
        if (!running) return { code: 409, body: { error: `${m.id} is not running` } };
        c.kill('SIGCONT');
        states.set(m.id, 'running');
        out(`node ${m.id} resumed (SIGCONT) from the dashboard`);
        return { code: 200, body: { node: m.id, state: 'running' } };
      case 'partition':
      case 'heal': {
        if (!running || states.get(m.id) === 'paused') return { code: 409, body: { error: `${m.id} is not running` } };
        const r = await fetch(`http://${formatAddress(m.metrics)}/debug/${action}`, { method: 'POST', signal: AbortSignal.timeout(5000) });
        if (r.ok) out(`node ${m.id} ${action === 'partition' ? 'partitioned from its peers' : 'healed'} from the dashboard`);
        return { code: r.status, body: r.ok ? { node: m.id, partitioned: action === 'partition' } : { error: await r.text() } };
      }
      default: {
        const never: never = action;
        throw new Error(`unknown action ${String(never)}`);
      }
    }
  };
  const control = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const reply = (code: number, body: unknown): void => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body) + '\n');
    };
    if (url.pathname === '/state' && req.method === 'GET') return reply(200, Object.fromEntries(states));
    if (url.pathname === '/info' && req.method === 'GET') {
      return reply(200, {
        pid: process.pid, clusterId: layout.clusterId, dataDir: dir,
        nodes: Object.fromEntries(layout.members.map((m) => [m.id, { state: states.get(m.id) ?? 'exited', pid: children.get(m.id)?.pid ?? null }])),
      });
    }
    if (req.method !== 'POST') return reply(405, { error: 'POST only' });
    const action = CONTROL_ACTIONS.find((a) => `/${a}` === url.pathname);
    if (action === undefined) return reply(404, { error: `unknown action ${url.pathname.slice(1)}` });
    const id = url.searchParams.get('node') ?? '';
    const m = layout.members.find((x) => x.id === id);
    if (m === undefined) return reply(404, { error: `no node ${id} in this cluster (${layout.members.map((x) => x.id).join(', ')})` });
    if (stopping) return reply(409, { error: 'the cluster is stopping' });
    controlAction(action, m, url.searchParams.get('wait') === '1').then((r) => reply(r.code, r.body), (e: unknown) => reply(500, { error: String(e) }));
  });
  try {
    await new Promise<void>((res, rej) => {
      control.once('error', rej);
      control.listen(o.controlPort ?? 0, '127.0.0.1', () => res());
    });
  } catch (e) {
    err(`cannot start the cluster: its control server cannot listen on 127.0.0.1:${o.controlPort ?? 0}: ${(e as Error).message}`);
    return 1;
  }
  controlUrl = `http://127.0.0.1:${(control.address() as AddressInfo).port}`;
  const supervisorFile = join(dir, SUPERVISOR_FILE);
  const record: SupervisorRecord = { pid: process.pid, controlUrl, clusterId: layout.clusterId, dataDir: dir, startedAt: new Date().toISOString() };
  writeFileSync(supervisorFile, JSON.stringify(record, null, 2) + '\n');
  for (const m of layout.members) startChild(m);
  const dashboard = `http://${formatAddress((layout.members[0] as MemberConfig).metrics)}/dashboard`;
  out(`dashboard: ${dashboard}`);

  /** Stops every node it started, then checks that no node process and no port of the cluster is left; returns what is left. */
  const stopAll = async (): Promise<string[]> => {
    stopping = true;
    const waits = [...children.values()].filter(alive).map((c) => new Promise<void>((res) => {
      c.once('exit', () => res());
      c.kill('SIGCONT'); // a paused node must run to stop
      c.kill('SIGTERM');
    }));
    const timer = setTimeout(() => { for (const c of children.values()) c.kill('SIGKILL'); }, 10_000);
    await Promise.all(waits);
    clearTimeout(timer);
    control.closeAllConnections();
    await new Promise<void>((r) => control.close(() => r()));
    const left: string[] = [];
    for (const c of started) if (c.pid !== undefined && processAlive(c.pid)) left.push(`process ${c.pid} is still alive`);
    for (const m of layout.members) {
      const s = await fetchStatus(m, 500);
      if (s !== null) left.push(`node ${s.id} (pid ${s.pid}) of cluster ${s.clusterId} still answers on ${formatAddress(m.metrics)}: it was not started by this cluster; stop it with kill ${s.pid}`);
    }
    for (const p of clusterPorts({ nodes: o.nodes, observers: o.observers ?? 0, basePort: o.basePort, controlPort: o.controlPort ?? 0 })) {
      const r = await probePort(p.port);
      if (!r.free) left.push(`port ${p.port} (${p.what}) is still in use (${r.code})`);
    }
    if (readSupervisor(dir)?.pid === process.pid) rmSync(supervisorFile, { force: true });
    return left;
  };
  const finish = (left: string[], code: number): number => {
    if (left.length === 0) {
      out('all nodes stopped');
      return code;
    }
    err(`not everything stopped: ${left.join('; ')}`);
    return 1;
  };
  let onSignal: ((sig: NodeJS.Signals) => void) | null = null;
  const done = new Promise<number>((res) => {
    // process.on, not once: npm forwards the terminal's Ctrl-C, so the signal may come twice; the second must not kill the supervisor mid-stop.
    onSignal = (sig: NodeJS.Signals): void => {
      if (stopping) return;
      out(`${sig}: stopping all nodes`);
      void stopAll().then((left) => res(finish(left, 0)));
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
  const detach = (): void => {
    if (onSignal === null) return;
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
  // Wait for a leader of this cluster and for every node started to serve (bounded), then say how to reach them:
  // a node takes part in elections before its client port opens (its protocol worker starts alongside), and
  // /status answers only once it is open.
  const deadline = Date.now() + 30_000;
  let leader: string | null = null;
  let serving = 0;
  const running = layout.members.filter((m) => children.has(m.id)).length;
  while ((leader === null || serving < running) && Date.now() < deadline && !stopping && startFailure === null) {
    await sleep(100);
    leader = null;
    serving = 0;
    for (const m of layout.members) {
      const s = await fetchStatus(m, 300);
      // Only a node of this cluster, in a process this supervisor started, counts.
      if (s === null || s.clusterId !== layout.clusterId || s.pid !== children.get(m.id)?.pid) continue;
      serving++;
      if (s.role === 'leader') leader = s.id;
    }
  }
  startingUp = false;
  if (stopping) return done.finally(detach);
  if (startFailure !== null) {
    err(startFailure);
    err('the cluster did not start: stopping its other nodes');
    const code = finish(await stopAll(), 1);
    detach();
    return code;
  }
  if (leader === null) {
    out(`no leader was elected within 30 s; see the logs in ${dir}/n*/node.log`);
  } else {
    out(`endpoints: ${layout.members.map((m) => formatAddress(m.client)).join(',')}`);
    out(`leader: ${leader}`);
    out(`mode: ${o.mode}; data: ${dir}; metrics: ${layout.members.map((m) => `http://${formatAddress(m.metrics)}/metrics`).join(' ')}`);
    out(`dashboard (any node serves it; kill, pause, restart or partition a node there): ${dashboard}`);
    out(`restart a node (through this cluster; its log stays in node.log): ${restartHint('<id>')}`);
    out('try: ETCDCTL_API=3 etcdctl --endpoints ' + layout.members.map((m) => formatAddress(m.client)).join(',') + ' put hello world');
    out(`amqp (RabbitMQ's clients, user guest, password guest): ${layout.members.flatMap((m) => (m.amqp !== undefined ? [`amqp://${formatAddress(m.amqp)}`] : [])).join(' ')}`);
    out('Ctrl-C stops all nodes.');
  }
  return done.finally(detach);
}

/** POSTs an action to a supervisor's control server; the answer's status and JSON body. */
async function askSupervisor(sup: SupervisorRecord, action: ControlAction, id: string): Promise<{ status: number; body: { error?: string; pid?: number } }> {
  const res = await fetch(`${sup.controlUrl}/${action}?node=${encodeURIComponent(id)}&wait=1`, { method: 'POST', signal: AbortSignal.timeout(60_000) });
  return { status: res.status, body: await res.json() as { error?: string; pid?: number } };
}

/**
 * `quorumlog cluster restart <id>`: asks the supervisor running from dataDir
 * to restart one of its nodes (kill it if it runs, start it again from its
 * data), and waits until the node answers and has caught up with the
 * leader's commit index; returns the exit code.
 */
export async function runClusterRestart(dataDir: string, id: string, out: (line: string) => void, err: (line: string) => void): Promise<number> {
  const dir = resolve(dataDir);
  const sup = await liveSupervisor(dir);
  if (sup === null) {
    err(`no quorumlog cluster is running from ${dir} (no live supervisor in ${join(dir, SUPERVISOR_FILE)}); start it again with \`npm run cluster\` (or \`quorumlog cluster --data-dir ${dir}\`), which starts every node`);
    return 1;
  }
  try {
    const r = await askSupervisor(sup, 'restart', id);
    if (r.status !== 200) {
      err(`cannot restart ${id}: ${r.body.error ?? `the supervisor answered ${r.status}`}`);
      return 1;
    }
    out(`${id} restarted by the cluster's supervisor (pid ${sup.pid}) as pid ${r.body.pid}, and caught up with the leader; its log: ${join(dir, id, 'node.log')}; Ctrl-C of the cluster stops it`);
    return 0;
  } catch (e) {
    err(`cannot restart ${id}: the supervisor (pid ${sup.pid}) at ${sup.controlUrl} did not answer: ${(e as Error).message}`);
    return 1;
  }
}

/**
 * For `quorumlog start --config FILE`: when FILE is the config of a node of a
 * cluster whose supervisor runs (DATA_DIR/nI/config.json, same cluster id),
 * the node is handed to that supervisor, which starts it as its own child
 * (logging to node.log, stopped with the cluster); with other flags beside
 * --config it refuses, printing the restart command. Returns the exit code, or
 * null when the config is not one of a running supervised cluster (the node
 * then runs in the foreground as usual).
 */
export async function handToSupervisor(configFile: string, cfg: { readonly clusterId: string; readonly nodeId: string; readonly dataDir: string },
  extraFlags: readonly string[], out: (line: string) => void, err: (line: string) => void): Promise<number | null> {
  const dir = dirname(dirname(resolve(configFile)));
  if (resolve(cfg.dataDir) !== join(dir, cfg.nodeId, 'data')) return null;
  const sup = await liveSupervisor(dir);
  if (sup === null || sup.clusterId !== cfg.clusterId) return null;
  if (extraFlags.length > 0) {
    err(`${cfg.nodeId} belongs to the cluster run by \`quorumlog cluster\` (supervisor pid ${sup.pid}, data dir ${dir}), which starts its nodes from their config files alone ` +
      `(${extraFlags.join(', ')} would be lost): restart it through the cluster with ${restartCommand(dir, cfg.nodeId).join(' ')}`);
    return 2;
  }
  const r = await askSupervisor(sup, 'start', cfg.nodeId)
    .catch((e: unknown): Awaited<ReturnType<typeof askSupervisor>> => ({ status: 0, body: { error: `the supervisor did not answer: ${(e as Error).message}` } }));
  if (r.status === 200) {
    out(`${cfg.nodeId} belongs to the cluster run by \`quorumlog cluster\` (supervisor pid ${sup.pid}, data dir ${dir}): handed to it, it runs as pid ${r.body.pid}; ` +
      `its log: ${join(dir, cfg.nodeId, 'node.log')}; Ctrl-C of the cluster stops it`);
    return 0;
  }
  err(`${cfg.nodeId} belongs to the cluster run by \`quorumlog cluster\` (supervisor pid ${sup.pid}, data dir ${dir}), which did not start it: ${r.body.error ?? `status ${r.status}`}`);
  return 1;
}
