// @ts-check
// The port layout of `quorumlog cluster`, and the check that every one of its
// ports is free, with a diagnosis of what probably holds a busy one. Plain
// JavaScript, so that `npm run cluster` (scripts/cluster.mjs) can run it
// BEFORE it rebuilds dist/, and src/cli/cluster.ts imports the same rule (tsc
// copies this file to dist/scripts/). It also reads and checks the supervisor
// file that a running `quorumlog cluster` keeps in its data directory.

import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';

/** The defaults of `quorumlog cluster` (and of `npm run cluster`). */
export const CLUSTER_DEFAULTS = Object.freeze({ nodes: 3, observers: 0, dataDir: './quorumlog-data', basePort: 2379, controlPort: 0 });

/** Client ports are base + i, peer ports base + 100 + i, metrics ports base + 200 + i (i counts voters, then observers). */
export const PORT_OFFSETS = Object.freeze({ client: 0, peer: 100, metrics: 200 });

/** AMQP's own port, where RabbitMQ's clients look first: the default cluster's AMQP ports are 5672 + i. */
export const AMQP_DEFAULT_PORT = 5672;

/**
 * The AMQP port of member i: 5672 + i for the default base port (where
 * RabbitMQ's clients look), base + 300 + i for any other base, so that
 * clusters on other bases never collide on AMQP ports.
 * @param {number} basePort
 * @param {number} i
 * @returns {number}
 */
export function amqpPort(basePort, i) {
  return (basePort === CLUSTER_DEFAULTS.basePort ? AMQP_DEFAULT_PORT : basePort + 300) + i;
}

/** The highest port offset above the base a cluster may use (AMQP's, off the default base). */
export const PORT_SPAN = 399;

/** The name of the file in a cluster's data directory that a running supervisor keeps. */
export const SUPERVISOR_FILE = 'supervisor.json';

/**
 * @typedef {'client' | 'peer' | 'metrics' | 'amqp'} NodePortKind
 * @typedef {{ readonly port: number; readonly what: string; readonly node: string | null; readonly kind: NodePortKind | 'control'; readonly metricsPort: number | null }} ClusterPort
 *   One port a local cluster listens on: `what` names it for people ("n1 client"); `metricsPort` is its node's metrics port (to ask who holds it).
 * @typedef {{ readonly nodes: number; readonly observers: number; readonly basePort: number; readonly controlPort: number }} PortOptions
 * @typedef {{ readonly pid: number; readonly controlUrl: string; readonly clusterId: string; readonly dataDir: string; readonly startedAt: string }} SupervisorRecord
 *   What a running `quorumlog cluster` writes to DATA_DIR/supervisor.json.
 */

/**
 * The ids of a local cluster's members: voters n1..nN, then observers o1..oM.
 * @param {number} nodes
 * @param {number} observers
 * @returns {string[]}
 */
export function memberIds(nodes, observers) {
  const ids = [];
  for (let i = 0; i < nodes; i++) ids.push(`n${i + 1}`);
  for (let i = 0; i < observers; i++) ids.push(`o${i + 1}`);
  return ids;
}

/**
 * Every port the cluster listens on, in the order nodes use them; the control port only when fixed (not 0).
 * @param {PortOptions} o
 * @returns {ClusterPort[]}
 */
export function clusterPorts(o) {
  /** @type {ClusterPort[]} */
  const ports = [];
  const ids = memberIds(o.nodes, o.observers);
  for (const kind of /** @type {const} */ (['client', 'peer', 'metrics'])) {
    ids.forEach((id, i) => ports.push({ port: o.basePort + PORT_OFFSETS[kind] + i, what: `${id} ${kind}`, node: id, kind, metricsPort: o.basePort + PORT_OFFSETS.metrics + i }));
  }
  ids.forEach((id, i) => ports.push({ port: amqpPort(o.basePort, i), what: `${id} amqp`, node: id, kind: 'amqp', metricsPort: o.basePort + PORT_OFFSETS.metrics + i }));
  if (o.controlPort !== 0) ports.push({ port: o.controlPort, what: 'control', node: null, kind: 'control', metricsPort: null });
  return ports;
}

/**
 * Whether a port can be listened on at host (by listening and closing at once).
 * @param {number} port
 * @param {string} [host]
 * @returns {Promise<{ free: true } | { free: false; code: string }>}
 */
export function probePort(port, host = '127.0.0.1') {
  return new Promise((res) => {
    const s = createServer();
    s.once('error', (/** @type {NodeJS.ErrnoException} */ e) => res({ free: false, code: e.code ?? e.message }));
    s.listen({ port, host, exclusive: true }, () => s.close(() => res({ free: true })));
  });
}

/**
 * Whether a process with this pid exists (signal 0 checks without sending).
 * @param {number} pid
 */
export function processAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return /** @type {NodeJS.ErrnoException} */ (e).code === 'EPERM';
  }
}

/**
 * The supervisor file of a data directory, or null when there is none (or it is unreadable).
 * @param {string} dataDir
 * @returns {SupervisorRecord | null}
 */
export function readSupervisor(dataDir) {
  const file = join(resolve(dataDir), SUPERVISOR_FILE);
  if (!existsSync(file)) return null;
  try {
    const r = JSON.parse(readFileSync(file, 'utf8'));
    if (typeof r?.pid !== 'number' || typeof r?.controlUrl !== 'string' || typeof r?.clusterId !== 'string') return null;
    return /** @type {SupervisorRecord} */ (r);
  } catch {
    return null;
  }
}

