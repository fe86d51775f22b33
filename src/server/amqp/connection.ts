// One AMQP 0-9-1 connection: the protocol header, the handshake
// (Start/StartOk with PLAIN, Tune/TuneOk, Open), heartbeats both ways, the
// channels, and the close, over one socket. What the channels do with the
// queues is channel.ts; the frames themselves are src/codec/amqp.
//
// The life of a connection (state):
//   'header'  → 8 bytes of protocol header expected; a wrong one is answered
//               with ours, and the socket closes (the specification's rule).
//   'startOk' → connection.start sent; connection.start-ok expected.
//   'login'   → the password is being checked (off the Raft thread).
//   'tuneOk'  → connection.tune sent; connection.tune-ok expected.
//   'open'    → connection.open expected (vhost "/").
//   'ready'   → channels may open.
//   'closing' → we sent connection.close: everything but close-ok is
//               discarded (the specification's rule) until it comes or a
//               second passes.
//   'closed'  → the socket is gone; every channel has been cleaned up.
//
// Errors: an AmqpError with a hard code (errors.ts) closes the connection
// with connection.close; a soft one closes only its channel. A codec error
// (a malformed frame) is a hard error with the codec's code. Every refusal
// is counted by code (AmqpStats.refused) and logged at debug level; nothing a
// client sends can throw out of the socket's handlers.
//
// Back-pressure: deliveries are bounded by the consumers' prefetch (the
// queue state machine assigns no more). Reading from the socket pauses while
// the connection has too many publishes waiting for their commit
// (limits.maxPendingPublishes), so a fast publisher is held by TCP rather than
// by our memory; a client that stops reading while our output to it grows
// past limits.outputMaxBytes is disconnected.

import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import {
  AmqpCodecError, checkProtocolHeader, decodeMethod, encodeMethodFrame, FRAME_BODY, FRAME_HEADER, FRAME_HEARTBEAT, FRAME_METHOD,
  fieldString, FrameReader, HEARTBEAT_FRAME, methodIds, PROTOCOL_HEADER, type AmqpMethod, type FieldTable, type FieldValue,
} from '../../codec/amqp/index.js';
import { AmqpChannel } from './channel.js';
import { AmqpError, REPLY, replyName } from './errors.js';
import type { AmqpStats } from './stats.js';
import type { AmqpVhost, AmqpUser } from './vhost.js';

/** Limits and timings of the listener's connections. */
export interface AmqpLimits {
  /** Largest frame we accept and propose (RabbitMQ's default is 131072). */
  readonly frameMax: number;
  /** Most channels per connection (RabbitMQ's default is 2047). */
  readonly channelMax: number;
  /** Heartbeat interval we propose, in seconds (RabbitMQ's default is 60); 0 proposes none. */
  readonly heartbeatSeconds: number;
  /** Largest message body accepted (406, as RabbitMQ's max_message_size). */
  readonly maxBodyBytes: number;
  /** How long a client has to finish the handshake. */
  readonly handshakeTimeoutMs: number;
  /** Publishes awaiting their commit, per connection, beyond which the socket is not read. */
  readonly maxPendingPublishes: number;
  /** Output queued to a client that does not read, beyond which it is disconnected. */
  readonly outputMaxBytes: number;
}

export const AMQP_LIMIT_DEFAULTS: AmqpLimits = {
  frameMax: 131_072,
  channelMax: 2047,
  heartbeatSeconds: 60,
  maxBodyBytes: 16 << 20,
  handshakeTimeoutMs: 10_000,
  maxPendingPublishes: 4096,
  outputMaxBytes: 64 << 20,
};

type State = 'header' | 'startOk' | 'login' | 'tuneOk' | 'open' | 'ready' | 'closing' | 'closed';

/** What a connection needs from the listener that accepted it. */
export interface ConnectionContext {
  readonly vhost: AmqpVhost;
  readonly limits: AmqpLimits;
  readonly stats: AmqpStats;
  readonly logger: Logger;
  /** Server properties announced in connection.start. */
  readonly serverProperties: FieldTable;
  /** The connection's number on this node (part of its consumers' ids). */
  readonly serial: number;
  /** This process's instance tag (part of its consumers' ids, so that a restarted node never reuses one). */
  readonly instance: string;
  /** Called once the connection has closed and cleaned up. */
  readonly onClosed: (c: AmqpConnection) => void;
}

const utf8 = new TextEncoder();

