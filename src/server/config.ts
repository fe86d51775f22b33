// One node's configuration file (JSON), its defaults, and its checks. Every
// problem is reported as one line naming the setting, before anything starts
// (ConfigFileError). The data directory remembers which cluster and node it
// belongs to (identity.json), so a node pointed at another node's data — or
// another cluster's — refuses to start instead of corrupting it.

import { randomInt } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync, readdirSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';

/** host:port. */
export interface Address {
  readonly host: string;
  readonly port: number;
}

/** One member of the cluster as every node's config lists it. */
export interface MemberConfig {
  readonly id: string;
  readonly role: 'voter' | 'observer';
  /** Where peers reach this member (Raft traffic). */
  readonly peer: Address;
  /** Where clients reach this member (the etcd v3 gRPC API). */
  readonly client: Address;
  /** Prometheus /metrics and /healthz. */
  readonly metrics: Address;
  /** Where AMQP 0-9-1 clients (RabbitMQ's) reach this member's quorum queues; absent: no AMQP listener. */
  readonly amqp?: Address;
}

/** PEM files for mutual TLS. */
export interface TlsConfig {
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
  /**
   * Peer TLS only: a peer's certificate must name the node id it speaks for
   * (subject CN or a DNS subjectAltName), so that one node's certificate
   * cannot be used to pose as another (default true; false accepts any
   * certificate the CA signed as any member, as before).
   */
  readonly verifyNodeIds: boolean;
}

/** A node's whole configuration, defaults filled in. */
export interface NodeConfig {
  readonly clusterId: string;
  readonly nodeId: string;
  readonly mode: 'push' | 'pull';
  readonly dataDir: string;
  readonly members: readonly MemberConfig[];
  /** Listen on this host instead of the member's advertised one (e.g. 0.0.0.0). */
  readonly listenHost: string | null;
  readonly tickMs: number;
  readonly electionTimeoutMinTicks: number;
  readonly electionTimeoutMaxTicks: number;
  readonly heartbeatIntervalTicks: number;
  readonly fetchMaxWaitTicks: number;
  readonly requestTimeoutMs: number;
  readonly snapshotEveryEntries: number;
  readonly snapshotEveryBytes: number;
  /** Key-value revisions kept behind the current one before the leader compacts automatically; 0 = never. */
  readonly historyRetentionRevisions: number;
  readonly logLevel: 'debug' | 'info' | 'warn' | 'error';
  readonly peerTls: TlsConfig | null;
  readonly clientTls: TlsConfig | null;
  /**
   * Client-protocol worker processes (src/server/protocol-workers): they
   * share the client port and do its TLS, HTTP/2, gRPC and protobuf work off
   * the Raft thread. 0 serves the client port on the Raft thread itself.
   */
  readonly protocolWorkers: number;
  /** Lifetime of an auth token from Authenticate, in seconds (etcd's --auth-token-ttl). */
  readonly authTokenTtlSeconds: number;
  /** bcrypt's cost for new password hashes (etcd's --bcrypt-cost), 4..31. */
  readonly bcryptCost: number;
  /** With clientTls: a request without a token acts as the user its client certificate's common name names (etcd's --client-cert-auth). */
  readonly clientCertAuth: boolean;
}

/**
 * The defaults: 25 ms ticks, elections after 500–1000 ms without a leader,
 * heartbeats every 100 ms, fetches parked up to 200 ms. (etcd's are 100 ms
 * heartbeats and a 1000 ms election timeout.) A 10 ms tick with 50 ms
 * heartbeats cost an idle node twice etcd's CPU in wakeups alone
 * (docs/bench/idle.md); these keep failover under a second or two.
 */
export const NODE_DEFAULTS = {
  mode: 'push',
  listenHost: null,
  tickMs: 25,
  electionTimeoutMinTicks: 20,
  electionTimeoutMaxTicks: 40,
  heartbeatIntervalTicks: 4,
  fetchMaxWaitTicks: 8,
  requestTimeoutMs: 5000,
  snapshotEveryEntries: 10_000,
  snapshotEveryBytes: 64 << 20,
  historyRetentionRevisions: 10_000,
  logLevel: 'info',
  peerTls: null,
  clientTls: null,
  protocolWorkers: 1,
  authTokenTtlSeconds: 300,
  bcryptCost: 10,
  clientCertAuth: false,
} as const;

