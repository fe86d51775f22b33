// Membership on a real node (docs/MEMBERSHIP.md): the members registry
// (src/services/members) and the runtime's configuration put together.
//
// - Addresses. A member's addresses come from its registry record, else from
//   the config file's member list. The transport gets a peer for every such
//   member (setPeer), updated whenever the registry or the configuration
//   changes; a peer that neither lists any more is removed from the
//   transport a minute later (DEPARTED_PEER_GRACE_MS: a removed member must
//   still reach us to learn of its removal).
// - Operations (add, remove, promote, update) run on the leader: a follower
//   forwards them on the runtime's membership channel (MEMBERSHIP_CHANNEL) and waits for the
//   answer, retrying while there is no leader, up to the request timeout
//   (etcd forwards member changes to its leader too). Add writes the
//   registry record first, then proposes addObserver; remove proposes the
//   removal, then drops the record (best effort: a removed leader may no
//   longer reach the new one; a stale record is never listed).
// - Promote when caught up: observers whose record says so are promoted by
//   the leader's runtime (NodeRuntime.setAutoPromote) once the core agrees.
// - Publishing. A member added at run time writes its own client addresses
//   into its record once it runs (etcd's members publish theirs the same way).
// - Removal. In push mode a removed follower never learns that its removal
//   committed; while it knows no leader it asks its peers once a second, and
//   one whose committed configuration no longer lists it says so
//   (NodeRuntime.confirmRemoved).
//
// Channel frames: UTF-8 JSON, checked field by field; a frame that does not
// parse is counted and dropped:
//   { t: 'req', id, op: 'add'|'remove'|'promote'|'update', args }
//   { t: 'res', id, ok: true, result } | { t: 'res', id, ok: false, code, message }
//   { t: 'removed?', index }   { t: 'removedAt', index }

import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { NotLeaderError } from '../core/errors.js';
import { MEMBERSHIP_CHANNEL } from '../node/channels.js';
import { NoLeaderError, RequestTimeoutError } from '../node/errors.js';
import type { NodeRuntime } from '../node/runtime.js';
import { nodeId, type NodeId } from '../protocol/ids.js';
import { encodeServiceCommand } from '../services/machine.js';
import { encodeMembersCommand, type MemberRecord, type MembersResult, type MembersStateMachine } from '../services/members/state-machine.js';
import type { TcpTransport } from '../transport/tcp.js';
import { formatAddress, parseAddress, type NodeConfig } from './config.js';
import { ETCD_STATUS, EtcdRequestError, etcdStatusOf, type EtcdStatus } from './etcd/errors.js';
import { idFromName } from './ids.js';

/** The runtime's transport channel for membership frames (numbered in src/node/channels.ts). */
export { MEMBERSHIP_CHANNEL };
/**
 * How long a peer that neither the config file nor the registry lists any
 * more stays known to the transport: long enough for a removed member to
 * learn of its removal from us (it asks once a second while leaderless, or
 * fetches in pull mode), short enough that departed members do not pile up.
 */
export const DEPARTED_PEER_GRACE_MS = 60_000;

/** One member as MemberList shows it. */
export interface MemberView {
  /** etcd's member id: idFromName(clusterId, nodeId). */
  readonly id: bigint;
  readonly nodeId: string;
  readonly name: string;
  readonly peerURLs: readonly string[];
  readonly clientURLs: readonly string[];
  readonly isLearner: boolean;
}

/** A request to add a member. */
export interface AddMemberRequest {
  /** The node id; generated (m-<hex>) when absent. */
  readonly nodeId?: string;
  /** host:port */
  readonly peer: string;
  /** host:port each */
  readonly clients: readonly string[];
  /** Stay an observer (etcd's learner) until promoted explicitly. */
  readonly learner: boolean;
}

/** Why a membership request failed, in etcd's terms (src/server/etcd/errors.ts maps each code to its status). */
export type MembershipErrorCode = 'memberNotFound' | 'memberExists' | 'peerUrlExists' | 'notLearner' | 'badUrls';

