// etcd's Watch service: one bidirectional stream carries many watchers, each
// a key range followed from a start revision. This file holds the per-stream
// session (WatchSession) and its watchers.
//
// How events reach a watcher (etcd's synced/unsynced watcher groups):
//  - A *synced* watcher has been sent every event of revisions below
//    `nextRevision`, and nextRevision = store.revision + 1 (or a future start
//    revision). The store calls our listener synchronously after each apply,
//    so a synced watcher gets each new revision's events live, in order.
//  - An *unsynced* watcher is behind: it catches up from the store's history
//    (store.eventsSince(nextRevision, ...)) in bounded batches, and becomes
//    synced the moment a batch reaches store.revision. Reading history and
//    switching to live happen in one synchronous step, so nothing can be
//    applied in between: no gap, no duplicate at the switch-over.
//  - Slow readers: a session counts the bytes handed to gRPC and not yet
//    written out. When that passes `maxPendingBytes`, or the stream's write()
//    says the peer is not reading, the session is *blocked*: live events are
//    not queued any more, and every watcher that misses one becomes unsynced
//    (it keeps its nextRevision). When gRPC drains, the session unblocks and
//    the watchers catch up from history; if their next revision was compacted
//    meanwhile they are cancelled with compact_revision, as etcd does. So a
//    client that never reads costs at most maxPendingBytes plus one batch.
//  - Responses hold the events of one revision; header.revision is that
//    revision, so a client resuming from header.revision + 1 misses nothing.
//
// Control responses (created, canceled, progress) are always sent; they
// answer the client's own requests, and while the session is blocked it stops
// reading requests (as etcd's receive loop does when its control queue is
// full), so a client that sends without reading cannot grow them either.

import { status, type ServerDuplexStream } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { KvStore } from '../../services/kv/store.js';
import { KvError, type KvEvent } from '../../services/kv/types.js';
import { serviceError } from './errors.js';
import { eventSizeBytes, eventToWire, parseInt64, type WireEvent, type WireHeader } from './convert.js';

/** etcd's AutoWatchID: "the server picks the id". */
const AUTO_WATCH_ID = 0;
/** etcd's InvalidWatchID: progress responses for the whole stream, failed creates. */
const INVALID_WATCH_ID = -1;
/** History read per catch-up step (events; the store never splits a revision). */
const CATCH_UP_BATCH_EVENTS = 256;

/** etcdserverpb.WatchRequest as received. */
export interface WireWatchRequest {
  request_union?: string;
  create_request?: WireWatchCreateRequest | null;
  cancel_request?: { watch_id?: string | number } | null;
  progress_request?: object | null;
}

/** etcdserverpb.WatchCreateRequest as received. */
export interface WireWatchCreateRequest {
  key?: Buffer;
  range_end?: Buffer;
  start_revision?: string | number;
  progress_notify?: boolean;
  filters?: (string | number)[];
  prev_kv?: boolean;
  watch_id?: string | number;
  fragment?: boolean;
}

/** etcdserverpb.WatchResponse as sent. */
export interface WireWatchResponse {
  header: WireHeader;
  watch_id: number;
  created?: boolean;
  canceled?: boolean;
  compact_revision?: number;
  cancel_reason?: string;
  events: WireEvent[];
}

/** What a session needs from its server. */
export interface WatchSessionContext {
  readonly store: KvStore;
  /** A ResponseHeader with the given revision. */
  header(revision: number): WireHeader;
  readonly logger: Logger;
  /** Bound on bytes queued to gRPC and not yet written out. */
  readonly maxPendingBytes: number;
  /** Period of progress notifications for watchers that asked for them. */
  readonly progressNotifyIntervalMs: number;
  /**
   * With auth: why this stream may not watch (key, rangeEnd), or null when it
   * may. Asked when a watcher is created, and again for every watcher after
   * each change of the auth state: a watcher whose permission went is
   * cancelled with the reason (etcd 3.4 checks only at creation).
   */
  readonly authorize?: (key: Uint8Array, rangeEnd: Uint8Array) => string | null;
  /** Subscribes to changes of the auth state; returns the unsubscribe. */
  readonly onAuthChange?: (listener: () => void) => () => void;
}

