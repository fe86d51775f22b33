// The quorumlog dashboard page (docs/DASHBOARD.md): plain ES module, no
// framework, no download. It listens to /dashboard/events (server-sent
// events: one cluster snapshot about every 500 ms) and redraws the cards, the
// cluster drawing (SVG), the proposals chart and the elections timeline.
// When the node serving it stops answering, it moves (same tab) to another
// member's dashboard; its decisions are in page-logic.js (compiled from
// src/dashboard/page-logic.ts, where they are tested).
//
// DOM contract (tests and docs rely on it):
//   <section class="node" data-node="n1" data-role="leader|follower|candidate|preCandidate|observer|down" data-pid="123">
//   #leader (text and data-leader: the leader's id, empty when none), #mode (push|pull)
//   #served-by (the node serving the page), #switch-note (data-from: the node it left, when it switched)
//   <button data-action="kill|pause|resume|restart|partition|heal" data-node="n1"> only when controls exist
//   #control-note[data-controls="answering|silent|none"]: why there are no buttons, when there are none
//   #control-result: the last control's outcome
//   #timeline[data-leader-terms="1:n3,2:n1"][data-leader-changes="2"]: the leaders by term it draws, and its count

import {
  STREAM_LOST_AFTER_MS, controlRoute, dashboardUrl, decodeCarry, leaderBars, leaderChangesSince, streamLost, switchCandidates,
} from '/dashboard/page-logic.js';

const SVG = 'http://www.w3.org/2000/svg';
const WINDOW_MS = 5 * 60_000;
const ROLE_COLOR = {
  leader: '#1f9d55', follower: '#2f6fde', observer: '#8b5cf6', candidate: '#e8870e', preCandidate: '#f2b705', down: '#a0a4ab',
};
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = String(text);
  return e;
}

function svg(tag, attrs = {}, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = String(text);
  return e;
}

const fmtMs = (x) => (x === null || x === undefined ? '–' : x < 1 ? `${(x * 1000).toFixed(0)} µs` : `${x.toFixed(x < 10 ? 2 : 0)} ms`);
const fmtTime = (at) => new Date(at).toLocaleTimeString([], { hour12: false });

/** Lag per member, as the leader reports it. */
function lagOf(snap) {
  const leader = snap.members.find((m) => m.id === snap.leader);
  const lag = new Map();
  for (const r of leader?.status?.replication ?? []) lag.set(r.id, r);
  return lag;
}

function renderHeader(snap) {
  const mode = $('mode');
  mode.textContent = snap.mode;
  mode.dataset.mode = snap.mode;
  $('mode-words').textContent = snap.mode === 'push'
    ? '(Raft: the leader sends AppendEntries to every member)'
    : '(KRaft: every member fetches from the leader)';
  const leader = $('leader');
  leader.textContent = snap.leader ?? '';
  leader.dataset.leader = snap.leader ?? '';
  $('term').textContent = snap.term;
  $('served-by').textContent = snap.servedBy;
  // This page lives on one node: pausing or killing that node freezes it; every other node serves it too.
  const links = snap.members.filter((m) => m.id !== snap.servedBy).map((m) => {
    const a = el('a', { href: `http://${m.metrics}/dashboard` }, m.id);
    return a;
  });
  const other = $('elsewhere');
  if (other.dataset.members !== links.map((a) => a.textContent).join(',')) {
    other.dataset.members = links.map((a) => a.textContent).join(',');
    other.replaceChildren(el('small', {}, 'also on: '), ...links.flatMap((a, i) => (i === 0 ? [a] : [el('small', {}, ' '), a])));
  }
  renderControlNote(snap);
}

