// Measures the Raft thread's commit path alone: from a committed entry to
// answered requests, with no consensus, I/O or client protocol. Entries hold
// batches of etcd puts like the cluster benchmark's (keys k0 .. k<keys-1> in
// turn, 256-byte values); each is applied as the runtime applies it
// (applyEntry: the batch is unpacked, every command routed by the service
// multiplexer to the KV state machine and its MVCC store), and its results go
// to the waiting requests (PendingRequests.entryApplied). Reports CPU and
// wall microseconds per put, and the JS heap bytes allocated per put (from
// v8.GCProfiler: what the collections freed plus what the heap grew by; the
// backing stores of array buffers, e.g. a value's 256 bytes, are outside it
// and not counted: V8 frees them lazily, so the same reckoning over its
// external memory does not add up). Every entry's waiters are prepared before
// the clock starts, so neither the requests' arrival nor the entries'
// encoding is counted.
//
// With --auth, auth is on and every put is stamped as a user whose role may
// write the keys (READWRITE on prefix "k"), so the auth gate checks each one
// where it applies; the report then adds what the server's own check of a put
// costs (token, permissions, stamp: src/server/auth), per put.
//
//   node dist/bench/apply-throughput.js [--puts 200000] [--batch 128] [--keys 1000]
//     [--value-bytes 256] [--warmup 50000] [--runs 3] [--auth] [--json]

import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import v8 from 'node:v8';
import { applyEntry } from '../src/node/apply.js';
import { encodeBatch } from '../src/node/batch.js';
import { PendingRequests, type QueuedCommand } from '../src/node/requests.js';
import { newRuntimeMetrics } from '../src/node/runtime-metrics.js';
import type { PayloadEntry } from '../src/protocol/entry.js';
import type { LogIndex, Term } from '../src/protocol/ids.js';
import { encodeServiceCommand, stampCommand, type ServiceStateMachine } from '../src/services/machine.js';
import { encodeAuthCommand, type AuthStamp } from '../src/services/auth/codec.js';
import { kvCommandNeeds } from '../src/services/auth/needs.js';
import type { AuthStateMachine } from '../src/services/auth/state-machine.js';
import type { AuthCommand } from '../src/services/auth/types.js';
import { decodeCommandView, encodeCommand } from '../src/services/kv/codec.js';
import { Authorizer } from '../src/server/auth/authorizer.js';
import { nodeServices } from '../src/server/node-services.js';
import type { KvResult } from '../src/services/kv/types.js';

/** One measurement's settings. */
export interface ApplySpec {
  /** Puts measured (after the warm-up), rounded up to whole entries. */
  readonly puts: number;
  /** Puts per entry. */
  readonly batch: number;
  readonly keys: number;
  readonly valueBytes: number;
  /** Puts applied before the clock starts (same store). */
  readonly warmupPuts: number;
  /** Auth on, every put stamped as a user allowed to write it. */
  readonly auth?: boolean;
}

/** What one measurement found. */
export interface ApplyResult {
  readonly puts: number;
  readonly entries: number;
  readonly cpuUsPerPut: number;
  readonly wallUsPerPut: number;
  readonly heapBytesPerPut: number;
  readonly collections: number;
}

const TERM = 1 as Term;

/** Encoded entries of `batch` puts each, keys in turn from `firstPut`. */
function makeEntries(spec: ApplySpec, firstIndex: number, firstPut: number, puts: number, stamp: AuthStamp | null = null): PayloadEntry[] {
  const value = new Uint8Array(spec.valueBytes);
  for (let i = 0; i < value.length; i++) value[i] = (i * 31 + 7) & 0xff;
  const out: PayloadEntry[] = [];
  let put = firstPut;
  for (let index = firstIndex; put < firstPut + puts; index++) {
    const commands: Uint8Array[] = [];
    for (let i = 0; i < spec.batch; i++, put++) {
      const key = new TextEncoder().encode(`k${put % spec.keys}`);
      const cmd = encodeCommand({ type: 'put', request: { key, value, lease: 0, prevKv: false, ignoreValue: false, ignoreLease: false } });
      commands.push(stamp === null ? cmd : stampCommand(stamp, cmd));
    }
    out.push({ index: index as LogIndex, term: TERM, type: 'data', data: encodeBatch(commands) });
  }
  return out;
}

