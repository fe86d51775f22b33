// Reproduces Figure 16 of the Raft paper (Ongaro & Ousterhout, "In Search of
// an Understandable Consensus Algorithm"): the time a 5-voter cluster spends
// without a leader after the leader crashes, for several election-timeout
// ranges, in push and pull replication, with pre-vote off (as in the paper)
// and on (the core's default). A small deterministic event-driven driver: a
// virtual clock in milliseconds (1 tick = 1 ms), uniform network delay, instant
// persistence, one seed for everything. Writes docs/bench/election-time.json
// and docs/bench/election-time.svg; prints a markdown table.
//
//   npm run report:election -- [--trials 1000] [--seed 1] [--modes push,pull]
//     [--prevote off,on] [--delay 7-8,3-10] [--cap 100000] [--out docs/bench]
//     [--heartbeat 75] [--fetch-wait 62] [--fetch-retry 30] [--ranges 150-150,...]
//     [--name election-time] [--plot yes|no]

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { instantHost, ReadyLoop } from '../src/node/ready-loop.js';
import { RaftNode } from '../src/core/node.js';
import type { ReplicationMode } from '../src/core/config.js';
import { nodeId, type NodeId } from '../src/protocol/ids.js';
import type { Message } from '../src/protocol/messages.js';
import { Prng } from '../src/util/prng.js';
import { renderCdfSvg, type CdfPanel } from './svg-cdf.js';

/** The paper's timeout ranges, in ms, inclusive at both ends as the paper writes them. */
export const PAPER_RANGES: readonly (readonly [number, number])[] = [
  [150, 150], [150, 151], [150, 155], [150, 175], [150, 200], [150, 300],
];

/** Everything that fixes one series of trials. Times are ms = ticks. */
export interface ElectionSpec {
  readonly mode: ReplicationMode;
  readonly preVote: boolean;
  /** The paper's range "lo-hi" ms, both ends included. */
  readonly rangeLoMs: number;
  readonly rangeHiMs: number;
  /** Push: ticks between heartbeats (the paper: half the minimum election timeout). */
  readonly heartbeatIntervalTicks: number;
  /** Pull: how long the leader parks an idle fetch (long poll). */
  readonly fetchMaxWaitTicks: number;
  /** Pull: an unanswered fetch is resent after fetchMaxWait + this; must exceed the longest round trip. */
  readonly fetchRetryTicks: number;
  /** One-way network delay, uniform in the half-open range [min, max) ms. */
  readonly delayMinMs: number;
  readonly delayMaxMs: number;
  /** The leader is crashed this long after the cluster settled: uniform in [0, extraMaxMs). */
  readonly extraMaxMs: number;
  /** A trial that has no new leader this long after the crash is stopped and counted as censored. */
  readonly capMs: number;
}

/** What one trial measured. */
export interface TrialOutcome {
  /** Virtual ms from the crash until another node reported role leader; null when censored at capMs. */
  readonly downtimeMs: number | null;
  /** Real elections (candidacies, each raising the term) started after the crash, all nodes together. */
  readonly elections: number;
  /** Pre-vote campaigns started after the crash (0 with pre-vote off). */
  readonly preVoteRounds: number;
  /** The new leader's term minus the crashed leader's term (0 when censored). */
  readonly termsUsed: number;
  /** Virtual ms from the crash to the first node's timeout (the detection part of the downtime). */
  readonly firstTimeoutMs: number | null;
}

/** The core's half-open [min, max) range for the paper's inclusive "lo-hi" ms range. */
export function coreTimeoutRange(loMs: number, hiMs: number): { min: number; max: number } {
  return { min: loMs, max: hiMs + 1 };
}

interface DriverNode {
  readonly id: NodeId;
  readonly core: RaftNode;
  /** Its Ready driver: persistence is instant, so both message lists leave at once. */
  loop: ReadyLoop | null;
  /** Ticks happen at k + phase ms, k integer: the nodes' clocks are not in step. */
  readonly phase: number;
  /** Boot time; before it, the node neither ticks nor receives. */
  readonly bootMs: number;
  alive: boolean;
}

