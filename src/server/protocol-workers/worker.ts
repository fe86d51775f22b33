// A client-protocol worker: a child process of a node, forked through Node's
// cluster module (host.ts), that shares the node's client port with its
// sibling workers. It terminates TLS, HTTP/2 and gRPC for every client
// connection; decodes the hot etcd methods itself (hot-methods.ts) and hands
// them to the Raft process in one batch per event-loop turn (messages.ts);
// and passes every other call to the Raft process's own gRPC server
// (proxy.ts). It keeps no state that matters: when it dies, its clients'
// connections drop, their calls in flight have an unknown outcome (as with
// any lost connection), and the node forks a new worker.

import http2 from 'node:http2';
import { Socket, type AddressInfo } from 'node:net';
import { pino, type Logger } from 'pino';
import { GrpcFrameError, GRPC_STATUS, frameMessage, UnaryBody } from './grpc-frame.js';
import { encodeBatch, HOT_CHANNEL_FD, HotFrameError, HotFrameReader } from './hot-channel.js';
import { HOT_PATHS, HotMethods, type HotMethod, type Refusal } from './hot-methods.js';
import type { PrimaryToWorker, WorkerIdentity, WorkerInit, WorkerRequest, WorkerResult, WorkerToPrimary } from './messages.js';
import { forEachPackedPut, PackedWritesBuilder } from './packed.js';
import { refuseStream, UpstreamProxy } from './proxy.js';
import { CLIENT_ADDRESS_HEADER, CLIENT_CERT_CN_HEADER, socketCertCommonName } from '../auth/credentials.js';

/** How often each client connection is pinged, and how long its answer may take (grpc-js's settings in the node). */
const KEEPALIVE_INTERVAL_MS = 10_000;
const KEEPALIVE_TIMEOUT_MS = 5_000;
const RESPONSE_HEADERS = { ':status': 200, 'content-type': 'application/grpc' } as const;
const OK_TRAILERS = { 'grpc-status': '0' } as const;

function send(m: WorkerToPrimary): void {
  process.send?.(m);
}

/** The hot channel to the node (hot-channel.ts): batches out, results in. */
const hot = new Socket({ fd: HOT_CHANNEL_FD, readable: true, writable: true });

/** A hot call waiting for its answer from the Raft process. */
interface Waiting {
  readonly method: HotMethod;
  readonly stream: http2.ServerHttp2Stream;
}

class ProtocolWorker {
  private readonly server: http2.Http2Server | http2.Http2SecureServer;
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private readonly hot: HotMethods;
  private readonly proxy: UpstreamProxy;
  private readonly waiting = new Map<number, Waiting>();
  private nextId = 1;
  private batch: WorkerRequest[] = [];
  /** Identities of this turn's requests that carry one (messages.ts WorkerIdentity). */
  private identities: WorkerIdentity[] = [];
  private readonly sessionCerts = new WeakMap<http2.Http2Session, string | undefined>();
  private readonly writes = new PackedWritesBuilder();
  private flushScheduled = false;
  private invalid = 0;
  private refused = 0;
  private countersScheduled = false;
  private readonly pinger: NodeJS.Timeout;

  constructor(private readonly init: WorkerInit, private readonly log: Logger) {
    this.hot = new HotMethods({ clusterId: init.clusterId, memberId: init.memberId });
    this.proxy = new UpstreamProxy(init.upstreamSocket, log);
    this.server = init.tls === null ? http2.createServer()
      : http2.createSecureServer({ cert: init.tls.cert, key: init.tls.key, ca: init.tls.ca, requestCert: true, rejectUnauthorized: true });
    this.server.on('session', (s: http2.ServerHttp2Session) => {
      this.sessions.add(s);
      this.countersChanged();
      s.on('close', () => {
        this.sessions.delete(s);
        this.countersChanged();
      });
      s.on('error', (err) => this.log.debug({ err }, 'client connection failed'));
    });
    // Small RPC answers go out at once: no Nagle delay between a response and its trailers.
    this.server.on('connection', (socket: import('node:net').Socket) => socket.setNoDelay(true));
    this.server.on('stream', (stream, headers) => this.onStream(stream, headers));
    this.server.on('sessionError', (err) => this.log.debug({ err }, 'client session error'));
    this.server.on('tlsClientError', (err) => this.log.info({ err: err.message }, 'client refused at the TLS handshake'));
    this.pinger = setInterval(() => this.pingAll(), KEEPALIVE_INTERVAL_MS);
  }