/** A configuration problem, naming the setting: `config: members[1].peer: "x" is not host:port`. */
export class ConfigFileError extends Error {
  override readonly name = 'ConfigFileError';
  readonly setting: string;
  constructor(setting: string, problem: string, options?: ErrorOptions) {
    super(`config: ${setting}: ${problem}`, options);
    this.setting = setting;
  }
}

const KEYS = new Set(['clusterId', 'nodeId', 'mode', 'dataDir', 'members', 'listenHost', 'tickMs', 'electionTimeoutMinTicks',
  'electionTimeoutMaxTicks', 'heartbeatIntervalTicks', 'fetchMaxWaitTicks', 'requestTimeoutMs', 'snapshotEveryEntries', 'snapshotEveryBytes', 'historyRetentionRevisions',
  'logLevel', 'peerTls', 'clientTls', 'protocolWorkers', 'authTokenTtlSeconds', 'bcryptCost', 'clientCertAuth']);
const MEMBER_KEYS = new Set(['id', 'role', 'peer', 'client', 'metrics', 'amqp']);
const TLS_KEYS = new Set(['cert', 'key', 'ca']);
const PEER_TLS_KEYS = new Set(['cert', 'key', 'ca', 'verifyNodeIds']);
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Reads and checks a config file. */
export function loadConfigFile(path: string): NodeConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigFileError('--config', `cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigFileError('--config', `${path} is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  return parseConfig(raw);
}

/** Checks a parsed config object and fills in defaults. */
export function parseConfig(raw: unknown): NodeConfig {
  const o = object(raw, '(top level)', KEYS);
  const clusterId = name(o['clusterId'], 'clusterId');
  const nodeId = name(o['nodeId'], 'nodeId');
  const mode = oneOf(o['mode'] ?? NODE_DEFAULTS.mode, 'mode', ['push', 'pull'] as const);
  if (typeof o['dataDir'] !== 'string' || o['dataDir'] === '') throw new ConfigFileError('dataDir', 'a directory path is required');
  const dataDir = o['dataDir'];
  if (!Array.isArray(o['members']) || o['members'].length === 0) throw new ConfigFileError('members', 'a non-empty list of members is required');
  const members = o['members'].map((m: unknown, i: number) => member(m, `members[${i}]`));
  const seen = new Set<string>();
  const addrs = new Map<string, string>();
  members.forEach((m, i) => {
    if (seen.has(m.id)) throw new ConfigFileError(`members[${i}].id`, `"${m.id}" appears twice`);
    seen.add(m.id);
    for (const kind of ['peer', 'client', 'metrics', 'amqp'] as const) {
      const addr = m[kind];
      if (addr === undefined) continue;
      const a = `${addr.host}:${addr.port}`;
      const other = addrs.get(a);
      if (other !== undefined) throw new ConfigFileError(`members[${i}].${kind}`, `${a} is already used by ${other}`);
      addrs.set(a, `${m.id}.${kind}`);
    }
  });
  if (!seen.has(nodeId)) throw new ConfigFileError('nodeId', `"${nodeId}" is not one of the members (${[...seen].join(', ')})`);
  if (!members.some((m) => m.role === 'voter')) throw new ConfigFileError('members', 'at least one member must be a voter');
  const listenHost = o['listenHost'] === undefined || o['listenHost'] === null ? null : host(o['listenHost'], 'listenHost');
  const int = (k: string, dflt: number, min: number): number => {
    const v = o[k] ?? dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw new ConfigFileError(k, `${JSON.stringify(v)} must be an integer >= ${min}`);
    return v;
  };
  const cfg: NodeConfig = {
    clusterId, nodeId, mode, dataDir, members, listenHost,
    tickMs: int('tickMs', NODE_DEFAULTS.tickMs, 1),
    electionTimeoutMinTicks: int('electionTimeoutMinTicks', NODE_DEFAULTS.electionTimeoutMinTicks, 2),
    electionTimeoutMaxTicks: int('electionTimeoutMaxTicks', NODE_DEFAULTS.electionTimeoutMaxTicks, 3),
    heartbeatIntervalTicks: int('heartbeatIntervalTicks', NODE_DEFAULTS.heartbeatIntervalTicks, 1),
    fetchMaxWaitTicks: int('fetchMaxWaitTicks', NODE_DEFAULTS.fetchMaxWaitTicks, 1),
    requestTimeoutMs: int('requestTimeoutMs', NODE_DEFAULTS.requestTimeoutMs, 1),
    snapshotEveryEntries: int('snapshotEveryEntries', NODE_DEFAULTS.snapshotEveryEntries, 1),
    snapshotEveryBytes: int('snapshotEveryBytes', NODE_DEFAULTS.snapshotEveryBytes, 1),
    historyRetentionRevisions: int('historyRetentionRevisions', NODE_DEFAULTS.historyRetentionRevisions, 0),
    logLevel: oneOf(o['logLevel'] ?? NODE_DEFAULTS.logLevel, 'logLevel', ['debug', 'info', 'warn', 'error'] as const),
    peerTls: tls(o['peerTls'], 'peerTls', true),
    clientTls: tls(o['clientTls'], 'clientTls', false),
    protocolWorkers: int('protocolWorkers', NODE_DEFAULTS.protocolWorkers, 0),
    authTokenTtlSeconds: int('authTokenTtlSeconds', NODE_DEFAULTS.authTokenTtlSeconds, 1),
    bcryptCost: int('bcryptCost', NODE_DEFAULTS.bcryptCost, 4),
    clientCertAuth: o['clientCertAuth'] === undefined ? NODE_DEFAULTS.clientCertAuth : bool(o['clientCertAuth'], 'clientCertAuth'),
  };
  if (cfg.bcryptCost > 31) throw new ConfigFileError('bcryptCost', `${cfg.bcryptCost} must be at most 31`);
  if (cfg.clientCertAuth && cfg.clientTls === null) throw new ConfigFileError('clientCertAuth', 'needs clientTls (the client certificates it reads)');
  if (cfg.electionTimeoutMaxTicks <= cfg.electionTimeoutMinTicks) {
    throw new ConfigFileError('electionTimeoutMaxTicks', `${cfg.electionTimeoutMaxTicks} must exceed electionTimeoutMinTicks (${cfg.electionTimeoutMinTicks})`);
  }
  if (cfg.heartbeatIntervalTicks >= cfg.electionTimeoutMinTicks) {
    throw new ConfigFileError('heartbeatIntervalTicks', `${cfg.heartbeatIntervalTicks} must be below electionTimeoutMinTicks (${cfg.electionTimeoutMinTicks})`);
  }
  if (cfg.fetchMaxWaitTicks >= cfg.electionTimeoutMinTicks) {
    throw new ConfigFileError('fetchMaxWaitTicks', `${cfg.fetchMaxWaitTicks} must be below electionTimeoutMinTicks (${cfg.electionTimeoutMinTicks})`);
  }
  return cfg;
}

