// What the runtime watches of its own membership (docs/MEMBERSHIP.md), after
// each round: the configuration in force and whether it committed (told to
// configuration listeners: peers to connect, removal), whether this node has
// been removed (`removed`, logged once; the server layer stops serving
// clients then), whether its data directory is the one the configuration
// records (`lostDisk`, docs/LOST-DISKS.md), and, on the leader, the
// promotion of observers that setAutoPromote() names as soon as the core
// stops refusing (at most one try per tick).
//
// Membership changes themselves are proposed by NodeRuntime.changeMembership
// and answered by PendingRequests when their configuration entry applies;
// configuration entries are not state machine commands and apply() skips
// them as it skips no-ops.

import type { Logger } from 'pino';
import {
  ConfigChangeInProgressError, DirectoryIdConflictError, LeaderNotReadyError, LeaderTransferInProgressError, NotCaughtUpError, NotLeaderError,
} from '../core/errors.js';
import type { RaftNode } from '../core/node.js';
import type { DirIdConflict } from '../core/ready.js';
import type { Configuration } from '../protocol/entry.js';
import type { LogIndex, NodeId } from '../protocol/ids.js';

/** What the membership watch needs from its node. */
export interface MembershipWatchOptions {
  readonly core: RaftNode;
  readonly log: Logger;
  /** The bootstrap configuration's voters (the core's `voters`): they were members from the start. */
  readonly bootstrapVoters: readonly NodeId[];
}

/** Watches one node's configuration, removal and directory id; promotes caught-up observers on the leader. */
export class MembershipWatch {
  private readonly core: RaftNode;
  private readonly log: Logger;
  private readonly id: NodeId;
  private readonly bootstrapVoters: readonly NodeId[];
  /** Listeners of configuration changes (onChange). */
  private readonly listeners: (() => void)[] = [];
  /** The configuration last reported to listeners: its index and whether it was committed. */
  private lastConfigIndex = -1;
  private lastConfigCommitted = false;
  /** Which observers the leader promotes once caught up (setAutoPromote). */
  private autoPromote: (node: NodeId) => boolean = () => false;
  private lastAutoPromoteTick = -1;
  private isRemoved = false;
  /** The directory-id conflict last logged (noteLostDisk), or null. */
  private lostDiskConflict: DirIdConflict | null = null;
  /** The configuration in force at the last note() came from the log or a snapshot (index > 0) and listed this node. */
  private listedInLog = false;

  constructor(opts: MembershipWatchOptions) {
    this.core = opts.core;
    this.log = opts.log;
    this.id = opts.core.id;
    this.bootstrapVoters = opts.bootstrapVoters;
  }

  /** True once this node's committed configuration no longer lists it, after it was a member (NodeRuntime.removed). */
  get removed(): boolean {
    return this.isRemoved;
  }

  /** The lost-disk conflict in force here (docs/LOST-DISKS.md), or null. */
  get lostDisk(): DirIdConflict | null {
    return this.lostDiskConflict;
  }

