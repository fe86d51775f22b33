// Keeps the key-value store's history bounded. The MVCC store holds every
// revision since the last compaction in memory (etcd keeps its on disk, and
// compacts only when told to or with --auto-compaction-*), so without this a
// busy cluster's memory would grow with every write. The leader checks every
// `checkEveryMs`; once more than `retentionRevisions` revisions have piled up
// past the compaction point (plus slack, so that compactions are batched), it
// proposes KV.Compact(revision - retentionRevisions) through the log, as a
// client's Compact would be: every replica applies it at the same point.
// Watchers further behind than the retention are cancelled with the
// compacted revision, as etcd does.

import { SYSTEM_STAMP } from '../services/auth/codec.js';
import type { Logger } from 'pino';
import type { KvBackend } from './etcd/backend.js';

export interface AutoCompactionOptions {
  /** Revisions kept behind the current one; 0 turns automatic compaction off. */
  readonly retentionRevisions: number;
  readonly checkEveryMs?: number;
  readonly isLeader: () => boolean;
  readonly logger: Logger;
}

/** Starts the periodic check; returns a function that stops it. */
export function startAutoCompaction(backend: KvBackend, o: AutoCompactionOptions): () => void {
  if (o.retentionRevisions <= 0) return () => undefined;
  const slack = Math.max(1, Math.floor(o.retentionRevisions / 10));
  let busy = false;
  const timer = setInterval(() => {
    if (busy || !o.isLeader()) return;
    const store = backend.store;
    const target = store.revision - o.retentionRevisions;
    if (target - store.compactRevision < slack) return;
    busy = true;
    // Stamped as the cluster's own: it applies while auth is on (src/services/auth/gate.ts).
    backend.write({ type: 'compact', request: { revision: target, physical: false } }, SYSTEM_STAMP).then((r) => {
      if (r.type === 'error' && r.error !== 'compacted') o.logger.warn({ target, error: r.message }, 'automatic compaction refused');
      else if (r.type !== 'error') o.logger.debug({ revision: target }, 'compacted the key-value history');
    }, (e: unknown) => {
      o.logger.debug({ err: (e as Error).message }, 'automatic compaction did not go through; will try again');
    }).finally(() => {
      busy = false;
    });
  }, o.checkEveryMs ?? 1000);
  timer.unref();
  return () => clearInterval(timer);
}
