// A put sent right after kill -9 of the leader (issue 17): the README tour's
// step 3 as a distribution. The time from SIGKILL to the first acknowledged
// write when the write is sent at once (not after the cluster has settled),
// in push and pull mode, with etcd 3.4 beside them. Unlike the failover
// benchmark (many short-deadline puts, every 5 ms), each client here sends
// one put with etcdctl's default 5 s deadline, as a user or a script would,
// and sends it again at once only after an error.
//
// One trial: wait for a leader that every node follows and for every node to
// have applied the leader's commit point; open a gRPC client on one survivor
// (in turn) and write through it once (its connection is up, as a
// long-lived client's would be); sleep a random 0-100 ms (so the kill falls
// anywhere in the heartbeat or fetch cycle); SIGKILL the leader and, in the
// same step, start two writers:
//   - grpc: a put through that survivor's open connection;
//   - etcdctl: `etcdctl --endpoints <all three> put` (a new process: its
//     start-up, about 50-150 ms, is in its figure, as it is for a user).
// Each writer, on an error, sends its put again at once, until one is
// acknowledged or TRIAL_CAP_MS passes. The killed node is restarted and
// caught up before the next trial. etcd gets the same treatment.
//
//   node dist/bench/put-after-kill.js [--quick] [--trials 50] [--etcd-trials N]
//     [--modes push,pull] [--etcd yes|no] [--deadline-ms 5000]
//
// Writes docs/bench/put-after-kill.{json,md,svg} (quick-put-after-kill.*
// with --quick, which runs 3 trials per system).

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { status as grpcStatus } from '@grpc/grpc-js';
import { runEtcdctl } from '../src/server/etcd/test-util.js';
import { EtcdTestClient } from '../test/cluster/etcd-client.js';
import { TestCluster } from '../test/cluster/harness.js';
import { EtcdCluster } from './cluster/etcd.js';
import { killEtcdMember, restartEtcdMember, settledEtcdLeader } from './cluster/etcd-member.js';
import { clusterTimeouts, distribution, freeEtcdBasePort, isMainModule, warmPut, onInterrupt, sleep, type ClusterTimeouts, type Distribution } from './cluster/fault-util.js';
import { fmt, mdTable, progress, REPORT_DIR, writeReport } from './cluster/report.js';
import { renderCdfSvg } from './svg-cdf.js';

/** A writer with no acknowledged put this long after the kill counts as failed (+Infinity). */
const TRIAL_CAP_MS = 20_000;
/** A pause between a failed put and the next, so that an error returned at once cannot spin. */
const RETRY_PAUSE_MS = 10;

/** The two ways a put is sent right after the kill. */
export type Writer = 'grpc' | 'etcdctl';
const WRITERS: readonly Writer[] = ['grpc', 'etcdctl'];

/** One writer's outcome in one trial. */
export interface WriterOutcome {
  /** ms from SIGKILL to the acknowledgement; null when none came within TRIAL_CAP_MS. */
  readonly ackMs: number | null;
  /** Puts sent, the acknowledged one included. */
  readonly attempts: number;
  /** The first put's error (null: the first put was acknowledged). */
  readonly firstError: string | null;
}

/** One trial. */
export interface PutAfterKillTrial {
  readonly trial: number;
  readonly killed: string;
  /** The survivor whose open connection the grpc writer used. */
  readonly via: string;
  readonly writers: Readonly<Record<Writer, WriterOutcome>>;
}

/** One system's series. */
export interface PutAfterKillSeries {
  readonly system: 'quorumlog push' | 'quorumlog pull' | 'etcd 3.4';
  readonly electionTimeout: string;
  readonly stats: Readonly<Record<Writer, Distribution>>;
  /** Trials whose first put (of each writer) was acknowledged, without a retry. */
  readonly firstPutAcked: Readonly<Record<Writer, number>>;
  readonly trials: readonly PutAfterKillTrial[];
}

interface Options {
  readonly quick: boolean;
  readonly trials: number;
  readonly etcdTrials: number;
  readonly modes: readonly ('push' | 'pull')[];
  readonly etcd: boolean;
  readonly deadlineMs: number;
}

/** Sends `put` at once and again after each error until one is acknowledged or the cap passes. */
async function untilAcked(put: () => Promise<void>, t0: number): Promise<WriterOutcome> {
  let attempts = 0;
  let firstError: string | null = null;
  while (performance.now() - t0 < TRIAL_CAP_MS) {
    attempts++;
    try {
      await put();
      return { ackMs: Math.round((performance.now() - t0) * 100) / 100, attempts, firstError };
    } catch (e) {
      firstError ??= shortError(e);
      await sleep(RETRY_PAUSE_MS);
    }
  }
  return { ackMs: null, attempts, firstError };
}

