// The lessor: decides when leases expire, as etcd's lessor does, outside the
// replicated state. Leases themselves (id, granted TTL, attached keys) are in
// the key-value store and change only through the log; a lease's deadline is
// not replicated: the leader keeps every deadline in memory on a monotonic
// clock, renews it on a keep-alive without writing the log, and proposes a
// revoke (an ordinary log command) when it passes. Followers decide nothing.
//
// Leadership changes. A node that becomes leader (in any new term) first
// logs a lease epoch (its term) and decides nothing until it has applied;
// then it starts every lease's deadline at now + its full TTL, and a lease
// granted while it leads starts at the moment the grant is applied here. An
// expiry carries its leader's term, and the store ignores it once a later
// epoch has applied: a deposed leader's expiry, forwarded and committed late,
// cannot cut short a lease its successor renewed. So a lease never expires
// before TTL has passed since the last renewal any leader answered, and a
// failover makes it late by at most the TTL plus the failover time
// (docs/CLUSTER.md states the bound and test/cluster/lease.test.ts checks it).
//
// Why a keep-alive waits on a barrier. A keep-alive is answered only after a
// ReadIndex round (`barrier`) has confirmed this node still leads and has
// applied everything committed before it. Without it a deposed leader that
// does not know it yet could renew a lease that the new leader, counting
// from its own election, then revokes early; and a new leader could renew a
// lease whose revoke by the previous leader is committed but not yet applied.
// A quorum confirmed our leadership after the keep-alive arrived, so any later
// leader was elected after it, and starts that lease at a later now + TTL.
//
// Clock, leadership, barrier and "propose a revoke" are injected, so that the
// tests (lessor.test.ts) run on fake time. Costs: a check is O(L) for L leases
// held (a scan of the deadlines; etcd uses a heap: at our check period of
// 100 ms a scan of 100,000 leases is a few milliseconds).

import type { Logger } from 'pino';
import type { LeaseChange, LeaseInfo } from '../services/kv/types.js';
import { assertNever } from '../util/assert.js';
import type { LeaseTimeToLive } from './etcd/backend.js';

/** The store's lease reads the lessor needs (KvStore implements it). */
export interface LeaseTable {
  /** The latest lease epoch applied. */
  readonly leaseTerm: number;
  lease(id: number): LeaseInfo | null;
  leases(): LeaseInfo[];
  onLeaseChange(listener: (change: LeaseChange) => void): () => void;
}

/** What the lessor is given. */
export interface LessorOptions {
  readonly leases: LeaseTable;
  /** Monotonic milliseconds (performance.now() in production, a fake clock in tests). */
  readonly now: () => number;
  /** Whether this node leads now, and in which term. */
  readonly leadership: () => { readonly leader: boolean; readonly term: number };
  /**
   * Resolves once this node has applied every write committed before the call
   * and (on a leader) a quorum has confirmed it still leads: the runtime's
   * ReadIndex barrier. Rejects when that cannot be had (no leader, timeout).
   */
  readonly barrier: () => Promise<void>;
  /** Proposes the expiry of a lease (a revoke valid in `term`) through the log; settles once applied here or failed (the lessor retries). */
  readonly proposeExpire: (id: number, term: number) => Promise<unknown>;
  /** Proposes a lease epoch for `term` through the log; settles once applied here or failed (the lessor retries). */
  readonly proposeEpoch: (term: number) => Promise<unknown>;
  /** Period of the expiry check while this node leads and has leases to watch (or its epoch to apply). Default 100 ms. */
  readonly checkIntervalMs?: number;
  /** Period of the check when there is nothing to watch (not leading, or no lease): a safety net, since onLeadershipChange wakes it. Default 1000 ms. */
  readonly idleCheckIntervalMs?: number;
  /** A revoke (or epoch) that has not applied after this long is proposed again. Default 1000 ms. */
  readonly revokeRetryMs?: number;
  readonly logger?: Logger;
}

/** This node's lessor does not lead (or stopped leading while it answered): the caller asks the leader, or retries. */
export class LessorNotLeaderError extends Error {
  override readonly name = 'LessorNotLeaderError';
  constructor(options?: ErrorOptions) {
    super('this node does not lead, so its lessor keeps no lease deadlines', options);
  }
}

/** Counters for tests and metrics. */
export interface LessorStats {
  /** Revokes proposed because a deadline passed (a retry counts again). */
  revokesProposed: number;
  /** Lease epochs proposed (one per leadership, plus retries). */
  epochsProposed: number;
  /** Keep-alives answered with a TTL (renewed). */
  renewals: number;
  /** Times this lessor started leading and reset every deadline. */
  leaderships: number;
}

interface Revoking {
  /** When to propose again if the lease is still there. */
  readonly retryAt: number;
  /** Settles (never rejects) when the proposal has. */
  readonly done: Promise<void>;
}

