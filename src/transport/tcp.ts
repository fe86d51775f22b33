// TcpTransport: the Transport between real nodes, over TCP or mutual TLS.
//
// Connection model: each node dials each peer for its OUTGOING frames (one
// outbound connection per peer, dialed on the first send and then kept, with
// reconnection under exponential backoff and jitter); it accepts inbound
// connections and only READS frames from them. No dual-connection races.
//
// Every connection starts with the handshake of handshake.ts; no frame is
// accepted before it. Malformed input on a connection (bad length or kind,
// codec error, a frame out of place) is counted, logged once at warn, and
// closes that connection only: nothing thrown from a socket callback, ever.
// A client of another protocol on the peer port (a gRPC client, a browser,
// TLS) is counted the same way, and logged as what it is, with the node's
// client address (foreign-protocol.ts).
//
// Sending: a per-peer queue bounded in bytes (a frame that does not fit is
// dropped and counted: Raft tolerates loss), flushed once per microtask into
// a corked socket (many frames, one writev), honouring backpressure (write()
// false → wait for 'drain'). Frames queued while disconnected wait for the
// reconnection, up to the bound.

import net from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';
import { CodecError, decodeMessage, encodeMessage } from '../codec/index.js';
import type { NodeId } from '../protocol/ids.js';
import {
  decodeAppPayload, encodeAppPayload, encodeFrame, FRAME_HEADER_BYTES, FrameError, frameHeader, FrameKind,
  FrameSplitter, type FrameKindCode, type RawFrame,
} from './frame.js';
import { FOREIGN_SIGNATURE_BYTES, foreignProtocol, foreignProtocolMessage } from './foreign-protocol.js';
import { checkHello, decodeAck, encodeAck, encodeHello, PROTOCOL_VERSION } from './handshake.js';
import type { PeerFrame, PeerStats, Transport, TransportStats } from './types.js';

/** The default bound of a frame's length field: 16 MiB of payload plus the header. */
export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024 + FRAME_HEADER_BYTES;
/** The default bound of each peer's send queue. */
export const DEFAULT_SEND_QUEUE_MAX_BYTES = 64 * 1024 * 1024;

/** TCP keepalive on every connection, so that idle connections to vanished hosts are eventually closed. */
const KEEPALIVE_INITIAL_DELAY_MS = 5000;

/** Where a node listens or a peer is reached. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** Options of {@link TcpTransport}. */
export interface TcpTransportOptions {
  readonly clusterId: string;
  readonly nodeId: NodeId;
  readonly listen: HostPort;
  /**
   * Every other node of the cluster at start (an entry for `nodeId` itself is
   * ignored). An address is read again at each dial, so a caller may update it
   * in the map (a peer that moved, or tests whose nodes listen on port 0);
   * setPeer() and removePeer() change the set at run time (membership).
   */
  readonly peers: ReadonlyMap<NodeId, HostPort>;
  /** Bound of a frame's length field (kind byte + payload); longer frames are malformed. Default 16 MiB + header. */
  readonly maxFrameBytes?: number;
  /** Bound of each peer's queue of frames not yet handed to its socket. Default 64 MiB. */
  readonly sendQueueMaxBytes?: number;
  /** Reconnection backoff: the first delay and the cap (jittered to [½, 1] of the nominal delay). Default 50 ms → 2 s. */
  readonly reconnectMinMs?: number;
  readonly reconnectMaxMs?: number;
  /** Time allowed from dialing (or accepting) to a completed handshake. Default 5 s. */
  readonly handshakeTimeoutMs?: number;
  /**
   * How long an outbound socket may refuse our writes (no 'drain') before it
   * is deemed dead, destroyed and redialed: a vanished peer otherwise holds
   * the connection until TCP gives up, many minutes later. Default 15 s.
   */
  readonly writeStallTimeoutMs?: number;
  /**
   * PEM contents. When given, every connection is mutual TLS: both sides
   * present certificates signed by `ca`. With `verifyNodeIds`, each side also
   * requires the other's certificate to name the node id it speaks for (as its
   * subject CN or a DNS subjectAltName), so that a cluster certificate cannot
   * be used to impersonate another node.
   */
  readonly tls?: { readonly cert: string; readonly key: string; readonly ca: string; readonly verifyNodeIds?: boolean };
  /**
   * This node's client and metrics addresses (host:port), named in the log
   * line for a client that connects to the peer port by mistake.
   */
  readonly hints?: { readonly client?: string; readonly metrics?: string };
  readonly logger: Logger;
}

