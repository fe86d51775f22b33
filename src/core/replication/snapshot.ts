// Receiving a snapshot from the leader, shared by both modes (push:
// InstallSnapshot chunks; pull: FetchSnapshot answers). Chunks must arrive in
// order; each is handed to the runtime to write, and when the last one is in,
// the snapshot replaces the log prefix. Memory stays bounded: the core keeps
// only the position, never the bytes.

import type { SnapshotMeta } from '../../protocol/entry.js';
import type { RaftNode } from '../node.js';
import type { Follower, Observer } from '../roles.js';

/** Where a transfer stands after a chunk: bytes held, and whether installed. */
export interface ChunkOutcome {
  readonly nextOffset: number;
  readonly installed: boolean;
}

/** Starts (or restarts) receiving `meta` unless it is already under way. */
export function beginReceiving(role: Follower | Observer, meta: SnapshotMeta): void {
  const inc = role.incomingSnapshot;
  if (inc === null || inc.meta.index !== meta.index || inc.meta.term !== meta.term) {
    role.incomingSnapshot = { meta, nextOffset: 0 };
  }
}

/** Takes one chunk at `offset`; out-of-order chunks are ignored (the answer says where to resume). */
export function receiveChunk(
  n: RaftNode, role: Follower | Observer, meta: SnapshotMeta, offset: number, data: Uint8Array, done: boolean,
): ChunkOutcome {
  if (meta.index <= n.log.commit) {
    // Everything in it is already committed here.
    role.incomingSnapshot = null;
    return { nextOffset: 0, installed: true };
  }
  if (offset === 0) beginReceiving(role, meta);
  const inc = role.incomingSnapshot;
  if (inc === null || inc.meta.index !== meta.index || inc.meta.term !== meta.term) {
    return { nextOffset: 0, installed: false };
  }
  if (offset !== inc.nextOffset) return { nextOffset: inc.nextOffset, installed: false };
  n.snapshotChunks.push({ snapshot: meta, offset, data, done });
  inc.nextOffset += data.byteLength;
  if (!done) return { nextOffset: inc.nextOffset, installed: false };
  n.log.restore(meta);
  n.snapshotToInstall = meta;
  role.incomingSnapshot = null;
  return { nextOffset: inc.nextOffset, installed: true };
}
