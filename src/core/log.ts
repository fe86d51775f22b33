// The core's view of the replicated log: a snapshot marker, the entries after
// it (held in memory), and three positions: what is durable (stable), what is
// committed, and what has been applied. It also keeps the configuration
// entries after the snapshot, so that the configuration in force (the latest
// in the log, committed or not) is known at once and falls back to the
// previous one when a truncation cuts a configuration entry.

import { entryBytes, type Configuration, type Entry, type SnapshotMeta } from '../protocol/entry.js';
import type { LogIndex, Term } from '../protocol/ids.js';
import { assert, AssertionError } from '../util/assert.js';

/**
 * Invariants (checked by {@link RaftLog.checkInvariants}):
 * - entries are consecutive from `snapshot.index + 1`, terms never decrease,
 *   and the first entry's term is at least `snapshot.term`;
 * - snapshot.index <= applied <= commit <= lastIndex();
 * - snapshot.index <= stable <= lastIndex(), and applied <= stable (only
 *   durable entries are applied);
 * - unstableFrom in [stable + 1, lastIndex() + 1]: entries from there on have
 *   not yet been handed to the runtime to persist;
 * - `configs` lists exactly the configuration entries after the snapshot, in
 *   index order.
 */
export class RaftLog {
  /** Everything in [1, snapshot.index] lives only in the snapshot. */
  snapshot: SnapshotMeta;
  /** Entries snapshot.index + 1, snapshot.index + 2, … */
  private entries: Entry[];
  /** The last index known durable on this node. */
  stable: LogIndex;
  /** The first index not yet handed to the runtime for persisting. */
  unstableFrom: LogIndex;
  commit: LogIndex;
  applied: LogIndex;
  /** The configuration in force when neither the log nor the snapshot names one (RaftConfig's voters and observers). */
  readonly bootstrap: Configuration;
  /** The configuration entries after the snapshot, oldest first. */
  private configs: ConfigurationAt[] = [];
  /** Bumped whenever the latest configuration may have changed (append, truncation, restore). */
  configVersion = 0;

  constructor(snapshot: SnapshotMeta, entries: readonly Entry[], commit: LogIndex, bootstrap: Configuration) {
    this.snapshot = snapshot;
    this.bootstrap = bootstrap;
    this.entries = [...entries];
    for (const e of this.entries) if (e.type === 'config') this.configs.push({ index: e.index, config: e.config });
    this.stable = this.lastIndex();
    this.unstableFrom = this.stable + 1;
    assert(commit <= this.lastIndex(), () => `restart with commit ${commit} beyond the durable log end ${this.lastIndex()}: entries must be persisted before the hard state`);
    this.commit = Math.max(commit, snapshot.index);
    this.applied = snapshot.index;
    this.checkInvariants();
  }

  firstIndex(): LogIndex {
    return this.snapshot.index + 1;
  }

  lastIndex(): LogIndex {
    return this.snapshot.index + this.entries.length;
  }

  lastTerm(): Term {
    const last = this.entries[this.entries.length - 1];
    return last === undefined ? this.snapshot.term : last.term;
  }

  /** The term of the entry at `index`; undefined when compacted away or beyond the end. */
  term(index: LogIndex): Term | undefined {
    if (index === this.snapshot.index) return this.snapshot.term;
    if (index < this.snapshot.index) return undefined;
    return this.entries[index - this.snapshot.index - 1]?.term;
  }

  entry(index: LogIndex): Entry | undefined {
    if (index <= this.snapshot.index) return undefined;
    return this.entries[index - this.snapshot.index - 1];
  }

  /** True when the log holds (index, term); the empty prefix (0, 0) always matches. */
  matchTerm(index: LogIndex, term: Term): boolean {
    return this.term(index) === term;
  }

