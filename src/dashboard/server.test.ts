// The dashboard's server side without a cluster: the aggregator polls only
// while an events stream is open (no timer, no poll otherwise), the snapshot
// it pushes, the page's files, the redirect, and the fault-injection and
// control routes answering 404 when not enabled; the leaders by term merged
// from the members' histories; why there are no buttons; and which origins
// may send a control.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { NodeStatus } from '../server/metrics.js';
import { LeaderHistory } from './history.js';
import { controlOrigin, dashboardHandler, type DashboardSnapshot, type WatchedMember } from './server.js';

const EVENT_AT = Date.now() - 1000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function fakeStatus(id: string, role: string, proposalsTotal: number, now: number): NodeStatus {
  return {
    id, clusterId: 'c', pid: 1, mode: 'push', role, term: 3, leader: 'n1', commitIndex: 10, appliedIndex: 10, lastIndex: 10, removed: false, dirId: null, lostDisk: null,
    configuration: { index: 1, committed: true, voters: ['n1', 'n2', 'n3'], observers: [], dirIds: {} },
    replication: role === 'leader' ? [{ id: 'n2', voter: true, match: 8, lagEntries: 2, sendQueueBytes: 0 }] : [],
    now, proposalsTotal, fsync: { samples: 0, p50Ms: null, p99Ms: null, lastMs: null },
    leadershipEvents: role === 'leader' ? [{ at: EVENT_AT, term: 3, leader: 'n1', role: 'leader' }] : [], partitioned: false, supervisor: null, protocolWorkers: null,
  };
}

async function serve(partition: ((on: boolean) => void) | null): Promise<{ server: Server; url: string; h: ReturnType<typeof dashboardHandler>; asked: string[] }> {
  const asked: string[] = [];
  let proposals = 0;
  const members: WatchedMember[] = [{ id: 'n1', role: 'voter', metrics: 'a' }, { id: 'n2', role: 'voter', metrics: 'b' }, { id: 'n3', role: 'voter', metrics: 'c' }];
  const h = dashboardHandler({
    self: 'n2', mode: 'push', members: () => members, controlUrl: null, pollMs: 50, setPartitioned: partition, history: new LeaderHistory(null, null),
    fetchStatus: async (m) => {
      asked.push(m.id);
      if (m.id === 'n3') return null; // down
      proposals += 10;
      return fakeStatus(m.id, m.id === 'n1' ? 'leader' : 'follower', proposals, Date.now());
    },
  });
  const server = createServer((req, res) => {
    if (!h.handle(req, res)) {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, h, asked };
}

test('the aggregator polls only while an events stream is open, and pushes snapshots', async (t) => {
  const { server, url, h, asked } = await serve(null);
  t.after(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }));
  await sleep(200);
  assert.equal(h.aggregator.active, false, 'no timer without a watcher');
  assert.deepEqual(asked, [], 'nobody asked without a watcher');
  const ctl = new AbortController();
  const res = await fetch(`${url}/dashboard/events`, { signal: ctl.signal });
  assert.equal(res.headers.get('content-type'), 'text/event-stream');
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  let text = '';
  const snaps: DashboardSnapshot[] = [];
  while (snaps.length < 3) {
    const { value } = await reader.read();
    text += new TextDecoder().decode(value);
    let i: number;
    while ((i = text.indexOf('\n\n')) >= 0) {
      const ev = text.slice(0, i);
      text = text.slice(i + 2);
      if (ev.startsWith('data: ')) snaps.push(JSON.parse(ev.slice(6)) as DashboardSnapshot);
    }
  }
  assert.equal(h.aggregator.watchers, 1);
  assert.equal(h.aggregator.active, true);
  const s = snaps[2] as DashboardSnapshot;
  assert.equal(s.leader, 'n1');
  assert.equal(s.term, 3);
  assert.equal(s.servedBy, 'n2');
  assert.equal(s.controls, false);
  assert.deepEqual(s.members.map((m) => m.role), ['leader', 'follower', 'down']);
  assert.ok(s.proposalsPerSecond.length >= 1 && (s.proposalsPerSecond.at(-1)?.perSecond ?? 0) > 0, JSON.stringify(s.proposalsPerSecond));
  assert.deepEqual(s.events.map((e) => [e.node, e.role, e.term]), [['n1', 'leader', 3]]);
  assert.deepEqual(s.leaderTerms, [{ term: 3, leader: 'n1', at: EVENT_AT }]);
  assert.equal(s.controlServer, 'none');
  ctl.abort();
  await reader.cancel().catch(() => undefined);
  const deadline = Date.now() + 2000;
  while ((h.aggregator.watchers > 0 || h.aggregator.active) && Date.now() < deadline) await sleep(20);
  assert.equal(h.aggregator.watchers, 0);
  assert.equal(h.aggregator.active, false, 'the timer stops with the last watcher');
  const polls = h.aggregator.polls;
  await sleep(300);
  assert.equal(h.aggregator.polls, polls, 'no poll after the last watcher left');
});

