// The dashboard page's decisions, as plain functions: which member to switch
// to when the node serving the page stops answering, whether the stream is
// lost, which member a control goes through, what travels with the page when
// it switches, and the leadership bars and count of the elections timeline.
// tsc compiles this file like any other, and every node serves the compiled
// module to the browser as /dashboard/page-logic.js (src/dashboard/page/
// dashboard.js imports it), so it must have no runtime import and use only
// what both Node 20 and a browser have. Tests: page-logic.test.ts.

/** What the page knows of a member, from the last snapshot. */
export interface MemberLike {
  readonly id: string;
  /** Its metrics address, host:port: its dashboard is http://<metrics>/dashboard. */
  readonly metrics: string;
  /** Its role, or 'down' when it did not answer the last poll. */
  readonly role: string;
  /** From the cluster's control server: running, paused, killed or exited; null without one. */
  readonly process: string | null;
}

/** True when the last snapshot saw the member answer and its process (if known) running. */
export function isUp(m: MemberLike): boolean {
  return m.role !== 'down' && (m.process === null || m.process === 'running');
}

/**
 * The members the page may switch to when `servedBy` stops answering, best
 * first: the others that answered the last poll (in the configuration's
 * order), then the others (they may be back by now). Never `servedBy`.
 */
export function switchCandidates(members: readonly MemberLike[], servedBy: string): MemberLike[] {
  const others = members.filter((m) => m.id !== servedBy);
  return [...others.filter(isUp), ...others.filter((m) => !isUp(m))];
}

/**
 * How long the page waits, with no snapshot from its node, before it looks
 * for another member. The node sends one about every 500 ms (up to about a
 * second while a member is down and its poll waits out a timeout); three
 * seconds of silence means the node is dead, paused or cut off, and is short
 * next to the minutes a user watches.
 */
export const STREAM_LOST_AFTER_MS = 3000;

/** True when the page has had no snapshot for `afterMs` or more: its node is gone (killed, paused) or unreachable. */
export function streamLost(lastMessageAt: number, now: number, afterMs = STREAM_LOST_AFTER_MS): boolean {
  return now - lastMessageAt >= afterMs;
}

/** Where a control request goes: to the node serving the page, or through another member. */
export type ControlRoute =
  | { readonly kind: 'self' }
  | { readonly kind: 'via'; readonly member: MemberLike };

/**
 * A control aimed at the node that serves the page goes through another
 * member that is up (and is not the target): killing, pausing or restarting
 * the serving node would cut its own relay of the request, and the page
 * would report a failure for a control that worked. So does any control
 * while the page's own stream is down (`servingLive` false: its node is
 * gone or restarting, and could not relay it). Any other control goes
 * through the serving node (same origin); so does every control when no
 * other member is up.
 */
export function controlRoute(target: string, servedBy: string, members: readonly MemberLike[], servingLive = true): ControlRoute {
  if (servingLive && target !== servedBy) return { kind: 'self' };
  const via = members.find((m) => m.id !== servedBy && m.id !== target && isUp(m));
  return via === undefined ? { kind: 'self' } : { kind: 'via', member: via };
}

/** What the page carries to the member it switches to (in the new URL's fragment, which never reaches a server). */
export interface Carried {
  /** The member that stopped answering. */
  readonly from: string;
  /** When the page gave up on it (wall-clock ms). */
  readonly at: number;
  /** The last control's outcome shown on the old page, if any. */
  readonly note: string | null;
}

/** The URL fragment (without '#') that carries `c`. */
export function encodeCarry(c: Carried): string {
  const p = new URLSearchParams({ from: c.from, at: String(c.at) });
  if (c.note !== null) p.set('note', c.note);
  return p.toString();
}

/** Reads a fragment written by encodeCarry (with or without its '#'); null when it is not one. */
export function decodeCarry(hash: string): Carried | null {
  const p = new URLSearchParams(hash.startsWith('#') ? hash.slice(1) : hash);
  const from = p.get('from');
  const at = Number(p.get('at'));
  if (from === null || from === '' || from.length > 128 || !Number.isFinite(at) || at <= 0) return null;
  const note = p.get('note');
  return { from, at, note: note === null ? null : note.slice(0, 500) };
}

/** The dashboard URL of a member. */
export function dashboardUrl(m: MemberLike, carry: Carried | null): string {
  return `http://${m.metrics}/dashboard${carry === null ? '' : `#${encodeCarry(carry)}`}`;
}

/** One term's leader, as the snapshot's `leaderTerms` lists them. */
export interface LeaderTermLike {
  readonly term: number;
  readonly leader: string;
  readonly at: number;
}

/** A bar of the elections timeline: `leader` led `term` over [from, to) (wall-clock ms). */
export interface LeaderBar {
  readonly term: number;
  readonly leader: string;
  readonly from: number;
  readonly to: number;
}

/**
 * The timeline's leadership bars. A term's bar starts when its leader was
 * first reported and ends at the first sign of a later term (a later term's
 * leader, or a member's event in a later term, such as a candidacy), or at
 * `now` when nothing later is known. `terms` need not be sorted.
 */
export function leaderBars(
  terms: readonly LeaderTermLike[],
  events: readonly { readonly at: number; readonly term: number }[],
  now: number,
): LeaderBar[] {
  const sorted = [...terms].sort((a, b) => a.term - b.term);
  return sorted.map((t) => {
    let to = now;
    for (const u of sorted) if (u.term > t.term && u.at < to) to = u.at;
    for (const e of events) if (e.term > t.term && e.at < to) to = e.at;
    return { term: t.term, leader: t.leader, from: t.at, to: Math.max(t.at, to) };
  });
}

/** How many leaders took office at or after `since`: the timeline's "leader change(s)". */
export function leaderChangesSince(terms: readonly LeaderTermLike[], since: number): number {
  return terms.filter((t) => t.at >= since).length;
}
