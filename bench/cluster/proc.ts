// CPU time and memory of processes, read from /proc (Linux), so that a
// benchmark can charge each server process and the load generator with what
// they used, as `ps` would, without sampling.

import { existsSync, readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second for /proc/<pid>/stat (USER_HZ; 100 on Linux x86 and arm). */
const CLK_TCK = 100;

/** User + system CPU seconds a process has used so far, or NaN if it is gone. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command (which may contain spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return NaN;
  }
}

/** Resident memory in bytes, or NaN if the process is gone. */
export function rssBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m === null ? NaN : Number(m[1]) * 1024;
  } catch {
    return NaN;
  }
}

/** Measures CPU seconds used by each pid over an interval: call `stop()` at its end. */
export function cpuMeter(pids: Readonly<Record<string, number>>): { stop(): Record<string, number> } {
  const start = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuSeconds(pid)]));
  return {
    stop: () => Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuSeconds(pid) - (start[k] ?? NaN)])),
  };
}

/** The fields of a /proc/<pid>/stat or /proc/<pid>/task/<tid>/stat line that the meters use. */
export interface ProcStat {
  readonly ppid: number;
  /** User + system CPU in clock ticks (USER_HZ). */
  readonly cpuTicks: number;
  /** Start time after boot in clock ticks: with the pid, it names a process even if its pid is reused. */
  readonly startTicks: number;
}

/** Parses a stat line (the command, field 2, may hold spaces and parentheses: fields resume after the last ')'). */
export function parseStat(line: string): ProcStat {
  const f = line.slice(line.lastIndexOf(')') + 2).split(' ');
  // f[0] is field 3 (state): ppid is field 4, utime 14, stime 15, starttime 22.
  return { ppid: Number(f[1]), cpuTicks: Number(f[11]) + Number(f[12]), startTicks: Number(f[19]) };
}

function readStat(path: string): ProcStat | null {
  try {
    return parseStat(readFileSync(path, 'utf8'));
  } catch {
    return null; // gone
  }
}

/** CPU seconds one thread has used so far (`tid` = `pid` is the main thread), or NaN if it is gone. */
export function threadCpuSeconds(pid: number, tid = pid): number {
  const s = readStat(`/proc/${pid}/task/${tid}/stat`);
  return s === null ? NaN : s.cpuTicks / CLK_TCK;
}

/** Every pid in `parentOf` whose chain of parents reaches `root` (not `root` itself), in breadth-first order. */
export function descendantsIn(root: number, parentOf: ReadonlyMap<number, number>): number[] {
  const children = new Map<number, number[]>();
  for (const [pid, ppid] of parentOf) {
    const list = children.get(ppid);
    if (list === undefined) children.set(ppid, [pid]);
    else list.push(pid);
  }
  const out: number[] = [];
  const seen = new Set<number>([root]);
  for (let queue = [root]; queue.length > 0;) {
    const next: number[] = [];
    for (const p of queue) {
      for (const c of children.get(p) ?? []) {
        if (seen.has(c)) continue;
        seen.add(c);
        out.push(c);
        next.push(c);
      }
    }
    queue = next;
  }
  return out;
}

/** Whether this kernel lists a thread's children in /proc/<pid>/task/<tid>/children (CONFIG_PROC_CHILDREN). */
let childrenFiles: boolean | null = null;

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const text = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
      if (text !== '') out.push(...text.split(' ').map(Number));
    }
  } catch {
    // the process (or a thread) went away meanwhile: what was read stands
  }
  return out;
}

/** Every live process's parent pid, from one scan of /proc. */
export function parentPids(): Map<number, number> {
  const parentOf = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = readStat(`/proc/${name}/stat`);
    if (s !== null) parentOf.set(Number(name), s.ppid);
  }
  return parentOf;
}

/**
 * The pids of every live descendant of `root` (children, their children, ...;
 * `root` itself excluded); empty when it has none or is gone. Reads
 * /proc/<pid>/task/<tid>/children where the kernel offers it, else the parent
 * pid of every process in /proc (pass `parentOf` from {@link parentPids} to
 * share one scan between several roots).
 */
