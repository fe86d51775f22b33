// Linearizability checker for key-value histories (put, get, compare-and-swap),
// used by the real-process cluster tests: concurrent clients record what they
// called and what came back (history.ts), and this decides whether some
// sequential order of those operations, consistent with real time, explains
// every output under a plain register per key.
//
// How it works
// - P-compositionality: a history of independent registers is linearizable iff
//   each key's sub-history is (Herlihy & Wing 1990, locality), so each key is
//   checked on its own, which keeps the searches small.
// - Wing & Gong's search (J. M. Wing, C. Gong, "Testing and verifying
//   concurrent objects", JPDC 17(1), 1993): the operations' call and return
//   events sit in one time-ordered doubly linked list. Walking from the head, a
//   call may be linearized now if the model accepts its output from the current
//   state; it is then lifted out of the list (call and return, dancing-links
//   style) and pushed on a stack. Meeting a return whose operation is not yet
//   linearized means the current prefix is a dead end: pop, restore the list and
//   try the next call. An empty list is a linearization.
// - Lowe's memoization (G. Lowe, "Testing for linearizability", Concurrency and
//   Computation: Practice and Experience 29(4), 2017): the rest of the search
//   depends only on which operations are linearized and on the register's
//   state, so every (linearized-set bitset, state) pair is visited once. The
//   bitset is a Uint32Array with an incremental Zobrist hash; the cache is a
//   hash map of those pairs with exact comparison on a hash match.
// - This is the algorithm of Porcupine (github.com/anishathalye/porcupine,
//   checkSingle), with its tie rule; an unknown outcome is a return at the end
//   of time, as Porcupine's users record a timed-out call.
//
// Timestamps and ties: operation A precedes B in real time iff A.ret < B.call
// (strictly). A return and a call at the same instant are concurrent; so in the
// event list, at equal times, calls sort before returns.
//
// Unknown outcomes (ret = Infinity, output null: timed out, connection lost):
// the operation may have taken effect at any time after its call, or never.
// Its return sits at the end of the list, so the search succeeds as soon as
// every operation with a known outcome is linearized; the unknown ones left
// over "never happened". An unknown get constrains nothing and is dropped. An
// unknown put or cas is only linearized where it changes the state (placing a
// no-op is the same as leaving it out, which is always allowed).
//
// Three reductions beyond Porcupine, all for unknown writes, which otherwise
// stay pending to the end and double the search each (u of them, 2^u):
// - values that no operation reads or expects are one state to the model, so
//   they share one state id;
// - unknown writes of such values with the same kind (and, for cas, the same
//   expected value) are interchangeable, so they are linearized in call order
//   only (symmetry breaking: a linearization using some of them can always use
//   the earliest-called ones instead);
// - dominance in the cache: a configuration with the same known ops and state
//   as a visited one, and a superset of its unknown ops, is pruned (it has
//   fewer options left); children are tried known ops first, unknown ones
//   only when the earliest pending return blocks, so "without" comes first.
// With these, accepting a linearizable history stays fast with hundreds of
// unknown outcomes. Rejecting needs an exhaustive search up to the bad
// operation and is the slow case: with ~10 clients on one key and unknown
// writes whose values some operation does test, it can still exhaust the
// budget, and the result is then timedOut (ok false, no explanation).

/** A client's request on one key. `expected: null` in a cas means "the key is absent". */
export type KvOp =
  | { kind: 'put'; key: string; value: string }
  | { kind: 'get'; key: string }
  | { kind: 'cas'; key: string; expected: string | null; value: string };

/** What came back for a request; `value: null` from a get means the key was absent. */
export type KvOutput =
  | { kind: 'put' }
  | { kind: 'get'; value: string | null }
  | { kind: 'cas'; ok: boolean };

/**
 * One operation of a history.
 * Invariants: `call` is finite; `call <= ret`; `output === null` iff `ret === Infinity`;
 * `output.kind === op.kind` when known.
 */
export interface Operation {
  /** Which client issued it (only for reports: the checker does not require per-client order). */
  client: number;
  op: KvOp;
  /** When the request was sent (any monotonic clock, same for all clients). */
  call: number;
  /** Infinity when the outcome is unknown (timed out, connection lost): it may or may not have taken effect, at any time after call */
  ret: number;
  /** null iff the outcome is unknown */
  output: KvOutput | null;
}

