// A 3-node RabbitMQ cluster on 127.0.0.1 for the AMQP benchmark (issue 20):
// quorumlog's quorum queues are measured beside RabbitMQ's own, in the same
// run, on the same machine. RabbitMQ is Debian's rabbitmq-server (3.10.8 on
// Debian 12, Erlang 25), installed by scripts/rabbitmq-deps.sh when missing,
// with the package's own service kept stopped.
//
// Everything lives under one temporary directory and goes with stop(): each
// node's Mnesia and Raft data (RABBITMQ_MNESIA_BASE), logs, config file, an
// empty plugin list (no management UI or other plugins: they cost CPU the
// benchmark measures), a private HOME holding the shared Erlang cookie
// (RABBITMQ_ERLANG_COOKIE is deprecated), and an empty rabbitmq-env.conf so
// that /etc/rabbitmq does not apply. The scripts in /usr/lib/rabbitmq/bin are
// run directly, not the /usr/sbin wrappers (as root those `su` to the
// rabbitmq user with a clean environment, which would drop all of this).
//
// Nothing is left on shared ports: this module starts its own epmd on a
// private port (ERL_EPMD_PORT, 127.0.0.1 only) rather than the machine-wide
// one on 4369 that a node would otherwise start and leave behind; the
// distribution listeners and the CLI's are pinned to given ranges on
// 127.0.0.1. Nodes are ql-rabbit1@localhost, ... (short names); nodes 2.. are
// joined to node 1 with rabbitmqctl (stop_app, join_cluster, start_app), and
// start() returns once `rabbitmqctl cluster_status` lists every node running.
// Each node runs in its own process group, so stop() ends the node script,
// beam.smp and its helpers together (SIGTERM, then SIGKILL).
//
//   node dist/bench/rabbitmq.js [--nodes 3] [--amqp-port 5682] [--hold-seconds 0]
//
// starts a cluster, prints its URLs and how long the start took, keeps it up
// for --hold-seconds, and stops it.

import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { isMainModule, sleep } from './cluster/fault-util.js';
import { repoRoot } from './cluster/machine.js';

const execFileAsync = promisify(execFile);

/** Where Debian's package puts RabbitMQ's own scripts (the /usr/sbin ones are wrappers that switch user). */
export const RABBITMQ_BIN_DIR = '/usr/lib/rabbitmq/bin';

/** The ports a cluster uses; node i (0-based) takes amqpBasePort + i and distBasePort + i. */
export interface RabbitMqPorts {
  readonly amqpBasePort: number;
  readonly distBasePort: number;
  /** The private epmd's port. */
  readonly epmdPort: number;
  /** Inclusive range of ports the rabbitmqctl CLI's own Erlang node may listen on. */
  readonly ctlDistPortMin: number;
  readonly ctlDistPortMax: number;
}

/**
 * The benchmark's ports: AMQP 5682.., distribution 25682.., epmd 6140, CLI
 * 25685-25689 (bench/rabbitmq.test.ts takes 5691.., 25691.., 6141,
 * 25694-25699, so the two can run at once). Never 5672-5674 (quorumlog's own
 * AMQP listener), 25672 or 4369 (a default RabbitMQ's).
 */
export const DEFAULT_RABBITMQ_PORTS: RabbitMqPorts = {
  amqpBasePort: 5682, distBasePort: 25682, epmdPort: 6140, ctlDistPortMin: 25685, ctlDistPortMax: 25689,
};

export interface RabbitMqClusterOptions {
  /** Number of nodes (default 3). */
  readonly nodes?: number;
  readonly ports?: Partial<RabbitMqPorts>;
  /** Give up the start after this long (default 120 s: two cores shared with other work make Erlang boots slow). */
  readonly startTimeoutMs?: number;
  /** Node name prefix (default ql-rabbit): nodes are <prefix>1@localhost, ... */
  readonly namePrefix?: string;
}

