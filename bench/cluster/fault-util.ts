// Small pieces shared by the fault benchmarks (failover, idle cost, back
// pressure): the timeouts a test cluster really runs with (read from its
// config files), distribution summaries, a node's /metrics as numbers, and
// the context switches of a process (a cheap count of its wakeups).

import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { formatAddress } from '../../src/server/config.js';
import { NODE_DEFAULTS } from '../../src/server/config.js';
import type { EtcdTestClient } from '../../test/cluster/etcd-client.js';
import type { TestCluster, TestNode } from '../../test/cluster/harness.js';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** True when `moduleUrl` is the script node was asked to run (so `main` runs only then). */
export function isMainModule(moduleUrl: string): boolean {
  const entry = process.argv[1];
  return entry !== undefined && moduleUrl === pathToFileURL(entry).href;
}

/** The timing settings a node of the cluster runs with: its config file over the defaults. */
export interface ClusterTimeouts {
  readonly tickMs: number;
  readonly electionTimeoutMinTicks: number;
  readonly electionTimeoutMaxTicks: number;
  readonly heartbeatIntervalTicks: number;
  readonly fetchMaxWaitTicks: number;
  /** Half-open [min, max) election timeout in ms. */
  readonly electionTimeoutMinMs: number;
  readonly electionTimeoutMaxMs: number;
}

/** Reads n1's config.json of a test cluster; settings it does not name take NODE_DEFAULTS. */
export function clusterTimeouts(c: TestCluster): ClusterTimeouts {
  const first = c.nodes[0];
  if (first === undefined) throw new Error('empty cluster');
  const cfg = JSON.parse(readFileSync(c.layout.configPath(first.id), 'utf8')) as Record<string, unknown>;
  const num = (k: keyof typeof NODE_DEFAULTS): number => (typeof cfg[k] === 'number' ? cfg[k] : NODE_DEFAULTS[k] as number);
  const tickMs = num('tickMs');
  return {
    tickMs,
    electionTimeoutMinTicks: num('electionTimeoutMinTicks'),
    electionTimeoutMaxTicks: num('electionTimeoutMaxTicks'),
    heartbeatIntervalTicks: num('heartbeatIntervalTicks'),
    fetchMaxWaitTicks: num('fetchMaxWaitTicks'),
    electionTimeoutMinMs: num('electionTimeoutMinTicks') * tickMs,
    electionTimeoutMaxMs: num('electionTimeoutMaxTicks') * tickMs,
  };
}

/** Nearest-rank percentile of ascending values (NaN when empty). */
export function percentileOf(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1] as number;
}

/** A distribution's summary; +Infinity samples (failed trials) sort last and count in the percentiles. */
export interface Distribution {
  readonly n: number;
  readonly failed: number;
  readonly min: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  /** Mean of the finite samples. */
  readonly mean: number;
}

/** Summarizes samples (nearest-rank percentiles). */
export function distribution(values: readonly number[]): Distribution {
  const s = [...values].sort((a, b) => a - b);
  const finite = s.filter((x) => Number.isFinite(x));
  return {
    n: s.length, failed: s.length - finite.length,
    min: s[0] ?? NaN, p50: percentileOf(s, 50), p90: percentileOf(s, 90), p99: percentileOf(s, 99), max: s[s.length - 1] ?? NaN,
    mean: finite.reduce((a, b) => a + b, 0) / Math.max(1, finite.length),
  };
}

/** A node's Prometheus text as name{labels} → value (null when it does not answer). */
export async function scrapeMetrics(n: TestNode, timeoutMs = 1000): Promise<Map<string, number> | null> {
  try {
    const res = await fetch(`http://${formatAddress(n.member.metrics)}/metrics`, { signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.text();
    const out = new Map<string, number>();
    for (const line of text.split('\n')) {
      if (line === '' || line.startsWith('#')) continue;
      const sp = line.lastIndexOf(' ');
      // Drop the node="…" default label so that names read the same on every node.
      out.set(line.slice(0, sp).replace(/,?node="[^"]*"/, '').replace('{}', ''), Number(line.slice(sp + 1)));
    }
    return out;
  } catch {
    return null;
  }
}

/** Voluntary + involuntary context switches of every thread of a process so far (NaN if gone). */
export function contextSwitches(pid: number): number {
  try {
    let total = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const st = readFileSync(join(`/proc/${pid}/task`, tid, 'status'), 'utf8');
      for (const m of st.matchAll(/(?:non)?voluntary_ctxt_switches:\s+(\d+)/g)) total += Number(m[1]);
    }
    return total;
  } catch {
    return NaN;
  }
}

/** Runs `cleanup` once on SIGINT/SIGTERM (then exits 130), so that Ctrl-C leaves no process behind. */
export function onInterrupt(cleanup: () => Promise<void>): () => void {
  const handler = (): void => {
    console.error('interrupted: stopping the clusters');
    cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', handler);
  process.once('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** A base port in [lo, lo + 2000) with base + offset free for every offset (and every i < count). */
export async function freePortBase(lo: number, count: number, offsets: readonly number[]): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = lo + Math.floor(Math.random() * 2000);
    const ports = Array.from({ length: count }, (_, i) => offsets.map((o) => base + o + i)).flat();
    if ((await Promise.all(ports.map(portFree))).every((x) => x)) return base;
  }
  throw new Error(`no free port range above ${lo}`);
}

/** A base port with base..base+count-1 and base+100.. free (an etcd cluster's client and peer ports). */
export function freeEtcdBasePort(lo: number, count = 3): Promise<number> {
  return freePortBase(lo, count, [0, 100]);
}

/** One acknowledged put through `client` (retried while the cluster settles), so its connection is up before a trial. */
export async function warmPut(client: EtcdTestClient, key: string, capMs = 20_000): Promise<void> {
  const deadline = Date.now() + capMs;
  for (;;) {
    try {
      await client.put(key, 'warm');
      return;
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`${client.endpoint}: no write acknowledged within ${capMs} ms`, { cause: e });
      await sleep(50);
    }
  }
}
