// Key ranges with etcd's meaning, over keys held as "ids": the key's bytes as a
// latin1 string (one UTF-16 code unit per byte, 0..255). JavaScript compares
// such strings code unit by code unit, which is exactly bytewise key order, so
// the store's sorted index can use `<` on ids instead of a byte comparator.

/** A half-open key span [lo, hi) over ids; `hi` null means unbounded. Invariant: empty when hi !== null && hi <= lo. */
export interface KeySpan {
  readonly lo: string;
  readonly hi: string | null;
}

/** The id of a key: its bytes as a latin1 string (bytewise order = string order). */
export function idOf(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}

/**
 * The span etcd means by (key, rangeEnd): rangeEnd empty = the single key;
 * rangeEnd = [0x00] = every key >= key; otherwise [key, rangeEnd).
 * (key = [0x00], rangeEnd = [0x00] is then every key, as no key sorts below [0x00].)
 */
export function keySpan(key: Uint8Array, rangeEnd: Uint8Array): KeySpan {
  const lo = idOf(key);
  if (rangeEnd.length === 0) return { lo, hi: lo + '\u0000' }; // the successor of a key is key + 0x00
  if (rangeEnd.length === 1 && rangeEnd[0] === 0) return { lo, hi: null };
  return { lo, hi: idOf(rangeEnd) };
}

/** Whether `id` lies in the span. O(key length). */
export function spanContains(span: KeySpan, id: string): boolean {
  return id >= span.lo && (span.hi === null || id < span.hi);
}

/** The first index i of a sorted array with idOfItem(items[i]) >= id (items.length if none). O(log n). */
export function lowerBound<T>(items: readonly T[], id: string, idOfItem: (item: T) => string): number {
  let lo = 0;
  let hi = items.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (idOfItem(items[mid] as T) < id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
