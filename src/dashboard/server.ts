// The dashboard (docs/DASHBOARD.md), served by every node on its metrics
// port: GET /dashboard (the page), its static files, GET /dashboard/events
// (server-sent events: one JSON snapshot of the whole cluster per poll), and,
// in a cluster started by `quorumlog cluster`, POST /dashboard/control/<action>
// proxied to that command's control server. With fault injection enabled the
// node also answers POST /debug/partition and /debug/heal.
//
// Cost: the aggregator polls the members' /status only while at least one
// events stream is open. With nobody watching it holds no timer, no socket
// and does no work (idle CPU is a benchmarked target, docs/bench/idle.md).

import { existsSync, readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NodeStatus } from '../server/metrics.js';

/** A member the dashboard watches: its id and its metrics address (host:port). */
export interface WatchedMember {
  readonly id: string;
  readonly role: 'voter' | 'observer';
  readonly metrics: string;
}

/** One member in a snapshot: its status, or null when it did not answer. */
export interface MemberView {
  readonly id: string;
  readonly configuredRole: 'voter' | 'observer';
  readonly metrics: string;
  /** The role to draw: the node's own, or 'down' when it did not answer. */
  readonly role: string;
  /** From the cluster's control server, when there is one: running, killed, paused, exited. */
  readonly process: string | null;
  readonly status: NodeStatus | null;
}

/** What /dashboard/events sends, once per poll. */
export interface DashboardSnapshot {
  /** Wall-clock ms when the poll finished. */
  readonly at: number;
  /** The node serving the page. */
  readonly servedBy: string;
  readonly mode: 'push' | 'pull';
  /** True when the page may show the kill/pause/restart/partition buttons. */
  readonly controls: boolean;
  /** The leader with the highest term that some member reports being, or null. */
  readonly leader: string | null;
  readonly term: number;
  readonly members: readonly MemberView[];
  /** Client proposals per second, summed over the members, one point per poll, the last five minutes. */
  readonly proposalsPerSecond: readonly { readonly at: number; readonly perSecond: number }[];
  /** Role, leader and term changes the members report, merged, oldest first (the last ten minutes). */
  readonly events: readonly { readonly at: number; readonly node: string; readonly term: number; readonly leader: string | null; readonly role: string }[];
}

export interface DashboardOptions {
  readonly self: string;
  readonly mode: 'push' | 'pull';
  readonly members: () => readonly WatchedMember[];
  /** The control server of `quorumlog cluster` (QUORUMLOG_CLUSTER_CONTROL), or null. */
  readonly controlUrl: string | null;
  readonly pollMs?: number;
  readonly historyMs?: number;
  /** Fetches one member's status (tests replace it); null when it does not answer. */
  readonly fetchStatus?: (m: WatchedMember, timeoutMs: number) => Promise<NodeStatus | null>;
}