/**
 * GETs a JSON document; null when nothing answers in time or the answer is not JSON.
 * @param {string} url
 * @param {number} timeoutMs
 * @returns {Promise<any>}
 */
async function getJson(url, timeoutMs) {
  try {
    const res = await globalThis.fetch(url, { signal: globalThis.AbortSignal.timeout(timeoutMs) });
    return res.ok ? await res.json() : null;
  } catch {
    return null;
  }
}

/**
 * The supervisor running from this data directory, or null: its file names a
 * live process whose control server answers as that process (a stale file,
 * or a pid reused by another program, counts as none).
 * @param {string} dataDir
 * @returns {Promise<SupervisorRecord | null>}
 */
export async function liveSupervisor(dataDir) {
  const rec = readSupervisor(dataDir);
  if (rec === null || !processAlive(rec.pid)) return null;
  const info = await getJson(`${rec.controlUrl}/info`, 2000);
  return info !== null && info.pid === rec.pid && info.clusterId === rec.clusterId ? rec : null;
}

/**
 * Says what probably holds a busy port of the cluster: its node's metrics port
 * answering /status names a quorumlog node (its cluster, pid and, when a
 * supervisor started it, the supervisor's pid and data directory). `holder`
 * is the same for every port of one cluster run; `node` names the node.
 * @param {ClusterPort} p
 * @returns {Promise<{ holder: string; node: string | null }>}
 */
async function whoHolds(p) {
  if (p.metricsPort !== null) {
    const s = await getJson(`http://127.0.0.1:${p.metricsPort}/status`, 1500);
    if (s !== null && typeof s.id === 'string' && typeof s.pid === 'number') {
      const sup = s.supervisor;
      const holder = sup !== null && typeof sup === 'object' && typeof sup.pid === 'number'
        ? `another quorumlog cluster (cluster ${s.clusterId ?? '?'}, run by \`quorumlog cluster\` with supervisor pid ${sup.pid} and data dir ${sup.dataDir})`
        : `quorumlog nodes started by hand, not by \`quorumlog cluster\` (cluster ${s.clusterId ?? '?'}; stop each with kill <pid>)`;
      return { holder, node: `${s.id} (pid ${s.pid})` };
    }
  }
  return { holder: `something else, not a quorumlog node (\`ss -ltnp 'sport = :${p.port}'\` shows what)`, node: null };
}

/**
 * Checks that no cluster already runs from `dataDir` and that every port is
 * free on 127.0.0.1. Returns null when the cluster can start, else the lines
 * that explain why not and how to proceed.
 * @param {PortOptions & { readonly dataDir: string }} o
 * @returns {Promise<string[] | null>}
 */
export async function checkClusterCanStart(o) {
  const dir = resolve(o.dataDir);
  const running = await liveSupervisor(dir);
  if (running !== null) {
    return [
      `cannot start the cluster: the cluster in ${dir} is already running (cluster ${running.clusterId}, supervisor pid ${running.pid}, since ${running.startedAt}).`,
      `Stop it with Ctrl-C in its terminal (or kill -INT ${running.pid}), or start another cluster beside it with --data-dir <another dir> --base-port <another base>.`,
    ];
  }
  const ports = clusterPorts(o);
  const probes = await Promise.all(ports.map(async (p) => ({ p, r: await probePort(p.port) })));
  const busy = probes.filter((x) => !x.r.free);
  if (busy.length === 0) return null;
  const first = /** @type {{ p: ClusterPort; r: { free: false; code: string } }} */ (busy[0]);
  const lines = [`cannot start the cluster: port ${first.p.port} (${first.p.what}) on 127.0.0.1 is in use (${first.r.code})` +
    (busy.length > 1 ? `, and ${busy.length - 1} more of its ports: ${busy.slice(1).map((x) => `${x.p.port} (${x.p.what})`).join(', ')}` : '') + '.'];
  /** @type {Map<string, Set<string>>} what holds the busy ports -> the nodes seen */
  const holders = new Map();
  for (const x of busy) {
    const h = await whoHolds(x.p);
    const nodes = holders.get(h.holder) ?? new Set();
    if (h.node !== null) nodes.add(h.node);
    holders.set(h.holder, nodes);
  }
  for (const [h, nodes] of holders) lines.push(`${busy.length > 1 ? 'They are' : 'It is'} probably held by ${h}${nodes.size > 0 ? `: nodes ${[...nodes].join(', ')}` : ''}.`);
  let alternative = '--base-port <another base>';
  for (let next = o.basePort + 1000; next + PORT_SPAN <= 65535 && next <= o.basePort + 5000; next += 1000) {
    if ((await Promise.all(clusterPorts({ ...o, basePort: next, controlPort: 0 }).map((p) => probePort(p.port)))).every((r) => r.free)) {
      alternative = `--base-port ${next}`;
      break;
    }
  }
  lines.push(`Stop what holds ${busy.length > 1 ? 'them' : 'it'} (a quorumlog cluster stops with Ctrl-C in its terminal), or start this cluster on other ports with ${alternative} and its own --data-dir.`);
  return lines;
}
