// Deliberate bugs that the simulator's checker tests switch on, one at a time,
// to prove that each safety invariant can fail when its rule is broken. A
// production configuration never sets one; each is read at exactly one place,
// named in its comment (in the core, but for the Ready driver's own rule).

/** The bugs that can be planted, each breaking one safety rule. */
export type PlantedBug =
  /** Commit an entry of an earlier term by counting replicas (Raft 5.4.2). election/commit: quorum.ts */
  | 'commitOldTermByCounting'
  /** Grant a second vote in a term that already has one. election.ts */
  | 'doubleVote'
  /** Send a vote before the vote is durable, so a restart forgets it. node.ts ready() */
  | 'voteBeforePersist'
  /** Skip the up-to-date check when granting a vote (Raft 5.4.1). election.ts */
  | 'skipUpToDateCheck'
  /** Pull mode: ignore a Diverging answer instead of truncating. replication/pull.ts */
  | 'skipDivergingTruncation'
  /** Push mode: accept AppendEntries without checking prevIndex/prevTerm. replication/push.ts */
  | 'skipPrevLogCheck'
  /** Count observers toward the commit quorum. quorum.ts */
  | 'countObserverTowardCommit'
  /** Acknowledge entries before they are durable (fetch or append response). node.ts ready() */
  | 'ackBeforePersist'
  /** Apply the leader's commit index beyond the entries known to match it. replication/*.ts */
  | 'commitBeyondMatch'
  /** Promise one quiet tick too many, so a sleeping runtime would miss a timer (not a safety rule: the runtime's timer contract). timers.ts */
  | 'overstateTicksUntilDue'
  /** Start a membership change while the previous one is uncommitted (two changes in flight). membership.ts */
  | 'concurrentConfigChanges'
  /** Keep using a configuration after a truncation removed its entry from the log. node.ts syncConfiguration() */
  | 'keepTruncatedConfig'
  /** Use a configuration from entries received but not appended (a rejected AppendEntries, a stale fetch answer). node.ts adoptUnlogged() */
  | 'configBeforeAppend'
  /** Keep counting a removed voter toward the commit quorum. transitions.ts onConfigurationChanged() */
  | 'countRemovedVoter'
  /** Skip the directory id check: a node on a wiped disk votes and is counted as if it still had its old one. quorum.ts directoryCounts() */
  | 'wipedNodeVotes'
  /** Record a member's directory from any message heard, even one a removed replica sent before the member was added back. membership.ts maybeRecordDirIds() */
  | 'recordStaleDirectory'
  /** Start a ReadIndex read at the commit index before an entry of this leader's term has committed (dissertation 6.4 step 1), when that index may lag. read-index.ts request() */
  | 'readBeforeTermCommit'
  /** Recover the term from the last log entry instead of the hard state, so a restart forgets the term of an election that appended nothing. node.ts constructor */
  | 'termFromLogOnRestart'
  /** Let an observer campaign as if it were a voter. node.ts mayElect() */
  | 'observerCampaigns'
  /** Describe a snapshot with the latest configuration in the log instead of the one in force at its index. node.ts snapshotMeta() */
  | 'snapshotLatestConfig'
  /** A (pre-)candidate whose election neither wins nor loses never tries again (no timeout while campaigning). node.ts tick() */
  | 'candidateNeverRetries'
  /** A leader counts its own entries toward commit once handed to the runtime (advance()), before they are durable (persisted()). node.ts advance() */
  | 'countOwnBeforeDurable'
  /**
   * Group commit acknowledges every Ready in flight when an fdatasync ends,
   * including those written after it began (not covered by it). The Ready
   * driver, src/node/ready-loop.ts onSynced(): the one planted bug read
   * outside src/core, since the rule it breaks is the driver's.
   */
  | 'ackUnsyncedReadies';

/** Every planted bug, for tools that take one by name (the simulator's CLI); the Record makes the compiler check the list is complete. */
const ALL: Record<PlantedBug, true> = {
  commitOldTermByCounting: true, doubleVote: true, voteBeforePersist: true, skipUpToDateCheck: true, skipDivergingTruncation: true,
  skipPrevLogCheck: true, countObserverTowardCommit: true, ackBeforePersist: true, commitBeyondMatch: true, overstateTicksUntilDue: true,
  concurrentConfigChanges: true, keepTruncatedConfig: true, configBeforeAppend: true, countRemovedVoter: true, wipedNodeVotes: true, recordStaleDirectory: true,
  readBeforeTermCommit: true, termFromLogOnRestart: true, observerCampaigns: true, snapshotLatestConfig: true, candidateNeverRetries: true,
  countOwnBeforeDurable: true, ackUnsyncedReadies: true,
};
export const PLANTED_BUGS: readonly PlantedBug[] = Object.keys(ALL) as PlantedBug[];
