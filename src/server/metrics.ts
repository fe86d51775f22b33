// Prometheus metrics and health for one node, on their own HTTP port:
// GET /metrics (text exposition), GET /healthz (200 when the node knows a
// leader, 503 otherwise), GET /status (the JSON `quorumlog status` prints).
// Built on prom-client; gauges read the runtime when scraped, histograms
// drain the runtime's bounded sample buffers.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { KvStore } from '../services/kv/store.js';
import type { Lessor } from './lessor.js';
import type { NodeRuntime } from '../node/runtime.js';
import type { Transport } from '../transport/types.js';
import type { ClientApi } from './client-api.js';
import type { ProtocolWorkers } from './protocol-workers/host.js';
import type { NodeConfig } from './config.js';
import type { AuthCounters } from './auth/authorizer.js';

/** What `quorumlog status` shows for one node. */
export interface NodeStatus {
  readonly id: string;
  /** The cluster this node belongs to (its config's clusterId): `quorumlog cluster` counts only its own cluster's nodes. */
  readonly clusterId: string;
  /** The node's process id (to kill -9 it in a tour). */
  readonly pid: number;
  readonly mode: 'push' | 'pull';
  readonly role: string;
  readonly term: number;
  readonly leader: string | null;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly lastIndex: number;
  /** This member has been removed from the cluster (its committed configuration no longer lists it): it serves no clients. */
  readonly removed: boolean;
  /** This node's data directory id (docs/LOST-DISKS.md), or null when it has none. */
  readonly dirId: number | null;
  /** Its data directory was lost or replaced: the configuration records another directory id for it, and it neither votes nor counts until re-added. */
  readonly lostDisk: { readonly recorded: number; readonly mine: number | null } | null;
  /** The configuration in force on this node: its log index, members, and the data directory id recorded for each (docs/LOST-DISKS.md). */
  readonly configuration: {
    readonly index: number;
    readonly committed: boolean;
    readonly voters: readonly string[];
    readonly observers: readonly string[];
    readonly dirIds: Readonly<Record<string, number>>;
  };
  /** Leader only: each other member's acknowledged position and lag in entries. */
  readonly replication: readonly { readonly id: string; readonly voter: boolean; readonly match: number; readonly lagEntries: number; readonly sendQueueBytes: number }[];
  /** This node's wall clock (ms since the epoch) when the status was taken. */
  readonly now: number;
  /** Client commands proposed on this node since it started (a counter: rates come from deltas). */
  readonly proposalsTotal: number;
  /** fdatasync latency of the log over the last (up to 256) syncs; null figures when none happened yet. */
  readonly fsync: { readonly samples: number; readonly p50Ms: number | null; readonly p99Ms: number | null; readonly lastMs: number | null };
  /** The last (up to 64) changes of this node's role, leader or term, oldest first; `at` is wall-clock ms. */
  readonly leadershipEvents: readonly { readonly at: number; readonly term: number; readonly leader: string | null; readonly role: string }[];
  /** Fault injection (QUORUMLOG_FAULT_INJECTION=1) only: the node drops every peer frame (the dashboard's partition button). */
  readonly partitioned: boolean;
  /** The `quorumlog cluster` that started this node (its pid and data directory), or null for a node started otherwise. */
  readonly supervisor: NodeSupervisor | null;
  /** The client-protocol worker processes (docs/ARCHITECTURE.md#threads-and-processes), or null when the Raft thread serves clients itself. */
  readonly protocolWorkers: { readonly alive: number; readonly restarts: number; readonly pids: readonly number[] } | null;
}

/** The `quorumlog cluster` process that started a node, as the node learnt it from its environment. */
export interface NodeSupervisor {
  readonly pid: number;
  readonly dataDir: string;
}

/** The q-quantile (0..1) of some samples, nearest rank; null when there are none. */
export function quantile(samples: readonly number[], q: number): number | null {
  if (samples.length === 0) return null;
  const sorted = [...samples].sort((x, y) => x - y);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number;
}