/** Reads a PLAIN response: [authzid] NUL authcid NUL passwd (RFC 4616). */
export function parsePlain(response: Uint8Array): { user: string; password: string } | null {
  const first = response.indexOf(0);
  if (first < 0) return null;
  const second = response.indexOf(0, first + 1);
  if (second < 0 || response.indexOf(0, second + 1) >= 0) return null;
  const dec = new TextDecoder('utf-8', { fatal: true });
  try {
    return { user: dec.decode(response.subarray(first + 1, second)), password: dec.decode(response.subarray(second + 1)) };
  } catch {
    return null;
  }
}

/** A bool in a client's capabilities table. */
function capability(props: FieldTable, name: string): boolean {
  const caps = props.find(([k]) => k === 'capabilities')?.[1];
  if (caps?.type !== 'table') return false;
  const v = caps.value.find(([k]) => k === name)?.[1];
  return v?.type === 'bool' && v.value;
}

export class AmqpConnection {
  private state: State = 'header';
  private readonly reader: FrameReader;
  private readonly channels = new Map<number, AmqpChannel>();
  private headerBytes: Buffer = Buffer.alloc(0);
  frameMax: number;
  private channelMax: number;
  private heartbeatMs = 0;
  private lastReceived = Date.now();
  private lastSent = Date.now();
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private deadline: NodeJS.Timeout | null = null;
  private pendingPublishes = 0;
  private readPaused = false;
  /** Who logged in; null until the login succeeds. */
  user: AmqpUser | null = null;
  /** The client asked for basic.cancel from the server (consumer_cancel_notify). */
  cancelNotify = false;
  readonly log: Logger;
  readonly remote: string;

