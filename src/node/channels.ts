// Every transport channel a node uses, numbered in one place. Raft messages
// travel as `raft` frames; everything else is an `app` frame on a u16
// channel (src/transport/types.ts). The runtime keeps the channels up to
// RUNTIME_CHANNEL_MAX for itself and hands each of the others to one service
// (NodeRuntime.onChannel). A new channel gets its number here, never inline.

/** Follower → leader forwarding of client writes and reads, and the leader's answers (src/node/forward.ts). */
export const FORWARD_CHANNEL = 1;
/** Lease keep-alives and time-to-live queries forwarded to the leader's lessor (src/server/lease-forward.ts). */
export const LEASE_CHANNEL = 2;
/** Queue consumers' liveness pings between nodes (src/server/queue/liveness.ts). */
export const QUEUE_CHANNEL = 3;
/** Membership operations forwarded to the leader and removal confirmations (src/server/membership.ts). */
export const MEMBERSHIP_CHANNEL = 4;

/** The highest channel the runtime keeps for itself: onChannel refuses it and every channel below it. */
export const RUNTIME_CHANNEL_MAX = FORWARD_CHANNEL;
/** The highest channel a frame can carry (a u16). */
export const CHANNEL_MAX = 0xffff;

/** True for a channel that a service above the runtime may take (RUNTIME_CHANNEL_MAX, CHANNEL_MAX]. */
export function isServiceChannel(channel: number): boolean {
  return Number.isInteger(channel) && channel > RUNTIME_CHANNEL_MAX && channel <= CHANNEL_MAX;
}