/** A membership request refused before anything was proposed. */
export class MembershipError extends Error {
  override readonly name = 'MembershipError';
  readonly code: MembershipErrorCode;
  constructor(code: MembershipErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

type Op = 'add' | 'remove' | 'promote' | 'update';
type Frame =
  | { t: 'req'; id: number; op: Op; args: unknown }
  | { t: 'res'; id: number; ok: true; result: unknown }
  | { t: 'res'; id: number; ok: false; code: number; message: string }
  | { t: 'removed?'; index: number }
  | { t: 'removedAt'; index: number };

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: true });
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Parses an etcd peer URL, http(s)://host:port[#nodeId], into host:port and
 * the node id its fragment names (quorumlog's way to name a member that
 * etcd's MemberAdd cannot). Throws MembershipError('badUrls').
 */
export function parsePeerUrl(u: string): { address: string; nodeId: string | null } {
  let url: URL;
  try {
    url = new URL(u);
  } catch (e) {
    throw new MembershipError('badUrls', `${JSON.stringify(u)} is not a URL`, { cause: e });
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.port === '' || (url.pathname !== '' && url.pathname !== '/') || url.search !== '') {
    throw new MembershipError('badUrls', `${JSON.stringify(u)} is not http(s)://host:port[#nodeId]`);
  }
  const frag = url.hash.replace(/^#/, '');
  if (frag !== '' && !NAME.test(frag)) throw new MembershipError('badUrls', `node id ${JSON.stringify(frag)} in ${JSON.stringify(u)} is not 1-64 letters, digits, '.', '_' or '-'`);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  let address: string;
  try {
    address = formatAddress(parseAddress(`${host.includes(':') ? `[${host}]` : host}:${url.port}`, 'peerURLs'));
  } catch (e) {
    throw new MembershipError('badUrls', `${JSON.stringify(u)}: ${(e as Error).message}`, { cause: e });
  }
  return { address, nodeId: frag === '' ? null : frag };
}

/** The membership side of a node; see the file comment. */
export class MembershipManager {
  private readonly log: Logger;
  private readonly selfId: NodeId;
  /** Peers the transport has because of us, with the address given. */
  private readonly peersSet = new Map<NodeId, string>();
  /** Peers no longer listed, with the timer that removes them from the transport. */
  private readonly departing = new Map<NodeId, NodeJS.Timeout>();
  private readonly waiting = new Map<number, { resolve: (r: unknown) => void; reject: (e: Error) => void }>();
  private nextReq = 1;
  private probeTimer: NodeJS.Timeout | null = null;
  private published = false;
  private publishing = false;
  private closed = false;
  private readonly unsubscribe: (() => void)[] = [];
  /** Frames on the membership channel that did not parse. */
  malformedFrames = 0;

  constructor(
    private readonly runtime: NodeRuntime,
    private readonly registry: MembersStateMachine,
    private readonly transport: Pick<TcpTransport, 'setPeer' | 'removePeer'>,
    private readonly config: NodeConfig,
    logger: Logger,
  ) {
    this.log = logger;
    this.selfId = nodeId(config.nodeId);
    for (const m of config.members) if (m.id !== config.nodeId) this.peersSet.set(nodeId(m.id), formatAddress(m.peer));
    runtime.onChannel(MEMBERSHIP_CHANNEL, (from, payload) => this.onFrame(from, payload));
    runtime.setAutoPromote((n) => this.registry.get(n)?.promoteWhenCaughtUp === true);
    this.unsubscribe.push(registry.onChange(() => this.syncPeers()));
    this.unsubscribe.push(runtime.onConfigurationChange(() => {
      this.syncPeers();
      this.armProbe();
    }));
    this.unsubscribe.push(runtime.onLeadershipChange(() => {
      this.maybePublish();
      this.armProbe();
    }));
    this.armProbe();
    this.syncPeers();
  }

  /** Stops timers and listeners; requests in flight fail. */
  close(): void {
    this.closed = true;
    if (this.probeTimer !== null) clearInterval(this.probeTimer);
    this.probeTimer = null;
    for (const t of this.departing.values()) clearTimeout(t);
    this.departing.clear();
    for (const u of this.unsubscribe) u();
    for (const w of this.waiting.values()) w.reject(new NoLeaderError());
    this.waiting.clear();
  }

  /** True once this node knows it was removed from the cluster. */
  get removed(): boolean {
    return this.runtime.removed;
  }

  // ---- addresses and peers ---------------------------------------------------

  /** A member's addresses: its registry record, else the config file's entry, else null. */
  addresses(id: string): { peer: string; clients: string[]; name: string } | null {
    const r = this.registry.get(id);
    if (r !== undefined) return { peer: r.peer, clients: [...r.clients], name: r.name ?? id };
    const m = this.config.members.find((x) => x.id === id);
    if (m !== undefined) return { peer: formatAddress(m.peer), clients: [formatAddress(m.client)], name: id };
    return null;
  }

  /** The configuration in force, as MemberList shows it: voters, then observers (etcd's learners). */
  list(): MemberView[] {
    const { config } = this.runtime.configuration();
    const peerScheme = this.config.peerTls === null ? 'http' : 'https';
    const clientScheme = this.config.clientTls === null ? 'http' : 'https';
    const view = (id: string, isLearner: boolean): MemberView => {
      const a = this.addresses(id);
      return {
        id: idFromName(this.config.clusterId, id), nodeId: id, name: a?.name ?? id,
        peerURLs: a === null ? [] : [`${peerScheme}://${a.peer}`],
        clientURLs: a === null ? [] : a.clients.map((c) => `${clientScheme}://${c}`),
        isLearner,
      };
    };
    return [...config.voters.map((v) => view(v, false)), ...config.observers.map((o) => view(o, true))];
  }

  /** The node id of the member with etcd id `id` (in the configuration, the registry or the config file), or null. */
  nodeIdOf(id: bigint): string | null {
    const { config } = this.runtime.configuration();
    const names = new Set<string>([...config.voters, ...config.observers, ...this.registry.all().map((r) => r.id), ...this.config.members.map((m) => m.id)]);
    for (const n of names) if (idFromName(this.config.clusterId, n) === id) return n;
    return null;
  }

  private syncPeers(): void {
    if (this.closed) return;
    const want = new Map<NodeId, string>();
    for (const m of this.config.members) want.set(nodeId(m.id), formatAddress(m.peer));
    for (const r of this.registry.all()) want.set(nodeId(r.id), r.peer);
    want.delete(this.selfId);
    for (const [id, addr] of want) {
      const t = this.departing.get(id);
      if (t !== undefined) {
        clearTimeout(t);
        this.departing.delete(id);
      }
      if (this.peersSet.get(id) === addr) continue;
      try {
        this.transport.setPeer(id, parseAddress(addr, `members.${id}.peer`));
        this.peersSet.set(id, addr);
      } catch (e) {
        this.log.warn({ peer: id, address: addr, err: (e as Error).message }, 'cannot use a member\'s peer address');
      }
    }
    for (const id of [...this.peersSet.keys()]) {
      if (want.has(id) || this.departing.has(id)) continue;
      const t = setTimeout(() => {
        this.departing.delete(id);
        if (this.closed) return;
        this.transport.removePeer(id);
        this.peersSet.delete(id);
      }, DEPARTED_PEER_GRACE_MS);
      t.unref();
      this.departing.set(id, t);
    }
    const { config } = this.runtime.configuration();
    for (const id of [...config.voters, ...config.observers]) {
      if (id !== this.selfId && !want.has(id)) this.log.debug({ peer: id }, `no address known for member ${id}`);
    }
    this.maybePublish();
  }

  /** A member added at run time writes its own addresses into its record once (when they differ). */
  private maybePublish(): void {
    if (this.published || this.publishing || this.closed || this.runtime.removed) return;
    const mine = this.registry.get(this.config.nodeId);
    const self = this.config.members.find((m) => m.id === this.config.nodeId);
    if (mine === undefined || self === undefined || this.runtime.leaderId() === null) return;
    const clients = [formatAddress(self.client)];
    if (mine.clients.length === clients.length && mine.clients.every((c, i) => c === clients[i])) {
      this.published = true;
      return;
    }
    this.publishing = true;
    this.putRecord({ ...mine, clients }).then(() => {
      this.published = true;
      this.log.info({ clients }, 'published this member\'s client addresses');
    }, (e: unknown) => {
      this.log.info({ err: (e as Error).message }, 'could not publish this member\'s client addresses yet; will retry');
    }).finally(() => {
      this.publishing = false;
    });
  }

  private async putRecord(record: MemberRecord): Promise<void> {
    const r = (await this.runtime.submit(encodeServiceCommand('members', encodeMembersCommand({ op: 'put', record })))) as MembersResult;
    if (r.type === 'error') throw new Error(`the members registry refused the record: ${r.message}`);
  }

  private async deleteRecord(id: string): Promise<void> {
    await this.runtime.submit(encodeServiceCommand('members', encodeMembersCommand({ op: 'delete', id })));
  }

  // ---- operations ---------------------------------------------------------------

  /** Adds a member (an observer, promoted when caught up unless `learner`); resolves with it once its addition commits. */
  async add(req: AddMemberRequest): Promise<MemberView> {
    const r = (await this.onLeader('add', req)) as MemberView | null;
    if (r !== null) return r;
    const id = req.nodeId ?? '';
    return this.list().find((m) => m.nodeId === id) ?? {
      id: idFromName(this.config.clusterId, id), nodeId: id, name: id, peerURLs: [`http://${req.peer}`], clientURLs: [], isLearner: true,
    };
  }

  /** Removes a member from the configuration (then its record); resolves once the removal commits. */
  remove(id: string): Promise<void> {
    return this.onLeader('remove', { id }).then(() => undefined);
  }

  /** Promotes an observer to voter; refused (NotCaughtUpError) while it lags. */
  promote(id: string): Promise<void> {
    return this.onLeader('promote', { id }).then(() => undefined);
  }

  /** Gives a member new peer address(es) (the first is used). */
  update(id: string, peer: string): Promise<void> {
    return this.onLeader('update', { id, peer }).then(() => undefined);
  }

  /** Runs `op` here when leading, else forwards it to the leader; retries while there is none, up to the request timeout. */
  private async onLeader(op: Op, args: unknown): Promise<unknown> {
    const deadline = performance.now() + this.config.requestTimeoutMs;
    for (;;) {
      if (this.closed) throw new NoLeaderError();
      const leader = this.runtime.leaderId();
      try {
        if (leader === this.selfId) return await this.execute(op, args);
        if (leader !== null) return await this.forward(leader, op, args, deadline);
      } catch (e) {
        // the leader changed under us: try the next one
        if (!(e instanceof NotLeaderError) && !(e instanceof EtcdRequestError && e.status.message === ETCD_STATUS.notLeader.message)) throw e;
      }
      if (performance.now() > deadline) throw leader === null ? new NoLeaderError() : new RequestTimeoutError(`a membership ${op}`, this.config.requestTimeoutMs);
      await sleep(50);
    }
  }

  private forward(leader: NodeId, op: Op, args: unknown, deadline: number): Promise<unknown> {
    const id = this.nextReq++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new RequestTimeoutError(`a membership ${op} forwarded to ${leader}`, this.config.requestTimeoutMs));
      }, Math.max(1, deadline - performance.now()));
      timer.unref();
      this.waiting.set(id, {
        resolve: (r) => { clearTimeout(timer); resolve(r); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
      if (!this.send(leader, { t: 'req', id, op, args })) {
        this.waiting.delete(id);
        clearTimeout(timer);
        reject(new NotLeaderError(leader));
      }
    });
  }

  /** Runs an operation on this node, which must lead. */
  private async execute(op: Op, args: unknown): Promise<unknown> {
    const a = args as Record<string, unknown>;
    const str = (k: string): string => {
      const v = a[k];
      if (typeof v !== 'string') throw new MembershipError('badUrls', `${k} is missing`);
      return v;
    };
    const { config } = this.runtime.configuration();
    const inConfig = (id: string): boolean => config.voters.includes(nodeId(id)) || config.observers.includes(nodeId(id));
    switch (op) {
      case 'add': {
        const peer = str('peer');
        const clients = Array.isArray(a['clients']) ? (a['clients'] as unknown[]).filter((c): c is string => typeof c === 'string') : [];
        const learner = a['learner'] === true;
        const id = typeof a['nodeId'] === 'string' ? a['nodeId'] : `m-${randomBytes(4).toString('hex')}`;
        if (!NAME.test(id)) throw new MembershipError('badUrls', `node id ${JSON.stringify(id)} is not 1-64 letters, digits, '.', '_' or '-'`);
        if (inConfig(id) || id === this.config.nodeId) throw new MembershipError('memberExists', `${id} is already a member`);
        for (const m of [...config.voters, ...config.observers]) {
          if (this.addresses(m)?.peer === peer) throw new MembershipError('peerUrlExists', `${peer} is the peer address of ${m}`);
        }
        await this.putRecord({ id, peer, clients, promoteWhenCaughtUp: !learner });
        try {
          await this.runtime.changeMembership({ kind: 'addObserver', node: nodeId(id) });
        } catch (e) {
          this.deleteRecord(id).catch(() => undefined);
          throw e;
        }
        this.log.info({ node: id, peer, learner }, `added member ${id} (${learner ? 'learner' : 'promoted once caught up'})`);
        return this.list().find((m) => m.nodeId === id) ?? null;
      }
      case 'remove': {
        const id = str('id');
        if (!inConfig(id)) throw new MembershipError('memberNotFound', `${id} is not a member`);
        await this.runtime.changeMembership({ kind: 'remove', node: nodeId(id) });
        this.log.info({ node: id }, `removed member ${id}`);
        if (this.registry.get(id) !== undefined) {
          this.deleteRecord(id).catch((e: unknown) => this.log.info({ node: id, err: (e as Error).message }, 'could not drop the removed member\'s record (it is not listed)'));
        }
        return null;
      }
      case 'promote': {
        const id = str('id');
        if (config.voters.includes(nodeId(id))) throw new MembershipError('notLearner', `${id} is a voter already`);
        if (!config.observers.includes(nodeId(id))) throw new MembershipError('memberNotFound', `${id} is not a member`);
        await this.runtime.changeMembership({ kind: 'promote', node: nodeId(id) });
        this.log.info({ node: id }, `promoted member ${id}`);
        return null;
      }
      case 'update': {
        const id = str('id');
        const peer = str('peer');
        if (!inConfig(id)) throw new MembershipError('memberNotFound', `${id} is not a member`);
        for (const m of [...config.voters, ...config.observers]) {
          if (m !== id && this.addresses(m)?.peer === peer) throw new MembershipError('peerUrlExists', `${peer} is the peer address of ${m}`);
        }
        const cur = this.addresses(id);
        const rec = this.registry.get(id);
        await this.putRecord({
          id, peer, clients: cur?.clients ?? [], ...(rec?.name !== undefined ? { name: rec.name } : {}), promoteWhenCaughtUp: rec?.promoteWhenCaughtUp ?? false,
        });
        this.log.info({ node: id, peer }, `member ${id} now at ${peer}`);
        return null;
      }
    }
  }

  // ---- removal probe --------------------------------------------------------------

  /** While leaderless, a node that was a member asks whether it has been removed (see the file comment). */
  /**
   * The removal probe runs once a second only while this node knows no
   * leader (the only time it can be a removed member that nobody tells): an
   * idle node with a leader keeps no timer for it (idle CPU is benchmarked).
   */
  private armProbe(): void {
    const want = !this.closed && !this.runtime.removed && this.runtime.leaderId() === null;
    if (want && this.probeTimer === null) {
      this.probeTimer = setInterval(() => this.probeRemoval(), 1000);
      this.probeTimer.unref();
    } else if (!want && this.probeTimer !== null) {
      clearInterval(this.probeTimer);
      this.probeTimer = null;
    }
  }

  private probeRemoval(): void {
    if (this.closed || this.runtime.removed || this.runtime.leaderId() !== null) return;
    const cfg = this.runtime.configuration();
    const listed = cfg.config.voters.includes(this.selfId) || cfg.config.observers.includes(this.selfId);
    const wasMember = (cfg.index > 0 && listed) || this.config.members.some((m) => m.id === this.config.nodeId && m.role === 'voter');
    if (!wasMember) return;
    for (const peer of this.peersSet.keys()) this.send(peer, { t: 'removed?', index: cfg.index });
  }

  // ---- frames ---------------------------------------------------------------------

  private send(to: NodeId, f: Frame): boolean {
    return this.runtime.sendChannel(to, MEMBERSHIP_CHANNEL, utf8.encode(JSON.stringify(f)));
  }

  private onFrame(from: NodeId, payload: Uint8Array): void {
    const f = parseFrame(payload);
    if (f === null) {
      this.malformedFrames++;
      this.log.warn({ peer: from }, 'dropped a malformed membership frame');
      return;
    }
    switch (f.t) {
      case 'req': {
        const reply = (r: Frame): void => void this.send(from, r);
        if (this.runtime.leaderId() !== this.selfId) {
          reply({ t: 'res', id: f.id, ok: false, code: ETCD_STATUS.notLeader.code, message: ETCD_STATUS.notLeader.message });
          return;
        }
        this.execute(f.op, f.args).then(
          (result) => reply({ t: 'res', id: f.id, ok: true, result: result === null ? null : viewToJson(result as MemberView) }),
          (e: unknown) => {
            const s: EtcdStatus = etcdStatusOf(e) ?? { code: 13, message: `etcdserver: ${(e as Error).message}` };
            reply({ t: 'res', id: f.id, ok: false, code: s.code, message: s.message });
          },
        );
        return;
      }
      case 'res': {
        const w = this.waiting.get(f.id);
        if (w === undefined) return;
        this.waiting.delete(f.id);
        if (f.ok) w.resolve(f.result === null ? null : viewFromJson(f.result));
        else w.reject(new EtcdRequestError({ code: f.code, message: f.message }));
        return;
      }
      case 'removed?': {
        const cfg = this.runtime.configuration();
        if (!cfg.committed || cfg.index < f.index) return;
        if (cfg.config.voters.includes(from) || cfg.config.observers.includes(from)) return;
        this.send(from, { t: 'removedAt', index: cfg.index });
        return;
      }
      case 'removedAt':
        this.runtime.confirmRemoved(f.index, from);
        return;
    }
  }
}

