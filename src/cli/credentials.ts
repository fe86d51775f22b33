// Who the `quorumlog` verbs that talk to a cluster are: client TLS (the
// `--cacert`, `--cert` and `--key` flags, etcdctl's names, which a node with
// `clientTls` requires) and etcd auth (`--user name:password`, or `--user
// name` with `--password`, as etcdctl 3.4 takes them; QUORUMLOG_USER and
// QUORUMLOG_PASSWORD in the environment when the flags are not given). The
// program sets them once, before the verb runs (a commander preAction hook in
// quorumlog.ts): with a user, it calls etcd's Auth.Authenticate on the first
// endpoint that answers, and every gRPC channel the verb opens afterwards
// takes its credentials (clientCredentials) and its options (clientOptions:
// an interceptor that sends the token as the `token` metadata on every call,
// unary or stream) from here. One CLI invocation talks to one cluster with one
// identity. The password is never printed, and never sent but to Authenticate.
//
// A token lives for the server's authTokenTtlSeconds (300 s by default): a
// long-running verb (watch, queue consume, metadata follow) authenticates
// again before a call once its token is TOKEN_RENEW_AFTER_MS old, or after a
// call was refused "invalid auth token". A stream keeps the identity it opened with.

import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import type { Command } from 'commander';
import { loadEtcdProtos } from '../server/etcd/server.js';
import { tryEndpoints } from './transport-errors.js';

/** PEM file paths for mutual TLS. */
export interface ClientTlsFiles {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

/** A user of a cluster with auth on. */
export interface ClientUser {
  readonly name: string;
  readonly password: string;
}

/** --user / --password (or their environment variables) that do not make a user; the message never holds the password. */
export class ClientUserError extends Error {
  override readonly name = 'ClientUserError';
}

/** The environment variables read when --user / --password are not given. */
export const USER_ENV = 'QUORUMLOG_USER';
export const PASSWORD_ENV = 'QUORUMLOG_PASSWORD';
/** A token this old is renewed before the next call (etcd's default TTL is 300 s). */
export const TOKEN_RENEW_AFTER_MS = 60_000;
/** etcd's answer to a call whose token expired or no longer holds. */
const INVALID_TOKEN = 'etcdserver: invalid auth token';
/** etcd's answer to Authenticate while auth is off: the verb goes on without a token, as etcdctl does. */
const AUTH_NOT_ENABLED = 'etcdserver: authentication is not enabled';

let current: grpc.ChannelCredentials | null = null;

/** Adds --cacert, --cert, --key, --user and --password to a verb. */
export function addClientCredentialOptions(c: Command): Command {
  return c
    .option('--cacert <file>', 'CA certificate of a cluster with client TLS (with --cert and --key)')
    .option('--cert <file>', 'client certificate (PEM)')
    .option('--key <file>', 'client key (PEM)')
    .option('--user <name[:password]>', `a user of a cluster with auth on (else $${USER_ENV}); without ":password", give --password or $${PASSWORD_ENV}, or type it when asked`)
    .option('--password <password>', `the user's password, when --user has none (else $${PASSWORD_ENV})`);
}

/** The TLS files named by a verb's flags; undefined when none; throws when only some are given. */
export function tlsFromFlags(o: { cacert?: unknown; cert?: unknown; key?: unknown }): ClientTlsFiles | undefined {
  const given = [o.cacert, o.cert, o.key].filter((x) => typeof x === 'string');
  if (given.length === 0) return undefined;
  if (given.length !== 3) throw new Error('client TLS needs all three of --cacert, --cert and --key');
  return { ca: o.cacert as string, cert: o.cert as string, key: o.key as string };
}

/**
 * The user named by a verb's flags or, failing them, the environment;
 * undefined when neither names one. As etcdctl 3.4: with a password given
 * apart (--password), --user is the whole name; else --user is split at its
 * first colon. A name without a password comes back with password null (the
 * caller asks for it, or refuses).
 */
export function userFromFlags(o: { user?: unknown; password?: unknown }, env: NodeJS.ProcessEnv = process.env): { name: string; password: string | null } | undefined {
  const user = typeof o.user === 'string' ? o.user : env[USER_ENV];
  const password = typeof o.password === 'string' ? o.password : env[PASSWORD_ENV];
  if (user === undefined || user === '') {
    if (typeof o.password === 'string') throw new ClientUserError('--password needs --user');
    return undefined;
  }
  if (password !== undefined) return { name: user, password };
  const colon = user.indexOf(':');
  if (colon < 0) return { name: user, password: null };
  if (colon === 0) throw new ClientUserError('--user needs a name before the colon');
  return { name: user.slice(0, colon), password: user.slice(colon + 1) };
}

/** Asks for a password on the terminal without echoing it; ClientUserError when there is no terminal to ask on. */
export function promptPassword(name: string): Promise<string> {
  const stdin = process.stdin;
  if (stdin.isTTY !== true) {
    return Promise.reject(new ClientUserError(`no password for user ${JSON.stringify(name)}: give --user ${name}:PASSWORD, --password, or $${PASSWORD_ENV}`));
  }
  return new Promise((resolve, reject) => {
    process.stderr.write('Password: ');
    stdin.setRawMode(true);
    stdin.resume();
    let typed = '';
    const done = (err: Error | null): void => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
      if (err !== null) reject(err);
      else resolve(typed);
    };
    const onData = (chunk: Buffer): void => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done(null);
        if (ch === '\u0003') return done(new ClientUserError('interrupted'));
        if (ch === '\u007f' || ch === '\b') typed = typed.slice(0, -1);
        else typed += ch;
      }
    };
    stdin.on('data', onData);
  });
}

