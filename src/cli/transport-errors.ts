// Transport failures of the `quorumlog` client verbs in a few words. A
// verb aimed at a wrong port, a stopped node, a TLS port in plain text or a
// server that is not quorumlog gets a gRPC error whose text is grpc-js's
// ("14 UNAVAILABLE: No connection established. Last error: Protocol error
// (2026-…). Resolution note: "). This module is the one place that turns
// such an error into a short reason ("connection refused", "timed out",
// "TLS required: …"), for `quorumlog status`'s table and for the one line on
// stderr that every other verb prints (verbErrorLine, called by the
// program's top-level handler in quorumlog.ts). A verb that tries several
// endpoints collects what each one did into EndpointsUnreachableError.
//
// An answer from a node (etcd's "etcdserver: …" errors, a rejected record)
// is not a transport failure: classifyTransportError returns null for it,
// and the verb reports it as it always has.

import * as grpc from '@grpc/grpc-js';
import tls from 'node:tls';
import { assertNever } from '../util/assert.js';

/** What went wrong between the CLI and one endpoint. */
export type TransportFailure =
  | { readonly kind: 'refused' }
  /** No connection within the deadline (connected: false), or a connection but no answer (true). */
  | { readonly kind: 'timeout'; readonly connected: boolean }
  | { readonly kind: 'host-not-found' }
  /** An operating-system error on the connection (EHOSTUNREACH, ECONNRESET, ...). */
  | { readonly kind: 'network'; readonly code: string }
  /** The port answered, but not in HTTP/2: an HTTP/1 server (the metrics port), or another protocol. */
  | { readonly kind: 'not-grpc' }
  /** The port closed the connection while it was being set up: the peer port, or a TLS port spoken to in plain text. */
  | { readonly kind: 'closed' }
  /** A 'closed' that a TLS handshake probe explained: the port wants TLS. */
  | { readonly kind: 'tls-required' }
  /** We spoke TLS; the port does not. */
  | { readonly kind: 'tls-not-spoken' }
  /** The TLS handshake failed (a certificate not trusted, refused, or for another name). */
  | { readonly kind: 'tls-rejected'; readonly reason: string }
  /** A gRPC server that does not serve what quorumlog serves. */
  | { readonly kind: 'not-quorumlog'; readonly method: string }
  /** The connection was lost during the call. */
  | { readonly kind: 'lost' };

/** Several endpoints tried, none answered: what each one did. */
export class EndpointsUnreachableError extends Error {
  override readonly name = 'EndpointsUnreachableError';
  readonly failures: readonly { readonly endpoint: string; readonly failure: TransportFailure }[];

  constructor(failures: readonly { readonly endpoint: string; readonly failure: TransportFailure }[], options?: ErrorOptions) {
    super(failures.length === 0 ? 'no endpoints given' : `no endpoint answered: ${failures.map((f) => `${f.endpoint} (${transportReason(f.failure)})`).join(', ')}`, options);
    this.failures = failures;
  }
}

/** The gRPC code and text of an error, whether grpc-js's own or a client's wrapper of it (QueueClientError, a `cause`). */
function grpcParts(err: unknown): { code: number; details: string } | null {
  for (let e: unknown = err, depth = 0; e !== null && typeof e === 'object' && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const o = e as { code?: unknown; details?: unknown; message?: unknown };
    if (typeof o.code === 'number' && o.code >= 0 && o.code <= 16) {
      const details = typeof o.details === 'string' && o.details !== '' ? o.details : typeof o.message === 'string' ? o.message : '';
      return { code: o.code, details };
    }
  }
  return null;
}

const NETWORK_CODES = ['EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EADDRNOTAVAIL', 'ECONNABORTED', 'EAI_AGAIN'] as const;

