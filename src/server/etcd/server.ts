// The etcd v3 gRPC API server: KV, Watch, Lease (lease.ts), Maintenance and
// Cluster over a KvBackend, so that etcdctl, the
// etcd3 npm client and clients generated from etcd's protos work unchanged
// against quorumlog. Protos: proto/etcd/*.proto (ours, with etcd's names and
// field numbers), loaded at run time.
//
// Reads: serializable ranges read the local store at once; linearizable ones
// (etcd's default) wait on backend.readBarrier() first. Read-only txns are
// served the same way, as etcd does; every other write goes through
// backend.write(), i.e. the replicated log. Every response carries etcd's
// ResponseHeader. Errors become etcd's exact gRPC statuses (errors.ts);
// malformed requests get INVALID_ARGUMENT; anything unexpected is logged and
// answered INTERNAL. No request can crash the node.

import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { Logger } from 'pino';
import type { KvBackend, MemberInfo } from './backend.js';
import type { KvCommand, KvResult } from '../../services/kv/types.js';
import {
  compactionRequestFromWire,
  deleteRangeRequestFromWire,
  deleteRangeResponseToWire,
  putRequestFromWire,
  putResponseToWire,
  rangeRequestFromWire,
  rangeResponseToWire,
  txnRequestFromWire,
  txnResponseToWire,
  type WireCompactionRequest,
  type WireDeleteRangeRequest,
  type WireHeader,
  type WirePutRequest,
  type WireRangeRequest,
  type WireTxnRequest,
} from './convert.js';
import { ETCD_STATUS, EtcdRequestError, etcdStatusOf, KV_ERROR_STATUS, MalformedRequestError, NotServedError, serviceError, throwIfAuthDenied } from './errors.js';
import { authHandlers } from './auth.js';
import { leaseHandlers } from './lease.js';
import { kvCommandNeeds, rangeNeeds, type Needs } from '../../services/auth/needs.js';
import { grpcCredentials } from '../auth/credentials.js';
import { sendStamped, type Principal } from '../auth/authorizer.js';
import { etcdProtoDir } from './proto-dir.js';
import { evaluateReadOnlyTxn, isReadOnlyTxn } from './readonly-txn.js';
import { WatchSession, type WireWatchRequest, type WireWatchResponse } from './watch.js';
import { checkUtf8Strings } from './wire-utf8.js';

/** Options of {@link createEtcdServer}. */
export interface EtcdServerOptions {
  readonly logger: Logger;
  /** Per Watch stream, bytes queued to gRPC before live events stop and watchers fall back to history. Default 4 MiB. */
  readonly watchMaxPendingBytes?: number;
  /** Period of progress notifications for watchers with progress_notify. Default 10 minutes (etcd's). */
  readonly progressNotifyIntervalMs?: number;
  /**
   * Calls reach this server only through the node's protocol workers
   * (src/server/protocol-workers/proxy.ts), which terminate TLS and pass the
   * client certificate's common name in a header they set themselves; trust
   * that header. Default false: the header is ignored and TLS is read here.
   */
  readonly behindProtocolWorkers?: boolean;
}

/** A running (or ready-to-run) etcd API server. */
export interface EtcdApi {
  /** The underlying grpc-js server (to add other services before start). */
  readonly server: grpc.Server;
  /** Binds host:port (port 0 = any free port) and serves; resolves with the bound port. Default credentials: insecure. */
  start(host: string, port: number, credentials?: grpc.ServerCredentials): Promise<number>;
  /** Ends watch streams, stops accepting calls and waits (briefly) for calls in flight. */
  close(): Promise<void>;
  /** Open Watch streams (tests, metrics). */
  readonly watchSessions: ReadonlySet<WatchSession>;
  /** Request outcome counters. */
  readonly stats: EtcdServerStats;
}

/** What {@link addEtcdServices} gives back: the live state of the services it added. */
export interface EtcdServices {
  readonly watchSessions: ReadonlySet<WatchSession>;
  readonly stats: EtcdServerStats;
}

/** Counters of unary request outcomes (watch streams have their own, per session). */
export interface EtcdServerStats {
  /** Requests refused as malformed or invalid (INVALID_ARGUMENT). */
  invalidRequests: number;
  /** Requests answered with another etcd error (compacted, no leader, ...). */
  etcdErrors: number;
  /** Unexpected failures answered INTERNAL (each is logged). */
  internalErrors: number;
}