/** Measures applying `spec.puts` puts (after a warm-up on the same store). */
export function measure(spec: ApplySpec): ApplyResult {
  const { services, auth } = nodeServices();
  const stamp = spec.auth === true ? enableAuth(services, auth.machine) : null;
  let answered = 0;
  let lastRevision = 1; // an empty store is at revision 1
  const resolve = (result: unknown): void => {
    const r = result as KvResult;
    if (r.type !== 'put' || r.revision !== lastRevision + 1) throw new Error(`unexpected result ${JSON.stringify(r)} after revision ${lastRevision}`);
    lastRevision = r.revision;
    answered++;
  };
  const reject = (err: Error): void => {
    throw err;
  };
  const requests = new PendingRequests({
    now: () => performance.now(), metrics: newRuntimeMetrics(), requestTimeoutMs: 1e9, maxPendingRequests: 1e9, maxPendingBytes: 1e12,
    maxEntryBytes: 256 * 1024, wake: () => {}, isCommitted: () => true, orphanGraceMs: 1e9,
  });
  const onMalformed = (err: Error): void => {
    throw err;
  };
  const run = (entries: readonly PayloadEntry[]): void => {
    for (const e of entries) {
      const results = applyEntry(services, e, onMalformed);
      requests.entryApplied(e, results);
    }
  };
  const waitersFor = (entries: readonly PayloadEntry[]): void => {
    for (const e of entries) {
      const waiters: QueuedCommand[] = [];
      for (let i = 0; i < spec.batch; i++) waiters.push({ command: e.data, resolve, reject, deadline: Infinity });
      requests.inEntry(e.index, e.term, waiters);
    }
  };

  const warm = makeEntries(spec, 1, 0, spec.warmupPuts, stamp);
  waitersFor(warm);
  run(warm);
  const measured = makeEntries(spec, warm.length + 1, warm.length * spec.batch, spec.puts, stamp);
  waitersFor(measured);
  const puts = measured.length * spec.batch;
  const answeredBefore = answered;

  const profiler = new v8.GCProfiler();
  profiler.start();
  const before = v8.getHeapStatistics();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  run(measured);
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const after = v8.getHeapStatistics();
  const gcs = profiler.stop()?.statistics ?? [];

  if (answered - answeredBefore !== puts) throw new Error(`${answered - answeredBefore} of ${puts} puts answered`);
  let freedHeap = 0;
  for (const g of gcs) freedHeap += g.beforeGC.heapStatistics.usedHeapSize - g.afterGC.heapStatistics.usedHeapSize;
  return {
    puts,
    entries: measured.length,
    cpuUsPerPut: (cpu.user + cpu.system) / puts,
    wallUsPerPut: (wallMs * 1000) / puts,
    heapBytesPerPut: (after.used_heap_size - before.used_heap_size + freedHeap) / puts,
    collections: gcs.length,
  };
}

const WRITER = 'writer';

/** Turns auth on with a user allowed to write the keys k*; returns the stamp its puts carry. */
function enableAuth(services: ServiceStateMachine, auth: AuthStateMachine): AuthStamp {
  const cmds: AuthCommand[] = [
    { type: 'userAdd', name: 'root', passwordHash: 'x' }, { type: 'roleAdd', name: 'root' }, { type: 'userGrantRole', user: 'root', role: 'root' },
    { type: 'roleAdd', name: WRITER },
    { type: 'roleGrantPermission', role: WRITER, permission: { resource: 'kv', type: 'readwrite', key: new TextEncoder().encode('k'), rangeEnd: new TextEncoder().encode('l') } },
    { type: 'userAdd', name: WRITER, passwordHash: 'x' }, { type: 'userGrantRole', user: WRITER, role: WRITER },
    { type: 'enable', tokenKey: new Uint8Array(32).fill(9) },
  ];
  for (const c of cmds) {
    const r = services.apply(encodeServiceCommand('auth', encodeAuthCommand(c)), 0) as { type: string };
    if (r.type !== 'ok') throw new Error(`auth set-up: ${JSON.stringify(r)}`);
  }
  return { kind: 'user', user: WRITER, revision: auth.revision };
}

/** What the server's check of one put costs while auth is on (src/server/auth: token, permissions, stamp), µs of CPU per put. */
export function measureServerCheck(puts: number): number {
  const { services, auth, kv } = nodeServices();
  enableAuth(services, auth.machine);
  const authz = new Authorizer(auth.machine);
  const creds = { token: authz.issue(WRITER) };
  const value = new Uint8Array(256);
  const commands = Array.from({ length: 1000 }, (_, i) => encodeCommand({
    type: 'put', request: { key: new TextEncoder().encode(`k${i}`), value, lease: 0, prevKv: false, ignoreValue: false, ignoreLease: false },
  }));
  let bytes = 0;
  const once = (n: number): void => {
    for (let i = 0; i < n; i++) {
      const command = commands[i % commands.length] as Uint8Array;
      const cmd = decodeCommandView(command);
      const p = authz.check(creds, kvCommandNeeds(cmd, (id) => kv.store.leaseKeys(id)));
      bytes += stampCommand(authz.stamp(p) as AuthStamp, encodeServiceCommand('kv', command)).byteLength;
    }
  };
  once(20_000);
  const cpu0 = process.cpuUsage();
  once(puts);
  const cpu = process.cpuUsage(cpu0);
  if (bytes === 0) throw new Error('nothing stamped');
  return (cpu.user + cpu.system) / puts;
}

function main(): void {
  const { values } = parseArgs({
    options: {
      puts: { type: 'string', default: '200000' },
      batch: { type: 'string', default: '128' },
      keys: { type: 'string', default: '1000' },
      'value-bytes': { type: 'string', default: '256' },
      warmup: { type: 'string', default: '50000' },
      runs: { type: 'string', default: '3' },
      auth: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
  });
  const spec: ApplySpec = {
    puts: Number(values.puts), batch: Number(values.batch), keys: Number(values.keys),
    valueBytes: Number(values['value-bytes']), warmupPuts: Number(values.warmup), auth: values.auth === true,
  };
  const results: ApplyResult[] = [];
  for (let i = 0; i < Number(values.runs); i++) {
    const r = measure(spec);
    results.push(r);
    if (!values.json) {
      console.log(`run ${i + 1}: ${r.puts} puts in ${r.entries} entries: ${r.cpuUsPerPut.toFixed(2)} µs CPU / put, ` +
        `${r.wallUsPerPut.toFixed(2)} µs wall / put, ${Math.round(r.heapBytesPerPut)} heap B / put, ` +
        `${r.collections} collections`);
    }
  }
  const serverCheckUs = spec.auth === true ? measureServerCheck(spec.puts) : null;
  if (!values.json && serverCheckUs !== null) console.log(`the server's check of a put (token, permissions, stamp): ${serverCheckUs.toFixed(2)} µs CPU / put`);
  if (values.json) console.log(JSON.stringify({ spec, results, serverCheckUs }, null, 2));
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) main();
