// The network faults of the multi-host tests, as data: which node drops
// which other nodes' packets, and with what probability. Pure and seeded, so
// a run's schedule is replayable from its seed; netns.ts turns a plan into
// one nftables table per node namespace (an input chain: a node "does not
// hear" a peer when it drops that peer's packets on arrival). Clients (the
// test process, on the bridge) are never cut off: as in Jepsen, the nemesis
// partitions the nodes from each other, not from their clients.

/** A seeded PRNG (mulberry32): the nemesis's only source of randomness. */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** A shuffled copy. */
  shuffle<T>(xs: readonly T[]): T[] {
    const out = [...xs];
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [out[i], out[j]] = [out[j] as T, out[i] as T];
    }
    return out;
  }
}

/** One drop rule in a node's input chain: packets from `from` (node indexes) are dropped with `lossPercent` % probability (100: all). */
export interface DropRule {
  readonly from: readonly number[];
  /** 1-100. */
  readonly lossPercent: number;
}

/**
 * A network fault: for each node index, the rules of its input chain.
 * Invariants: node indexes are in [0, n); a node never drops its own packets;
 * every rule has a non-empty `from` and 1 <= lossPercent <= 100.
 */
export interface NetPlan {
  readonly n: number;
  readonly rules: ReadonlyMap<number, readonly DropRule[]>;
  /** What it is, for the report, with node indexes as names n1..nN. */
  readonly description: string;
}

/** A plan that breaks the invariants of {@link NetPlan}. */
export class NetPlanError extends Error {
  override readonly name = 'NetPlanError';
}

const nodeName = (i: number): string => `n${i + 1}`;
const names = (xs: readonly number[]): string => `{${[...xs].sort((a, b) => a - b).map(nodeName).join(',')}}`;

/** Complete partition into groups: a node hears only the nodes of its own group. Every node must be in exactly one group. */
export function partition(n: number, groups: readonly (readonly number[])[], description?: string): NetPlan {
  const seen = new Set<number>();
  for (const g of groups) for (const i of g) {
    if (i < 0 || i >= n || seen.has(i)) throw new NetPlanError(`node index ${i} is out of range or in two groups`);
    seen.add(i);
  }
  if (seen.size !== n) throw new NetPlanError(`the groups cover ${seen.size} of ${n} nodes`);
  const rules = new Map<number, DropRule[]>();
  for (const g of groups) {
    const others = [...Array(n).keys()].filter((i) => !g.includes(i));
    if (others.length === 0) continue;
    for (const i of g) rules.set(i, [{ from: others, lossPercent: 100 }]);
  }
  return checked({ n, rules, description: description ?? `partition ${groups.map(names).join(' | ')}` });
}

/** Majority/minority: `minority` (fewer than half) against the rest. */
export function majorityMinority(n: number, minority: readonly number[]): NetPlan {
  if (minority.length === 0 || minority.length * 2 >= n) throw new NetPlanError(`a minority of ${n} has 1..${Math.ceil(n / 2) - 1} nodes, not ${minority.length}`);
  const majority = [...Array(n).keys()].filter((i) => !minority.includes(i));
  return partition(n, [minority, majority], `majority/minority: ${names(minority)} cut off from ${names(majority)}`);
}

/**
 * Jepsen's bridge: `order` split into two halves around its middle node, the
 * bridge, which hears (and is heard by) everyone; the halves do not hear each
 * other. With 5 nodes: {a,b} - c - {d,e}; both {a,b,c} and {c,d,e} are majorities.
 */
export function bridge(order: readonly number[]): NetPlan {
  const n = order.length;
  if (n < 3 || n % 2 === 0) throw new NetPlanError(`a bridge needs an odd number of nodes >= 3, not ${n}`);
  const mid = (n - 1) / 2;
  const left = order.slice(0, mid);
  const right = order.slice(mid + 1);
  const rules = new Map<number, DropRule[]>();
  for (const i of left) rules.set(i, [{ from: right, lossPercent: 100 }]);
  for (const i of right) rules.set(i, [{ from: left, lossPercent: 100 }]);
  return checked({ n, rules, description: `bridge: ${names(left)} - ${nodeName(order[mid] as number)} - ${names(right)}` });
}

