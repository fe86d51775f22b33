// A MetadataBackend with no replication: records are prepared, encoded,
// decoded and applied at once (through the same bytes the log would carry).
// For in-process tests of the gRPC service and for a single-process embedding.

import { encodeRecord } from '../../services/metadata/codec.js';
import { acceptedOrThrow, prepareRecord } from '../../services/metadata/prepare.js';
import { MetadataStateMachine } from '../../services/metadata/state-machine.js';
import type { AcceptedRecord, MetadataRecord } from '../../services/metadata/types.js';
import type { MetadataBackend } from './backend.js';

/** Invariant: `index` counts the commands applied and is the log index each gets. */
export class LocalMetadataBackend implements MetadataBackend {
  private index = 0;
  constructor(readonly machine: MetadataStateMachine = new MetadataStateMachine()) {}

  write(record: MetadataRecord): Promise<AcceptedRecord> {
    try {
      const rec = prepareRecord(this.machine.image, record);
      return Promise.resolve(acceptedOrThrow(this.machine.apply(encodeRecord(rec), ++this.index)));
    } catch (e) {
      return Promise.reject(e as Error);
    }
  }

  readBarrier(): Promise<void> {
    return Promise.resolve();
  }
}