/** The transport could not listen on its address. */
export class TransportListenError extends Error {
  override readonly name = 'TransportListenError';
  readonly host: string;
  readonly port: number;

  constructor(host: string, port: number, options?: ErrorOptions) {
    super(`cannot listen on ${host}:${port}`, options);
    this.host = host;
    this.port = port;
  }
}

interface QueuedFrame {
  readonly header: Uint8Array;
  readonly payload: Uint8Array;
  /** header + payload */
  readonly bytes: number;
}

/** A FIFO of frames with its byte total. Invariant: bytes = Σ frame.bytes over [head, items.length). */
class FrameQueue {
  private items: QueuedFrame[] = [];
  private head = 0;
  bytes = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(f: QueuedFrame): void {
    this.items.push(f);
    this.bytes += f.bytes;
  }

  shift(): QueuedFrame | undefined {
    const f = this.items[this.head];
    if (f === undefined) return undefined;
    this.items[this.head] = undefined as unknown as QueuedFrame; // release the payload
    this.head++;
    this.bytes -= f.bytes;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return f;
  }

  clear(): void {
    this.items = [];
    this.head = 0;
    this.bytes = 0;
  }
}

/**
 * The outbound side of one peer.
 * Invariants: `socket` is non-null exactly in states connecting, handshaking
 * and ready; `timer` is the backoff timer in state backoff, the handshake
 * timer in connecting/handshaking, else null; `stallTimer` is set only while
 * `waitingDrain`; frames in `queue` have not been handed to any socket.
 */
interface Outbound {
  readonly id: NodeId;
  addr: HostPort;
  readonly queue: FrameQueue;
  state: 'idle' | 'connecting' | 'handshaking' | 'ready' | 'backoff' | 'closed';
  socket: net.Socket | null;
  timer: NodeJS.Timeout | null;
  /** Failed connections since the last successful handshake: the backoff exponent. */
  failures: number;
  waitingDrain: boolean;
  /** Set while waitingDrain: destroys the socket if it never drains. */
  stallTimer: NodeJS.Timeout | null;
  flushScheduled: boolean;
  lastError: string | null;
  droppedFrames: number;
  reconnects: number;
}

/** One accepted connection. Invariant: frames other than hello are accepted only once `peer` is set. */
interface Inbound {
  readonly socket: net.Socket;
  readonly splitter: FrameSplitter;
  readonly remote: string;
  /** The connection's first bytes (up to FOREIGN_SIGNATURE_BYTES), to recognise a client of another protocol. */
  head: Uint8Array;
  peer: NodeId | null;
  timer: NodeJS.Timeout | null;
  /** Closed or closing: ignore any further data. */
  done: boolean;
}

/** A Transport over TCP (or mutual TLS) with the frame format of frame.ts and the handshake of handshake.ts. */
export class TcpTransport implements Transport {
  private readonly opts: TcpTransportOptions;
  private readonly log: Logger;
  private readonly maxFrameBytes: number;
  private readonly sendQueueMaxBytes: number;
  private readonly reconnectMinMs: number;
  private readonly reconnectMaxMs: number;
  private readonly handshakeTimeoutMs: number;
  private readonly writeStallTimeoutMs: number;
  private readonly outbound = new Map<NodeId, Outbound>();
  /** Addresses given by setPeer(): they win over the constructor's map. */
  private readonly runtimeAddrs = new Map<NodeId, HostPort>();
  private readonly inbound = new Set<Inbound>();
  private readonly counters = {
    malformedFrames: 0, refusedHandshakes: 0, framesSent: 0, framesReceived: 0, bytesSent: 0, bytesReceived: 0, unknownPeerFrames: 0,
  };
  private handler: ((from: NodeId, frame: PeerFrame) => void) | null = null;
  private connectionListener: ((peer: NodeId, up: boolean) => void) | null = null;
  /** Fault injection (the dashboard's partition button): while true, every frame to and from peers is dropped. */
  private partitionedNow = false;
  private server: net.Server | null = null;
  private closed = false;
  private boundAddress: HostPort | null = null;

