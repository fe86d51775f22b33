// The cluster's leaders by term, as the dashboard's elections timeline draws
// them (docs/DASHBOARD.md, "Leaders by term"). Every node keeps one: what it
// saw itself (each term it lived through and the leader it heard from, taken
// from its role and leader changes) merged with what its dashboard learned
// from the other members while someone watched. It is written to a small
// file in the data directory, so a node that restarts still knows the
// leaders before its restart, and the dashboard of any member can rebuild the
// history of terms whose leader is dead or was restarted since.
//
// Merging is by term: Raft elects at most one leader per term, so the union
// of what the members report, keyed by term, is the history; of the reports
// of one term the earliest time is kept (the leader's own "became leader",
// or the first follower that heard from it). Two different leaders reported
// for one term cannot happen in a correct cluster; the first report is kept
// and the conflict counted and logged (it would be worth a bug report).

import { readFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import type { Logger } from 'pino';

/** One term's leader: who, and when (wall-clock ms) it was first reported leading. */
export interface LeaderTerm {
  readonly term: number;
  readonly leader: string;
  readonly at: number;
}

/** How many terms a history keeps (the newest). A few hundred elections fit in the dashboard's window many times over. */
export const LEADER_TERMS_MAX = 512;

/** The file, in a node's data directory, that keeps its history across restarts. */
export const LEADER_HISTORY_FILE = 'dashboard-leaders.json';

/** A leader history from another node or a file was not what it should be. */
export class LeaderHistoryFormatError extends Error {
  constructor(readonly where: string, detail: string, options?: ErrorOptions) {
    super(`leader history from ${where}: ${detail}`, options);
    this.name = 'LeaderHistoryFormatError';
  }
}

/** The result of a merge: the merged terms (ascending by term) and the terms whose reports named different leaders. */
export interface MergeResult {
  readonly terms: LeaderTerm[];
  readonly conflicts: readonly { readonly term: number; readonly kept: string; readonly other: string }[];
}

/**
 * Merges leader histories by term: one entry per term, the earliest `at` of
 * its reports; on two leaders for one term, the first list's (then the
 * earlier report's) leader is kept and the conflict returned. Keeps the
 * newest `max` terms. Pure; the inputs are not changed.
 */
export function mergeLeaderTerms(lists: readonly (readonly LeaderTerm[])[], max = LEADER_TERMS_MAX): MergeResult {
  const byTerm = new Map<number, LeaderTerm>();
  const conflicts: { term: number; kept: string; other: string }[] = [];
  for (const list of lists) {
    for (const t of list) {
      const had = byTerm.get(t.term);
      if (had === undefined) byTerm.set(t.term, { term: t.term, leader: t.leader, at: t.at });
      else if (had.leader !== t.leader) conflicts.push({ term: t.term, kept: had.leader, other: t.leader });
      else if (t.at < had.at) byTerm.set(t.term, { term: t.term, leader: had.leader, at: t.at });
    }
  }
  const terms = [...byTerm.values()].sort((a, b) => a.term - b.term);
  return { terms: terms.slice(Math.max(0, terms.length - max)), conflicts };
}

/** The leaders a node's own role and leader changes name: each (term, leader) with the time it was first seen. */
export function leaderTermsFromEvents(events: readonly { readonly at: number; readonly term: number; readonly leader: string | null }[]): LeaderTerm[] {
  return mergeLeaderTerms([events.flatMap((e) => (e.leader === null ? [] : [{ term: e.term, leader: e.leader, at: e.at }]))]).terms;
}

/** Checks a leader history read from another node or a file; throws LeaderHistoryFormatError naming `where` and the first bad item. */
export function parseLeaderTerms(value: unknown, where: string): LeaderTerm[] {
  if (!Array.isArray(value)) throw new LeaderHistoryFormatError(where, 'not a list');
  if (value.length > LEADER_TERMS_MAX) throw new LeaderHistoryFormatError(where, `${value.length} terms, more than ${LEADER_TERMS_MAX}`);
  return value.map((x: unknown, i): LeaderTerm => {
    const o = x as { term?: unknown; leader?: unknown; at?: unknown } | null;
    if (typeof o !== 'object' || o === null) throw new LeaderHistoryFormatError(where, `item ${i} is not an object`);
    const { term, leader, at } = o;
    if (typeof term !== 'number' || !Number.isSafeInteger(term) || term < 0) throw new LeaderHistoryFormatError(where, `item ${i}: bad term ${String(term)}`);
    if (typeof leader !== 'string' || leader.length === 0 || leader.length > 128) throw new LeaderHistoryFormatError(where, `item ${i}: bad leader`);
    if (typeof at !== 'number' || !Number.isFinite(at) || at < 0) throw new LeaderHistoryFormatError(where, `item ${i}: bad time ${String(at)}`);
    return { term, leader, at };
  });
}

/**
 * One node's leader history, kept in memory and (when given a file) on disk.
 * Invariants: `list()` is ascending by term, one entry per term, at most
 * LEADER_TERMS_MAX entries; the file, when written, holds what `list()` held
 * at some moment (written whole to a temporary file, then renamed over it).
 */
export class LeaderHistory {
  private terms: LeaderTerm[] = [];
  private writing: Promise<void> | null = null;
  private dirty = false;
  /** Reports of two leaders for one term (should stay 0). */
  conflicts = 0;
  /** Histories from elsewhere (peers, the file) that were malformed and ignored. */
  rejected = 0;
  /** Failed writes of the file (the history stays in memory). */
  writeFailures = 0;

  /** `file`: where to keep it (null: memory only). A missing file is an empty history; a malformed one is logged and ignored. */
  constructor(private readonly file: string | null, private readonly log: Logger | null) {
    if (file === null) return;
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') this.log?.warn({ err: e, file }, 'cannot read the dashboard\'s leader history; starting without it');
      return;
    }
    try {
      this.terms = mergeLeaderTerms([parseLeaderTerms(JSON.parse(text) as unknown, file)]).terms;
    } catch (e) {
      this.rejected++;
      this.log?.warn({ err: e, file }, 'the dashboard\'s leader history file is malformed; starting without it (it is rewritten at the next change)');
    }
  }

  /** The history, ascending by term (a copy). */
  list(): LeaderTerm[] {
    return [...this.terms];
  }

  /** Merges `terms` in (what this node saw, or what `from` reported); returns whether anything changed, and then saves the file. */
  add(terms: readonly LeaderTerm[], from = 'this node'): boolean {
    const merged = mergeLeaderTerms([this.terms, terms]);
    for (const c of merged.conflicts) {
      this.conflicts++;
      this.log?.error({ term: c.term, kept: c.kept, reported: c.other, from }, 'two leaders reported for one term; keeping the first');
    }
    const changed = merged.terms.length !== this.terms.length
      || merged.terms.some((t, i) => t.term !== this.terms[i]?.term || t.at !== this.terms[i]?.at);
    if (!changed) return false;
    this.terms = merged.terms;
    this.save();
    return true;
  }

  /** Resolves once the file holds the latest history (tests, and a node that stops). */
  async flushed(): Promise<void> {
    while (this.writing !== null) await this.writing;
  }

  /** Writes the file off the event loop, one write at a time; a change during a write is written after it. Not fsynced: losing the last change to a power cut costs a bar in a chart, not data. */
  private save(): void {
    if (this.file === null) return;
    this.dirty = true;
    if (this.writing !== null) return;
    const file = this.file;
    const run = async (): Promise<void> => {
      while (this.dirty) {
        this.dirty = false;
        const tmp = `${file}.tmp`;
        try {
          await writeFile(tmp, JSON.stringify(this.terms) + '\n');
          await rename(tmp, file);
        } catch (e) {
          this.writeFailures++;
          this.log?.warn({ err: e, file }, 'cannot write the dashboard\'s leader history; it is kept in memory');
        }
      }
    };
    this.writing = run().finally(() => { this.writing = null; });
  }
}
