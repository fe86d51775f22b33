// Read-only transactions served without the log. etcd answers a Txn whose
// branches hold only Range operations like a linearizable read (after a read
// barrier, from the local store) rather than proposing it; this file decides
// whether a txn is read-only and evaluates one against a KvStore with etcd's
// compare rules (applyCompare/compareKV in etcd's apply code): a compare holds
// when it holds for every key in its range; a missing key compares as a
// zeroed KeyValue, except that a VALUE compare on a missing key is false.

import type { KvStore } from '../../services/kv/store.js';
import type { Compare, KeyValue, RangeRequest, ResponseOp, TxnRequest, TxnResponse } from '../../services/kv/types.js';

/** True when no branch of `txn` (nested txns included) writes. */
export function isReadOnlyTxn(txn: TxnRequest): boolean {
  const readOnly = (ops: TxnRequest['success']): boolean =>
    ops.every((op) => op.type === 'range' || (op.type === 'txn' && isReadOnlyTxn(op.request)));
  return readOnly(txn.success) && readOnly(txn.failure);
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

function holds(c: Compare, kv: KeyValue | null): boolean {
  let order: number;
  switch (c.target) {
    case 'version':
      order = Math.sign((kv?.version ?? 0) - c.version);
      break;
    case 'create':
      order = Math.sign((kv?.createRevision ?? 0) - c.createRevision);
      break;
    case 'mod':
      order = Math.sign((kv?.modRevision ?? 0) - c.modRevision);
      break;
    case 'lease':
      order = Math.sign((kv?.lease ?? 0) - c.lease);
      break;
    case 'value':
      if (kv === null) return false;
      order = Math.sign(compareBytes(kv.value, c.value));
      break;
  }
  switch (c.result) {
    case 'equal':
      return order === 0;
    case 'notEqual':
      return order !== 0;
    case 'greater':
      return order > 0;
    case 'less':
      return order < 0;
  }
}

function rangeOf(key: Uint8Array, rangeEnd: Uint8Array): RangeRequest {
  return {
    key,
    rangeEnd,
    limit: 0,
    revision: 0,
    sortOrder: 'none',
    sortTarget: 'key',
    serializable: true,
    keysOnly: false,
    countOnly: false,
    minModRevision: 0,
    maxModRevision: 0,
    minCreateRevision: 0,
    maxCreateRevision: 0,
  };
}

/**
 * Evaluates a read-only txn (see {@link isReadOnlyTxn}) against `store` at its
 * current revision. Throws the store's KvError for a bad range (compacted or
 * future revision), as the read would.
 */
export function evaluateReadOnlyTxn(store: KvStore, txn: TxnRequest): TxnResponse {
  const succeeded = txn.compare.every((c) => {
    const { kvs } = store.range(rangeOf(c.key, c.rangeEnd));
    if (kvs.length === 0) return holds(c, null);
    return kvs.every((kv) => holds(c, kv));
  });
  const ops = succeeded ? txn.success : txn.failure;
  const responses: ResponseOp[] = ops.map((op): ResponseOp => {
    switch (op.type) {
      case 'range':
        return { type: 'range', response: store.range(op.request) };
      case 'txn':
        return { type: 'txn', response: evaluateReadOnlyTxn(store, op.request) };
      default:
        throw new Error(`evaluateReadOnlyTxn given a txn that writes (${op.type})`);
    }
  });
  return { succeeded, responses };
}
