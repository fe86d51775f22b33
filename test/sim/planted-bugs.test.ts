// A checker that cannot fail proves nothing. For each safety rule, switch on a
// deliberate bug in the core or the Ready driver (src/core/planted-bugs.ts) and require the
// simulator to report that rule's violation within a bounded number of seeds.
// The seeds are the same fixed range every run, so this test is deterministic.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ReplicationMode } from '../../src/core/config.js';
import type { PlantedBug } from '../../src/core/planted-bugs.js';
import type { Rule } from './invariants.js';
import { replayCommand, runSeed } from './run.js';

interface Case {
  readonly bug: PlantedBug;
  /** The modes where the bug can do harm (push-only code paths are not run in pull mode). */
  readonly modes: readonly ReplicationMode[];
  /** The rules whose violation shows the bug. */
  readonly rules: readonly Rule[];
}

const MAX_SEEDS = 400;

const CASES: readonly Case[] = [
  { bug: 'commitOldTermByCounting', modes: ['push', 'pull'], rules: ['commitRule', 'leaderCompleteness', 'stateMachineSafety'] },
  { bug: 'doubleVote', modes: ['push', 'pull'], rules: ['electionSafety', 'logMatching', 'stateMachineSafety'] },
  { bug: 'voteBeforePersist', modes: ['push', 'pull'], rules: ['persistenceContract', 'electionSafety'] },
  { bug: 'skipUpToDateCheck', modes: ['push', 'pull'], rules: ['leaderCompleteness', 'stateMachineSafety'] },
  { bug: 'skipDivergingTruncation', modes: ['pull'], rules: ['persistenceContract', 'logMatching'] },
  { bug: 'skipPrevLogCheck', modes: ['push'], rules: ['logMatching'] },
  { bug: 'countObserverTowardCommit', modes: ['push', 'pull'], rules: ['durableMajority'] },
  { bug: 'ackBeforePersist', modes: ['push', 'pull'], rules: ['persistenceContract', 'durableMajority'] },
  { bug: 'commitBeyondMatch', modes: ['push'], rules: ['stateMachineSafety', 'logMatching'] },
  { bug: 'overstateTicksUntilDue', modes: ['push', 'pull'], rules: ['ticksUntilDue'] },
  { bug: 'concurrentConfigChanges', modes: ['push', 'pull'], rules: ['configChange', 'durableMajority', 'leaderCompleteness', 'stateMachineSafety'] },
  { bug: 'keepTruncatedConfig', modes: ['push', 'pull'], rules: ['configInForce', 'observerCounted'] },
  { bug: 'configBeforeAppend', modes: ['push', 'pull'], rules: ['configInForce', 'observerCounted'] },
  { bug: 'countRemovedVoter', modes: ['push', 'pull'], rules: ['durableMajority'] },
  { bug: 'readBeforeTermCommit', modes: ['push', 'pull'], rules: ['staleRead'] },
  { bug: 'termFromLogOnRestart', modes: ['push', 'pull'], rules: ['monotonic'] },
  { bug: 'observerCampaigns', modes: ['push', 'pull'], rules: ['observerCounted'] },
  { bug: 'snapshotLatestConfig', modes: ['push', 'pull'], rules: ['snapshotConfig'] },
  { bug: 'candidateNeverRetries', modes: ['push', 'pull'], rules: ['liveness'] },
  // Asynchronous persistence (issue 16): a leader counting its own entries before they are durable, and group commit
  // acknowledging Readies that its fsync did not cover.
  { bug: 'countOwnBeforeDurable', modes: ['push', 'pull'], rules: ['durableMajority', 'leaderCompleteness', 'stateMachineSafety'] },
  { bug: 'ackUnsyncedReadies', modes: ['push', 'pull'], rules: ['persistenceContract', 'durableMajority'] },
  { bug: 'wipedNodeVotes', modes: ['push', 'pull'], rules: ['staleNotCounted', 'durableMajority', 'leaderCompleteness', 'stateMachineSafety'] },
  // A removed replica's late packet (TCP retransmits a dead process's last segment) names a directory that no longer runs.
  { bug: 'recordStaleDirectory', modes: ['push', 'pull'], rules: ['dirIdRecord'] },
];

for (const c of CASES) {
  for (const mode of c.modes) {
    test(`planted bug ${c.bug} (${mode}) is reported as ${c.rules.join(' or ')} within ${MAX_SEEDS} seeds`, () => {
      for (let seed = 1; seed <= MAX_SEEDS; seed++) {
        const r = runSeed(seed, { mode, plantedBug: c.bug });
        if (r.violation === null) continue;
        assert.ok(c.rules.includes(r.violation.rule),
          `seed ${seed}: expected ${c.rules.join('|')}, got ${r.violation.message} (${replayCommand(r)})`);
        return;
      }
      assert.fail(`no violation in ${MAX_SEEDS} seeds: the checker misses ${c.bug} in ${mode} mode`);
    });
  }
}
