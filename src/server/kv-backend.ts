// The etcd API's backend on a real node: writes are encoded as KV commands
// and submitted to the runtime (which batches them into the log and forwards
// them from a follower to the leader); linearizable reads wait on the
// runtime's ReadIndex barrier; identity and status come from the config and
// the core. Lease keep-alives and time-to-live go to the node's LeaseKeeper
// (src/server/lease-forward.ts: the leader's lessor, forwarded to from followers).
// Membership (MemberList and the changes) goes to the node's MembershipManager
// (src/server/membership.ts) when it has one; else the config file's members.

import type { NodeRuntime } from '../node/runtime.js';
import { encodeCommand } from '../services/kv/codec.js';
import { encodeServiceCommand, stampCommand } from '../services/machine.js';
import type { AuthStamp } from '../services/auth/codec.js';
import type { AuthDeniedResult } from '../services/auth/types.js';
import type { KvStateMachine } from '../services/kv/state-machine.js';
import type { KvStore } from '../services/kv/store.js';
import type { KvCommand, KvResult } from '../services/kv/types.js';
import type { NodeConfig } from './config.js';
import { formatAddress } from './config.js';
import type { AuthBackend, ClusterMembership, HeaderInfo, KvBackend, LeaseKeeper, MemberInfo, StatusInfo } from './etcd/backend.js';
import { MembershipError, parsePeerUrl, type MembershipManager } from './membership.js';
import { ETCD_STATUS, EtcdRequestError } from './etcd/errors.js';
import { TransferTargetError } from '../core/errors.js';
import { nodeId } from '../protocol/ids.js';
import { idFromName } from './ids.js';

/** The version reported by Maintenance.Status: etcd's API level we speak, and ours. */
export const SERVER_VERSION = '3.4.0';

export class RuntimeKvBackend implements KvBackend {
  readonly store: KvStore;
  private readonly clusterId: bigint;
  private readonly memberId: bigint;
  private readonly memberIds: Map<string, bigint>;

  readonly leases?: LeaseKeeper;
  readonly membership?: ClusterMembership;
  /** Maintenance.Snapshot's backup of every service (set by node-process, which holds them all). */
  backup?: () => Promise<Uint8Array>;
  /** Users, roles and tokens (set by node-process). */
  auth?: AuthBackend;

  constructor(private readonly runtime: NodeRuntime, sm: KvStateMachine, private readonly config: NodeConfig, leases?: LeaseKeeper,
    private readonly manager?: MembershipManager) {
    this.store = sm.store;
    if (leases !== undefined) this.leases = leases;
    if (manager !== undefined) this.membership = clusterMembership(manager);
    this.clusterId = idFromName(config.clusterId);
    this.memberIds = new Map(config.members.map((m) => [m.id, idFromName(config.clusterId, m.id)]));
    this.memberId = this.memberIds.get(config.nodeId) ?? 0n;
  }

  async write(cmd: KvCommand, stamp?: AuthStamp | null): Promise<KvResult | AuthDeniedResult> {
    const bytes = encodeCommand(cmd);
    return (await this.runtime.submit(stamp === undefined || stamp === null ? bytes : stampCommand(stamp, bytes))) as KvResult | AuthDeniedResult;
  }

  /** A write already encoded as a KV command (by a protocol worker): the same as write(), without decoding it here. */
  async submitEncoded(command: Uint8Array, stamp?: AuthStamp | null): Promise<KvResult | AuthDeniedResult> {
    // Only key-value commands: the check encodeServiceCommand makes (a worker cannot reach the other services this way).
    const bytes = encodeServiceCommand('kv', command);
    return (await this.runtime.submit(stamp === undefined || stamp === null ? bytes : stampCommand(stamp, bytes))) as KvResult | AuthDeniedResult;
  }

  readBarrier(): Promise<void> {
    return this.runtime.readBarrier();
  }

