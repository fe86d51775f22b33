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
import type { AuthStamp } from '../../services/auth/codec.js';
import { stampCommand } from '../../services/machine.js';
import { throwIfAuthDenied } from '../etcd/errors.js';

export class RuntimeMetadataBackend implements MetadataBackend {
  /**
   * `stamp`: what writes go into the log stamped with when the caller gives
   * none (src/services/auth/gate.ts): brokers and controllers embedded in the
   * node's process write as the system; the gRPC service passes each caller's.
   */
  constructor(private readonly runtime: NodeRuntime, readonly machine: MetadataStateMachine, private readonly stamp: AuthStamp | null = null) {}

  async write(record: MetadataRecord, stamp: AuthStamp | null = this.stamp): Promise<AcceptedRecord> {
    if (!this.runtime.isLeader()) await this.runtime.readBarrier();
    const rec = prepareRecord(this.machine.image, record);
    const bytes = metadataCommand(rec);
    const result = throwIfAuthDenied(await this.runtime.submit(stamp === null ? bytes : stampCommand(stamp, bytes))) as
      MetadataApplyResult | { type: 'error'; error: string; message: string };
    if (result.type === 'error') throw new MetadataUnavailableError(`the metadata service is not running here: ${result.message}`);
    return acceptedOrThrow(result);
  }

  readBarrier(): Promise<void> {
    return this.runtime.readBarrier();
  }
}
