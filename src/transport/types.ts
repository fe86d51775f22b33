// The Transport contract between the runtime (src/node) and the network: what
// a frame carries, how it is sent and received, and the counters a transport
// exposes. Implementations: TcpTransport (tcp.ts) and MemoryTransport
// (memory.ts, for runtime unit tests).

import type { NodeId } from '../protocol/ids.js';
import type { Message } from '../protocol/messages.js';

/**
 * What travels between nodes: a Raft message, or opaque runtime-level bytes
 * (the runtime encodes forwarded client requests itself).
 * Invariant: `channel` is an integer in [0, 65535].
 */
export type PeerFrame =
  | { readonly kind: 'raft'; readonly message: Message }
  | { readonly kind: 'app'; readonly channel: number; readonly payload: Uint8Array };

/** Counters and per-peer state, for Prometheus metrics and `quorumlog status`. All counters only grow. */
export interface TransportStats {
  /** Inbound frames rejected (bad length or kind, codec error, frame before the handshake); each closed its connection. */
  malformedFrames: number;
  /** Handshakes refused, by either side (we refused a dialer, or a peer refused us), TLS rejections included. */
  refusedHandshakes: number;
  /** Frames handed to a socket (raft and app; handshake frames are not counted). */
  framesSent: number;
  /** Valid raft and app frames delivered to the handler. */
  framesReceived: number;
  /** Bytes of frames handed to sockets, headers included. */
  bytesSent: number;
  /** Bytes read from inbound sockets. */
  bytesReceived: number;
  /** Frames refused by send() because the destination is not a configured peer. */
  unknownPeerFrames: number;
  /** Per configured peer, by node id. `queued*` are frames waiting for the connection (not yet handed to the socket). */
  peers: Record<string, PeerStats>;
}

/** One peer's outbound state. */
export interface PeerStats {
  /** The outbound connection is up and past its handshake. */
  connected: boolean;
  queuedBytes: number;
  queuedFrames: number;
  /** Frames send() refused because the peer's queue was over its byte bound (or the transport was closed). */
  droppedFrames: number;
  /** Dial attempts after the first (after a failure, a refusal or a lost connection). */
  reconnects: number;
}

/** Moves frames between the nodes of one cluster. Delivery is best effort: frames may be lost or duplicated, never corrupted. */
export interface Transport {
  /**
   * Queues a frame for `to`. Returns false (and counts a drop) when the peer is
   * unknown or its send queue is over its byte bound: the caller (Raft)
   * tolerates loss. Never throws for a network problem (a message the codec
   * cannot encode is a bug in the caller and throws CodecError). A raft
   * message must be from this node and to `to` (else it is dropped: the
   * receiver would take it for forged). May be called before start().
   */
  send(to: NodeId, frame: PeerFrame): boolean;
  /**
   * Hands every queued frame to its connection now instead of at the end of
   * the current task. The runtime calls it before it blocks on the disk, so
   * that the leader's AppendEntries reach the followers while its own fsync
   * runs (send() alone would flush only after the fsync).
   */
  flush(): void;
  /** Sets the single handler of every valid frame received (from = the authenticated peer of that connection). */
  onFrame(handler: (from: NodeId, frame: PeerFrame) => void): void;
  /**
   * True while a frame sent to `to` now goes out at once on a live
   * connection (TCP: the outbound connection is past its handshake, and the
   * node is not cut off by fault injection). False while it would wait in
   * the queue for a reconnection, or `to` is not a peer. The runtime holds
   * client requests rather than forward them to a leader it cannot reach.
   */
  isConnected(to: NodeId): boolean;
  /**
   * Sets the single listener of isConnected() changes: `up` is true when a
   * peer becomes reachable, false when it stops being (a lost connection,
   * a peer that closed). Called on the event loop, never re-entrantly from send().
   */
  onConnectionChange(listener: (peer: NodeId, up: boolean) => void): void;
  /** Listens; resolves once listening. */
  start(): Promise<void>;
  /** Closes the listener and every connection, drops queues. The transport cannot be restarted. */
  close(): Promise<void>;
  /** A snapshot of the counters and per-peer state. */
  stats(): TransportStats;
  /** The bound listen address once started (port 0 → the ephemeral port chosen), else null. */
  readonly address: { host: string; port: number } | null;
}
