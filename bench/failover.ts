// Failover (issue 5, item 7): the time from kill -9 of the leader of a 3-node
// cluster to the first write acknowledged after it, in push and pull mode,
// as a distribution over many trials, with etcd 3.4 beside them.
//
// One trial: wait for a leader that every node follows and for every node to
// have applied the leader's commit point; open a fresh client on each node
// that will survive and write through it once (the connection is up); sleep a
// random 0-100 ms (so the kill falls anywhere in the heartbeat or fetch
// cycle); SIGKILL the leader; then every survivor's writer issues a put every
// few ms, each with a short deadline, without waiting for the previous one.
// The first put acknowledged ends the trial; its time from the kill is the
// failover time. The killed node is restarted and the next trial waits for
// it to catch up. etcd gets the same treatment (kill -9 of the member that
// leads, restart from its data directory).
//
//   node dist/bench/failover.js [--quick] [--trials 100] [--etcd-trials 100]
//     [--modes push,pull] [--etcd yes|no] [--interval-ms 5] [--deadline-ms 250]
//
// Writes docs/bench/failover.{json,md,svg} (quick-failover.* with --quick).

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { EtcdTestClient } from '../test/cluster/etcd-client.js';
import { TestCluster } from '../test/cluster/harness.js';
import { EtcdCluster } from './cluster/etcd.js';
import { killEtcdMember, restartEtcdMember, settledEtcdLeader } from './cluster/etcd-member.js';
import { clusterTimeouts, distribution, freeEtcdBasePort, isMainModule, warmPut, onInterrupt, sleep, type ClusterTimeouts, type Distribution } from './cluster/fault-util.js';
import { fmt, mdTable, progress, REPORT_DIR, writeReport } from './cluster/report.js';
import { renderCdfSvg } from './svg-cdf.js';

/** A trial that sees no acknowledged write this long after the kill is counted as failed (+Infinity). */
const TRIAL_CAP_MS = 15_000;

/** etcd 3.4's defaults (we start it without timing flags). */
const ETCD_ELECTION_TIMEOUT_MS = 1000;
const ETCD_HEARTBEAT_MS = 100;

/** One trial's outcome. */
export interface FailoverTrial {
  readonly trial: number;
  readonly killed: string;
  /** ms from SIGKILL to the first acknowledged put; null when none came within TRIAL_CAP_MS. */
  readonly failoverMs: number | null;
  /** The node whose client got that acknowledgement. */
  readonly ackedBy: string | null;
  /** The leader the cluster settled on afterwards (quorumlog only). */
  readonly newLeader: string | null;
  /** Puts that failed (deadline, no leader, ...) before the first acknowledgement, all writers together. */
  readonly failedPuts: number;
  /** The new leader's term minus the killed leader's (1: one election sufficed; more: split votes or failed campaigns). Null for etcd. */
  readonly termsUsed: number | null;
}

/** One system's series. */
export interface FailoverSeries {
  readonly system: 'quorumlog push' | 'quorumlog pull' | 'etcd 3.4';
  readonly electionTimeout: string;
  /** The target: p99 below 2 election timeouts (2 × the maximum of the random range), in ms. */
  readonly targetMs: number | null;
  readonly stats: Distribution;
  readonly targetMet: boolean | null;
  readonly trials: readonly FailoverTrial[];
}

interface Options {
  readonly quick: boolean;
  readonly trials: number;
  readonly etcdTrials: number;
  readonly modes: readonly ('push' | 'pull')[];
  readonly etcd: boolean;
  readonly intervalMs: number;
  readonly deadlineMs: number;
}

/**
 * Issues a put through each client every `intervalMs` until one is
 * acknowledged; resolves with the time of that acknowledgement and the
 * client's label. Puts still in flight are left to their deadlines.
 */
