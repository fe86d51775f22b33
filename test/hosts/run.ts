// `npm run test:hosts`: a Jepsen-style nemesis over 5-node quorumlog
// clusters whose nodes live in their own network namespaces (netns.ts,
// cluster.ts), in push and then pull mode. Concurrent clients do put, get and
// compare-and-swap through the etcd API while the nemesis (faults.ts) runs
// every fault once in a seeded order: majority/minority, bridge and ring
// partitions, one-way and random loss (nftables, numgen), kill -9 and restart,
// a slow network (netem, or HTB where the kernel has no netem), and a lost
// disk replaced through membership changes made during packet loss. After each
// fault heals, the cluster must recover (every node agrees on a leader and
// takes a write) within RECOVERY_BOUND_MS. At the end: the history must be
// linearizable (test/linearizability), every acknowledged write must be
// readable, and every replica must hold the same keys.
//
// Needs root. Where it cannot run it says why and exits 2; a failed check
// exits 1. It removes every namespace and link it made (all named qlh-*) on
// the way out, on failure, on SIGINT/SIGTERM, and at start removes those a
// crashed run left. Settings (environment): QUORUMLOG_HOSTS_SEED,
// QUORUMLOG_HOSTS_MODES (push,pull), QUORUMLOG_HOSTS_FAULT_MS (4000),
// QUORUMLOG_HOSTS_ROUNDS (1), KEEP_CLUSTER_DIRS (keep the nodes' data and logs).

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EtcdTestClient } from '../cluster/etcd-client.js';
import { checkLinearizable, type KvOp } from '../linearizability/checker.js';
import { HistoryRecorder } from '../linearizability/history.js';
import { HostCluster, killAllNodes, type HostNode } from './cluster.js';
import { allFaults, type FaultContext } from './faults.js';
import { Rng } from './nemesis.js';
import { createNetwork, HostsUnavailableError, leftovers, preflight, removeAll, type HostCapabilities, type Shaping } from './netns.js';

const N = 5;
const KEYS = ['a', 'b', 'c', 'd', 'e'];
const CLIENTS = 6;
const CLIENT_DEADLINE_MS = 2000;
/** The clients move to fresh keys this often. */
const KEY_EPOCH_MS = 10_000;
const env = (k: string): string | undefined => process.env[k];
const FAULT_MS = Number(env('QUORUMLOG_HOSTS_FAULT_MS') ?? 4000);
const ROUNDS = Number(env('QUORUMLOG_HOSTS_ROUNDS') ?? 1);
const MODES = (env('QUORUMLOG_HOSTS_MODES') ?? 'push,pull').split(',') as ('push' | 'pull')[];
const SEED = Number(env('QUORUMLOG_HOSTS_SEED') ?? Math.floor(Math.random() * 2 ** 31));
/** After a fault heals, every node must agree on a leader and take a write within this. */
const RECOVERY_BOUND_MS = 15_000;
/** Normal operation between two faults. */
const QUIET_MS = 1000;
/** The whole run, both modes, must end by then (else it fails, cleaning up). */
const RUN_LIMIT_MS = 8 * 60_000;
const LOCK = join(tmpdir(), 'quorumlog-hosts.lock');

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const log = (line: string): void => console.log(`[hosts] ${line}`);

/** One fault of a run, as reported. */
interface FaultReport {
  readonly name: string;
  readonly description: string;
  readonly heldMs: number;
  /** From heal to recovered; null when it did not recover within the bound. */
  readonly recoveryMs: number | null;
}

/** One mode's run. */
interface ModeReport {
  readonly mode: 'push' | 'pull';
  readonly faults: FaultReport[];
  readonly failures: string[];
  readonly summary: string[];
}

/** Removes every qlh-* namespace and link and kills the nodes; returns what could not be removed. */
function cleanup(): string[] {
  killAllNodes();
  return removeAll();
}

function takeLock(): void {
  try {
    writeFileSync(LOCK, String(process.pid), { flag: 'wx' });
    return;
  } catch { /* exists */ }
  const pid = Number(readFileSync(LOCK, 'utf8'));
  let alive = false;
  try {
    process.kill(pid, 0);
    alive = pid !== process.pid;
  } catch { /* gone */ }
  if (alive) throw new HostsUnavailableError(`another test:hosts run (pid ${pid}) holds ${LOCK} and uses the qlh-* namespaces`);
  writeFileSync(LOCK, String(process.pid));
}

function releaseLock(): void {
  try {
    if (Number(readFileSync(LOCK, 'utf8')) === process.pid) rmSync(LOCK);
  } catch { /* not ours, or gone */ }
}

