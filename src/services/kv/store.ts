// The etcd v3 MVCC key-value state machine. Every replica applies the same
// committed KvCommands in the same order and ends in the same state, so this
// file is pure: no I/O, clocks, timers or randomness, and iteration orders are
// all defined (sorted index, arrays; no reliance on Map order for results).
//
// Model (etcd's mvcc): a revision counter (1 for an empty store) that every
// applied write bumps by exactly one (a txn's writes share a revision and are
// ordered by sub-revision); per key, the list of its writes (puts and delete
// tombstones) since the compaction revision. Reads at a past revision look up,
// per key, the latest write at or below it.
//
// Costs (n = keys in the index, k = keys in the requested range including
// tombstoned ones not yet compacted, h = writes of one key kept, c = changes
// since the requested revision):
//   put                    O(log n + log h), plus O(B + n/B) to insert a new key (B = SortedIndex.CHUNK_MAX_ITEMS)
//   range / deleteRange    O(log n + k log h) (+ O(k log k) when sorting)
//   eventsSince            O(log C + c) where C is all changes kept
//   compact                O(n + C) (rewrites the index and the change log)
//   snapshot / restore     O(total writes kept), restore O(C log C) to rebuild the change log
//   leaseGrant             O(1); leaseRevoke O(a log a + a (log n + log h)) for a attached keys
//
// Leases (etcd's lessor, minus the clock): the store holds each lease's id
// and granted TTL and the set of live keys attached to it; a put with a lease
// attaches the key (detaching it from its previous lease), a put without one
// or a delete detaches it, and a revoke deletes every attached key in one
// revision. When a lease expires is not decided here: the leader's lessor
// (src/server/lessor.ts) keeps deadlines in memory and proposes the expiry.
// Lease epochs: a new leader first logs an epoch (its term); an expiry
// carries the term of the leader that decided it and does nothing once a
// later epoch has applied, so a deposed leader's late expiry cannot revoke a
// lease its successor has renewed.
import { ByteReader, ByteWriter, KvCodecError } from './codec.js';
import { idOf, keySpan, SortedIndex, spanContains, type KeySpan } from './key-range.js';
import {
  KvError,
  type Compare,
  type DeleteRangeRequest,
  type DeleteRangeResponse,
  type KeyValue,
  type KvCommand,
  type KvErrorCode,
  type KvEvent,
  type KvResult,
  type LeaseChange,
  type LeaseInfo,
  MAX_LEASE_TTL_SECONDS,
  type PutRequest,
  type PutResponse,
  type RangeRequest,
  type RangeResponse,
  type RequestOp,
  type ResponseOp,
  type TxnRequest,
  type TxnResponse,
} from './types.js';

/** The most compares / ops one txn level may hold (etcd's --max-txn-ops default); nested txns get what their parent leaves. */
export const MAX_TXN_OPS = 128;

/** The snapshot format version written by KvStore.snapshot(): 2 adds leases; restore reads 1 (no leases) too. */
export const SNAPSHOT_FORMAT_VERSION = 2;
const SNAPSHOT_MAGIC = new Uint8Array([0x51, 0x4b, 0x56, 0x53]); // "QKVS"

/** Approximate bookkeeping bytes per kept write, for sizeBytes(). */
const ENTRY_OVERHEAD_BYTES = 64;

/** Thrown by KvStore.restore on a malformed or inconsistent snapshot; the store is left unchanged. */
export class KvSnapshotError extends Error {
  override readonly name = 'KvSnapshotError';
  /** Byte offset of the problem in the snapshot (-1 when it is a consistency check over the whole state). */
  readonly offset: number;
  constructor(message: string, offset: number, options?: { cause?: unknown }) {
    super(message, options);
    this.offset = offset;
  }
}

/** etcd's messages for each error code (rpctypes / mvcc), for KvResult.message and KvError.message. */
export const KV_ERROR_MESSAGES: Readonly<Record<KvErrorCode, string>> = {
  compacted: 'mvcc: required revision has been compacted',
  futureRevision: 'mvcc: required revision is a future revision',
  keyNotFound: 'etcdserver: key not found',
  emptyKey: 'etcdserver: key is not provided',
  duplicateKey: 'etcdserver: duplicate key given in txn request',
  tooManyOps: 'etcdserver: too many operations in txn request',
  leaseNotFound: 'etcdserver: requested lease not found',
  leaseExists: 'etcdserver: lease already exists',
  leaseTtlTooLarge: 'etcdserver: too large lease TTL',
};

function kvError(code: KvErrorCode): KvError {
  return new KvError(code, KV_ERROR_MESSAGES[code]);
}

const EMPTY = new Uint8Array(0);

/** The response of every put that returns no previous value (shared: responses are read-only). */
const NO_PREV_KV: PutResponse = Object.freeze({ prevKv: null });

/**
 * One write of one key. Invariants: kv.modRevision is the write's revision;
 * a tombstone has version 0, createRevision 0, lease 0 and an empty value;
 * a put has version >= 1 and createRevision <= modRevision.
 */
interface Entry {
  readonly sub: number;
  readonly tombstone: boolean;
  readonly kv: KeyValue;
  /** The key it is a write of (the entry is in record.history); the change log holds entries, so one object serves both. */
  readonly record: KeyRecord;
}

/**
 * A key and its kept writes. Invariants: history is non-empty, ordered by
 * (modRevision, sub) strictly increasing, starts with a put; a put after a put
 * has version + 1 and the same createRevision; a put first or after a tombstone
 * has version 1 and createRevision = its modRevision unless it is the single
 * write kept at or below the compaction revision.
 */
interface KeyRecord {
  readonly id: string;
  readonly key: Uint8Array;
  history: Entry[];
}

/**
 * A granted lease. Invariants: id != 0; 1 <= ttlSeconds <= MAX_LEASE_TTL_SECONDS; keys holds exactly the ids of the
 * live keys whose latest write is a put with this lease.
 */
