// Test support for the checker: generates histories that are linearizable by
// construction, by running concurrent simulated clients against a real
// (atomic) register per key, and corrupts one read in a way that provably
// breaks linearizability. Driven by a tape of choices so that fast-check can
// shrink a failing history by shrinking the tape.

import type { KvOp, KvOutput, Operation } from './checker.js';

/** Shape of a simulated run. */
export interface SimulationOptions {
  clients: number;
  keys: number;
  /** Chance, in [0, 1), that an operation's outcome is lost (recorded as unknown). */
  unknownRate?: number;
  /**
   * Where a cas takes its expected value when it does not take the current one:
   * 'held', any value the key has held (default); 'read', a value some get returned.
   */
  casExpects?: 'held' | 'read';
  /** Stop starting operations once this many were started; default unlimited. */
  maxOperations?: number;
}

/**
 * Runs the simulation driven by `tape` (each number picks among choices; once
 * the tape is used up every client finishes its operation). Every event gets
 * a timestamp; time advances by 0 or 1 per event, so ties occur.
 * Written values are unique (`c<client>.<n>`), so a stale read is provably stale.
 */
export function simulateRegister(tape: readonly number[], opts: SimulationOptions): Operation[] {
  let pos = 0;
  const pick = (n: number): number => (pos < tape.length ? tape[pos++]! % n : 0);
  const unknownPer1000 = Math.round((opts.unknownRate ?? 0.1) * 1000);
  const lost = (): boolean => pick(1000) < unknownPer1000;
  const keys = Array.from({ length: opts.keys }, (_, i) => `k${i}`);
  const register = new Map<string, string | null>(keys.map((k) => [k, null]));
  // Values each key has held: a cas expects the current value or one of these, like a client acting on an older read.
  const held = new Map<string, (string | null)[]>(keys.map((k) => [k, [null]]));
  const read = new Map<string, (string | null)[]>(keys.map((k) => [k, [null]]));
  const history: Operation[] = [];
  type Client = { phase: 'idle' } | { phase: 'called' | 'applied'; index: number; output: KvOutput | null };
  const clients: Client[] = Array.from({ length: opts.clients }, () => ({ phase: 'idle' }));
  let time = 0;
  let seq = 0;
  const now = (): number => {
    const t = time;
    time += pick(3) === 0 ? 0 : 1;
    return t;
  };
  const apply = (op: KvOp): KvOutput => {
    const current = register.get(op.key) ?? null;
    switch (op.kind) {
      case 'put':
        register.set(op.key, op.value);
        held.get(op.key)!.push(op.value);
        return { kind: 'put' };
      case 'get':
        read.get(op.key)!.push(current);
        return { kind: 'get', value: current };
      case 'cas':
        if (current !== op.expected) return { kind: 'cas', ok: false };
        register.set(op.key, op.value);
        held.get(op.key)!.push(op.value);
        return { kind: 'cas', ok: true };
    }
  };
  const advance = (c: number, finishing: boolean): void => {
    const client = clients[c]!;
    if (client.phase === 'idle') {
      if (finishing) return;
      const key = keys[pick(keys.length)]!;
      const value = `c${c}.${seq++}`;
      const candidates = (opts.casExpects === 'read' ? read : held).get(key)!;
      let op: KvOp;
      switch (pick(3)) {
        case 0: op = { kind: 'put', key, value }; break;
        case 1: op = { kind: 'get', key }; break;
        default: {
          const expected = pick(2) === 0 ? (register.get(key) ?? null) : candidates[pick(candidates.length)]!;
          op = { kind: 'cas', key, expected, value };
        }
      }
      history.push({ client: c, op, call: now(), ret: Infinity, output: null });
      clients[c] = { phase: 'called', index: history.length - 1, output: null };
    } else if (client.phase === 'called') {
      if (lost()) {
        clients[c] = { phase: 'idle' }; // lost before it took effect: never happens
      } else {
        clients[c] = { phase: 'applied', index: client.index, output: apply(history[client.index]!.op) };
      }
    } else {
      if (!lost()) {
        const o = history[client.index]!;
        o.ret = now();
        o.output = client.output;
      } // else: took effect, but the reply was lost
      clients[c] = { phase: 'idle' };
    }
  };
  const maxOperations = opts.maxOperations ?? Infinity;
  while (pos < tape.length && history.length < maxOperations) advance(pick(opts.clients), false);
  for (let c = 0; c < opts.clients; c++) {
    advance(c, true);
    advance(c, true);
  }
  return history;
}

/**
 * Returns a copy of `history` in which the known get at `history[index]` reads
 * a value that is current at no point of its interval in any linearization:
 * preferably a stale one (its only writer returned before another effective
 * write to the key began, which itself returned before the read began), else
 * one never written. Written values must be unique (as simulateRegister makes them).
 */
export function corruptRead(history: readonly Operation[], index: number): Operation[] {
  const read = history[index]!;
  if (read.op.kind !== 'get' || read.output === null) throw new Error(`history[${index}] is not a known get`);
  const key = read.op.key;
  const writesOfKey = history.filter((o) => o.op.key === key && o.op.kind !== 'get');
  // Effective writes that completed before the read began.
  const overwrites = writesOfKey.filter((o) => o.ret < read.call && (o.op.kind === 'put' || (o.output?.kind === 'cas' && o.output.ok)));
  const stale: (string | null)[] = [];
  if (overwrites.length > 0) stale.push(null); // initial (absent) value, never written again: no deletes
  for (const w of writesOfKey) {
    if (w.op.kind === 'get' || w.ret === Infinity) continue;
    if (overwrites.some((o) => o !== w && w.ret < o.call)) stale.push(w.op.value);
  }
  const current = read.output.kind === 'get' ? read.output.value : null;
  const choices = stale.filter((v) => v !== current);
  const value = choices.length > 0 ? choices[(index * 7919) % choices.length]! : 'never-written';
  const copy = history.map((o) => ({ ...o }));
  copy[index] = { ...read, output: { kind: 'get', value } };
  return copy;
}
