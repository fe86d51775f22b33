// The metadata log's gRPC service (proto/quorumlog/metadata.proto, package
// quorumlog.metadata.v1) over a MetadataBackend: Write (prepared on the
// controller, answered after commit with the offset), Follow (the committed
// records from an offset, then live, as a server stream) and GetImage.
//
// Follow is pull-driven: a stream remembers the next offset it owes its
// client and, whenever the state machine moves or gRPC drains, writes what
// it can from the retained records; when the offset is older than what is
// retained (or a snapshot replaced the state past it), it sends the image and
// goes on from there — what a KRaft broker behind the log start does. A slow
// client therefore never makes the server buffer more than one write beyond
// gRPC's own buffer. No request can crash the node: every failure becomes a
// gRPC status (rejections FAILED_PRECONDITION, with the code in the
// `quorumlog-metadata-error` trailer).
//
// Auth (docs/METADATA.md, "Permissions"): with an `authorizer`, while auth is
// on, Write needs WRITE on the metadata log and Follow and GetImage need READ
// on it (src/services/auth/needs.ts metadataNeeds), checked when the request
// arrives; a write goes into the log stamped with its caller and the auth
// gate checks it again where it applies. A Follow stream whose caller loses
// READ ends with the refusal. Refusals keep etcd's texts and statuses.

import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { Logger } from 'pino';
import { packageDir } from '../../util/package-dir.js';
import { metadataNeeds } from '../../services/auth/needs.js';
import { sendStamped, type Authorizer, type Principal } from '../auth/authorizer.js';
import { authDenied } from '../../services/auth/types.js';
import { grpcCredentials } from '../auth/credentials.js';
import { AUTH_ERROR_STATUS, AuthRefusedError, EtcdRequestError, throwIfAuthDenied } from '../etcd/errors.js';
import { LeaderChangedError, NodeStoppedError, NoLeaderError, RequestTimeoutError, TooManyRequestsError } from '../../node/errors.js';
import { MetadataCodecError } from '../../services/metadata/codec.js';
import { MetadataRejectedError, type AcceptedRecord } from '../../services/metadata/types.js';
import { MetadataUnavailableError, type MetadataBackend } from './backend.js';
import { imageToWire, MalformedMetadataRequestError, recordFromWire, recordToWire, type WireImage, type WireRecord } from './convert.js';

/** The trailer that names a rejection's code. */
export const METADATA_ERROR_TRAILER = 'quorumlog-metadata-error';

/** The folder holding proto/quorumlog (found above this module, from src/ or any build output). */
export function metadataProtoDir(): string {
  return packageDir('proto/quorumlog', 'metadata.proto');
}

let cached: grpc.ServiceClientConstructor | undefined;

/** The Metadata service's client constructor (its `.service` is the server definition); loaded once. */
export function metadataServiceClient(): grpc.ServiceClientConstructor {
  if (cached === undefined) {
    const def = protoLoader.loadSync('metadata.proto', {
      includeDirs: [metadataProtoDir()], keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true,
    });
    const root = grpc.loadPackageDefinition(def);
    const pkg = ((root['quorumlog'] as grpc.GrpcObject)['metadata'] as grpc.GrpcObject)['v1'] as grpc.GrpcObject;
    cached = pkg['Metadata'] as grpc.ServiceClientConstructor;
  }
  return cached;
}

/** Options of {@link addMetadataService}. */
export interface MetadataServiceOptions {
  readonly logger: Logger;
  /** Records per Follow write burst before yielding to the event loop (default 256). */
  readonly followBatchRecords?: number;
  /** The node's auth (src/server/auth): requests are checked and writes stamped while auth is on. Absent: no checks. */
  readonly authorizer?: Authorizer;
  /** Calls arrive through protocol workers, which pass the client certificate's name in a header (src/server/auth/credentials.ts). */
  readonly behindProtocolWorkers?: boolean;
}

/** What {@link addMetadataService} gives back. */
export interface MetadataService {
  /** Open Follow streams. */
  followStreams(): number;
  /** Ends every Follow stream (call before shutting the server down). */
  close(): void;
  /** Counters: rejected writes, malformed requests, unexpected errors. */
  readonly stats: { rejected: number; invalid: number; internal: number };
}

interface GrpcStatus { code: grpc.status; message: string; trailer?: string }

/** The status for an error, or null for an unexpected one. */
export function metadataStatusOf(err: unknown): GrpcStatus | null {
  if (err instanceof AuthRefusedError) return AUTH_ERROR_STATUS[err.code];
  if (err instanceof EtcdRequestError) return err.status;
  if (err instanceof MetadataRejectedError) return { code: grpc.status.FAILED_PRECONDITION, message: `metadata: ${err.code}: ${err.message}`, trailer: err.code };
  if (err instanceof MalformedMetadataRequestError || err instanceof MetadataCodecError) return { code: grpc.status.INVALID_ARGUMENT, message: `metadata: malformed request: ${err.message}` };
  if (err instanceof MetadataUnavailableError) return { code: grpc.status.UNIMPLEMENTED, message: `metadata: ${err.message}` };
  if (err instanceof NoLeaderError || err instanceof LeaderChangedError || err instanceof RequestTimeoutError || err instanceof NodeStoppedError) {
    return { code: grpc.status.UNAVAILABLE, message: `metadata: ${err.message}` };
  }
  if (err instanceof TooManyRequestsError) return { code: grpc.status.RESOURCE_EXHAUSTED, message: `metadata: ${err.message}` };
  return null;
}