/** The node's status as JSON-ready data. */
export function nodeStatus(runtime: NodeRuntime, transport: Transport, config: NodeConfig, partitioned = false, supervisor: NodeSupervisor | null = null,
  workers: ProtocolWorkers | null = null): NodeStatus {
  const s = runtime.status();
  const last = s.lastIndex;
  const cfg = s.configuration;
  const peers = transport.stats().peers;
  const replication = s.progress.map((p) => ({
    id: p.id, voter: p.voter, match: p.match, lagEntries: Math.max(0, last - p.match),
    sendQueueBytes: peers[p.id]?.queuedBytes ?? 0,
  }));
  return {
    id: runtime.id, clusterId: config.clusterId, pid: process.pid, mode: config.mode, role: s.role, term: s.term, leader: s.leader,
    commitIndex: s.commitIndex, appliedIndex: s.appliedIndex, lastIndex: last, removed: runtime.removed,
    dirId: s.dirId, lostDisk: runtime.lostDisk, configuration: {
      index: cfg.index, committed: cfg.committed, voters: [...cfg.config.voters], observers: [...cfg.config.observers],
      dirIds: Object.fromEntries((cfg.config.dirIds ?? []).map((r) => [r.node, r.dirId])),
    },
    replication,
    now: Date.now(),
    proposalsTotal: runtime.metrics.proposalsTotal,
    fsync: {
      samples: runtime.metrics.fsyncRecentMs.length,
      p50Ms: quantile(runtime.metrics.fsyncRecentMs, 0.5),
      p99Ms: quantile(runtime.metrics.fsyncRecentMs, 0.99),
      lastMs: runtime.metrics.fsyncRecentMs.at(-1) ?? null,
    },
    leadershipEvents: runtime.leadershipEvents.map((e) => ({ ...e })),
    partitioned,
    supervisor,
    protocolWorkers: workers === null ? null : { alive: workers.stats().alive, restarts: workers.stats().restarts, pids: workers.pids() },
  };
}

/** Registers the node's metrics on a fresh registry. */
export function nodeRegistry(runtime: NodeRuntime, transport: Transport, config: NodeConfig, client?: ClientApi): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ node: config.nodeId });
  // The event-loop delay monitor samples every 100 ms (prom-client's default 10 ms wakes an idle node 100 times a second).
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 100 });
  const m = runtime.metrics;
  const gauge = (name: string, help: string, read: () => number): void => {
    new Gauge({ name, help, registers: [registry], collect() { this.set(read()); } });
  };
  gauge('quorumlog_term', 'Current Raft term.', () => runtime.term);
  gauge('quorumlog_commit_index', 'Highest log index known committed.', () => runtime.commitIndex);
  gauge('quorumlog_applied_index', 'Highest log index applied to the state machine.', () => runtime.appliedIndex);
  gauge('quorumlog_last_index', 'Last index in the local log.', () => runtime.status().lastIndex);
  gauge('quorumlog_is_leader', '1 on the leader, else 0.', () => (runtime.isLeader() ? 1 : 0));
  new Gauge({
    name: 'quorumlog_role', help: 'The node\'s role (1 for the current one).', labelNames: ['role'], registers: [registry],
    collect() {
      const role = runtime.status().role;
      for (const r of ['follower', 'observer', 'preCandidate', 'candidate', 'leader']) this.set({ role: r }, role === r ? 1 : 0);
    },
  });
  const counter = (name: string, help: string, read: () => number): void => {
    let last = 0;
    new Counter({ name, help, registers: [registry], collect() { const v = read(); this.inc(Math.max(0, v - last)); last = v; } });
  };
  counter('quorumlog_proposals_total', 'Client commands proposed on this node (rate() gives proposals per second).', () => m.proposalsTotal);
  counter('quorumlog_entries_proposed_total', 'Log entries proposed on this node (batches).', () => m.entriesProposedTotal);
  counter('quorumlog_forwarded_writes_total', 'Client writes forwarded to the leader.', () => m.forwardedWrites);
  counter('quorumlog_requests_timed_out_total', 'Client requests that timed out.', () => m.timedOut);
  counter('quorumlog_writes_reproposed_total', 'Client writes proposed again after a leader change, their first entry known never to commit.', () => m.reproposedWrites);
  counter('quorumlog_writes_leader_changed_unknown_total', 'Client writes failed with "leader changed" whose outcome is unknown.', () => m.leaderChangedUnknown);
  counter('quorumlog_requests_rejected_total', 'Client requests refused at once because a bounded queue was full.', () => m.rejectedTooMany);
  counter('quorumlog_snapshots_taken_total', 'Snapshots taken (the log compacted).', () => m.snapshotsTaken);
  counter('quorumlog_snapshots_installed_total', 'Snapshots installed from the leader.', () => m.snapshotsInstalled);
  counter('quorumlog_malformed_frames_total', 'Frames from peers dropped as malformed (the connection is closed).',
    () => transport.stats().malformedFrames + m.malformedForwardFrames);
  counter('quorumlog_refused_handshakes_total', 'Peer connections refused at the handshake (wrong cluster, unknown node).',
    () => transport.stats().refusedHandshakes);
  if (client !== undefined) {
    counter('quorumlog_client_invalid_requests_total', 'etcd API requests refused as malformed (INVALID_ARGUMENT).', () => client.stats.invalidRequests);
    counter('quorumlog_client_errors_total', 'etcd API requests answered with an etcd error.', () => client.stats.etcdErrors);
    counter('quorumlog_client_internal_errors_total', 'etcd API requests that failed inside the server (INTERNAL).', () => client.stats.internalErrors);
    gauge('quorumlog_client_watch_streams', 'Open etcd Watch streams.', () => client.watchStreams());
    const workers = client.workers;
    if (workers !== null) {
      gauge('quorumlog_protocol_workers_alive', 'Client-protocol worker processes serving now.', () => workers.stats().alive);
      counter('quorumlog_protocol_worker_restarts_total', 'Client-protocol workers that died and were replaced.', () => workers.stats().restarts);
      counter('quorumlog_protocol_worker_batches_total', 'Batches of hot requests the Raft thread took from the workers.', () => workers.stats().batches);
      counter('quorumlog_protocol_worker_requests_total', 'Hot requests (Put, Range, DeleteRange, Txn) the Raft thread took from the workers.', () => workers.stats().requests);
      counter('quorumlog_protocol_worker_orphaned_answers_total', 'Answers dropped because their worker had died (the client saw its connection drop).', () => workers.stats().orphanedAnswers);
      counter('quorumlog_protocol_worker_proxied_total', 'Calls the workers passed to the Raft process\'s gRPC server (everything but the hot methods).', () => workers.stats().proxied);
      gauge('quorumlog_client_connections', 'Client connections open on the workers.', () => workers.stats().connections);
    }
  }
  new Histogram({
    name: 'quorumlog_batch_commands', help: 'Client commands per proposed log entry.', registers: [registry],
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
    collect() { for (const x of m.batchSizes.splice(0)) this.observe(x); },
  });
  new Histogram({
    name: 'quorumlog_fsync_duration_seconds', help: 'Log fdatasync latency.', registers: [registry],
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    collect() { for (const x of m.fsyncMs.splice(0)) this.observe(x / 1000); },
  });
  new Gauge({
    name: 'quorumlog_peer_replication_lag_entries', help: 'Leader only: entries each member is behind the leader\'s log.',
    labelNames: ['peer'], registers: [registry],
    collect() {
      this.reset();
      for (const r of nodeStatus(runtime, transport, config).replication) this.set({ peer: r.id }, r.lagEntries);
    },
  });
  new Gauge({
    name: 'quorumlog_peer_inflight_bytes', help: 'Bytes queued to each peer, not yet written to its connection.',
    labelNames: ['peer'], registers: [registry],
    collect() {
      this.reset();
      for (const [peer, s] of Object.entries(transport.stats().peers)) this.set({ peer }, s.queuedBytes);
    },
  });
  new Gauge({
    name: 'quorumlog_peer_connected', help: '1 while the outgoing connection to a peer is up.',
    labelNames: ['peer'], registers: [registry],
    collect() {
      this.reset();
      for (const [peer, s] of Object.entries(transport.stats().peers)) this.set({ peer }, s.connected ? 1 : 0);
    },
  });
  return registry;
}