async function httpStatus(m: WatchedMember, timeoutMs: number): Promise<NodeStatus | null> {
  try {
    const res = await fetch(`http://${m.metrics}/status`, { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) return null;
    return await res.json() as NodeStatus;
  } catch {
    return null;
  }
}

/** Polls the members while someone watches, and pushes snapshots to every open events stream. */
export class DashboardAggregator {
  private readonly clients = new Set<ServerResponse>();
  private timer: NodeJS.Timeout | null = null;
  private polling = false;
  private readonly pollMs: number;
  private readonly historyMs: number;
  private readonly fetchStatus: (m: WatchedMember, timeoutMs: number) => Promise<NodeStatus | null>;
  private readonly lastTotals = new Map<string, { total: number; at: number }>();
  private readonly rates: { at: number; perSecond: number }[] = [];
  private readonly events = new Map<string, DashboardSnapshot['events'][number]>();
  /** Polls done (tests read it). */
  polls = 0;

  constructor(private readonly o: DashboardOptions) {
    this.pollMs = o.pollMs ?? 500;
    this.historyMs = o.historyMs ?? 5 * 60_000;
    this.fetchStatus = o.fetchStatus ?? httpStatus;
  }

  /** True while a poll is scheduled or running (only while some events stream is open). */
  get active(): boolean {
    return this.timer !== null || this.polling;
  }

  get watchers(): number {
    return this.clients.size;
  }

  /** Starts an events stream on `res`; it ends when the client goes away. */
  addClient(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
    res.write('retry: 1000\n\n');
    this.clients.add(res);
    const drop = (): void => {
      this.clients.delete(res);
      if (this.clients.size === 0) this.stop();
    };
    req.on('close', drop);
    res.on('close', drop);
    if (this.clients.size === 1 && !this.active) void this.poll();
  }

  /** Ends every stream and stops polling (the node is stopping). */
  close(): void {
    for (const c of this.clients) c.end();
    this.clients.clear();
    this.stop();
  }

  private stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private async poll(): Promise<void> {
    this.timer = null;
    if (this.clients.size === 0) return;
    this.polling = true;
    let snap: DashboardSnapshot;
    try {
      snap = await this.snapshot();
    } finally {
      this.polling = false;
    }
    this.polls++;
    const line = `data: ${JSON.stringify(snap)}\n\n`;
    for (const c of this.clients) c.write(line);
    if (this.clients.size > 0) this.timer = setTimeout(() => void this.poll(), this.pollMs);
  }

  /** Asks every member (and the control server) once and builds the snapshot. */
  async snapshot(): Promise<DashboardSnapshot> {
    const members = this.o.members();
    const timeout = Math.max(200, Math.min(1000, this.pollMs));
    const [statuses, processes] = await Promise.all([
      Promise.all(members.map((m) => this.fetchStatus(m, timeout))),
      this.processStates(timeout),
    ]);
    const now = Date.now();
    let leader: string | null = null;
    let term = 0;
    let perSecond = 0;
    let rated = false;
    const views: MemberView[] = members.map((m, i) => {
      const s = statuses[i] ?? null;
      if (s !== null) {
        term = Math.max(term, s.term);
        const prev = this.lastTotals.get(m.id);
        if (prev !== undefined && s.now > prev.at) {
          perSecond += Math.max(0, s.proposalsTotal - prev.total) / ((s.now - prev.at) / 1000);
          rated = true;
        }
        this.lastTotals.set(m.id, { total: s.proposalsTotal, at: s.now });
        for (const e of s.leadershipEvents) this.events.set(`${m.id}@${e.at}@${e.term}@${e.role}`, { ...e, node: m.id });
      }
      return { id: m.id, configuredRole: m.role, metrics: m.metrics, role: s === null ? 'down' : s.role, process: processes?.[m.id] ?? null, status: s };
    });
    for (const v of views) {
      if (v.status?.role === 'leader' && v.status.term === term) leader = v.id;
    }
    if (rated) this.rates.push({ at: now, perSecond: Math.round(perSecond * 10) / 10 });
    while (this.rates.length > 0 && (this.rates[0] as { at: number }).at < now - this.historyMs) this.rates.shift();
    const eventHorizon = now - 2 * this.historyMs;
    for (const [k, e] of this.events) if (e.at < eventHorizon) this.events.delete(k);
    const events = [...this.events.values()].sort((a, b) => a.at - b.at);
    return {
      at: now, servedBy: this.o.self, mode: this.o.mode, controls: this.o.controlUrl !== null, leader, term,
      members: views, proposalsPerSecond: [...this.rates], events,
    };
  }

  private async processStates(timeoutMs: number): Promise<Record<string, string> | null> {
    if (this.o.controlUrl === null) return null;
    try {
      const res = await fetch(`${this.o.controlUrl}/state`, { signal: AbortSignal.timeout(timeoutMs) });
      return res.ok ? await res.json() as Record<string, string> : null;
    } catch {
      return null;
    }
  }
}

/** The folder of the page's files (src/dashboard/page), found from this module in src/ or any build output folder. */
export function pageDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'src', 'dashboard', 'page');
    if (existsSync(join(dir, 'package.json')) && existsSync(join(candidate, 'index.html'))) return candidate;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`src/dashboard/page/index.html not found above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

const PAGE_FILES: Readonly<Record<string, string>> = {
  'index.html': 'text/html; charset=utf-8',
  'dashboard.js': 'text/javascript; charset=utf-8',
  'dashboard.css': 'text/css; charset=utf-8',
};

export const CONTROL_ACTIONS = ['kill', 'pause', 'resume', 'restart', 'partition', 'heal'] as const;
export type ControlAction = typeof CONTROL_ACTIONS[number];

export interface DashboardHandlerOptions extends DashboardOptions {
  /** Fault injection: switches this node's partition (null when not enabled: /debug/* answers 404). */
  readonly setPartitioned: ((on: boolean) => void) | null;
}

/** The dashboard's routes for the metrics server, and the aggregator behind them. */
export function dashboardHandler(o: DashboardHandlerOptions): {
  readonly aggregator: DashboardAggregator;
  handle(req: IncomingMessage, res: ServerResponse): boolean;
} {
  const aggregator = new DashboardAggregator(o);
  const cache = new Map<string, Buffer>();
  const file = (name: string): Buffer => {
    let b = cache.get(name);
    if (b === undefined) {
      b = readFileSync(join(pageDir(), name));
      cache.set(name, b);
    }
    return b;
  };
  const send = (res: ServerResponse, code: number, type: string, body: string | Buffer): void => {
    res.writeHead(code, { 'content-type': type, 'cache-control': 'no-store' });
    res.end(body);
  };
  return {
    aggregator,
    handle(req, res): boolean {
      const url = new URL(req.url ?? '/', 'http://x');
      const path = url.pathname;
      if (path === '/' && req.method === 'GET') {
        res.writeHead(302, { location: '/dashboard' });
        res.end();
        return true;
      }
      if (path === '/dashboard' || path === '/dashboard/') {
        send(res, 200, PAGE_FILES['index.html'] as string, file('index.html'));
        return true;
      }
      if (path === '/dashboard/events') {
        aggregator.addClient(req, res);
        return true;
      }
      const name = path.startsWith('/dashboard/') ? path.slice('/dashboard/'.length) : '';
      const type = PAGE_FILES[name];
      if (type !== undefined) {
        send(res, 200, type, file(name));
        return true;
      }
      if (path.startsWith('/dashboard/control/')) {
        const action = path.slice('/dashboard/control/'.length);
        const node = url.searchParams.get('node') ?? '';
        if (req.method !== 'POST') send(res, 405, 'text/plain', 'POST only\n');
        else if (o.controlUrl === null) send(res, 404, 'text/plain', 'no controls: this node was not started by `quorumlog cluster`\n');
        else if (!(CONTROL_ACTIONS as readonly string[]).includes(action)) send(res, 404, 'text/plain', `unknown action ${action}\n`);
        else {
          fetch(`${o.controlUrl}/${action}?node=${encodeURIComponent(node)}`, { method: 'POST', signal: AbortSignal.timeout(15_000) })
            .then(async (r) => send(res, r.status, 'application/json', await r.text()))
            .catch((e: unknown) => send(res, 502, 'text/plain', `the cluster's control server did not answer: ${String(e)}\n`));
        }
        return true;
      }
      if (path === '/debug/partition' || path === '/debug/heal') {
        if (o.setPartitioned === null) return false; // 404: fault injection is off
        if (req.method !== 'POST') send(res, 405, 'text/plain', 'POST only\n');
        else {
          o.setPartitioned(path === '/debug/partition');
          send(res, 200, 'application/json', JSON.stringify({ partitioned: path === '/debug/partition' }) + '\n');
        }
        return true;
      }
      return false;
    },
  };
}