interface LeaseRecord {
  readonly id: number;
  readonly ttlSeconds: number;
  readonly keys: Set<string>;
}

/**
 * The whole replicated state. Invariants (checked by checkState):
 * 1 <= revision; 0 <= compactRevision <= revision; index sorted by id strictly
 * (SortedIndex's invariants), byId holds exactly the index's records; changes = every kept write with
 * modRevision > compactRevision ordered by (modRevision, sub), and every
 * revision in (max(1, compactRevision), revision] has at least one; each
 * record keeps at most one write at or below compactRevision, and it is a put;
 * every live key with a lease != 0 is in that lease's keys (LeaseRecord's invariants).
 */
class MvccState {
  revision = 1;
  compactRevision = 0;
  index = new SortedIndex<KeyRecord>();
  readonly byId = new Map<string, KeyRecord>();
  /** The change log (what watchers replay): kept writes, each also in its record's history. */
  changes: Entry[] = [];
  bytesHeld = 0;
  /** Granted leases by id (never iterated for a result without sorting). */
  readonly leases = new Map<number, LeaseRecord>();
  /** The latest lease epoch applied (0: none): the term of the leader whose lessor decides expiry. */
  leaseTerm = 0;
}

function entryBytes(record: KeyRecord, entry: Entry): number {
  return record.key.length + entry.kv.value.length + ENTRY_OVERHEAD_BYTES;
}

function changeRevision(c: Entry): number {
  return c.kv.modRevision;
}

