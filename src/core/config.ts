// The configuration of one node's consensus core, with defaults and checks.
// Time is counted in ticks: the runtime decides how long a tick is (the
// simulator uses virtual milliseconds, a real node real ones).

import type { NodeId } from '../protocol/ids.js';
import type { Random } from '../util/prng.js';
import { isDirId, type SnapshotMeta } from '../protocol/entry.js';
import type { PlantedBug } from './planted-bugs.js';

/** How the log moves from the leader to the others; fixed per cluster. */
export type ReplicationMode = 'push' | 'pull';

/**
 * Reads a chunk of a local snapshot so that the leader can send it to a
 * follower that needs compacted entries. Implemented by the runtime (from the
 * snapshot file) or the simulator (from memory); the core only calls it.
 * Returns `undefined` when that snapshot no longer exists.
 */
export type SnapshotReader = (
  snapshot: SnapshotMeta,
  position: number,
  maxBytes: number,
) => { readonly data: Uint8Array; readonly done: boolean } | undefined;

/** Everything a node's core needs to know, fixed for its lifetime. */
export interface RaftConfig {
  readonly id: NodeId;
  /**
   * The bootstrap configuration's voters: the configuration in force until the
   * log (or its snapshot) names another (docs/MEMBERSHIP.md). Every member of
   * a cluster must start with the same bootstrap configuration; a node that
   * joins a running cluster starts as a non-voter (an observer, or in neither
   * list) and learns the live configuration from the log.
   */
  readonly voters: readonly NodeId[];
  /** The bootstrap configuration's non-voting members; never counted in any quorum. */
  readonly observers: readonly NodeId[];
  readonly replication: ReplicationMode;
  /** Election timeout, randomized in the half-open range [min, max) ticks. */
  readonly electionTimeoutMinTicks: number;
  readonly electionTimeoutMaxTicks: number;
  /** Push mode: ticks between heartbeats. */
  readonly heartbeatIntervalTicks: number;
  /**
   * Pull mode: a follower that has not completed a fetch for a randomized
   * election timeout campaigns (the fetch timeout); this is how long the
   * leader may park a fetch, and must be well below the election timeout.
   */
  readonly fetchMaxWaitTicks: number;
  /** Pull mode: ticks after which an unanswered fetch is sent again. */
  readonly fetchRetryTicks: number;
  /** The most bytes of entries in one AppendEntries or fetch response. */
  readonly maxMessageBytes: number;
  /** Push mode: the most AppendEntries in flight to one follower. */
  readonly maxInflightMessages: number;
  /**
   * The most Readies handed out (advance()d) whose persistence the runtime
   * has not yet acknowledged (persisted()): beyond it hasReady() is false
   * until the oldest is durable (ready.ts, asynchronous persistence).
   */
  readonly maxInflightReadies: number;
  /**
   * Back pressure: the leader refuses proposals (BackpressureError) while its
   * log holds more than this many bytes of uncommitted entries. A proposal
   * is always accepted when nothing is uncommitted.
   */
  readonly maxUncommittedBytes: number;
  /** Snapshot chunk size for both InstallSnapshot and FetchSnapshot. */
  readonly snapshotChunkBytes: number;
  /** An observer may be promoted to voter only once its match is at least the commit index and within this many entries of the log end. */
  readonly catchUpMaxLagEntries: number;
  /** Pre-vote before a real election (on by default). */
  readonly preVote: boolean;
  /** Push mode: a leader without a majority's contact for an election timeout steps down. */
  readonly checkQuorum: boolean;
  readonly random: Random;
  /**
   * The id of this node's data directory (docs/LOST-DISKS.md): an integer in
   * [1, 2^48) that the runtime draws at random when it creates the directory
   * and keeps in it, so that a node restarted on an empty (lost, replaced)
   * directory has a new one. Every message carries it; the leader records each
   * member's in the configuration, and from then on only messages with that id
   * count for the member. Absent: this node has no directory id (its messages
   * carry none, nothing is recorded for it, and it counts only where nothing
   * is recorded for it) — what tests and callers written before issue 7 get.
   */
  readonly directoryId?: number;
  readonly snapshotReader?: SnapshotReader;
  /** For the simulator's checker tests only: switch on one deliberate bug. */
  readonly plantedBug?: PlantedBug;
}

/** The defaults, in ticks of about 10 ms. */
export const DEFAULTS = {
  electionTimeoutMinTicks: 10,
  electionTimeoutMaxTicks: 20,
  heartbeatIntervalTicks: 2,
  fetchMaxWaitTicks: 5,
  fetchRetryTicks: 3,
  maxMessageBytes: 1 << 20,
  maxInflightMessages: 64,
  maxInflightReadies: 64,
  maxUncommittedBytes: 32 << 20,
  snapshotChunkBytes: 256 << 10,
  catchUpMaxLagEntries: 100,
  preVote: true,
  checkQuorum: true,
} as const;

/** A configuration with every optional field defaulted. */
export type RaftConfigInput = Pick<RaftConfig, 'id' | 'voters' | 'replication' | 'random'> &
  Partial<Omit<RaftConfig, 'id' | 'voters' | 'replication' | 'random'>>;

/** Thrown when a configuration cannot work. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Fills in defaults and checks the configuration, throwing {@link ConfigError}. */
export function makeConfig(input: RaftConfigInput): RaftConfig {
  const config: RaftConfig = { ...DEFAULTS, observers: [], ...input };
  const problems: string[] = [];
  if (config.voters.length === 0) problems.push('at least one voter is needed');
  if (new Set(config.voters).size !== config.voters.length) problems.push('voters repeat');
  if (config.observers.some((o) => config.voters.includes(o))) problems.push('a node is both voter and observer');
  if (new Set(config.observers).size !== config.observers.length) problems.push('observers repeat');
  // A node in neither list is a non-member: it starts as an observer (in pull
  // mode it may fetch without being a member) until the log says otherwise.
  if (config.electionTimeoutMinTicks < 1) problems.push('electionTimeoutMinTicks must be >= 1');
  if (config.electionTimeoutMaxTicks <= config.electionTimeoutMinTicks) {
    problems.push('electionTimeoutMaxTicks must exceed electionTimeoutMinTicks (the range is [min, max))');
  }
  if (config.heartbeatIntervalTicks < 1 || config.heartbeatIntervalTicks >= config.electionTimeoutMinTicks) {
    problems.push('heartbeatIntervalTicks must be in [1, electionTimeoutMinTicks)');
  }
  if (config.fetchMaxWaitTicks < 1 || config.fetchMaxWaitTicks >= config.electionTimeoutMinTicks) {
    // At least one tick: an idle fetch answered at once would be re-sent at
    // once, a busy poll. Below the election timeout: a parked fetch must be
    // answered before the follower's fetch timeout fires.
    problems.push('fetchMaxWaitTicks must be in [1, electionTimeoutMinTicks)');
  }
  if (config.fetchRetryTicks < 1) problems.push('fetchRetryTicks must be >= 1');
  if (config.directoryId !== undefined && !isDirId(config.directoryId)) problems.push('directoryId must be an integer in [1, 2^48)');
  if (config.maxMessageBytes < 1 || config.snapshotChunkBytes < 1 || config.maxInflightMessages < 1 || config.maxInflightReadies < 1 ||
    config.maxUncommittedBytes < 1 || config.catchUpMaxLagEntries < 0) {
    problems.push('byte and window limits must be positive');
  }
  if (problems.length > 0) throw new ConfigError(`invalid raft config for ${config.id}: ${problems.join('; ')}`);
  return config;
}