  constructor(options: TcpTransportOptions) {
    this.opts = options;
    this.log = options.logger.child({ component: 'transport', node: options.nodeId });
    this.maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.sendQueueMaxBytes = options.sendQueueMaxBytes ?? DEFAULT_SEND_QUEUE_MAX_BYTES;
    this.reconnectMinMs = options.reconnectMinMs ?? 50;
    this.reconnectMaxMs = Math.max(this.reconnectMinMs, options.reconnectMaxMs ?? 2000);
    this.handshakeTimeoutMs = options.handshakeTimeoutMs ?? 5000;
    this.writeStallTimeoutMs = options.writeStallTimeoutMs ?? 15_000;
    for (const [id, addr] of options.peers) {
      if (id === options.nodeId) continue;
      this.outbound.set(id, newOutbound(id, addr));
    }
  }

  /**
   * Adds a peer, or changes its address, at run time (a member added or moved
   * by a membership change). An unchanged address is a no-op; a changed one
   * closes the current outbound connection, which is redialed to the new
   * address (frames still queued go there). Inbound handshakes from the peer
   * are accepted from now on. Ignored for this node's own id.
   */
  setPeer(id: NodeId, addr: HostPort): void {
    if (id === this.opts.nodeId || this.closed) return;
    const cur = this.runtimeAddrs.get(id) ?? this.opts.peers.get(id);
    this.runtimeAddrs.set(id, { host: addr.host, port: addr.port });
    const p = this.outbound.get(id);
    if (p === undefined) {
      this.outbound.set(id, newOutbound(id, addr));
      this.log.info({ peer: id, address: addr }, `added peer ${id} at ${addr.host}:${addr.port}`);
      return;
    }
    p.addr = { host: addr.host, port: addr.port };
    if (cur !== undefined && cur.host === addr.host && cur.port === addr.port) return;
    this.log.info({ peer: id, address: addr }, `peer ${id} moved to ${addr.host}:${addr.port}`);
    if (p.state === 'backoff' && p.timer !== null) {
      // dial the new address now rather than after the backoff meant for the old one
      clearTimeout(p.timer);
      p.timer = null;
      p.failures = 0;
      this.dial(p);
    } else if (p.socket !== null) {
      p.lastError = `moved to ${addr.host}:${addr.port}`;
      p.failures = 0;
      p.socket.destroy(); // onOutboundClose redials (after the shortest backoff)
    }
  }

  /**
   * Forgets a peer at run time (a member removed from the cluster): its
   * outbound connection is closed, its queue dropped, its inbound connections
   * closed, and later handshakes from it refused. send() to it then returns
   * false, as for any unknown peer.
   */
  removePeer(id: NodeId): void {
    this.runtimeAddrs.delete(id);
    const p = this.outbound.get(id);
    if (p === undefined) return;
    this.outbound.delete(id);
    if (p.timer !== null) clearTimeout(p.timer);
    if (p.stallTimer !== null) clearTimeout(p.stallTimer);
    p.timer = null;
    p.stallTimer = null;
    const wasUp = this.isUp(p);
    p.state = 'closed';
    const sock = p.socket;
    p.socket = null; // onOutboundClose ignores a socket that is no longer the peer's
    sock?.destroy();
    p.queue.clear();
    for (const c of this.inbound) {
      if (c.peer !== id) continue;
      c.done = true;
      c.socket.destroy();
    }
    this.log.info({ peer: id }, `removed peer ${id}`);
    if (wasUp) this.connectionChanged(id, false);
  }

  /** The peers this transport sends to now (constructor's and setPeer's, less removePeer's). */
  peerIds(): NodeId[] {
    return [...this.outbound.keys()];
  }

  get address(): HostPort | null {
    return this.boundAddress;
  }