/** The gist of an error, stable across trials: a gRPC status's name and message (without grpc-js's timings), or etcdctl's last stderr line. */
function shortError(e: unknown): string {
  const err = e as { code?: unknown; details?: unknown; message?: unknown };
  if (typeof err.code === 'number' && typeof err.details === 'string') {
    const name = grpcStatus[err.code] ?? String(err.code);
    return err.code === grpcStatus.DEADLINE_EXCEEDED ? name : `${name}: ${err.details.split(',')[0] ?? ''}`;
  }
  const text = typeof err.message === 'string' ? err.message : String(e);
  return text.trim().split('\n').filter((l) => l.trim() !== '').pop()?.slice(0, 120) ?? '';
}

/** `etcdctl --endpoints <endpoints> put key value` with a `deadlineMs` command timeout; throws with its stderr on failure. */
async function etcdctlPut(endpoints: readonly string[], key: string, value: string, deadlineMs: number): Promise<void> {
  const r = await runEtcdctl(endpoints, ['put', key, value], { commandTimeout: `${deadlineMs}ms` });
  if (r.code !== 0 || r.stdout.trim() !== 'OK') throw new Error(r.stderr.trim() || `etcdctl exited ${String(r.code)}`);
}

/** Kills the leader with `kill` (which must send SIGKILL before it returns its promise) and races both writers. */
async function trialWrites(
  kill: () => Promise<void>, client: EtcdTestClient, endpoints: readonly string[], key: string, deadlineMs: number,
): Promise<Record<Writer, WriterOutcome>> {
  const t0 = performance.now();
  const killed = kill();
  let n = 0;
  const [grpc, etcdctl] = await Promise.all([
    untilAcked(async () => { await client.put(`${key}/grpc`, `v${n++}`); }, t0),
    untilAcked(() => etcdctlPut(endpoints, `${key}/etcdctl`, `v${n++}`, deadlineMs), t0),
  ]);
  await killed;
  return { grpc, etcdctl };
}

async function quorumlogSeries(mode: 'push' | 'pull', o: Options, report: (line: string, force?: boolean) => void,
  track: (c: TestCluster | null) => void): Promise<{ timeouts: ClusterTimeouts; trials: PutAfterKillTrial[] }> {
  const c = await TestCluster.start({ nodes: 3, mode });
  track(c);
  const trials: PutAfterKillTrial[] = [];
  try {
    const timeouts = clusterTimeouts(c);
    for (let t = 0; t < o.trials; t++) {
      const leader = await c.waitForLeader(30_000);
      const target = (await leader.status())?.commitIndex ?? 0;
      for (const n of c.nodes) await c.waitFor(n, (s) => s.appliedIndex >= target, 30_000, 'catching up before the trial');
      const survivors = c.nodes.filter((n) => n !== leader);
      const via = survivors[t % survivors.length];
      if (via === undefined) throw new Error('no survivor');
      const client = new EtcdTestClient(via.endpoint, o.deadlineMs);
      try {
        await warmPut(client, `warm/${via.id}`);
        await sleep(Math.random() * 100);
        const writers = await trialWrites(() => leader.kill9(), client, c.endpoints, `put-after-kill/${mode}/${t}`, o.deadlineMs);
        trials.push({ trial: t, killed: leader.id, via: via.id, writers });
      } finally {
        client.close();
      }
      leader.start();
      const last = trials[trials.length - 1]?.writers;
      report(`${mode}: trial ${t + 1}/${o.trials}, grpc ${last?.grpc.ackMs ?? 'failed'} ms, etcdctl ${last?.etcdctl.ackMs ?? 'failed'} ms`, t + 1 === o.trials);
    }
    await c.waitForLeader(30_000).catch(() => undefined);
    return { timeouts, trials };
  } finally {
    await c.close();
    track(null);
  }
}

