// `quorumlog status --endpoints a,b,c`: asks every endpoint for its status
// (over the client port, see src/server/admin.ts) and prints the cluster as
// a table: each node's role, term, commit and applied index, and, from the
// leader, each member's replication lag. `--json` prints the raw statuses.

import * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { fetchAdminStatus } from '../server/admin.js';
import type { NodeStatus } from '../server/metrics.js';
import { classifyTransportError, refineFailure, transportReason } from './transport-errors.js';

export interface StatusOptions {
  readonly endpoints: readonly string[];
  readonly json: boolean;
  readonly timeoutMs: number;
  readonly tls?: { readonly cert: string; readonly key: string; readonly ca: string };
}

/** Prints the cluster's status; returns the exit code (1 when no endpoint answered or no leader is known). */
export async function runStatus(o: StatusOptions, out: (line: string) => void): Promise<number> {
  const creds = o.tls === undefined ? grpc.credentials.createInsecure()
    : grpc.credentials.createSsl(readFileSync(o.tls.ca), readFileSync(o.tls.key), readFileSync(o.tls.cert));
  const answers = await Promise.all(o.endpoints.map(async (e) => {
    try {
      return { endpoint: e, status: await fetchAdminStatus(e, creds, o.timeoutMs), error: null };
    } catch (err) {
      return { endpoint: e, status: null, error: await unreachableReason(err, e, o.tls === undefined) };
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
