// The AMQP 0-9-1 listener of a node: RabbitMQ's clients (amqplib, pika, the
// Java and Go clients) reach the node's quorum queues through it, unchanged.
// Every node listens; a follower's commands are forwarded to the leader by
// the queue backend, as the gRPC queue API's are. See docs/QUEUES.md for
// what is supported and what answers 540 NOT_IMPLEMENTED.

import { randomBytes } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import type { Logger } from 'pino';
import type { Authorizer } from '../auth/authorizer.js';
import type { PasswordLogin } from '../auth/login.js';
import type { QueueBackend } from '../queue/backend.js';
import { AMQP_LIMIT_DEFAULTS, AmqpConnection, type AmqpLimits } from './connection.js';
import { AmqpStats } from './stats.js';
import { AmqpVhost } from './vhost.js';

export interface AmqpListenerOptions {
  readonly host: string;
  readonly port: number;
  readonly backend: QueueBackend;
  readonly logger: Logger;
  readonly clusterName: string;
  readonly version?: string;
  readonly authorizer?: Authorizer;
  readonly login?: PasswordLogin;
  /** The consumer ids the node's queue API serves (so that its reconciler leaves AMQP's consumers alone). */
  readonly served?: Set<string>;
  readonly limits?: Partial<AmqpLimits>;
  /**
   * PEM contents: serve AMQP over TLS (amqps) with mutual TLS, as the node's
   * client port does with clientTls: a client must present a certificate
   * the CA signed. Logins are still PLAIN, inside TLS.
   */
  readonly tls?: { readonly cert: string; readonly key: string; readonly ca: string };
}

export interface AmqpListener {
  readonly stats: AmqpStats;
  readonly port: number;
  openConnections(): number;
  /** Stops listening, closes every connection (320 CONNECTION_FORCED) and stops delivering. */
  close(): Promise<void>;
}

/** Starts listening; resolves once the port is bound (rejects with the listen error, e.g. EADDRINUSE). */
export function startAmqpListener(opts: AmqpListenerOptions): Promise<AmqpListener> {
  const limits: AmqpLimits = { ...AMQP_LIMIT_DEFAULTS, ...opts.limits };
  const stats = new AmqpStats();
  const log = opts.logger;
  const vhost = new AmqpVhost(opts.backend, {
    logger: log,
    ...(opts.authorizer !== undefined ? { authorizer: opts.authorizer } : {}),
    ...(opts.login !== undefined ? { login: opts.login } : {}),
    ...(opts.served !== undefined ? { served: opts.served } : {}),
  });
  const serverProperties = AmqpConnection.serverProperties(opts.version ?? '0.1.0', opts.clusterName);
  const connections = new Set<AmqpConnection>();
  // Consumer ids carry this process's instance: a restarted node never reuses the ids of its previous run.
  const instance = randomBytes(3).toString('hex');
  let serial = 0;
  const accept = (socket: Socket): void => {
    try {
      const c = new AmqpConnection(socket, {
        vhost, limits, stats, logger: log, serverProperties, serial: ++serial, instance,
        onClosed: (conn) => {
          connections.delete(conn);
          stats.connectionsOpen = connections.size;
        },
      });
      connections.add(c);
      stats.connectionsOpen = connections.size;
    } catch (err) {
      log.error({ err }, 'amqp: accepting a connection failed');
      socket.destroy();
    }
  };
  const server: Server = opts.tls === undefined
    ? createServer(accept)
    : createTlsServer({ cert: opts.tls.cert, key: opts.tls.key, ca: opts.tls.ca, requestCert: true, rejectUnauthorized: true }, accept);
  if (opts.tls !== undefined) server.on('tlsClientError', (err) => { stats.refused('tls'); log.debug({ err: err.message }, 'amqp: TLS handshake refused'); });
  server.on('error', (err) => log.warn({ err: err.message }, 'amqp: listener error'));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      const addr = server.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : opts.port;
      log.info({ host: opts.host, port, tls: opts.tls !== undefined }, 'amqp: listening');
      resolve({
        stats,
        port,
        openConnections: () => connections.size,
        close: () => new Promise<void>((done) => {
          for (const c of [...connections]) c.shutdown();
          vhost.close();
          server.close(() => done());
        }),
      });
    });
  });
}