/** Says whether the buttons act on real processes, or why there are none and where to find them. */
function renderControlNote(snap) {
  const note = $('control-note');
  const withControls = snap.members.filter((m) => m.id !== snap.servedBy && m.controls === true);
  const where = withControls.length === 0
    ? 'run the cluster with `npm run cluster` (or `quorumlog cluster`) and open a page it prints'
    : `open the page of a node it started: ${withControls.map((m) => m.id).join(', ')} (links above)`;
  let text;
  switch (snap.controlServer) {
    case 'answering':
      text = '(local cluster: buttons act on the real processes)';
      break;
    case 'none':
      text = `No buttons: ${snap.servedBy} was not started by \`quorumlog cluster\` (for instance, it was restarted by hand), `
        + `so it has no control server to send kill, pause or restart to. For buttons, ${where}; `
        + `restarting ${snap.servedBy} from there brings its own buttons back.`;
      break;
    case 'silent':
      text = `No buttons: the \`quorumlog cluster\` that started ${snap.servedBy} does not answer (stopping, or stopped). `
        + 'They come back when it does.';
      break;
    default:
      text = '';
  }
  if (note.textContent !== text) note.textContent = text;
  note.dataset.controls = snap.controlServer;
}

function card(snap, m, lag) {
  const s = m.status;
  const sec = el('section', { class: 'node', 'data-node': m.id, 'data-role': m.role });
  if (m.process !== null) sec.dataset.process = m.process;
  sec.dataset.partitioned = String(s?.partitioned === true);
  if (s !== null) sec.dataset.pid = String(s.pid);
  const h = el('h3');
  h.append(el('span', {}, m.id));
  let roleText = m.role;
  if (m.role === 'down') roleText = m.process === 'paused' ? 'paused' : m.process === 'killed' ? 'killed' : 'down';
  if (s?.partitioned) roleText += ' · partitioned';
  h.append(el('span', { class: 'role' }, roleText));
  sec.append(h);
  const dl = el('dl');
  const row = (k, v) => { dl.append(el('dt', {}, k), el('dd', {}, v)); };
  if (s !== null) {
    row('term', s.term);
    row('log end', s.lastIndex);
    row('commit', s.commitIndex);
    row('applied', s.appliedIndex);
    if (m.id !== snap.leader) {
      const r = lag.get(m.id);
      row('lag', r === undefined ? '–' : `${r.lagEntries} (match ${r.match})`);
    } else {
      row('lag', 'leader');
    }
    row('fsync p50', fmtMs(s.fsync.p50Ms));
    row('fsync p99', fmtMs(s.fsync.p99Ms));
    row('pid', s.pid);
  } else {
    row('status', m.process === 'paused' ? 'SIGSTOPped' : 'no answer');
    row('metrics', m.metrics);
  }
  sec.append(dl);
  if (snap.controls) {
    const b = el('div', { class: 'buttons' });
    const actions = m.process === 'paused' ? ['resume', 'kill', 'restart']
      : m.process === 'killed' || m.process === 'exited' ? ['restart']
        : [s?.partitioned ? 'heal' : 'partition', 'pause', 'kill', 'restart'];
    for (const a of actions) b.append(el('button', { type: 'button', 'data-action': a, 'data-node': m.id }, a));
    sec.append(b);
  }
  return sec;
}

function renderNodes(snap) {
  const lag = lagOf(snap);
  const box = $('nodes');
  const fresh = snap.members.map((m) => card(snap, m, lag));
  // Replace only the cards that changed, so a button is not swapped under the pointer.
  const same = box.children.length === fresh.length;
  if (!same) {
    box.replaceChildren(...fresh);
    return;
  }
  fresh.forEach((c, i) => {
    const old = box.children[i];
    if (old.outerHTML !== c.outerHTML) old.replaceWith(c);
  });
}

