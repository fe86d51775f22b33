// Back pressure (issue 5, item 6): one follower of a 3-node cluster is made
// slow by SIGSTOP bursts (stopped 2 s, running 0.5 s, again and again) while
// a load generator writes as fast as it can through the leader. Push mode
// must queue for the stopped follower (the leader sends AppendEntries
// whether or not it reads); pull mode sends only what the follower fetches.
// Measured every 200 ms: the leader's resident memory (/proc), its bytes
// queued to the slow peer (the figure `quorumlog_peer_inflight_bytes{peer}`
// exports; read from /status, which reads the same transport counter), the
// commit index of the leader and of the other follower (they must keep
// committing), and after the last burst, how long the slow follower takes to
// apply everything the leader committed.
//
//   node dist/bench/backpressure.js [--quick] [--seconds 30] [--modes push,pull]
//     [--value-bytes 4096] [--clients 64] [--stop-ms 2000] [--run-ms 500]
//
// Writes docs/bench/backpressure.{json,md,svg} (quick-backpressure.* with --quick).

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { TestCluster, type TestNode } from '../test/cluster/harness.js';
import { isMainModule, onInterrupt, percentileOf, sleep } from './cluster/fault-util.js';
import { spawnLoad, type LoadResult } from './cluster/loadgen.js';
import { rssBytes } from './cluster/proc.js';
import { fmt, mdTable, progress, REPORT_DIR, writeReport } from './cluster/report.js';
import { renderLinesSvg, type LinePanel } from './cluster/svg-lines.js';

const MiB = 2 ** 20;
/** The transport's bound on each peer's send queue (docs/CLUSTER.md, "Bounded queues"). */
const PEER_QUEUE_BOUND_BYTES = 64 * MiB;
const SAMPLE_MS = 200;
const CATCH_UP_CAP_MS = 120_000;

/** One sample of the run. */
export interface Sample {
  /** Seconds since the bursts began (negative: warm-up). */
  readonly t: number;
  readonly slowStopped: boolean;
  readonly leaderRssBytes: number;
  /** The other follower's RSS: it holds the same state machine and log but queues nothing, so leader - other ≈ what leading costs. */
  readonly otherRssBytes: number;
  readonly queuedToSlowBytes: number;
  readonly leaderCommit: number;
  readonly otherCommit: number;
  /** The slow follower's applied index (NaN while it is stopped). */
  readonly slowApplied: number;
}

/** What one mode measured. */
export interface ModeResult {
  readonly mode: 'push' | 'pull';
  readonly leader: string;
  readonly slow: string;
  readonly other: string;
  readonly load: LoadResult;
  readonly rssStartBytes: number;
  readonly rssMaxBytes: number;
  readonly rssFinalBytes: number;
  readonly otherRssMaxBytes: number;
  /**
   * The median over the samples of the leader's RSS minus the other follower's at the same moment (a median,
   * since each node's snapshots make short RSS spikes at different moments).
   */
  readonly leaderOverOtherMedianBytes: number;
  readonly queuedMaxBytes: number;
  readonly queuedFinalBytes: number;
  /** The other follower's commit rate over the bursts, entries/s, and while the slow one was stopped. */
  readonly otherCommitPerSecond: number;
  readonly otherCommitPerSecondWhileStopped: number;
  /** The longest time the other follower's commit index stood still during the bursts. */
  readonly otherLongestStallMs: number;
  /** Entries the slow follower had to apply after its last SIGCONT to reach the leader's final commit index. */
  readonly slowLagAtResumeEntries: number;
  /** ms from the last SIGCONT until the slow follower applied the leader's final commit index (null: not within the cap). */
  readonly catchUpMs: number | null;
  readonly stoppedIntervals: readonly (readonly [number, number])[];
  readonly samples: readonly Sample[];
}

interface Options {
  readonly quick: boolean;
  readonly seconds: number;
  readonly modes: readonly ('push' | 'pull')[];
  readonly valueBytes: number;
  readonly clients: number;
  readonly stopMs: number;
  readonly runMs: number;
}