async function firstAck(
  writers: readonly { label: string; client: EtcdTestClient }[], key: string, intervalMs: number, t0: number,
): Promise<{ at: number | null; by: string | null; failed: number }> {
  let done: { at: number; by: string } | null = null;
  let failed = 0;
  let seq = 0;
  const inflight = new Set<Promise<void>>();
  while (done === null && performance.now() - t0 < TRIAL_CAP_MS) {
    for (const w of writers) {
      const p = w.client.put(key, `v${seq++}`).then(
        () => { if (done === null) done = { at: performance.now(), by: w.label }; },
        () => { if (done === null) failed++; },
      );
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
    }
    await sleep(intervalMs);
  }
  await Promise.allSettled([...inflight]);
  const d = done as { at: number; by: string } | null;
  return { at: d?.at ?? null, by: d?.by ?? null, failed };
}

async function quorumlogSeries(mode: 'push' | 'pull', o: Options, report: (line: string, force?: boolean) => void,
  track: (c: TestCluster | null) => void): Promise<{ timeouts: ClusterTimeouts; trials: FailoverTrial[] }> {
  const c = await TestCluster.start({ nodes: 3, mode });
  track(c);
  const trials: FailoverTrial[] = [];
  try {
    const timeouts = clusterTimeouts(c);
    for (let t = 0; t < o.trials; t++) {
      const leader = await c.waitForLeader(30_000);
      const before = await leader.status();
      const target = before?.commitIndex ?? 0;
      for (const n of c.nodes) await c.waitFor(n, (s) => s.appliedIndex >= target, 30_000, 'catching up before the trial');
      const survivors = c.nodes.filter((n) => n !== leader);
      const writers = survivors.map((n) => ({ label: n.id, client: new EtcdTestClient(n.endpoint, o.deadlineMs) }));
      try {
        for (const w of writers) await warmPut(w.client, `warm/${w.label}`);
        await sleep(Math.random() * 100);
        const t0 = performance.now();
        const killed = leader.kill9();
        const ack = await firstAck(writers, `failover/${mode}/${t}`, o.intervalMs, t0);
        await killed;
        const next = await c.waitForLeader(30_000, [leader.id]).catch(() => null);
        const after = await next?.status();
        trials.push({
          trial: t, killed: leader.id, failoverMs: ack.at === null ? null : Math.round((ack.at - t0) * 100) / 100,
          ackedBy: ack.by, newLeader: next?.id ?? null, failedPuts: ack.failed,
          termsUsed: after === undefined || after === null || before === null ? null : after.term - before.term,
        });
      } finally {
        for (const w of writers) w.client.close();
      }
      leader.start();
      const last = trials[trials.length - 1];
      report(`${mode}: trial ${t + 1}/${o.trials}, last ${last?.failoverMs ?? 'failed'} ms`, t + 1 === o.trials);
    }
    // Let the last restarted node come back before the cluster closes (keeps its log clean).
    await c.waitForLeader(30_000).catch(() => undefined);
    return { timeouts, trials };
  } finally {
    await c.close();
    track(null);
  }
}

async function etcdSeries(o: Options, report: (line: string, force?: boolean) => void,
  track: (c: EtcdCluster | null, dir: string | null) => void): Promise<FailoverTrial[]> {
  const dir = mkdtempSync(join(tmpdir(), 'quorumlog-bench-etcd-failover-'));
  const basePort = await freeEtcdBasePort(33_000);
  const trials: FailoverTrial[] = [];
  let e: EtcdCluster | null = null;
  try {
    e = await EtcdCluster.start(dir, basePort);
    track(e, dir);
    const cluster = e;
    for (let t = 0; t < o.etcdTrials; t++) {
      const { leader, index } = await settledEtcdLeader(cluster);
      const writers = cluster.members.filter((m) => m !== leader).map((m) => ({ label: m.name, client: new EtcdTestClient(m.client, o.deadlineMs) }));
      try {
        for (const w of writers) await warmPut(w.client, `warm/${w.label}`);
        await sleep(Math.random() * 100);
        const t0 = performance.now();
        const killed = killEtcdMember(leader);
        const ack = await firstAck(writers, `failover/etcd/${t}`, o.intervalMs, t0);
        await killed;
        trials.push({
          trial: t, killed: leader.name, failoverMs: ack.at === null ? null : Math.round((ack.at - t0) * 100) / 100,
          ackedBy: ack.by, newLeader: null, failedPuts: ack.failed, termsUsed: null,
        });
      } finally {
        for (const w of writers) w.client.close();
      }
      restartEtcdMember(cluster, index, basePort);
      report(`etcd: trial ${t + 1}/${o.etcdTrials}, last ${trials[trials.length - 1]?.failoverMs ?? 'failed'} ms`, t + 1 === o.etcdTrials);
    }
    return trials;
  } finally {
    if (e !== null) await e.stop();
    track(null, null);
    rmSync(dir, { recursive: true, force: true });
  }
}

