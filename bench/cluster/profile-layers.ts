// Where a node's CPU goes, by layer, per put: reads one V8 CPU profile
// (`node --cpu-prof`, optionally gzipped) of a node that served `puts`
// writes, attributes every sample to a layer, and prints microseconds of busy
// time per put for each (idle and start-up excluded). A sample belongs to the
// layer of its own frame when that frame is ours or a library we know, else
// to the nearest such caller; socket writes are split by who called them
// (the peer transport, or HTTP/2 and grpc-js for clients). Start-up is any
// sample under module loading or the node's start function.
//
//   node dist/bench/cluster/profile-layers.js <profile.cpuprofile[.gz]> <puts>
//
// The profiles behind docs/BENCHMARKS.md's "Where a put's CPU goes, by layer"
// table are in docs/bench/profiles/layers-2026-12-06/.

import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';

interface CallFrame { readonly functionName: string; readonly url: string }
interface ProfileNode { readonly id: number; readonly callFrame: CallFrame; readonly children?: readonly number[] }
interface CpuProfile { readonly nodes: readonly ProfileNode[]; readonly samples: readonly number[]; readonly timeDeltas: readonly number[] }

/** The layers, in the order the report lists them. */
export const LAYERS = [
  'HTTP/2 (node)', 'grpc-js', 'protobuf', 'AMQP listener (ours)', 'AMQP codec (ours)', 'protocol workers (ours)', 'worker IPC (hot channel, cluster channel)', 'socket writes: clients', 'socket writes: peers', 'peer transport (ours)', 'peer codec (ours)',
  'core', 'runtime', 'forwarding', 'storage (ours)', 'storage syscalls', 'apply (state machines)', 'etcd service handlers', 'GC',
  '(program): native, event loop', 'other Node internals',
] as const;
export type Layer = (typeof LAYERS)[number];

/** Microseconds of busy time per put, by layer, and in all. */
export interface LayerReport {
  readonly busyUsPerPut: number;
  readonly layers: Readonly<Record<Layer, number>>;
}

/** Attributes a profile's busy samples to layers; `puts` is how many writes the node served meanwhile. */
export function layersOf(p: CpuProfile, puts: number): LayerReport {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const frame = (id: number): CallFrame => (byId.get(id) as ProfileNode).callFrame;
  const ancestors = function* (id: number): Generator<number> {
    for (let x: number | undefined = id; x !== undefined; x = parent.get(x)) yield x;
  };
  const own = (id: number): Layer | 'idle' | null => {
    const { functionName: f, url: u } = frame(id);
    if (f === '(idle)') return 'idle';
    if (f === '(garbage collector)') return 'GC';
    if (f === '(program)') return '(program): native, event loop';
    if (f === 'writev' || f === 'writeBuffer' || f === 'writeUtf8String') {
      for (const x of ancestors(id)) {
        const u2 = frame(x).url;
        if (u2.includes('/dist/src/transport/')) return 'socket writes: peers';
        if (u2.includes('node:internal/child_process') || u2.includes('node:internal/cluster')) return 'worker IPC (hot channel, cluster channel)';
        if (u2.includes('http2') || u2.includes('@grpc') || u2.includes('/dist/src/server/amqp/')) return 'socket writes: clients';
        // (after HTTP/2: a worker's answers to its clients are written from its HTTP/2 session)
        if (u2.includes('/dist/src/server/protocol-workers/')) return 'worker IPC (hot channel, cluster channel)';
      }
      return 'other Node internals';
    }
    if (f === 'fdatasync' || f === 'fsync' || f === 'writeSync' || f === 'openFileHandle' || f === 'fstat') return 'storage syscalls';
    if (u.includes('/dist/src/core/')) return 'core';
    if (u.includes('/dist/src/storage/')) return 'storage (ours)';
    if (u.includes('/dist/src/transport/')) return 'peer transport (ours)';
    if (u.includes('/dist/src/node/forwarding') || u.includes('/dist/src/node/forward.')) return 'forwarding';
    if (u.includes('/dist/src/node/')) return 'runtime';
    if (u.includes('/dist/src/services/')) return 'apply (state machines)';
    if (u.includes('/dist/src/server/protocol-workers/hot-channel')) return 'worker IPC (hot channel, cluster channel)';
    if (u.includes('/dist/src/server/protocol-workers/')) return 'protocol workers (ours)';
    if (u.includes('/dist/src/server/amqp/')) return 'AMQP listener (ours)';
    if (u.includes('/dist/src/codec/amqp/')) return 'AMQP codec (ours)';
    if (u.includes('/dist/src/server/')) return 'etcd service handlers';
    if (u.includes('node:internal/child_process') || u.includes('node:internal/cluster') || u === 'node:v8') return 'worker IPC (hot channel, cluster channel)';
    if (u.includes('/dist/src/codec/') || u.includes('/dist/src/protocol/')) return 'peer codec (ours)';
    if (u.includes('@grpc/grpc-js')) return 'grpc-js';
    if (u.includes('protobufjs') || u.includes('proto-loader')) return 'protobuf';
    if (u.includes('node:internal/http2') || u === 'node:http2') return 'HTTP/2 (node)';
    return null;
  };
  const startUp = (id: number): boolean => {
    for (const x of ancestors(id)) {
      const { functionName: f, url: u } = frame(x);
      if (u.startsWith('node:internal/modules') || f === 'startNode' || f === 'startClientApi') return true;
    }
    return false;
  };
  const perNode = new Map<number, number>();
  p.samples.forEach((id, i) => perNode.set(id, (perNode.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)));
  const totals = Object.fromEntries(LAYERS.map((l) => [l, 0])) as Record<Layer, number>;
  let busy = 0;
  for (const [id, us] of perNode) {
    if (startUp(id)) continue;
    let layer: Layer | 'idle' | null = null;
    for (const x of ancestors(id)) {
      layer = own(x);
      if (layer !== null) break;
    }
    if (layer === 'idle') continue;
    const l: Layer = layer ?? 'other Node internals';
    totals[l] += us;
    busy += us;
  }
  const per = (us: number): number => Math.round(us / puts);
  return { busyUsPerPut: per(busy), layers: Object.fromEntries(LAYERS.map((l) => [l, per(totals[l])])) as Record<Layer, number> };
}

function main(): void {
  const [file, putsArg] = process.argv.slice(2);
  const puts = Number(putsArg);
  if (file === undefined || !Number.isInteger(puts) || puts <= 0) {
    console.error('usage: node dist/bench/cluster/profile-layers.js <profile.cpuprofile[.gz]> <puts>');
    process.exit(2);
  }
  const raw = readFileSync(file);
  const text = file.endsWith('.gz') ? gunzipSync(raw).toString('utf8') : raw.toString('utf8');
  console.log(JSON.stringify(layersOf(JSON.parse(text) as CpuProfile, puts)));
}

if (process.argv[1]?.endsWith('profile-layers.js') === true) main();
