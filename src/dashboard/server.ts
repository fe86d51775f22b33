// The dashboard (docs/DASHBOARD.md), served by every node on its metrics
// port: GET /dashboard (the page), its static files, GET /dashboard/events
// (server-sent events: one JSON snapshot of the whole cluster per poll),
// GET /dashboard/history (this node's leaders by term, history.ts, which the
// other members' dashboards merge), and, in a cluster started by `quorumlog
// cluster`, POST /dashboard/control/<action> proxied to that command's control
// server. With fault injection enabled the node also answers POST
// /debug/partition and /debug/heal.
//
// Following the cluster (docs/DASHBOARD.md): when the node serving the page
// dies, the page navigates to another member's own dashboard (same tab) rather
// than reading the other members across origins, so that no stream needs
// CORS and the address bar names the node serving the page. The one
// cross-origin request is a control aimed at the serving node itself, sent
// through another member (page-logic.ts, controlRoute): the control route
// answers it with CORS headers for the members' own origins only, and
// refuses a control request from any other origin (a page elsewhere on the
// web could otherwise kill the user's nodes by posting a form).
//
// Cost: the aggregator polls the members' /status only while at least one
// events stream is open. With nobody watching it holds no timer, no socket
// and does no work (idle CPU is a benchmarked target, docs/bench/idle.md).

import { existsSync, readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { NodeStatus } from '../server/metrics.js';
import { packageDir } from '../util/package-dir.js';
import { LeaderHistory, LeaderHistoryFormatError, leaderTermsFromEvents, parseLeaderTerms, type LeaderTerm } from './history.js';

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
  /** Whether the member's own page has controls, as its /dashboard/history last said; null when not known. */
  readonly controls: boolean | null;
  readonly status: NodeStatus | null;
}

/**
 * The control server behind the buttons, as the serving node sees it:
 * 'none' when the node was not started by `quorumlog cluster` (no
 * QUORUMLOG_CLUSTER_CONTROL), 'answering', or 'silent' when it was but that
 * command does not answer (it is stopping, or was stopped).
 */
export type ControlServerState = 'none' | 'answering' | 'silent';

/** What /dashboard/events sends, once per poll. */
export interface DashboardSnapshot {
  /** Wall-clock ms when the poll finished. */
  readonly at: number;
  /** The node serving the page. */
  readonly servedBy: string;
  readonly mode: 'push' | 'pull';
  /** True when the page may show the kill/pause/restart/partition buttons (the control server answered this poll). */
  readonly controls: boolean;
  /** Why there are buttons or not (the page says it when there are none). */
  readonly controlServer: ControlServerState;
  /** The leader with the highest term that some member reports being, or null. */
  readonly leader: string | null;
  readonly term: number;
  readonly members: readonly MemberView[];
  /** Client proposals per second, summed over the members, one point per poll, the last five minutes. */
  readonly proposalsPerSecond: readonly { readonly at: number; readonly perSecond: number }[];
  /** Role, leader and term changes the members report, merged, oldest first (the last ten minutes). */
  readonly events: readonly { readonly at: number; readonly node: string; readonly term: number; readonly leader: string | null; readonly role: string }[];
  /** Leaders by term, merged from every member's history (history.ts), ascending by term; those of the last ten minutes. */
  readonly leaderTerms: readonly LeaderTerm[];
}