test('page files, the redirect, and the fault-injection and control routes off by default', async (t) => {
  const { server, url } = await serve(null);
  t.after(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }));
  const root = await fetch(`${url}/`, { redirect: 'manual' });
  assert.equal(root.status, 302);
  assert.equal(root.headers.get('location'), '/dashboard');
  const page = await fetch(`${url}/dashboard`);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /\/dashboard\/dashboard\.js/);
  for (const f of ['dashboard.js', 'dashboard.css']) assert.equal((await fetch(`${url}/dashboard/${f}`)).status, 200);
  assert.equal((await fetch(`${url}/dashboard/../package.json`)).status, 404);
  assert.equal((await fetch(`${url}/debug/partition`, { method: 'POST' })).status, 404, 'no fault injection without QUORUMLOG_FAULT_INJECTION=1');
  assert.equal((await fetch(`${url}/dashboard/control/kill?node=n1`, { method: 'POST' })).status, 404, 'no controls outside `quorumlog cluster`');
});

test('with fault injection, POST /debug/partition and /debug/heal switch the partition', async (t) => {
  const calls: boolean[] = [];
  const { server, url } = await serve((on) => calls.push(on));
  t.after(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }));
  assert.equal((await fetch(`${url}/debug/partition`, { method: 'POST' })).status, 200);
  assert.equal((await fetch(`${url}/debug/heal`, { method: 'POST' })).status, 200);
  assert.equal((await fetch(`${url}/debug/heal`)).status, 405);
  assert.equal((await post(`${url}/debug/partition`, 'https://evil.example')).status, 403, 'a cross-site form post cannot cut a node off');
  assert.deepEqual(calls, [true, false]);
});

/** Reads snapshots from an events stream until `done` says enough; returns the last. */
async function snapshotsUntil(url: string, done: (s: DashboardSnapshot) => boolean): Promise<DashboardSnapshot> {
  const ctl = new AbortController();
  const res = await fetch(`${url}/dashboard/events`, { signal: ctl.signal });
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  let text = '';
  try {
    for (;;) {
      const { value, done: end } = await reader.read();
      if (end) throw new Error('the events stream ended');
      text += new TextDecoder().decode(value);
      let i: number;
      while ((i = text.indexOf('\n\n')) >= 0) {
        const ev = text.slice(0, i);
        text = text.slice(i + 2);
        if (!ev.startsWith('data: ')) continue;
        const snap = JSON.parse(ev.slice(6)) as DashboardSnapshot;
        if (done(snap)) return snap;
      }
    }
  } finally {
    ctl.abort();
    await reader.cancel().catch(() => undefined);
  }
}

async function listen(handler: Parameters<typeof createServer>[1]): Promise<{ server: Server; url: string; port: number }> {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return { server, url: `http://127.0.0.1:${port}`, port };
}

const closeServer = (server: Server) => (): Promise<void> => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); });