async function runMode(mode: 'push' | 'pull', o: Options, report: (line: string, force?: boolean) => void,
  track: (c: TestCluster | null) => void): Promise<ModeResult> {
  const c = await TestCluster.start({ nodes: 3, mode });
  track(c);
  try {
    const leader = await c.waitForLeader(30_000);
    const [slow, other] = c.nodes.filter((n) => n !== leader) as [TestNode, TestNode];
    const leaderPid = leader.process?.pid as number;
    const otherPid = other.process?.pid as number;
    // Sample times are kept raw and made relative to the first SIGSTOP afterwards.
    const raw: (Omit<Sample, 't'> & { at: number })[] = [];
    const stoppedIntervals: [number, number][] = [];
    let tBurst0 = Infinity;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const at = performance.now();
        const [ls, os, ss] = await Promise.all([leader.status(), other.status(), slow.status()]);
        raw.push({
          at, slowStopped: slow.paused, leaderRssBytes: rssBytes(leaderPid), otherRssBytes: rssBytes(otherPid),
          queuedToSlowBytes: ls?.replication.find((r) => r.id === slow.id)?.sendQueueBytes ?? NaN,
          leaderCommit: ls?.commitIndex ?? NaN, otherCommit: os?.commitIndex ?? NaN, slowApplied: ss?.appliedIndex ?? NaN,
        });
        await sleep(Math.max(0, SAMPLE_MS - (performance.now() - at)));
      }
    })();

    // Load through the leader: warm up 1.5 s, then the bursts for as long as the measured load runs.
    const warmupMs = 1500;
    const cycles = Math.max(1, Math.round((o.seconds * 1000 + o.runMs) / (o.stopMs + o.runMs)));
    const burstMs = cycles * o.stopMs + (cycles - 1) * o.runMs;
    const load = spawnLoad({
      endpoints: [leader.endpoint], client: 'grpc', op: 'put', clients: o.clients, connections: 4,
      durationMs: burstMs, warmupMs, valueBytes: o.valueBytes, keys: 100_000,
    });
    await sleep(warmupMs + 300); // the generator's own start-up (protos, connections) comes first
    tBurst0 = performance.now();
    const rssStart = rssBytes(leaderPid);
    let resumedAt = 0;
    try {
      for (let k = 0; k < cycles; k++) {
        const from = (performance.now() - tBurst0) / 1000;
        slow.pause();
        await sleep(o.stopMs);
        slow.resume();
        resumedAt = performance.now();
        stoppedIntervals.push([from, (resumedAt - tBurst0) / 1000]);
        const last = raw[raw.length - 1];
        report(`${mode}: burst ${k + 1}/${cycles}; leader RSS ${fmt((last?.leaderRssBytes ?? NaN) / MiB, 0)} MiB, ` +
          `queued to ${slow.id} ${fmt((last?.queuedToSlowBytes ?? NaN) / MiB, 1)} MiB, commit ${last?.leaderCommit ?? '?'}`, k + 1 === cycles);
        if (k + 1 < cycles) await sleep(o.runMs);
      }
    } finally {
      if (slow.paused) slow.resume();
    }
    const loadResult = await load;
    const target = (await leader.status())?.commitIndex ?? NaN;
    let catchUpMs: number | null = null;
    const deadline = performance.now() + CATCH_UP_CAP_MS;
    while (performance.now() < deadline) {
      const s = await slow.status();
      if (s !== null && s.appliedIndex >= target) {
        catchUpMs = Math.round(performance.now() - resumedAt);
        break;
      }
      await sleep(25);
    }
    await sleep(2 * SAMPLE_MS);
    sampling = false;
    await sampler;
    const samples: Sample[] = raw.map(({ at, ...rest }) => ({ t: Math.round(at - tBurst0) / 1000, ...rest }));

    const during = samples.filter((s) => s.t >= 0 && s.t * 1000 <= burstMs);
    const otherRate = (xs: readonly Sample[]): number => {
      const f = xs.filter((s) => Number.isFinite(s.otherCommit));
      const a = f[0];
      const b = f[f.length - 1];
      return a === undefined || b === undefined || b.t === a.t ? NaN : (b.otherCommit - a.otherCommit) / (b.t - a.t);
    };
    // Commit rate while stopped: sum the advance within each stopped interval over its length.
    let stoppedAdvance = 0;
    let stoppedSeconds = 0;
    for (const [a, b] of stoppedIntervals) {
      const inside = during.filter((s) => s.t >= a && s.t <= b && Number.isFinite(s.otherCommit));
      const first = inside[0];
      const lastS = inside[inside.length - 1];
      if (first !== undefined && lastS !== undefined && lastS.t > first.t) {
        stoppedAdvance += lastS.otherCommit - first.otherCommit;
        stoppedSeconds += lastS.t - first.t;
      }
    }
    let longestStall = 0;
    let since: number | null = null;
    let lastValue = NaN;
    for (const s of during) {
      if (!Number.isFinite(s.otherCommit)) continue;
      if (s.otherCommit === lastValue) {
        longestStall = Math.max(longestStall, (s.t - (since ?? s.t)) * 1000);
      } else {
        since = s.t;
        lastValue = s.otherCommit;
      }
    }
    const finite = (xs: number[]): number[] => xs.filter((x) => Number.isFinite(x));
    // Stopped, the slow follower applies nothing: what it had before its last SIGSTOP is what it had at the last SIGCONT.
    const lastStop = stoppedIntervals.at(-1)?.[0] ?? 0;
    const beforeLastStop = samples.filter((s) => s.t < lastStop && Number.isFinite(s.slowApplied)).at(-1);
    return {
      mode, leader: leader.id, slow: slow.id, other: other.id, load: { ...loadResult, cdf: [] },
      rssStartBytes: rssStart,
      rssMaxBytes: Math.max(...finite(samples.map((s) => s.leaderRssBytes))),
      rssFinalBytes: rssBytes(leaderPid),
      queuedMaxBytes: Math.max(0, ...finite(samples.map((s) => s.queuedToSlowBytes))),
      queuedFinalBytes: samples.filter((s) => Number.isFinite(s.queuedToSlowBytes)).at(-1)?.queuedToSlowBytes ?? NaN,
      otherRssMaxBytes: Math.max(...finite(samples.map((s) => s.otherRssBytes))),
      leaderOverOtherMedianBytes: percentileOf(finite(samples.map((s) => s.leaderRssBytes - s.otherRssBytes)).sort((a, b) => a - b), 50),
      otherCommitPerSecond: otherRate(during),
      otherCommitPerSecondWhileStopped: stoppedSeconds > 0 ? stoppedAdvance / stoppedSeconds : NaN,
      otherLongestStallMs: Math.round(longestStall),
      slowLagAtResumeEntries: Math.max(0, target - (beforeLastStop?.slowApplied ?? NaN)),
      catchUpMs, stoppedIntervals, samples,
    };
  } finally {
    for (const n of c.nodes) if (n.paused) n.resume();
    await c.close();
    track(null);
  }
}

