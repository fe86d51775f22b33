// The key-value service as a replicated state machine: each committed
// command (src/services/kv/codec.ts) is applied to the MVCC store, and the
// store's bytes are what a snapshot holds. Deterministic, as every state
// machine the runtime feeds must be.

import type { LogIndex } from '../../protocol/ids.js';
import { decodeCommandView } from './codec.js';
import { KvStore } from './store.js';
import type { KvResult } from './types.js';

/** Applies KV commands from the log to a {@link KvStore}. */
export class KvStateMachine {
  readonly store = new KvStore();

  /** Applies one command. A command that does not decode (only a bug could log one) fails alike on every replica. */
  apply(command: Uint8Array, index: LogIndex): KvResult {
    return this.applyAt(command, 0, command.byteLength, index);
  }

  /**
   * Applies the command in data[start, end). It is decoded into views of those bytes, not copies: the store
   * copies exactly what it keeps (KvStore.apply), so a committed value is copied once.
   */
  applyAt(data: Uint8Array, start: number, end: number, _index: LogIndex): KvResult {
    let cmd;
    try {
      cmd = decodeCommandView(data, start, end);
    } catch (e) {
      return { type: 'error', error: 'emptyKey', message: `malformed command: ${(e as Error).message}`, revision: this.store.revision };
    }
    return this.store.apply(cmd);
  }

  snapshot(): Uint8Array {
    return this.store.snapshot();
  }

  restore(data: Uint8Array): void {
    this.store.restore(data);
  }
}