/** The verdict on a whole history. */
export interface CheckResult {
  /** True iff every key's sub-history was proved linearizable. */
  ok: boolean;
  /** How many keys were decided (linearizable, or the one found not to be) before returning. */
  keysChecked: number;
  /** for a failure: the key and a minimal-ish explanation (the longest linearizable prefix found and the ops that could not be placed) */
  failure?: { key: string; explanation: string };
  /** true when the search hit the time or step budget without deciding */
  timedOut: boolean;
}

/** Options of {@link checkLinearizable}. */
export interface CheckOptions {
  /** Each key's value before the history; keys not listed start absent (null). */
  initial?: ReadonlyMap<string, string | null>;
  /** Wall-clock budget for the whole check, in milliseconds; default 10,000. */
  timeBudgetMs?: number;
  /** Budget of search steps for the whole check (mainly for tests); default unlimited. */
  stepBudget?: number;
}

/** A history that breaks the invariants of {@link Operation}; `index` is the offending position. */
export class InvalidHistoryError extends Error {
  override readonly name = 'InvalidHistoryError';
  constructor(message: string, readonly index: number, options?: { cause?: unknown }) {
    super(`history[${index}]: ${message}`, options);
  }
}

const DEFAULT_TIME_BUDGET_MS = 10_000;
/** How many search steps run between two looks at the clock. */
const CLOCK_CHECK_INTERVAL_STEPS = 1024;

/**
 * Decides whether `history` is linearizable with respect to a register per key
 * (put sets, get returns the current value or null, cas sets iff the current
 * value equals `expected`). Throws {@link InvalidHistoryError} on a malformed history.
 * Keys are checked in sorted order; the first key found not linearizable, or
 * the budget running out, ends the check.
 */
export function checkLinearizable(history: readonly Operation[], opts: CheckOptions = {}): CheckResult {
  const byKey = new Map<string, number[]>();
  history.forEach((o, i) => {
    validate(o, i);
    let list = byKey.get(o.op.key);
    if (list === undefined) byKey.set(o.op.key, (list = []));
    list.push(i);
  });
  const budget: Budget = {
    deadlineMs: performance.now() + (opts.timeBudgetMs ?? DEFAULT_TIME_BUDGET_MS),
    stepsLeft: opts.stepBudget ?? Infinity,
  };
  let keysChecked = 0;
  for (const key of [...byKey.keys()].sort()) {
    const initial = opts.initial?.get(key) ?? null;
    const verdict = checkKey(history, byKey.get(key) ?? [], initial, budget);
    if (verdict === 'timeout') return { ok: false, keysChecked, timedOut: true };
    keysChecked++;
    if (verdict !== 'ok') {
      return { ok: false, keysChecked, failure: { key, explanation: verdict.explanation }, timedOut: false };
    }
  }
  return { ok: true, keysChecked, timedOut: false };
}

interface Budget {
  deadlineMs: number;
  stepsLeft: number;
}

function validate(o: Operation, i: number): void {
  const kind = o.op.kind;
  if (kind !== 'put' && kind !== 'get' && kind !== 'cas') throw new InvalidHistoryError(`unknown op kind ${String(kind)}`, i);
  if (typeof o.op.key !== 'string') throw new InvalidHistoryError('key is not a string', i);
  if (!Number.isFinite(o.call)) throw new InvalidHistoryError(`call ${o.call} is not finite`, i);
  if (Number.isNaN(o.ret) || o.ret < o.call) throw new InvalidHistoryError(`ret ${o.ret} is before call ${o.call}`, i);
  if ((o.output === null) !== (o.ret === Infinity)) {
    throw new InvalidHistoryError('output must be null exactly when ret is Infinity (unknown outcome)', i);
  }
  if (o.output !== null && o.output.kind !== kind) {
    throw new InvalidHistoryError(`output of kind ${o.output.kind} for a ${kind}`, i);
  }
}

// Step codes: how an operation moves the register, precomputed per operation.
const PUT = 0; // known put: state := value
const PUT_UNKNOWN = 1; // state := value, placed only where it changes the state
const GET = 2; // known get: requires state == read
const CAS_OK = 3; // requires state == expected; state := value
const CAS_FAIL = 4; // requires state != expected
const CAS_UNKNOWN = 5; // placed only where it succeeds and changes the state

/** Outcome of one key's search: 'ok', 'timeout', or the explanation of a failure. */
type KeyVerdict = 'ok' | 'timeout' | { explanation: string };

/** Cached (bitset, state) pair; `next` chains pairs whose hashes collide. */
interface CacheNode {
  bits: Uint32Array;
  state: number;
  next: CacheNode | null;
}

