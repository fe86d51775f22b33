// `quorumlog status --endpoints a,b,c`: asks every endpoint for its status
// (over the client port, see src/server/admin.ts) and prints the cluster as
// a table: each node's role, term, commit and applied index, and, from the
// leader, each member's replication lag. `--json` prints the raw statuses.
// While auth is on a node answers root alone (as etcd 3.4's
// Maintenance.Status); a refusal ends the verb with one line that says so.

import * as grpc from '@grpc/grpc-js';
import { fetchAdminStatus } from '../server/admin.js';
import type { NodeStatus } from '../server/metrics.js';
import { clientCredentials, clientOptions } from './credentials.js';
import { classifyTransportError, refineFailure, transportReason } from './transport-errors.js';

export interface StatusOptions {
  readonly endpoints: readonly string[];
  readonly json: boolean;
  readonly timeoutMs: number;
  /** Whether the channels speak TLS (credentials.ts has their files): only for the words of a failure. */
  readonly tls: boolean;
}

/**
 * A node refused `quorumlog status` for want of root while auth is on. It
 * carries the node's gRPC code, and the node's words with what to do in
 * `details`, so that the program prints that line and exits 1.
 */
export class StatusNeedsRootError extends Error {
  override readonly name = 'StatusNeedsRootError';
  readonly code: grpc.status;
  readonly details: string;
  constructor(endpoint: string, refusal: { code: grpc.status; details: string }, options?: ErrorOptions) {
    const details = `${endpoint}: ${refusal.details} (while auth is on, status answers the root user alone: give --user root)`;
    super(details, options);
    this.code = refusal.code;
    this.details = details;
  }
}

/** etcd's refusals of a caller who is not root (or no one). */
function authRefusal(err: unknown): { code: grpc.status; details: string } | null {
  const e = err as Partial<grpc.ServiceError>;
  if (typeof e.code !== 'number' || typeof e.details !== 'string') return null;
  const refused = e.code === grpc.status.PERMISSION_DENIED || e.code === grpc.status.UNAUTHENTICATED
    || (e.code === grpc.status.INVALID_ARGUMENT && e.details === 'etcdserver: user name is empty');
  return refused ? { code: e.code, details: e.details } : null;
}

/** Prints the cluster's status; returns the exit code (1 when no endpoint answered or no leader is known). Throws StatusNeedsRootError when a node refused the caller. */
export async function runStatus(o: StatusOptions, out: (line: string) => void): Promise<number> {
  const creds = clientCredentials();
  const answers = await Promise.all(o.endpoints.map(async (e) => {
    try {
      return { endpoint: e, status: await fetchAdminStatus(e, creds, o.timeoutMs, clientOptions()), error: null };
    } catch (err) {
      const refusal = authRefusal(err);
      if (refusal !== null) throw new StatusNeedsRootError(e, refusal, { cause: err });
      return { endpoint: e, status: null, error: await unreachableReason(err, e, !o.tls) };
    }
  }));
  if (o.json) {
    out(JSON.stringify(answers, null, 2));
  } else {
    const rows = [['endpoint', 'node', 'pid', 'mode', 'role', 'term', 'leader', 'commit', 'applied', 'last']];
    for (const a of answers) {
      const s = a.status;
      // An unreachable node's reason goes last, so that it cannot push the other columns out of line.
      rows.push(s === null ? [a.endpoint, '-', '-', '-', `unreachable: ${a.error ?? '?'}`, '', '', '', '', '']
        : [a.endpoint, s.id, String(s.pid), s.mode, s.removed === true ? `${s.role} (removed)` : s.lostDisk != null ? `${s.role} (lost disk: re-add it)` : s.role, String(s.term), s.leader ?? '-', String(s.commitIndex), String(s.appliedIndex), String(s.lastIndex)]);
    }
    table(rows, out);
    const leader = answers.map((a) => a.status).find((s): s is NodeStatus => s !== null && s.role === 'leader');
    if (leader !== undefined && leader.replication.length > 0) {
      out('');
      out(`replication, as leader ${leader.id} sees it (its last index ${leader.lastIndex}):`);
      table([['member', 'kind', 'acknowledged', 'lag (entries)', 'send queue (bytes)'],
        ...leader.replication.map((r) => [r.id, r.voter ? 'voter' : 'observer', String(r.match), String(r.lagEntries), String(r.sendQueueBytes)])], out);
    }
  }
  const anyAnswer = answers.some((a) => a.status !== null);
  const anyLeader = answers.some((a) => a.status?.leader !== null && a.status?.leader !== undefined);
  return anyAnswer && anyLeader ? 0 : 1;
}

/** A short reason for a status row: "connection refused", "timed out", ...; an answer that is not a transport failure in its own words. */
async function unreachableReason(err: unknown, endpoint: string, plainText: boolean): Promise<string> {
  const f = classifyTransportError(err);
  if (f !== null) return transportReason(await refineFailure(f, endpoint, plainText));
  const e = err as { details?: unknown; message?: unknown };
  const text = typeof e.details === 'string' && e.details !== '' ? e.details : typeof e.message === 'string' ? e.message : String(err);
  return (text.split('\n')[0] ?? '').slice(0, 80);
}

/**
 * Prints rows as aligned columns. A cell may be wider than its column's
 * other cells only in the last non-empty position of its row (an
 * unreachable node's reason): it is left out of the column's width, so the
 * rows that answered stay compact and aligned.
 */
function table(rows: readonly string[][], out: (line: string) => void): void {
  const lastFilled = (r: readonly string[]): number => r.reduce((last, c, i) => (c !== '' ? i : last), -1);
  const spills = (r: readonly string[], i: number): boolean => r !== rows[0] && i === lastFilled(r) && r.slice(i + 1).every((c) => c === '') && i < r.length - 1;
  const widths = (rows[0] ?? []).map((_, i) => Math.max(...rows.map((r) => (spills(r, i) ? 0 : (r[i] ?? '').length))));
  for (const r of rows) out(r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd());
}
