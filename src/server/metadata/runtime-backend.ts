// The metadata service's backend on a real node. A write is prepared
// (completed and validated) against this node's applied image — on the
// leader at once; elsewhere after a read barrier, so that the image covers
// everything committed before the write — then submitted through the
// runtime (forwarded to the leader from followers and observers alike) and
// answered with the accepted record once this node has applied it. The
// state machine's own check at apply time stays the authoritative one.

import type { NodeRuntime } from '../../node/runtime.js';
import { acceptedOrThrow, metadataCommand, prepareRecord } from '../../services/metadata/prepare.js';
import type { MetadataStateMachine } from '../../services/metadata/state-machine.js';
import type { AcceptedRecord, MetadataApplyResult, MetadataRecord } from '../../services/metadata/types.js';
import { MetadataUnavailableError, type MetadataBackend } from './backend.js';

export class RuntimeMetadataBackend implements MetadataBackend {
  constructor(private readonly runtime: NodeRuntime, readonly machine: MetadataStateMachine) {}

  async write(record: MetadataRecord): Promise<AcceptedRecord> {
    if (!this.runtime.isLeader()) await this.runtime.readBarrier();
    const rec = prepareRecord(this.machine.image, record);
    const result = (await this.runtime.submit(metadataCommand(rec))) as MetadataApplyResult | { type: 'error'; error: string; message: string };
    if (result.type === 'error') throw new MetadataUnavailableError(`the metadata service is not running here: ${result.message}`);
    return acceptedOrThrow(result);
  }

  readBarrier(): Promise<void> {
    return this.runtime.readBarrier();
  }
}