test('leaders by term: merged from every member\'s history, read again only when its pid or term moves; a malformed one is ignored and counted', async (t) => {
  // n2 serves the page and restarted: its own history starts at term 5. n1 kept terms 1-5; n3's history is garbage.
  const members: WatchedMember[] = [{ id: 'n1', role: 'voter', metrics: 'a' }, { id: 'n2', role: 'voter', metrics: 'b' }, { id: 'n3', role: 'voter', metrics: 'c' }];
  const now = Date.now();
  let n1Term = 5;
  const historyAsked: string[] = [];
  const own = new LeaderHistory(null, null);
  own.add([{ term: 5, leader: 'n1', at: now - 1000 }]);
  const h = dashboardHandler({
    self: 'n2', mode: 'push', members: () => members, controlUrl: null, pollMs: 30, setPartitioned: null, history: own,
    fetchStatus: async (m) => {
      const s = fakeStatus(m.id, m.id === 'n1' ? 'leader' : 'follower', 0, Date.now());
      return { ...s, term: n1Term, leadershipEvents: [] };
    },
    fetchHistory: async (m) => {
      historyAsked.push(m.id);
      if (m.id === 'n3') return { node: 'n3', controls: true, leaderTerms: [{ term: 'one', leader: 'n3', at: 1 }] };
      return {
        node: 'n1', controls: true,
        leaderTerms: [
          { term: 1, leader: 'n3', at: now - 60_000 }, { term: 2, leader: 'n1', at: now - 50_000 }, { term: 3, leader: 'n2', at: now - 40_000 },
          { term: 5, leader: 'n1', at: now - 1200 }, ...(n1Term > 5 ? [{ term: n1Term, leader: 'n1', at: now }] : []),
        ],
      };
    },
  });
  const { server, url } = await listen((req, res) => { if (!h.handle(req, res)) { res.writeHead(404); res.end(); } });
  t.after(closeServer(server));
  let snap = await snapshotsUntil(url, () => h.aggregator.polls >= 3);
  assert.deepEqual(snap.leaderTerms.map((x) => [x.term, x.leader]), [[1, 'n3'], [2, 'n1'], [3, 'n2'], [5, 'n1']]);
  assert.equal(snap.leaderTerms.at(-1)?.at, now - 1200, 'the earliest report of term 5');
  assert.deepEqual(historyAsked.filter((x) => x === 'n1'), ['n1'], 'n1 read once while its pid and term stay');
  assert.equal(historyAsked.includes('n2'), false, 'its own history is not fetched');
  assert.equal(h.aggregator.badHistories, 1, 'n3\'s malformed history was counted, once');
  assert.deepEqual(snap.members.map((x) => x.controls), [true, false, null], 'n1 has controls; this node has none; n3 unknown');
  n1Term = 6;
  snap = await snapshotsUntil(url, (x) => x.leaderTerms.some((y) => y.term === 6));
  assert.deepEqual(snap.leaderTerms.map((x) => x.term), [1, 2, 3, 5, 6]);
  assert.deepEqual(own.list().map((x) => x.term), [1, 2, 3, 5, 6], 'merged into the node\'s own history, which it serves to the others');
  const served = await (await fetch(`${url}/dashboard/history`)).json() as { node: string; controls: boolean; leaderTerms: { term: number }[] };
  assert.equal(served.node, 'n2');
  assert.equal(served.controls, false);
  assert.deepEqual(served.leaderTerms.map((x) => x.term), [1, 2, 3, 5, 6]);
});

