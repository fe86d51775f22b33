// Key ranges with etcd's meaning, over keys held as "ids": the key's bytes as a
// latin1 string (one UTF-16 code unit per byte, 0..255). JavaScript compares
// such strings code unit by code unit, which is exactly bytewise key order, so
// the store's sorted index can use `<` on ids instead of a byte comparator.

/** A half-open key span [lo, hi) over ids; `hi` null means unbounded. Invariant: empty when hi !== null && hi <= lo. */
export interface KeySpan {
  readonly lo: string;
  readonly hi: string | null;
}

/** Keys up to this long get their id from a loop of String.fromCharCode (a flat string, no Buffer object made). */
const SHORT_ID_BYTES = 12;

/** The id of a key: its bytes as a latin1 string (bytewise order = string order). */
export function idOf(bytes: Uint8Array): string {
  if (bytes.byteLength <= SHORT_ID_BYTES) {
    // V8 keeps concatenations shorter than 13 characters flat: no rope to flatten when the id is hashed or compared.
    let id = '';
    for (let i = 0; i < bytes.byteLength; i++) id += String.fromCharCode(bytes[i] as number);
    return id;
  }
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

/**
 * Items kept sorted by a unique string id, held as a list of sorted chunks (a
 * two-level B+-tree), so that inserting in the middle moves at most a chunk
 * rather than the whole array. With B = CHUNK_MAX_ITEMS and n items:
 * search O(log n), insert O(log n + B + n/B), in-order scan O(k) for k items.
 * Invariants: every chunk is non-empty and holds at most CHUNK_MAX_ITEMS items;
 * the chunks' concatenation is strictly ascending by id; size = that length.
 */
export class SortedIndex<T extends { readonly id: string }> implements Iterable<T> {
  /** A chunk splits in two when it grows past this. */
  static readonly CHUNK_MAX_ITEMS = 512;
  private chunks: T[][] = [];
  private count = 0;

  /** Builds an index from items already strictly ascending by id. O(n). */
  constructor(sortedItems: readonly T[] = []) {
    this.rebuild(sortedItems);
  }

  /** How many items it holds. */
  get size(): number {
    return this.count;
  }

  private rebuild(sortedItems: readonly T[]): void {
    const half = SortedIndex.CHUNK_MAX_ITEMS >>> 1;
    this.chunks = [];
    for (let i = 0; i < sortedItems.length; i += half) this.chunks.push(sortedItems.slice(i, i + half));
    this.count = sortedItems.length;
  }

  /** The chunk where `id` belongs: the last whose first id is <= id, or 0. O(log n/B). */
  private chunkFor(id: string): number {
    let lo = 0;
    let hi = this.chunks.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (((this.chunks[mid] as T[])[0] as T).id <= id) lo = mid + 1;
      else hi = mid;
    }
    return Math.max(0, lo - 1);
  }

  /** Inserts an item whose id the index does not hold yet (the caller checks, e.g. with a Map). */
  insert(item: T): void {
    const ci = this.chunkFor(item.id);
    const chunk = this.chunks[ci];
    if (chunk === undefined) {
      this.chunks.push([item]);
    } else {
      chunk.splice(lowerBound(chunk, item.id, (x) => x.id), 0, item);
      if (chunk.length > SortedIndex.CHUNK_MAX_ITEMS) this.chunks.splice(ci + 1, 0, chunk.splice(chunk.length >>> 1));
    }
    this.count++;
  }

  /** The items in the span, in id order. O(log n) to start, then O(1) per item. */
  *within(span: KeySpan): Generator<T, void, undefined> {
    if (span.hi !== null && span.hi <= span.lo) return;
    let ci = this.chunkFor(span.lo);
    let i = this.chunks[ci] === undefined ? 0 : lowerBound(this.chunks[ci] as T[], span.lo, (x) => x.id);
    for (; ci < this.chunks.length; ci++, i = 0) {
      const chunk = this.chunks[ci] as T[];
      for (; i < chunk.length; i++) {
        const item = chunk[i] as T;
        if (span.hi !== null && item.id >= span.hi) return;
        yield item;
      }
    }
  }

  /** Every item, in id order. */
  *[Symbol.iterator](): Iterator<T> {
    for (const chunk of this.chunks) yield* chunk;
  }

  /** Keeps only the items `keep` accepts (in order), re-chunking. O(n). */
  retain(keep: (item: T) => boolean): void {
    const kept: T[] = [];
    for (const chunk of this.chunks) for (const item of chunk) if (keep(item)) kept.push(item);
    this.rebuild(kept);
  }

  /** The first broken invariant, or null. O(n). */
  check(): string | null {
    let n = 0;
    let prev: string | null = null;
    for (const chunk of this.chunks) {
      if (chunk.length === 0 || chunk.length > SortedIndex.CHUNK_MAX_ITEMS) return `chunk of ${chunk.length} items`;
      for (const item of chunk) {
        if (prev !== null && prev >= item.id) return 'index not strictly ascending';
        prev = item.id;
        n++;
      }
    }
    return n === this.count ? null : `index size ${this.count} != ${n}`;
  }
}
