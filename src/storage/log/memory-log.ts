// MemoryLogStore: the LogStore held in memory, for the simulator and tests.
// It defines the reference semantics that DurableLogStore must match (the
// property test compares the two): see the method comments for the edge cases
// (overlapping appends, truncation below the first index, compaction past the
// end of the log or onto an entry whose term differs).

import { entryBytes, type Entry } from '../../protocol/entry.js';
import type { LogIndex, Term } from '../../protocol/ids.js';
import type { LogStore } from '../types.js';
import { StoreClosedError } from '../errors.js';

/**
 * Checks that `entries` can be appended to a log whose first index is `first`
 * and last index is `last` (with `termAt` answering for [first - 1, last]).
 * Throws RangeError otherwise. Shared by the memory and durable stores.
 */
export function validateAppend(
  entries: readonly Entry[], first: LogIndex, last: LogIndex, termAt: (i: LogIndex) => Term | undefined,
): void {
  const head = entries[0];
  if (head === undefined) return;
  if (head.index < first) throw new RangeError(`append at ${head.index}: below the first index ${first} (compacted)`);
  if (head.index > last + 1) throw new RangeError(`append at ${head.index}: leaves a gap after the last index ${last}`);
  let prevTerm = termAt(head.index - 1) ?? 0;
  let expect = head.index;
  for (const e of entries) {
    if (e.index !== expect) throw new RangeError(`append: index ${e.index} where ${expect} was expected (not consecutive)`);
    if (!Number.isSafeInteger(e.term) || e.term < prevTerm) throw new RangeError(`append: term ${e.term} at ${e.index} below the previous term ${prevTerm}`);
    if (e.type !== 'data' && e.type !== 'noop' && e.type !== 'config') throw new RangeError(`append: unknown entry type ${String(e.type)}`);
    prevTerm = e.term;
    expect++;
  }
}

/** Picks entries in [lo, hi) under a byte budget (at least one when the range is not empty). */
export function budgetCount(lo: LogIndex, hi: LogIndex, maxBytes: number, sizeOf: (i: LogIndex) => number): number {
  let n = 0;
  let bytes = 0;
  for (let i = lo; i < hi; i++) {
    const b = sizeOf(i);
    if (n > 0 && bytes + b > maxBytes) break;
    bytes += b;
    n++;
  }
  return n;
}

/** Throws RangeError unless [lo, hi) lies within [first, last + 1). */
export function checkReadRange(lo: LogIndex, hi: LogIndex, first: LogIndex, last: LogIndex): void {
  if (lo > hi) throw new RangeError(`read [${lo}, ${hi}): empty range reversed`);
  if (lo === hi) return;
  if (lo < first) throw new RangeError(`read [${lo}, ${hi}): ${lo} is below the first index ${first} (compacted)`);
  if (hi > last + 1) throw new RangeError(`read [${lo}, ${hi}): beyond the last index ${last}`);
}

/**
 * A LogStore in memory. Nothing is ever lost, so sync() does nothing.
 *
 * Semantics shared with DurableLogStore:
 * - append: `entries[0].index` in [firstIndex(), lastIndex() + 1]; the suffix
 *   from there is cut first. Indexes must be consecutive and terms must not
 *   decrease (RangeError otherwise).
 * - truncateSuffix(i): i > lastIndex() does nothing; i < firstIndex() is a
 *   RangeError (compacted entries cannot be cut).
 * - compactPrefix(i, t): i <= the last compacted index does nothing. If the
 *   log holds i with a term other than t, or does not reach i, every entry is
 *   dropped (the snapshot replaces a log that disagrees with it); otherwise
 *   the entries after i are kept. term(i) then answers t.
 * - read: [lo, hi) must lie within [firstIndex(), lastIndex() + 1) (RangeError).
 */
export class MemoryLogStore implements LogStore {
  /** The last compacted index (0 when never compacted) and its term. */
  private compacted: LogIndex = 0;
  private compactedTerm: Term = 0;
  private entries: Entry[] = [];
  private closed = false;

  firstIndex(): LogIndex {
    this.check();
    return this.compacted + 1;
  }

  lastIndex(): LogIndex {
    this.check();
    return this.compacted + this.entries.length;
  }

  term(index: LogIndex): Term | undefined {
    this.check();
    if (index === this.compacted) return this.compactedTerm;
    return this.entries[index - this.compacted - 1]?.term;
  }

  append(entries: readonly Entry[]): void {
    this.check();
    validateAppend(entries, this.compacted + 1, this.lastIndex(), (i) => this.term(i));
    const head = entries[0];
    if (head === undefined) return;
    this.entries.length = head.index - this.compacted - 1;
    for (const e of entries) this.entries.push(e);
  }

  truncateSuffix(index: LogIndex): void {
    this.check();
    if (index <= this.compacted) throw new RangeError(`truncateSuffix(${index}): below the first index ${this.compacted + 1}`);
    if (index > this.lastIndex()) return;
    this.entries.length = index - this.compacted - 1;
  }

  compactPrefix(index: LogIndex, term: Term): void {
    this.check();
    if (index <= this.compacted) return;
    if (index > this.lastIndex() || this.term(index) !== term) this.entries = [];
    else this.entries = this.entries.slice(index - this.compacted);
    this.compacted = index;
    this.compactedTerm = term;
  }

  read(lo: LogIndex, hi: LogIndex, maxBytes: number): Entry[] {
    this.check();
    checkReadRange(lo, hi, this.compacted + 1, this.lastIndex());
    const base = this.compacted + 1;
    const n = budgetCount(lo, hi, maxBytes, (i) => entryBytes(this.entries[i - base] as Entry));
    return this.entries.slice(lo - base, lo - base + n);
  }

  sync(): void {
    this.check();
  }

  close(): void {
    this.closed = true;
  }

  private check(): void {
    if (this.closed) throw new StoreClosedError('log store is closed');
  }
}
