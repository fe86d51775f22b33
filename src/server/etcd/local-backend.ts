// A KvBackend over a bare KvStore, with no replication: for tests of the etcd
// API server and for embedding the key-value service in one process. Writes
// go through the log codec (encode, then decode) before store.apply, so that
// whatever the server builds is also something the replicated log could
// carry; reads need no barrier since there is only this copy. The real,
// replicated backend is the node runtime's (src/node). Leases: this single
// member always leads, so its lessor (src/server/lessor.ts) decides expiry
// and answers keep-alives itself; call close() to stop its timer.

import { KvStore } from '../../services/kv/store.js';
import { decodeCommand, encodeCommand } from '../../services/kv/codec.js';
import type { KvCommand, KvResult } from '../../services/kv/types.js';
import { Lessor } from '../lessor.js';
import type { HeaderInfo, KvBackend, LeaseKeeper, LeaseTimeToLive, MemberInfo, StatusInfo } from './backend.js';

/** Identity of a {@link LocalKvBackend}; every field has a default. */
export interface LocalKvBackendOptions {
  readonly clusterId?: bigint;
  readonly memberId?: bigint;
  readonly name?: string;
  /** Client URLs reported by Cluster.MemberList. */
  readonly clientURLs?: readonly string[];
  /** Version reported by Maintenance.Status. */
  readonly version?: string;
  /** Smallest lease TTL granted (seconds). Default 1. */
  readonly minLeaseTtlSeconds?: number;
  /** Monotonic milliseconds for lease deadlines. Default performance.now(). */
  readonly now?: () => number;
  /** Period of the lessor's expiry check. Default 100 ms; 0 = no timer (call `lessor.check()` yourself). */
  readonly leaseCheckIntervalMs?: number;
}

/**
 * A single-member, unreplicated KvBackend. Invariant: `appliedIndex` counts
 * the commands applied, and is the Raft index/applied index it reports.
 */
export class LocalKvBackend implements KvBackend {
  readonly store: KvStore;
  private readonly clusterId: bigint;
  private readonly memberId: bigint;
  private readonly name: string;
  private readonly clientURLs: readonly string[];
  private readonly version: string;
  private appliedIndex = 0;
  /** Decides lease expiry (this member always leads). */
  readonly lessor: Lessor;
  readonly leases: LeaseKeeper;

  constructor(store: KvStore = new KvStore(), opts: LocalKvBackendOptions = {}) {
    this.store = store;
    const checkIntervalMs = opts.leaseCheckIntervalMs ?? 100;
    this.lessor = new Lessor({
      leases: store,
      now: opts.now ?? (() => performance.now()),
      leadership: () => ({ leader: true, term: 1 }),
      barrier: () => Promise.resolve(),
      proposeExpire: (id, term) => this.write({ type: 'leaseExpire', request: { id, term } }),
      proposeEpoch: (term) => this.write({ type: 'leaseEpoch', request: { term } }),
      ...(checkIntervalMs > 0 ? { checkIntervalMs } : {}),
    });
    // Lead at once: the lessor's epoch is the first command applied, before any request can look at the log index.
    this.lessor.check();
    if (checkIntervalMs > 0) this.lessor.start();
    const lessor = this.lessor;
    this.leases = {
      minTtlSeconds: opts.minLeaseTtlSeconds ?? 1,
      keepAlive: (id: number): Promise<number> => lessor.renew(id),
      timeToLive: (id: number): Promise<LeaseTimeToLive | null> => lessor.timeToLive(id),
    };
    this.clusterId = opts.clusterId ?? 0x1000n;
    this.memberId = opts.memberId ?? 0x1n;
    this.name = opts.name ?? 'local';
    this.clientURLs = opts.clientURLs ?? [];
    this.version = opts.version ?? '3.4.0';
  }

  /** Encodes, decodes and applies `cmd` at once (a decode failure rejects with the codec's error). */
  write(cmd: KvCommand): Promise<KvResult> {
    try {
      const decoded = decodeCommand(encodeCommand(cmd));
      this.appliedIndex++;
      return Promise.resolve(this.store.apply(decoded));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Stops the lessor's timer. */
  close(): void {
    this.lessor.stop();
  }

  /** Nothing to wait for: this is the only copy. */
  readBarrier(): Promise<void> {
    return Promise.resolve();
  }

  header(): HeaderInfo {
    return { clusterId: this.clusterId, memberId: this.memberId, raftTerm: 1 };
  }

  status(): StatusInfo {
    return {
      version: this.version,
      dbSizeBytes: this.store.sizeBytes(),
      leader: this.memberId,
      raftIndex: this.appliedIndex,
      raftTerm: 1,
      raftAppliedIndex: this.appliedIndex,
      isLearner: false,
      errors: [],
    };
  }

  members(): readonly MemberInfo[] {
    return [{ id: this.memberId, name: this.name, peerURLs: [], clientURLs: this.clientURLs, isLearner: false }];
  }
}