async function etcdSeries(o: Options, report: (line: string, force?: boolean) => void,
  track: (c: EtcdCluster | null, dir: string | null) => void): Promise<PutAfterKillTrial[]> {
  const dir = mkdtempSync(join(tmpdir(), 'quorumlog-bench-etcd-put-after-kill-'));
  const basePort = await freeEtcdBasePort(33_000);
  const trials: PutAfterKillTrial[] = [];
  let e: EtcdCluster | null = null;
  try {
    e = await EtcdCluster.start(dir, basePort);
    track(e, dir);
    const cluster = e;
    for (let t = 0; t < o.etcdTrials; t++) {
      const { leader, index } = await settledEtcdLeader(cluster);
      const survivors = cluster.members.filter((m) => m !== leader);
      const via = survivors[t % survivors.length];
      if (via === undefined) throw new Error('no survivor');
      const client = new EtcdTestClient(via.client, o.deadlineMs);
      try {
        await warmPut(client, `warm/${via.name}`);
        await sleep(Math.random() * 100);
        const writers = await trialWrites(() => killEtcdMember(leader), client, cluster.endpoints, `put-after-kill/etcd/${t}`, o.deadlineMs);
        trials.push({ trial: t, killed: leader.name, via: via.name, writers });
      } finally {
        client.close();
      }
      restartEtcdMember(cluster, index, basePort);
      const last = trials[trials.length - 1]?.writers;
      report(`etcd: trial ${t + 1}/${o.etcdTrials}, grpc ${last?.grpc.ackMs ?? 'failed'} ms, etcdctl ${last?.etcdctl.ackMs ?? 'failed'} ms`, t + 1 === o.etcdTrials);
    }
    return trials;
  } finally {
    if (e !== null) await e.stop();
    track(null, null);
    rmSync(dir, { recursive: true, force: true });
  }
}

function series(system: PutAfterKillSeries['system'], electionTimeout: string, trials: PutAfterKillTrial[]): PutAfterKillSeries {
  const by = <T>(f: (w: Writer) => T): Record<Writer, T> => ({ grpc: f('grpc'), etcdctl: f('etcdctl') });
  return {
    system, electionTimeout, trials,
    stats: by((w) => distribution(trials.map((t) => t.writers[w].ackMs ?? Infinity))),
    firstPutAcked: by((w) => trials.filter((t) => t.writers[w].firstError === null && t.writers[w].ackMs !== null).length),
  };
}

function parse(argv: readonly string[]): Options {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      quick: { type: 'boolean', default: false },
      trials: { type: 'string' },
      'etcd-trials': { type: 'string' },
      modes: { type: 'string', default: 'push,pull' },
      etcd: { type: 'string', default: 'yes' },
      'deadline-ms': { type: 'string', default: '5000' },
    },
  });
  const quick = values.quick === true;
  const trials = Number(values.trials ?? (quick ? 3 : 50));
  const etcdTrials = Number(values['etcd-trials'] ?? trials);
  const deadlineMs = Number(values['deadline-ms']);
  for (const [name, v] of [['--trials', trials], ['--etcd-trials', etcdTrials], ['--deadline-ms', deadlineMs]] as const) {
    if (!Number.isSafeInteger(v) || v < 1) throw new Error(`${name} must be a positive integer, not ${String(v)}`);
  }
  const modes = values.modes.split(',').filter((m): m is 'push' | 'pull' => m === 'push' || m === 'pull');
  return { quick, trials, etcdTrials, modes, etcd: values.etcd !== 'no', deadlineMs };
}

const ms = (x: number): string => (Number.isFinite(x) ? fmt(x, 0) : 'failed');

/** The most frequent first errors of one writer across a series, as "text (count)". */
function commonErrors(s: PutAfterKillSeries, w: Writer): string {
  const counts = new Map<string, number>();
  for (const t of s.trials) {
    const e = t.writers[w].firstError;
    if (e !== null) counts.set(e, (counts.get(e) ?? 0) + 1);
  }
  if (counts.size === 0) return '—';
  return [...counts].sort((a, b) => b[1] - a[1]).slice(0, 2).map(([e, n]) => `\`${e.replaceAll('|', '\\|')}\` (${n})`).join('; ');
}

