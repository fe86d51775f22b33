// The one Ready driver: takes the core's Readies and carries out the
// persistence contract of src/core/ready.ts, with persistence pipelined. The
// runtime (src/node/runtime.ts), the simulator (test/sim), the scenario
// harness (test/scenarios) and the benchmarks all run this code; they differ
// only in their ReadyHost: where messages go, how a Ready's state is written
// and synced, what applies the entries.
//
// A round, per Ready, in this order:
//   1. send `messages` (replication traffic may leave before anything is durable) and flush them;
//   2. write the Ready's state (host.write: in order after every earlier
//      Ready's; not yet necessarily durable);
//   3. apply `committed` (the core hands out only entries already durable
//      here), note `readStates` and `readsAborted`;
//   4. advance(): the core may be driven again and hand out the next Ready
//      while this one is still being synced.
// Group commit: one sync at a time (host.sync). It covers every Ready written
// before it began; when it ends, those Readies are acknowledged in order
// (their `persistedMessages` sent, a snapshot restored, core.persisted()),
// and if more were written meanwhile the next sync begins at once. A Ready
// written after a sync began is never acknowledged by that sync.
//
// A host whose sync calls back at once (synchronous storage, in tests and
// benchmarks) gets the old one-Ready-at-a-time behaviour from the same code.

import type { RaftNode } from '../core/node.js';
import type { Ready, ReadState } from '../core/ready.js';
import type { Entry, SnapshotMeta } from '../protocol/entry.js';
import type { Message } from '../protocol/messages.js';

/** What the driver needs from whoever runs a node. */
export interface ReadyHost {
  /** Queues one message for its peer. */
  send(m: Message): void;
  /** Pushes queued messages out (before a write or a sync can take time). */
  flushSends(): void;
  /**
   * Writes `r`'s snapshot chunks, snapshot, entries and hard state, after
   * everything written before. They need not be durable until a sync that
   * begins later ends, but a hard state must never become durable before the
   * entries written before it. Throws on a storage failure (the node must
   * stop). A host that simulates a crash in the middle calls stop() on the
   * loop and returns.
   */
  write(r: Ready): void;
  /**
   * Makes everything written so far durable, then calls `done` (with the
   * error, if it failed; the node must stop then). May call `done` at once.
   */
  sync(done: (err: unknown) => void): void;
  /** Applies committed entries, in log order. */
  apply(entries: readonly Entry[]): void;
  /** A read confirmed at `rs.index`: serve it once the applied index reaches it. */
  readState(rs: ReadState): void;
  /** A read that will never be confirmed here. */
  readAborted(ctx: number): void;
  /** The snapshot a Ready installed is durable: restore the state machine from it. */
  restoreSnapshot(meta: SnapshotMeta): void;
  /** Called with each Ready as it is taken, before anything is done with it (metrics, checks). */
  onReady?(r: Ready): void;
  /** Called after every advance() and persisted() (the simulator's checker runs here). */
  afterCoreCall?(): void;
  /**
   * Readies were acknowledged outside run(): the core may have more to do
   * (commits, messages). The host should call run() soon.
   */
  onPersisted?(): void;
  /** A sync failed: the node must stop. (Errors thrown by write() reach run()'s caller instead.) */
  onFatal(err: unknown): void;
}

/** Knobs of the driver. */
export interface ReadyLoopOptions {
  /**
   * Planted bug (src/core/planted-bugs.ts 'ackUnsyncedReadies', read here
   * only): a finished sync acknowledges every Ready written so far, even
   * those written after it began.
   */
  readonly ackUnsyncedReadies?: boolean;
}

/** Drives one core through its Readies; one per core (a restarted node gets a new one). */
export class ReadyLoop {
  private readonly core: RaftNode;
  private readonly host: ReadyHost;
  private readonly ackUnsynced: boolean;
  /** Readies written and advanced, not yet acknowledged, oldest first. */
  private readonly written: Ready[] = [];
  /** How many of `written` the running sync covers; 0 when no sync runs. */
  private syncing = 0;
  private running = false;
  private stopped = false;

  constructor(core: RaftNode, host: ReadyHost, opts: ReadyLoopOptions = {}) {
    this.core = core;
    this.host = host;
    this.ackUnsynced = opts.ackUnsyncedReadies ?? core.config.plantedBug === 'ackUnsyncedReadies';
  }

  /** Stops the loop: nothing more is sent or acknowledged (a crash, a storage failure, a shutdown). */
  stop(): void {
    this.stopped = true;
  }

  /**
   * Takes and carries out up to `maxReadies` Readies while the core has
   * them; returns how many. Storage errors from host.write() propagate.
   */
  run(maxReadies = Infinity): number {
    if (this.running) return 0;
    this.running = true;
    let n = 0;
    try {
      while (!this.stopped && n < maxReadies && this.core.hasReady()) {
        this.take(this.core.ready());
        n++;
      }
    } finally {
      this.running = false;
    }
    return n;
  }

  private take(r: Ready): void {
    const { core, host } = this;
    host.onReady?.(r);
    for (const m of r.messages) host.send(m);
    // Out to the network before the write: followers persist while the leader does.
    if (r.messages.length > 0) host.flushSends();
    host.write(r);
    if (this.stopped) return; // the host crashed part-way through the write
    this.written.push(r);
    if (r.committed.length > 0) host.apply(r.committed);
    for (const rs of r.readStates) host.readState(rs);
    for (const ctx of r.readsAborted) host.readAborted(ctx);
    core.advance(r);
    host.afterCoreCall?.();
    this.beginSync();
  }

  /** Starts a sync of everything written so far, unless one runs (group commit). */
  private beginSync(): void {
    if (this.stopped || this.syncing > 0 || this.written.length === 0) return;
    const covered = this.written.length;
    this.syncing = covered;
    this.host.sync((err) => this.onSynced(covered, err));
  }

  private onSynced(covered: number, err: unknown): void {
    if (this.stopped) return;
    this.syncing = 0;
    if (err !== null && err !== undefined) {
      this.stopped = true;
      this.host.onFatal(err);
      return;
    }
    const { core, host } = this;
    const n = this.ackUnsynced ? this.written.length : covered;
    let sent = false;
    for (let i = 0; i < n && !this.stopped; i++) {
      const r = this.written.shift() as Ready;
      for (const m of r.persistedMessages) host.send(m);
      if (r.persistedMessages.length > 0) sent = true;
      if (r.snapshot !== null) host.restoreSnapshot(r.snapshot);
      core.persisted(r);
      host.afterCoreCall?.();
    }
    if (sent) host.flushSends();
    this.beginSync();
    if (!this.running && !this.stopped) host.onPersisted?.();
  }
}

/**
 * A host with no disk at all: writes are dropped and every sync ends at once
 * (benchmarks of the core alone, where persistence is not what is measured).
 * Committed entries and reads are ignored unless a hook is given.
 */
export function instantHost(send: (m: Message) => void, hooks: Partial<ReadyHost> = {}): ReadyHost {
  return {
    send,
    flushSends: () => undefined,
    write: () => undefined,
    sync: (done) => done(null),
    apply: () => undefined,
    readState: () => undefined,
    readAborted: () => undefined,
    restoreSnapshot: () => undefined,
    onFatal: (err) => {
      throw err;
    },
    ...hooks,
  };
}
