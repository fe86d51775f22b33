// Log entries and the state that must survive a restart.

import type { LogIndex, NodeId, Term } from './ids.js';

/**
 * The members of a cluster (docs/MEMBERSHIP.md): who votes and who only
 * receives the log. Invariants: at least one voter; no id repeats; no id is
 * both a voter and an observer. Order is kept as written (not sorted).
 */
export interface Configuration {
  readonly voters: readonly NodeId[];
  readonly observers: readonly NodeId[];
  /**
   * The data directory each member is known to run on (docs/LOST-DISKS.md):
   * a member listed here counts in quorums only through messages that carry
   * exactly this directory id. Absent or without a member: nothing recorded
   * for it yet (it counts whatever its directory). Invariants: every node is
   * a voter or an observer, none twice, each id an integer in [1, 2^48);
   * never an empty array (absent instead). Order is kept as written.
   */
  readonly dirIds?: readonly DirIdRecord[];
}

/** One member's recorded directory id. */
export interface DirIdRecord {
  readonly node: NodeId;
  readonly dirId: number;
}

/** Directory ids are integers in [1, DIR_ID_LIMIT). */
export const DIR_ID_LIMIT = 2 ** 48;

/** True when `x` can be a directory id: an integer in [1, 2^48). */
export function isDirId(x: unknown): x is number {
  return typeof x === 'number' && Number.isInteger(x) && x >= 1 && x < DIR_ID_LIMIT;
}

/** The directory id `c` records for `node`, or undefined when it records none. */
export function recordedDirId(c: Configuration, node: NodeId): number | undefined {
  const list = c.dirIds;
  if (list === undefined) return undefined;
  for (const r of list) if (r.node === node) return r.dirId;
  return undefined;
}

/**
 * One record of the replicated log.
 * Invariants: `index >= 1`; `term >= 1`; within a log, indexes are consecutive
 * and terms never decrease.
 */
export type Entry = PayloadEntry | ConfigEntry;

/** A proposal (`data`), or the no-op a new leader writes to commit its term (`noop`, empty data). */
export interface PayloadEntry {
  readonly index: LogIndex;
  readonly term: Term;
  readonly type: 'data' | 'noop';
  readonly data: Uint8Array;
}

/**
 * A membership change (one server at a time): the whole configuration that
 * takes effect on each server as soon as this entry is in its log, committed
 * or not. Invariant: `data` is empty (the configuration is the payload; the
 * codecs write it where a data entry's bytes go).
 */
export interface ConfigEntry {
  readonly index: LogIndex;
  readonly term: Term;
  readonly type: 'config';
  readonly config: Configuration;
  readonly data: Uint8Array;
}

/** The entry types, for exhaustive switches. */
export type EntryType = Entry['type'];

/** One change of membership, as a leader is asked for it (src/core/membership.ts checks it). */
export type ConfigChange =
  /** A new non-voting member; it catches up before it may be promoted. */
  | { readonly kind: 'addObserver'; readonly node: NodeId }
  /** An observer becomes a voter (only once it has caught up). */
  | { readonly kind: 'promote'; readonly node: NodeId }
  /** A voter becomes an observer. */
  | { readonly kind: 'demote'; readonly node: NodeId }
  /** A voter or an observer leaves the configuration. */
  | { readonly kind: 'remove'; readonly node: NodeId };

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
  /**
   * The configuration in force at `index` (the latest configuration entry at
   * or before it). Absent: the bootstrap configuration (RaftConfig's voters
   * and observers), as for snapshots taken before membership could change.
   * The core sets it on every snapshot it describes (RaftNode.snapshotMeta,
   * compact); stores that keep only index and term lose it (docs/MEMBERSHIP.md).
   */
  readonly config?: Configuration;
}

/** The size of an entry for byte budgets (payload plus a fixed header). */
export function entryBytes(entry: Entry): number {
  if (entry.type === 'config') return configurationBytes(entry.config) + ENTRY_OVERHEAD_BYTES;
  return entry.data.byteLength + ENTRY_OVERHEAD_BYTES;
}

/** An estimate of a configuration's encoded size (a length byte per id, plus counts). */
export function configurationBytes(c: Configuration): number {
  let bytes = 3;
  for (const id of c.voters) bytes += 1 + id.length;
  for (const id of c.observers) bytes += 1 + id.length;
  if (c.dirIds !== undefined) for (const r of c.dirIds) bytes += 8 + r.node.length;
  return bytes;
}

/** True when two configurations list the same voters, observers and directory ids in the same order. */
export function sameConfiguration(a: Configuration, b: Configuration): boolean {
  if (a === b) return true;
  if (a.voters.length !== b.voters.length || a.observers.length !== b.observers.length) return false;
  for (let i = 0; i < a.voters.length; i++) if (a.voters[i] !== b.voters[i]) return false;
  for (let i = 0; i < a.observers.length; i++) if (a.observers[i] !== b.observers[i]) return false;
  const ad = a.dirIds ?? [];
  const bd = b.dirIds ?? [];
  if (ad.length !== bd.length) return false;
  for (let i = 0; i < ad.length; i++) {
    const x = ad[i] as DirIdRecord;
    const y = bd[i] as DirIdRecord;
    if (x.node !== y.node || x.dirId !== y.dirId) return false;
  }
  return true;
}

/** Why `c` breaks the {@link Configuration} invariants, or null when it is valid. */
export function configurationProblem(c: Configuration): string | null {
  if (c.voters.length === 0) return 'at least one voter is needed';
  const seen = new Set<string>();
  for (const id of [...c.voters, ...c.observers]) {
    if (id.length === 0) return 'an empty node id';
    if (seen.has(id)) return `${id} is listed twice`;
    seen.add(id);
  }
  if (c.dirIds !== undefined) {
    if (c.dirIds.length === 0) return 'an empty list of directory ids (leave it out instead)';
    const recorded = new Set<string>();
    for (const r of c.dirIds) {
      if (!seen.has(r.node)) return `a directory id for ${r.node}, which is not a member`;
      if (recorded.has(r.node)) return `two directory ids for ${r.node}`;
      recorded.add(r.node);
      if (!isDirId(r.dirId)) return `directory id ${r.dirId} of ${r.node} is not an integer in [1, 2^48)`;
    }
  }
  return null;
}

/** Bytes counted per entry beyond its payload, approximating its framing. */
export const ENTRY_OVERHEAD_BYTES = 24;
