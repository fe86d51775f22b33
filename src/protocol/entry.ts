// Log entries and the state that must survive a restart.

import type { LogIndex, NodeId, Term } from './ids.js';

/**
 * One record of the replicated log.
 * Invariants: `index >= 1`; `term >= 1`; within a log, indexes are consecutive
 * and terms never decrease.
 */
export interface Entry {
  readonly index: LogIndex;
  readonly term: Term;
  /** `noop`: written by a new leader to commit its term; `data`: a proposal. */
  readonly type: 'data' | 'noop';
  readonly data: Uint8Array;
}

/**
 * What a node must persist before it acts on it (term and vote before a vote is
 * granted; commit so that a restart does not re-deliver a shorter prefix).
 * Invariant: `term` never decreases; `vote` is set at most once per term.
 */
export interface HardState {
  readonly term: Term;
  readonly vote: NodeId | null;
  readonly commit: LogIndex;
}

/**
 * Identifies a snapshot: it holds the effect of every entry in [1, index], and
 * the entry at `index` had `term`. (KRaft calls this pair the snapshot id.)
 */
export interface SnapshotMeta {
  readonly index: LogIndex;
  readonly term: Term;
}

/** The size of an entry for byte budgets (payload plus a fixed header). */
export function entryBytes(entry: Entry): number {
  return entry.data.byteLength + ENTRY_OVERHEAD_BYTES;
}

/** Bytes counted per entry beyond its payload, approximating its framing. */
export const ENTRY_OVERHEAD_BYTES = 24;
