// Measures the consensus core alone: three voters in one process, no I/O,
// messages handed over at once in a loop, persistence instant. The leader is
// given batches of 100-byte proposals; each batch is driven until the cluster
// is quiet again (committed on the leader and the new commit index known to
// every follower). Reports committed entries per CPU-second (process.cpuUsage)
// and per wall-second, in push and pull mode, and writes
// docs/bench/core-throughput.json.
//
//   npm run bench:core -- [--seconds 3] [--batches 1,16,256,1024] [--modes push,pull]
//     [--style batch|single] [--out docs/bench]

import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { ReplicationMode } from '../src/core/config.js';
import { RaftNode } from '../src/core/node.js';
import { nodeId, type NodeId } from '../src/protocol/ids.js';
import type { Message } from '../src/protocol/messages.js';
import { Prng } from '../src/util/prng.js';
import { instantHost, ReadyLoop } from '../src/node/ready-loop.js';

/** One measurement's settings. */
export interface ThroughputSpec {
  readonly mode: ReplicationMode;
  /** Proposals handed to the leader before the cluster is driven to quiet. */
  readonly batchSize: number;
  readonly payloadBytes: number;
  /** `batch`: one propose() call with the whole batch; `single`: one call per proposal. */
  readonly style: 'batch' | 'single';
  /** How long to measure (wall time), after the warm-up. */
  readonly measureMs: number;
  readonly warmupMs: number;
  readonly seed: number;
}

/** What one measurement found. */
export interface ThroughputResult {
  readonly mode: ReplicationMode;
  readonly batchSize: number;
  readonly style: 'batch' | 'single';
  readonly committedEntries: number;
  readonly cpuSeconds: number;
  readonly wallSeconds: number;
  readonly entriesPerCpuSecond: number;
  readonly entriesPerWallSecond: number;
  readonly rounds: number;
  readonly messagesPerRound: number;
  readonly readiesPerRound: number;
}

/** Three in-memory voters and a FIFO of messages in flight. */
class Bench {
  readonly nodes: RaftNode[] = [];
  private readonly byId = new Map<NodeId, RaftNode>();
  private readonly loops: ReadyLoop[] = [];
  private readonly queue: Message[] = [];
  private head = 0;
  messages = 0;
  readies = 0;

  constructor(mode: ReplicationMode, seed: number) {
    const rng = new Prng(seed);
    const ids = ['a', 'b', 'c'].map(nodeId);
    for (const id of ids) {
      const n = new RaftNode({ id, voters: ids, replication: mode, random: rng.fork() });
      this.nodes.push(n);
      this.byId.set(id, n);
      // Persistence is instant (the core is measured, not the disk): both message lists go out at once.
      this.loops.push(new ReadyLoop(n, instantHost((m) => this.queue.push(m))));
    }
  }

  /** Delivers every queued message and takes every Ready, until nothing moves. */
  pump(): void {
    for (;;) {
      let moved = false;
      for (const loop of this.loops) {
        const n = loop.run();
        this.readies += n;
        if (n > 0) moved = true;
      }
      if (this.head < this.queue.length) {
        moved = true;
        while (this.head < this.queue.length) {
          const m = this.queue[this.head++] as Message;
          this.messages++;
          (this.byId.get(m.to) as RaftNode).step(m);
        }
        this.queue.length = 0;
        this.head = 0;
      }
      if (!moved) return;
    }
  }

  /** Ticks everyone until one node leads and everyone follows it. */
  elect(): RaftNode {
    for (let i = 0; i < 10_000; i++) {
      for (const n of this.nodes) n.tick();
      this.pump();
      const leader = this.nodes.find((n) => n.role.kind === 'leader');
      if (leader !== undefined && this.nodes.every((n) => n.leaderId() === leader.id) &&
        this.nodes.every((n) => n.log.commit === leader.log.lastIndex())) return leader;
    }
    throw new Error('no leader after 10,000 ticks');
  }

  /** Drops log entries that every node has applied (what a runtime's snapshots would do); run every 16,384 entries. */
  compact(): void {
    let upTo = Infinity;
    for (const n of this.nodes) upTo = Math.min(upTo, n.log.applied, n.log.stable);
    for (const n of this.nodes) if (upTo > n.log.snapshot.index) n.compact(upTo);
  }
}