/** Sets the credentials of the channels this process opens from now on (undefined: plain text). */
export function setClientTls(tls: ClientTlsFiles | undefined): void {
  current = tls === undefined ? null
    : grpc.credentials.createSsl(readFileSync(tls.ca), readFileSync(tls.key), readFileSync(tls.cert));
}

/** The credentials for a new channel to a node's client port. */
export function clientCredentials(): grpc.ChannelCredentials {
  return current ?? grpc.credentials.createInsecure();
}

type AuthUnary = (req: unknown, meta: grpc.Metadata, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, res: { token?: string }) => void) => void;

/**
 * etcd's Auth.Authenticate on the first endpoint that answers (a transport
 * failure or UNAVAILABLE moves on; a refusal, such as a wrong password, is
 * final and thrown as the node's gRPC error). Resolves with the token, or
 * null when the cluster's auth is off.
 */
export async function authenticate(endpoints: readonly string[], user: ClientUser, timeoutMs: number): Promise<string | null> {
  const Auth = (loadEtcdProtos()['etcdserverpb'] as grpc.GrpcObject)['Auth'] as grpc.ServiceClientConstructor;
  try {
    return await tryEndpoints(endpoints, async (endpoint) => {
      const c = new Auth(endpoint, clientCredentials()) as unknown as grpc.Client & { Authenticate: AuthUnary };
      try {
        const res = await new Promise<{ token?: string }>((resolve, reject) => {
          c.Authenticate({ name: user.name, password: user.password }, new grpc.Metadata(), { deadline: Date.now() + timeoutMs },
            (e, r) => (e !== null ? reject(e) : resolve(r)));
        });
        if (typeof res.token !== 'string' || res.token === '') throw new Error(`${endpoint} answered Authenticate without a token`);
        return res.token;
      } finally {
        c.close();
      }
    }, (e) => {
      const code = (e as Partial<grpc.ServiceError>).code;
      return code === grpc.status.UNAVAILABLE || code === grpc.status.DEADLINE_EXCEEDED;
    });
  } catch (e) {
    const se = e as Partial<grpc.ServiceError>;
    if (se.code === grpc.status.FAILED_PRECONDITION && se.details === AUTH_NOT_ENABLED) return null;
    throw e;
  }
}

/** The signed-in user of this process: its token, and how to get another. */
interface Session {
  readonly user: ClientUser;
  readonly endpoints: readonly string[];
  readonly timeoutMs: number;
  token: string;
  obtainedAtMs: number;
  /** A call was refused "invalid auth token": renew before the next. */
  stale: boolean;
  renewing: Promise<string> | null;
}

let session: Session | null = null;

/** The token to send now: at once, or once a renewal (when due) ends; a failed renewal sends the old one, which the server then refuses in its words. */
function sessionToken(s: Session): string | Promise<string> {
  if (!s.stale && Date.now() - s.obtainedAtMs < TOKEN_RENEW_AFTER_MS) return s.token;
  s.renewing ??= authenticate(s.endpoints, s.user, s.timeoutMs).then((t) => {
    if (t !== null) s.token = t;
    s.obtainedAtMs = Date.now();
    s.stale = false;
    return s.token;
  }, () => s.token).finally(() => { s.renewing = null; });
  return s.renewing;
}

/** Adds the session's token to every call, and notes a refusal of it. */
const tokenInterceptor: grpc.Interceptor = (options, nextCall) => new grpc.InterceptingCall(nextCall(options), {
  start(metadata, _listener, next) {
    const s = session;
    const go = (token: string | null): void => {
      if (token !== null) metadata.set('token', token);
      next(metadata, {
        onReceiveStatus(status, nextStatus) {
          if (s !== null && status.code === grpc.status.UNAUTHENTICATED && status.details === INVALID_TOKEN) s.stale = true;
          nextStatus(status);
        },
      });
    };
    if (s === null) return go(null);
    const t = sessionToken(s);
    if (typeof t === 'string') go(t);
    else void t.then(go);
  },
});

/**
 * Signs `user` in (Authenticate on the first of `endpoints` that answers)
 * for every channel this process opens from now on; undefined signs out.
 * Rejects with the cluster's refusal (a wrong password: etcd's
 * "authentication failed, invalid user ID or password").
 */
export async function setClientUser(user: ClientUser | undefined, endpoints: readonly string[], timeoutMs: number): Promise<void> {
  session = null;
  if (user === undefined) return;
  const token = await authenticate(endpoints, user, timeoutMs);
  if (token === null) return; // auth is off: nothing to send
  session = { user, endpoints: [...endpoints], timeoutMs, token, obtainedAtMs: Date.now(), stale: false, renewing: null };
}

/** The options for a new client of a node's client port (with a signed-in user: the interceptor that sends its token). */
export function clientOptions(): grpc.ClientOptions {
  return session === null ? {} : { interceptors: [tokenInterceptor] };
}