/** Wing & Gong's search with Lowe's cache over the operations `indices` of one key. */
function checkKey(history: readonly Operation[], indices: readonly number[], initial: string | null, budget: Budget): KeyVerdict {
  // Unknown gets constrain nothing: drop them.
  const ops = indices.filter((i) => !(history[i]!.output === null && history[i]!.op.kind === 'get'));
  const n = ops.length;
  if (n === 0) return 'ok';

  // Register values are interned as small integers. Values that no operation
  // reads or expects are indistinguishable to the model, so they all share
  // state 0 ("unobserved"): fewer states, more cache hits.
  const observed = new Set<string | null>();
  for (const i of ops) {
    const o = history[i]!;
    if (o.output?.kind === 'get') observed.add(o.output.value);
    if (o.op.kind === 'cas') observed.add(o.op.expected);
  }
  const stateIds = new Map<string | null, number>();
  const intern = (v: string | null): number => {
    if (!observed.has(v)) return 0;
    let id = stateIds.get(v);
    if (id === undefined) {
      id = stateIds.size + 1;
      stateIds.set(v, id);
    }
    return id;
  };
  const code = new Uint8Array(n);
  const arg = new Int32Array(n); // value written (put/cas) or read (get)
  const expected = new Int32Array(n); // cas only
  const unknown = new Uint8Array(n);
  for (let k = 0; k < n; k++) {
    const o = history[ops[k]!]!;
    unknown[k] = o.output === null ? 1 : 0;
    switch (o.op.kind) {
      case 'put':
        code[k] = o.output === null ? PUT_UNKNOWN : PUT;
        arg[k] = intern(o.op.value);
        break;
      case 'get':
        code[k] = GET;
        arg[k] = intern(o.output?.kind === 'get' ? o.output.value : null);
        break;
      case 'cas':
        code[k] = o.output === null ? CAS_UNKNOWN : o.output.kind === 'cas' && o.output.ok ? CAS_OK : CAS_FAIL;
        arg[k] = intern(o.op.value);
        expected[k] = intern(o.op.expected);
        break;
    }
  }
  // Unknown writes of unobserved values with the same kind (and, for cas, the
  // same expected value) are interchangeable: any linearization using some of
  // them can use the earliest-called ones instead. So such an op may only be
  // linearized once the one called just before it in its class is; without
  // this, u pending unknown writes make 2^u configurations.
  const previousInClass = new Int32Array(n).fill(-1);
  const classes = new Map<string, number[]>();
  for (let k = 0; k < n; k++) {
    if (unknown[k] === 0 || arg[k] !== 0) continue;
    const key = code[k] === PUT_UNKNOWN ? 'put' : `cas ${expected[k]}`;
    let members = classes.get(key);
    if (members === undefined) classes.set(key, (members = []));
    members.push(k);
  }
  for (const members of classes.values()) {
    members.sort((a, b) => history[ops[a]!]!.call - history[ops[b]!]!.call || a - b);
    for (let m = 1; m < members.length; m++) previousInClass[members[m]!] = members[m - 1]!;
  }
  /** The state after linearizing op k in `state`, or -1 if it cannot (or need not) go there. */
  const step = (k: number, state: number): number => {
    switch (code[k]) {
      case PUT: return arg[k]!;
      case PUT_UNKNOWN: return state === arg[k] ? -1 : arg[k]!;
      case GET: return state === arg[k] ? state : -1;
      case CAS_OK: return state === expected[k] ? arg[k]! : -1;
      case CAS_FAIL: return state !== expected[k] ? state : -1;
      default: return state === expected[k] && state !== arg[k] ? arg[k]! : -1; // CAS_UNKNOWN
    }
  };

  // Event list: node 0 is the head, node 2n+1 the tail; node 1+2k is op k's
  // call, node 2+2k its return. Sorted by time, calls before returns at equal
  // times (a return at t precedes a call at t' only if t < t').
  const HEAD = 0;
  const TAIL = 2 * n + 1;
  const events: number[] = [];
  for (let k = 0; k < n; k++) events.push(1 + 2 * k, 2 + 2 * k);
  const timeOf = (node: number): number => {
    const o = history[ops[(node - 1) >> 1]!]!;
    return (node & 1) === 1 ? o.call : o.ret;
  };
  events.sort((a, b) => timeOf(a) - timeOf(b) || (b & 1) - (a & 1) || a - b);
  const next = new Int32Array(TAIL + 1);
  const prev = new Int32Array(TAIL + 1);
  let last = HEAD;
  for (const node of events) {
    next[last] = node;
    prev[node] = last;
    last = node;
  }
  next[last] = TAIL;
  prev[TAIL] = last;
  const lift = (call: number): void => {
    const ret = call + 1;
    next[prev[call]!] = next[call]!;
    prev[next[call]!] = prev[call]!;
    next[prev[ret]!] = next[ret]!;
    prev[next[ret]!] = prev[ret]!;
  };
  const unlift = (call: number): void => {
    const ret = call + 1;
    prev[next[ret]!] = ret;
    next[prev[ret]!] = ret;
    prev[next[call]!] = call;
    next[prev[call]!] = call;
  };

  // Linearized set as a bitset. The hashes (two 32-bit Zobrist hashes) cover
  // only the ops with known outcomes, so that the cache finds dominating
  // configurations: (K, U', s) dominates (K, U, s) when U' ⊆ U are sets of
  // linearized unknown-outcome ops, since whatever completes the second
  // completes the first (unknown ops never block others, never have to be placed).
  const words = (n + 31) >>> 5;
  const bits = new Uint32Array(words);
  const knownMask = new Uint32Array(words);
  const zobrist1 = new Int32Array(n);
  const zobrist2 = new Int32Array(n);
  let unknownLeft = 0;
  for (let k = 0; k < n; k++) {
    if (unknown[k] === 1) {
      unknownLeft++;
      continue;
    }
    knownMask[k >>> 5]! |= 1 << (k & 31);
    zobrist1[k] = mix32(2 * k + 1);
    zobrist2[k] = mix32(2 * k + 2);
  }
  let hash1 = 0;
  let hash2 = 0;
  const cache = new Map<number, CacheNode>();
  /** Adds (bits, state) to the cache; false if it, or a configuration dominating it, was already there. */
  const cacheAdd = (h1: number, h2: number, state: number): boolean => {
    const key = ((h1 ^ Math.imul(state + 1, 0x9e3779b1)) >>> 0) * 0x200000 + ((h2 ^ Math.imul(state + 1, 0x85ebca77)) & 0x1fffff);
    const first = cache.get(key);
    for (let node = first ?? null; node !== null; node = node.next) {
      if (node.state !== state) continue;
      let dominates = true;
      for (let w = 0; w < words; w++) {
        const cached = node.bits[w]!;
        const now = bits[w]!;
        // Same known ops; the cached unknown ops a subset of ours.
        if ((cached & ~now) !== 0 || (now & ~cached & knownMask[w]!) !== 0) {
          dominates = false;
          break;
        }
      }
      if (dominates) return false;
    }
    cache.set(key, { bits: bits.slice(), state, next: first ?? null });
    return true;
  };

  const stackOp = new Int32Array(n);
  const stackState = new Int32Array(n);
  let depth = 0;
  let state = intern(initial);
  // The deepest dead end met, for the explanation.
  let best: { prefix: number[]; state: number; blocked: number; pending: number[] } | null = null;

  // A configuration's children are tried known ops first (phase 0), then
  // unknown ones (phase 1), so that "without" is explored before "with" and
  // the dominance rule prunes the latter.
  let entry = next[HEAD]!;
  let phase = 0;
  let steps = 0;
  while (true) {
    if (++steps === CLOCK_CHECK_INTERVAL_STEPS) {
      budget.stepsLeft -= steps;
      steps = 0;
      if (budget.stepsLeft < 0 || performance.now() > budget.deadlineMs) return 'timeout';
    }
    if (entry === TAIL) break; // the list is empty: everything is linearized
    const k = (entry - 1) >> 1;
    if ((entry & 1) === 1) {
      // A call: try to linearize op k now.
      if (unknown[k] !== phase) {
        entry = next[entry]!;
        continue;
      }
      const previous = previousInClass[k]!;
      const after = previous >= 0 && (bits[previous >>> 5]! & (1 << (previous & 31))) === 0 ? -1 : step(k, state);
      if (after >= 0) {
        bits[k >>> 5]! ^= 1 << (k & 31);
        const h1 = hash1 ^ zobrist1[k]!;
        const h2 = hash2 ^ zobrist2[k]!;
        if (cacheAdd(h1, h2, after)) {
          stackOp[depth] = k;
          stackState[depth] = state;
          depth++;
          state = after;
          hash1 = h1;
          hash2 = h2;
          unknownLeft -= unknown[k]!;
          lift(entry);
          entry = next[HEAD]!;
          phase = 0;
          continue;
        }
        bits[k >>> 5]! ^= 1 << (k & 31);
      }
      entry = next[entry]!;
    } else {
      // A return of an op not yet linearized.
      if (unknown[k] === 1) break; // only unknown returns are left: every known op is linearized
      if (phase === 0 && (best === null || depth > best.prefix.length)) {
        const pending: number[] = [];
        for (let node = next[HEAD]!; node !== entry; node = next[node]!) if ((node & 1) === 1) pending.push((node - 1) >> 1);
        best = { prefix: Array.from(stackOp.subarray(0, depth)), state, blocked: k, pending };
      }
      if (phase === 0 && unknownLeft > 0) {
        phase = 1;
        entry = next[HEAD]!;
        continue;
      }
      if (depth === 0) {
        budget.stepsLeft -= steps;
        return { explanation: explain(history, ops, initial, best!, step) };
      }
      depth--;
      const top = stackOp[depth]!;
      state = stackState[depth]!;
      bits[top >>> 5]! ^= 1 << (top & 31);
      hash1 ^= zobrist1[top]!;
      hash2 ^= zobrist2[top]!;
      unknownLeft += unknown[top]!;
      phase = unknown[top]!;
      const call = 1 + 2 * top;
      unlift(call);
      entry = next[call]!;
    }
  }
  budget.stepsLeft -= steps;
  return 'ok';
}