/** Answers a request the metrics server does not know itself (the dashboard); returns false to leave it to the 404. */
export type ExtraHandler = (req: IncomingMessage, res: ServerResponse) => boolean;

/** Serves /metrics, /healthz and /status (and what `extra` handles); resolves once listening. */
export async function startMetricsServer(
  host: string, port: number, registry: Registry, status: () => NodeStatus, extra?: ExtraHandler,
): Promise<Server> {
  const server = createServer((req, res) => {
    const url = req.url ?? '/';
    if (extra !== undefined && extra(req, res)) return;
    if (url === '/metrics') {
      registry.metrics().then((text) => {
        res.writeHead(200, { 'content-type': registry.contentType });
        res.end(text);
      }, (err: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(String(err));
      });
    } else if (url === '/healthz') {
      const s = status();
      const ok = s.leader !== null && !s.removed && s.lostDisk === null;
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' });
      res.end(JSON.stringify({
        ok, leader: s.leader, role: s.role, term: s.term,
        ...(s.removed ? { removed: true, error: 'the member has been permanently removed from the cluster' } : {}),
        ...(s.lostDisk !== null ? { lostDisk: s.lostDisk, error: `data directory ${s.lostDisk.mine ?? '(none)'} is not the one the cluster records (${s.lostDisk.recorded}): re-add this member (docs/LOST-DISKS.md)` } : {}),
      }) + '\n');
    } else if (url === '/status') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(status()) + '\n');
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found: try /dashboard, /metrics, /healthz or /status\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}

/** Lease metrics for a node's /metrics: how many leases its applied state holds, and what its lessor did. */
export function registerLeaseMetrics(registry: Registry, o: { store: KvStore; lessor: Lessor }): void {
  new Gauge({ name: 'quorumlog_leases', help: 'Leases in this node\'s applied key-value state.', registers: [registry], collect() { this.set(o.store.leases().length); } });
  new Gauge({ name: 'quorumlog_lessor_deciding', help: '1 while this node leads and decides lease expiry (its lease epoch applied), else 0.', registers: [registry],
    collect() { this.set(o.lessor.deciding ? 1 : 0); } });
  const counter = (name: string, help: string, read: () => number): void => {
    let last = 0;
    new Counter({ name, help, registers: [registry], collect() { const v = read(); this.inc(Math.max(0, v - last)); last = v; } });
  };
  counter('quorumlog_lease_renewals_total', 'Keep-alives this node answered as the deciding leader.', () => o.lessor.stats.renewals);
  counter('quorumlog_lease_expiries_proposed_total', 'Revokes of expired leases this node proposed as leader (retries included).', () => o.lessor.stats.revokesProposed);
  counter('quorumlog_lease_epochs_proposed_total', 'Lease epochs this node proposed on becoming leader (retries included).', () => o.lessor.stats.epochsProposed);
}

/** Why a request or a command was refused by auth: the label values of quorumlog_auth_refused_total. */
export const AUTH_REFUSAL_REASONS = ['invalid_token', 'user_empty', 'permission_denied', 'old_revision', 'auth_failed', 'throttled', 'busy'] as const;
export type AuthRefusalReason = (typeof AUTH_REFUSAL_REASONS)[number];

/** Where the auth metrics come from (src/server/auth): counts only, never names or tokens. */
export interface AuthMetricSources {
  readonly state: { readonly enabled: boolean; readonly revision: number; userNames(): readonly string[]; roleNames(): readonly string[] };
  /** The server's checks where requests arrive (Authorizer.counters). */
  readonly authorizer: { readonly counters: AuthCounters };
  /** The auth gate's refusals where commands apply (AuthGate.refused). */
  readonly gate: { readonly refused: { readonly oldRevision: number; readonly userEmpty: number; readonly permissionDenied: number } };
  readonly throttle: { readonly stats: { readonly refused: number } };
  readonly hasher: { readonly stats: { readonly rejectedBusy: number } };
}

/** Each reason's count so far, summed over the places that refuse for it. */
export function authRefusals(o: AuthMetricSources): Record<AuthRefusalReason, number> {
  const c = o.authorizer.counters;
  const g = o.gate.refused;
  return {
    invalid_token: c.invalidTokens,
    user_empty: c.missingIdentity + g.userEmpty,
    permission_denied: c.permissionDenied + g.permissionDenied,
    old_revision: g.oldRevision,
    auth_failed: c.authFailed,
    throttled: o.throttle.stats.refused,
    busy: o.hasher.stats.rejectedBusy,
  };
}

/** Registers etcd auth's metrics (docs/OPERATIONS.md "Metrics"). */
export function registerAuthMetrics(registry: Registry, o: AuthMetricSources): void {
  new Gauge({ name: 'quorumlog_auth_enabled', help: '1 while etcd auth is enabled, else 0.', registers: [registry], collect() { this.set(o.state.enabled ? 1 : 0); } });
  new Gauge({ name: 'quorumlog_auth_revision', help: 'The auth revision this node has applied (one more with every change to users, roles or permissions).',
    registers: [registry], collect() { this.set(o.state.revision); } });
  new Gauge({ name: 'quorumlog_auth_users', help: 'Users in this node\'s applied auth state.', registers: [registry], collect() { this.set(o.state.userNames().length); } });
  new Gauge({ name: 'quorumlog_auth_roles', help: 'Roles in this node\'s applied auth state.', registers: [registry], collect() { this.set(o.state.roleNames().length); } });
  const last: Record<AuthRefusalReason, number> = Object.fromEntries(AUTH_REFUSAL_REASONS.map((r) => [r, 0])) as Record<AuthRefusalReason, number>;
  new Counter({
    name: 'quorumlog_auth_refused_total',
    help: 'Requests and commands refused by auth, by reason: invalid_token, user_empty and permission_denied where requests arrive and (the last two) '
      + 'where commands apply; old_revision where commands apply; auth_failed (a wrong user or password), throttled (too many failed logins '
      + 'from one address) and busy (the password hasher\'s queue full) at Authenticate.',
    labelNames: ['reason'], registers: [registry],
    collect() {
      const now = authRefusals(o);
      for (const r of AUTH_REFUSAL_REASONS) {
        this.inc({ reason: r }, Math.max(0, now[r] - last[r]));
        last[r] = now[r];
      }
    },
  });
}