function parse(argv: readonly string[]): Options {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      quick: { type: 'boolean', default: false },
      seconds: { type: 'string' },
      modes: { type: 'string', default: 'push,pull' },
      'value-bytes': { type: 'string', default: '4096' },
      clients: { type: 'string', default: '64' },
      'stop-ms': { type: 'string', default: '2000' },
      'run-ms': { type: 'string', default: '500' },
    },
  });
  const quick = values.quick === true;
  return {
    quick,
    seconds: Number(values.seconds ?? (quick ? 5 : 30)),
    modes: values.modes.split(',').filter((m): m is 'push' | 'pull' => m === 'push' || m === 'pull'),
    valueBytes: Number(values['value-bytes']),
    clients: Number(values.clients),
    stopMs: Number(values['stop-ms']),
    runMs: Number(values['run-ms']),
  };
}

const mib = (b: number): string => fmt(b / MiB, 1);

/** Runs the benchmark; `argv` are the options after the script name. */
export async function main(argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  const o = parse(argv);
  const name = o.quick ? 'quick-backpressure' : 'backpressure';
  const command = `node dist/bench/backpressure.js${argv.length > 0 ? ` ${argv.join(' ')}` : ''}`;
  const report = progress('backpressure');
  let live: TestCluster | null = null;
  const detach = onInterrupt(async () => { await live?.close(); });
  const results: ModeResult[] = [];
  try {
    for (const mode of o.modes) results.push(await runMode(mode, o, report, (c) => { live = c; }));
  } finally {
    detach();
  }

  const table = mdTable(
    ['mode', 'writes/s (errors)', 'leader RSS start / max / final (MiB)', 'other follower RSS max (MiB)', 'leader minus other, median (MiB)',
      'queued to slow peer max / final (MiB)',
      'other follower commits/s (while slow stopped)', 'its longest stall (200 ms samples)', 'slow lag at last SIGCONT', 'catch-up'],
    results.map((r) => [
      r.mode, `${fmt(r.load.opsPerSecond, 0)} (${r.load.errors})`,
      `${mib(r.rssStartBytes)} / ${mib(r.rssMaxBytes)} / ${mib(r.rssFinalBytes)}`, mib(r.otherRssMaxBytes), mib(r.leaderOverOtherMedianBytes),
      `${mib(r.queuedMaxBytes)} / ${mib(r.queuedFinalBytes)}`,
      `${fmt(r.otherCommitPerSecond, 0)} (${fmt(r.otherCommitPerSecondWhileStopped, 0)})`,
      `${fmt(r.otherLongestStallMs, 0)} ms`, `${fmt(r.slowLagAtResumeEntries, 0)} entries`,
      r.catchUpMs === null ? `not within ${CATCH_UP_CAP_MS / 1000} s` : `${fmt(r.catchUpMs, 0)} ms`,
    ]));
  const verdicts = results.map((r) => {
    const bounded = r.queuedMaxBytes <= PEER_QUEUE_BOUND_BYTES + MiB;
    const keeps = r.otherLongestStallMs < 1000 && r.otherCommitPerSecondWhileStopped > 0;
    return `- ${r.mode}: the leader's queue to the stopped follower peaked at ${mib(r.queuedMaxBytes)} MiB ` +
      `(${bounded ? 'within' : 'ABOVE'} the 64 MiB per-peer bound), its RSS at ${mib(r.rssMaxBytes)} MiB (${mib(r.rssFinalBytes)} MiB at the end), ` +
      `typically ${mib(r.leaderOverOtherMedianBytes)} MiB above the other follower's (median; that one peaked at ${mib(r.otherRssMaxBytes)} MiB), ` +
      'which holds the same data but queues nothing; ' +
      `the others ${keeps ? 'kept committing' : 'kept committing but stood still for over a second at least once'} (longest stall ${fmt(r.otherLongestStallMs, 0)} ms, ` +
      `${fmt(r.otherCommitPerSecondWhileStopped, 0)} entries/s while the slow one was stopped); the slow follower ` +
      (r.catchUpMs === null ? 'did not catch up within the cap.' : `caught up ${fmt(r.slowLagAtResumeEntries, 0)} entries in ${fmt(r.catchUpMs, 0)} ms.`);
  });
  const md = [
    '# Back pressure: one slow follower',
    '',
    `3-node clusters, one mode after the other. A load generator (its own process, bare gRPC client, ${o.clients} concurrent writers, ` +
      `${o.valueBytes}-byte values) writes as fast as it can through the leader; meanwhile one follower is stopped with SIGSTOP for ` +
      `${o.stopMs} ms and let run for ${o.runMs} ms, again and again, for ${fmt(results[0]?.stoppedIntervals.at(-1)?.[1] ?? NaN, 1)} s, ending stopped; ` +
      'then it gets SIGCONT and the load stops. Sampled every 200 ms: the leader\'s RSS (/proc), its bytes queued to the slow peer ' +
      '(what `quorumlog_peer_inflight_bytes{peer}` exports), and the commit index of the leader and of the other follower. ' +
      'The other follower\'s RSS is sampled too: it holds the same key-value store (with its MVCC history, which grows with every write ' +
      'until a compaction) and the same log, so the leader\'s RSS above it is what leading, queues included, costs; snapshots of the ' +
      'store make short RSS spikes on each node at its own moments, hence the median of the difference. ' +
      'Catch-up is the time from the last SIGCONT until the slow follower has applied the leader\'s final commit index. ' +
      '"Entries" are log entries, each a batch of many writes.',
    '',
    'The bounds that apply (docs/CLUSTER.md): each peer\'s send queue holds at most 64 MiB; push mode keeps at most 64 AppendEntries ' +
      'of at most 1 MiB in flight per follower; the leader holds at most 32 MiB uncommitted; the in-memory log since the last snapshot ' +
      'is bounded by snapshotEveryBytes (64 MiB) or snapshotEveryEntries (10,000).',
    '',
    table,
    '',
    ...verdicts,
    '',
    `![leader memory and commit index over time](${name}.svg)`,
  ].join('\n');
  const files = writeReport(name, command, { options: o, peerQueueBoundBytes: PEER_QUEUE_BOUND_BYTES, results }, md);
  const panels: LinePanel[] = [];
  for (const r of results) {
    panels.push({
      title: `${r.mode} mode: leader ${r.leader}'s memory`, yLabel: 'MiB', shaded: r.stoppedIntervals, shadedLabel: `${r.slow} stopped`,
      series: [
        { label: 'leader RSS', points: r.samples.map((s) => [s.t, s.leaderRssBytes / MiB]) },
        { label: `${r.other} RSS`, points: r.samples.map((s) => [s.t, s.otherRssBytes / MiB]) },
        { label: `queued to ${r.slow}`, points: r.samples.map((s) => [s.t, s.queuedToSlowBytes / MiB]) },
      ],
    });
  }
  for (const r of results) {
    panels.push({
      title: `${r.mode} mode: commit index`, yLabel: 'log index', shaded: r.stoppedIntervals, shadedLabel: `${r.slow} stopped`,
      series: [
        { label: 'leader commit', points: r.samples.map((s) => [s.t, s.leaderCommit]) },
        { label: `${r.other} commit`, points: r.samples.map((s) => [s.t, s.otherCommit]) },
        { label: `${r.slow} applied`, points: r.samples.map((s) => [s.t, s.slowApplied]) },
      ],
    });
  }
  const svg = join(REPORT_DIR, `${name}.svg`);
  writeFileSync(svg, renderLinesSvg({
    title: `Back pressure: a follower stopped ${o.stopMs} ms / running ${o.runMs} ms under full write load (${o.valueBytes}-byte values)`,
    xLabel: 's since the first SIGSTOP', panels, columns: Math.max(1, results.length),
  }));
  console.log(`\n${table}\n\n${verdicts.join('\n')}\n\nwrote ${[...files, svg].join(', ')}`);
}

if (isMainModule(import.meta.url)) {
  main().then(() => process.exit(0), (e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