function series(system: FailoverSeries['system'], electionTimeout: string, targetMs: number | null, trials: FailoverTrial[]): FailoverSeries {
  const stats = distribution(trials.map((t) => t.failoverMs ?? Infinity));
  return { system, electionTimeout, targetMs, stats, targetMet: targetMs === null ? null : stats.p99 < targetMs, trials };
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
      'interval-ms': { type: 'string', default: '5' },
      'deadline-ms': { type: 'string', default: '250' },
    },
  });
  const quick = values.quick === true;
  const trials = Number(values.trials ?? (quick ? 5 : 100));
  return {
    quick, trials,
    etcdTrials: Number(values['etcd-trials'] ?? (quick ? 3 : trials)),
    modes: values.modes.split(',').filter((m): m is 'push' | 'pull' => m === 'push' || m === 'pull'),
    etcd: values.etcd !== 'no',
    intervalMs: Number(values['interval-ms']),
    deadlineMs: Number(values['deadline-ms']),
  };
}

const ms = (x: number): string => (Number.isFinite(x) ? fmt(x, 0) : 'failed');

/** Runs the benchmark; `argv` are the options after the script name. */
export async function main(argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  const o = parse(argv);
  const name = o.quick ? 'quick-failover' : 'failover';
  const command = `node dist/bench/failover.js${argv.length > 0 ? ` ${argv.join(' ')}` : ''}`;
  const report = progress('failover');
  let liveCluster: TestCluster | null = null;
  let liveEtcd: EtcdCluster | null = null;
  let liveEtcdDir: string | null = null;
  const cleanup = async (): Promise<void> => {
    await liveCluster?.close();
    await liveEtcd?.stop();
    if (liveEtcdDir !== null) rmSync(liveEtcdDir, { recursive: true, force: true });
  };
  const detach = onInterrupt(cleanup);
  const all: FailoverSeries[] = [];
  let timeouts: ClusterTimeouts | null = null;
  try {
    for (const mode of o.modes) {
      const r = await quorumlogSeries(mode, o, report, (c) => { liveCluster = c; });
      timeouts = r.timeouts;
      const et = `${r.timeouts.electionTimeoutMinMs}-${r.timeouts.electionTimeoutMaxMs} ms`;
      all.push(series(`quorumlog ${mode}`, et, 2 * r.timeouts.electionTimeoutMaxMs, r.trials));
    }
    if (o.etcd) {
      const trials = await etcdSeries(o, report, (c, dir) => { liveEtcd = c; liveEtcdDir = dir; });
      all.push(series('etcd 3.4', `${ETCD_ELECTION_TIMEOUT_MS} ms (heartbeat ${ETCD_HEARTBEAT_MS} ms; etcd randomizes it up to 2x)`, null, trials));
    }
  } finally {
    await cleanup();
    detach();
  }

  const rows = all.map((s) => [
    s.system, s.electionTimeout, s.stats.n, s.stats.failed, ms(s.stats.min), ms(s.stats.p50), ms(s.stats.p90), ms(s.stats.p99), ms(s.stats.max), ms(s.stats.mean),
    s.system === 'etcd 3.4' ? '—' : `${s.trials.filter((x) => (x.termsUsed ?? 0) > 1).length}`,
    s.targetMs === null ? '—' : `p99 < ${s.targetMs} ms: ${s.targetMet === true ? 'met' : 'NOT met'}`,
  ]);
  const table = mdTable(['system', 'election timeout', 'trials', 'failed', 'min', 'p50', 'p90', 'p99', 'max', 'mean', 'trials with > 1 term', 'target'], rows);
  const t = timeouts;
  const settings = t === null ? '' : `quorumlog settings (read from the nodes' config, defaults where unset): ${t.tickMs} ms ticks, ` +
    `election timeout random in [${t.electionTimeoutMinTicks}, ${t.electionTimeoutMaxTicks}) ticks = ${t.electionTimeoutMinMs}-${t.electionTimeoutMaxMs} ms ` +
    `(in pull mode the fetch timeout), push heartbeats every ${t.heartbeatIntervalTicks} ticks, pull fetches parked up to ${t.fetchMaxWaitTicks} ticks.`;
  const verdicts = all.filter((s) => s.targetMs !== null).map((s) => {
    const slow = s.trials.filter((x) => x.failoverMs === null || (s.targetMs !== null && x.failoverMs >= s.targetMs));
    const multi = slow.filter((x) => (x.termsUsed ?? 0) > 1).length;
    return `- ${s.system}: p99 ${ms(s.stats.p99)} ms against the target of 2 election timeouts (< ${s.targetMs} ms): **${s.targetMet === true ? 'met' : 'not met'}**.` +
      (slow.length === 0 ? '' : ` ${slow.length} trial(s) took ${s.targetMs} ms or more; ${multi} of them needed more than one term ` +
        '(a split vote or a failed campaign)' + (slow.length > multi
        ? `, ${slow.length - multi} elected at once and lost the time elsewhere (detection, the first commit, or a busy machine).` : '.'));
  });
  const etcdNote = o.etcd
    ? `etcd runs with its defaults: heartbeat ${ETCD_HEARTBEAT_MS} ms, election timeout ${ETCD_ELECTION_TIMEOUT_MS} ms ` +
      '(each member randomizes its timer in [1, 2) x that), so it waits longer before it suspects the leader: its figures are beside ours, not a like-for-like race.'
    : 'etcd was not run (--etcd no).';
  const md = [
    '# Failover: kill -9 of the leader to the first acknowledged write',
    '',
    `3-node clusters on one machine. Each trial kills the leader with SIGKILL at a random point (0-100 ms after the cluster settled), ` +
      `then a writer per surviving node issues a put every ${o.intervalMs} ms (each with a ${o.deadlineMs} ms deadline, not waiting for the previous one); ` +
      'the first put acknowledged after the kill ends the trial. The killed node is then restarted from its data and caught up before the next trial. ' +
      `A trial with no acknowledged write within ${TRIAL_CAP_MS / 1000} s counts as failed (an infinite time).`,
    '',
    settings,
    etcdNote,
    '',
    table,
    '',
    ...verdicts,
    '',
    `![CDF of failover times](${name}.svg)`,
  ].join('\n');
  const data = { options: o, timeouts, etcd: { electionTimeoutMs: ETCD_ELECTION_TIMEOUT_MS, heartbeatMs: ETCD_HEARTBEAT_MS }, trialCapMs: TRIAL_CAP_MS, series: all };
  const files = writeReport(name, command, data, md);
  const svg = join(REPORT_DIR, `${name}.svg`);
  const targetMs = all.find((s) => s.targetMs !== null)?.targetMs ?? null;
  writeFileSync(svg, renderCdfSvg({
    title: 'Failover: kill -9 of the leader to the first acknowledged write',
    xLabel: 'ms from SIGKILL to the first acknowledged put (log scale)',
    yLabel: 'cumulative percent of trials',
    xMin: 50, xMax: 20_000, columns: 1,
    panels: [{
      title: `3 nodes, ${o.trials} trials per mode; election timeout ${t === null ? '?' : `${t.electionTimeoutMinMs}-${t.electionTimeoutMaxMs} ms`}` +
        (o.etcd ? `, etcd ${ETCD_ELECTION_TIMEOUT_MS} ms` : ''),
      lines: all.map((s) => ({ label: s.system, values: s.trials.map((x) => x.failoverMs ?? Infinity) })),
      ...(targetMs === null ? {} : { markers: [{ x: targetMs, y: 0.99, label: `target: p99 < ${targetMs} ms`, colorIndex: 4 }] }),
    }],
  }));
  console.log(`\n${table}\n\n${verdicts.join('\n')}\n\nwrote ${[...files, svg].join(', ')}`);
}

if (isMainModule(import.meta.url)) {
  main().then(() => process.exit(0), (e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