function viewToJson(v: MemberView): unknown {
  return { ...v, id: v.id.toString() };
}

function viewFromJson(o: unknown): MemberView | null {
  if (typeof o !== 'object' || o === null) return null;
  const v = o as Record<string, unknown>;
  try {
    return {
      id: BigInt(String(v['id'])), nodeId: String(v['nodeId']), name: String(v['name']),
      peerURLs: Array.isArray(v['peerURLs']) ? v['peerURLs'].map(String) : [],
      clientURLs: Array.isArray(v['clientURLs']) ? v['clientURLs'].map(String) : [],
      isLearner: v['isLearner'] === true,
    };
  } catch {
    return null;
  }
}

/** Parses a membership frame; null when it is not one. */
export function parseFrame(payload: Uint8Array): Frame | null {
  let o: unknown;
  try {
    o = JSON.parse(utf8Strict.decode(payload));
  } catch {
    return null;
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return null;
  const f = o as Record<string, unknown>;
  const int = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  switch (f['t']) {
    case 'req':
      if (!int(f['id']) || !['add', 'remove', 'promote', 'update'].includes(f['op'] as string) || typeof f['args'] !== 'object' || f['args'] === null) return null;
      return { t: 'req', id: f['id'], op: f['op'] as Op, args: f['args'] };
    case 'res':
      if (!int(f['id'])) return null;
      if (f['ok'] === true) return { t: 'res', id: f['id'], ok: true, result: f['result'] ?? null };
      if (f['ok'] === false && int(f['code']) && typeof f['message'] === 'string') return { t: 'res', id: f['id'], ok: false, code: f['code'], message: f['message'] };
      return null;
    case 'removed?':
    case 'removedAt':
      return int(f['index']) ? { t: f['t'], index: f['index'] } : null;
    default:
      return null;
  }
}
