// Membership changes, one server at a time (Raft dissertation 4.1; Kafka's
// KIP-853 dynamic quorum works the same way). docs/MEMBERSHIP.md says why.
//
// The rules, and where they are kept:
//  - A configuration entry takes effect on a server as soon as it is in that
//    server's log, committed or not (RaftLog tracks the configuration entries;
//    RaftNode.syncConfiguration adopts the latest after every change of the
//    log). A truncation that cuts one falls back to the previous.
//  - A leader starts a change only when the previous one is committed, and
//    only once it has committed an entry of its own term (its no-op), and each
//    change adds or removes at most one voter, so that any majority of the old
//    voters and any majority of the new ones intersect (proposeChange below).
//  - An observer is promoted only once it has caught up.
//  - The leader records each member's data directory id (docs/LOST-DISKS.md)
//    with a configuration entry of the same voters and observers
//    (maybeRecordDirIds below), under the same one-change-at-a-time rules;
//    removing a member drops its record.
//  - A leader that is not a voter of its own latest configuration leads on
//    without counting itself, and steps down once that configuration commits
//    (transitions.onLeaderProgress); a node that is not a voter neither votes
//    nor campaigns (election.ts).

import type { ConfigChange, Configuration, ConfigEntry, DirIdRecord } from '../protocol/entry.js';
import { entryBytes, recordedDirId } from '../protocol/entry.js';
import type { LogIndex, NodeId } from '../protocol/ids.js';
import { ConfigChangeInProgressError, InvalidConfigChangeError, LeaderNotReadyError, NotCaughtUpError } from './errors.js';
import type { RaftNode } from './node.js';
import { directoryCounts } from './quorum.js';
import type { Leader } from './roles.js';

/**
 * The configuration after `change`; throws {@link InvalidConfigChangeError}
 * when it does not apply. Directory ids stay recorded, except a removed
 * member's (re-added, it is recorded afresh from its first message).
 */
export function applyChange(c: Configuration, change: ConfigChange): Configuration {
  const id = change.node;
  const isVoter = c.voters.includes(id);
  const isObserver = c.observers.includes(id);
  const without = (list: readonly NodeId[]): NodeId[] => list.filter((x) => x !== id);
  const withRecords = (voters: readonly NodeId[], observers: readonly NodeId[], dirIds = c.dirIds): Configuration =>
    (dirIds === undefined || dirIds.length === 0 ? { voters, observers } : { voters, observers, dirIds });
  switch (change.kind) {
    case 'addObserver':
      if (isVoter || isObserver) throw new InvalidConfigChangeError(change, `${id} is already a ${isVoter ? 'voter' : 'observer'}`);
      return withRecords(c.voters, [...c.observers, id]);
    case 'promote':
      if (!isObserver) throw new InvalidConfigChangeError(change, isVoter ? 'it is already a voter' : 'it is not an observer (add it as one first)');
      return withRecords([...c.voters, id], without(c.observers));
    case 'demote':
      if (!isVoter) throw new InvalidConfigChangeError(change, 'it is not a voter');
      if (c.voters.length === 1) throw new InvalidConfigChangeError(change, 'it is the last voter');
      return withRecords(without(c.voters), [...c.observers, id]);
    case 'remove':
      if (!isVoter && !isObserver) throw new InvalidConfigChangeError(change, 'it is not a member');
      if (isVoter && c.voters.length === 1) throw new InvalidConfigChangeError(change, 'it is the last voter');
      return withRecords(without(c.voters), without(c.observers), c.dirIds?.filter((r) => r.node !== id));
    default: {
      const never: never = change;
      return never;
    }
  }
}

/**
 * Appends the configuration entry for `change` to the leader's log and
 * returns its index. Throws {@link ConfigChangeInProgressError} while the
 * previous change is uncommitted, {@link LeaderNotReadyError} before the
 * leader has committed an entry of its term, {@link NotCaughtUpError} for an
 * observer that lags, {@link InvalidConfigChangeError} otherwise.
 */