  listen(): void {
    const onError = (err: NodeJS.ErrnoException): void => {
      send({ t: 'listenFailed', code: typeof err.code === 'string' ? err.code : null, message: err.message });
    };
    this.server.once('error', onError);
    this.server.listen(this.init.port, this.init.host, () => {
      this.server.off('error', onError);
      this.server.on('error', (err) => this.log.error({ err }, 'client listener failed'));
      send({ t: 'listening', port: (this.server.address() as AddressInfo).port });
    });
  }

  private onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    const path = headers[':path'];
    const method = path === undefined ? undefined : HOT_PATHS.get(path);
    const encoding = headers['grpc-encoding'];
    // Identity headers are the worker's to set, never the client's (src/server/auth/credentials.ts).
    delete headers[CLIENT_CERT_CN_HEADER];
    delete headers[CLIENT_ADDRESS_HEADER];
    const certCn = this.certCommonName(stream.session);
    if (method === undefined || (encoding !== undefined && encoding !== 'identity')) {
      if (certCn !== undefined) headers[CLIENT_CERT_CN_HEADER] = certCn;
      const address = stream.session?.socket?.remoteAddress;
      if (address !== undefined) headers[CLIENT_ADDRESS_HEADER] = address;
      this.proxy.forward(stream, headers);
      this.countersChanged();
      return;
    }
    stream.on('error', (err) => this.log.debug({ err }, 'client stream failed'));
    if (this.waiting.size >= this.init.maxInflight) {
      this.refused++;
      this.countersChanged();
      stream.resume();
      refuseStream(stream, GRPC_STATUS.RESOURCE_EXHAUSTED, 'etcdserver: too many requests');
      return;
    }
    const body = new UnaryBody(this.init.maxMessageBytes);
    let failed = false;
    stream.on('data', (chunk: Buffer) => {
      if (failed) return;
      try {
        body.push(chunk);
      } catch (err) {
        failed = true;
        this.refuse(stream, err);
      }
    });
    stream.on('end', () => {
      if (failed) return;
      let message: Buffer;
      try {
        message = body.finish();
      } catch (err) {
        this.refuse(stream, err);
        return;
      }
      const decoded = this.hot.decode(method, message);
      if ('code' in decoded) {
        this.invalid++;
        this.countersChanged();
        refuseStream(stream, decoded.code, decoded.message);
        return;
      }
      // Ids are u32 on the wire (packed.ts): they wrap, skipping 0; ids in flight (at most maxInflight) never meet.
      const id = this.nextId;
      this.nextId = this.nextId >= 0xffff_ffff ? 1 : this.nextId + 1;
      this.waiting.set(id, { method, stream });
      const token = headers['token'];
      if (typeof token === 'string' || certCn !== undefined) {
        this.identities.push({ id, ...(typeof token === 'string' ? { token } : {}), ...(certCn !== undefined ? { certCommonName: certCn } : {}) });
      }
      stream.on('close', () => this.waiting.delete(id));
      if (decoded.op === 'write') this.writes.add(id, decoded.command);
      else this.batch.push({ ...decoded, id });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** The verified client certificate's common name of a TLS session, looked up once per session. */
  private certCommonName(session: http2.Http2Session | undefined): string | undefined {
    if (session === undefined || this.init.tls === null) return undefined;
    if (this.sessionCerts.has(session)) return this.sessionCerts.get(session);
    const cn = socketCertCommonName(session.socket);
    this.sessionCerts.set(session, cn);
    return cn;
  }

  private refuse(stream: http2.ServerHttp2Stream, err: unknown): void {
    if (!(err instanceof GrpcFrameError)) throw err;
    this.refused++;
    this.countersChanged();
    refuseStream(stream, err.code, err.message);
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.batch.length === 0 && this.writes.count === 0) return;
    const requests = this.batch;
    this.batch = [];
    const identities = this.identities.length === 0 ? null : this.identities;
    if (identities !== null) this.identities = [];
    hot.write(encodeBatch(this.writes.take(), requests, identities));
  }

  /** Answers the plain puts whose results came back packed. */
  onPuts(puts: Uint8Array): void {
    forEachPackedPut(puts, (id, raftTerm, revision) => {
      const w = this.waiting.get(id);
      if (w === undefined) return;
      this.waiting.delete(id);
      const stream = w.stream;
      if (stream.destroyed || stream.closed) return;
      if (w.method !== 'Put') {
        this.log.error({ method: w.method }, 'protocol worker: a plain put\'s answer for another method');
        refuseStream(stream, GRPC_STATUS.INTERNAL, `etcdserver: internal error in ${w.method}`);
        return;
      }
      this.respond(stream, this.hot.framedPlainPut(revision, raftTerm));
    });
  }

  private respond(stream: http2.ServerHttp2Stream, framed: Buffer): void {
    stream.respond(RESPONSE_HEADERS, { waitForTrailers: true });
    stream.once('wantTrailers', () => stream.sendTrailers(OK_TRAILERS));
    stream.end(framed);
  }

  /** Answers the calls whose results came back (a call whose client went away meanwhile is skipped). */
  onResults(results: readonly WorkerResult[]): void {
    for (const r of results) {
      const w = this.waiting.get(r.id);
      if (w === undefined) continue;
      this.waiting.delete(r.id);
      const stream = w.stream;
      if (stream.destroyed || stream.closed) continue;
      let out: Uint8Array | Refusal;
      try {
        out = this.hot.encode(w.method, r);
      } catch (err) {
        this.log.error({ err, method: w.method }, 'protocol worker: cannot encode a response');
        out = { code: GRPC_STATUS.INTERNAL, message: `etcdserver: internal error in ${w.method}` };
      }
      if (!(out instanceof Uint8Array)) {
        refuseStream(stream, out.code, out.message);
        continue;
      }
      this.respond(stream, frameMessage(out));
    }
  }

  private pingAll(): void {
    for (const s of this.sessions) {
      if (s.closed || s.destroyed) continue;
      const timer = setTimeout(() => {
        this.log.info('client connection did not answer a keepalive ping; closing it');
        s.destroy();
      }, KEEPALIVE_TIMEOUT_MS);
      try {
        s.ping((err) => {
          clearTimeout(timer);
          if (err !== null && !s.destroyed) s.destroy();
        });
      } catch {
        clearTimeout(timer);
      }
    }
  }

  /** Reports the counters once this turn is over: only when they change, so an idle worker sends nothing. */
  private countersChanged(): void {
    if (this.countersScheduled) return;
    this.countersScheduled = true;
    setImmediate(() => {
      this.countersScheduled = false;
      this.sendCounters();
    });
  }

  private sendCounters(): void {
    send({ t: 'counters', counters: { connections: this.sessions.size, invalid: this.invalid, refused: this.refused, proxied: this.proxy.proxied } });
  }

  /** Stops accepting; lets calls in flight end within graceMs; then exits. */
  close(graceMs: number): void {
    clearInterval(this.pinger);
    this.sendCounters();
    this.server.close();
    for (const s of this.sessions) s.close();
    const exit = (): void => {
      this.proxy.close();
      process.exit(0);
    };
    const timer = setTimeout(() => {
      for (const s of this.sessions) s.destroy();
      exit();
    }, graceMs);
    const check = setInterval(() => {
      if (this.sessions.size === 0) {
        clearTimeout(timer);
        clearInterval(check);
        exit();
      }
    }, 20);
  }
}

let worker: ProtocolWorker | null = null;
let logger: Logger = pino({ base: { component: 'protocol-worker' } });

process.on('message', (m: PrimaryToWorker) => {
  switch (m.t) {
    case 'init':
      logger = pino({ level: m.init.logLevel, base: { node: m.init.nodeId, component: 'protocol-worker', worker: m.init.index, pid: process.pid } });
      worker = new ProtocolWorker(m.init, logger);
      worker.listen();
      break;
    case 'close':
      if (worker === null) process.exit(0);
      else worker.close(m.graceMs);
      break;
  }
});
const reader = new HotFrameReader((f) => {
  if (f.kind !== 'results') throw new HotFrameError(`the node sent ${f.kind}`);
  if (f.results.puts !== null) worker?.onPuts(f.results.puts);
  worker?.onResults(f.results.results);
});
hot.on('data', (chunk: Buffer) => reader.push(chunk)); // a malformed frame from the node is a bug: uncaughtException below
hot.on('error', (err) => logger.debug({ err }, 'hot channel failed'));
send({ t: 'ready' });
// Ctrl-C in a terminal signals the whole process group: the node stops its workers itself, in order (a worker
// that died first would be reported, and replaced, as a crash).
process.on('SIGINT', () => { /* the node sends 'close' */ });
// The node is gone (killed, or crashed): so is the reason to serve.
process.on('disconnect', () => process.exit(0));
process.on('uncaughtException', (err) => {
  logger.fatal({ err }, 'protocol worker: unexpected error; exiting (the node starts another)');
  process.exit(70);
});