function serviceError(s: GrpcStatus): grpc.ServiceError {
  const err = new Error(s.message) as grpc.ServiceError;
  err.code = s.code;
  err.details = s.message;
  err.metadata = new grpc.Metadata();
  if (s.trailer !== undefined) err.metadata.set(METADATA_ERROR_TRAILER, s.trailer);
  return err;
}

type FollowResponse = { record: { offset: number; index: number; record: WireRecord } } | { image: WireImage };

/** Adds the Metadata service over `backend` to `server` (before the server starts). */
export function addMetadataService(server: grpc.Server, backend: MetadataBackend, opts: MetadataServiceOptions): MetadataService {
  const log = opts.logger;
  const batch = opts.followBatchRecords ?? 256;
  const stats = { rejected: 0, invalid: 0, internal: 0 };
  const streams = new Set<() => void>();
  const machine = backend.machine;
  const authz = opts.authorizer;
  const behindProxy = opts.behindProtocolWorkers === true;
  type Caller = Parameters<typeof grpcCredentials>[0];

  /** The caller, checked for `access` to the log against this node's auth state (null while auth is off). Throws the refusal. */
  function check(call: Caller, access: 'read' | 'write'): Principal | null {
    if (authz === undefined || !authz.enabled) return null;
    return authz.check(grpcCredentials(call, behindProxy), metadataNeeds(access));
  }

  function fail(method: string, err: unknown): grpc.ServiceError {
    const s = metadataStatusOf(err);
    if (s === null) {
      stats.internal++;
      log.error({ err, method }, 'metadata API: unexpected error');
      return serviceError({ code: grpc.status.INTERNAL, message: `metadata: internal error in ${method}` });
    }
    if (s.code === grpc.status.FAILED_PRECONDITION) stats.rejected++;
    if (s.code === grpc.status.INVALID_ARGUMENT) stats.invalid++;
    return serviceError(s);
  }

  function unary<Req>(method: string, fn: (req: Req, call: Caller) => Promise<object>) {
    return (call: grpc.ServerUnaryCall<Req, object>, cb: grpc.sendUnaryData<object>): void => {
      let p: Promise<object>;
      try {
        p = fn(call.request, call);
      } catch (e) {
        cb(fail(method, e));
        return;
      }
      p.then((res) => cb(null, res), (e: unknown) => cb(fail(method, e)));
    };
  }

  function follow(call: grpc.ServerWritableStream<{ from_offset?: number }, FollowResponse>): void {
    try {
      check(call, 'read');
    } catch (err) {
      call.emit('error', fail('Follow', err));
      return;
    }
    let next = Math.max(1, Number(call.request.from_offset ?? 0) || 1);
    let waitingForDrain = false;
    let ended = false;
    const end = (): void => {
      if (ended) return;
      ended = true;
      unsubscribe();
      offAuth?.();
      streams.delete(close);
      call.off('drain', onDrain);
    };
    const close = (): void => {
      if (ended) return;
      end();
      call.end();
    };
    const pump = (): void => {
      if (ended || waitingForDrain) return;
      try {
        for (let sent = 0; sent < batch;) {
          const image = machine.image;
          if (next > image.offset) return;
          const records = machine.recordsFrom(next, batch - sent);
          let ok: boolean;
          if (records === null) {
            ok = call.write({ image: imageToWire(image) });
            next = image.offset + 1;
            sent++;
          } else {
            ok = true;
            for (const r of records) {
              ok = call.write({ record: { offset: r.offset, index: r.index, record: recordToWire(r.record) } });
              next = r.offset + 1;
              sent++;
              if (!ok) break;
            }
            if (records.length === 0) return;
          }
          if (!ok) {
            waitingForDrain = true;
            return;
          }
        }
        setImmediate(pump); // more to send: yield to the event loop first
      } catch (err) {
        log.error({ err }, 'metadata API: Follow failed');
        stats.internal++;
        end();
        call.emit('error', serviceError({ code: grpc.status.INTERNAL, message: 'metadata: internal error in Follow' }));
      }
    };
    const onDrain = (): void => {
      waitingForDrain = false;
      pump();
    };
    const unsubscribe = machine.subscribe(() => pump());
    // The caller lost READ on the log (a role revoked, the user deleted, its token no longer valid): the stream ends with the refusal.
    const offAuth = authz?.state.onChange(() => {
      if (ended) return;
      try {
        check(call, 'read');
      } catch (err) {
        end();
        call.emit('error', fail('Follow', err));
      }
    });
    streams.add(close);
    call.on('drain', onDrain);
    call.on('cancelled', end);
    call.on('close', end);
    call.on('error', end);
    pump();
  }

  server.addService(metadataServiceClient().service, {
    Write: unary<{ record?: WireRecord | null }>('Write', async (req, call) => {
      const record = recordFromWire(req.record);
      // The backend throws the gate's refusal; a stale stamp comes back as the refusal sendStamped resends on.
      const answer = await sendStamped(authz, () => check(call, 'write'), (stamp) => backend.write(record, stamp).catch((err: unknown) => {
        if (err instanceof AuthRefusedError && err.code === 'oldRevision') return authDenied('oldRevision');
        throw err;
      }));
      const accepted = throwIfAuthDenied(answer) as AcceptedRecord;
      return { offset: accepted.offset, index: accepted.index, record: recordToWire(accepted.record) };
    }),
    GetImage: unary<{ serializable?: boolean }>('GetImage', async (req, call) => {
      check(call, 'read');
      if (req.serializable !== true) await backend.readBarrier();
      return imageToWire(machine.image);
    }),
    Follow: follow,
  });

  return {
    followStreams: () => streams.size,
    close: () => {
      for (const c of [...streams]) c();
    },
    stats,
  };
}