/** Runs the nemesis over one cluster; never throws (a failure is in the report). */
async function runMode(mode: 'push' | 'pull', shaping: Shaping, rng: Rng): Promise<ModeReport> {
  const failures: string[] = [];
  const summary: string[] = [];
  const faults: FaultReport[] = [];
  createNetwork(N);
  const dir = mkdtempSync(join(tmpdir(), `quorumlog-hosts-${mode}-`));
  const cluster = HostCluster.start({ n: N, mode, dir });
  const history = new HistoryRecorder();
  /** Acknowledged writes of unique keys: key → value. */
  const acked = new Map<string, string>();
  let stop = false;
  let completedWrites = 0;
  let probeSeq = 0;
  const probePut = async (node: HostNode, what: string): Promise<number | null> => {
    const key = `probe/${what}/${node.id}/${probeSeq++}`;
    const cl = new EtcdTestClient(node.endpoint, CLIENT_DEADLINE_MS);
    const t0 = performance.now();
    try {
      await cl.put(key, 'v');
      acked.set(key, 'v');
      return performance.now() - t0;
    } catch {
      return null;
    } finally {
      cl.close();
    }
  };
  const startedAt = performance.now();
  const worker = async (id: number): Promise<void> => {
    let seq = 0;
    while (!stop) {
      const node = cluster.nodes[(id + seq) % N] as HostNode;
      const cl = new EtcdTestClient(node.endpoint, CLIENT_DEADLINE_MS);
      // Keys change every KEY_EPOCH_MS (as Jepsen's independent keys do), so that each key's history stays small enough to check.
      const key = `${KEYS[(id * 7 + seq) % KEYS.length] as string}${Math.floor((performance.now() - startedAt) / KEY_EPOCH_MS)}`;
      const r = (seq * 31 + id * 17) % 20;
      const value = `c${id}-${seq}`;
      seq++;
      try {
        if (r >= 17) { // a write of a key of its own, to check that none is lost
          const k = `ack/${id}/${seq}`;
          await cl.put(k, value);
          acked.set(k, value);
          continue;
        }
        const op: KvOp = r < 7 ? { kind: 'get', key } : r < 12 ? { kind: 'put', key, value }
          : { kind: 'cas', key, expected: `c${(id + 1) % CLIENTS}-${Math.max(0, seq - 3)}`, value };
        const h = history.begin(id, op);
        try {
          switch (op.kind) {
            case 'get': history.end(h, { kind: 'get', value: await cl.get(key) }); break;
            case 'put': await cl.put(key, op.value); history.end(h, { kind: 'put' }); completedWrites++; break;
            case 'cas': history.end(h, { kind: 'cas', ok: await cl.cas(key, op.expected, op.value) }); completedWrites++; break;
          }
        } catch (e) {
          history.unknown(h); // timed out or failed: it may or may not have taken effect
          throw e;
        }
      } catch {
        await sleep(100);
      } finally {
        cl.close();
      }
    }
  };
  /** Waits until every node answers, agrees on one leader, and takes a write; ms since `from`, or null past the bound. */
  const recovered = async (from: number, what: string): Promise<number | null> => {
    const deadline = from + RECOVERY_BOUND_MS;
    while (performance.now() < deadline) {
      const all = await cluster.statuses();
      const leader = all.find((x) => x.status?.role === 'leader');
      const agreed = leader !== undefined && all.every((x) => x.status !== null && x.status.leader === leader.node.id && x.status.term === leader.status?.term);
      if (agreed) {
        const puts = await Promise.all(cluster.nodes.map((n) => probePut(n, `recovery-${what}`)));
        if (puts.every((t) => t !== null)) return performance.now() - from;
      }
      await sleep(100);
    }
    return null;
  };
  let workers: Promise<void>[] = [];
  try {
    const first = await cluster.waitForLeader(30_000);
    if (first === null) throw new Error(`no leader within 30 s; logs in ${dir}`);
    log(`${mode}: 5 nodes in namespaces qlh-n1..qlh-n5 (10.77.0.1-5), leader ${first.id}; data and logs in ${dir}`);
    workers = Array.from({ length: CLIENTS }, (_, i) => worker(i));
    await sleep(QUIET_MS);
    for (let round = 0; round < ROUNDS; round++) {
      for (const fault of rng.shuffle(allFaults())) {
        const leader = await cluster.waitForLeader(5000);
        const ctx: FaultContext = { cluster, rng, leader, shaping, probePut };
        const started = performance.now();
        const description = await fault.start(ctx);
        log(`${mode}: ${fault.name}: ${description}`);
        await sleep(FAULT_MS);
        await fault.heal(ctx);
        const healed = performance.now();
        const recoveryMs = await recovered(healed, fault.name);
        faults.push({ name: fault.name, description, heldMs: healed - started, recoveryMs });
        log(`${mode}: ${fault.name}: healed after ${((healed - started) / 1000).toFixed(1)} s; ` +
          (recoveryMs === null ? `NOT recovered within ${RECOVERY_BOUND_MS / 1000} s` : `recovered in ${(recoveryMs / 1000).toFixed(2)} s`));
        if (recoveryMs === null) {
          failures.push(`${fault.name}: the cluster did not recover within ${RECOVERY_BOUND_MS / 1000} s of healing (logs in ${dir})`);
          break;
        }
        await sleep(QUIET_MS);
      }
      if (failures.length > 0) break;
    }
    stop = true;
    await Promise.all(workers);
    if (failures.length === 0) await finalChecks();
  } catch (e) {
    failures.push(`${mode}: ${(e as Error).stack ?? String(e)}`);
  } finally {
    stop = true;
    await Promise.all(workers).catch(() => undefined);
    for (const x of cluster.unexpectedExits) failures.push(`${x.id} exited on its own (${x.how}); see ${dir}/${x.id}/node.log`);
    await cluster.close();
    const left = cleanup();
    if (left.length > 0) failures.push(`left behind: ${left.join(', ')}`);
    if (failures.length === 0 && env('KEEP_CLUSTER_DIRS') === undefined) rmSync(dir, { recursive: true, force: true });
  }
  return { mode, faults, failures, summary };

  async function finalChecks(): Promise<void> {
    // Every replica caught up: applied at least what the leader had committed once the clients stopped.
    const leader = await cluster.waitForLeader(RECOVERY_BOUND_MS);
    if (leader === null) throw new Error('no leader at the end');
    const commit = (await leader.status())?.commitIndex ?? Infinity;
    const deadline = Date.now() + RECOVERY_BOUND_MS;
    for (;;) {
      const all = await cluster.statuses();
      if (all.every((x) => (x.status?.appliedIndex ?? -1) >= commit)) break;
      if (Date.now() > deadline) throw new Error(`replicas did not apply up to ${commit} within ${RECOVERY_BOUND_MS / 1000} s`);
      await sleep(100);
    }
    // No acknowledged write lost: each one read back, linearizably, through the leader.
    const cl = new EtcdTestClient(leader.endpoint, 10_000);
    const lost: string[] = [];
    try {
      const entries = [...acked];
      for (let i = 0; i < entries.length; i += 50) {
        const got = await Promise.all(entries.slice(i, i + 50).map(([k]) => cl.get(k)));
        got.forEach((v, j) => {
          const [k, want] = entries[i + j] as [string, string];
          if (v !== want) lost.push(`${k} (read ${JSON.stringify(v)})`);
        });
      }
    } finally {
      cl.close();
    }
    if (lost.length > 0) failures.push(`${lost.length} acknowledged writes lost: ${lost.slice(0, 5).join(', ')}`);
    // Every replica holds the same keys (serializable counts, from each node's own state).
    // (Asked a few times: a write whose client gave up may still be applying somewhere.)
    let counts: string[] = [];
    for (let attempt = 0; attempt < 10; attempt++) {
      counts = await Promise.all(cluster.nodes.map(async (n) => {
        const c = new EtcdTestClient(n.endpoint, 5000);
        try {
          return `${await c.countPrefix('ack/', { serializable: true })}+${await c.countPrefix('probe/', { serializable: true })}`;
        } finally {
          c.close();
        }
      }));
      if (new Set(counts).size === 1) break;
      await sleep(300);
    }
    if (new Set(counts).size !== 1) failures.push(`replicas differ in their keys (ack+probe counts per node): ${counts.join(' ')}`);
    const ops = history.operations();
    writeFileSync(join(dir, 'history.json'), JSON.stringify(ops.map((o) => ({ ...o, ret: Number.isFinite(o.ret) ? o.ret : null }))));
    const checkStart = performance.now();
    const result = checkLinearizable(ops, { timeBudgetMs: 60_000 });
    const checkMs = performance.now() - checkStart;
    const known = ops.filter((o) => o.output !== null).length;
    summary.push(`${ops.length} operations on ${new Set(ops.map((o) => o.op.key)).size} keys (${KEYS.join(',')}, fresh ones every ${KEY_EPOCH_MS / 1000} s; ${known} with a known outcome, ${completedWrites} acknowledged writes); ` +
      `linearizable: ${result.ok}${result.timedOut ? ' (check timed out)' : ''}, checked in ${(checkMs / 1000).toFixed(1)} s; the history is in ${dir}/history.json when the run fails`);
    summary.push(`${acked.size} acknowledged writes of unique keys, all read back: ${lost.length === 0}; per-node key counts ${counts.join(' ')}`);
    if (completedWrites <= 50) failures.push(`too few writes completed (${completedWrites}) for the check to mean anything`);
    if (result.timedOut) failures.push('the linearizability checker ran out of time');
    else if (!result.ok) failures.push(`not linearizable: ${result.failure?.key}: ${result.failure?.explanation}`);
  }
}

