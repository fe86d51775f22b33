// An in-memory Transport for runtime unit tests: transports attached to one
// MemoryNetwork hub deliver frames to each other asynchronously (setImmediate,
// as a socket would), and the hub can cut links to simulate partitions.
// Raft frames go through the real codec by default, so a message the wire
// could not carry fails here too, and receivers never share buffers with
// senders.

import { decodeMessage, encodeMessage } from '../codec/index.js';
import type { NodeId } from '../protocol/ids.js';
import { decodeAppPayload, encodeAppPayload } from './frame.js';
import type { PeerFrame, PeerStats, Transport, TransportStats } from './types.js';

/**
 * The hub. Links are directed; a cut link silently loses frames (the sender
 * cannot tell, as with TCP).
 * Invariant: at most one attached transport per node id.
 */
export class MemoryNetwork {
  private readonly nodes = new Map<NodeId, MemoryTransport>();
  private readonly cut = new Set<string>();

  /** Attaches a started transport; a second one for the same id is a bug. */
  attach(t: MemoryTransport): void {
    if (this.nodes.has(t.nodeId)) throw new Error(`node ${t.nodeId} is already attached to this MemoryNetwork`);
    this.nodes.set(t.nodeId, t);
    this.tellOthers(t.nodeId, true);
  }

  /** Detaches a closed transport (its peers see their connections to it close). */
  detach(t: MemoryTransport): void {
    if (this.nodes.get(t.nodeId) !== t) return;
    this.nodes.delete(t.nodeId);
    this.tellOthers(t.nodeId, false);
  }

  private tellOthers(id: NodeId, up: boolean): void {
    for (const other of [...this.nodes.values()]) if (other.nodeId !== id) other.peerChanged(id, up);
  }

  /** The attached transport of `id`, if any. */
  node(id: NodeId): MemoryTransport | undefined {
    return this.nodes.get(id);
  }

  /** Cuts every link between a node of `side` and a node of `other`, both ways. */
  partition(side: Iterable<NodeId>, other: Iterable<NodeId>): void {
    const others = [...other];
    for (const a of side) {
      for (const b of others) {
        this.cut.add(linkKey(a, b));
        this.cut.add(linkKey(b, a));
      }
    }
  }

  /** Cuts the one-way link from → to. */
  cutLink(from: NodeId, to: NodeId): void {
    this.cut.add(linkKey(from, to));
  }

  /** Cuts `node` off from every other node, both ways. */
  isolate(node: NodeId, allNodes: Iterable<NodeId>): void {
    this.partition([node], [...allNodes].filter((n) => n !== node));
  }

  /** Restores every link. */
  heal(): void {
    this.cut.clear();
  }

  /** Whether a frame sent now from → to would arrive (link up, destination attached). */
  canDeliver(from: NodeId, to: NodeId): boolean {
    return !this.cut.has(linkKey(from, to)) && this.nodes.has(to);
  }
}

function linkKey(from: NodeId, to: NodeId): string {
  return `${from}\u0000${to}`;
}

/** Options of {@link MemoryTransport}. */
export interface MemoryTransportOptions {
  /** Encode and decode raft messages with the real codec (default true). */
  readonly useCodec?: boolean;
}

/** A Transport over a {@link MemoryNetwork}. Frames arrive in send order per link, after a setImmediate. */
export class MemoryTransport implements Transport {
  readonly nodeId: NodeId;
  private readonly network: MemoryNetwork;
  private readonly peers: ReadonlySet<NodeId>;
  private readonly useCodec: boolean;
  private handler: ((from: NodeId, frame: PeerFrame) => void) | null = null;
  private connectionListener: ((peer: NodeId, up: boolean) => void) | null = null;
  private state: 'new' | 'started' | 'closed' = 'new';
  private readonly counters = {
    malformedFrames: 0, refusedHandshakes: 0, framesSent: 0, framesReceived: 0, bytesSent: 0, bytesReceived: 0, unknownPeerFrames: 0,
  };
  private readonly perPeer = new Map<NodeId, { droppedFrames: number }>();