interface InFlight {
  readonly time: number;
  readonly seq: number;
  readonly msg: Message;
}

/** A binary min-heap of messages in flight, ordered by (arrival time, send order). */
class MessageHeap {
  private readonly a: InFlight[] = [];

  get size(): number {
    return this.a.length;
  }

  peekTime(): number {
    return this.a.length === 0 ? Infinity : (this.a[0] as InFlight).time;
  }

  push(x: InFlight): void {
    const a = this.a;
    a.push(x);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!earlier(a[i] as InFlight, a[p] as InFlight)) break;
      [a[i], a[p]] = [a[p] as InFlight, a[i] as InFlight];
      i = p;
    }
  }

  pop(): InFlight {
    const a = this.a;
    const top = a[0] as InFlight;
    const last = a.pop() as InFlight;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && earlier(a[l] as InFlight, a[m] as InFlight)) m = l;
        if (r < a.length && earlier(a[r] as InFlight, a[m] as InFlight)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m] as InFlight, a[i] as InFlight];
        i = m;
      }
    }
    return top;
  }
}

function earlier(x: InFlight, y: InFlight): boolean {
  return x.time < y.time || (x.time === y.time && x.seq < y.seq);
}

/**
 * Five voters on a virtual clock. Node i ticks at k + phase_i ms; a message
 * sent at t arrives at t + uniform[delayMin, delayMax). Persistence is
 * instant: each Ready's messages (both kinds) leave as soon as it is taken.
 */
class Cluster {
  readonly nodes: DriverNode[] = [];
  now = 0;
  private readonly rng: Prng;
  private readonly heap = new MessageHeap();
  private seq = 0;
  /** Tick cursor: the next tick is node order[nextSlot] in ms nextMs. */
  private readonly order: DriverNode[];
  private nextMs = 0;
  private nextSlot = 0;
  /** Set once armed: the first time a node reports role leader. */
  armed = false;
  newLeaderAt: number | null = null;
  newLeader: DriverNode | null = null;
  firstTimeoutAt: number | null = null;
  preVoteRounds = 0;

  constructor(private readonly spec: ElectionSpec, seed: number) {
    this.rng = new Prng(seed);
    const ids = [1, 2, 3, 4, 5].map((i) => nodeId(`n${i}`));
    const { min, max } = coreTimeoutRange(spec.rangeLoMs, spec.rangeHiMs);
    for (const id of ids) {
      const core = new RaftNode({
        id, voters: ids, replication: spec.mode, random: this.rng.fork(), preVote: spec.preVote,
        electionTimeoutMinTicks: min, electionTimeoutMaxTicks: max,
        heartbeatIntervalTicks: spec.heartbeatIntervalTicks,
        fetchMaxWaitTicks: spec.fetchMaxWaitTicks, fetchRetryTicks: spec.fetchRetryTicks,
      });
      // Servers boot at different moments within one minimum timeout, so the
      // first election has a clear winner even with no randomization.
      const node: DriverNode = { id, core, loop: null, phase: this.rng.float(), bootMs: this.rng.float() * spec.rangeLoMs, alive: true };
      node.loop = new ReadyLoop(core, instantHost((m) => this.send(m), {
        onReady: (r) => {
          if (this.armed && this.newLeaderAt === null && r.softState.role === 'leader') {
            this.newLeaderAt = this.now;
            this.newLeader = node;
          }
        },
      }));
      this.nodes.push(node);
    }
    this.order = [...this.nodes].sort((a, b) => a.phase - b.phase);
  }

