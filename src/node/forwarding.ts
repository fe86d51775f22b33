// Forwarding to the leader, both ends (the wire format is src/node/forward.ts,
// on FORWARD_CHANNEL). Followers and observers forward client writes and
// linearizable reads to the leader and answer from their own applied state.
//
// Follower side: each batch of queued commands goes to the leader as one
// 'proposeInTerm' frame (the term this node believes the leader leads in)
// and waits (PendingRequests' forwarded) for the leader's (index, term);
// then it waits for that entry to apply here like a local proposal. If the
// leader dies first, the log settles the batch (src/node/requests.ts). The
// runtime forwards only to a leader whose connection is up; otherwise the
// commands wait in the queue. Read barriers go as one 'read' frame; the
// leader's index confirms them. A refusal puts them back in the queue for
// whoever leads next (not before the next tick, or a stale leader hint
// would spin), except backpressure, which the clients get
// (TooManyRequestsError).
//
// Leader side: a forwarded batch is checked (it must decode) and proposed as
// one entry if this node leads in the term the follower named; a forwarded
// read becomes a ReadIndex of the core whose answer (or abort) goes back to
// the follower.

import type { Logger } from 'pino';
import { BackpressureError, LeaderTransferInProgressError, NotLeaderError } from '../core/errors.js';
import type { RaftNode } from '../core/node.js';
import type { LogIndex, NodeId, Term } from '../protocol/ids.js';
import type { Transport } from '../transport/types.js';
import { decodeBatch, encodeBatch } from './batch.js';
import { FORWARD_CHANNEL } from './channels.js';
import { NoLeaderError, RequestTimeoutError, TooManyRequestsError } from './errors.js';
import { decodeForward, encodeForward, type ForwardMessage, type ForwardRefusal } from './forward.js';
import type { PendingRequests, QueuedCommand, Waiter } from './requests.js';
import type { RuntimeMetrics } from './runtime-metrics.js';

/** Why the leader (or this node) cannot take a request now. */
function refusalError(reason: ForwardRefusal): Error {
  switch (reason) {
    case 'notLeader': return new NoLeaderError();
    case 'backpressure': return new TooManyRequestsError('the leader is pushing back: too many uncommitted bytes');
    case 'transfer': return new NoLeaderError();
  }
}

/** What forwarding needs from its node. */
export interface ForwarderOptions {
  readonly core: RaftNode;
  readonly transport: Transport;
  readonly log: Logger;
  readonly metrics: RuntimeMetrics;
  /** Where forwarded requests wait for the leader's answers. */
  readonly requests: PendingRequests;
  /** Real milliseconds per core tick (how long a refused write waits before it is forwarded again). */
  readonly tickMs: number;
  /** performance.now(). */
  readonly now: () => number;
  /** The index up to which the state machine has applied. */
  readonly applied: () => LogIndex;
}

/** Both ends of forwarding for one node. */
export class Forwarder {
  private readonly opts: ForwarderOptions;
  private readonly core: RaftNode;
  private readonly requests: PendingRequests;
  /** Leader: reads it runs for followers, ctx → (peer, reqId). */
  private readonly remoteReads = new Map<number, { peer: NodeId; reqId: number }>();
  /** After the leader refused forwarded writes (it no longer leads): wait for a tick before forwarding again. */
  private holdUntil = 0;

  constructor(opts: ForwarderOptions) {
    this.opts = opts;
    this.core = opts.core;
    this.requests = opts.requests;
  }

  // ---- follower side ---------------------------------------------------------------

  /**
   * Sends batches of commands (from PendingRequests.packQueue) to `leader`,
   * to be proposed in `term` only, or puts them back while a refusal holds
   * forwarding.
   */
  forwardWrites(leader: NodeId, term: Term, batches: QueuedCommand[][]): void {
    if (this.opts.now() < this.holdUntil) {
      this.requests.requeue(batches);
      return;
    }
    for (const b of batches) {
      const reqId = this.requests.newId();
      const batch = encodeBatch(b.map((q) => q.command));
      if (!this.send(leader, { type: 'proposeInTerm', reqId, term, batch })) {
        for (const q of b) q.reject(new TooManyRequestsError('the connection to the leader is congested'));
        continue;
      }
      this.opts.metrics.forwardedWrites += b.length;
      this.requests.forwardedAs(reqId, b, term, batch);
    }
  }

  /** Asks `leader` to confirm the read barriers `waiters` under `reqId`. */
  forwardRead(leader: NodeId, reqId: number, waiters: Waiter[]): void {
    if (!this.send(leader, { type: 'read', reqId })) {
      for (const w of waiters) w.reject(new TooManyRequestsError('the connection to the leader is congested'));
      return;
    }
    this.opts.metrics.forwardedReads += waiters.length;
    this.requests.readAsked(reqId, waiters, leader);
  }