/**
 * Expiry decisions for the leases of one node's store. Invariants: `term` is
 * null exactly when this node did not lead at the last look; `deadlines` and
 * `revoking` are empty unless `ready` (this node leads in `term` and the
 * store's leaseTerm is `term`: its epoch applied); while ready, `deadlines`
 * holds every lease of the store (added on grant, removed on revoke), each
 * deadline at least TTL after this node became ready, the lease's grant, or
 * its last renewal; `revoking` holds only leases whose deadline passed.
 */
export class Lessor {
  readonly stats: LessorStats = { revokesProposed: 0, epochsProposed: 0, renewals: 0, leaderships: 0 };
  private readonly o: LessorOptions;
  private readonly checkIntervalMs: number;
  private readonly revokeRetryMs: number;
  private term: number | null = null;
  private ready = false;
  /** When this leader's epoch was last proposed (monotonic ms); null before. */
  private epochProposedAt: number | null = null;
  private readonly deadlines = new Map<number, number>();
  private readonly revoking = new Map<number, Revoking>();
  private readonly unsubscribe: () => void;
  private timer: ReturnType<typeof setTimeout> | null = null;
  /** When the armed timer fires (o.now() scale). */
  private timerAt = Infinity;
  private readonly idleCheckIntervalMs: number;
  private started = false;

  constructor(opts: LessorOptions) {
    this.o = opts;
    this.checkIntervalMs = opts.checkIntervalMs ?? 100;
    this.revokeRetryMs = opts.revokeRetryMs ?? 1000;
    this.idleCheckIntervalMs = opts.idleCheckIntervalMs ?? 1000;
    if (!(this.checkIntervalMs > 0) || !(this.revokeRetryMs > 0)) throw new RangeError('checkIntervalMs and revokeRetryMs must be positive');
    this.unsubscribe = opts.leases.onLeaseChange((c) => this.onLeaseChange(c));
  }

