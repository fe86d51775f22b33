// Records a key-value history for the linearizability checker (checker.ts).
// Concurrent clients in one process share a recorder: each calls begin() just
// before sending a request and end() as soon as the reply arrives, or unknown()
// when it timed out or the connection was lost (the request may still take
// effect later). One clock for everyone, monotonic by default.

import type { KvOp, KvOutput, Operation } from './checker.js';

/** Misuse of a {@link HistoryRecorder} (unknown handle, ending twice, output of the wrong kind). */
export class HistoryRecorderError extends Error {
  override readonly name = 'HistoryRecorderError';
}

/** One operation as recorded; `done` once end() or unknown() was called. */
interface Recorded {
  client: number;
  op: KvOp;
  call: number;
  ret: number;
  output: KvOutput | null;
  done: boolean;
}

/**
 * A history under construction. Invariants: every handle came from begin();
 * each is ended at most once (end or unknown); recorded call <= ret.
 */
export class HistoryRecorder {
  private readonly ops: Recorded[] = [];

  /** `clock` must be monotonic and shared by all clients; default performance.now (milliseconds). */
  constructor(private readonly clock: () => number = () => performance.now()) {}

  /** Records the call of `op` by `client` now; returns the handle to end it with. */
  begin(client: number, op: KvOp): number {
    this.ops.push({ client, op: structuredClone(op), call: this.clock(), ret: Infinity, output: null, done: false });
    return this.ops.length - 1;
  }

  /** Records that the operation returned `output` now. */
  end(handle: number, output: KvOutput): void {
    const o = this.open(handle);
    if (output.kind !== o.op.kind) throw new HistoryRecorderError(`output of kind ${output.kind} for a ${o.op.kind} (handle ${handle})`);
    o.ret = Math.max(this.clock(), o.call);
    o.output = structuredClone(output);
    o.done = true;
  }

  /** Records that the outcome will never be known (timed out, connection lost): it may or may not take effect. */
  unknown(handle: number): void {
    const o = this.open(handle);
    o.done = true;
  }

  /** The history so far, in order of calls. Operations begun but not yet ended are reported with an unknown outcome. */
  operations(): Operation[] {
    return this.ops.map((o) => ({ client: o.client, op: structuredClone(o.op), call: o.call, ret: o.ret, output: o.output === null ? null : { ...o.output } }));
  }

  private open(handle: number): Recorded {
    const o = this.ops[handle];
    if (o === undefined) throw new HistoryRecorderError(`no operation with handle ${handle}`);
    if (o.done) throw new HistoryRecorderError(`operation ${handle} already ended`);
    return o;
  }
}