  // ---- frames ----------------------------------------------------------------------

  /** A frame from `from` on FORWARD_CHANNEL (untrusted bytes: a malformed one is counted and dropped). */
  onFrame(from: NodeId, payload: Uint8Array): void {
    let m: ForwardMessage;
    try {
      m = decodeForward(payload);
    } catch (e) {
      this.opts.metrics.malformedForwardFrames++;
      this.opts.log.warn({ peer: from, err: (e as Error).message }, 'dropped a malformed forwarding frame');
      return;
    }
    this.onMessage(from, m);
  }

  private send(to: NodeId, m: ForwardMessage): boolean {
    return this.opts.transport.send(to, { kind: 'app', channel: FORWARD_CHANNEL, payload: encodeForward(m) });
  }

  private onMessage(from: NodeId, m: ForwardMessage): void {
    switch (m.type) {
      case 'propose':
      case 'proposeInTerm': {
        // A batch is proposed only in the term its follower named (an old follower names none), so
        // that it can only ever be in an entry of that term (see the header of requests.ts).
        if (this.core.leaderId() !== this.core.id || (m.type === 'proposeInTerm' && m.term !== this.core.term)) {
          this.send(from, { type: 'refused', reqId: m.reqId, reason: 'notLeader' });
          return;
        }
        try {
          decodeBatch(m.batch); // a malformed batch must never reach the log
          const index = this.core.propose([m.batch]);
          this.opts.metrics.entriesProposedTotal++;
          this.send(from, { type: 'proposed', reqId: m.reqId, index, term: this.core.term });
        } catch (e) {
          const reason: ForwardRefusal = e instanceof BackpressureError ? 'backpressure'
            : e instanceof LeaderTransferInProgressError ? 'transfer' : 'notLeader';
          if (!(e instanceof BackpressureError || e instanceof LeaderTransferInProgressError || e instanceof NotLeaderError)) {
            this.opts.metrics.malformedForwardFrames++;
            this.opts.log.warn({ peer: from, err: (e as Error).message }, 'refused a forwarded batch that does not parse');
          }
          this.send(from, { type: 'refused', reqId: m.reqId, reason });
        }
        return;
      }
      case 'read': {
        if (this.core.leaderId() !== this.core.id) {
          this.send(from, { type: 'refused', reqId: m.reqId, reason: 'notLeader' });
          return;
        }
        const ctx = this.requests.newId();
        this.core.readIndex(ctx);
        this.remoteReads.set(ctx, { peer: from, reqId: m.reqId });
        return;
      }
      case 'proposed': {
        const waiters = this.requests.takeForwarded(m.reqId);
        if (waiters === undefined) return;
        if (m.index <= this.opts.applied()) {
          // Already applied here before the answer came: the outcome is not known any more.
          for (const w of waiters) w.reject(new RequestTimeoutError('a forwarded write whose answer came late', 0));
          return;
        }
        this.requests.inEntry(m.index, m.term, waiters);
        return;
      }
      case 'readIndex': {
        if (this.requests.forwardedReadConfirmed(m.reqId, m.index)) this.requests.resolveReads(this.opts.applied());
        return;
      }
      case 'refused': {
        const waiters = this.requests.takeForwarded(m.reqId);
        if (waiters !== undefined) {
          if (m.reason === 'backpressure') for (const w of waiters) w.reject(refusalError(m.reason));
          else {
            // A new leader will take them; not before the next tick, or a stale hint would spin.
            this.holdUntil = this.opts.now() + this.opts.tickMs;
            this.requests.requeue([waiters]);
          }
          return;
        }
        this.requests.forwardedReadRefused(m.reqId);
        return;
      }
    }
  }

  // ---- leader side: the core's answers to forwarded reads ----------------------------

  /** The core confirmed read `ctx` at `index`: true when it was a follower's (answered here). */
  readConfirmed(ctx: number, index: LogIndex): boolean {
    const remote = this.remoteReads.get(ctx);
    if (remote === undefined) return false;
    this.remoteReads.delete(ctx);
    this.send(remote.peer, { type: 'readIndex', reqId: remote.reqId, index });
    return true;
  }

  /** The core will never confirm read `ctx`: true when it was a follower's (refused here, so it asks again). */
  readAborted(ctx: number): boolean {
    const remote = this.remoteReads.get(ctx);
    if (remote === undefined) return false;
    this.remoteReads.delete(ctx);
    this.send(remote.peer, { type: 'refused', reqId: remote.reqId, reason: 'notLeader' });
    return true;
  }
}