const WATCH_MAX_PENDING_BYTES_DEFAULT = 4 * 1024 * 1024;
const PROGRESS_NOTIFY_INTERVAL_MS_DEFAULT = 10 * 60 * 1000;
const CLOSE_GRACE_MS = 2000;
const LEASE_UNIMPLEMENTED = 'etcdserver: this quorumlog backend serves no leases';
const MEMBERSHIP_UNIMPLEMENTED = 'etcdserver: this server cannot change membership';
/** Methods a removed member still answers (so that operators can see why it refuses the rest). */
const SERVED_WHEN_REMOVED = new Set(['Status', 'Alarm']);

export { etcdProtoDir };

let cachedDefinition: grpc.GrpcObject | undefined;

/** etcd's services and messages, loaded from proto/etcd (once per process). */
export function loadEtcdProtos(): grpc.GrpcObject {
  if (!cachedDefinition) {
    const def = protoLoader.loadSync('rpc.proto', {
      includeDirs: [etcdProtoDir()],
      keepCase: true,
      longs: String,
      enums: String,
      bytes: Buffer,
      defaults: true,
      oneofs: true,
    });
    cachedDefinition = grpc.loadPackageDefinition(def);
  }
  return cachedDefinition;
}

function serviceOf(name: string): grpc.ServiceDefinition {
  const pkg = loadEtcdProtos()['etcdserverpb'] as grpc.GrpcObject;
  const ctor = pkg[name] as grpc.ServiceClientConstructor;
  return ctor.service;
}

/**
 * Builds the etcd API over `backend` on a new grpc-js server (not yet bound;
 * call start()). Use {@link addEtcdServices} to add the services to a server
 * of your own instead.
 */