/** The transport failure `err` reports, or null when it is an answer from the server (or not a gRPC error at all). */
export function classifyTransportError(err: unknown): TransportFailure | null {
  const g = grpcParts(err);
  if (g === null) return null;
  const d = g.details;
  switch (g.code) {
    case grpc.status.UNAVAILABLE: {
      if (/^etcdserver:/.test(d)) return null; // the node answered (no leader, leader changed, ...)
      if (/Name resolution failed|ENOTFOUND/.test(d)) return { kind: 'host-not-found' };
      if (/ECONNREFUSED/.test(d)) return { kind: 'refused' };
      const net = NETWORK_CODES.find((c) => d.includes(c));
      if (net !== undefined) return { kind: 'network', code: net };
      if (/wrong version number|packet length too long|unknown protocol|record layer failure/i.test(d)) return { kind: 'tls-not-spoken' };
      const tlsProblem = /Last error: (?:Error: )?(.*?(?:certificate|SSL|TLS|handshake|altnames|Hostname\/IP)[^\n]*?)(?:\. Resolution note|$)/i.exec(d);
      if (tlsProblem !== null) return { kind: 'tls-rejected', reason: shortTls(tlsProblem[1] ?? '') };
      if (/Protocol error/.test(d)) return { kind: 'not-grpc' };
      if (/Failed to connect/.test(d)) return { kind: 'closed' };
      if (/Connection dropped|Connection closed|GOAWAY|Stream refused/i.test(d)) return { kind: 'lost' };
      if (/No connection established/.test(d)) return { kind: 'network', code: 'no connection' };
      return null;
    }
    case grpc.status.DEADLINE_EXCEEDED:
      if (!/^Deadline exceeded/.test(d)) return null; // a deadline the server reported (etcdserver: request timed out)
      return { kind: 'timeout', connected: /remote_addr=/.test(d) };
    case grpc.status.UNIMPLEMENTED: {
      const m = /does not implement the method (\S+)/.exec(d);
      return m === null ? null : { kind: 'not-quorumlog', method: m[1] as string };
    }
    case grpc.status.INTERNAL:
      return /Received RST_STREAM|Protocol error|Received HTTP status|Response message parsing error/.test(d) ? { kind: 'not-grpc' } : null;
    default:
      return null;
  }
}

/** OpenSSL's error text without its codes and source file: "self-signed certificate", "wrong version number". */
function shortTls(s: string): string {
  const openssl = /:error:[0-9A-F]+:[^:]*:[^:]*:([^:]+):/.exec(s);
  return (openssl?.[1] ?? s).trim().slice(0, 80);
}

/** A few words that say what went wrong ("connection refused"); no grpc-js text. */
export function transportReason(f: TransportFailure): string {
  switch (f.kind) {
    case 'refused': return 'connection refused';
    case 'timeout': return f.connected ? 'timed out (connected, no answer)' : 'timed out';
    case 'host-not-found': return 'host not found';
    case 'network': {
      const words: Record<string, string> = {
        EHOSTUNREACH: 'host unreachable', ENETUNREACH: 'network unreachable', ECONNRESET: 'connection reset', ETIMEDOUT: 'timed out',
        EPIPE: 'connection reset', EADDRNOTAVAIL: 'address not available', ECONNABORTED: 'connection aborted', EAI_AGAIN: 'host name lookup failed',
      };
      return words[f.code] ?? f.code;
    }
    case 'not-grpc': return 'not a client port (it does not speak gRPC; the metrics port?)';
    case 'closed': return 'connection closed at once (not a client port, or TLS needed?)';
    case 'tls-required': return 'TLS required (give --cacert, --cert and --key)';
    case 'tls-not-spoken': return 'TLS mismatch (the port does not speak TLS)';
    case 'tls-rejected': return `TLS handshake failed: ${f.reason}`;
    case 'not-quorumlog': return `not a quorumlog node (no ${f.method})`;
    case 'lost': return 'connection lost';
    default: return assertNever(f, 'transport failure');
  }
}

/**
 * Refines a 'closed' failure of a plain-text channel: if the endpoint
 * completes a TLS handshake, it wants TLS. Other failures come back as given.
 */
export async function refineFailure(f: TransportFailure, endpoint: string, plainText: boolean, timeoutMs = 1500): Promise<TransportFailure> {
  if (f.kind !== 'closed' || !plainText) return f;
  return (await speaksTls(endpoint, timeoutMs)) ? { kind: 'tls-required' } : f;
}