export function proposeChange(n: RaftNode, leader: Leader, change: ConfigChange): LogIndex {
  const current = n.log.configuration();
  if (current.index > n.log.commit && n.config.plantedBug !== 'concurrentConfigChanges') {
    throw new ConfigChangeInProgressError(current.index);
  }
  if (n.log.term(n.log.commit) !== n.term) throw new LeaderNotReadyError(n.term);
  const next = applyChange(current.config, change);
  if (change.kind === 'promote') {
    const pr = leader.progress.get(change.node);
    // A member heard from a directory other than its recorded one would be a
    // voter that never counts (docs/LOST-DISKS.md): it must be removed and re-added.
    const recorded = recordedDirId(current.config, change.node);
    if (pr?.dirId != null && !directoryCounts(n, change.node, pr.dirId)) {
      throw new InvalidConfigChangeError(change, `its data directory ${pr.dirId} is not the one recorded for it (${recorded}): remove it and add it again`);
    }
    const last = n.log.lastIndex();
    if (pr === undefined || pr.match < n.log.commit || last - pr.match > n.config.catchUpMaxLagEntries) {
      throw new NotCaughtUpError(change.node, pr?.match ?? 0, last);
    }
  }
  return appendConfiguration(n, leader, next);
}

function appendConfiguration(n: RaftNode, leader: Leader, next: Configuration): LogIndex {
  const entry: ConfigEntry = { index: n.log.lastIndex() + 1, term: n.term, type: 'config', config: next, data: new Uint8Array(0) };
  n.log.append([entry]);
  leader.uncommittedBytes += entryBytes(entry);
  leader.replicationDue = true;
  n.syncConfiguration();
  return entry.index;
}

/**
 * Records directory ids (docs/LOST-DISKS.md): once the leader has committed
 * an entry of its term and no change is in flight, it appends a configuration
 * with the same voters and observers that also records the directory id of
 * every member (itself included) for which none is recorded yet and whose
 * replica, on the directory it was last heard from, holds the configuration
 * in force (its match reaches that entry). Recorded ids are never replaced: a
 * member heard from another directory stays stale until an operator removes
 * and re-adds it. Returns the entry's index, or null when there was nothing
 * to record (or not yet).
 *
 * Why the match: a removed member's last packets may still be in flight (on
 * a lossy network TCP retransmits them seconds after the process died), and
 * the first of them to reach the leader after the member is added back would
 * name the directory of the replica that was removed. Recorded, that id would
 * keep the new replica from ever counting or being promoted. A replica that
 * acknowledges the configuration in force, which was appended after the
 * member was (re-)added, is one that runs in this membership.
 */
export function maybeRecordDirIds(n: RaftNode, leader: Leader): LogIndex | null {
  if (leader.transfer !== null) return null;
  const current = n.log.configuration();
  if (current.index > n.log.commit || n.log.term(n.log.commit) !== n.term) return null;
  const config = current.config;
  // The usual case, cheaply: every member is recorded already.
  if (config.dirIds !== undefined && config.dirIds.length === config.voters.length + config.observers.length) return null;
  const add: DirIdRecord[] = [];
  const consider = (id: NodeId, dirId: number | undefined): void => {
    if (dirId === undefined || recordedDirId(config, id) !== undefined) return;
    if (config.voters.includes(id) || config.observers.includes(id)) add.push({ node: id, dirId });
  };
  consider(n.id, n.dirId);
  const anyHeard = n.config.plantedBug === 'recordStaleDirectory'; // read here only
  for (const pr of leader.progress.values()) {
    if (pr.member && (anyHeard || pr.match >= current.index)) consider(pr.id, pr.dirId ?? undefined);
  }
  if (add.length === 0) return null;
  return appendConfiguration(n, leader, { voters: config.voters, observers: config.observers, dirIds: [...(config.dirIds ?? []), ...add] });
}