/** splitmix32-style finalizer: a well-spread 32-bit value for Zobrist hashing. */
function mix32(x: number): number {
  let z = Math.imul(x, 0x9e3779b9);
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return z ^ (z >>> 16);
}

const PREFIX_SHOWN_MAX = 10;

/** Text for a failure: the longest linearizable prefix found and why none of the pending operations could follow it. */
function explain(
  history: readonly Operation[],
  ops: readonly number[],
  initial: string | null,
  best: { prefix: number[]; state: number; blocked: number; pending: number[] },
  step: (k: number, state: number) => number,
): string {
  const show = (v: string | null): string => (v === null ? 'absent' : JSON.stringify(v));
  const lines: string[] = [];
  const n = ops.length;
  lines.push(`no linearization of the key's ${n} operation(s) (unknown gets dropped) exists; initial value ${show(initial)}.`);
  const shown = best.prefix.slice(-PREFIX_SHOWN_MAX);
  lines.push(`Longest linearizable prefix found: ${best.prefix.length} op(s)${best.prefix.length > shown.length ? `, the last ${shown.length}:` : ':'}`);
  for (const k of shown) lines.push(`  ${describe(history, ops[k]!)}`);
  // The real value after the prefix (the search itself merges values nobody reads).
  let value = initial;
  for (const k of best.prefix) {
    const op = history[ops[k]!]!.op;
    if (op.kind === 'put' || (op.kind === 'cas' && value === op.expected)) value = op.value;
  }
  lines.push(`value after it: ${show(value)}`);
  lines.push(`Could not be placed next: ${describe(history, ops[best.blocked]!)} returned, and no pending op can follow the prefix:`);
  for (const k of best.pending) {
    const o = history[ops[k]!]!;
    let why: string;
    if (step(k, best.state) >= 0) why = 'fits here, but every continuation from it dead-ends';
    else if (o.output === null) why = 'unknown outcome; would change nothing here';
    else if (o.op.kind === 'get') why = `needs value ${show(o.output.kind === 'get' ? o.output.value : null)}`;
    else if (o.op.kind === 'cas') why = o.output.kind === 'cas' && o.output.ok ? `needs value ${show(o.op.expected)}` : `needs a value other than ${show(o.op.expected)}`;
    else why = '';
    lines.push(`  ${describe(history, ops[k]!)}: ${why}`);
  }
  return lines.join('\n');
}

/** One operation for humans: index, client, request, outcome and interval. */
export function describeOperation(o: Operation): string {
  const show = (v: string | null): string => (v === null ? 'absent' : JSON.stringify(v));
  let request: string;
  switch (o.op.kind) {
    case 'put': request = `put(${JSON.stringify(o.op.key)}, ${show(o.op.value)})`; break;
    case 'get': request = `get(${JSON.stringify(o.op.key)})`; break;
    case 'cas': request = `cas(${JSON.stringify(o.op.key)}, ${show(o.op.expected)} -> ${show(o.op.value)})`; break;
  }
  let outcome: string;
  if (o.output === null) outcome = 'unknown';
  else if (o.output.kind === 'get') outcome = show(o.output.value);
  else if (o.output.kind === 'cas') outcome = o.output.ok ? 'ok' : 'failed';
  else outcome = 'ok';
  return `client ${o.client} ${request} -> ${outcome} [${o.call}, ${o.ret === Infinity ? '∞' : o.ret}]`;
}

function describe(history: readonly Operation[], index: number): string {
  return `#${index} ${describeOperation(history[index]!)}`;
}