  /** Runs events in time order until `stop()` holds (checked after each event) or time passes `untilMs`. */
  runUntil(untilMs: number, stop: () => boolean): boolean {
    for (;;) {
      const node = this.order[this.nextSlot] as DriverNode;
      const tickAt = this.nextMs + node.phase;
      const msgAt = this.heap.peekTime();
      if (Math.min(tickAt, msgAt) > untilMs) {
        this.now = untilMs;
        return false;
      }
      if (msgAt <= tickAt) {
        const { time, msg } = this.heap.pop();
        this.now = time;
        this.deliver(msg);
      } else {
        this.now = tickAt;
        this.nextSlot++;
        if (this.nextSlot === this.order.length) {
          this.nextSlot = 0;
          this.nextMs++;
        }
        this.tick(node);
      }
      if (stop()) return true;
    }
  }

  private tick(node: DriverNode): void {
    if (!node.alive || this.now < node.bootMs) return;
    const core = node.core;
    core.tick();
    if (this.armed) {
      // A campaign began in this tick: tick() counts the timer up first, so a
      // campaigning role with the timer at zero means it was restarted just now.
      const kind = core.role.kind;
      if ((kind === 'preCandidate' || kind === 'candidate') && core.electionElapsedTicks === 0) {
        if (this.firstTimeoutAt === null) this.firstTimeoutAt = this.now;
        if (kind === 'preCandidate') this.preVoteRounds++;
      }
    }
    this.drain(node);
  }

  private deliver(m: Message): void {
    const to = this.nodes.find((n) => n.id === m.to);
    if (to === undefined || !to.alive || this.now < to.bootMs) return;
    to.core.step(m);
    this.drain(to);
  }

  /** Takes every Ready through the node's driver (persistence is instant). */
  private drain(node: DriverNode): void {
    node.loop?.run();
  }

  private send(m: Message): void {
    const s = this.spec;
    const delay = s.delayMinMs + this.rng.float() * (s.delayMaxMs - s.delayMinMs);
    this.heap.push({ time: this.now + delay, seq: this.seq++, msg: m });
  }

  /** The single node in role leader that every other live, booted node follows, if any. */
  stableLeader(): DriverNode | null {
    let leader: DriverNode | null = null;
    for (const n of this.nodes) {
      if (n.alive && n.core.role.kind === 'leader') {
        if (leader !== null) return null;
        leader = n;
      }
    }
    if (leader === null) return null;
    for (const n of this.nodes) {
      if (n !== leader && n.alive && n.core.leaderId() !== leader.id) return null;
    }
    return leader;
  }

  random(): number {
    return this.rng.float();
  }
}

/** Thrown when a trial cannot even elect its first leader (should not happen). */
export class SetupError extends Error {
  override readonly name = 'SetupError';
}

/**
 * One trial: boot the cluster, wait for a leader that everyone follows and a
 * committed entry on every node, idle for a random while, crash the leader,
 * and time how long until another node becomes leader.
 */
export function runTrial(spec: ElectionSpec, seed: number): TrialOutcome {
  const c = new Cluster(spec, seed);
  const setupCapMs = 120_000;
  let leader: DriverNode | null = null;
  let proposed = 0;
  // Wait for a stable leader, commit one entry everywhere, then idle for a
  // random while so that the crash falls at a uniformly random point of the
  // heartbeat (push) or fetch (pull) cycle. Start over if leadership moves.
  for (;;) {
    if (!c.runUntil(setupCapMs, () => c.stableLeader() !== null)) {
      throw new SetupError(`seed ${seed}: no stable leader within ${setupCapMs} ms; the heartbeat interval (push) or ` +
        'fetchMaxWait + a round trip (pull) must stay well below the minimum election timeout');
    }
    leader = c.stableLeader() as DriverNode;
    proposed = leader.core.propose([new Uint8Array(16)]);
    const l = leader;
    const committed = c.runUntil(c.now + 5_000, () =>
      l.core.role.kind === 'leader' && c.nodes.every((n) => n.core.log.commit >= proposed));
    if (!committed) continue;
    c.runUntil(c.now + c.random() * spec.extraMaxMs, () => false);
    if (c.stableLeader() === leader) break;
  }
  // Crash: the leader stops ticking and receiving. Messages it sent before the
  // crash are already on the wire and still arrive.
  leader.alive = false;
  const crashAt = c.now;
  const termBefore = leader.core.term;
  const others = c.nodes.filter((n) => n !== leader);
  const electionsBefore = others.reduce((s, n) => s + n.core.stats.electionsStarted, 0);
  c.armed = true;
  const found = c.runUntil(crashAt + spec.capMs, () => c.newLeaderAt !== null);
  const elections = others.reduce((s, n) => s + n.core.stats.electionsStarted, 0) - electionsBefore;
  return {
    downtimeMs: found ? (c.newLeaderAt as number) - crashAt : null,
    elections,
    preVoteRounds: c.preVoteRounds,
    termsUsed: found ? (c.newLeader as DriverNode).core.term - termBefore : 0,
    firstTimeoutMs: c.firstTimeoutAt === null ? null : c.firstTimeoutAt - crashAt,
  };
}