  onFrame(handler: (from: NodeId, frame: PeerFrame) => void): void {
    this.handler = handler;
  }

  isConnected(to: NodeId): boolean {
    const p = this.outbound.get(to);
    return p !== undefined && this.isUp(p);
  }

  onConnectionChange(listener: (peer: NodeId, up: boolean) => void): void {
    this.connectionListener = listener;
  }

  /** A frame sent to `p` now goes out at once: its connection is past the handshake and we are not cut off. */
  private isUp(p: Outbound): boolean {
    return p.state === 'ready' && !this.partitionedNow && !this.closed;
  }

  private connectionChanged(peer: NodeId, up: boolean): void {
    const l = this.connectionListener;
    if (l === null) return;
    try {
      l(peer, up);
    } catch (err) {
      this.log.error({ err, peer }, 'the connection listener threw');
    }
  }

  /**
   * Fault injection only: cuts this node off (true) or heals it (false).
   * While cut off, send() drops every frame silently (as a lost network
   * would: it reports success) and frames that arrive are not delivered;
   * connections stay up, so healing takes effect at once.
   */
  setPartitioned(on: boolean): void {
    if (on === this.partitionedNow) return;
    const ready = [...this.outbound.values()].filter((p) => p.state === 'ready' && !this.closed).map((p) => p.id);
    this.partitionedNow = on;
    for (const id of ready) this.connectionChanged(id, !on);
  }

  get partitioned(): boolean {
    return this.partitionedNow;
  }

