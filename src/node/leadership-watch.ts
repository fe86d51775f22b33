// What the runtime watches of leadership: after each round, whether this
// node's role, its leader or its term changed. A change is logged (when the
// role or the leader changed), kept in a short history for /status and the
// dashboard, and told to listeners, so that services that act only on the
// leader (lease expiry, queue liveness) need not poll.

import type { Logger } from 'pino';
import type { RaftNode } from '../core/node.js';
import type { RoleKind } from '../core/roles.js';
import type { NodeId, Term } from '../protocol/ids.js';
import { pushRing } from './runtime-metrics.js';

/** How many leadership events the history keeps. */
const LEADERSHIP_EVENTS_MAX = 64;

/** One change of this node's role, leader or term. */
export interface LeadershipEvent {
  /** Wall-clock ms (Date.now()). */
  at: number;
  term: number;
  leader: string | null;
  role: string;
}

/** Watches one node's role, leader and term. */
export class LeadershipWatch {
  /** The last (up to 64) changes, oldest first. */
  readonly events: LeadershipEvent[] = [];
  private readonly core: RaftNode;
  private readonly log: Logger;
  private readonly listeners: (() => void)[] = [];
  private lastRole: RoleKind | null = null;
  private lastLeader: NodeId | null = null;
  private lastTerm: Term = -1;

  constructor(core: RaftNode, log: Logger) {
    this.core = core;
    this.log = log;
  }

  /** Calls `listener` after a round in which the role, the leader or the term changed; returns its remover. */
  onChange(listener: () => void): () => void {
    this.listeners.push(listener);
    return () => {
      const i = this.listeners.indexOf(listener);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  /** Compares the core's role, leader and term with the last seen; on a change logs, records and tells listeners. */
  note(): void {
    const role = this.core.role.kind;
    const leader = this.core.leaderId();
    if (role === this.lastRole && leader === this.lastLeader && this.core.term === this.lastTerm) return;
    if (leader !== this.lastLeader || role !== this.lastRole) {
      this.log.info({ role, term: this.core.term, leader }, role === 'leader' ? 'became leader' : 'role or leader changed');
    }
    this.lastRole = role;
    this.lastLeader = leader;
    this.lastTerm = this.core.term;
    pushRing(this.events, { at: Date.now(), term: this.core.term, leader, role }, LEADERSHIP_EVENTS_MAX);
    for (const l of [...this.listeners]) {
      try {
        l();
      } catch (e) {
        this.log.error({ err: e }, 'a leadership listener failed');
      }
    }
  }
}