function bool(v: unknown, setting: string): boolean {
  if (typeof v !== 'boolean') throw new ConfigFileError(setting, `${JSON.stringify(v)} must be true or false`);
  return v;
}

/** Parses "host:port" (IPv4, a hostname, or [IPv6]:port). */
export function parseAddress(s: unknown, setting: string): Address {
  if (typeof s !== 'string') throw new ConfigFileError(setting, `${JSON.stringify(s)} is not a "host:port" string`);
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]\s]+):(\d{1,5})$/.exec(s);
  if (m === null) throw new ConfigFileError(setting, `"${s}" is not host:port`);
  const port = Number(m[2]);
  if (port < 1 || port > 65535) throw new ConfigFileError(setting, `port ${port} in "${s}" is outside 1-65535`);
  const h = (m[1] as string).replace(/^\[|\]$/g, '');
  return { host: host(h, setting), port };
}

/** Formats an address as host:port. */
export function formatAddress(a: Address): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

function host(h: unknown, setting: string): string {
  if (typeof h !== 'string' || h === '') throw new ConfigFileError(setting, 'a host is required');
  if (isIP(h) !== 0) return h;
  if (!/^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$/.test(h)) {
    throw new ConfigFileError(setting, `"${h}" is neither an IP address nor a host name`);
  }
  return h;
}

function member(raw: unknown, at: string): MemberConfig {
  const o = object(raw, at, MEMBER_KEYS);
  return {
    id: name(o['id'], `${at}.id`),
    role: oneOf(o['role'] ?? 'voter', `${at}.role`, ['voter', 'observer'] as const),
    peer: parseAddress(o['peer'], `${at}.peer`),
    client: parseAddress(o['client'], `${at}.client`),
    metrics: parseAddress(o['metrics'], `${at}.metrics`),
    ...(o['amqp'] !== undefined && o['amqp'] !== null ? { amqp: parseAddress(o['amqp'], `${at}.amqp`) } : {}),
  };
}