test('the page\'s logic module is served from the build', async (t) => {
  const { server, url } = await serve(null);
  t.after(closeServer(server));
  const r = await fetch(`${url}/dashboard/page-logic.js`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type') ?? '', /javascript/);
  const text = await r.text();
  assert.match(text, /export function switchCandidates/);
  assert.doesNotMatch(text, /^import /m, 'the browser loads it alone: no runtime import');
});

test('control origins: none, the page\'s own, or a member\'s dashboard; any other is refused', () => {
  const members: WatchedMember[] = [{ id: 'n1', role: 'voter', metrics: '127.0.0.1:2579' }, { id: 'n2', role: 'voter', metrics: '127.0.0.1:2580' }];
  assert.equal(controlOrigin(undefined, '127.0.0.1:2579', members), '');
  assert.equal(controlOrigin('http://localhost:2579', 'localhost:2579', members), '');
  assert.equal(controlOrigin('http://127.0.0.1:2580', '127.0.0.1:2579', members), 'http://127.0.0.1:2580');
  assert.equal(controlOrigin('https://evil.example', '127.0.0.1:2579', members), null);
  assert.equal(controlOrigin('http://127.0.0.1:2581', '127.0.0.1:2579', members), null, 'a port that is no member\'s');
});

/** A POST with an Origin header (node's fetch may not send the one we name). */
function post(url: string, origin: string | null): Promise<{ status: number; allow: string | undefined; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: origin === null ? {} : { origin } }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => { body += d.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, allow: res.headers['access-control-allow-origin'] as string | undefined, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('controls: relayed for the page\'s own origin and the members\', with CORS for a member\'s; refused and counted from elsewhere; why there are no buttons', async (t) => {
  const actions: string[] = [];
  const control = await listen((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    res.writeHead(200, { 'content-type': 'application/json' });
    if (u.pathname === '/state') res.end(JSON.stringify({ n1: 'running', n2: 'running', n3: 'killed' }));
    else {
      actions.push(`${u.pathname.slice(1)} ${u.searchParams.get('node')}`);
      res.end(JSON.stringify({ ok: true }));
    }
  });
  t.after(closeServer(control.server));
  const members: WatchedMember[] = [
    { id: 'n1', role: 'voter', metrics: '127.0.0.1:1' }, { id: 'n2', role: 'voter', metrics: '127.0.0.1:2' }, { id: 'n3', role: 'voter', metrics: '127.0.0.1:3' },
  ];
  const make = (controlUrl: string | null): ReturnType<typeof dashboardHandler> => dashboardHandler({
    self: 'n2', mode: 'pull', members: () => members, controlUrl, pollMs: 30, setPartitioned: null, history: new LeaderHistory(null, null),
    fetchStatus: async (m) => (m.id === 'n3' ? null : fakeStatus(m.id, m.id === 'n1' ? 'leader' : 'follower', 0, Date.now())),
    fetchHistory: async () => null,
  });
  const h = make(control.url);
  const node = await listen((req, res) => { if (!h.handle(req, res)) { res.writeHead(404); res.end(); } });
  t.after(closeServer(node.server));

  const fromMember = await post(`${node.url}/dashboard/control/kill?node=n2`, 'http://127.0.0.1:1');
  assert.equal(fromMember.status, 200, fromMember.body);
  assert.equal(fromMember.allow, 'http://127.0.0.1:1', 'n1\'s page may read the reply');
  const own = await post(`${node.url}/dashboard/control/pause?node=n1`, `http://127.0.0.1:${node.port}`);
  assert.equal(own.status, 200);
  assert.equal(own.allow, undefined, 'same origin: no CORS header needed');
  assert.equal((await post(`${node.url}/dashboard/control/resume?node=n1`, null)).status, 200, 'no Origin: a script or curl');
  const evil = await post(`${node.url}/dashboard/control/kill?node=n1`, 'https://evil.example');
  assert.equal(evil.status, 403);
  assert.match(evil.body, /evil\.example.*not a member's dashboard/);
  assert.deepEqual(actions, ['kill n2', 'pause n1', 'resume n1'], 'the refused one never reached the control server');
  assert.equal(h.refusedControls, 1);

  const live = await snapshotsUntil(node.url, () => true);
  assert.equal(live.controlServer, 'answering');
  assert.equal(live.controls, true);
  assert.deepEqual(live.members.map((m) => m.process), ['running', 'running', 'killed']);

  // A node started by hand has no control server: no buttons, and the snapshot says why.
  const none = make(null);
  const byHand = await listen((req, res) => { if (!none.handle(req, res)) { res.writeHead(404); res.end(); } });
  t.after(closeServer(byHand.server));
  const s1 = await snapshotsUntil(byHand.url, () => true);
  assert.deepEqual([s1.controls, s1.controlServer], [false, 'none']);
  const refused = await post(`${byHand.url}/dashboard/control/kill?node=n1`, null);
  assert.equal(refused.status, 404);
  assert.match(refused.body, /n2 was not started by `quorumlog cluster`/);
  // Its cluster command gone (nothing listens there any more): no buttons either, for that reason.
  const gone = await listen(() => undefined);
  await closeServer(gone.server)();
  const silent = make(gone.url);
  const orphan = await listen((req, res) => { if (!silent.handle(req, res)) { res.writeHead(404); res.end(); } });
  t.after(closeServer(orphan.server));
  const s2 = await snapshotsUntil(orphan.url, () => true);
  assert.deepEqual([s2.controls, s2.controlServer], [false, 'silent']);
});
