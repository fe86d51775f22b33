// Messages between the members of a cluster, counted by the kernel: `ss -tinp`
// gives each TCP socket's owner pid and its data_segs_out (segments that
// carried data). Summed per ordered pair of processes over every connection
// between them, whichever side dialed, the count of data segments is the
// count of messages when messages are small and not coalesced (an idle
// cluster's heartbeats, fetches and their answers). Linux only; loopback.

import { execFileSync } from 'node:child_process';

interface SocketRow {
  readonly local: string;
  readonly peer: string;
  readonly pid: number;
  readonly dataSegsOut: number;
  readonly bytesSent: number;
}

/** Every established TCP socket on 127.0.0.1 whose local or remote port is in `ports`. */
function sockets(ports: ReadonlySet<number>): SocketRow[] {
  const text = execFileSync('ss', ['-tinpH', 'state', 'established'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const rows: SocketRow[] = [];
  const lines = text.split('\n');
  const port = (addr: string): number => Number(addr.slice(addr.lastIndexOf(':') + 1));
  const norm = (addr: string): string => addr.replace('[::ffff:', '').replace(']', '');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line === '' || /^\s/.test(line)) continue;
    const f = line.trim().split(/\s+/);
    const local = norm(f[2] ?? '');
    const peer = norm(f[3] ?? '');
    if (!ports.has(port(local)) && !ports.has(port(peer))) continue;
    const pid = Number(/pid=(\d+)/.exec(line)?.[1] ?? NaN);
    const info = lines[i + 1] ?? '';
    rows.push({
      local, peer, pid,
      dataSegsOut: Number(/data_segs_out:(\d+)/.exec(info)?.[1] ?? 0),
      bytesSent: Number(/bytes_sent:(\d+)/.exec(info)?.[1] ?? 0),
    });
  }
  return rows;
}

/** A snapshot of the traffic between the processes of one cluster. */
export interface TrafficSnapshot {
  /** "fromPid>toPid" → [data segments, bytes] sent so far on connections open now, keyed per connection. */
  readonly perConnection: ReadonlyMap<string, { pair: string; segs: number; bytes: number }>;
}

/** Takes a snapshot for the processes `pids` whose peer (listening) ports are `peerPorts`. */
export function trafficSnapshot(peerPorts: readonly number[]): TrafficSnapshot {
  const rows = sockets(new Set(peerPorts));
  const owner = new Map(rows.map((r) => [r.local, r.pid]));
  const perConnection = new Map<string, { pair: string; segs: number; bytes: number }>();
  for (const r of rows) {
    const to = owner.get(r.peer);
    if (to === undefined || Number.isNaN(r.pid)) continue;
    perConnection.set(`${r.local}>${r.peer}`, { pair: `${r.pid}>${to}`, segs: r.dataSegsOut, bytes: r.bytesSent });
  }
  return { perConnection };
}

/** Data segments and bytes sent per ordered pair of pids ("a>b") between two snapshots. */
export function trafficBetween(a: TrafficSnapshot, b: TrafficSnapshot): Map<string, { segs: number; bytes: number }> {
  const out = new Map<string, { segs: number; bytes: number }>();
  for (const [key, end] of b.perConnection) {
    const start = a.perConnection.get(key);
    const cur = out.get(end.pair) ?? { segs: 0, bytes: 0 };
    cur.segs += end.segs - (start?.segs ?? 0);
    cur.bytes += end.bytes - (start?.bytes ?? 0);
    out.set(end.pair, cur);
  }
  return out;
}
