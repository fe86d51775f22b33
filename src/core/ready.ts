// What the core asks the runtime to do, and the persistence contract.
//
// Persistence is asynchronous (etcd's raft calls it asynchronous storage
// writes): the runtime takes a Ready, hands its state to a storage writer and
// calls advance() at once; ready() may then be called again while earlier
// Readies are still being made durable, up to config.maxInflightReadies. The
// writer acknowledges each Ready with persisted(r), in the order they were
// handed out, once what it asked for is durable. The contract (the simulator
// checks it on every send and after every crash):
//  1. `messages` may be sent at once, before anything is durable: they are
//     the leader's replication traffic (AppendEntries, heartbeats, snapshot
//     chunks, fetch answers, BeginQuorumEpoch, TimeoutNow), emitted only once
//     the leader's term is durable (acknowledged).
//  2. Each Ready's `snapshotChunks`, then `snapshot`, then `entries`, then
//     `hardState` are made durable in that order, and after everything the
//     Readies before it asked for: one writer, first in first out. So a
//     truncation (entries starting at or below the stored end) never
//     overtakes an earlier append, and a durable commit index never points
//     past the durable log.
//  3. persisted(r) is called once all of that is durable; only then may
//     `persistedMessages` be sent: every vote, every acknowledgement
//     (AppendEntries answers, fetches, which acknowledge the entries before
//     their offset, snapshot answers) and every message a non-leader sends.
//     A granted vote is therefore never forgotten by a restart, and no entry
//     is acknowledged before it is durable. A leader counts its own entries
//     toward commit only at persisted().
//  4. `committed` entries are applied in order, when the Ready is taken: the
//     core hands out only entries that are committed and already durable
//     here. A Ready with a `snapshot` is the last handed out until its
//     persisted(): the runtime restores the state machine from the snapshot
//     then, before anything after it applies. A read in `readStates` is
//     served once the applied index reaches it.
//  5. advance(ready) is called after taking it; no other core call may come
//     between ready() and advance(). A runtime that persists synchronously
//     calls persisted(ready) right after advance(ready).
// src/node/ready-loop.ts is the one driver that does all this, for the
// runtime, the simulator, the scenario harness and the benchmarks.

import type { Configuration, Entry, HardState, SnapshotMeta } from '../protocol/entry.js';
import type { LogIndex, NodeId, Term } from '../protocol/ids.js';
import type { Message } from '../protocol/messages.js';
import type { RoleKind } from './roles.js';

/** A piece of a snapshot received from the leader, to be written at `offset`. */
export interface SnapshotChunk {
  readonly snapshot: SnapshotMeta;
  readonly offset: number;
  readonly data: Uint8Array;
  readonly done: boolean;
}

/** A linearizable read that may be served once the applied index reaches `index`. */
export interface ReadState {
  readonly ctx: number;
  readonly index: LogIndex;
}

/** Volatile state worth reporting: who leads, in which term, in which role, with which members. */
export interface SoftState {
  readonly role: RoleKind;
  readonly term: Term;
  readonly leader: NodeId | null;
  /**
   * The configuration in force on this node (the latest in its log, committed
   * or not): the runtime connects to its members (and may drop peers that
   * left). The same object until the configuration changes.
   */
  readonly configuration: Configuration;
  /** The index of the entry that holds it (0: the bootstrap configuration). */
  readonly configurationIndex: LogIndex;
  /**
   * Not null when that configuration records for this node a directory id
   * other than its own (docs/LOST-DISKS.md): its data directory was lost or
   * replaced. The node then neither votes, campaigns nor counts; the runtime
   * should say so (DirectoryIdConflictError) until an operator re-adds it.
   */
  readonly dirIdConflict: DirIdConflict | null;
}

/** A node's directory id against the one its configuration records for it; `mine` is null when the node has none. */
export interface DirIdConflict {
  readonly recorded: number;
  readonly mine: number | null;
}

/** One batch of work for the runtime; see the contract at the top of this file. */
export interface Ready {
  /** 1, 2, 3, … in the order ready() handed them out: persisted() must follow it. */
  readonly seq: number;
  readonly hardState: HardState | null;
  /** Entries to append durably; a first index at or below the stored end means: cut the stored suffix from there first. */
  readonly entries: readonly Entry[];
  /** A snapshot received in full: make it the current one, drop the log up to its index, restore the state machine from it. */
  readonly snapshot: SnapshotMeta | null;
  readonly snapshotChunks: readonly SnapshotChunk[];
  readonly messages: readonly Message[];
  readonly persistedMessages: readonly Message[];
  readonly committed: readonly Entry[];
  readonly readStates: readonly ReadState[];
  /** Reads that will never be confirmed here (leadership lost): answer them NotLeader. */
  readonly readsAborted: readonly number[];
  readonly softState: SoftState;
}