  /**
   * Entries in [lo, hi), at most `maxBytes` of them but always at least one
   * when the range is not empty. `lo` must not be compacted.
   */
  slice(lo: LogIndex, hi: LogIndex, maxBytes: number): Entry[] {
    assert(lo > this.snapshot.index, () => `slice from ${lo} reaches into the snapshot (${this.snapshot.index})`);
    const end = Math.min(hi, this.lastIndex() + 1);
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i < end; i++) {
      const e = this.entries[i - this.snapshot.index - 1] as Entry;
      bytes += entryBytes(e);
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  /**
   * The configuration in force: the latest configuration entry (committed or
   * not), else the snapshot's, else the bootstrap configuration (index 0).
   */
  configuration(): ConfigurationAt {
    const last = this.configs[this.configs.length - 1];
    if (last !== undefined) return last;
    return this.snapshotConfiguration();
  }

  /** The configuration in force at `index` (not compacted: at or after the snapshot index). */
  configurationAt(index: LogIndex): ConfigurationAt {
    assert(index >= this.snapshot.index, () => `configuration at ${index}, inside the snapshot (${this.snapshot.index})`);
    for (let i = this.configs.length - 1; i >= 0; i--) {
      const c = this.configs[i] as ConfigurationAt;
      if (c.index <= index) return c;
    }
    return this.snapshotConfiguration();
  }

  private snapshotConfiguration(): ConfigurationAt {
    const c = this.snapshot.config;
    return c === undefined ? { index: 0, config: this.bootstrap } : { index: this.snapshot.index, config: c };
  }

  /** The id a snapshot at `index` must carry: index, term, and the configuration in force there. */
  snapshotMetaAt(index: LogIndex): SnapshotMeta {
    const term = this.term(index);
    assert(term !== undefined, () => `no entry at ${index} to describe a snapshot of`);
    return { index, term, config: this.configurationAt(index).config };
  }

  /** Appends entries that follow the last one (the leader's own proposals). */
  append(entries: readonly Entry[]): void {
    let lastIndex = this.lastIndex();
    let lastTerm = this.lastTerm();
    for (const e of entries) {
      if (e.index !== lastIndex + 1) fail(`append at ${e.index} after ${lastIndex}`);
      if (e.term < lastTerm) fail(`append term ${e.term} after term ${lastTerm}`);
      if (e.type === 'config') {
        this.configs.push({ index: e.index, config: e.config });
        this.configVersion++;
      }
      this.entries.push(e);
      lastIndex = e.index;
      lastTerm = e.term;
    }
  }

  /**
   * A follower's append: `entries` follow an entry that matches the leader's.
   * Entries already present with the same term are kept; at the first
   * conflict, the suffix is cut and the rest appended. Returns the index of
   * the last entry now known to match the leader.
   */
  appendFromLeader(entries: readonly Entry[], afterIndex: LogIndex): LogIndex {
    let i = 0;
    for (; i < entries.length; i++) {
      const e = entries[i] as Entry;
      const mine = this.term(e.index);
      if (mine === undefined) break;
      if (mine !== e.term) {
        this.truncateFrom(e.index);
        break;
      }
    }
    if (i < entries.length) this.append(entries.slice(i));
    const last = entries[entries.length - 1];
    return last === undefined ? afterIndex : last.index;
  }

  /** Removes every entry at or after `index`. Never cuts a committed entry. */
  truncateFrom(index: LogIndex): void {
    assert(index > this.commit, () => `truncation from ${index} would cut committed entries (commit ${this.commit})`);
    if (index > this.lastIndex()) return;
    this.entries.length = index - this.snapshot.index - 1;
    let cut = this.configs.length;
    while (cut > 0 && (this.configs[cut - 1] as ConfigurationAt).index >= index) cut--;
    if (cut < this.configs.length) {
      this.configs.length = cut;
      this.configVersion++;
    }
    this.stable = Math.min(this.stable, index - 1);
    this.unstableFrom = Math.min(this.unstableFrom, index);
  }

  /** Moves the commit index forward (never back, never past the end). */
  commitTo(index: LogIndex): boolean {
    if (index <= this.commit) return false;
    assert(index <= this.lastIndex(), () => `commit ${index} beyond the last index ${this.lastIndex()}`);
    this.commit = index;
    return true;
  }

  /**
   * The largest index at or below `index` whose term is at most `term`, with
   * that term: the conflict hint that lets a leader skip a whole term.
   */
  findConflictByTerm(index: LogIndex, term: Term): { index: LogIndex; term: Term } {
    let i = Math.min(index, this.lastIndex());
    for (; i > this.snapshot.index; i--) {
      const t = this.term(i) as Term;
      if (t <= term) return { index: i, term: t };
    }
    return { index: this.snapshot.index, term: this.snapshot.term };
  }

  /**
   * Pull mode's divergence test (KRaft's endOffsetForEpoch): the largest term
   * T <= `term` present in the log, and the end offset (exclusive) of T's
   * entries. Undefined when the answer lies inside the snapshot.
   */
  endOffsetForTerm(term: Term): { term: Term; endOffset: LogIndex } | undefined {
    for (let i = this.lastIndex(); i > this.snapshot.index; i--) {
      const t = this.term(i) as Term;
      if (t <= term) return { term: t, endOffset: i + 1 };
    }
    if (this.snapshot.index === 0) return { term: 0, endOffset: 1 };
    if (this.snapshot.term <= term && this.term(this.snapshot.index + 1) !== this.snapshot.term) {
      return { term: this.snapshot.term, endOffset: this.snapshot.index + 1 };
    }
    return undefined;
  }

  /** Entries handed to the runtime to persist; marks them in progress. */
  takeUnstable(): Entry[] {
    if (this.unstableFrom > this.lastIndex()) return [];
    const out = this.entries.slice(this.unstableFrom - this.snapshot.index - 1);
    this.unstableFrom = this.lastIndex() + 1;
    return out;
  }

  /** The runtime reports that entries up to `index` with `term` are durable. */
  stableTo(index: LogIndex, term: Term): void {
    if (this.term(index) === term && index > this.stable) this.stable = index;
  }

  /**
   * The last index that may be applied: committed and durable here. (A
   * follower may learn of a commit before its own copy is durable; it
   * applies the entry once it is, so a snapshot never covers an entry this
   * node could still lose.)
   */
  appliableTo(): LogIndex {
    return Math.min(this.commit, this.stable);
  }

  /** Committed, durable entries not yet applied, at most `maxBytes` (at least one). */
  nextCommitted(maxBytes: number): Entry[] {
    const upTo = this.appliableTo();
    if (this.applied >= upTo) return [];
    return this.slice(this.applied + 1, upTo + 1, maxBytes);
  }

  appliedTo(index: LogIndex): void {
    assert(index >= this.applied && index <= this.appliableTo(), () => `applied ${index} outside [${this.applied}, ${this.appliableTo()}]`);
    this.applied = index;
  }

  /** Drops entries up to `index`, which a durable snapshot now holds. */
  compact(index: LogIndex): SnapshotMeta {
    assert(index <= this.applied, () => `compact to ${index} beyond applied ${this.applied}`);
    assert(index <= this.stable, () => `compact to ${index} beyond the durable ${this.stable}`);
    if (index <= this.snapshot.index) return this.snapshot;
    const meta = this.snapshotMetaAt(index);
    this.entries = this.entries.slice(index - this.snapshot.index);
    this.configs = this.configs.filter((c) => c.index > index);
    this.snapshot = meta;
    return this.snapshot;
  }

  /**
   * Installs a snapshot received from the leader. Entries after it are kept if
   * the log already holds (index, term); otherwise the log is replaced.
   */
  restore(meta: SnapshotMeta): void {
    assert(meta.index > this.commit, () => `restore snapshot at ${meta.index} at or below commit ${this.commit}`);
    if (this.term(meta.index) === meta.term) {
      this.entries = this.entries.slice(meta.index - this.snapshot.index);
      this.configs = this.configs.filter((c) => c.index > meta.index);
    } else {
      this.entries = [];
      this.configs = [];
      this.stable = meta.index;
      this.unstableFrom = meta.index + 1;
    }
    this.configVersion++;
    this.snapshot = meta;
    this.stable = Math.max(this.stable, meta.index);
    this.unstableFrom = Math.max(this.unstableFrom, meta.index + 1);
    this.commit = meta.index;
    this.applied = meta.index;
  }

  /**
   * Asserts the invariants above. The entry checks cover the last
   * `tailEntries` entries (all by default): appends happen at the tail, so a
   * checker that runs after every step need not walk the whole log.
   */
  checkInvariants(tailEntries = Infinity): void {
    // Plain ifs, not assert(): this runs after every simulated event.
    const s = this.snapshot;
    const from = Math.max(0, this.entries.length - tailEntries - 1);
    const before = this.entries[from - 1];
    let prevIndex = before === undefined ? s.index : before.index;
    let prevTerm = before === undefined ? s.term : before.term;
    let configAt = this.configs.length;
    for (let i = this.entries.length - 1; i >= from; i--) {
      const e = this.entries[i] as Entry;
      if (e.type !== 'config') continue;
      const c = this.configs[--configAt];
      if (c === undefined || c.index !== e.index || c.config !== e.config) fail(`configuration entry ${e.index} is not tracked`);
    }
    if (configAt > 0 && (this.configs[configAt - 1] as ConfigurationAt).index >= (this.entries[from]?.index ?? this.lastIndex() + 1)) {
      fail('a tracked configuration has no entry');
    }
    for (let i = from; i < this.entries.length; i++) {
      const e = this.entries[i] as Entry;
      if (e.index !== prevIndex + 1) fail(`log gap: ${e.index} after ${prevIndex}`);
      if (e.term < prevTerm) fail(`log term goes back at ${e.index}: ${e.term} < ${prevTerm}`);
      prevIndex = e.index;
      prevTerm = e.term;
    }
    const last = this.lastIndex();
    if (!(s.index <= this.applied && this.applied <= this.commit && this.commit <= last)) {
      fail(`positions out of order: snapshot ${s.index} applied ${this.applied} commit ${this.commit} last ${last}`);
    }
    if (!(s.index <= this.stable && this.stable <= last)) fail(`stable ${this.stable} outside [${s.index}, ${last}]`);
    if (this.applied > this.stable) fail(`applied ${this.applied} beyond the durable ${this.stable}`);
    if (!(this.unstableFrom >= this.stable + 1 && this.unstableFrom <= last + 1)) {
      fail(`unstableFrom ${this.unstableFrom} outside [${this.stable + 1}, ${last + 1}]`);
    }
  }
}

/** A configuration and the index of the entry that holds it (the snapshot's index, or 0 for the bootstrap one). */
export interface ConfigurationAt {
  readonly index: LogIndex;
  readonly config: Configuration;
}

function fail(message: string): never {
  throw new AssertionError(message);
}