/** Summary statistics of one series; censored trials count as +Infinity in the percentiles. */
export interface SeriesStats {
  readonly trials: number;
  readonly censored: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** Mean over uncensored trials. */
  readonly meanMs: number;
  readonly minMs: number;
  /** Fraction of trials that needed more than one election (candidacy) after the crash. */
  readonly multiElectionRate: number;
  readonly meanElections: number;
  readonly meanPreVoteRounds: number;
  /** Fraction of trials in which more than one pre-vote campaign was needed. */
  readonly multiPreVoteRate: number;
  readonly meanTermsUsed: number;
  /** Median time from the crash to the first timeout (failure detection). */
  readonly p50FirstTimeoutMs: number;
}

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1] as number;
}

/** Computes {@link SeriesStats} from the outcomes of a series. */
export function summarize(outcomes: readonly TrialOutcome[]): SeriesStats {
  const times = outcomes.map((o) => o.downtimeMs ?? Infinity).sort((a, b) => a - b);
  const finite = times.filter((t) => Number.isFinite(t));
  const n = outcomes.length;
  const mean = (xs: readonly number[]): number => xs.reduce((s, x) => s + x, 0) / Math.max(1, xs.length);
  const firsts = outcomes.map((o) => o.firstTimeoutMs ?? Infinity).sort((a, b) => a - b);
  return {
    trials: n,
    censored: n - finite.length,
    p50Ms: percentile(times, 50),
    p90Ms: percentile(times, 90),
    p99Ms: percentile(times, 99),
    maxMs: times[times.length - 1] ?? NaN,
    minMs: times[0] ?? NaN,
    meanMs: mean(finite),
    multiElectionRate: outcomes.filter((o) => o.elections > 1).length / n,
    meanElections: mean(outcomes.map((o) => o.elections)),
    meanPreVoteRounds: mean(outcomes.map((o) => o.preVoteRounds)),
    multiPreVoteRate: outcomes.filter((o) => o.preVoteRounds > 1).length / n,
    meanTermsUsed: mean(outcomes.map((o) => o.termsUsed)),
    p50FirstTimeoutMs: percentile(firsts, 50),
  };
}

/** One series in the JSON report. */
export interface SeriesReport {
  readonly mode: ReplicationMode;
  readonly preVote: boolean;
  readonly range: string;
  readonly delay: string;
  readonly electionTimeoutMinTicks: number;
  readonly electionTimeoutMaxTicks: number;
  readonly stats: SeriesStats;
  /** Every trial's downtime in ms (rounded to 0.01), in trial order; null = censored. */
  readonly downtimesMs: (number | null)[];
  readonly elections: number[];
}

