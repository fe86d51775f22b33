// Every call a protocol worker does not serve itself (watches, leases,
// membership, maintenance, queues, metadata, the admin Status, compressed or
// unknown calls) is passed, stream for stream, to the Raft process's own
// grpc-js server over one HTTP/2 connection on a private Unix socket: request
// headers and body up, response headers, body and trailers down, with flow
// control both ways and cancellation in either direction. The worker parses
// nothing of these calls; grpc-js in the Raft process answers them as before.

import http2 from 'node:http2';
import net from 'node:net';
import type { Logger } from 'pino';
import { encodeGrpcMessage, GRPC_STATUS } from './grpc-frame.js';

const { NGHTTP2_CANCEL, NGHTTP2_INTERNAL_ERROR, NGHTTP2_FLAG_END_STREAM } = http2.constants;

/** Request headers not passed on: the client session sets its own :authority and :scheme. */
const DROPPED_REQUEST = new Set([':authority', ':scheme']);
/** Response headers not passed on: the server session adds its own date. */
const DROPPED_RESPONSE = new Set(['date']);

function copyHeaders(from: http2.IncomingHttpHeaders, dropped: ReadonlySet<string>): http2.OutgoingHttpHeaders {
  const out: http2.OutgoingHttpHeaders = {};
  for (const k of Object.keys(from)) if (!dropped.has(k)) out[k] = from[k];
  return out;
}

/** Answers a call that never reached the upstream with a gRPC status (trailers-only). */
export function refuseStream(stream: http2.ServerHttp2Stream, code: number, message: string): void {
  if (stream.destroyed || stream.closed) return;
  if (stream.headersSent) {
    stream.close(NGHTTP2_INTERNAL_ERROR);
    return;
  }
  stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(code), 'grpc-message': encodeGrpcMessage(message) }, { endStream: true });
}

export class UpstreamProxy {
  private session: http2.ClientHttp2Session | null = null;
  private closed = false;
  /** Calls passed on (a counter for /metrics). */
  proxied = 0;

  constructor(private readonly socketPath: string, private readonly log: Logger) {}

  private connect(): http2.ClientHttp2Session {
    const s = this.session;
    if (s !== null && !s.closed && !s.destroyed) return s;
    const session = http2.connect('http://quorumlog-node', { createConnection: () => net.connect(this.socketPath) });
    session.on('error', (err) => this.log.warn({ err }, 'protocol worker: connection to the node\'s gRPC server failed'));
    session.on('close', () => { if (this.session === session) this.session = null; });
    this.session = session;
    return session;
  }

  /** Passes one call to the node's gRPC server and its answer back. */
  forward(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    if (this.closed) {
      refuseStream(stream, GRPC_STATUS.UNAVAILABLE, 'etcdserver: server stopped');
      return;
    }
    let up: http2.ClientHttp2Stream;
    try {
      up = this.connect().request(copyHeaders(headers, DROPPED_REQUEST), { endStream: false });
    } catch (err) {
      this.log.warn({ err }, 'protocol worker: cannot open a call to the node\'s gRPC server');
      refuseStream(stream, GRPC_STATUS.UNAVAILABLE, 'etcdserver: the node\'s gRPC server cannot be reached');
      return;
    }
    this.proxied++;
    let trailers: http2.IncomingHttpHeaders | null = null;
    let trailersOnly = false;
    stream.on('error', () => { /* the client went away: 'close' cancels upstream */ });
    up.on('error', () => { /* upstream reset: 'close' ends the client's call */ });
    stream.pipe(up);
    up.on('response', (h, flags) => {
      if (stream.destroyed || stream.closed) return;
      if ((flags & NGHTTP2_FLAG_END_STREAM) !== 0) {
        trailersOnly = true;
        stream.respond(copyHeaders(h, DROPPED_RESPONSE), { endStream: true });
        return;
      }
      stream.respond(copyHeaders(h, DROPPED_RESPONSE), { waitForTrailers: true });
      up.pipe(stream);
    });
    up.on('trailers', (t) => { trailers = t; });
    stream.on('wantTrailers', () => {
      stream.sendTrailers(trailers !== null ? copyHeaders(trailers, DROPPED_RESPONSE)
        : { 'grpc-status': String(GRPC_STATUS.UNAVAILABLE), 'grpc-message': encodeGrpcMessage('etcdserver: the call ended without a status') });
    });
    up.on('close', () => {
      if (stream.destroyed || stream.closed || trailersOnly) return;
      if (!stream.headersSent) refuseStream(stream, GRPC_STATUS.UNAVAILABLE, 'etcdserver: the node\'s gRPC server dropped the call');
      else if (trailers === null) stream.close(NGHTTP2_INTERNAL_ERROR);
    });
    stream.on('close', () => { if (!up.closed && !up.destroyed) up.close(NGHTTP2_CANCEL); });
  }

  close(): void {
    this.closed = true;
    this.session?.close();
  }
}