  /** Calls `listener` after a round in which the configuration in force changed or became committed; returns its remover. */
  onChange(listener: () => void): () => void {
    this.listeners.push(listener);
    return () => {
      const i = this.listeners.indexOf(listener);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  /** Names the observers that the leader promotes once they have caught up. */
  setAutoPromote(pred: (node: NodeId) => boolean): void {
    this.autoPromote = pred;
  }

  /** Tells configuration listeners about a new (or newly committed) configuration, and notices this node's removal. */
  note(): void {
    const cfg = this.core.configuration();
    if (cfg.index === this.lastConfigIndex && cfg.committed === this.lastConfigCommitted) return;
    this.lastConfigIndex = cfg.index;
    this.lastConfigCommitted = cfg.committed;
    this.noteLostDisk();
    const listed = (c: Configuration): boolean => c.voters.includes(this.id) || c.observers.includes(this.id);
    const wasListedInLog = this.listedInLog;
    this.listedInLog = cfg.index > 0 && listed(cfg.config);
    if (listed(cfg.config)) {
      this.isRemoved = false;
    } else if (cfg.committed && cfg.index > 0 && !this.isRemoved) {
      // It was a member: a bootstrap voter, or listed by the configuration before this one (as seen here, or in the log).
      // (A node that joins lists itself in its bootstrap configuration, but replays older configurations without it.)
      const before = cfg.index - 1 >= this.core.log.snapshot.index ? this.core.log.configurationAt(cfg.index - 1) : null;
      if (this.bootstrapVoters.includes(this.id) || wasListedInLog || (before !== null && before.index > 0 && listed(before.config))) {
        this.isRemoved = true;
        this.log.warn({ configurationIndex: cfg.index, configuration: cfg.config },
          'this node has been removed from the cluster (its committed configuration no longer lists it): it serves no clients any more');
      }
    }
    this.tellListeners();
  }

  /**
   * Another member says that its committed configuration at `index` no
   * longer lists this node (NodeRuntime.confirmRemoved): taken only when the
   * configuration in force here is not newer than `index`.
   */
  confirmRemoved(index: LogIndex, by: NodeId): void {
    const cfg = this.core.configuration();
    if (this.isRemoved || cfg.index > index) return;
    this.isRemoved = true;
    this.log.warn({ configurationIndex: index, by },
      'this node has been removed from the cluster (a member confirmed the removal committed): it serves no clients any more');
    this.tellListeners();
  }

  /** Leader: promotes one observer that setAutoPromote names, if the core accepts it now (once per tick; `tick` counts ticks). */
  maybeAutoPromote(tick: number): void {
    if (this.core.role.kind !== 'leader' || tick === this.lastAutoPromoteTick) return;
    const cfg = this.core.configuration();
    if (!cfg.committed) return;
    const candidates = cfg.config.observers.filter((o) => this.autoPromote(o));
    if (candidates.length === 0) return;
    this.lastAutoPromoteTick = tick;
    // Each candidate in turn (a refusal changes nothing), so that one that never catches up holds up no other.
    for (const node of candidates) {
      try {
        const index = this.core.proposeConfigChange({ kind: 'promote', node });
        this.log.info({ node, index }, `promoting ${node}: it has caught up`);
        return;
      } catch (e) {
        if (e instanceof NotCaughtUpError) continue;
        if (e instanceof ConfigChangeInProgressError || e instanceof LeaderNotReadyError || e instanceof LeaderTransferInProgressError ||
          e instanceof NotLeaderError) return;
        this.log.warn({ node, err: (e as Error).message }, `cannot promote ${node}`);
      }
    }
  }

  private tellListeners(): void {
    for (const l of [...this.listeners]) {
      try {
        l();
      } catch (e) {
        this.log.error({ err: e }, 'a configuration listener failed');
      }
    }
  }

  /**
   * Says once, loudly, when the configuration in force records another
   * directory id for this node than its own (docs/LOST-DISKS.md): its data
   * directory was lost or replaced, and the core will not let it vote or
   * count until it is re-added.
   */
  private noteLostDisk(): void {
    const conflict = this.core.dirIdConflict();
    if (conflict === null) {
      if (this.lostDiskConflict !== null) this.log.info({ dirId: this.core.dirId }, 'this node\'s data directory is the one its configuration records again: it votes and counts');
      this.lostDiskConflict = null;
      return;
    }
    if (this.lostDiskConflict !== null && this.lostDiskConflict.recorded === conflict.recorded) return;
    this.lostDiskConflict = conflict;
    const err = new DirectoryIdConflictError(this.id, conflict.recorded, conflict.mine);
    this.log.error({ recorded: conflict.recorded, dirId: conflict.mine, err: err.name },
      `${err.message} With the quorumlog CLI: \`quorumlog member remove ${this.id}\`, stop this node, empty its data directory, list it as an observer ` +
      `in its own config, \`quorumlog member add ${this.id} --learner --peer HOST:PORT --client HOST:PORT\`, start it, and ` +
      `\`quorumlog member promote ${this.id}\` once it has caught up.`);
  }
}