/** Runs the benchmark; `argv` are the options after the script name. */
export async function main(argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  const o = parse(argv);
  const name = o.quick ? 'quick-put-after-kill' : 'put-after-kill';
  const command = `node dist/bench/put-after-kill.js${argv.length > 0 ? ` ${argv.join(' ')}` : ''}`;
  const report = progress('put-after-kill');
  let liveCluster: TestCluster | null = null;
  let liveEtcd: EtcdCluster | null = null;
  let liveEtcdDir: string | null = null;
  const cleanup = async (): Promise<void> => {
    await liveCluster?.close();
    await liveEtcd?.stop();
    if (liveEtcdDir !== null) rmSync(liveEtcdDir, { recursive: true, force: true });
  };
  const detach = onInterrupt(cleanup);
  const all: PutAfterKillSeries[] = [];
  let timeouts: ClusterTimeouts | null = null;
  try {
    for (const mode of o.modes) {
      const r = await quorumlogSeries(mode, o, report, (c) => { liveCluster = c; });
      timeouts = r.timeouts;
      all.push(series(`quorumlog ${mode}`, `${r.timeouts.electionTimeoutMinMs}-${r.timeouts.electionTimeoutMaxMs} ms`, r.trials));
    }
    if (o.etcd) {
      const trials = await etcdSeries(o, report, (c, dir) => { liveEtcd = c; liveEtcdDir = dir; });
      all.push(series('etcd 3.4', '1000 ms (heartbeat 100 ms; etcd randomizes it up to 2x)', trials));
    }
  } finally {
    await cleanup();
    detach();
  }

  const label: Record<Writer, string> = { grpc: 'gRPC, open connection to a follower', etcdctl: 'etcdctl, all endpoints (a new process)' };
  const rows = all.flatMap((s) => WRITERS.map((w) => {
    const d = s.stats[w];
    return [s.system, label[w], d.n, d.failed, `${s.firstPutAcked[w]}/${d.n}`, ms(d.p50), ms(d.p90), ms(d.p99), ms(d.max), commonErrors(s, w)];
  }));
  const table = mdTable(['system', 'writer', 'trials', 'failed', 'first put acknowledged', 'p50', 'p90', 'p99', 'max', 'first put\'s error (most frequent)'], rows);
  const t = timeouts;
  const settings = t === null ? '' : `quorumlog settings (read from the nodes' config, defaults where unset): ${t.tickMs} ms ticks, ` +
    `election timeout random in [${t.electionTimeoutMinTicks}, ${t.electionTimeoutMaxTicks}) ticks = ${t.electionTimeoutMinMs}-${t.electionTimeoutMaxMs} ms ` +
    '(in pull mode the fetch timeout).';
  const md = [
    '# A put sent right after kill -9 of the leader',
    '',
    'The README tour\'s step 3, measured: 3-node clusters on one machine; each trial kills the leader with SIGKILL at a random point ' +
      '(0-100 ms after the cluster settled) and, in the same step, sends one put through each of two writers: a gRPC client whose ' +
      'connection to a surviving node was opened before the kill, and `etcdctl --endpoints <all three> put` (a new process, its start-up included). ' +
      `Each put has a ${o.deadlineMs} ms deadline (etcdctl's default --command-timeout); a writer sends its put again only after an error, ` +
      `${RETRY_PAUSE_MS} ms later. The figure is the time from SIGKILL to the writer's first acknowledged put; a writer with none within ` +
      `${TRIAL_CAP_MS / 1000} s counts as failed. The killed node is restarted and caught up before the next trial. ` +
      'See docs/CLUSTER.md, "Requests during an election", for what a node does with such a put.',
    '',
    settings,
    o.etcd ? 'etcd runs with its defaults (heartbeat 100 ms, election timeout 1000 ms): it suspects a dead leader later than quorumlog does with its defaults, ' +
      'so compare the shape (does the first put succeed, or wait out its deadline?) more than the medians.' : 'etcd was not run (--etcd no).',
    '',
    table,
  ].join('\n');
  const data = { options: o, timeouts, trialCapMs: TRIAL_CAP_MS, retryPauseMs: RETRY_PAUSE_MS, series: all };
  const files = writeReport(name, command, data, md);
  const svg = join(REPORT_DIR, `${name}.svg`);
  writeFileSync(svg, renderCdfSvg({
    title: 'A put sent right after kill -9 of the leader: time to its acknowledgement',
    xLabel: 'ms from SIGKILL to the first acknowledged put (log scale)',
    yLabel: 'cumulative percent of trials',
    xMin: 50, xMax: 30_000, columns: 2,
    panels: WRITERS.map((w) => ({
      title: `${label[w]}; ${o.trials} trials per mode`,
      lines: all.map((s) => ({ label: s.system, values: s.trials.map((x) => x.writers[w].ackMs ?? Infinity) })),
    })),
  }));
  console.log(`\n${table}\n\nwrote ${[...files, svg].join(', ')}`);
}

if (isMainModule(import.meta.url)) {
  main().then(() => process.exit(0), (e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