export function descendantPids(root: number, parentOf?: ReadonlyMap<number, number>): number[] {
  if (parentOf !== undefined || needsScan()) return descendantsIn(root, parentOf ?? parentPids());
  const out: number[] = [];
  for (let queue = [root]; queue.length > 0;) {
    const next = queue.flatMap(childrenOf);
    out.push(...next);
    queue = next;
  }
  return out;
}

/** Whether finding descendants needs a scan of /proc (the kernel has no children files). */
function needsScan(): boolean {
  if (childrenFiles === null) childrenFiles = existsSync(`/proc/${process.pid}/task/${process.pid}/children`);
  return !childrenFiles;
}

/** What one sample saw of one root process: its main thread, the whole process, and each live descendant. */
export interface TreeSampleEntry {
  /** CPU seconds of the root's main thread (/proc/<pid>/task/<pid>/stat). */
  readonly mainThreadSeconds: number;
  /** CPU seconds of the root process, all its threads (/proc/<pid>/stat; children not included). */
  readonly processSeconds: number;
  /** CPU seconds of each live descendant process (all its threads), keyed by `pid@startTicks`. */
  readonly descendants: ReadonlyMap<string, number>;
}

/** One sample of several process trees, taken at `atMs` (performance.now()). */
export interface TreeSample {
  readonly atMs: number;
  readonly roots: Readonly<Record<string, TreeSampleEntry>>;
}

/** Samples the process tree under each root pid now. */
export function sampleTrees(roots: Readonly<Record<string, number>>): TreeSample {
  const atMs = performance.now();
  const out: Record<string, TreeSampleEntry> = {};
  const parentOf = needsScan() ? parentPids() : undefined; // one scan for every root
  for (const [name, pid] of Object.entries(roots)) {
    const whole = readStat(`/proc/${pid}/stat`);
    const descendants = new Map<string, number>();
    for (const d of descendantPids(pid, parentOf)) {
      const s = readStat(`/proc/${d}/stat`);
      if (s !== null) descendants.set(`${d}@${s.startTicks}`, s.cpuTicks / CLK_TCK);
    }
    out[name] = {
      mainThreadSeconds: threadCpuSeconds(pid), processSeconds: whole === null ? NaN : whole.cpuTicks / CLK_TCK, descendants,
    };
  }
  return { atMs, roots: out };
}

/** CPU one root's tree used between two samples, split as the scaling report lists it. */
export interface TreeCpu {
  /** Wall seconds between the two samples. */
  readonly seconds: number;
  readonly mainThreadSeconds: number;
  /** The root process's threads other than the main one (libuv's pool, V8's helpers, ...). */
  readonly otherThreadsSeconds: number;
  /** Every descendant process (e.g. protocol workers), all their threads. */
  readonly descendantsSeconds: number;
  /** Descendant processes seen in the interval. */
  readonly descendantCount: number;
  /** The root and its descendants: main + other threads + descendants. */
  readonly totalSeconds: number;
}

/**
 * The CPU each root's tree used over [samples[from].atMs, samples[to].atMs].
 * A descendant first seen after `from` was born in the interval and counts
 * from zero; one that exited before `to` counts up to its last sample (what
 * it used after that sample is lost: at most one sampling period).
 */
export function treeCpuBetween(samples: readonly TreeSample[], from: number, to: number): Record<string, TreeCpu> {
  const a = samples[from];
  const b = samples[to];
  if (a === undefined || b === undefined || to < from) throw new RangeError(`no samples [${from}, ${to}] among ${samples.length}`);
  const out: Record<string, TreeCpu> = {};
  for (const name of Object.keys(a.roots)) {
    const ra = a.roots[name] as TreeSampleEntry;
    const rb = b.roots[name];
    const first = new Map<string, number>(ra.descendants);
    const last = new Map<string, number>();
    for (let i = from; i <= to; i++) {
      for (const [k, v] of samples[i]?.roots[name]?.descendants ?? []) {
        if (!first.has(k)) first.set(k, 0);
        last.set(k, v);
      }
    }
    let descendantsSeconds = 0;
    for (const [k, v] of last) descendantsSeconds += v - (first.get(k) ?? 0);
    const mainThreadSeconds = (rb?.mainThreadSeconds ?? NaN) - ra.mainThreadSeconds;
    const processSeconds = (rb?.processSeconds ?? NaN) - ra.processSeconds;
    out[name] = {
      seconds: (b.atMs - a.atMs) / 1000, mainThreadSeconds, otherThreadsSeconds: processSeconds - mainThreadSeconds,
      descendantsSeconds, descendantCount: last.size, totalSeconds: processSeconds + descendantsSeconds,
    };
  }
  return out;
}