/** Whether `host:port` completes a TLS handshake (its certificate is not checked: this only asks which protocol it speaks). */
export function speaksTls(endpoint: string, timeoutMs: number): Promise<boolean> {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(endpoint);
  if (m === null) return Promise.resolve(false);
  return new Promise((resolve) => {
    const sock = tls.connect({ host: m[1], port: Number(m[2]), rejectUnauthorized: false, ALPNProtocols: ['h2'] });
    const done = (v: boolean): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.once('secureConnect', () => done(true));
    sock.once('error', () => done(false));
    sock.once('close', () => done(false));
  });
}

/** What a failed verb was doing, for its error line. */
export interface VerbContext {
  /** "put", "queue publish", ... */
  readonly verb: string;
  readonly endpoints: readonly string[];
  /** Whether the verb spoke TLS (--cacert ...). */
  readonly tls: boolean;
}

/**
 * The one line a failed verb prints on stderr, and its exit code: 2 when no
 * endpoint could be reached (etcdctl's ExitBadConnection); 1 for an answer
 * from the cluster (etcdctl's ExitError), given in its own words without
 * grpc-js's code prefix; 2 for anything else (bad flags, a local file), as
 * every uncaught failure of a verb has always exited.
 */
export async function verbErrorLine(err: unknown, ctx: VerbContext | null): Promise<{ line: string; code: number }> {
  const prefix = ctx === null ? 'quorumlog' : `quorumlog ${ctx.verb}`;
  if (err instanceof EndpointsUnreachableError) {
    if (err.failures.length === 0) return { line: `${prefix}: no endpoints given (--endpoints host:port,...)`, code: 2 };
    const parts = await Promise.all(err.failures.map(async (f) => `${f.endpoint}: ${transportReason(await refineFailure(f.failure, f.endpoint, ctx?.tls !== true))}`));
    return { line: `${prefix}: ${err.failures.length === 1 ? `cannot reach ${parts[0] ?? ''}` : `no endpoint answered (${parts.join('; ')})`}`, code: 2 };
  }
  const f = classifyTransportError(err);
  if (f !== null) {
    const endpoints = ctx?.endpoints ?? [];
    const only = endpoints.length === 1 ? endpoints[0] : undefined;
    if (only === undefined && endpoints.length > 1) {
      return { line: `${prefix}: no endpoint answered (${endpoints.join(', ')}); the last: ${transportReason(f)}`, code: 2 };
    }
    const refined = only === undefined ? f : await refineFailure(f, only, ctx?.tls !== true);
    return { line: `${prefix}: cannot reach ${only ?? 'the cluster'}: ${transportReason(refined)}`, code: 2 };
  }
  const g = grpcParts(err);
  const text = g !== null ? g.details : err instanceof Error ? err.message : String(err);
  return { line: `${prefix}: ${text.split('\n')[0] ?? ''}`, code: g !== null ? 1 : 2 };
}

/**
 * Calls `attempt` on each endpoint in order until one answers. A transport
 * failure moves on to the next endpoint, and so does an error that
 * `retryElsewhere` accepts (a node's "ask another", such as UNAVAILABLE
 * "etcdserver: no leader"); any other error is the cluster's answer and is
 * thrown at once. When none answered: the last such retryable error if
 * there was one, else EndpointsUnreachableError with what each endpoint did.
 */
export async function tryEndpoints<T>(endpoints: readonly string[], attempt: (endpoint: string) => Promise<T>,
  retryElsewhere: (err: unknown) => boolean = () => false): Promise<T> {
  const failures: { endpoint: string; failure: TransportFailure }[] = [];
  let answer: unknown = null;
  for (const endpoint of endpoints) {
    try {
      return await attempt(endpoint);
    } catch (e) {
      const f = classifyTransportError(e);
      if (f !== null) failures.push({ endpoint, failure: f });
      else if (retryElsewhere(e)) answer = e;
      else throw e;
    }
  }
  if (answer !== null) throw answer;
  throw new EndpointsUnreachableError(failures);
}

/** Whether `err` is a transport failure (a verb that reports its own errors lets these through to verbErrorLine). */
export function isTransportError(err: unknown): boolean {
  return err instanceof EndpointsUnreachableError || classifyTransportError(err) !== null;
}

let context: VerbContext | null = null;

/** Records what the running verb is (the program's preAction hook). */
export function setVerbContext(c: VerbContext | null): void {
  context = c;
}

/** What the running verb is, for verbErrorLine. */
export function verbContext(): VerbContext | null {
  return context;
}