export function createEtcdServer(backend: KvBackend, opts: EtcdServerOptions): EtcdApi {
  // Keepalive pings find clients that vanished without closing (a queue consumer's unacked messages come back then).
  const server = new grpc.Server({
    'grpc.max_receive_message_length': 4 * 1024 * 1024, 'grpc.keepalive_time_ms': 10_000, 'grpc.keepalive_timeout_ms': 5_000,
  });
  const services = addEtcdServices(server, backend, opts);
  const sessions = services.watchSessions;
  return {
    server,
    watchSessions: sessions,
    stats: services.stats,
    start(host: string, port: number, credentials = grpc.ServerCredentials.createInsecure()): Promise<number> {
      const address = host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
      return new Promise((resolve, reject) => {
        server.bindAsync(address, credentials, (err, boundPort) => (err ? reject(err) : resolve(boundPort)));
      });
    },
    close(): Promise<void> {
      for (const s of [...sessions]) s.end();
      return new Promise((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, CLOSE_GRACE_MS);
        timer.unref();
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
  };
}

type UnaryHandler = (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => void;
/** What a unary handler is given besides its request: the call (its metadata and peer identify the caller). */
export type UnaryCall = grpc.ServerUnaryCall<unknown, unknown>;


/**
 * Adds etcd's KV, Watch, Lease, Cluster and Maintenance services over
 * `backend` to `server`. Returns the open Watch sessions and counters.
 */
export function addEtcdServices(server: grpc.Server, backend: KvBackend, opts: EtcdServerOptions): EtcdServices {
  const log = opts.logger;
  const maxPendingBytes = opts.watchMaxPendingBytes ?? WATCH_MAX_PENDING_BYTES_DEFAULT;
  const progressNotifyIntervalMs = opts.progressNotifyIntervalMs ?? PROGRESS_NOTIFY_INTERVAL_MS_DEFAULT;
  if (!(maxPendingBytes > 0)) throw new RangeError(`watchMaxPendingBytes must be positive, got ${maxPendingBytes}`);
  if (!(progressNotifyIntervalMs > 0)) throw new RangeError(`progressNotifyIntervalMs must be positive, got ${progressNotifyIntervalMs}`);
  const store = backend.store;
  const stats: EtcdServerStats = { invalidRequests: 0, etcdErrors: 0, internalErrors: 0 };

  function header(revision: number): WireHeader {
    const h = backend.header();
    return { cluster_id: h.clusterId.toString(), member_id: h.memberId.toString(), revision, raft_term: h.raftTerm };
  }

  /** Wraps an async handler: its result or its error (as etcd's status) goes back to the client; nothing escapes. */
  function unary<Req>(method: string, fn: (req: Req, call: UnaryCall) => Promise<object> | object): UnaryHandler {
    return (call, callback) => {
      let done = false;
      const fail = (err: unknown): void => {
        if (done) return;
        done = true;
        const s = etcdStatusOf(err);
        if (s) {
          if (s.code === grpc.status.INVALID_ARGUMENT) stats.invalidRequests++;
          else stats.etcdErrors++;
          log.debug({ method, code: s.code }, s.message);
          callback(serviceError(s));
        } else {
          stats.internalErrors++;
          log.error({ err, method }, 'etcd API: unexpected error');
          callback(serviceError({ code: grpc.status.INTERNAL, message: `etcdserver: internal error in ${method}` }));
        }
      };
      try {
        if (backend.removed?.() === true && !SERVED_WHEN_REMOVED.has(method)) throw new EtcdRequestError(ETCD_STATUS.memberRemoved);
        Promise.resolve(fn(call.request as Req, call)).then(
          (res) => {
            if (done) return;
            done = true;
            callback(null, res);
          },
          fail,
        );
      } catch (err) {
        fail(err);
      }
    };
  }

  function notServed(message: string): UnaryHandler {
    return unary('unimplemented', () => {
      throw new NotServedError(message);
    });
  }

  const authz = backend.auth?.authorizer;
  const behindProxy = opts.behindProtocolWorkers === true;
  const leaseKeys = (id: number): Uint8Array[] => store.leaseKeys(id);

  /** The caller, checked for `needs` against the current auth state (null while auth is off). Throws the refusal. */
  function check(call: { readonly metadata: grpc.Metadata }, needs: Needs | (() => Needs)): Principal | null {
    if (authz === undefined || !authz.enabled) return null;
    return authz.check(grpcCredentials(call, behindProxy), typeof needs === 'function' ? needs() : needs);
  }

  /**
   * Sends a command through the log, checked and stamped as the caller's; an
   * etcd-level failure becomes its status. A write the auth state moved past
   * before it applied (etcd's "revision of auth store is old") is checked
   * again and sent again, so a client sees that error only if auth keeps changing.
   */
  async function submit(call: { readonly metadata: grpc.Metadata }, cmd: KvCommand): Promise<KvResult> {
    const result = await sendStamped(authz, () => check(call, () => kvCommandNeeds(cmd, leaseKeys)), (stamp) => backend.write(cmd, stamp));
    return throwIfAuthDenied(result) as KvResult;
  }

  async function write<T extends KvResult['type']>(call: { readonly metadata: grpc.Metadata }, cmd: KvCommand, expected: T): Promise<Extract<KvResult, { type: T }>> {
    const result = await submit(call, cmd);
    if (result.type === 'error') {
      const s = KV_ERROR_STATUS[result.error];
      if (!s) throw new Error(`store returned unknown error code ${String(result.error)}: ${result.message}`);
      throw new EtcdRequestError(s, { cause: new Error(result.message) });
    }
    if (result.type !== expected) throw new Error(`store answered a ${cmd.type} command with a ${result.type} result`);
    return result as Extract<KvResult, { type: T }>;
  }

  /** Refuses unless the caller is root (while auth is on). */
  const requireRoot = (call: { readonly metadata: grpc.Metadata }): Principal | null => check(call, 'root');

  // ---- KV ----
  server.addService(serviceOf('KV'), {
    Range: unary<WireRangeRequest>('Range', async (req, call) => {
      const r = rangeRequestFromWire(req);
      check(call, rangeNeeds(r));
      if (!r.serializable) await backend.readBarrier();
      check(call, rangeNeeds(r)); // again, against the state the read sees
      const res = store.range(r);
      return { header: header(store.revision), ...rangeResponseToWire(res) };
    }),
    Put: unary<WirePutRequest>('Put', async (req, call) => {
      const result = await write(call, { type: 'put', request: putRequestFromWire(req) }, 'put');
      return { header: header(result.revision), ...putResponseToWire(result.response) };
    }),
    DeleteRange: unary<WireDeleteRangeRequest>('DeleteRange', async (req, call) => {
      const result = await write(call, { type: 'deleteRange', request: deleteRangeRequestFromWire(req) }, 'deleteRange');
      return { header: header(result.revision), ...deleteRangeResponseToWire(result.response) };
    }),
    Txn: unary<WireTxnRequest>('Txn', async (req, call) => {
      const txn = txnRequestFromWire(req);
      if (isReadOnlyTxn(txn)) {
        const needs = (): Needs => kvCommandNeeds({ type: 'txn', request: txn }, leaseKeys);
        check(call, needs);
        await backend.readBarrier();
        check(call, needs);
        const res = evaluateReadOnlyTxn(store, txn);
        const h = header(store.revision);
        return { header: h, ...txnResponseToWire(res, h) };
      }
      const result = await write(call, { type: 'txn', request: txn }, 'txn');
      const h = header(result.revision);
      return { header: h, ...txnResponseToWire(result.response, h) };
    }),
    Compact: unary<WireCompactionRequest>('Compact', async (req, call) => {
      const result = await write(call, { type: 'compact', request: compactionRequestFromWire(req) }, 'compact');
      return { header: header(result.revision) };
    }),
  });

  // ---- Watch ----
  const sessions = new Set<WatchSession>();
  server.addService(serviceOf('Watch'), {
    Watch: (call: grpc.ServerDuplexStream<WireWatchRequest, WireWatchResponse>) => {
      if (backend.removed?.() === true) {
        call.emit('error', serviceError(ETCD_STATUS.memberRemoved));
        return;
      }
      try {
        // With auth, the stream's identity is the one it opened with (etcd's clients send the token on the stream).
        const auth = authz === undefined ? {} : {
          authorize: (key: Uint8Array, rangeEnd: Uint8Array): string | null => {
            try {
              check(call, [{ resource: 'kv', access: 'read', key, rangeEnd }]);
              return null;
            } catch (err) {
              const st = etcdStatusOf(err);
              if (st === null) throw err;
              return st.message;
            }
          },
          onAuthChange: (listener: () => void) => authz.state.onChange(listener),
        };
        const session = new WatchSession(
          { store, header, logger: log, maxPendingBytes, progressNotifyIntervalMs, ...auth },
          call,
          () => sessions.delete(session),
        );
        sessions.add(session);
      } catch (err) {
        log.error({ err }, 'etcd API: could not open a watch stream');
        call.emit('error', serviceError({ code: grpc.status.INTERNAL, message: 'etcdserver: internal error opening the watch stream' }));
      }
    },
  });

  // ---- Lease (lease.ts; a backend without a LeaseKeeper serves none) ----
  const leaseStream = (call: grpc.ServerDuplexStream<unknown, unknown>): void => {
    call.emit('error', serviceError({ code: grpc.status.UNIMPLEMENTED, message: LEASE_UNIMPLEMENTED }));
  };
  server.addService(serviceOf('Lease'), backend.leases !== undefined
    ? leaseHandlers({ backend, leases: backend.leases, header, unary, logger: log, check, submit })
    : {
      LeaseGrant: notServed(LEASE_UNIMPLEMENTED),
      LeaseRevoke: notServed(LEASE_UNIMPLEMENTED),
      LeaseKeepAlive: leaseStream,
      LeaseTimeToLive: notServed(LEASE_UNIMPLEMENTED),
      LeaseLeases: notServed(LEASE_UNIMPLEMENTED),
    });

  // ---- Cluster ----
  // MemberList: the configuration in force on this node (voters, then observers as learners) with each
  // member's addresses. The changes run on the leader (a follower forwards them) and answer once committed.
  const wireMember = (m: MemberInfo): object => ({
    ID: m.id.toString(), name: m.name, peerURLs: [...m.peerURLs], clientURLs: [...m.clientURLs], isLearner: m.isLearner,
  });
  const wireMembers = (): object[] => backend.members().map(wireMember);
  const memberId = (v: unknown): bigint => {
    let id: bigint;
    try {
      id = BigInt(typeof v === 'string' || typeof v === 'number' ? v : '0');
    } catch (e) {
      throw new MalformedRequestError(`member ID ${String(v)} is not a number`, { cause: e });
    }
    return id;
  };
  const membership = backend.membership;
  server.addService(serviceOf('Cluster'), {
    MemberList: unary('MemberList', async (req: { linearizable?: boolean }) => {
      if (req.linearizable === true) await backend.readBarrier();
      return { header: header(store.revision), members: wireMembers() };
    }),
    MemberAdd: membership === undefined ? notServed(MEMBERSHIP_UNIMPLEMENTED)
      : unary<{ peerURLs?: string[]; isLearner?: boolean; clientURLs?: string[] }>('MemberAdd', async (req, call) => {
        requireRoot(call);
        const m = await membership.add(req.peerURLs ?? [], req.isLearner === true, req.clientURLs ?? []);
        return { header: header(store.revision), member: wireMember(m), members: wireMembers() };
      }),
    MemberRemove: membership === undefined ? notServed(MEMBERSHIP_UNIMPLEMENTED)
      : unary<{ ID?: string }>('MemberRemove', async (req, call) => {
        requireRoot(call);
        await membership.remove(memberId(req.ID));
        return { header: header(store.revision), members: wireMembers() };
      }),
    MemberUpdate: membership === undefined ? notServed(MEMBERSHIP_UNIMPLEMENTED)
      : unary<{ ID?: string; peerURLs?: string[] }>('MemberUpdate', async (req, call) => {
        requireRoot(call);
        await membership.update(memberId(req.ID), req.peerURLs ?? []);
        return { header: header(store.revision), members: wireMembers() };
      }),
    MemberPromote: membership === undefined ? notServed(MEMBERSHIP_UNIMPLEMENTED)
      : unary<{ ID?: string }>('MemberPromote', async (req, call) => {
        requireRoot(call);
        await membership.promote(memberId(req.ID));
        return { header: header(store.revision), members: wireMembers() };
      }),
  });

  // ---- Maintenance ----
  const maintenanceNotServed = (method: string): UnaryHandler =>
    notServed(`etcdserver: quorumlog does not serve Maintenance.${method}`);
  server.addService(serviceOf('Maintenance'), {
    // etcd 3.4 serves Status, Snapshot and MoveLeader to root alone once auth is on (v3rpc authMaintenanceServer).
    Status: unary('Status', (_req, call) => {
      requireRoot(call);
      const s = backend.status();
      return {
        header: header(store.revision),
        version: s.version,
        dbSize: s.dbSizeBytes,
        dbSizeInUse: s.dbSizeBytes,
        leader: s.leader.toString(),
        raftIndex: s.raftIndex,
        raftTerm: s.raftTerm,
        raftAppliedIndex: s.raftAppliedIndex,
        errors: [...s.errors],
        isLearner: s.isLearner,
      };
    }),
    // AlarmList (action GET) is asked by newer etcdctl's endpoint health; quorumlog raises no alarms.
    Alarm: unary<{ action?: string | number }>('Alarm', (req) => {
      if (req.action !== undefined && req.action !== 'GET' && req.action !== 0) {
        throw new NotServedError('etcdserver: quorumlog raises no alarms; only the alarm list (GET) is served');
      }
      return { header: header(store.revision), alarms: [] };
    }),
    Defragment: maintenanceNotServed('Defragment'),
    Hash: maintenanceNotServed('Hash'),
    HashKV: maintenanceNotServed('HashKV'),
    // A backup of the node's whole state (src/server/backup.ts), streamed in chunks: `etcdctl snapshot save` writes it to
    // a file as it comes; `quorumlog restore` reads it (it is not an etcd bbolt file, so `etcdctl snapshot restore` cannot).
    Snapshot: (call: grpc.ServerWritableStream<unknown, unknown>) => {
      const fail = (err: unknown): void => {
        const s = etcdStatusOf(err);
        if (s) {
          stats.etcdErrors++;
          call.emit('error', serviceError(s));
        } else {
          stats.internalErrors++;
          log.error({ err, method: 'Snapshot' }, 'etcd API: unexpected error');
          call.emit('error', serviceError({ code: grpc.status.INTERNAL, message: 'etcdserver: internal error in Snapshot' }));
        }
      };
      const backup = backend.backup;
      if (backup === undefined) {
        call.emit('error', serviceError({ code: grpc.status.UNIMPLEMENTED, message: 'etcdserver: this server cannot take a backup' }));
        return;
      }
      if (backend.removed?.() === true) {
        fail(new EtcdRequestError(ETCD_STATUS.memberRemoved));
        return;
      }
      try {
        requireRoot(call);
      } catch (err) {
        fail(err);
        return;
      }
      const CHUNK = 64 << 10;
      void (async () => {
        const bytes = await backup.call(backend);
        for (let off = 0; off < bytes.byteLength && !call.cancelled; off += CHUNK) {
          const end = Math.min(bytes.byteLength, off + CHUNK);
          const more = call.write({ header: header(store.revision), remaining_bytes: String(bytes.byteLength - end), blob: bytes.subarray(off, end) });
          if (!more) await new Promise<void>((resolve) => { call.once('drain', resolve); call.once('cancelled', resolve); });
        }
        call.end();
      })().catch(fail);
    },
    MoveLeader: unary<{ targetID?: string }>('MoveLeader', async (req, call) => {
      requireRoot(call);
      if (backend.moveLeader === undefined) throw new NotServedError('etcdserver: this server cannot move leadership');
      let target: bigint;
      try {
        target = BigInt(req.targetID ?? '0');
      } catch (e) {
        throw new MalformedRequestError(`targetID ${String(req.targetID)} is not a member id`, { cause: e });
      }
      await backend.moveLeader(target);
      return { header: header(store.revision) };
    }),
  });

  // ---- Auth (auth.ts; a backend without auth serves none) ----
  server.addService(checkUtf8Strings(serviceOf('Auth')), authHandlers({ backend, unary, header, notServed, logger: log, behindProtocolWorkers: behindProxy }));

  return { watchSessions: sessions, stats };
}