  constructor(network: MemoryNetwork, nodeId: NodeId, peers: Iterable<NodeId>, options: MemoryTransportOptions = {}) {
    this.network = network;
    this.nodeId = nodeId;
    this.peers = new Set([...peers].filter((p) => p !== nodeId));
    for (const p of this.peers) this.perPeer.set(p, { droppedFrames: 0 });
    this.useCodec = options.useCodec ?? true;
  }

  get address(): null {
    return null;
  }

  onFrame(handler: (from: NodeId, frame: PeerFrame) => void): void {
    this.handler = handler;
  }

  /**
   * True while `to` is a peer and attached (started, not closed): a stopped
   * node is what a refused connection is over TCP. A cut link does not show
   * here (a silent partition, which the sender cannot tell).
   */
  isConnected(to: NodeId): boolean {
    return this.state === 'started' && this.peers.has(to) && this.network.node(to) !== undefined;
  }

  onConnectionChange(listener: (peer: NodeId, up: boolean) => void): void {
    this.connectionListener = listener;
  }

  /** Called by the hub when `peer` attaches or detaches: told to the listener on a later turn, in order, as socket events would be. */
  peerChanged(peer: NodeId, up: boolean): void {
    if (!this.peers.has(peer)) return;
    setImmediate(() => {
      if (this.state === 'started') this.connectionListener?.(peer, up);
    });
  }

  start(): Promise<void> {
    if (this.state !== 'new') return Promise.reject(new Error('MemoryTransport.start() called twice or after close()'));
    this.state = 'started';
    this.network.attach(this);
    return Promise.resolve();
  }

  /** Delivery is already asynchronous and immediate here: nothing to flush. */
  flush(): void {
    // nothing queued locally
  }

  close(): Promise<void> {
    if (this.state === 'started') this.network.detach(this);
    this.state = 'closed';
    return Promise.resolve();
  }

  /** Frames to a cut link or a node not attached are lost silently (true is returned), and counted as dropped. */
  send(to: NodeId, frame: PeerFrame): boolean {
    const peer = this.perPeer.get(to);
    if (peer === undefined) {
      this.counters.unknownPeerFrames++;
      return false;
    }
    if (this.state === 'closed') {
      peer.droppedFrames++;
      return false;
    }
    if (frame.kind === 'raft' && (frame.message.from !== this.nodeId || frame.message.to !== to)) {
      peer.droppedFrames++;
      return false;
    }
    // Encode now, as the TCP transport does, so that the sender's buffers may be reused at once.
    const wire = frame.kind === 'raft'
      ? { kind: 'raft' as const, bytes: this.useCodec ? encodeMessage(frame.message) : null, message: frame.message }
      : { kind: 'app' as const, bytes: encodeAppPayload(frame.channel, frame.payload), message: null };
    this.counters.framesSent++;
    this.counters.bytesSent += wire.bytes?.byteLength ?? 0;
    if (!this.network.canDeliver(this.nodeId, to)) {
      peer.droppedFrames++;
      return true;
    }
    const from = this.nodeId;
    setImmediate(() => {
      const target = this.network.node(to);
      if (target === undefined || !this.network.canDeliver(from, to)) {
        peer.droppedFrames++;
        return;
      }
      let received: PeerFrame;
      if (wire.kind === 'raft') {
        received = { kind: 'raft', message: wire.bytes === null ? wire.message : decodeMessage(wire.bytes) };
      } else {
        const app = decodeAppPayload(wire.bytes);
        received = { kind: 'app', channel: app.channel, payload: app.payload };
      }
      target.receive(from, received, wire.bytes?.byteLength ?? 0);
    });
    return true;
  }

  /** Called by the hub's delivery: hands a frame to the handler. */
  private receive(from: NodeId, frame: PeerFrame, bytes: number): void {
    if (this.state !== 'started') return;
    this.counters.framesReceived++;
    this.counters.bytesReceived += bytes;
    this.handler?.(from, frame);
  }

  stats(): TransportStats {
    const peers: Record<string, PeerStats> = {};
    for (const [id, p] of this.perPeer) {
      peers[id] = { connected: this.network.canDeliver(this.nodeId, id), queuedBytes: 0, queuedFrames: 0, droppedFrames: p.droppedFrames, reconnects: 0 };
    }
    return { ...this.counters, peers };
  }
}
