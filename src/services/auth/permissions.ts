// Whether a set of granted permissions covers a request's key range: the
// union of the granted spans must contain the whole requested span (etcd's
// interval-tree check, auth/range_perm_cache.go, written as a sweep over
// spans sorted by their start).

import { keySpan, type KeySpan } from '../kv/key-range.js';
import type { Permission, PermissionResource } from './types.js';

/** What a request does to a range: read it or write it. */
export type Access = 'read' | 'write';

/** Whether `p` grants `access` on its resource. */
export function grants(p: Permission, access: Access): boolean {
  return p.type === 'readwrite' || p.type === access;
}

/** The spans granted for (resource, access), sorted by start. */
export function grantedSpans(perms: Iterable<Permission>, resource: PermissionResource, access: Access): KeySpan[] {
  const spans: KeySpan[] = [];
  for (const p of perms) {
    if (p.resource !== resource || !grants(p, access)) continue;
    const s = keySpan(p.key, p.rangeEnd);
    if (s.hi === null || s.hi > s.lo) spans.push(s);
  }
  spans.sort((a, b) => (a.lo < b.lo ? -1 : a.lo > b.lo ? 1 : 0));
  return spans;
}

/**
 * Whether the spans (sorted by start) together contain `want`. An empty
 * requested span (rangeEnd at or below key) is checked as its first key, so
 * that a malformed range never reads as "nothing asked, so allowed".
 */
export function spansCover(sorted: readonly KeySpan[], want: KeySpan): boolean {
  const hi = want.hi !== null && want.hi <= want.lo ? want.lo + '\u0000' : want.hi;
  let covered = want.lo; // [want.lo, covered) is covered so far
  for (const s of sorted) {
    if (s.lo > covered) break; // a gap at `covered`
    if (s.hi === null) return true;
    if (s.hi > covered) covered = s.hi;
    if (hi !== null && covered >= hi) return true;
  }
  return hi !== null && covered >= hi;
}