/** One node of a {@link RabbitMqCluster}. */
export interface RabbitMqNode {
  /** Erlang node name, e.g. ql-rabbit1@localhost. */
  readonly name: string;
  readonly amqpPort: number;
  readonly distPort: number;
  /** amqp://guest:guest@127.0.0.1:<amqpPort> (guest may log in from loopback only, which this is). */
  readonly url: string;
  readonly dir: string;
  /** The rabbitmq-server script's process (leader of its process group; beam.smp is its child). Null once stopped. */
  process: ChildProcess | null;
}

/** How long each phase of a start took, in ms. */
export interface RabbitMqStartTimes {
  /** From spawning the nodes until every node's AMQP port accepted connections. */
  readonly bootMs: number;
  /** stop_app, join_cluster, start_app for every node after the first, and the wait for cluster_status. */
  readonly joinMs: number;
  /** The whole start(), install check included. */
  readonly totalMs: number;
}

/** A node did not start, or the cluster did not form; names the node and where its log is. */
export class RabbitMqStartError extends Error {
  override readonly name = 'RabbitMqStartError';
  constructor(message: string, readonly node: string | null, readonly logFile: string | null, options?: { cause?: unknown }) {
    super(logFile === null ? message : `${message}; log: ${logFile}`, options);
  }
}

/** A port the cluster needs is taken. */
export class PortInUseError extends Error {
  override readonly name = 'PortInUseError';
  constructor(readonly port: number, readonly what: string) {
    super(`port ${port} (${what}) is in use on 127.0.0.1: another RabbitMQ or benchmark is running; stop it or pick other ports`);
  }
}

/** Installs rabbitmq-server through scripts/rabbitmq-deps.sh if RabbitMQ's scripts are missing. */
export function ensureRabbitMq(): void {
  if (existsSync(join(RABBITMQ_BIN_DIR, 'rabbitmq-server')) && existsSync(join(RABBITMQ_BIN_DIR, 'rabbitmqctl'))) return;
  execFileSync('bash', [join(repoRoot(), 'scripts', 'rabbitmq-deps.sh')], { stdio: 'inherit' });
}

/** The installed package's version, e.g. "rabbitmq-server 3.10.8-1.1+deb12u1, erlang-base 1:25.2.3+dfsg-1+deb12u4" (null when not installed). */
export function rabbitMqVersion(): string | null {
  try {
    return execFileSync('dpkg-query', ['-W', '-f', '${Package} ${Version}\\n', 'rabbitmq-server', 'erlang-base'], { encoding: 'utf8' }).trim().split('\n').join(', ');
  } catch {
    return null;
  }
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
export function portOpen(port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/** The node names cluster_status --formatter json reports as running (throws on output without the field). */
export function runningNodesOf(clusterStatusJson: string): string[] {
  const parsed = JSON.parse(clusterStatusJson) as { running_nodes?: unknown };
  if (!Array.isArray(parsed.running_nodes)) throw new Error('cluster_status output has no running_nodes list');
  return parsed.running_nodes.map(String);
}

/** The contents of a node's rabbitmq.conf (new-style format). */
export function nodeConfig(): string {
  return [
    '# written by quorumlog bench/rabbitmq.ts',
    'log.console = false',
    'log.file.level = warning',
    // The default guest user, from loopback only (the default too; said here because the benchmark relies on it).
    'loopback_users.guest = true',
    // Three nodes on one machine each think they may use 40% of its memory; the benchmark keeps queues short.
    'vm_memory_high_watermark.relative = 0.2',
    'disk_free_limit.absolute = 1GB',
    '',
  ].join('\n');
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) killGroup(c, 'SIGKILL');
});

function killGroup(c: ChildProcess, signal: NodeJS.Signals): void {
  if (c.pid === undefined || c.exitCode !== null || c.signalCode !== null) return;
  try {
    process.kill(-c.pid, signal); // the whole group: the script, beam.smp, erl_child_setup, inet_gethost
  } catch {
    try {
      c.kill(signal);
    } catch {
      // gone
    }
  }
}