function renderDrawing(snap) {
  const g = $('drawing');
  const W = 440;
  const H = 340;
  const cx = W / 2;
  const cy = H / 2 + 6;
  const R = 118;
  const n = snap.members.length;
  const pos = new Map(snap.members.map((m, i) => {
    const a = -Math.PI / 2 + (2 * Math.PI * i) / n;
    return [m.id, { x: cx + R * Math.cos(a), y: cy + R * Math.sin(a) }];
  }));
  const children = [];
  const defs = svg('defs');
  for (const [name, color] of [['push', ROLE_COLOR.leader], ['pull', ROLE_COLOR.follower]]) {
    const mk = svg('marker', { id: `head-${name}`, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' });
    mk.append(svg('path', { d: 'M 0 0 L 10 5 L 0 10 z', fill: color }));
    defs.append(mk);
  }
  children.push(defs);
  const lag = lagOf(snap);
  const leaderPos = snap.leader === null ? null : pos.get(snap.leader);
  const nodeR = 30;
  if (leaderPos !== undefined && leaderPos !== null) {
    for (const m of snap.members) {
      if (m.id === snap.leader || m.status === null || m.status.partitioned) continue;
      const p = pos.get(m.id);
      const [from, to] = snap.mode === 'push' ? [leaderPos, p] : [p, leaderPos];
      const dx = to.x - from.x;
      const dy = to.y - from.y;
      const d = Math.hypot(dx, dy);
      const ux = dx / d;
      const uy = dy / d;
      const x1 = from.x + ux * (nodeR + 4);
      const y1 = from.y + uy * (nodeR + 4);
      const x2 = to.x - ux * (nodeR + 6);
      const y2 = to.y - uy * (nodeR + 6);
      children.push(svg('line', { class: `arrow ${snap.mode}`, x1, y1, x2, y2, 'marker-end': `url(#head-${snap.mode})` }));
      const r = lag.get(m.id);
      // The label beside the arrow's middle, on the side away from the circle's centre (labels of two arrows never meet).
      const midX = (x1 + x2) / 2;
      const midY = (y1 + y2) / 2;
      const ox = midX - cx;
      const oy = midY - cy;
      const on = Math.hypot(ox, oy) || 1;
      const lx = midX + (ox / on) * 10;
      const ly = midY + (oy / on) * 10 + 4;
      const anchor = Math.abs(ox / on) < 0.3 ? 'middle' : ox > 0 ? 'start' : 'end';
      const label = `${snap.mode === 'push' ? 'AppendEntries' : 'Fetch'}${r === undefined ? '' : ` · lag ${r.lagEntries}`}`;
      children.push(svg('text', { x: lx, y: Math.abs(ox / on) < 0.3 ? ly + (oy > 0 ? 8 : -4) : ly, 'text-anchor': anchor, 'font-size': 11, class: 'muted' }, label));
    }
  }
  for (const m of snap.members) {
    const p = pos.get(m.id);
    const role = m.role;
    const color = m.status?.partitioned ? ROLE_COLOR.down : ROLE_COLOR[role] ?? ROLE_COLOR.follower;
    if (role === 'leader') children.push(svg('circle', { cx: p.x, cy: p.y, r: nodeR + 7, fill: 'none', stroke: ROLE_COLOR.leader, 'stroke-width': 3, opacity: 0.45 }));
    children.push(svg('circle', { class: 'circle-node', cx: p.x, cy: p.y, r: nodeR, fill: color, opacity: role === 'down' ? 0.55 : 1 }));
    children.push(svg('text', { x: p.x, y: p.y + 5, 'text-anchor': 'middle', 'font-size': 15, 'font-weight': 'bold', fill: '#fff' }, m.id));
    let sub = role;
    if (role === 'down' && m.process !== null && m.process !== 'running') sub = m.process;
    if (m.status?.partitioned) sub += ' (cut off)';
    if (m.status !== null) sub += ` · t${m.status.term}`;
    const below = p.y > cy ? nodeR + 16 : -(nodeR + 8);
    children.push(svg('text', { x: p.x, y: p.y + below, 'text-anchor': 'middle', 'font-size': 12, class: 'muted' }, sub));
  }
  const words = snap.mode === 'push' ? 'push mode: arrows from the leader (AppendEntries)' : 'pull mode: arrows toward the leader (Fetch)';
  children.push(svg('text', { x: 8, y: H - 8, 'font-size': 12, class: 'muted' }, words));
  if (snap.leader === null) children.push(svg('text', { x: cx, y: cy + 5, 'text-anchor': 'middle', 'font-size': 14, fill: ROLE_COLOR.candidate }, 'no leader: election…'));
  g.replaceChildren(...children);
  $('drawing-legend').textContent = '';
}

/** Draws in the SVG's real pixel width (so that text is not stretched); returns it. */
function fitWidth(g, h) {
  const w = Math.max(300, Math.round(g.clientWidth || 600));
  g.setAttribute('viewBox', `0 0 ${w} ${h}`);
  return w;
}

function renderChart(snap) {
  const g = $('chart');
  const W = fitWidth(g, 150);
  const H = 150;
  const left = 40;
  const bottom = H - 18;
  const now = snap.at;
  const pts = snap.proposalsPerSecond.filter((p) => p.at >= now - WINDOW_MS);
  const max = Math.max(10, ...pts.map((p) => p.perSecond));
  const nice = Math.pow(10, Math.floor(Math.log10(max)));
  const top = Math.ceil(max / nice) * nice;
  const x = (at) => left + ((at - (now - WINDOW_MS)) / WINDOW_MS) * (W - left - 22);
  const y = (v) => bottom - (v / top) * (bottom - 8);
  const children = [
    svg('line', { class: 'axis', x1: left, y1: bottom, x2: W - 6, y2: bottom }),
    svg('line', { class: 'axis', x1: left, y1: 8, x2: left, y2: bottom }),
    svg('text', { x: left - 4, y: 14, 'text-anchor': 'end', 'font-size': 10, class: 'muted' }, top),
    svg('text', { x: left - 4, y: bottom, 'text-anchor': 'end', 'font-size': 10, class: 'muted' }, 0),
  ];
  for (let m = 0; m <= 5; m++) {
    children.push(svg('text', { x: x(now - m * 60_000), y: H - 4, 'text-anchor': 'middle', 'font-size': 10, class: 'muted' }, m === 0 ? 'now' : `-${m} min`));
  }
  if (pts.length > 1) {
    const d = pts.map((p, i) => `${i === 0 ? 'M' : 'L'}${x(p.at).toFixed(1)},${y(p.perSecond).toFixed(1)}`).join(' ');
    children.push(svg('path', { d: `${d} L${x(pts[pts.length - 1].at).toFixed(1)},${bottom} L${x(pts[0].at).toFixed(1)},${bottom} Z`, fill: '#2f6fde22' }));
    children.push(svg('path', { d, fill: 'none', stroke: ROLE_COLOR.follower, 'stroke-width': 1.8 }));
  }
  g.replaceChildren(...children);
  const last = pts[pts.length - 1];
  $('rate-now').textContent = last === undefined ? '' : `now ${last.perSecond.toFixed(1)}/s`;
}

function renderTimeline(snap) {
  const g = $('timeline');
  const W = fitWidth(g, 150);
  const H = 150;
  const left = 34;
  const now = snap.at;
  const ids = snap.members.map((m) => m.id);
  const top = 20;
  const rowH = Math.min(26, (H - 24 - top) / Math.max(1, ids.length));
  const x = (at) => left + ((at - (now - WINDOW_MS)) / WINDOW_MS) * (W - left - 22);
  const children = [];
  ids.forEach((id, i) => {
    const yy = top + 8 + i * rowH + rowH / 2;
    children.push(svg('text', { x: 2, y: yy + 4, 'font-size': 11, class: 'muted' }, id));
    children.push(svg('line', { class: 'axis', x1: left, y1: yy, x2: W - 6, y2: yy }));
  });
  for (let m = 0; m <= 5; m++) children.push(svg('text', { x: x(now - m * 60_000), y: H - 4, 'text-anchor': 'middle', 'font-size': 10, class: 'muted' }, m === 0 ? 'now' : `-${m} min`));
  // Leadership bars, from the leaders by term that every member keeps (they survive a node's restart): a term's bar
  // runs from its leader's first report to the first sign of a later term.
  const row = new Map(ids.map((id, i) => [id, top + 8 + i * rowH + rowH / 2]));
  for (const b of leaderBars(snap.leaderTerms, snap.events, now)) {
    const yy = row.get(b.leader);
    if (yy === undefined || b.to < now - WINDOW_MS) continue;
    const x1 = Math.max(left, x(b.from));
    children.push(svg('rect', { x: x1, y: yy - 5, width: Math.max(3, x(b.to) - x1), height: 10, rx: 3, fill: ROLE_COLOR.leader, opacity: 0.85 }));
    const nearEnd = x1 > W - 90;
    children.push(svg('text', { x: nearEnd ? W - 4 : x1 + 3, y: yy - 8, 'text-anchor': nearEnd ? 'end' : 'start', 'font-size': 10, fill: ROLE_COLOR.leader }, `leader t${b.term}`));
  }
  for (const e of snap.events) {
    const yy = row.get(e.node);
    if (yy === undefined || e.at < now - WINDOW_MS) continue;
    if (e.role === 'candidate' || e.role === 'preCandidate') children.push(svg('circle', { cx: x(e.at), cy: yy, r: 4, fill: ROLE_COLOR[e.role] }));
  }
  const since = now - WINDOW_MS;
  const inWindow = snap.leaderTerms.filter((t) => t.at >= since);
  const count = leaderChangesSince(snap.leaderTerms, since);
  const last = inWindow[inWindow.length - 1];
  children.push(svg('text', { x: W - 6, y: 10, 'text-anchor': 'end', 'font-size': 10, class: 'muted' },
    `${count} leader change(s)${last === undefined ? '' : `; last: ${last.leader} in term ${last.term} at ${fmtTime(last.at)}`} · ● election`));
  g.replaceChildren(...children);
  g.dataset.leaderTerms = inWindow.map((t) => `${t.term}:${t.leader}`).join(',');
  g.dataset.leaderChanges = String(count);
}

function renderEventList(snap) {
  const items = snap.events.filter((e) => e.role !== 'follower' || e.leader !== null).slice(-8).reverse().map((e) => {
    const what = e.role === 'leader' ? `became leader of term ${e.term}`
      : e.role === 'candidate' || e.role === 'preCandidate' ? `started an election (${e.role}, term ${e.term})`
        : `${e.role}, leader ${e.leader ?? 'unknown'} (term ${e.term})`;
    return el('li', { 'data-role': e.role }, `${fmtTime(e.at)} ${e.node} ${what}`);
  });
  $('event-list').replaceChildren(...items);
}

function render(snap) {
  lastSnap = snap;
  renderHeader(snap);
  renderNodes(snap);
  renderDrawing(snap);
  renderChart(snap);
  renderTimeline(snap);
  renderEventList(snap);
  document.body.dataset.updated = String(snap.at);
}

// ---- Following the cluster: controls that do not cut their own relay, and moving to another member when this one dies.

/** The last snapshot (null before the first). */
let lastSnap = null;
/** When the last snapshot arrived (page load counts as one, so a page gets its full grace period). */
let lastMessageAt = Date.now();
/** Controls sent and not yet answered: the page waits for them (bounded) before it moves. */
const inFlight = new Set();
let switching = false;
/** The events stream is connected (false from an error until it reconnects). */
let streamOpen = false;

/** Shows a control's outcome; it also travels to the next member if the page moves. */
function showResult(text) {
  $('control-result').textContent = text;
}

document.addEventListener('click', (ev) => {
  const b = ev.target instanceof Element ? ev.target.closest('button[data-action]') : null;
  if (b === null) return;
  const action = b.getAttribute('data-action');
  const node = b.getAttribute('data-node');
  const route = lastSnap === null ? { kind: 'self' } : controlRoute(node, lastSnap.servedBy, lastSnap.members, streamOpen);
  const base = route.kind === 'via' ? `http://${route.member.metrics}` : '';
  const why = node === lastSnap?.servedBy ? `${node} serves this page` : `${lastSnap?.servedBy} does not answer`;
  const through = route.kind === 'via' ? ` (through ${route.member.id}, since ${why})` : '';
  showResult(`${action} ${node}${through}…`);
  const sent = fetch(`${base}/dashboard/control/${action}?node=${encodeURIComponent(node)}`, { method: 'POST', mode: 'cors' })
    .then(async (r) => { showResult(`${action} ${node}: ${r.ok ? 'done' : `failed (${r.status}) ${await r.text()}`}${through}`); })
    .catch(() => {
      // No reply at all: the node relaying it is gone (it may be the target, when no other member was up), before or
      // after it passed the control on. It may have worked; it is not called a failure, and the cards tell.
      const relay = route.kind === 'via' ? route.member.id : lastSnap?.servedBy ?? 'the node serving this page';
      showResult(`${action} ${node}: no reply from ${relay}, which relays it (gone or restarting); it may or may not have happened — the cards show which`);
    })
    .finally(() => inFlight.delete(sent));
  inFlight.add(sent);
});

/** Moves the page (this tab) to the first other member that answers; retries later when none does. */
async function switchMember() {
  if (switching || lastSnap === null) return;
  switching = true;
  const from = lastSnap.servedBy;
  const tried = [];
  try {
    // A control on its way finishes first (its relay is another member), so its outcome goes with the page.
    await Promise.race([Promise.allSettled([...inFlight]), new Promise((r) => setTimeout(r, 5000))]);
    for (const m of switchCandidates(lastSnap.members, from)) {
      if (!streamLost(lastMessageAt, Date.now())) return; // this node is back
      tried.push(m.id);
      // An opaque (no-cors) request: it resolves only if the member's server answers; a dead or paused one fails or times out.
      const answers = await fetch(`http://${m.metrics}/dashboard/dashboard.css`, { mode: 'no-cors', cache: 'no-store', signal: AbortSignal.timeout(1500) })
        .then(() => true, () => false);
      if (!answers) continue;
      if (!streamLost(lastMessageAt, Date.now())) return;
      const note = $('control-result').textContent;
      window.location.assign(dashboardUrl(m, { from, at: Date.now(), note: note === '' ? null : note }));
      return;
    }
    const c = $('connection');
    c.dataset.state = 'lost';
    c.textContent = `${from} stopped answering; no other member answers either (tried ${tried.join(', ') || 'none'}); retrying…`;
  } finally {
    switching = false;
  }
}

setInterval(() => {
  if (streamLost(lastMessageAt, Date.now())) void switchMember();
}, 500);

/** After a switch: say where the page came from, and show the last control's outcome it carried. */
function showCarried() {
  const carried = decodeCarry(window.location.hash);
  if (carried === null) return;
  const n = $('switch-note');
  n.dataset.from = carried.from;
  n.textContent = `moved here: ${carried.from} stopped answering at ${fmtTime(carried.at)}`;
  if (carried.note !== null) showResult(carried.note);
  window.history.replaceState(null, '', window.location.pathname); // a reload should not repeat the note
}
showCarried();

const events = new EventSource('/dashboard/events');
events.onopen = () => { streamOpen = true; const c = $('connection'); c.dataset.state = 'live'; c.textContent = 'live'; };
events.onerror = () => {
  streamOpen = false;
  const c = $('connection');
  c.dataset.state = 'lost';
  c.textContent = `reconnecting… (moving to another member after ${Math.round(STREAM_LOST_AFTER_MS / 1000)} s)`;
};
events.onmessage = (ev) => {
  lastMessageAt = Date.now();
  streamOpen = true;
  const c = $('connection');
  c.dataset.state = 'live';
  c.textContent = 'live';
  render(JSON.parse(ev.data));
};