/**
 * Samples the trees under `roots` every `everyMs` until `stop()`, which
 * takes a last sample and returns them all (for treeCpuBetween).
 */
export function treeSampler(roots: Readonly<Record<string, number>>, everyMs: number): { stop(): TreeSample[] } {
  const samples: TreeSample[] = [sampleTrees(roots)];
  const timer = setInterval(() => samples.push(sampleTrees(roots)), everyMs);
  return {
    stop: () => {
      clearInterval(timer);
      samples.push(sampleTrees(roots));
      return samples;
    },
  };
}

/** Context switches of a thread or process, from the two lines of its /proc status file. */
export interface Switches {
  /** It blocked (epoll, a futex, a read) and was woken again: a wake-up. */
  readonly voluntary: number;
  /** The scheduler took the CPU from it while it could run. */
  readonly involuntary: number;
}

/** Parses `voluntary_ctxt_switches` and `nonvoluntary_ctxt_switches` from a /proc/…/status text. */
export function parseSwitches(status: string): Switches {
  const v = /^voluntary_ctxt_switches:\s+(\d+)$/m.exec(status);
  const nv = /^nonvoluntary_ctxt_switches:\s+(\d+)$/m.exec(status);
  if (v === null || nv === null) throw new Error('no context switch counts in this status text');
  return { voluntary: Number(v[1]), involuntary: Number(nv[1]) };
}

/**
 * Reads `/proc/<p>/task/<tid>/<file>` of every thread of `pid` and of every
 * process below it, parses each into numbers and sums them field by field;
 * processes and threads that are gone (or end under it) count zero.
 */
function sumOverThreads<K extends string>(pid: number, file: string, parse: (text: string) => Record<K, number>, zero: Record<K, number>): Record<K, number> {
  const sum = { ...zero };
  for (const p of [pid, ...descendantPids(pid)]) {
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${p}/task`);
    } catch {
      continue; // gone
    }
    for (const tid of tids) {
      let text: string;
      try {
        text = readFileSync(`/proc/${p}/task/${tid}/${file}`, 'utf8');
      } catch {
        continue; // the thread ended
      }
      const x = parse(text);
      for (const k of Object.keys(sum) as K[]) sum[k] += x[k];
    }
  }
  return sum;
}

/**
 * The context switches of every thread of `pid` and of every process below
 * it, summed; zero when it is gone. A thread that ends takes its counts with
 * it, so compare two readings only over processes whose threads live on
 * (Node's main thread, libuv's pool and V8's workers do; so do Go's).
 */
export function treeSwitches(pid: number): Switches {
  return sumOverThreads(pid, 'status', parseSwitches, { voluntary: 0, involuntary: 0 });
}

/** A thread's time on a CPU and runnable but waiting for one, from its /proc schedstat line. */
export interface SchedTimes {
  readonly runNs: number;
  /** Runnable, on a run queue, while other threads had the CPUs. */
  readonly waitNs: number;
}

/** Parses a /proc/…/schedstat line: nanoseconds run, nanoseconds waited on a run queue, time slices. */
export function parseSchedstat(line: string): SchedTimes {
  const m = /^(\d+) (\d+) (\d+)\s*$/.exec(line);
  if (m === null) throw new Error(`not a schedstat line: ${JSON.stringify(line)}`);
  return { runNs: Number(m[1]), waitNs: Number(m[2]) };
}

/**
 * The run and run-queue times of every thread of `pid` and of every process
 * below it, summed; zero when it is gone (the same caveat as treeSwitches).
 */
export function treeSchedTimes(pid: number): SchedTimes {
  return sumOverThreads(pid, 'schedstat', parseSchedstat, { runNs: 0, waitNs: 0 });
}