/** What GET /dashboard/history answers. */
export interface HistoryReply {
  readonly node: string;
  /** Whether this node's page has controls (it was started by `quorumlog cluster`). */
  readonly controls: boolean;
  readonly leaderTerms: readonly LeaderTerm[];
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
  /** Fetches one member's GET /dashboard/history, unchecked (tests replace it); null when it does not answer. */
  readonly fetchHistory?: (m: WatchedMember, timeoutMs: number) => Promise<unknown>;
  /** This node's leader history (the node feeds it its own role and leader changes); the aggregator merges the members' into it. */
  readonly history: LeaderHistory;
  readonly logger?: Logger;
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

async function httpHistory(m: WatchedMember, timeoutMs: number): Promise<unknown> {
  try {
    const res = await fetch(`http://${m.metrics}/dashboard/history`, { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) return null;
    return await res.json() as unknown;
  } catch {
    return null;
  }
}

/** Checks a GET /dashboard/history reply; throws LeaderHistoryFormatError. */
export function parseHistoryReply(value: unknown, where: string): HistoryReply {
  const o = value as { node?: unknown; controls?: unknown; leaderTerms?: unknown } | null;
  if (typeof o !== 'object' || o === null || typeof o.node !== 'string' || typeof o.controls !== 'boolean') {
    throw new LeaderHistoryFormatError(where, 'not an object with node, controls and leaderTerms');
  }
  return { node: o.node, controls: o.controls, leaderTerms: parseLeaderTerms(o.leaderTerms, where) };
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
  private readonly fetchHistory: (m: WatchedMember, timeoutMs: number) => Promise<unknown>;
  /** For each member, the (pid, term) its history was last read at: read again when either changes. */
  private readonly historyReadAt = new Map<string, string>();
  private readonly peerControls = new Map<string, boolean>();
  /** Polls done (tests read it). */
  polls = 0;
  /** Members' histories that were malformed and ignored. */
  badHistories = 0;

  constructor(private readonly o: DashboardOptions) {
    this.pollMs = o.pollMs ?? 500;
    this.historyMs = o.historyMs ?? 5 * 60_000;
    this.fetchStatus = o.fetchStatus ?? httpStatus;
    this.fetchHistory = o.fetchHistory ?? httpHistory;
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
    await this.mergeHistories(members, statuses, timeout);
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
      return {
        id: m.id, configuredRole: m.role, metrics: m.metrics, role: s === null ? 'down' : s.role, process: processes?.[m.id] ?? null,
        controls: m.id === this.o.self ? processes !== null : this.peerControls.get(m.id) ?? null, status: s,
      };
    });
    for (const v of views) {
      if (v.status?.role === 'leader' && v.status.term === term) leader = v.id;
    }
    if (rated) this.rates.push({ at: now, perSecond: Math.round(perSecond * 10) / 10 });
    while (this.rates.length > 0 && (this.rates[0] as { at: number }).at < now - this.historyMs) this.rates.shift();
    const eventHorizon = now - 2 * this.historyMs;
    for (const [k, e] of this.events) if (e.at < eventHorizon) this.events.delete(k);
    const events = [...this.events.values()].sort((a, b) => a.at - b.at);
    const controlServer: ControlServerState = this.o.controlUrl === null ? 'none' : processes === null ? 'silent' : 'answering';
    return {
      at: now, servedBy: this.o.self, mode: this.o.mode, controls: controlServer === 'answering', controlServer, leader, term,
      members: views, proposalsPerSecond: [...this.rates], events,
      leaderTerms: this.o.history.list().filter((t) => t.at >= eventHorizon),
    };
  }

