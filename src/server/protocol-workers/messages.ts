// What crosses between a node's Raft process and its client-protocol
// workers (docs/ARCHITECTURE.md, "Threads and processes"). The workers are
// child processes forked through Node's cluster module.
//
// The hot path goes over each worker's hot channel (hot-channel.ts), a
// socket pair of its own. Worker -> primary: one batch per event-loop turn
// of the worker, holding every hot request (Put, DeleteRange, Txn, Range) it
// decoded in that turn: the writes packed into one buffer (packed.ts), the
// reads as objects. Writes arrive already encoded as the KV command that
// goes into the log (src/services/kv/codec.ts), so the Raft thread neither
// parses protobuf nor encodes commands. Primary -> worker: one batch of
// results per turn of the primary, the answers to plain puts packed, the
// others as objects.
//
// The control messages below go over the cluster's IPC channel with the
// "advanced" (V8 structured clone) serialization.

import type { RangeRequest, RangeResponse, KvResult, TxnRequest, TxnResponse } from '../../services/kv/types.js';

/**
 * One read a worker hands to the Raft process (writes go packed, packed.ts).
 * `id` is the worker's own, unique among its requests in flight.
 */
export type WorkerRequest =
  /** A range; a linearizable one waits for a read barrier (one barrier serves every read of the batch). */
  | { readonly op: 'range'; readonly id: number; readonly request: RangeRequest }
  /** A txn whose branches only read: served like a linearizable range (etcd does the same). */
  | { readonly op: 'readTxn'; readonly id: number; readonly request: TxnRequest };

/**
 * Who sent a hot request, when it says: its `token` metadata, and the
 * common name of the verified client certificate of its connection. Sent
 * only for requests that carry either, so that a cluster without auth pays
 * nothing; the Raft process checks them (src/server/auth) while auth is on
 * and ignores them while it is off.
 */
export interface WorkerIdentity {
  readonly id: number;
  readonly token?: string;
  readonly certCommonName?: string;
}

/** A hot request as the worker decoded it, before it numbers it: a write (the encoded KV command: put, deleteRange, or a txn that writes) or a read. */
export type DecodedRequest =
  | { readonly op: 'write'; readonly command: Uint8Array }
  | Omit<Extract<WorkerRequest, { op: 'range' }>, 'id'>
  | Omit<Extract<WorkerRequest, { op: 'readTxn' }>, 'id'>;

/** The answer to one {@link WorkerRequest}. `revision` and `raftTerm` fill etcd's ResponseHeader. */
export type WorkerResult =
  | { readonly ok: 'write'; readonly id: number; readonly revision: number; readonly raftTerm: number; readonly result: Exclude<KvResult, { type: 'error' }> }
  | { readonly ok: 'range'; readonly id: number; readonly revision: number; readonly raftTerm: number; readonly response: RangeResponse }
  | { readonly ok: 'readTxn'; readonly id: number; readonly revision: number; readonly raftTerm: number; readonly response: TxnResponse }
  /** Refused: the gRPC status code and etcd's message, as the client must see them ('' for INTERNAL: the worker names the method). */
  | { readonly ok: false; readonly id: number; readonly code: number; readonly message: string };

/** What a worker needs to serve: sent once, right after it starts. */
export interface WorkerInit {
  readonly host: string;
  readonly port: number;
  /** PEM contents; with them clients must present a certificate signed by `ca` (mutual TLS). */
  readonly tls: { readonly cert: string; readonly key: string; readonly ca: string } | null;
  /** The Unix socket of the Raft process's own gRPC server, where every other method is proxied. */
  readonly upstreamSocket: string;
  /** For etcd's ResponseHeader (decimal strings of the uint64 ids). */
  readonly clusterId: string;
  readonly memberId: string;
  /** Largest gRPC message accepted from a client (grpc-js's default, 4 MiB). */
  readonly maxMessageBytes: number;
  /** Most requests a worker keeps in flight to the Raft process before it answers RESOURCE_EXHAUSTED. */
  readonly maxInflight: number;
  readonly logLevel: string;
  /** For log lines: the node's id and which worker this is. */
  readonly nodeId: string;
  readonly index: number;
}

/** Counters a worker reports about itself (totals since it started), at the end of a turn in which they changed. */
export interface WorkerCounters {
  /** Client connections open now. */
  readonly connections: number;
  /** Hot requests refused as malformed or invalid before they reached the Raft process (INVALID_ARGUMENT and the like). */
  readonly invalid: number;
  /** Hot requests refused with another status before they reached the Raft process (too many in flight, oversized). */
  readonly refused: number;
  /** Calls passed through to the Raft process's gRPC server. */
  readonly proxied: number;
}

export type PrimaryToWorker =
  | { readonly t: 'init'; readonly init: WorkerInit }
  /** Stop accepting, let calls in flight finish within `graceMs`, then exit. */
  | { readonly t: 'close'; readonly graceMs: number };

export type WorkerToPrimary =
  /** The worker's code is loaded and listens for messages: it may be sent its init now (not at 'online', which comes before). */
  | { readonly t: 'ready' }
  | { readonly t: 'listening'; readonly port: number }
  /** listen() failed; `code` is the errno (EADDRINUSE ...) when known. */
  | { readonly t: 'listenFailed'; readonly code: string | null; readonly message: string }
  | { readonly t: 'counters'; readonly counters: WorkerCounters };