/** A running RabbitMQ cluster; stop() ends every process it started and removes its directory. */
export class RabbitMqCluster {
  private epmd: ChildProcess | null = null;
  private stopped = false;

  private constructor(
    readonly dir: string,
    readonly nodes: readonly RabbitMqNode[],
    readonly ports: RabbitMqPorts,
    private readonly baseEnv: NodeJS.ProcessEnv,
    public startTimes: RabbitMqStartTimes = { bootMs: NaN, joinMs: NaN, totalMs: NaN },
  ) {}

  /** Starts the cluster; on any failure everything started is stopped and the error names the node and its log. */
  static async start(o: RabbitMqClusterOptions = {}): Promise<RabbitMqCluster> {
    const t0 = performance.now();
    ensureRabbitMq();
    const ports: RabbitMqPorts = { ...DEFAULT_RABBITMQ_PORTS, ...o.ports };
    const count = o.nodes ?? 3;
    const prefix = o.namePrefix ?? 'ql-rabbit';
    const timeoutMs = o.startTimeoutMs ?? 120_000;
    const wanted: [number, string][] = [[ports.epmdPort, 'epmd']];
    for (let i = 0; i < count; i++) wanted.push([ports.amqpBasePort + i, `AMQP of node ${i + 1}`], [ports.distBasePort + i, `distribution of node ${i + 1}`]);
    for (const [port, what] of wanted) if (await portOpen(port)) throw new PortInUseError(port, what);

    const dir = mkdtempSync(join(tmpdir(), 'quorumlog-rabbitmq-'));
    const home = join(dir, 'home');
    mkdirSync(home);
    writeFileSync(join(home, '.erlang.cookie'), randomBytes(20).toString('hex').toUpperCase(), { mode: 0o400 });
    writeFileSync(join(dir, 'rabbitmq-env.conf'), '# empty: /etc/rabbitmq/rabbitmq-env.conf must not apply\n');
    writeFileSync(join(dir, 'enabled_plugins'), '[].\n');
    const loopbackOnly = '-kernel inet_dist_use_interface {127,0,0,1}';
    const baseEnv: NodeJS.ProcessEnv = {
      ...process.env,
      HOME: home,
      ERL_EPMD_PORT: String(ports.epmdPort),
      ERL_EPMD_ADDRESS: '127.0.0.1',
      RABBITMQ_CONF_ENV_FILE: join(dir, 'rabbitmq-env.conf'),
      RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'enabled_plugins'),
      RABBITMQ_CTL_DIST_PORT_MIN: String(ports.ctlDistPortMin),
      RABBITMQ_CTL_DIST_PORT_MAX: String(ports.ctlDistPortMax),
      RABBITMQ_CTL_ERL_ARGS: loopbackOnly,
    };
    const nodes: RabbitMqNode[] = Array.from({ length: count }, (_, i) => {
      const name = `${prefix}${i + 1}@localhost`;
      const nodeDir = join(dir, `${prefix}${i + 1}`);
      mkdirSync(nodeDir);
      writeFileSync(join(nodeDir, 'rabbitmq.conf'), nodeConfig());
      const amqpPort = ports.amqpBasePort + i;
      return { name, amqpPort, distPort: ports.distBasePort + i, url: `amqp://guest:guest@127.0.0.1:${amqpPort}`, dir: nodeDir, process: null };
    });
    const c = new RabbitMqCluster(dir, nodes, ports, baseEnv);
    try {
      await c.startEpmd();
      const tBoot = performance.now();
      for (const n of nodes) c.spawnNode(n);
      await Promise.all(nodes.map((n) => c.waitAmqp(n, timeoutMs)));
      const bootMs = performance.now() - tBoot;
      const tJoin = performance.now();
      const first = nodes[0] as RabbitMqNode;
      for (const n of nodes.slice(1)) {
        await c.ctl(n, ['stop_app']);
        await c.ctl(n, ['join_cluster', first.name]);
        await c.ctl(n, ['start_app']);
      }
      await c.waitClusterFormed(timeoutMs);
      c.startTimes = { bootMs, joinMs: performance.now() - tJoin, totalMs: performance.now() - t0 };
      return c;
    } catch (e) {
      await c.stop({ keepDir: true });
      throw e instanceof RabbitMqStartError ? e : new RabbitMqStartError(`RabbitMQ cluster did not start: ${(e as Error).message}`, null, dir, { cause: e });
    }
  }

  /** The AMQP URLs of the nodes, in node order. */
  get urls(): string[] {
    return this.nodes.map((n) => n.url);
  }

  /** The node scripts' pids by node name (each tree holds the node's beam.smp), for CPU sampling. */
  pids(): Record<string, number> {
    return Object.fromEntries(this.nodes.flatMap((n) => (n.process?.pid === undefined ? [] : [[n.name, n.process.pid]])));
  }

  /** The main log file of a node. */
  logFile(n: RabbitMqNode): string {
    return join(n.dir, 'log', `${n.name}.log`);
  }

  /** Runs rabbitmqctl against a node; returns its stdout (throws with its output when it fails). */
  async ctl(n: RabbitMqNode, args: readonly string[], timeoutMs = 60_000): Promise<string> {
    try {
      const r = await execFileAsync(join(RABBITMQ_BIN_DIR, 'rabbitmqctl'), ['-n', n.name, ...args], { env: this.baseEnv, timeout: timeoutMs, cwd: this.dir });
      return r.stdout;
    } catch (e) {
      const x = e as { stdout?: string; stderr?: string };
      throw new RabbitMqStartError(`rabbitmqctl ${args.join(' ')} on ${n.name} failed: ${(x.stderr ?? '').trim() || (x.stdout ?? '').trim() || String(e)}`,
        n.name, this.logFile(n), { cause: e });
    }
  }

  /** The nodes that node 1 reports as running. */
  async runningNodes(): Promise<string[]> {
    return runningNodesOf(await this.ctl(this.nodes[0] as RabbitMqNode, ['cluster_status', '--formatter', 'json']));
  }

  private async startEpmd(): Promise<void> {
    const log = openSync(join(this.dir, 'epmd.log'), 'a');
    const p = spawn('epmd', ['-port', String(this.ports.epmdPort), '-address', '127.0.0.1'], { stdio: ['ignore', log, log], detached: true, env: this.baseEnv });
    closeSync(log);
    live.add(p);
    p.once('exit', () => live.delete(p));
    this.epmd = p;
    const deadline = Date.now() + 10_000;
    while (!(await portOpen(this.ports.epmdPort))) {
      if (p.exitCode !== null || Date.now() > deadline) throw new RabbitMqStartError(`epmd did not listen on ${this.ports.epmdPort}`, null, join(this.dir, 'epmd.log'));
      await sleep(50);
    }
  }

  private spawnNode(n: RabbitMqNode): void {
    const out = openSync(join(n.dir, 'stdout.log'), 'a');
    const p = spawn(join(RABBITMQ_BIN_DIR, 'rabbitmq-server'), [], {
      stdio: ['ignore', out, out], detached: true, cwd: n.dir,
      env: {
        ...this.baseEnv,
        RABBITMQ_NODENAME: n.name,
        RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
        RABBITMQ_NODE_PORT: String(n.amqpPort),
        RABBITMQ_DIST_PORT: String(n.distPort),
        RABBITMQ_MNESIA_BASE: join(n.dir, 'mnesia'),
        RABBITMQ_LOG_BASE: join(n.dir, 'log'),
        RABBITMQ_CONFIG_FILE: join(n.dir, 'rabbitmq.conf'),
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: '-kernel inet_dist_use_interface {127,0,0,1}',
      },
    });
    closeSync(out);
    live.add(p);
    n.process = p;
    p.once('exit', () => {
      live.delete(p);
    });
  }

  /** Waits until the node's AMQP listener accepts connections (RabbitMQ opens it last in its boot). */
  private async waitAmqp(n: RabbitMqNode, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const p = n.process;
      if (p === null || p.exitCode !== null || p.signalCode !== null) {
        throw new RabbitMqStartError(`${n.name} exited during its boot (${tail(join(n.dir, 'stdout.log'))})`, n.name, this.logFile(n));
      }
      if (await portOpen(n.amqpPort)) return;
      if (Date.now() > deadline) throw new RabbitMqStartError(`${n.name} did not open AMQP port ${n.amqpPort} within ${timeoutMs} ms`, n.name, this.logFile(n));
      await sleep(200);
    }
  }

  private async waitClusterFormed(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const want = this.nodes.map((n) => n.name).sort();
    let seen: string[] = [];
    for (;;) {
      seen = (await this.runningNodes()).sort();
      if (want.every((w) => seen.includes(w))) break;
      if (Date.now() > deadline) throw new RabbitMqStartError(`cluster_status lists ${seen.join(', ') || 'no node'} running, not ${want.join(', ')}`, null, null);
      await sleep(500);
    }
    // start_app returns before the listener is back: every node must serve AMQP before the benchmark connects.
    await Promise.all(this.nodes.map((n) => this.waitAmqp(n, Math.max(1000, deadline - Date.now()))));
  }

  /** Stops every node (SIGTERM to its process group, SIGKILL after `graceMs`), then epmd, and removes the directory. */
  async stop(o: { keepDir?: boolean; graceMs?: number } = {}): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const graceMs = o.graceMs ?? 10_000;
    await Promise.all(this.nodes.map(async (n) => {
      const p = n.process;
      if (p === null) return;
      await stopGroup(p, graceMs);
      n.process = null;
    }));
    if (this.epmd !== null) await stopGroup(this.epmd, 2000);
    this.epmd = null;
    if (o.keepDir !== true) rmSync(this.dir, { recursive: true, force: true });
  }
}