  constructor(readonly socket: Socket, readonly ctx: ConnectionContext) {
    this.reader = new FrameReader(ctx.limits.frameMax);
    this.frameMax = ctx.limits.frameMax;
    this.channelMax = ctx.limits.channelMax;
    this.remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`;
    this.log = ctx.logger.child({ conn: ctx.serial, remote: this.remote });
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.log.debug({ err: err.message }, 'amqp: socket error'));
    socket.on('close', () => this.cleanUp('socket closed'));
    this.deadline = setTimeout(() => {
      if (this.state !== 'ready' && this.state !== 'closed') this.abort('handshake not finished in time');
    }, ctx.limits.handshakeTimeoutMs);
    this.deadline.unref();
  }

  /** The node's id and this connection's number: consumers' ids start with it. */
  get idPrefix(): string {
    return `${this.ctx.vhost.nodeId}.${this.ctx.instance}.a${this.ctx.serial}`;
  }

  /** The socket is gone (a check the compiler cannot narrow away: handlers change the state). */
  get closed(): boolean {
    return this.state === 'closed';
  }


  // ---- input ----

  private onData(chunk: Buffer): void {
    if (this.state === 'closed') return;
    this.lastReceived = Date.now();
    try {
      if (this.state === 'header') {
        this.headerBytes = this.headerBytes.length === 0 ? chunk : Buffer.concat([this.headerBytes, chunk]);
        const h = checkProtocolHeader(this.headerBytes);
        if (h === 'incomplete') return;
        if (h === 'wrong') {
          this.ctx.stats.refused('protocol header');
          this.log.debug('amqp: wrong protocol header; answering with ours');
          this.socket.end(PROTOCOL_HEADER);
          this.state = 'closed';
          return;
        }
        const rest = this.headerBytes.subarray(PROTOCOL_HEADER.length);
        this.headerBytes = Buffer.alloc(0);
        this.sendStart();
        if (rest.length === 0) return;
        chunk = rest;
      }
      this.reader.push(chunk);
      for (let f = this.reader.next(); f !== null; f = this.reader.next()) {
        if (this.closed) return;
        try {
          this.onFrame(f.type, f.channel, f.payload);
        } catch (e) {
          this.fail(e, f.channel);
        }
      }
    } catch (e) {
      this.fail(e, 0);
    }
  }

  private onFrame(type: number, ch: number, payload: Buffer): void {
    if (type === FRAME_HEARTBEAT) {
      if (ch !== 0) throw new AmqpError(REPLY.FRAME_ERROR, `heartbeat frame on channel ${ch}`);
      return;
    }
    if (this.state === 'closing') {
      if (type === FRAME_METHOD && ch === 0) {
        const m = decodeMethod(payload);
        if (m.name === 'connection.close-ok' || m.name === 'connection.close') {
          if (m.name === 'connection.close') this.write(encodeMethodFrame(0, { name: 'connection.close-ok' }));
          this.finish('closed by us');
        }
      }
      return;
    }
    if (type === FRAME_METHOD) {
      const m = decodeMethod(payload);
      if (ch === 0) this.onConnectionMethod(m);
      else this.onChannelMethod(ch, m);
      return;
    }
    if (type === FRAME_HEADER || type === FRAME_BODY) {
      const c = this.channels.get(ch);
      if (c === undefined || this.state !== 'ready') throw new AmqpError(REPLY.UNEXPECTED_FRAME, `content frame on channel ${ch}, which is not open`);
      if (type === FRAME_HEADER) c.onContentHeader(payload);
      else c.onContentBody(payload);
      return;
    }
    throw new AmqpError(REPLY.FRAME_ERROR, `frame type ${type}`);
  }

  private expect(name: string, m: AmqpMethod): never {
    const ids = methodIds(m.name);
    throw new AmqpError(REPLY.COMMAND_INVALID, `expected '${name}', got '${m.name}'`, ids.classId, ids.methodId);
  }

  private onConnectionMethod(m: AmqpMethod): void {
    switch (this.state) {
      case 'startOk':
        if (m.name !== 'connection.start-ok') return this.expect('connection.start-ok', m);
        return this.onStartOk(m);
      case 'login':
        return this.expect('nothing while the login is checked', m);
      case 'tuneOk':
        if (m.name !== 'connection.tune-ok') return this.expect('connection.tune-ok', m);
        return this.onTuneOk(m);
      case 'open':
        if (m.name !== 'connection.open') return this.expect('connection.open', m);
        if (m.virtualHost !== '/') throw new AmqpError(REPLY.NOT_ALLOWED, `vhost ${m.virtualHost} not found`, 10, 40);
        this.state = 'ready';
        if (this.deadline !== null) clearTimeout(this.deadline);
        this.ctx.stats.connectionsOpened++;
        this.write(encodeMethodFrame(0, { name: 'connection.open-ok', knownHosts: '' }));
        this.log.debug({ user: this.user?.name }, 'amqp: connection open');
        return;
      case 'ready':
        if (m.name === 'connection.close') {
          this.log.debug({ code: m.replyCode, text: m.replyText }, 'amqp: client closed the connection');
          this.write(encodeMethodFrame(0, { name: 'connection.close-ok' }));
          this.finish('closed by the client');
          return;
        }
        if (m.name === 'connection.update-secret') throw new AmqpError(REPLY.NOT_IMPLEMENTED, 'connection.update-secret', 10, 70);
        if (m.name === 'connection.blocked' || m.name === 'connection.unblocked') return;
        throw new AmqpError(REPLY.COMMAND_INVALID, `unexpected '${m.name}' on channel 0`, methodIds(m.name).classId, methodIds(m.name).methodId);
      case 'header':
      case 'closing':
      case 'closed':
        return;
      default:
        return this.expect('?', m);
    }
  }

  private onChannelMethod(ch: number, m: AmqpMethod): void {
    if (this.state !== 'ready') return this.expect('connection.open', m);
    const c = this.channels.get(ch);
    if (m.name === 'channel.open') {
      if (c !== undefined) throw new AmqpError(REPLY.CHANNEL_ERROR, `second 'channel.open' seen on channel ${ch}`, 20, 10);
      if (ch > this.channelMax) throw new AmqpError(REPLY.NOT_ALLOWED, `channel ${ch} is above channel_max ${this.channelMax}`, 20, 10);
      this.channels.set(ch, new AmqpChannel(this, ch));
      this.ctx.stats.channelsOpened++;
      this.write(encodeMethodFrame(ch, { name: 'channel.open-ok', channelId: new Uint8Array(0) }));
      return;
    }
    if (c === undefined) {
      const ids = methodIds(m.name);
      throw new AmqpError(REPLY.CHANNEL_ERROR, `expected 'channel.open' on channel ${ch}, got '${m.name}'`, ids.classId, ids.methodId);
    }
    if (m.name.startsWith('connection.')) throw new AmqpError(REPLY.COMMAND_INVALID, `'${m.name}' on channel ${ch}`);
    c.onMethod(m);
  }

  // ---- handshake ----

  private sendStart(): void {
    this.state = 'startOk';
    this.write(encodeMethodFrame(0, {
      name: 'connection.start', versionMajor: 0, versionMinor: 9, serverProperties: this.ctx.serverProperties,
      mechanisms: utf8.encode('PLAIN'), locales: utf8.encode('en_US'),
    }));
  }

  private onStartOk(m: Extract<AmqpMethod, { name: 'connection.start-ok' }>): void {
    this.cancelNotify = capability(m.clientProperties, 'consumer_cancel_notify');
    if (m.mechanism !== 'PLAIN') throw new AmqpError(REPLY.COMMAND_INVALID, `unknown authentication mechanism '${m.mechanism}'`, 10, 11);
    const creds = parsePlain(m.response);
    const refuse = (why: string): void => {
      this.ctx.stats.loginsRefused++;
      this.log.info({ why }, 'amqp: login refused');
      this.close(new AmqpError(REPLY.ACCESS_REFUSED, 'Login was refused using authentication mechanism PLAIN. For details see the broker logfile.', 10, 11));
    };
    if (creds === null) return refuse('malformed PLAIN response');
    this.state = 'login';
    this.ctx.vhost.login(creds.user, creds.password, this.socket.remoteAddress ?? '').then((outcome) => {
      if (this.state !== 'login') return;
      if (outcome.type !== 'ok') return refuse(outcome.type === 'throttled' ? 'too many failed logins from this address' : `user '${creds.user}': ${outcome.type}`);
      this.user = outcome.user;
      this.state = 'tuneOk';
      this.write(encodeMethodFrame(0, {
        name: 'connection.tune', channelMax: this.ctx.limits.channelMax, frameMax: this.ctx.limits.frameMax, heartbeat: this.ctx.limits.heartbeatSeconds,
      }));
    }, (err: unknown) => {
      if (this.state !== 'login') return;
      this.log.warn({ err: (err as Error).message }, 'amqp: login could not be checked');
      this.close(new AmqpError(REPLY.INTERNAL_ERROR, 'the login could not be checked; try again', 10, 11));
    });
  }

  private onTuneOk(m: Extract<AmqpMethod, { name: 'connection.tune-ok' }>): void {
    const ours = this.ctx.limits;
    if (m.frameMax !== 0 && m.frameMax < 4096) throw new AmqpError(REPLY.NOT_ALLOWED, `frame_max=${m.frameMax} < 4096 min size`, 10, 31);
    if (m.frameMax > ours.frameMax) throw new AmqpError(REPLY.NOT_ALLOWED, `frame_max=${m.frameMax} > ${ours.frameMax} max size`, 10, 31);
    if (m.channelMax > ours.channelMax) throw new AmqpError(REPLY.NOT_ALLOWED, `channel_max=${m.channelMax} > ${ours.channelMax} max`, 10, 31);
    this.frameMax = m.frameMax === 0 ? ours.frameMax : m.frameMax;
    this.reader.setFrameMax(this.frameMax);
    this.channelMax = m.channelMax === 0 ? ours.channelMax : m.channelMax;
    this.heartbeatMs = m.heartbeat * 1000;
    if (this.heartbeatMs > 0) {
      const every = Math.max(250, Math.floor(this.heartbeatMs / 2));
      this.heartbeatTimer = setInterval(() => this.onHeartbeatTimer(), every);
      this.heartbeatTimer.unref();
    }
    this.state = 'open';
  }

  private onHeartbeatTimer(): void {
    const now = Date.now();
    // RabbitMQ's rule: a peer silent for two intervals is gone (not while we are the ones not reading).
    if (!this.readPaused && now - this.lastReceived > 2 * this.heartbeatMs) {
      this.ctx.stats.missedHeartbeats++;
      this.abort(`missed heartbeats from client, timeout: ${this.heartbeatMs / 1000}s`);
      return;
    }
    if (now - this.lastSent >= this.heartbeatMs / 2) this.write(HEARTBEAT_FRAME);
  }

  // ---- output ----

  /** Writes frames to the client; a client that has stopped reading for too long is disconnected. */
  write(buf: Buffer): void {
    if (this.state === 'closed') return;
    this.lastSent = Date.now();
    this.socket.write(buf);
    if (this.socket.writableLength > this.ctx.limits.outputMaxBytes) {
      this.ctx.stats.slowClients++;
      this.abort(`the client has not read ${this.socket.writableLength} bytes of output`);
    }
  }

  /** Corks the socket until the end of this tick: the frames of a delivery, or of many, leave in one write. */
  cork(): void {
    if (this.socket.writableCorked > 0 || this.state === 'closed') return;
    this.socket.cork();
    process.nextTick(() => this.socket.uncork());
  }

  /** A publish waits for its commit: past the limit, stop reading the socket. */
  publishStarted(): void {
    if (++this.pendingPublishes >= this.ctx.limits.maxPendingPublishes && !this.readPaused) {
      this.readPaused = true;
      this.socket.pause();
    }
  }

  publishSettled(): void {
    this.pendingPublishes--;
    if (this.readPaused && this.pendingPublishes < this.ctx.limits.maxPendingPublishes / 2) {
      this.readPaused = false;
      this.lastReceived = Date.now(); // the silence was ours
      this.socket.resume();
    }
  }

  // ---- errors and closing ----

  /** Routes a failure: soft AmqpErrors close their channel, everything else closes the connection. */
  fail(e: unknown, ch: number): void {
    if (e instanceof AmqpCodecError) {
      this.ctx.stats.refused(replyName(e.replyCode));
      this.close(new AmqpError(e.replyCode, e.message));
      return;
    }
    if (!(e instanceof AmqpError)) {
      this.ctx.stats.internalErrors++;
      this.log.error({ err: e }, 'amqp: unexpected error');
      this.close(new AmqpError(REPLY.INTERNAL_ERROR, 'internal error'));
      return;
    }
    this.ctx.stats.refused(replyName(e.code));
    this.log.debug({ code: e.code, channel: ch }, e.replyText);
    const c = this.channels.get(ch);
    if (!e.hard && c !== undefined) c.closeWith(e);
    else this.close(e);
  }

  /** Closes the connection with an error (connection.close), waiting a second for close-ok. */
  close(e: AmqpError): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    if (this.state === 'header') {
      this.abort(e.message);
      return;
    }
    this.write(encodeMethodFrame(0, { name: 'connection.close', replyCode: e.code, replyText: e.replyText, classId: e.classId, methodId: e.methodId }));
    this.state = 'closing';
    this.releaseChannels();
    const t = setTimeout(() => this.finish('close-ok not received'), 1000);
    t.unref();
  }

  /** Closes the connection as the node stops (320 CONNECTION_FORCED, as RabbitMQ on shutdown). */
  shutdown(): void {
    this.close(new AmqpError(REPLY.CONNECTION_FORCED, 'broker forced connection closure with reason \'shutdown\''));
    this.finish('node stopping');
  }

  /** The channel is gone (closed by either side): forget it. */
  channelClosed(ch: number): void {
    this.channels.delete(ch);
  }

  private releaseChannels(): void {
    for (const c of this.channels.values()) c.release();
    this.channels.clear();
  }

  private finish(why: string): void {
    if (this.state === 'closed') return;
    this.socket.end();
    this.cleanUp(why);
  }

  private abort(why: string): void {
    this.log.info({ why }, 'amqp: connection dropped');
    this.socket.destroy();
    this.cleanUp(why);
  }

  private cleanUp(why: string): void {
    if (this.state === 'closed') return;
    const wasOpen = this.state === 'ready' || this.state === 'closing';
    this.state = 'closed';
    if (this.deadline !== null) clearTimeout(this.deadline);
    if (this.heartbeatTimer !== null) clearInterval(this.heartbeatTimer);
    this.releaseChannels();
    if (wasOpen) this.log.debug({ why }, 'amqp: connection closed');
    this.ctx.onClosed(this);
  }

  /** Server properties as RabbitMQ announces them (clients read capabilities from them). */
  static serverProperties(version: string, clusterName: string): FieldTable {
    const bool = (value: boolean): FieldValue => ({ type: 'bool', value });
    return [
      ['capabilities', {
        type: 'table', value: [
          ['publisher_confirms', bool(true)], ['exchange_exchange_bindings', bool(false)], ['basic.nack', bool(true)],
          ['consumer_cancel_notify', bool(true)], ['connection.blocked', bool(false)], ['consumer_priorities', bool(false)],
          ['authentication_failure_close', bool(true)], ['per_consumer_qos', bool(true)], ['direct_reply_to', bool(false)],
        ],
      }],
      ['cluster_name', fieldString(clusterName)],
      ['product', fieldString('quorumlog')],
      ['version', fieldString(version)],
      ['platform', fieldString(`Node.js ${process.version}`)],
      ['information', fieldString('quorum queues on a Raft log; see docs/QUEUES.md')],
    ];
  }
}
