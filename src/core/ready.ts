// What the core asks the runtime to do, and the persistence contract.
//
// The persistence contract (checked by the simulator on every send):
//  1. `messages` may be sent at once, in parallel with persisting: they are
//     the leader's replication traffic (AppendEntries, heartbeats, snapshot
//     chunks, fetch answers, BeginQuorumEpoch, TimeoutNow), sent only once the
//     leader's term is durable. A leader counts its own entries toward commit
//     only once they are durable (advance()).
//  2. `snapshotChunks`, then `snapshot`, then `entries`, then `hardState` are
//     made durable, in that order (entries before the hard state, so that a
//     persisted commit index never points past the durable log).
//  3. Only then may `persistedMessages` be sent: every vote, every
//     acknowledgement (AppendEntries answers, fetches, which acknowledge the
//     entries before their offset, snapshot answers) and every message a
//     non-leader sends. A granted vote is therefore never forgotten by a
//     restart, and no entry is acknowledged before it is durable.
//  4. `committed` entries are applied in order after `snapshot` is restored;
//     a read in `readStates` is served once the applied index reaches it.
//  5. Then advance(ready) is called; no other core call may come between
//     ready() and advance().

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