/**
 * Jepsen's majorities ring: nodes placed on a ring in `order`, each hearing
 * itself and its nearest neighbours, so that each sees a majority but no two
 * see the same one. With 5 nodes a node hears its two neighbours.
 */
export function ring(order: readonly number[]): NetPlan {
  const n = order.length;
  if (n < 5) throw new NetPlanError(`a majorities ring needs at least 5 nodes, not ${n}`);
  const reach = Math.floor(n / 2) / 2; // neighbours on each side: a majority including itself
  const side = Math.ceil(reach);
  const rules = new Map<number, DropRule[]>();
  order.forEach((node, pos) => {
    const heard = new Set<number>([node]);
    for (let d = 1; d <= side; d++) {
      heard.add(order[(pos + d) % n] as number);
      heard.add(order[(pos - d + n) % n] as number);
    }
    rules.set(node, [{ from: order.filter((x) => !heard.has(x)), lossPercent: 100 }]);
  });
  return checked({ n, rules, description: `ring ${order.map(nodeName).join('-')}-${nodeName(order[0] as number)}: each node hears only its neighbours` });
}

/** One-way loss: every other node drops `lossPercent` % of the packets coming from `from`; `from` hears everyone. */
export function oneWayLoss(n: number, from: number, lossPercent: number): NetPlan {
  const rules = new Map<number, DropRule[]>();
  for (let i = 0; i < n; i++) if (i !== from) rules.set(i, [{ from: [from], lossPercent }]);
  return checked({ n, rules, description: `one-way loss: ${lossPercent}% of ${nodeName(from)}'s packets to the others dropped (it hears them all)` });
}

/** Random loss everywhere: each node drops `lossPercent` % of the packets from each other node. */
export function randomLoss(n: number, lossPercent: number): NetPlan {
  const rules = new Map<number, DropRule[]>();
  for (let i = 0; i < n; i++) rules.set(i, [{ from: [...Array(n).keys()].filter((j) => j !== i), lossPercent }]);
  return checked({ n, rules, description: `random loss: ${lossPercent}% of the packets between any two nodes dropped` });
}

/** Which node hears which: true when `to` receives at least some of `from`'s packets. */
export function hears(plan: NetPlan, to: number, from: number): boolean {
  return !(plan.rules.get(to) ?? []).some((r) => r.lossPercent === 100 && r.from.includes(from));
}

/**
 * The nftables script that installs `rules` in a node's namespace, replacing
 * any table of ours there (`table` then `delete table` makes the delete
 * succeed whether or not it existed; nft applies the file atomically).
 */
export function nftScript(table: string, rules: readonly DropRule[], address: (i: number) => string): string {
  const lines = [`table inet ${table}`, `delete table inet ${table}`];
  if (rules.length === 0) return lines.join('\n') + '\n';
  lines.push(`table inet ${table} {`, '  chain input {', '    type filter hook input priority 0; policy accept;');
  for (const r of rules) {
    const set = `ip saddr { ${r.from.map(address).join(', ')} }`;
    lines.push(r.lossPercent >= 100 ? `    ${set} drop` : `    ${set} numgen random mod 100 lt ${r.lossPercent} drop`);
  }
  lines.push('  }', '}');
  return lines.join('\n') + '\n';
}

function checked(p: NetPlan): NetPlan {
  for (const [i, rs] of p.rules) {
    if (i < 0 || i >= p.n) throw new NetPlanError(`rules for node index ${i} of ${p.n}`);
    for (const r of rs) {
      if (r.from.length === 0) throw new NetPlanError(`${nodeName(i)}: a rule with no source`);
      if (r.from.includes(i)) throw new NetPlanError(`${nodeName(i)} would drop its own packets`);
      if (!(r.lossPercent >= 1 && r.lossPercent <= 100)) throw new NetPlanError(`${nodeName(i)}: loss ${r.lossPercent}% is not 1-100`);
    }
  }
  return p;
}