  header(): HeaderInfo {
    return { clusterId: this.clusterId, memberId: this.memberId, raftTerm: this.runtime.term };
  }

  status(): StatusInfo {
    const s = this.runtime.status();
    const leader = s.leader;
    return {
      version: SERVER_VERSION,
      dbSizeBytes: this.store.sizeBytes(),
      leader: leader === null ? 0n : idFromName(this.config.clusterId, leader),
      raftIndex: s.commitIndex,
      raftTerm: s.term,
      raftAppliedIndex: s.appliedIndex,
      isLearner: !s.isVoter,
      errors: this.runtime.removed ? ['the member has been permanently removed from the cluster'] : [],
    };
  }

  removed(): boolean {
    return this.runtime.removed;
  }

  async moveLeader(target: bigint): Promise<void> {
    if (!this.runtime.isLeader()) throw new EtcdRequestError(ETCD_STATUS.notLeader);
    const name = this.manager?.nodeIdOf(target) ?? [...this.memberIds].find(([, id]) => id === target)?.[0];
    if (name === undefined) throw new EtcdRequestError(ETCD_STATUS.badLeaderTransferee);
    const to = nodeId(name);
    if (to === this.runtime.id) return;
    try {
      this.runtime.transferLeadership(to);
    } catch (e) {
      if (e instanceof TransferTargetError) throw new EtcdRequestError(ETCD_STATUS.badLeaderTransferee, { cause: e });
      throw e;
    }
    // The core gives a transfer up after an election timeout; wait a little longer for the new leader to be known here.
    const deadline = performance.now() + this.config.electionTimeoutMaxTicks * this.config.tickMs * 2;
    while (performance.now() < deadline) {
      if (this.runtime.leaderId() === to) return;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new EtcdRequestError(ETCD_STATUS.leaderTransferTimeout);
  }

  members(): readonly MemberInfo[] {
    if (this.manager !== undefined) {
      return this.manager.list().map((m) => ({ id: m.id, name: m.name, peerURLs: m.peerURLs, clientURLs: m.clientURLs, isLearner: m.isLearner }));
    }
    const scheme = this.config.clientTls === null ? 'http' : 'https';
    const peerScheme = this.config.peerTls === null ? 'http' : 'https';
    return this.config.members.map((m) => ({
      id: this.memberIds.get(m.id) ?? 0n,
      name: m.id,
      peerURLs: [`${peerScheme}://${formatAddress(m.peer)}`],
      clientURLs: [`${scheme}://${formatAddress(m.client)}`],
      isLearner: m.role === 'observer',
    }));
  }
}

/** etcd's Cluster changes over a MembershipManager: member ids to node ids, URLs to addresses. */
export function clusterMembership(manager: MembershipManager): ClusterMembership {
  const nodeOf = (id: bigint): string => {
    const n = manager.nodeIdOf(id);
    if (n === null) throw new MembershipError('memberNotFound', `no member has id ${id.toString(16)}`);
    return n;
  };
  const firstPeer = (urls: readonly string[]): { address: string; nodeId: string | null } => {
    const parsed = urls.map(parsePeerUrl);
    const first = parsed[0];
    if (first === undefined) throw new MembershipError('badUrls', 'no peer URL given');
    return first;
  };
  return {
    async add(peerURLs, isLearner, clientURLs) {
      const peer = firstPeer(peerURLs);
      const clients = clientURLs.map((u) => parsePeerUrl(u).address);
      const m = await manager.add({ ...(peer.nodeId !== null ? { nodeId: peer.nodeId } : {}), peer: peer.address, clients, learner: isLearner });
      return { id: m.id, name: m.name, peerURLs: m.peerURLs, clientURLs: m.clientURLs, isLearner: m.isLearner };
    },
    remove: (id) => manager.remove(nodeOf(id)),
    promote: (id) => manager.promote(nodeOf(id)),
    update: (id, peerURLs) => manager.update(nodeOf(id), firstPeer(peerURLs).address),
  };
}