/** Counters a test or a metrics exporter can read. */
export interface WatchSessionStats {
  /** Bytes handed to gRPC and not yet written out. */
  pendingBytes: number;
  /** The most pendingBytes has been. */
  pendingBytesPeak: number;
  /** Times the session stopped pushing live events. */
  blockedCount: number;
  /** Events sent from history (catch-up) rather than live. */
  catchUpEvents: number;
}

/**
 * One watcher. Invariants: nextRevision >= 1; when `synced`, every event of
 * revisions < nextRevision matching the range has been queued, and
 * nextRevision >= store.revision + 1.
 */
interface Watcher {
  readonly id: number;
  readonly key: Buffer;
  /** etcd's meaning: empty = the single key; [0x00] = every key >= key; else [key, rangeEnd). */
  readonly rangeEnd: Buffer;
  readonly noPut: boolean;
  readonly noDelete: boolean;
  readonly prevKv: boolean;
  readonly progressNotify: boolean;
  nextRevision: number;
  synced: boolean;
  /** Events were sent since the last progress tick (etcd elides the notification then). */
  sentSinceProgress: boolean;
}

function keyInRange(key: Uint8Array, w: Watcher): boolean {
  const k = Buffer.from(key.buffer, key.byteOffset, key.byteLength);
  if (w.rangeEnd.length === 0) return k.equals(w.key);
  if (Buffer.compare(k, w.key) < 0) return false;
  if (w.rangeEnd.length === 1 && w.rangeEnd[0] === 0) return true;
  return Buffer.compare(k, w.rangeEnd) < 0;
}

function filterEvents(events: readonly KvEvent[], w: Watcher): KvEvent[] {
  return events.filter((ev) => {
    if (ev.type === 'put' ? w.noPut : w.noDelete) return false;
    return keyInRange(ev.kv.key, w);
  });
}

/**
 * The watchers of one Watch stream. Created by the server for each call;
 * closes itself (unsubscribing from the store) when the call ends.
 */
export class WatchSession {
  private readonly ctx: WatchSessionContext;
  private readonly call: ServerDuplexStream<WireWatchRequest, WireWatchResponse>;
  private readonly watchers = new Map<number, Watcher>();
  private nextWatchId = 0;
  private blocked = false;
  private closed = false;
  private pumpScheduled = false;
  /** A WatchProgressRequest waits until every watcher is synced (so its revision promises nothing false). */
  private progressRequested = false;
  private readonly unsubscribe: () => void;
  private readonly progressTimer: NodeJS.Timeout;
  private readonly onClose: () => void;
  readonly stats: WatchSessionStats = { pendingBytes: 0, pendingBytesPeak: 0, blockedCount: 0, catchUpEvents: 0 };

  constructor(ctx: WatchSessionContext, call: ServerDuplexStream<WireWatchRequest, WireWatchResponse>, onClose: () => void) {
    this.ctx = ctx;
    this.call = call;
    this.onClose = onClose;
    const offEvents = ctx.store.onEvents((events, revision) => this.onLiveEvents(events, revision));
    const offAuth = ctx.onAuthChange?.(() => this.guard('auth change', () => this.recheckPermissions()));
    this.unsubscribe = () => {
      offEvents();
      offAuth?.();
    };
    this.progressTimer = setInterval(() => this.progressTick(), ctx.progressNotifyIntervalMs);
    this.progressTimer.unref();
    call.on('data', (req: WireWatchRequest) => this.guard('request', () => this.onRequest(req)));
    call.on('drain', () => this.maybeUnblock());
    // The client closing its side ('end') is not the end: etcd keeps sending events until the call goes away.
    call.on('error', (err: Error) => {
      ctx.logger.debug({ err }, 'watch stream error');
      this.close();
    });
    call.on('cancelled', () => this.close());
    call.on('close', () => this.close());
  }