/** Runs one throughput measurement. */
export function measure(spec: ThroughputSpec): ThroughputResult {
  const bench = new Bench(spec.mode, spec.seed);
  const leader = bench.elect();
  // Distinct payloads, reused round-robin: the core keeps references, never copies.
  const pool: Uint8Array[] = [];
  for (let i = 0; i < Math.max(spec.batchSize, 1024); i++) pool.push(new Uint8Array(spec.payloadBytes).fill(i & 0xff));
  let poolAt = 0;
  const batch: Uint8Array[] = new Array<Uint8Array>(spec.batchSize);
  const round = (): void => {
    for (let i = 0; i < spec.batchSize; i++) {
      batch[i] = pool[poolAt] as Uint8Array;
      poolAt = poolAt + 1 === pool.length ? 0 : poolAt + 1;
    }
    if (spec.style === 'batch') {
      leader.propose(batch);
    } else {
      for (const p of batch) leader.propose([p]);
    }
    bench.pump();
    for (const n of bench.nodes) n.tick();
    bench.pump();
  };
  const runFor = (ms: number): number => {
    const end = process.hrtime.bigint() + BigInt(Math.round(ms * 1e6));
    let rounds = 0;
    while (process.hrtime.bigint() < end) {
      for (let i = 0; i < 16; i++) {
        round();
        rounds++;
        if (leader.log.applied - leader.log.snapshot.index >= 16_384) bench.compact();
      }
    }
    return rounds;
  };
  runFor(spec.warmupMs);
  const commit0 = leader.log.commit;
  const messages0 = bench.messages;
  const readies0 = bench.readies;
  const cpu0 = process.cpuUsage();
  const wall0 = process.hrtime.bigint();
  const rounds = runFor(spec.measureMs);
  const wallSeconds = Number(process.hrtime.bigint() - wall0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  if (leader.role.kind !== 'leader') throw new Error('leadership changed during the measurement');
  for (const n of bench.nodes) {
    if (n.log.commit !== leader.log.commit) throw new Error(`${n.id} did not learn the commit index`);
  }
  const committedEntries = leader.log.commit - commit0;
  return {
    mode: spec.mode,
    batchSize: spec.batchSize,
    style: spec.style,
    committedEntries,
    cpuSeconds,
    wallSeconds,
    entriesPerCpuSecond: committedEntries / cpuSeconds,
    entriesPerWallSecond: committedEntries / wallSeconds,
    rounds,
    messagesPerRound: (bench.messages - messages0) / rounds,
    readiesPerRound: (bench.readies - readies0) / rounds,
  };
}

/** The results as a markdown table. */
export function markdownTable(results: readonly ThroughputResult[], targetPerCpuSecond: number): string {
  const lines = [
    '| mode | batch | style | committed entries | CPU s | wall s | entries / CPU s | entries / wall s | messages / batch | readies / batch | target |',
    '| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
  ];
  const n = (x: number): string => Math.round(x).toLocaleString('en-US');
  for (const r of results) {
    lines.push(`| ${r.mode} | ${r.batchSize} | ${r.style} | ${n(r.committedEntries)} | ${r.cpuSeconds.toFixed(2)} | ` +
      `${r.wallSeconds.toFixed(2)} | ${n(r.entriesPerCpuSecond)} | ${n(r.entriesPerWallSecond)} | ` +
      `${r.messagesPerRound.toFixed(1)} | ${r.readiesPerRound.toFixed(1)} | ` +
      `${r.entriesPerCpuSecond >= targetPerCpuSecond ? 'met' : 'below'} |`);
  }
  return lines.join('\n');
}

function main(): void {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '3' },
      warmup: { type: 'string', default: '1' },
      batches: { type: 'string', default: '1,16,256,1024' },
      modes: { type: 'string', default: 'push,pull' },
      style: { type: 'string', default: 'batch' },
      payload: { type: 'string', default: '100' },
      target: { type: 'string', default: '500000' },
      out: { type: 'string', default: 'docs/bench' },
    },
  });
  const target = Number(values.target);
  const results: ThroughputResult[] = [];
  for (const mode of values.modes.split(',') as ReplicationMode[]) {
    for (const batchSize of values.batches.split(',').map(Number)) {
      const r = measure({
        mode, batchSize, payloadBytes: Number(values.payload), style: values.style as 'batch' | 'single',
        measureMs: Number(values.seconds) * 1000, warmupMs: Number(values.warmup) * 1000, seed: 1,
      });
      results.push(r);
      console.error(`${mode} batch ${batchSize}: ${Math.round(r.entriesPerCpuSecond).toLocaleString('en-US')} entries/CPU-s`);
    }
  }
  console.log(markdownTable(results, target));
  mkdirSync(values.out, { recursive: true });
  writeFileSync(join(values.out, 'core-throughput.json'), JSON.stringify({
    benchmark: 'core-throughput',
    description: '3 voters in one process, no I/O, immediate delivery; committed entries per CPU-second.',
    command: `node dist/bench/core-throughput.js --seconds ${values.seconds} --warmup ${values.warmup} ` +
      `--batches ${values.batches} --modes ${values.modes} --style ${values.style} --payload ${values.payload}`,
    machine: { node: process.version, cpu: cpus()[0]?.model ?? 'unknown', cpus: cpus().length },
    targetEntriesPerCpuSecond: target,
    results,
  }, null, 2) + '\n');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) main();