/** SIGTERM to a detached child's process group; SIGKILL to it after graceMs; resolves once the child has exited. */
async function stopGroup(p: ChildProcess, graceMs: number): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) {
    killGroup(p, 'SIGKILL'); // the script may be gone while beam.smp in its group lives on
    return;
  }
  const exited = new Promise<void>((r) => p.once('exit', () => r()));
  killGroup(p, 'SIGTERM');
  const t = setTimeout(() => killGroup(p, 'SIGKILL'), graceMs);
  await exited;
  clearTimeout(t);
  // The script exits when beam.smp does; anything else left in the group goes now.
  if (p.pid !== undefined) {
    try {
      process.kill(-p.pid, 'SIGKILL');
    } catch {
      // the group is empty
    }
  }
}

function tail(file: string, lines = 5): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join(' | ');
  } catch {
    return 'no output';
  }
}

if (isMainModule(import.meta.url)) {
  const { values } = parseArgs({
    options: { nodes: { type: 'string' }, 'amqp-port': { type: 'string' }, 'hold-seconds': { type: 'string' } },
  });
  const run = async (): Promise<void> => {
    const c = await RabbitMqCluster.start({
      nodes: Number(values.nodes ?? 3),
      ...(values['amqp-port'] !== undefined ? { ports: { amqpBasePort: Number(values['amqp-port']) } } : {}),
    });
    const t = c.startTimes;
    console.log(`RabbitMQ cluster up in ${(t.totalMs / 1000).toFixed(1)} s (boot ${(t.bootMs / 1000).toFixed(1)} s, join ${(t.joinMs / 1000).toFixed(1)} s): ${c.urls.join(' ')}`);
    console.log(`running nodes: ${(await c.runningNodes()).join(', ')}`);
    await sleep(1000 * Number(values['hold-seconds'] ?? 0));
    await c.stop();
    console.log('stopped');
  };
  run().then(() => process.exit(0), (e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