/** The index of the latest write of `history` at or below `revision`, or -1. O(log h). */
function latestIndexAt(history: readonly Entry[], revision: number): number {
  let lo = 0;
  let hi = history.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((history[mid] as Entry).kv.modRevision <= revision) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

/** The key's value at `revision`, or null when absent (never written, or deleted). */
function liveAt(record: KeyRecord, revision: number): KeyValue | null {
  const e = record.history[latestIndexAt(record.history, revision)];
  return e === undefined || e.tombstone ? null : e.kv;
}

/** First change at or after `revision` in the change log. O(log C). */
function firstChangeAt(changes: readonly Entry[], revision: number): number {
  let lo = 0;
  let hi = changes.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (changeRevision(changes[mid] as Entry) < revision) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(a, b);
}

function compareNumbers(a: number, b: number): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

const ZERO_KV: KeyValue = { key: EMPTY, createRevision: 0, modRevision: 0, version: 0, value: EMPTY, lease: 0 };

/** etcd's compareKV: the compare's result against one key's value (ZERO_KV for a missing key). */
function compareHoldsFor(c: Compare, kv: KeyValue): boolean {
  let r: number;
  switch (c.target) {
    case 'version': r = compareNumbers(kv.version, c.version); break;
    case 'create': r = compareNumbers(kv.createRevision, c.createRevision); break;
    case 'mod': r = compareNumbers(kv.modRevision, c.modRevision); break;
    case 'lease': r = compareNumbers(kv.lease, c.lease); break;
    case 'value': r = compareBytes(kv.value, c.value); break;
  }
  switch (c.result) {
    case 'equal': return r === 0;
    case 'notEqual': return r !== 0;
    case 'greater': return r > 0;
    case 'less': return r < 0;
  }
}

/** True when no branch of the txn (nested txns included) holds a put or a deleteRange. */
export function isReadOnlyTxn(t: TxnRequest): boolean {
  const reads = (ops: readonly RequestOp[]): boolean => ops.every((op) => op.type === 'range' || (op.type === 'txn' && isReadOnlyTxn(op.request)));
  return reads(t.success) && reads(t.failure);
}

/** etcd's checkTxnRequest: op counts (tooManyOps) and empty keys, recursively with the budget the parent leaves. */
function checkTxnShape(t: TxnRequest, maxOps: number): KvErrorCode | null {
  const opc = Math.max(t.compare.length, t.success.length, t.failure.length);
  if (opc > maxOps) return 'tooManyOps';
  for (const c of t.compare) if (c.key.length === 0) return 'emptyKey';
  for (const op of [...t.success, ...t.failure]) {
    const err = op.type === 'txn' ? checkTxnShape(op.request, maxOps - opc) : op.request.key.length === 0 ? 'emptyKey' : null;
    if (err !== null) return err;
  }
  return null;
}

function inAnySpan(spans: readonly KeySpan[], id: string): boolean {
  return spans.some((s) => spanContains(s, id));
}

/**
 * etcd's checkIntervals: within one txn no key may be put twice, nor put and
 * deleted, except that the success and failure branches of a nested txn may
 * put the same key (only one runs). Returns null on a duplicate.
 * Deviation: etcd builds its delete interval from the raw rangeEnd, so a
 * rangeEnd of [0x00] ("every key >= key") makes an empty interval there and
 * conflicts with nothing; here it means what the range means (>= key).
 * Like etcd, a put in an earlier nested txn and a delete of it in a later
 * sibling nested txn pass (the key then gets two writes in one revision).
 */
function checkIntervals(ops: readonly RequestOp[]): { puts: Set<string>; dels: KeySpan[] } | null {
  const dels: KeySpan[] = [];
  for (const op of ops) if (op.type === 'deleteRange') dels.push(keySpan(op.request.key, op.request.rangeEnd));
  const puts = new Set<string>();
  for (const op of ops) {
    if (op.type !== 'txn') continue;
    const then = checkIntervals(op.request.success);
    if (then === null) return null;
    const otherwise = checkIntervals(op.request.failure);
    if (otherwise === null) return null;
    for (const k of then.puts) {
      if (puts.has(k) || inAnySpan(dels, k)) return null;
      puts.add(k);
    }
    for (const k of otherwise.puts) {
      if (puts.has(k) && !then.puts.has(k)) return null;
      if (inAnySpan(dels, k)) return null;
      puts.add(k);
    }
    dels.push(...then.dels, ...otherwise.dels);
  }
  for (const op of ops) {
    if (op.type !== 'put') continue;
    const k = idOf(op.request.key);
    if (puts.has(k) || inAnySpan(dels, k)) return null;
    puts.add(k);
  }
  return { puts, dels };
}

/** Which branch each (nested) txn takes, decided up front on the state before the txn's writes (etcd's compareToPath). */
interface TxnPlan {
  readonly succeeded: boolean;
  readonly ops: readonly RequestOp[];
  /** For each op of `ops` that is a txn, its plan (same index); undefined for the others. */
  readonly nested: readonly (TxnPlan | undefined)[];
}

/**
 * The writes of one apply: they all get `revision`, ordered by `sub`; `sub` is also how many there were so far.
 * They go to the histories and the change log as they are made (nothing after the first write can fail); `events`
 * collects them for the listeners, only when there are listeners (null otherwise).
 */
interface WriteBatch {
  readonly revision: number;
  sub: number;
  events: KvEvent[] | null;
}

/**
 * The etcd v3 MVCC store: a deterministic state machine over committed KvCommands. See the file header for costs.
 * KeyValues and events it hands out are its own objects, shared with its history: treat them (and their bytes) as
 * read-only. Invariants: those of MvccState; checkInvariants() asserts them.
 */
export class KvStore {
  private s = new MvccState();
  private readonly listeners: ((events: readonly KvEvent[], revision: number) => void)[] = [];
  private readonly leaseListeners: ((change: LeaseChange) => void)[] = [];

  /** The current revision; 1 for an empty store (as etcd). */
  get revision(): number {
    return this.s.revision;
  }

  /** Revisions below this are forgotten; 0 before any compaction. (etcd: compact_revision) */
  get compactRevision(): number {
    return this.s.compactRevision;
  }

  /** Applies one committed command. Deterministic. Never throws for a decodable command: etcd-level failures come back as {type:'error'} (no revision is used). Listener exceptions are rethrown after the state is updated and every listener ran. Copies every byte it keeps: `cmd`'s byte strings may be views into a log entry (decodeCommandView). */
  apply(cmd: KvCommand): KvResult {
    switch (cmd.type) {
      case 'put': return this.applyPut(cmd.request);
      case 'deleteRange': return this.applyDelete(cmd.request);
      case 'txn': return this.applyTxn(cmd.request);
      case 'compact': return this.applyCompact(cmd.request.revision);
      case 'leaseGrant': return this.applyLeaseGrant(cmd.request.id, cmd.request.ttlSeconds);
      case 'leaseRevoke': return this.applyLeaseRevoke(cmd.request.id);
      case 'leaseExpire': return this.applyLeaseExpire(cmd.request.id, cmd.request.term);
      case 'leaseEpoch': return this.applyLeaseEpoch(cmd.request.term);
    }
  }

  // ---- leases ----

  /** The lease with this id, or null. O(1). */
  lease(id: number): LeaseInfo | null {
    const l = this.s.leases.get(id);
    return l === undefined ? null : { id: l.id, ttlSeconds: l.ttlSeconds };
  }

  /** Every lease, by id ascending. O(L log L). */
  leases(): LeaseInfo[] {
    return [...this.s.leases.values()].map((l) => ({ id: l.id, ttlSeconds: l.ttlSeconds })).sort((a, b) => compareNumbers(a.id, b.id));
  }

  /** The keys attached to a lease, in key order; empty when the lease does not exist. O(a log a). */
  leaseKeys(id: number): Uint8Array[] {
    const l = this.s.leases.get(id);
    if (l === undefined) return [];
    return [...l.keys].sort(compareIds).map((k) => (this.s.byId.get(k) as KeyRecord).key);
  }

  /** The latest lease epoch applied: the term of the leader that now decides expiry (0 before any). */
  get leaseTerm(): number {
    return this.s.leaseTerm;
  }

  /** How many leases exist. O(1). */
  get leaseCount(): number {
    return this.s.leases.size;
  }

  /**
   * Called synchronously after every lease grant and revoke applied here (a revoke after its deletes reached the
   * event listeners), and with 'reset' after a restore. The leader's lessor follows the set of leases this way.
   * Returns an unsubscribe function.
   */
  onLeaseChange(listener: (change: LeaseChange) => void): () => void {
    this.leaseListeners.push(listener);
    return () => {
      const i = this.leaseListeners.indexOf(listener);
      if (i >= 0) this.leaseListeners.splice(i, 1);
    };
  }

  private tellLeaseListeners(change: LeaseChange): void {
    const errors: unknown[] = [];
    for (const listener of [...this.leaseListeners]) {
      try {
        listener(change);
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, 'KvStore lease listeners failed');
  }

  /** KV.Range at req.revision (0 or below = current). Throws KvError('emptyKey' | 'compacted' | 'futureRevision'). */
  range(req: RangeRequest): RangeResponse {
    if (req.key.length === 0) throw kvError('emptyKey');
    const err = this.readRevisionError(req.revision);
    if (err !== null) throw kvError(err);
    return this.rangeAt(req, req.revision > 0 ? req.revision : this.s.revision);
  }

  /**
   * Evaluates a txn none of whose branches write (nested txns included) against the current state, exactly as
   * apply would (same checks, compares and responses), without going through the log: etcd serves such a Txn as a
   * read. Throws KvError for what apply would return as {type:'error'}, and TypeError if any branch holds a write.
   */
  readTxn(t: TxnRequest): TxnResponse {
    if (!isReadOnlyTxn(t)) throw new TypeError('readTxn: the txn has a branch that writes');
    const result = this.applyTxn(t);
    if (result.type === 'error') throw kvError(result.error);
    if (result.type !== 'txn' || result.revision !== this.s.revision) throw new Error('readTxn: a read-only txn changed the store');
    return result.response;
  }

  /**
   * Watch history: the events of revisions [fromRevision, revision], in revision order (events of one revision in
   * the order applied), for keys in the range (key, rangeEnd with etcd's meaning), at most maxEvents (0 = no limit)
   * but never splitting one revision's events — the first revision with events is returned whole even when it alone
   * holds more than maxEvents, so a caller always makes progress. `prevKv` fills KvEvent.prevKv.
   * fromRevision <= 0 means "from now": no past events. Throws KvError('compacted') when 0 < fromRevision <= compactRevision.
   * O(log C + changes since fromRevision), whatever the key range.
   */
  eventsSince(fromRevision: number, key: Uint8Array, rangeEnd: Uint8Array, prevKv: boolean, maxEvents: number): KvEvent[] {
    if (fromRevision <= 0) return [];
    if (fromRevision <= this.s.compactRevision) throw kvError('compacted');
    const span = keySpan(key, rangeEnd);
    const out: KvEvent[] = [];
    const changes = this.s.changes;
    let i = firstChangeAt(changes, fromRevision);
    while (i < changes.length) {
      const revision = changeRevision(changes[i] as Entry);
      const ofRevision: KvEvent[] = [];
      for (; i < changes.length && changeRevision(changes[i] as Entry) === revision; i++) {
        const c = changes[i] as Entry;
        if (spanContains(span, c.record.id)) ofRevision.push(eventOf(c, prevKv));
      }
      if (ofRevision.length === 0) continue;
      if (maxEvents > 0 && out.length > 0 && out.length + ofRevision.length > maxEvents) break;
      out.push(...ofRevision);
      if (maxEvents > 0 && out.length >= maxEvents) break;
    }
    return out;
  }

  /** Called synchronously after every apply that created a revision, with that revision's events (all keys; prevKv always filled when there was one). Returns an unsubscribe function. */
  onEvents(listener: (events: readonly KvEvent[], revision: number) => void): () => void {
    this.listeners.push(listener);
    return () => {
      const i = this.listeners.indexOf(listener);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  /**
   * The whole state (current keys, history since compactRevision, revision counters) as bytes; versioned binary
   * format: "QKVS", int formatVersion, int revision, int compactRevision, count keys, then per key (in key order)
   * bytes key, count writes, then per write int modRevision, int sub, u8 tombstone, and for a put int createRevision,
   * int version, bytes value, int lease (ints and counts as in codec.ts); then (version 2) count leases and per lease
   * (by id ascending) int id, int ttlSeconds — the keys of a lease are not stored: they are the live keys that name it —
   * and int leaseTerm.
   * Identical states give identical bytes.
   */
  snapshot(): Uint8Array {
    const s = this.s;
    const w = new ByteWriter();
    w.raw(SNAPSHOT_MAGIC);
    w.int(SNAPSHOT_FORMAT_VERSION);
    w.int(s.revision);
    w.int(s.compactRevision);
    w.count(s.index.size);
    for (const record of s.index) {
      w.bytes(record.key);
      w.count(record.history.length);
      for (const e of record.history) {
        w.int(e.kv.modRevision);
        w.int(e.sub);
        w.u8(e.tombstone ? 1 : 0);
        if (e.tombstone) continue;
        w.int(e.kv.createRevision);
        w.int(e.kv.version);
        w.bytes(e.kv.value);
        w.int(e.kv.lease);
      }
    }
    const leases = this.leases();
    w.count(leases.length);
    for (const l of leases) {
      w.int(l.id);
      w.int(l.ttlSeconds);
    }
    w.int(s.leaseTerm);
    return w.finish();
  }

  /** Replaces this store's state with a snapshot's (listeners stay subscribed, and are not called). Throws KvSnapshotError on malformed or inconsistent input, leaving the store unchanged. */
  restore(data: Uint8Array): void {
    const r = new ByteReader(data);
    const next = new MvccState();
    const records: KeyRecord[] = [];
    try {
      const magic = r.raw(SNAPSHOT_MAGIC.length);
      if (compareBytes(magic, SNAPSHOT_MAGIC) !== 0) throw new KvSnapshotError('not a kv snapshot (bad magic)', 0);
      const version = r.int();
      if (version !== 1 && version !== SNAPSHOT_FORMAT_VERSION) throw new KvSnapshotError(`unsupported snapshot format version ${version}`, 4);
      next.revision = r.int();
      next.compactRevision = r.int();
      for (let n = r.count(); n > 0; n--) {
        const at = r.position;
        const key = r.bytes();
        const record: KeyRecord = { id: idOf(key), key, history: [] };
        const last = records[records.length - 1];
        if (key.length === 0 || (last !== undefined && last.id >= record.id)) throw new KvSnapshotError('keys not strictly ascending', at);
        for (let m = r.count(); m > 0; m--) {
          const modRevision = r.int();
          const sub = r.int();
          const tombstone = r.flags(1) === 1;
          const kv: KeyValue = tombstone
            ? { key, createRevision: 0, modRevision, version: 0, value: EMPTY, lease: 0 }
            : { key, modRevision, createRevision: r.int(), version: r.int(), value: r.bytes(), lease: r.int() };
          const entry: Entry = { sub, tombstone, kv, record };
          record.history.push(entry);
          next.bytesHeld += entryBytes(record, entry);
          if (modRevision > next.compactRevision) next.changes.push(entry);
        }
        records.push(record);
        next.byId.set(record.id, record);
      }
      if (version >= 2) {
        let lastId = -Infinity;
        for (let n = r.count(2); n > 0; n--) {
          const at = r.position;
          const id = r.int();
          const ttlSeconds = r.int();
          if (id === 0 || id <= lastId) throw new KvSnapshotError('lease ids not nonzero and strictly ascending', at);
          if (ttlSeconds < 1 || ttlSeconds > MAX_LEASE_TTL_SECONDS) throw new KvSnapshotError(`lease TTL ${ttlSeconds} out of range`, at);
          lastId = id;
          next.leases.set(id, { id, ttlSeconds, keys: new Set() });
        }
        const at = r.position;
        next.leaseTerm = r.int();
        if (next.leaseTerm < 0) throw new KvSnapshotError(`lease term ${next.leaseTerm} is negative`, at);
      }
      r.end();
      for (const record of records) {
        const last = record.history[record.history.length - 1];
        if (last === undefined || last.tombstone || last.kv.lease === 0) continue;
        const lease = next.leases.get(last.kv.lease);
        if (lease === undefined) throw new KvSnapshotError(`key attached to lease ${last.kv.lease}, which does not exist`, -1);
        lease.keys.add(record.id);
      }
      next.index = new SortedIndex(records);
    } catch (err) {
      if (err instanceof KvSnapshotError) throw err;
      if (err instanceof KvCodecError) throw new KvSnapshotError(`malformed snapshot: ${err.message}`, err.offset, { cause: err });
      throw err;
    }
    next.changes.sort((a, b) => changeRevision(a) - changeRevision(b) || a.sub - b.sub);
    const problem = checkState(next);
    if (problem !== null) throw new KvSnapshotError(`inconsistent snapshot: ${problem}`, -1);
    this.s = next;
    this.tellLeaseListeners({ type: 'reset' });
  }

  /** Approximate bytes held (for Maintenance.Status db_size): keys and values of every kept write plus a fixed overhead each. O(1). */
  sizeBytes(): number {
    return this.s.bytesHeld;
  }

  /** Throws an Error naming the first broken invariant of the state (see MvccState). O(total writes kept). For tests. */
  checkInvariants(): void {
    const problem = checkState(this.s);
    if (problem !== null) throw new Error(`KvStore invariant broken: ${problem}`);
  }

  // ---- reads ----

  /** The error a read at `revision` raises against the current state, if any (etcd's mvcc rangeKeys order). */
  private readRevisionError(revision: number): KvErrorCode | null {
    if (revision > this.s.revision) return 'futureRevision';
    if (revision > 0 && revision < this.s.compactRevision) return 'compacted';
    return null;
  }

  /** The live key-values of a span at `revision`, in key order. */
  private liveIn(span: KeySpan, revision: number): KeyValue[] {
    const out: KeyValue[] = [];
    for (const record of this.s.index.within(span)) {
      const kv = liveAt(record, revision);
      if (kv !== null) out.push(kv);
    }
    return out;
  }

  /** etcd's Range (apply side) at an already-validated revision. */
  private rangeAt(req: RangeRequest, revision: number): RangeResponse {
    const filtered = req.minModRevision !== 0 || req.maxModRevision !== 0 || req.minCreateRevision !== 0 || req.maxCreateRevision !== 0;
    // etcd: sortOrder none with a target other than key means ascend; key + ascend is the index order already.
    let order = req.sortOrder;
    if (req.sortTarget !== 'key' && order === 'none') order = 'ascend';
    else if (req.sortTarget === 'key' && order === 'ascend') order = 'none';
    // Without sorting or filters only limit + 1 key-values are needed (the +1 tells `more`); count needs them all.
    const keep = !filtered && order === 'none' && req.limit > 0 ? req.limit + 1 : Infinity;
    let count = 0;
    let kvs: KeyValue[] = [];
    for (const record of this.s.index.within(keySpan(req.key, req.rangeEnd))) {
      const kv = liveAt(record, revision);
      if (kv === null) continue;
      count++;
      if (!req.countOnly && kvs.length < keep) kvs.push(kv);
    }
    if (req.countOnly) return { kvs: [], more: false, count };
    if (req.maxModRevision !== 0) kvs = kvs.filter((kv) => kv.modRevision <= req.maxModRevision);
    if (req.minModRevision !== 0) kvs = kvs.filter((kv) => kv.modRevision >= req.minModRevision);
    if (req.maxCreateRevision !== 0) kvs = kvs.filter((kv) => kv.createRevision <= req.maxCreateRevision);
    if (req.minCreateRevision !== 0) kvs = kvs.filter((kv) => kv.createRevision >= req.minCreateRevision);
    if (order !== 'none') {
      const by = sortKeyComparator(req.sortTarget);
      const sign = order === 'ascend' ? 1 : -1;
      kvs.sort((a, b) => sign * by(a, b)); // Array.prototype.sort is stable: ties stay in key order
    }
    let more = false;
    if (req.limit > 0 && kvs.length > req.limit) {
      kvs = kvs.slice(0, req.limit);
      more = true;
    }
    if (req.keysOnly) kvs = kvs.map((kv) => ({ ...kv, value: EMPTY }));
    return { kvs, more, count };
  }

  // ---- writes ----

  private beginWrite(): WriteBatch {
    return { revision: this.s.revision + 1, sub: 0, events: null };
  }

  /** Ends an apply: when it wrote, takes its revision and tells the listeners. Returns the revision to report. */
  private endWrite(batch: WriteBatch): number {
    if (batch.sub === 0) return this.s.revision;
    this.s.revision = batch.revision;
    if (batch.events === null) return batch.revision; // no listeners
    const errors: unknown[] = [];
    for (const listener of [...this.listeners]) {
      try {
        listener(batch.events, batch.revision);
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, 'KvStore listeners failed');
    return batch.revision;
  }

  /** The read revision inside a write: the batch's own when it has written (reads see earlier writes), else the current one. */
  private workingRevision(batch: WriteBatch): number {
    return batch.sub > 0 ? batch.revision : this.s.revision;
  }

  /**
   * Writes a put of `key` (whose id is `id` and whose record, if it has one, is `found`). Copies `key` (for a new
   * record) and `value`: the request's bytes may be views into a log entry (decodeCommandView).
   */
  private writePut(batch: WriteBatch, id: string, found: KeyRecord | undefined, key: Uint8Array, value: Uint8Array, lease: number): KeyValue | null {
    const s = this.s;
    let record = found;
    if (record === undefined) {
      record = { id, key: key.slice(), history: [] };
      s.index.insert(record);
      s.byId.set(id, record);
    }
    const prevEntry = record.history[record.history.length - 1];
    const prev = prevEntry === undefined || prevEntry.tombstone ? null : prevEntry.kv;
    const kv: KeyValue = {
      key: record.key,
      createRevision: prev === null ? batch.revision : prev.createRevision,
      modRevision: batch.revision,
      version: prev === null ? 1 : prev.version + 1,
      value: value.slice(),
      lease,
    };
    if (prev !== null && prev.lease !== 0 && prev.lease !== lease) this.detach(prev.lease, id);
    if (lease !== 0) this.s.leases.get(lease)?.keys.add(id); // putError made sure it exists
    this.record(batch, { sub: batch.sub++, tombstone: false, kv, record }, prev);
    return prev;
  }

  private detach(lease: number, keyId: string): void {
    this.s.leases.get(lease)?.keys.delete(keyId);
  }

  private writeDelete(batch: WriteBatch, span: KeySpan): KeyValue[] {
    const deleted: KeyValue[] = [];
    for (const record of this.s.index.within(span)) {
      const prev = this.deleteRecord(batch, record);
      if (prev !== null) deleted.push(prev);
    }
    return deleted;
  }

  /** Writes a tombstone for a live key (detaching it from its lease); returns what it deleted, or null when the key was not live. */
  private deleteRecord(batch: WriteBatch, record: KeyRecord): KeyValue | null {
    const last = record.history[record.history.length - 1];
    if (last === undefined || last.tombstone) return null;
    if (last.kv.lease !== 0) this.detach(last.kv.lease, record.id);
    const kv: KeyValue = { key: record.key, createRevision: 0, modRevision: batch.revision, version: 0, value: EMPTY, lease: 0 };
    this.record(batch, { sub: batch.sub++, tombstone: true, kv, record }, last.kv);
    return last.kv;
  }

  /** Adds a write to its key's history and to the change log, and its event to the batch when anyone listens. */
  private record(batch: WriteBatch, entry: Entry, prev: KeyValue | null): void {
    entry.record.history.push(entry);
    this.s.bytesHeld += entryBytes(entry.record, entry);
    this.s.changes.push(entry);
    if (this.listeners.length === 0) return;
    const type = entry.tombstone ? 'delete' : 'put';
    (batch.events ??= []).push(prev === null ? { type, kv: entry.kv } : { type, kv: entry.kv, prevKv: prev });
  }

  private error(code: KvErrorCode): KvResult {
    return { type: 'error', error: code, message: KV_ERROR_MESSAGES[code], revision: this.s.revision };
  }

  /** etcd's checkRequestPut for one put, against the state before the command's writes. */
  private putError(req: PutRequest): KvErrorCode | null {
    if (req.lease !== 0 && !this.s.leases.has(req.lease)) return 'leaseNotFound';
    if ((req.ignoreValue || req.ignoreLease) && liveAt(this.currentRecord(req.key), this.s.revision) === null) return 'keyNotFound';
    return null;
  }

  private currentRecord(key: Uint8Array): KeyRecord {
    return this.s.byId.get(idOf(key)) ?? { id: '', key: EMPTY, history: [] };
  }

  private doPut(batch: WriteBatch, req: PutRequest): PutResponse {
    const id = idOf(req.key);
    const record = this.s.byId.get(id);
    const current = record === undefined ? null : liveAt(record, Infinity);
    const value = req.ignoreValue && current !== null ? current.value : req.value;
    const lease = req.ignoreLease && current !== null ? current.lease : req.lease;
    const prev = this.writePut(batch, id, record, req.key, value, lease);
    return req.prevKv && prev !== null ? { prevKv: prev } : NO_PREV_KV;
  }

  private doDelete(batch: WriteBatch, req: DeleteRangeRequest): DeleteRangeResponse {
    const deleted = this.writeDelete(batch, keySpan(req.key, req.rangeEnd));
    return { deleted: deleted.length, prevKvs: req.prevKv ? deleted : [] };
  }

  private applyPut(req: PutRequest): KvResult {
    if (req.key.length === 0) return this.error('emptyKey');
    const err = this.putError(req);
    if (err !== null) return this.error(err);
    const batch = this.beginWrite();
    const response = this.doPut(batch, req);
    return { type: 'put', response, revision: this.endWrite(batch) };
  }

  private applyDelete(req: DeleteRangeRequest): KvResult {
    if (req.key.length === 0) return this.error('emptyKey');
    const batch = this.beginWrite();
    const response = this.doDelete(batch, req);
    return { type: 'deleteRange', response, revision: this.endWrite(batch) };
  }

  private plan(t: TxnRequest): TxnPlan {
    const succeeded = t.compare.every((c) => {
      const kvs = this.liveIn(keySpan(c.key, c.rangeEnd), this.s.revision);
      // etcd: comparing a value on missing key(s) always fails; other targets compare against zeroes.
      if (kvs.length === 0) return c.target !== 'value' && compareHoldsFor(c, ZERO_KV);
      return kvs.every((kv) => compareHoldsFor(c, kv));
    });
    const ops = succeeded ? t.success : t.failure;
    return { succeeded, ops, nested: ops.map((op) => (op.type === 'txn' ? this.plan(op.request) : undefined)) };
  }

  /** etcd's checkRequests over the chosen path: first every put (lease, ignore* on a missing key), then every range's revision. */
  private planError(plan: TxnPlan, check: 'put' | 'range'): KvErrorCode | null {
    for (const [i, op] of plan.ops.entries()) {
      let err: KvErrorCode | null = null;
      if (op.type === 'put' && check === 'put') err = this.putError(op.request);
      else if (op.type === 'range' && check === 'range') err = this.readRevisionError(op.request.revision);
      else if (op.type === 'txn') err = this.planError(plan.nested[i] as TxnPlan, check);
      if (err !== null) return err;
    }
    return null;
  }

  private applyTxn(t: TxnRequest): KvResult {
    const shapeError = checkTxnShape(t, MAX_TXN_OPS);
    if (shapeError !== null) return this.error(shapeError);
    if (checkIntervals(t.success) === null || checkIntervals(t.failure) === null) return this.error('duplicateKey');
    const plan = this.plan(t);
    const err = this.planError(plan, 'put') ?? this.planError(plan, 'range');
    if (err !== null) return this.error(err);
    // From here nothing can fail: every error etcd can raise was checked above.
    const batch = this.beginWrite();
    const response = this.execute(batch, plan);
    return { type: 'txn', response, revision: this.endWrite(batch) };
  }

  private execute(batch: WriteBatch, plan: TxnPlan): TxnResponse {
    const responses: ResponseOp[] = plan.ops.map((op, i): ResponseOp => {
      switch (op.type) {
        case 'range': {
          const revision = op.request.revision > 0 ? op.request.revision : this.workingRevision(batch);
          return { type: 'range', response: this.rangeAt(op.request, revision) };
        }
        case 'put': return { type: 'put', response: this.doPut(batch, op.request) };
        case 'deleteRange': return { type: 'deleteRange', response: this.doDelete(batch, op.request) };
        case 'txn': return { type: 'txn', response: this.execute(batch, plan.nested[i] as TxnPlan) };
      }
    });
    return { succeeded: plan.succeeded, responses };
  }

  /** etcd's lessor Grant, with the id and TTL already decided by the proposer. Uses no revision. */
  private applyLeaseGrant(id: number, ttlSeconds: number): KvResult {
    if (!Number.isSafeInteger(id) || id === 0) return this.error('leaseNotFound'); // the codec never lets these through
    if (!Number.isSafeInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > MAX_LEASE_TTL_SECONDS) return this.error('leaseTtlTooLarge');
    if (this.s.leases.has(id)) return this.error('leaseExists');
    this.s.leases.set(id, { id, ttlSeconds, keys: new Set() });
    this.tellLeaseListeners({ type: 'grant', lease: { id, ttlSeconds } });
    return { type: 'leaseGrant', id, ttlSeconds, revision: this.s.revision };
  }

  /** etcd's lessor Revoke: deletes every attached key (in key order) in one revision, then the lease. */
  private applyLeaseRevoke(id: number): KvResult {
    const lease = this.s.leases.get(id);
    if (lease === undefined) return this.error('leaseNotFound');
    const batch = this.beginWrite();
    let deleted = 0;
    for (const keyId of [...lease.keys].sort(compareIds)) {
      const record = this.s.byId.get(keyId);
      if (record !== undefined && this.deleteRecord(batch, record) !== null) deleted++;
    }
    this.s.leases.delete(id);
    let revision: number;
    try {
      revision = this.endWrite(batch);
    } finally {
      this.tellLeaseListeners({ type: 'revoke', id });
    }
    return { type: 'leaseRevoke', deleted, revision };
  }

  /** The lessor's expiry: a revoke, unless a later leader's epoch has applied (then nothing changes). */
  private applyLeaseExpire(id: number, term: number): KvResult {
    if (term < this.s.leaseTerm || !this.s.leases.has(id)) return { type: 'leaseExpire', expired: false, deleted: 0, revision: this.s.revision };
    const r = this.applyLeaseRevoke(id);
    return r.type === 'leaseRevoke' ? { type: 'leaseExpire', expired: true, deleted: r.deleted, revision: r.revision } : r;
  }

  /** A new leader takes over expiry decisions: leaseTerm only grows. Uses no revision. */
  private applyLeaseEpoch(term: number): KvResult {
    if (!Number.isSafeInteger(term) || term < 1) return this.error('leaseNotFound'); // the codec never lets these through
    if (term > this.s.leaseTerm) {
      this.s.leaseTerm = term;
      this.tellLeaseListeners({ type: 'epoch', term });
    }
    return { type: 'leaseEpoch', term: this.s.leaseTerm, revision: this.s.revision };
  }

  /**
   * etcd's compaction: forget every write below `revision` except, per key, the latest one at or below it when that
   * is a put (so reads at `revision` still work); keys whose latest write at or below it is a delete lose all of
   * those writes, and vanish when nothing newer exists. O(n + C).
   */
  private applyCompact(revision: number): KvResult {
    const s = this.s;
    if (revision <= s.compactRevision) return this.error('compacted');
    if (revision > s.revision) return this.error('futureRevision');
    s.index.retain((record) => {
      const h = record.history;
      const at = latestIndexAt(h, revision);
      const keepFrom = at < 0 ? 0 : (h[at] as Entry).tombstone ? at + 1 : at;
      for (let i = 0; i < keepFrom; i++) s.bytesHeld -= entryBytes(record, h[i] as Entry);
      if (keepFrom > 0) record.history = h.slice(keepFrom);
      if (record.history.length > 0) return true;
      s.byId.delete(record.id);
      return false;
    });
    s.changes = s.changes.slice(firstChangeAt(s.changes, revision + 1));
    s.compactRevision = revision;
    return { type: 'compact', revision: s.revision };
  }
}

function sortKeyComparator(target: RangeRequest['sortTarget']): (a: KeyValue, b: KeyValue) => number {
  switch (target) {
    case 'key': return (a, b) => compareBytes(a.key, b.key);
    case 'version': return (a, b) => compareNumbers(a.version, b.version);
    case 'create': return (a, b) => compareNumbers(a.createRevision, b.createRevision);
    case 'mod': return (a, b) => compareNumbers(a.modRevision, b.modRevision);
    case 'value': return (a, b) => compareBytes(a.value, b.value);
  }
}

/** The watch event of one change; prevKv (when asked) is the key's write just before it, when that was a put. */
function eventOf(c: Entry, withPrev: boolean): KvEvent {
  const type = c.tombstone ? 'delete' : 'put';
  if (withPrev) {
    const h = c.record.history;
    const i = h.indexOf(c, Math.max(0, latestIndexAt(h, c.kv.modRevision - 1)));
    const prev = h[i - 1];
    if (prev !== undefined && !prev.tombstone) return { type, kv: c.kv, prevKv: prev.kv };
  }
  return { type, kv: c.kv };
}

function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The first broken lease invariant (LeaseRecord's, and every leased live key's lease exists), or null. O(n + a). */
function checkLeases(s: MvccState): string | null {
  let attached = 0;
  for (const [id, l] of s.leases) {
    if (l.id !== id || !Number.isSafeInteger(id) || id === 0) return `bad lease id ${id}`;
    if (!Number.isSafeInteger(l.ttlSeconds) || l.ttlSeconds < 1 || l.ttlSeconds > MAX_LEASE_TTL_SECONDS) return `lease ${id} has TTL ${l.ttlSeconds}`;
    for (const k of l.keys) {
      const h = s.byId.get(k)?.history ?? [];
      const last = h[h.length - 1];
      if (last === undefined || last.tombstone || last.kv.lease !== id) return `lease ${id} holds a key that is not live with it`;
    }
    attached += l.keys.size;
  }
  let leased = 0;
  for (const record of s.index) {
    const last = record.history[record.history.length - 1];
    if (last === undefined || last.tombstone || last.kv.lease === 0) continue;
    if (!s.leases.has(last.kv.lease)) return `key attached to lease ${last.kv.lease}, which does not exist`;
    leased++;
  }
  if (leased !== attached) return `leases hold ${attached} keys, ${leased} live keys name a lease`;
  if (!Number.isSafeInteger(s.leaseTerm) || s.leaseTerm < 0) return `lease term ${s.leaseTerm}`;
  return null;
}

/** The first broken MvccState invariant, or null. O(total writes kept). */
function checkState(s: MvccState): string | null {
  if (!Number.isSafeInteger(s.revision) || s.revision < 1) return `revision ${s.revision} < 1`;
  if (!Number.isSafeInteger(s.compactRevision) || s.compactRevision < 0 || s.compactRevision > s.revision) {
    return `compactRevision ${s.compactRevision} outside [0, ${s.revision}]`;
  }
  const indexProblem = s.index.check();
  if (indexProblem !== null) return indexProblem;
  if (s.byId.size !== s.index.size) return 'byId and index differ in size';
  let kept = 0;
  let bytes = 0;
  for (const record of s.index) {
    if (record.key.length === 0) return 'empty key in the index';
    if (record.id !== idOf(record.key)) return 'record id does not match its key';
    if (s.byId.get(record.id) !== record) return 'byId does not hold an index record';
    if (record.history.length === 0) return 'key with no writes';
    let prev: Entry | undefined;
    let atOrBelowCompaction = 0;
    for (const e of record.history) {
      bytes += entryBytes(record, e);
      const kv = e.kv;
      if (!Number.isSafeInteger(kv.modRevision) || kv.modRevision < 2 || kv.modRevision > s.revision) return `write revision ${kv.modRevision} outside [2, ${s.revision}]`;
      if (!Number.isSafeInteger(e.sub) || e.sub < 0) return 'bad sub-revision';
      if (kv.key !== record.key && compareBytes(kv.key, record.key) !== 0) return 'write of another key';
      if (prev !== undefined && (kv.modRevision < prev.kv.modRevision || (kv.modRevision === prev.kv.modRevision && e.sub <= prev.sub))) {
        return 'writes not in (revision, sub) order';
      }
      if (kv.modRevision <= s.compactRevision) {
        atOrBelowCompaction++;
        if (e.tombstone) return 'tombstone kept at or below the compaction revision';
      } else {
        kept++;
      }
      if (e.tombstone) {
        if (prev === undefined || prev.tombstone) return 'tombstone of an absent key';
        if (kv.version !== 0 || kv.createRevision !== 0 || kv.lease !== 0 || kv.value.length !== 0) return 'tombstone with data';
      } else if (prev === undefined || prev.tombstone) {
        const survivor = prev === undefined && kv.modRevision <= s.compactRevision;
        if (!survivor && (kv.version !== 1 || kv.createRevision !== kv.modRevision)) return 'new key without version 1 / createRevision = modRevision';
        if (survivor && (kv.version < 1 || kv.createRevision < 1 || kv.createRevision > kv.modRevision)) return 'bad version / createRevision';
      } else if (kv.version !== prev.kv.version + 1 || kv.createRevision !== prev.kv.createRevision) {
        return 'put after put without version + 1 and the same createRevision';
      }
      if (!Number.isSafeInteger(kv.lease)) return 'bad lease';
      prev = e;
    }
    if (atOrBelowCompaction > 1) return 'more than one write kept at or below the compaction revision';
  }
  if (bytes !== s.bytesHeld) return `bytesHeld ${s.bytesHeld} != ${bytes}`;
  const leaseProblem = checkLeases(s);
  if (leaseProblem !== null) return leaseProblem;
  if (kept !== s.changes.length) return `change log holds ${s.changes.length} writes, the keys ${kept}`;
  let expect = Math.max(1, s.compactRevision) + 1;
  for (let i = 0; i < s.changes.length; i++) {
    const c = s.changes[i] as Entry;
    const prev = s.changes[i - 1];
    const rev = changeRevision(c);
    if (prev !== undefined && (rev < changeRevision(prev) || (rev === changeRevision(prev) && c.sub <= prev.sub))) {
      return 'change log not in (revision, sub) order';
    }
    if (c.record.history.indexOf(c) < 0 || s.byId.get(c.record.id) !== c.record) return 'change log entry not in its key';
    if (rev === expect) expect++;
    else if (rev !== expect - 1) return `revision ${expect} has no writes`;
  }
  if (expect !== s.revision + 1) return `revision ${expect} has no writes`;
  return null;
}