  /**
   * Merges into this node's history the leaders each answering member's
   * status names, and that member's whole history (GET /dashboard/history)
   * when it is new to this aggregator or its pid or term moved since it was
   * last read: a steady cluster costs no extra request, a restarted member or
   * a new term one each.
   */
  private async mergeHistories(members: readonly WatchedMember[], statuses: readonly (NodeStatus | null)[], timeoutMs: number): Promise<void> {
    const stale: WatchedMember[] = [];
    members.forEach((m, i) => {
      const s = statuses[i] ?? null;
      if (s === null) return;
      this.o.history.add(leaderTermsFromEvents(s.leadershipEvents), m.id);
      const key = `${s.pid}/${s.term}`;
      if (m.id !== this.o.self && this.historyReadAt.get(m.id) !== key) stale.push(m);
    });
    const replies = await Promise.all(stale.map((m) => this.fetchHistory(m, timeoutMs)));
    stale.forEach((m, i) => {
      const raw = replies[i];
      if (raw === null || raw === undefined) return; // no answer: read again next poll
      const s = statuses[members.indexOf(m)];
      if (s !== null && s !== undefined) this.historyReadAt.set(m.id, `${s.pid}/${s.term}`);
      try {
        const reply = parseHistoryReply(raw, `${m.id}'s /dashboard/history`);
        this.peerControls.set(m.id, reply.controls);
        this.o.history.add(reply.leaderTerms, m.id);
      } catch (e) {
        this.badHistories++;
        this.o.logger?.warn({ err: e, member: m.id }, 'ignored a malformed leader history from a member');
      }
    });
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
  return packageDir('src/dashboard/page', 'index.html');
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

/** The page's logic module, compiled by tsc beside this one (page-logic.ts), served as /dashboard/page-logic.js. */
function pageLogicFile(): string {
  const file = fileURLToPath(new URL('./page-logic.js', import.meta.url));
  if (!existsSync(file)) throw new Error(`${file} not found: the dashboard runs from the compiled build (npx tsc -p tsconfig.json)`);
  return file;
}

/**
 * Whether a control request may act, from its Origin header: none (not a
 * browser), this node's own origin (the page it served), or a member's
 * dashboard origin (a page on another member routing a control aimed at
 * its own node through this one). Returns the origin to allow with CORS
 * headers, '' for no header, or null to refuse.
 */
export function controlOrigin(origin: string | undefined, host: string | undefined, members: readonly WatchedMember[]): string | null {
  if (origin === undefined) return '';
  if (host !== undefined && origin === `http://${host}`) return '';
  return members.some((m) => origin === `http://${m.metrics}`) ? origin : null;
}

/** The dashboard's routes for the metrics server, and the aggregator behind them. */
export function dashboardHandler(o: DashboardHandlerOptions): {
  readonly aggregator: DashboardAggregator;
  /** Control requests refused for their origin (neither this node's page nor a member's). */
  readonly refusedControls: number;
  handle(req: IncomingMessage, res: ServerResponse): boolean;
} {
  const aggregator = new DashboardAggregator(o);
  let refusedControls = 0;
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
    get refusedControls(): number {
      return refusedControls;
    },
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
      if (path === '/dashboard/history' && req.method === 'GET') {
        const reply: HistoryReply = { node: o.self, controls: o.controlUrl !== null, leaderTerms: o.history.list() };
        send(res, 200, 'application/json', JSON.stringify(reply) + '\n');
        return true;
      }
      if (path === '/dashboard/page-logic.js') {
        let body: Buffer;
        try {
          body = cache.get('page-logic.js') ?? readFileSync(pageLogicFile());
          cache.set('page-logic.js', body);
        } catch (e) {
          o.logger?.error({ err: e }, 'cannot serve the dashboard page\'s logic module');
          send(res, 500, 'text/plain', `${String(e)}\n`);
          return true;
        }
        send(res, 200, 'text/javascript; charset=utf-8', body);
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
        const allow = controlOrigin(req.headers.origin, req.headers.host, o.members());
        if (allow === null) {
          refusedControls++;
          o.logger?.warn({ origin: req.headers.origin, action, node }, 'refused a dashboard control from a page that no member serves');
          send(res, 403, 'text/plain', `refused: a control request from ${req.headers.origin ?? '?'}, which is not a member's dashboard\n`);
          return true;
        }
        if (allow !== '') {
          res.setHeader('access-control-allow-origin', allow);
          res.setHeader('vary', 'origin');
        }
        if (req.method !== 'POST') send(res, 405, 'text/plain', 'POST only\n');
        else if (o.controlUrl === null) send(res, 404, 'text/plain', `no controls: ${o.self} was not started by \`quorumlog cluster\`\n`);
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
        if (controlOrigin(req.headers.origin, req.headers.host, []) === null) {
          // The cluster's control server sends these with no Origin; a browser page never needs to.
          refusedControls++;
          o.logger?.warn({ origin: req.headers.origin, path }, 'refused a fault-injection request from a web page');
          send(res, 403, 'text/plain', `refused: a fault-injection request from ${req.headers.origin ?? '?'}\n`);
        } else if (req.method !== 'POST') send(res, 405, 'text/plain', 'POST only\n');
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
