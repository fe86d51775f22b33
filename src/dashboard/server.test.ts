// The dashboard's server side without a cluster: the aggregator polls only
// while an events stream is open (no timer, no poll otherwise), the snapshot
// it pushes, the page's files, the redirect, and the fault-injection and
// control routes answering 404 when not enabled.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { NodeStatus } from '../server/metrics.js';
import { dashboardHandler, type DashboardSnapshot, type WatchedMember } from './server.js';

const EVENT_AT = Date.now() - 1000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function fakeStatus(id: string, role: string, proposalsTotal: number, now: number): NodeStatus {
  return {
    id, pid: 1, mode: 'push', role, term: 3, leader: 'n1', commitIndex: 10, appliedIndex: 10, lastIndex: 10, removed: false, dirId: null, lostDisk: null,
    configuration: { index: 1, committed: true, voters: ['n1', 'n2', 'n3'], observers: [], dirIds: {} },
    replication: role === 'leader' ? [{ id: 'n2', voter: true, match: 8, lagEntries: 2, sendQueueBytes: 0 }] : [],
    now, proposalsTotal, fsync: { samples: 0, p50Ms: null, p99Ms: null, lastMs: null },
    leadershipEvents: role === 'leader' ? [{ at: EVENT_AT, term: 3, leader: 'n1', role: 'leader' }] : [], partitioned: false,
  };
}

async function serve(partition: ((on: boolean) => void) | null): Promise<{ server: Server; url: string; h: ReturnType<typeof dashboardHandler>; asked: string[] }> {
  const asked: string[] = [];
  let proposals = 0;
  const members: WatchedMember[] = [{ id: 'n1', role: 'voter', metrics: 'a' }, { id: 'n2', role: 'voter', metrics: 'b' }, { id: 'n3', role: 'voter', metrics: 'c' }];
  const h = dashboardHandler({
    self: 'n2', mode: 'push', members: () => members, controlUrl: null, pollMs: 50, setPartitioned: partition,
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
  assert.deepEqual(calls, [true, false]);
});