  /** Ends the stream (server shutdown) and releases everything. */
  end(): void {
    if (this.closed) return;
    this.close();
    try {
      this.call.end();
    } catch (err) {
      this.ctx.logger.debug({ err }, 'watch stream end failed');
    }
  }

  /** Number of live watchers (tests, metrics). */
  get watcherCount(): number {
    return this.watchers.size;
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    clearInterval(this.progressTimer);
    this.watchers.clear();
    this.onClose();
  }

  /** Runs `fn`; an exception is logged and ends this stream, never the process. */
  private guard(what: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.ctx.logger.error({ err }, `watch stream: unexpected error handling ${what}; closing the stream`);
      this.close();
      try {
        this.call.emit('error', serviceError({ code: status.INTERNAL, message: 'etcdserver: internal error in the watch stream' }));
      } catch {
        // already gone
      }
    }
  }

  // ---- Requests ----

  private onRequest(req: WireWatchRequest): void {
    if (this.closed) return;
    if (req.create_request) this.create(req.create_request);
    else if (req.cancel_request) this.cancel(req.cancel_request.watch_id);
    else if (req.progress_request) {
      this.progressRequested = true;
      this.maybeSendRequestedProgress();
    }
    // else: an empty or unknown request; etcd ignores it and keeps the stream.
  }

  private create(creq: WireWatchCreateRequest): void {
    const store = this.ctx.store;
    let startRevision: number;
    let requestedId: number;
    try {
      startRevision = parseInt64(creq.start_revision, 'start_revision');
      requestedId = parseInt64(creq.watch_id, 'watch_id');
    } catch (err) {
      this.refuseCreate(err instanceof Error ? err.message : String(err));
      return;
    }
    if (startRevision < 0) {
      this.refuseCreate('etcdserver: mvcc: required revision has been compacted'); // etcd's answer to a negative start
      return;
    }
    let id: number;
    if (requestedId === AUTO_WATCH_ID) {
      while (this.watchers.has(this.nextWatchId)) this.nextWatchId++;
      id = this.nextWatchId++;
    } else if (requestedId < 0 || this.watchers.has(requestedId)) {
      this.refuseCreate('mvcc: duplicate watch ID provided on the WatchStream');
      return;
    } else {
      id = requestedId;
    }
    const filters = creq.filters ?? [];
    const key = creq.key && creq.key.length > 0 ? creq.key : Buffer.from([0]); // etcd: "\0" is the smallest key
    const refused = this.ctx.authorize?.(key, creq.range_end ?? Buffer.alloc(0)) ?? null;
    if (refused !== null) {
      this.refuseCreate(refused);
      return;
    }
    const current = store.revision;
    const w: Watcher = {
      id,
      key,
      rangeEnd: creq.range_end ?? Buffer.alloc(0),
      noPut: filters.includes('NOPUT') || filters.includes(0),
      noDelete: filters.includes('NODELETE') || filters.includes(1),
      prevKv: creq.prev_kv === true,
      progressNotify: creq.progress_notify === true,
      nextRevision: startRevision === 0 ? current + 1 : startRevision,
      synced: startRevision === 0 || startRevision > current,
      sentSinceProgress: false,
    };
    this.watchers.set(id, w);
    this.send({ header: this.ctx.header(current), watch_id: id, created: true, events: [] }, 0);
    if (!w.synced) this.schedulePump();
  }

  private refuseCreate(reason: string): void {
    this.send({
      header: this.ctx.header(this.ctx.store.revision),
      watch_id: INVALID_WATCH_ID,
      created: true,
      canceled: true,
      cancel_reason: reason,
      events: [],
    }, 0);
  }

  private cancel(rawId: string | number | undefined): void {
    let id: number;
    try {
      id = parseInt64(rawId, 'watch_id');
    } catch {
      return; // no such watcher: etcd sends nothing
    }
    if (!this.watchers.delete(id)) return;
    this.send({ header: this.ctx.header(this.ctx.store.revision), watch_id: id, canceled: true, events: [] }, 0);
    this.maybeSendRequestedProgress();
  }

  /** After a change of the auth state: cancels every watcher this stream may no longer watch. */
  private recheckPermissions(): void {
    const authorize = this.ctx.authorize;
    if (this.closed || authorize === undefined) return;
    for (const w of [...this.watchers.values()]) {
      const reason = authorize(w.key, w.rangeEnd);
      if (reason === null) continue;
      this.watchers.delete(w.id);
      this.send({ header: this.ctx.header(this.ctx.store.revision), watch_id: w.id, canceled: true, cancel_reason: reason, events: [] }, 0);
    }
  }

  // ---- Sending ----

  /** Queues one response; returns false (and blocks the session) when gRPC should not be given more. */
  private send(res: WireWatchResponse, sizeBytes: number): boolean {
    const size = sizeBytes + 64;
    this.stats.pendingBytes += size;
    if (this.stats.pendingBytes > this.stats.pendingBytesPeak) this.stats.pendingBytesPeak = this.stats.pendingBytes;
    let writable: boolean;
    try {
      writable = this.call.write(res, () => {
        this.stats.pendingBytes -= size;
        this.maybeUnblock();
      });
    } catch (err) {
      this.ctx.logger.debug({ err }, 'watch stream write failed');
      this.close();
      return false;
    }
    if (!writable || this.stats.pendingBytes >= this.ctx.maxPendingBytes) {
      if (!this.blocked) {
        this.stats.blockedCount++;
        this.call.pause(); // and stop reading requests, whose answers would queue too (etcd's recvLoop blocks likewise)
      }
      this.blocked = true;
    }
    return !this.blocked;
  }

  private maybeUnblock(): void {
    if (this.closed || !this.blocked) return;
    if (this.stats.pendingBytes >= this.ctx.maxPendingBytes || this.call.writableNeedDrain) return;
    this.blocked = false;
    this.call.resume();
    this.schedulePump();
  }

  /** Sends one revision's events to `w`; false when the session became blocked. */
  private sendEvents(w: Watcher, revision: number, events: readonly KvEvent[]): boolean {
    let size = 0;
    const wire = events.map((ev) => {
      size += eventSizeBytes(ev);
      return eventToWire(ev, w.prevKv);
    });
    w.sentSinceProgress = true;
    return this.send({ header: this.ctx.header(revision), watch_id: w.id, events: wire }, size);
  }

  private cancelCompacted(w: Watcher): void {
    this.watchers.delete(w.id);
    const compactRevision = this.ctx.store.compactRevision;
    this.send({
      header: this.ctx.header(this.ctx.store.revision),
      watch_id: w.id,
      canceled: true,
      compact_revision: compactRevision,
      cancel_reason: 'etcdserver: mvcc: required revision has been compacted',
      events: [],
    }, 0);
  }

  // ---- Live events ----

  private onLiveEvents(events: readonly KvEvent[], revision: number): void {
    // Called from inside store.apply: nothing may throw out of here.
    this.guard('live events', () => {
      if (this.closed) return;
      for (const w of this.watchers.values()) {
        if (!w.synced || revision < w.nextRevision) continue; // behind (history will cover it) or a future start
        if (this.blocked || revision !== w.nextRevision) {
          // Cannot take it now (or missed one, e.g. after a snapshot restore): catch up from history later.
          w.synced = false;
          this.schedulePump();
          continue;
        }
        const mine = filterEvents(events, w);
        if (mine.length > 0) this.sendEvents(w, revision, this.withPrevKv(mine, w, revision));
        w.nextRevision = revision + 1;
      }
    });
  }

  /** Live events should carry prev_kv when the store gives it; where it does not, look it up at revision - 1 (as etcd). */
  private withPrevKv(events: KvEvent[], w: Watcher, revision: number): KvEvent[] {
    if (!w.prevKv) return events;
    return events.map((ev) => {
      if (ev.prevKv || (ev.type === 'put' && ev.kv.version === 1)) return ev;
      try {
        const prev = this.ctx.store.range({
          key: ev.kv.key, rangeEnd: new Uint8Array(0), limit: 1, revision: revision - 1, sortOrder: 'none', sortTarget: 'key',
          serializable: true, keysOnly: false, countOnly: false, minModRevision: 0, maxModRevision: 0, minCreateRevision: 0, maxCreateRevision: 0,
        }).kvs[0];
        return prev ? { ...ev, prevKv: prev } : ev;
      } catch {
        return ev; // compacted: etcd sends no prev_kv either
      }
    });
  }

  // ---- Catch-up ----

  private schedulePump(): void {
    if (this.pumpScheduled || this.closed) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.guard('catch-up', () => this.pump());
    });
  }

  /** Moves unsynced watchers forward from history until all are synced or the session blocks. */
  private pump(): void {
    let progressed = true;
    while (!this.closed && !this.blocked && progressed) {
      progressed = false;
      for (const w of [...this.watchers.values()]) {
        if (this.blocked || this.closed) break;
        if (w.synced || !this.watchers.has(w.id)) continue;
        this.catchUp(w);
        progressed = true;
      }
    }
    this.maybeSendRequestedProgress();
  }

  /** One bounded step of history for `w`. */
  private catchUp(w: Watcher): void {
    const store = this.ctx.store;
    const current = store.revision;
    if (w.nextRevision > current) {
      w.synced = true;
      return;
    }
    let history: KvEvent[];
    try {
      history = store.eventsSince(w.nextRevision, w.key, w.rangeEnd, w.prevKv, CATCH_UP_BATCH_EVENTS);
    } catch (err) {
      if (err instanceof KvError && err.code === 'compacted') {
        this.cancelCompacted(w);
        return;
      }
      throw err;
    }
    // Group by revision (a delete's kv.modRevision is the delete's revision).
    let i = 0;
    while (i < history.length) {
      const revision = (history[i] as KvEvent).kv.modRevision;
      let j = i;
      while (j < history.length && (history[j] as KvEvent).kv.modRevision === revision) j++;
      const mine = filterEvents(history.slice(i, j), w);
      i = j;
      w.nextRevision = revision + 1;
      if (mine.length > 0) {
        this.stats.catchUpEvents += mine.length;
        if (!this.sendEvents(w, revision, mine) && i < history.length) return; // blocked: the rest is re-read later
      }
    }
    if (history.length < CATCH_UP_BATCH_EVENTS) {
      // The store returned everything up to `current`.
      w.nextRevision = current + 1;
      w.synced = true;
    }
  }

  // ---- Progress ----

  private allSynced(): boolean {
    for (const w of this.watchers.values()) if (!w.synced) return false;
    return true;
  }

  private maybeSendRequestedProgress(): void {
    if (!this.progressRequested || this.closed || !this.allSynced()) return;
    this.progressRequested = false;
    this.send({ header: this.ctx.header(this.ctx.store.revision), watch_id: INVALID_WATCH_ID, events: [] }, 0);
  }

  private progressTick(): void {
    this.guard('progress', () => {
      if (this.closed || this.blocked) return;
      const revision = this.ctx.store.revision;
      for (const w of this.watchers.values()) {
        if (!w.progressNotify) continue;
        if (w.synced && !w.sentSinceProgress && w.nextRevision === revision + 1) {
          this.send({ header: this.ctx.header(revision), watch_id: w.id, events: [] }, 0);
        }
        w.sentSinceProgress = false;
      }
    });
  }
}