function tls(raw: unknown, at: string, peer: boolean): TlsConfig | null {
  if (raw === undefined || raw === null) return null;
  const o = object(raw, at, peer ? PEER_TLS_KEYS : TLS_KEYS);
  const file = (k: string): string => {
    const v = o[k];
    if (typeof v !== 'string' || v === '') throw new ConfigFileError(`${at}.${k}`, 'a PEM file path is required');
    if (!existsSync(v)) throw new ConfigFileError(`${at}.${k}`, `file ${v} does not exist`);
    return v;
  };
  const verify = o['verifyNodeIds'] ?? peer;
  if (typeof verify !== 'boolean') throw new ConfigFileError(`${at}.verifyNodeIds`, `${JSON.stringify(verify)} must be true or false`);
  return { cert: file('cert'), key: file('key'), ca: file('ca'), verifyNodeIds: verify };
}

function object(raw: unknown, at: string, keys: ReadonlySet<string>): Record<string, unknown> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigFileError(at, 'must be an object');
  const o = raw as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!keys.has(k)) throw new ConfigFileError(at === '(top level)' ? k : `${at}.${k}`, `unknown setting (known: ${[...keys].join(', ')})`);
  }
  return o;
}

function name(v: unknown, setting: string): string {
  if (typeof v !== 'string' || !NAME.test(v)) {
    throw new ConfigFileError(setting, `${JSON.stringify(v)} must be 1-64 characters of letters, digits, '.', '_' or '-'`);
  }
  return v;
}

function oneOf<T extends string>(v: unknown, setting: string, options: readonly T[]): T {
  if (typeof v !== 'string' || !options.includes(v as T)) {
    throw new ConfigFileError(setting, `${JSON.stringify(v)} must be one of ${options.join(', ')}`);
  }
  return v as T;
}

/** What identity.json holds: whose data this directory is, and the directory's own id. */
interface DataIdentity {
  readonly clusterId: string;
  readonly nodeId: string;
  /**
   * The directory id (docs/LOST-DISKS.md): drawn at random when the
   * directory is created, never changed. The cluster's configuration records
   * it, so a node restarted on an empty directory (a lost disk) gets a new
   * one and is not counted until it is re-added. Absent in directories made
   * before directory ids: one is drawn and written at the next start.
   */
  readonly dirId?: number;
}

/** The exclusive upper bound of directory ids (the core's DIR_ID_LIMIT). */
const DIR_ID_LIMIT = 2 ** 48;

const newDirId = (): number => randomInt(1, DIR_ID_LIMIT);

function writeIdentity(file: string, id: DataIdentity): void {
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, JSON.stringify(id) + '\n');
  const fd = openSync(tmp, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

/**
 * Claims the data directory for (clusterId, nodeId), or checks an earlier
 * claim, and returns the directory's id (drawn when the directory is
 * created). A directory with Raft data but no identity file is refused too:
 * it cannot be told apart from another node's data.
 */
export function claimDataDir(cfg: Pick<NodeConfig, 'clusterId' | 'nodeId' | 'dataDir'>): number {
  const file = join(cfg.dataDir, 'identity.json');
  if (existsSync(file)) {
    let id: DataIdentity;
    try {
      id = JSON.parse(readFileSync(file, 'utf8')) as DataIdentity;
    } catch (e) {
      throw new ConfigFileError('dataDir', `${file} is unreadable: ${(e as Error).message}`, { cause: e });
    }
    if (id.clusterId !== cfg.clusterId || id.nodeId !== cfg.nodeId) {
      throw new ConfigFileError('dataDir', `${cfg.dataDir} belongs to node "${id.nodeId}" of cluster "${id.clusterId}", not node "${cfg.nodeId}" of cluster "${cfg.clusterId}"`);
    }
    if (id.dirId === undefined) {
      const dirId = newDirId();
      writeIdentity(file, { ...id, dirId });
      return dirId;
    }
    if (!Number.isInteger(id.dirId) || id.dirId < 1 || id.dirId >= DIR_ID_LIMIT) {
      throw new ConfigFileError('dataDir', `${file}: dirId ${JSON.stringify(id.dirId)} is not an integer in [1, 2^48)`);
    }
    return id.dirId;
  }
  if (existsSync(cfg.dataDir) && readdirSync(cfg.dataDir).some((f) => f === 'log' || f === 'state' || f === 'snapshots')) {
    throw new ConfigFileError('dataDir', `${cfg.dataDir} holds Raft data but no identity.json: refusing to guess whose it is`);
  }
  mkdirSync(cfg.dataDir, { recursive: true });
  const dirId = newDirId();
  writeIdentity(file, { clusterId: cfg.clusterId, nodeId: cfg.nodeId, dirId });
  return dirId;
}
