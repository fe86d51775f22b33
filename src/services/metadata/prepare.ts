// What a controller does with a record before it appends it: completes the
// fields the controller assigns (a registration's epoch, when the writer
// leaves it to the controller as KRaft does) and validates the record
// against the image it has applied. A record that fails is refused at once
// (MetadataRejectedError) and never reaches the log. The check at apply time
// (state-machine.ts) stays the authoritative one: another record may commit
// in between and make this one invalid, and then every replica rejects it
// alike.

import { encodeServiceCommand } from '../machine.js';
import { encodeRecord } from './codec.js';
import { validateRecord, type MetadataImage } from './image.js';
import { MetadataRejectedError, type MetadataApplyResult, type MetadataRecord, type AcceptedRecord } from './types.js';

/**
 * Completes `record` against `image` — a registerBroker with epoch 0 gets
 * the broker's current epoch + 1 (1 for a new broker) — and validates it.
 * Throws MetadataRejectedError when the record cannot be applied to `image`.
 */
export function prepareRecord(image: MetadataImage, record: MetadataRecord): MetadataRecord {
  let rec = record;
  if (rec.type === 'registerBroker' && rec.epoch === 0) {
    rec = { ...rec, epoch: (image.brokers.get(rec.brokerId)?.epoch ?? 0) + 1 };
  }
  const rejection = validateRecord(image, rec);
  if (rejection !== null) throw new MetadataRejectedError(rejection);
  return rec;
}

/** The log command (service tag + record bytes) that carries `record`. */
export function metadataCommand(record: MetadataRecord): Uint8Array {
  return encodeServiceCommand('metadata', encodeRecord(record));
}

/** The accepted record of an apply result; throws MetadataRejectedError for a rejection. */
export function acceptedOrThrow(result: MetadataApplyResult): AcceptedRecord {
  if (result.type === 'rejected') throw new MetadataRejectedError(result);
  return { offset: result.offset, index: result.index, record: result.record };
}