  /**
   * Starts checking: every checkIntervalMs while this node leads and has
   * leases to watch (or its epoch to apply), else every idleCheckIntervalMs,
   * so that an idle node is not woken ten times a second for nothing. Call
   * leadershipChanged() when the node's role changes (the node process
   * wires it to the runtime). The timer does not keep the process alive.
   */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.check();
  }

  /** The node's role or term changed: look now (a new leader proposes its epoch at once). */
  leadershipChanged(): void {
    if (this.started) this.check();
  }

  /** Stops the timer and lets go of the store. */
  stop(): void {
    this.started = false;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.unsubscribe();
  }

  /** Arms the timer for the next check, unless it already fires by then. */
  private arm(): void {
    if (!this.started) return;
    const busy = this.term !== null && (!this.ready || this.deadlines.size > 0 || this.revoking.size > 0);
    const at = this.o.now() + (busy ? this.checkIntervalMs : this.idleCheckIntervalMs);
    if (this.timer !== null && this.timerAt <= at) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.timerAt = Infinity;
      this.check();
    }, Math.max(0, at - this.o.now()));
    this.timer.unref();
  }

  /** True when this node led at the last look. */
  get leading(): boolean {
    return this.term !== null;
  }

  /** True when this node leads and its lease epoch has applied: it decides expiry and answers keep-alives. */
  get deciding(): boolean {
    return this.ready;
  }

  /** The deadline (monotonic ms) of a lease, when this node leads and holds one. For tests and status. */
  deadlineOf(id: number): number | undefined {
    return this.deadlines.get(id);
  }

  /** One expiry check: follows leadership (and the epoch), then proposes the expiry of every lease whose deadline has passed. */
  check(): void {
    if (this.followLeadership() && this.ready) {
      const now = this.o.now();
      for (const [id, deadline] of this.deadlines) if (deadline <= now) void this.revoke(id, now);
    }
    this.arm();
  }

  /**
   * KeepAlive on the leader: once the barrier confirms leadership, the lease's
   * deadline becomes (arrival + TTL) and its TTL is returned; 0 when the lease
   * does not exist or had expired on arrival (after its revoke has applied).
   * Rejects with LessorNotLeaderError when this node does not lead (or stopped
   * leading meanwhile), or when an expired lease's revoke did not go through.
   */
  async renew(id: number): Promise<number> {
    const term = this.requireLeading();
    const arrival = this.o.now();
    await this.o.barrier();
    if (!this.stillDeciding(term)) throw new LessorNotLeaderError();
    const lease = this.o.leases.lease(id);
    if (lease === null) return 0;
    const deadline = this.deadlines.get(id);
    if (this.revoking.has(id) || (deadline !== undefined && deadline <= arrival)) {
      await this.revoke(id, this.o.now());
      if (this.o.leases.lease(id) === null) return 0;
      throw new LessorNotLeaderError(); // the revoke did not apply (yet): the client retries
    }
    this.deadlines.set(id, Math.max(deadline ?? 0, arrival + lease.ttlSeconds * 1000));
    this.stats.renewals++;
    return lease.ttlSeconds;
  }

  /** TimeToLive on the leader (after the barrier): remaining and granted TTL, or null for no such lease. */
  async timeToLive(id: number): Promise<LeaseTimeToLive | null> {
    const term = this.requireLeading();
    await this.o.barrier();
    if (!this.stillDeciding(term)) throw new LessorNotLeaderError();
    const lease = this.o.leases.lease(id);
    if (lease === null) return null;
    const now = this.o.now();
    let deadline = this.deadlines.get(id);
    if (deadline === undefined) {
      deadline = now + lease.ttlSeconds * 1000;
      this.deadlines.set(id, deadline);
    }
    return { remainingSeconds: Math.max(0, Math.floor((deadline - now) / 1000)), grantedSeconds: lease.ttlSeconds };
  }

  private requireLeading(): number {
    if (!this.followLeadership() || this.term === null) throw new LessorNotLeaderError();
    return this.term;
  }

  /** Leads in `term` still, with its epoch applied (a keep-alive that waited must not be answered otherwise). */
  private stillDeciding(term: number): boolean {
    return this.followLeadership() && this.term === term && this.ready;
  }

  /**
   * Looks at leadership. On becoming leader (in a new term) it proposes its
   * lease epoch; once that has applied (here or at a later look) every
   * deadline restarts at now + TTL. Returns whether it leads.
   */
  private followLeadership(): boolean {
    const l = this.o.leadership();
    if (!l.leader) {
      if (this.term !== null) {
        this.term = null;
        this.unready();
        this.o.logger?.info('lessor: not leading; lease deadlines dropped');
      }
      return false;
    }
    if (this.term !== l.term) {
      this.term = l.term;
      this.unready();
      this.epochProposedAt = null;
      this.stats.leaderships++;
    }
    if (this.ready && this.o.leases.leaseTerm !== l.term) this.unready();
    if (!this.ready) {
      if (this.o.leases.leaseTerm === l.term) this.becomeReady(l.term);
      else if (this.o.leases.leaseTerm < l.term) this.proposeEpoch(l.term);
    }
    return true;
  }

  private unready(): void {
    this.ready = false;
    this.deadlines.clear();
    this.revoking.clear();
  }

  private becomeReady(term: number): void {
    this.ready = true;
    this.resetDeadlines();
    this.o.logger?.info({ term, leases: this.deadlines.size }, 'lessor: leading and deciding expiry; every lease restarts with its full TTL');
  }

  /** Proposes this leader's epoch, unless one was proposed less than revokeRetryMs ago. */
  private proposeEpoch(term: number): void {
    const now = this.o.now();
    if (this.epochProposedAt !== null && now < this.epochProposedAt + this.revokeRetryMs) return;
    this.epochProposedAt = now;
    this.stats.epochsProposed++;
    const failed = (err: unknown): void => {
      this.o.logger?.warn({ term, err: (err as Error).message }, 'lessor: the lease epoch was not applied; will retry');
    };
    try {
      Promise.resolve(this.o.proposeEpoch(term)).then(() => undefined, failed);
    } catch (err) {
      failed(err);
    }
  }

  private resetDeadlines(): void {
    this.deadlines.clear();
    this.revoking.clear();
    const now = this.o.now();
    for (const lease of this.o.leases.leases()) this.deadlines.set(lease.id, now + lease.ttlSeconds * 1000);
  }

  private onLeaseChange(c: LeaseChange): void {
    if (c.type === 'epoch') {
      if (this.term !== null && !this.ready && c.term === this.term) this.becomeReady(c.term);
      else if (this.ready && c.term !== this.term) this.unready(); // a later leader took over: this one was deposed
      return;
    }
    if (!this.ready) return; // only a deciding leader keeps deadlines; it reads them all when it becomes one
    switch (c.type) {
      case 'grant':
        this.deadlines.set(c.lease.id, this.o.now() + c.lease.ttlSeconds * 1000);
        this.revoking.delete(c.lease.id);
        this.arm(); // from the idle period to the busy one
        return;
      case 'revoke':
        this.deadlines.delete(c.id);
        this.revoking.delete(c.id);
        return;
      case 'reset':
        if (this.o.leases.leaseTerm === this.term) this.resetDeadlines();
        else this.unready();
        return;
      default:
        assertNever(c, 'lease change');
    }
  }

  /** Proposes a revoke of an expired lease, unless one was proposed less than revokeRetryMs ago; settles when it has. */
  private revoke(id: number, now: number): Promise<void> {
    const r = this.revoking.get(id);
    if (r !== undefined && r.retryAt > now) return r.done;
    this.stats.revokesProposed++;
    const term = this.term as number; // only a deciding leader gets here
    this.o.logger?.info({ lease: id, term }, 'lessor: lease expired; proposing its revoke');
    let settle!: () => void;
    const done = new Promise<void>((resolve) => (settle = () => resolve()));
    // Recorded before proposing: the revoke may apply synchronously (and its 'revoke' change then removes the entry).
    this.revoking.set(id, { retryAt: now + this.revokeRetryMs, done });
    const failed = (err: unknown): void => {
      this.o.logger?.warn({ lease: id, err: (err as Error).message }, 'lessor: revoke of an expired lease failed; will retry');
      settle();
    };
    try {
      Promise.resolve(this.o.proposeExpire(id, term)).then(() => settle(), failed);
    } catch (err) {
      failed(err);
    }
    return done;
  }
}