async function main(): Promise<number> {
  let caps: HostCapabilities;
  try {
    caps = preflight();
    takeLock();
  } catch (e) {
    if (e instanceof HostsUnavailableError) {
      console.error(`test:hosts cannot run here: ${e.message}`);
      return 2;
    }
    throw e;
  }
  let cleaned = false;
  const finish = (): void => {
    if (cleaned) return;
    cleaned = true;
    const left = cleanup();
    if (left.length > 0) console.error(`[hosts] could not remove: ${left.join(', ')}`);
    releaseLock();
  };
  process.on('exit', finish);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      console.error(`[hosts] ${sig}: removing the namespaces and stopping`);
      finish();
      process.exit(130);
    });
  }
  const limit = setTimeout(() => {
    console.error(`[hosts] FAIL: the run exceeded its ${RUN_LIMIT_MS / 60_000} min limit; cleaning up`);
    finish();
    process.exit(1);
  }, RUN_LIMIT_MS);
  limit.unref();

  const old = leftovers();
  if (old.namespaces.length + old.links.length > 0) {
    log(`removing leftovers of an earlier run: ${[...old.namespaces, ...old.links].join(' ')}`);
    const left = cleanup();
    if (left.length > 0) {
      console.error(`[hosts] FAIL: cannot remove leftovers: ${left.join(', ')}`);
      return 1;
    }
  }
  const shaping: Shaping = caps.netem ? { kind: 'netem', delayMs: 50, jitterMs: 20 }
    : { kind: 'htb', rateKbit: 128 };
  if (!caps.netem && !caps.htb) {
    console.error('test:hosts cannot run here: the kernel has neither the netem nor the htb qdisc for the slow-network fault');
    return 2;
  }
  const mechanism = shaping.kind === 'netem' ? 'tc netem (delay 50 ms ± 20 ms)'
    : 'tc htb rate shaping at 128 kbit/s per node (this kernel has no netem: CONFIG_NET_SCH_NETEM is unset), not a fixed latency';
  log(`seed ${SEED} (QUORUMLOG_HOSTS_SEED=${SEED} replays the schedule); modes ${MODES.join(', ')}; each fault held ${FAULT_MS} ms; recovery bound ${RECOVERY_BOUND_MS / 1000} s`);
  log(`partitions and loss: nftables in each node's namespace (numgen for random loss); slow network: ${mechanism}`);
  const rng = new Rng(SEED);
  const reports: ModeReport[] = [];
  for (const mode of MODES) reports.push(await runMode(mode, shaping, rng));

  console.log('\n== test:hosts report ==');
  console.log(`seed ${SEED}; slow network by ${mechanism}`);
  for (const r of reports) {
    console.log(`\n${r.mode} mode:`);
    for (const f of r.faults) {
      const rec = f.recoveryMs === null ? `NOT recovered within ${RECOVERY_BOUND_MS / 1000} s` : `recovered in ${(f.recoveryMs / 1000).toFixed(2)} s`;
      console.log(`  ${f.name.padEnd(18)} held ${(f.heldMs / 1000).toFixed(1)} s, ${rec} (bound ${RECOVERY_BOUND_MS / 1000} s): ${f.description}`);
    }
    for (const s of r.summary) console.log(`  ${s}`);
    for (const f of r.failures) console.log(`  FAIL: ${f}`);
  }
  finish();
  const failed = reports.some((r) => r.failures.length > 0);
  console.log(`\ntest:hosts: ${failed ? 'FAIL' : 'PASS'}`);
  return failed ? 1 : 0;
}

main().then((code) => process.exit(code), (e: unknown) => {
  console.error(e);
  process.exit(1);
});
