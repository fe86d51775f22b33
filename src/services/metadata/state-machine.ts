// The metadata log's replicated state machine (a ServiceMachine behind the
// 'metadata' tag of src/services/machine.ts). Every replica — controllers
// (voters) and brokers (observers) alike — applies the same committed records
// here: each is decoded and validated against the current image (the
// authoritative check; the one before append is only advisory, since the
// image may change in between), then either accepted — it gets the next
// offset and the image moves on — or rejected with the same error on every
// replica, changing nothing.
//
// It keeps the last `historyRecords` accepted records (part of the snapshot,
// so every replica and every restart holds the same ones) so that followers
// of the log (the gRPC Follow stream) can resume from a recent offset; older
// offsets get the image instead, as a KRaft broker that fell behind the log
// start gets a snapshot.
//
// Listeners hear every accepted record with its delta, and a reset when a
// snapshot replaces the state. A listener that throws is reported to
// `onListenerError` and never disturbs the apply.

import type { LogIndex } from '../../protocol/ids.js';
import type { ServiceMachine } from '../machine.js';
import { decodeRecord, decodeSnapshot, encodeSnapshot, MetadataCodecError } from './codec.js';
import { applyRecord, MetadataImage, validateRecord } from './image.js';
import type { AcceptedRecord, MetadataApplyResult, MetadataDelta, MetadataRecord } from './types.js';

/** What a listener hears. */
export type MetadataEvent =
  /** A record was accepted: `image` is the image after it. */
  | { readonly type: 'record'; readonly offset: number; readonly index: number; readonly record: MetadataRecord; readonly delta: MetadataDelta; readonly image: MetadataImage }
  /** A snapshot replaced the whole state (a restart, or catching up past the log start): `image` is the new image. */
  | { readonly type: 'reset'; readonly image: MetadataImage };

export type MetadataListener = (event: MetadataEvent) => void;

/** Options of {@link MetadataStateMachine}. */
export interface MetadataStateMachineOptions {
  /** Accepted records kept for followers of the log; the same on every replica (default 1024, at least 0). */
  readonly historyRecords?: number;
  /** Hears errors thrown by listeners (default: ignored). */
  readonly onListenerError?: (err: unknown) => void;
}

export const HISTORY_RECORDS_DEFAULT = 1024;

/** Applies metadata records to a {@link MetadataImage}. Invariant: history holds consecutive offsets ending at image.offset. */
export class MetadataStateMachine implements ServiceMachine {
  private current: MetadataImage = MetadataImage.EMPTY;
  /** The retained records, oldest first (a ring would do; metadata is small and trimming is amortised). */
  private retained: AcceptedRecord[] = [];
  private readonly listeners = new Set<MetadataListener>();
  private readonly historyRecords: number;
  private readonly onListenerError: (err: unknown) => void;
  /** Rejected commands seen (this replica's count; the same everywhere). */
  rejectedTotal = 0;

  constructor(opts: MetadataStateMachineOptions = {}) {
    const h = opts.historyRecords ?? HISTORY_RECORDS_DEFAULT;
    if (!Number.isInteger(h) || h < 0) throw new RangeError(`historyRecords must be a non-negative integer, got ${h}`);
    this.historyRecords = h;
    this.onListenerError = opts.onListenerError ?? (() => {});
  }

  /** The current image (immutable; hold it as long as you like). */
  get image(): MetadataImage {
    return this.current;
  }

  /** The offset of the oldest retained record (image.offset + 1 when none is retained). */
  get firstRetainedOffset(): number {
    return this.retained[0]?.offset ?? this.current.offset + 1;
  }

  /** The retained accepted records with offset >= `from`, or null when `from` is older than what is retained (then read the image). */
  recordsFrom(from: number, max = Infinity): readonly AcceptedRecord[] | null {
    const first = this.firstRetainedOffset;
    if (from < first && from <= this.current.offset) return null;
    const start = Math.max(0, from - first);
    return this.retained.slice(start, Math.min(this.retained.length, start + max));
  }

  /** Adds a listener; returns the function that removes it. */
  subscribe(listener: MetadataListener): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  apply(command: Uint8Array, index: LogIndex): MetadataApplyResult {
    let record: MetadataRecord;
    try {
      record = decodeRecord(command);
    } catch (e) {
      this.rejectedTotal++;
      return { type: 'rejected', error: 'malformedRecord', message: e instanceof MetadataCodecError ? e.message : String(e) };
    }
    return this.applyRecord(record, index);
  }

  /** Validates and applies one decoded record (what apply() does after decoding). */
  applyRecord(record: MetadataRecord, index: number): MetadataApplyResult {
    const rejection = validateRecord(this.current, record);
    if (rejection !== null) {
      this.rejectedTotal++;
      return { type: 'rejected', ...rejection };
    }
    const offset = this.current.offset + 1;
    const { image, delta } = applyRecord(this.current, record, offset);
    this.current = image;
    const accepted: AcceptedRecord = { offset, index, record };
    if (this.historyRecords > 0) {
      this.retained.push(accepted);
      // Trim in steps, so that trimming costs O(1) per record on average.
      if (this.retained.length >= 2 * this.historyRecords) this.retained = this.retained.slice(this.retained.length - this.historyRecords);
    }
    this.emit({ type: 'record', offset, index, record, delta, image });
    return { type: 'accepted', ...accepted };
  }

  snapshot(): Uint8Array {
    return encodeSnapshot({ image: this.current, history: this.retained.slice(Math.max(0, this.retained.length - this.historyRecords)) });
  }

  /** Replaces the state with a snapshot's; throws MetadataCodecError (state unchanged) on malformed bytes. */
  restore(data: Uint8Array): void {
    const s = decodeSnapshot(data);
    this.current = s.image;
    this.retained = s.history.slice(Math.max(0, s.history.length - this.historyRecords));
    this.emit({ type: 'reset', image: s.image });
  }

  private emit(event: MetadataEvent): void {
    for (const l of [...this.listeners]) {
      try {
        l(event);
      } catch (e) {
        try {
          this.onListenerError(e);
        } catch {
          // a failing error handler must not break the apply either
        }
      }
    }
  }
}