/** Runs `trials` trials of one spec, seeds derived from `baseSeed`. */
export function runSeries(spec: ElectionSpec, trials: number, baseSeed: number): SeriesReport {
  const outcomes: TrialOutcome[] = [];
  const seeds = new Prng(baseSeed);
  for (let i = 0; i < trials; i++) outcomes.push(runTrial(spec, seeds.nextU32()));
  const { min, max } = coreTimeoutRange(spec.rangeLoMs, spec.rangeHiMs);
  return {
    mode: spec.mode,
    preVote: spec.preVote,
    range: `${spec.rangeLoMs}-${spec.rangeHiMs}`,
    delay: `${spec.delayMinMs}-${spec.delayMaxMs}`,
    electionTimeoutMinTicks: min,
    electionTimeoutMaxTicks: max,
    stats: summarize(outcomes),
    downtimesMs: outcomes.map((o) => (o.downtimeMs === null ? null : Math.round(o.downtimeMs * 100) / 100)),
    elections: outcomes.map((o) => o.elections),
  };
}

function fmtMs(x: number): string {
  if (!Number.isFinite(x)) return '>cap';
  return x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${x.toFixed(0)}`;
}

function pct(x: number): string {
  return `${(x * 100).toFixed(1)}%`;
}

/** The markdown table of a set of series. */
export function markdownTable(series: readonly SeriesReport[]): string {
  const lines = [
    '| range (ms) | mode | pre-vote | p50 | p90 | p99 | max | mean | censored | >1 election | elections (mean) | pre-vote rounds (mean) | terms used (mean) | first timeout p50 |',
    '| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const s of series) {
    const st = s.stats;
    lines.push(`| ${s.range} | ${s.mode} | ${s.preVote ? 'on' : 'off'} | ${fmtMs(st.p50Ms)} | ${fmtMs(st.p90Ms)} | ` +
      `${fmtMs(st.p99Ms)} | ${fmtMs(st.maxMs)} | ${fmtMs(st.meanMs)} | ${st.censored} | ${pct(st.multiElectionRate)} | ` +
      `${st.meanElections.toFixed(2)} | ${st.meanPreVoteRounds.toFixed(2)} | ${st.meanTermsUsed.toFixed(2)} | ${fmtMs(st.p50FirstTimeoutMs)} |`);
  }
  return lines.join('\n');
}

/** Figures quoted in the paper's text (section 9.3), marked on the pre-vote-off panels. */
const PAPER_MARKERS = [
  { x: 10_000, y: 0.02, label: 'paper 150-150: every trial > 10 s', colorIndex: 0 },
  { x: 287, y: 0.5, label: 'paper 150-155: median 287 ms', colorIndex: 2 },
  { x: 513, y: 1, label: 'paper 150-200: max 513 ms', colorIndex: 4 },
] as const;

function main(): void {
  const { values } = parseArgs({
    options: {
      trials: { type: 'string', default: '1000' },
      seed: { type: 'string', default: '1' },
      modes: { type: 'string', default: 'push,pull' },
      prevote: { type: 'string', default: 'off,on' },
      delay: { type: 'string', default: '7-8,3-10' },
      cap: { type: 'string', default: '100000' },
      out: { type: 'string', default: 'docs/bench' },
      name: { type: 'string', default: 'election-time' },
      plot: { type: 'string', default: 'yes' },
      heartbeat: { type: 'string', default: '75' },
      'fetch-wait': { type: 'string', default: '62' },
      'fetch-retry': { type: 'string', default: '30' },
      ranges: { type: 'string', default: PAPER_RANGES.map(([lo, hi]) => `${lo}-${hi}`).join(',') },
    },
  });
  const trials = Number(values.trials);
  const seed = Number(values.seed);
  const modes = values.modes.split(',') as ReplicationMode[];
  const preVotes = values.prevote.split(',').map((v) => v === 'on');
  const delays = values.delay.split(',').map((d) => d.split('-').map(Number) as [number, number]);
  const capMs = Number(values.cap);
  const ranges = values.ranges.split(',').map((r) => r.split('-').map(Number) as [number, number]);
  const base = {
    heartbeatIntervalTicks: Number(values.heartbeat),
    fetchMaxWaitTicks: Number(values['fetch-wait']),
    fetchRetryTicks: Number(values['fetch-retry']),
    extraMaxMs: 1000,
    capMs,
  };
  const wallStart = process.hrtime.bigint();
  const series: SeriesReport[] = [];
  let k = 0;
  for (const [delayMinMs, delayMaxMs] of delays) {
    for (const preVote of preVotes) {
      for (const mode of modes) {
        for (const [lo, hi] of ranges) {
          const t0 = process.hrtime.bigint();
          const spec: ElectionSpec = { ...base, delayMinMs, delayMaxMs, mode, preVote, rangeLoMs: lo, rangeHiMs: hi };
          const s = runSeries(spec, trials, seed * 1000 + k++);
          series.push(s);
          const ms = Number(process.hrtime.bigint() - t0) / 1e6;
          console.error(`delay ${s.delay} ${mode} pre-vote ${preVote ? 'on ' : 'off'} ${s.range.padEnd(7)} ` +
            `p50 ${fmtMs(s.stats.p50Ms).padStart(7)} p99 ${fmtMs(s.stats.p99Ms).padStart(7)} ` +
            `max ${fmtMs(s.stats.maxMs).padStart(8)}  (${(ms / 1000).toFixed(1)} s)`);
        }
      }
    }
  }
  const wallMs = Number(process.hrtime.bigint() - wallStart) / 1e6;
  mkdirSync(values.out, { recursive: true });
  const command = `node dist/bench/election-time.js --trials ${trials} --seed ${seed} --modes ${values.modes} ` +
    `--prevote ${values.prevote} --delay ${values.delay} --ranges ${values.ranges} --cap ${capMs} ` +
    `--heartbeat ${values.heartbeat} --fetch-wait ${values['fetch-wait']} --fetch-retry ${values['fetch-retry']} ` +
    `--name ${values.name}`;
  const report = {
    benchmark: 'election-time',
    description: 'Virtual ms from the leader crash until another node reports role leader (Raft paper Fig. 16).',
    command,
    cluster: { voters: 5, tickMs: 1, persistence: 'instant' },
    params: { ...base, delays: values.delay, trialsPerSeries: trials, seed },
    series,
  };
  writeFileSync(join(values.out, `${values.name}.json`), JSON.stringify(report) + '\n');
  if (values.plot === 'yes') delays.forEach(([delayMinMs, delayMaxMs], i) => {
    const delay = `${delayMinMs}-${delayMaxMs}`;
    const panels: CdfPanel[] = [];
    for (const preVote of preVotes) {
      for (const mode of modes) {
        panels.push({
          title: `${mode} mode, pre-vote ${preVote ? 'on' : 'off (as in the paper)'}`,
          lines: series.filter((s) => s.delay === delay && s.mode === mode && s.preVote === preVote).map((s) => ({
            label: `${s.range} ms`, values: s.downtimesMs.map((v) => v ?? Infinity),
          })),
          ...(preVote ? {} : { markers: PAPER_MARKERS }),
        });
      }
    }
    const file = i === 0 ? `${values.name}.svg` : `${values.name}-delay-${delay}.svg`;
    writeFileSync(join(values.out, file), renderCdfSvg({
      title: `Time without leader after the leader crashes: 5 voters, ${trials} trials per line, one-way delay U[${delayMinMs}, ${delayMaxMs}) ms`,
      xLabel: 'time without leader (ms, log scale)',
      yLabel: 'cumulative percent of trials',
      xMin: 50, xMax: 100_000,
      panels,
    }));
  });
  for (const [delayMinMs, delayMaxMs] of delays) {
    const delay = `${delayMinMs}-${delayMaxMs}`;
    console.log(`\nOne-way delay U[${delayMinMs}, ${delayMaxMs}) ms:\n`);
    console.log(markdownTable(series.filter((s) => s.delay === delay)));
  }
  console.log(`\n${series.length} series x ${trials} trials in ${(wallMs / 1000).toFixed(1)} s wall`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) main();