  async start(): Promise<void> {
    if (this.server !== null || this.closed) throw new Error('TcpTransport.start() called twice or after close()');
    const t = this.opts.tls;
    const server = t === undefined
      ? net.createServer((sock) => this.onInbound(sock))
      : tls.createServer({ cert: t.cert, key: t.key, ca: t.ca, requestCert: true, rejectUnauthorized: true }, (sock) => this.onInbound(sock));
    if (t !== undefined) {
      // A client certificate that the CA did not sign ends here (the socket is
      // already gone, often without its address, and the error is generic).
      server.on('tlsClientError', (err: Error, sock: tls.TLSSocket) => {
        this.counters.refusedHandshakes++;
        const remote = sock.remoteAddress === undefined ? 'a client' : `${sock.remoteAddress}:${sock.remotePort}`;
        const reason = `TLS handshake failed (client certificate not signed by our CA, or not TLS): ${err.message}`;
        this.log.warn({ remote, reason }, `refused a TLS connection from ${remote}: ${reason}`);
      });
    }
    this.server = server;
    const { host, port } = this.opts.listen;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(new TransportListenError(host, port, { cause: err }));
      server.once('error', onError);
      server.listen(port, host, () => {
        server.off('error', onError);
        resolve();
      });
    });
    server.on('error', (err) => this.log.error({ err }, 'listener error'));
    const a = server.address() as net.AddressInfo;
    this.boundAddress = { host: a.address, port: a.port };
    this.log.info({ address: this.boundAddress, tls: t !== undefined }, `listening on ${a.address}:${a.port}`);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.outbound.values()) {
      if (p.timer !== null) clearTimeout(p.timer);
      if (p.stallTimer !== null) clearTimeout(p.stallTimer);
      p.timer = null;
      p.stallTimer = null;
      p.socket?.destroy();
      p.socket = null;
      p.queue.clear();
      p.state = 'closed';
    }
    for (const c of this.inbound) {
      c.done = true;
      if (c.timer !== null) clearTimeout(c.timer);
      c.socket.destroy();
    }
    this.inbound.clear();
    const server = this.server;
    this.boundAddress = null;
    if (server !== null) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  send(to: NodeId, frame: PeerFrame): boolean {
    const p = this.outbound.get(to);
    if (p === undefined) {
      this.counters.unknownPeerFrames++;
      return false;
    }
    if (this.closed) {
      p.droppedFrames++;
      return false;
    }
    if (this.partitionedNow) {
      p.droppedFrames++;
      return true;
    }
    let kind: FrameKindCode;
    let payload: Uint8Array;
    if (frame.kind === 'raft') {
      const m = frame.message;
      if (m.from !== this.opts.nodeId || m.to !== to) {
        // The receiver would take it for a forged sender and drop the connection: refuse it here.
        p.droppedFrames++;
        this.log.error({ peer: to, from: m.from, to: m.to, type: m.type }, `dropped a ${m.type} message from ${m.from} to ${m.to} sent to peer ${to} by ${this.opts.nodeId} (a bug in the caller)`);
        return false;
      }
      kind = FrameKind.raft;
      payload = encodeMessage(m);
    } else {
      kind = FrameKind.app;
      payload = encodeAppPayload(frame.channel, frame.payload);
    }
    const bytes = FRAME_HEADER_BYTES + payload.byteLength;
    if (payload.byteLength + 1 > this.maxFrameBytes) {
      p.droppedFrames++;
      this.log.warn({ peer: to, bytes }, `dropped a ${bytes}-byte ${frame.kind} frame for ${to}: over the frame bound of ${this.maxFrameBytes} bytes`);
      return false;
    }
    if (p.queue.bytes + bytes > this.sendQueueMaxBytes) {
      p.droppedFrames++;
      return false;
    }
    p.queue.push({ header: frameHeader(kind, payload.byteLength), payload, bytes });
    if (p.state === 'idle') this.dial(p);
    else if (p.state === 'ready') this.scheduleFlush(p);
    return true;
  }

  flush(): void {
    for (const p of this.outbound.values()) if (p.state === 'ready' && p.queue.length > 0) this.flushPeer(p);
  }

  stats(): TransportStats {
    const peers: Record<string, PeerStats> = {};
    for (const p of this.outbound.values()) {
      peers[p.id] = {
        connected: p.state === 'ready', queuedBytes: p.queue.bytes, queuedFrames: p.queue.length,
        droppedFrames: p.droppedFrames, reconnects: p.reconnects,
      };
    }
    return { ...this.counters, peers };
  }

  // ------------------------------------------------------------ outbound ---

  private dial(p: Outbound): void {
    p.state = 'connecting';
    p.lastError = null;
    const t = this.opts.tls;
    const { host, port } = this.runtimeAddrs.get(p.id) ?? this.opts.peers.get(p.id) ?? p.addr;
    const sock: net.Socket = t === undefined
      ? net.connect({ host, port })
      : tls.connect({ host, port, cert: t.cert, key: t.key, ca: t.ca, rejectUnauthorized: true });
    p.socket = sock;
    sock.setNoDelay(true);
    sock.setKeepAlive(true, KEEPALIVE_INITIAL_DELAY_MS);
    const splitter = new FrameSplitter(this.maxFrameBytes);
    p.timer = setTimeout(() => {
      p.lastError = `no handshake within ${this.handshakeTimeoutMs} ms`;
      sock.destroy();
    }, this.handshakeTimeoutMs);
    p.timer.unref();
    sock.once(t === undefined ? 'connect' : 'secureConnect', () => {
      if (p.socket !== sock) return;
      if (t?.verifyNodeIds === true) {
        const problem = certificateNamesProblem(sock as tls.TLSSocket, p.id);
        if (problem !== null) {
          this.counters.refusedHandshakes++;
          p.lastError = `refused: ${problem}`;
          this.log.warn({ peer: p.id, reason: problem }, `refused peer ${p.id}: ${problem}`);
          sock.destroy();
          return;
        }
      }
      p.state = 'handshaking';
      sock.write(encodeFrame(FrameKind.hello, encodeHello({
        version: PROTOCOL_VERSION, clusterId: this.opts.clusterId, from: this.opts.nodeId, to: p.id,
      })));
    });
    sock.on('data', (chunk: Buffer) => this.onOutboundData(p, sock, splitter, chunk));
    sock.on('error', (err) => {
      p.lastError = err.message;
    });
    sock.on('close', () => this.onOutboundClose(p, sock));
  }

  private onOutboundData(p: Outbound, sock: net.Socket, splitter: FrameSplitter, chunk: Uint8Array): void {
    if (p.socket !== sock) return;
    let frames: RawFrame[];
    try {
      frames = splitter.push(chunk);
    } catch (e) {
      this.outboundMalformed(p, sock, e instanceof FrameError ? e.reason : String(e));
      return;
    }
    for (const f of frames) {
      if (p.state !== 'handshaking' || f.kind !== FrameKind.ack) {
        this.outboundMalformed(p, sock, `unexpected frame kind ${f.kind} from the acceptor`);
        return;
      }
      let ack;
      try {
        ack = decodeAck(f.payload);
      } catch (e) {
        this.outboundMalformed(p, sock, e instanceof CodecError ? e.message : String(e));
        return;
      }
      if (!ack.ok) {
        this.counters.refusedHandshakes++;
        p.lastError = `refused: ${ack.reason}`;
        this.log.warn({ peer: p.id, reason: ack.reason }, `peer ${p.id} refused: ${ack.reason}`);
        sock.destroy();
        return;
      }
      if (p.timer !== null) clearTimeout(p.timer);
      p.timer = null;
      p.state = 'ready';
      p.failures = 0;
      p.lastError = null;
      this.log.info({ peer: p.id }, `connected to peer ${p.id}`);
      this.flushPeer(p);
      if (this.isUp(p)) this.connectionChanged(p.id, true);
    }
  }

  private outboundMalformed(p: Outbound, sock: net.Socket, reason: string): void {
    this.counters.malformedFrames++;
    p.lastError = `malformed: ${reason}`;
    this.log.warn({ peer: p.id, reason }, `malformed frame from peer ${p.id} on our connection to it: ${reason}; closing it`);
    sock.destroy();
  }

  private onOutboundClose(p: Outbound, sock: net.Socket): void {
    if (p.socket !== sock) return;
    p.socket = null;
    p.waitingDrain = false;
    if (p.stallTimer !== null) clearTimeout(p.stallTimer);
    p.stallTimer = null;
    if (p.timer !== null) clearTimeout(p.timer);
    p.timer = null;
    if (this.closed) {
      p.state = 'closed';
      return;
    }
    if (p.state === 'handshaking' && p.lastError === null) {
      // TLS 1.3: a listener that rejects our certificate just closes after our hello.
      p.lastError = 'closed by the peer before the handshake completed (does it accept our TLS certificate?)';
    }
    const reason = p.lastError ?? 'closed';
    const wasUp = this.isUp(p);
    if (p.state === 'ready') {
      this.log.warn({ peer: p.id, reason }, `connection to peer ${p.id} lost: ${reason}; reconnecting`);
    } else if (p.failures === 0 && !reason.startsWith('refused')) {
      // the first failure of a series at info (warn when cut off mid-handshake: likely a TLS refusal);
      // the retries at debug (a peer that is down must not flood the log)
      const level = p.state === 'handshaking' ? 'warn' : 'info';
      this.log[level]({ peer: p.id, reason }, `cannot connect to peer ${p.id}: ${reason}; retrying with backoff`);
    } else {
      this.log.debug({ peer: p.id, reason, failures: p.failures + 1 }, `cannot connect to peer ${p.id}: ${reason}`);
    }
    p.failures++;
    p.state = 'backoff';
    p.timer = setTimeout(() => {
      p.timer = null;
      if (this.closed) return;
      p.reconnects++;
      this.dial(p);
    }, this.backoffMs(p.failures));
    p.timer.unref();
    if (wasUp) this.connectionChanged(p.id, false);
  }

  /** The delay before redialing after `failures` consecutive failures: exponential, capped, jittered to [½, 1]. */
  private backoffMs(failures: number): number {
    const nominal = Math.min(this.reconnectMaxMs, this.reconnectMinMs * 2 ** Math.min(failures - 1, 30));
    return nominal / 2 + Math.random() * (nominal / 2);
  }

  private scheduleFlush(p: Outbound): void {
    if (p.flushScheduled) return;
    p.flushScheduled = true;
    queueMicrotask(() => {
      p.flushScheduled = false;
      this.flushPeer(p);
    });
  }

  /** Hands queued frames to the socket, corked into one writev, until it asks us to wait for 'drain'. */
  private flushPeer(p: Outbound): void {
    const sock = p.socket;
    if (p.state !== 'ready' || p.waitingDrain || sock === null || p.queue.length === 0) return;
    let ok = true;
    sock.cork();
    while (ok) {
      const f = p.queue.shift();
      if (f === undefined) break;
      sock.write(f.header);
      ok = sock.write(f.payload);
      this.counters.framesSent++;
      this.counters.bytesSent += f.bytes;
    }
    sock.uncork();
    if (!ok) {
      p.waitingDrain = true;
      p.stallTimer = setTimeout(() => {
        p.stallTimer = null;
        if (p.socket !== sock) return;
        p.lastError = `no write progress for ${this.writeStallTimeoutMs} ms`;
        sock.destroy();
      }, this.writeStallTimeoutMs);
      p.stallTimer.unref();
      sock.once('drain', () => {
        if (p.socket !== sock) return;
        if (p.stallTimer !== null) clearTimeout(p.stallTimer);
        p.stallTimer = null;
        p.waitingDrain = false;
        this.flushPeer(p);
      });
    }
  }

  // ------------------------------------------------------------- inbound ---

  private onInbound(sock: net.Socket): void {
    if (this.closed) {
      sock.destroy();
      return;
    }
    const c: Inbound = {
      socket: sock, splitter: new FrameSplitter(this.maxFrameBytes), remote: `${sock.remoteAddress}:${sock.remotePort}`,
      head: new Uint8Array(0), peer: null, timer: null, done: false,
    };
    this.inbound.add(c);
    sock.setNoDelay(true);
    sock.setKeepAlive(true, KEEPALIVE_INITIAL_DELAY_MS); // we only read: keepalive is how a vanished dialer is noticed
    c.timer = setTimeout(() => {
      c.timer = null;
      if (c.peer !== null || c.done) return;
      this.log.warn({ remote: c.remote }, `no hello from ${c.remote} within ${this.handshakeTimeoutMs} ms; closing`);
      c.done = true;
      sock.destroy();
    }, this.handshakeTimeoutMs);
    c.timer.unref();
    sock.on('data', (chunk: Buffer) => this.onInboundData(c, chunk));
    sock.on('error', (err) => this.log.debug({ peer: c.peer, remote: c.remote, err: err.message }, 'inbound connection error'));
    sock.on('close', () => {
      this.inbound.delete(c);
      if (c.timer !== null) clearTimeout(c.timer);
      c.timer = null;
      c.done = true;
    });
  }

  private onInboundData(c: Inbound, chunk: Uint8Array): void {
    if (c.done) return;
    this.counters.bytesReceived += chunk.byteLength;
    if (c.peer === null && c.head.byteLength < FOREIGN_SIGNATURE_BYTES) {
      const head = new Uint8Array(Math.min(FOREIGN_SIGNATURE_BYTES, c.head.byteLength + chunk.byteLength));
      head.set(c.head, 0);
      head.set(chunk.subarray(0, head.byteLength - c.head.byteLength), c.head.byteLength);
      c.head = head;
      const foreign = head.byteLength === FOREIGN_SIGNATURE_BYTES ? foreignProtocol(head) : null;
      if (foreign !== null) {
        // Not a peer at all: say what it is and where it belongs (not "malformed frame … length 541676112"); counted as malformed input.
        this.counters.malformedFrames++;
        this.log.warn({ remote: c.remote, protocol: foreign }, foreignProtocolMessage(foreign, c.remote, this.opts.hints ?? {}));
        c.done = true;
        c.socket.destroy();
        return;
      }
    }
    let frames: RawFrame[];
    try {
      frames = c.splitter.push(chunk);
    } catch (e) {
      this.inboundMalformed(c, e instanceof FrameError ? e.reason : String(e));
      return;
    }
    for (const f of frames) {
      if (c.done) return;
      let frame: PeerFrame | null;
      try {
        frame = this.inboundFrame(c, f);
      } catch (e) {
        this.inboundMalformed(c, e instanceof FrameError || e instanceof CodecError ? e.message : String(e));
        return;
      }
      if (frame !== null && c.peer !== null) this.deliver(c.peer, frame);
    }
  }

  /** Handles the handshake, or decodes a frame for delivery. Throws FrameError/CodecError on malformed input. */
  private inboundFrame(c: Inbound, f: RawFrame): PeerFrame | null {
    if (c.peer === null) {
      if (f.kind !== FrameKind.hello) throw new FrameError(`frame kind ${f.kind} before the handshake`);
      let verdict = checkHello(f.payload, { clusterId: this.opts.clusterId, nodeId: this.opts.nodeId, peers: this.outbound });
      if (verdict.ok && this.opts.tls?.verifyNodeIds === true) {
        const problem = certificateNamesProblem(c.socket as tls.TLSSocket, verdict.from);
        if (problem !== null) verdict = { ok: false, reason: problem };
      }
      if (!verdict.ok) {
        this.counters.refusedHandshakes++;
        this.log.warn({ remote: c.remote, reason: verdict.reason }, `refused a connection from ${c.remote}: ${verdict.reason}`);
        c.done = true;
        c.socket.end(encodeFrame(FrameKind.ack, encodeAck(verdict)), () => c.socket.destroy());
        return null;
      }
      c.peer = verdict.from;
      if (c.timer !== null) clearTimeout(c.timer);
      c.timer = null;
      c.socket.write(encodeFrame(FrameKind.ack, encodeAck({ ok: true })));
      this.log.debug({ peer: c.peer, remote: c.remote }, `accepted a connection from peer ${c.peer}`);
      return null;
    }
    switch (f.kind) {
      case FrameKind.raft: {
        const message = decodeMessage(f.payload);
        if (message.from !== c.peer || message.to !== this.opts.nodeId) {
          throw new FrameError(`a ${message.type} message from ${JSON.stringify(message.from)} to ${JSON.stringify(message.to)} on the connection of peer ${JSON.stringify(c.peer)}`);
        }
        return { kind: 'raft', message };
      }
      case FrameKind.app: {
        const { channel, payload } = decodeAppPayload(f.payload);
        return { kind: 'app', channel, payload };
      }
      default:
        throw new FrameError(`frame kind ${f.kind} after the handshake`);
    }
  }

  private inboundMalformed(c: Inbound, reason: string): void {
    this.counters.malformedFrames++;
    const who = c.peer === null ? c.remote : `peer ${c.peer} (${c.remote})`;
    this.log.warn({ peer: c.peer, remote: c.remote, reason }, `malformed frame from ${who}: ${reason}; closing the connection`);
    c.done = true;
    c.socket.destroy();
  }

  private deliver(from: NodeId, frame: PeerFrame): void {
    this.counters.framesReceived++;
    const handler = this.handler;
    if (handler === null || this.partitionedNow) return;
    try {
      handler(from, frame);
    } catch (err) {
      this.log.error({ err, peer: from }, 'the frame handler threw; frame dropped');
    }
  }
}

function newOutbound(id: NodeId, addr: HostPort): Outbound {
  return {
    id, addr: { host: addr.host, port: addr.port }, queue: new FrameQueue(), state: 'idle', socket: null, timer: null, failures: 0,
    waitingDrain: false, stallTimer: null, flushScheduled: false, lastError: null, droppedFrames: 0, reconnects: 0,
  };
}

/** Why the peer certificate of `sock` does not speak for node `id` (neither its CN nor a DNS SAN is `id`), or null. */
function certificateNamesProblem(sock: tls.TLSSocket, id: NodeId): string | null {
  const cert = sock.getPeerCertificate();
  const names: string[] = [];
  const cn = cert.subject?.CN;
  if (typeof cn === 'string') names.push(cn);
  else if (Array.isArray(cn)) names.push(...(cn as string[]));
  for (const part of (cert.subjectaltname ?? '').split(', ')) {
    if (part.startsWith('DNS:')) names.push(part.slice(4));
  }
  if (names.includes(id)) return null;
  return `the TLS certificate names ${JSON.stringify(names)}, not node ${JSON.stringify(id)}`;
}
