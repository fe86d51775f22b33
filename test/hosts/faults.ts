// The nemesis of the multi-host tests: each fault starts (a partition, loss,
// a slow network, kill -9 of nodes), is held for a while by the runner
// (run.ts), then heals (rules removed, killed nodes restarted), after which
// the runner measures how long the cluster takes to recover. Network plans
// come from nemesis.ts and are installed per namespace by netns.ts.

import type { HostCluster, HostNode } from './cluster.js';
import { bridge, majorityMinority, oneWayLoss, randomLoss, ring, type NetPlan, type Rng } from './nemesis.js';
import { setDropRules, shape, unshape, type Shaping } from './netns.js';

/** What a fault may use. */
export interface FaultContext {
  readonly cluster: HostCluster;
  readonly rng: Rng;
  /** The leader when the fault starts, if one was agreed on. */
  readonly leader: HostNode | null;
  /** How the slow network is made on this kernel. */
  readonly shaping: Shaping;
  /** A put through `node` (recorded as an acknowledged write when it succeeds); its latency in ms, or null when it failed. */
  readonly probePut: (node: HostNode, what: string) => Promise<number | null>;
}

/** One kind of fault. */
export interface Fault {
  readonly name: string;
  /** Starts the fault; returns what it did, for the report. */
  start(ctx: FaultContext): Promise<string>;
  /** Ends it: heals the network, restarts killed nodes. */
  heal(ctx: FaultContext): Promise<void>;
}

function installPlan(plan: NetPlan): string {
  for (let i = 0; i < plan.n; i++) setDropRules(i, plan.rules.get(i) ?? []);
  return plan.description;
}

function healNetwork(ctx: FaultContext): void {
  for (let i = 0; i < ctx.cluster.nodes.length; i++) setDropRules(i, []);
}

const leaderIndex = (ctx: FaultContext): number => ctx.leader?.index ?? ctx.rng.int(ctx.cluster.nodes.length);
const indexes = (ctx: FaultContext): number[] => [...ctx.cluster.nodes.keys()];

/** A network fault from a plan; healing removes every node's rules. */
function netFault(name: string, plan: (ctx: FaultContext) => NetPlan): Fault {
  return {
    name,
    start: (ctx) => Promise.resolve(installPlan(plan(ctx))),
    heal: (ctx) => Promise.resolve(healNetwork(ctx)),
  };
}

/** kill -9 of `pick`'s nodes; healing restarts them from their data. */
function killFault(name: string, pick: (ctx: FaultContext) => number[]): Fault {
  let killed: HostNode[] = [];
  return {
    name,
    async start(ctx) {
      killed = pick(ctx).map((i) => ctx.cluster.nodes[i] as HostNode);
      await Promise.all(killed.map((n) => n.kill9()));
      return `kill -9 ${killed.map((n) => n.id + (n === ctx.leader ? ' (leader)' : '')).join(', ')}; restarted on heal`;
    },
    heal() {
      for (const n of killed) n.start();
      killed = [];
      return Promise.resolve();
    },
  };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

/** Slows every node's outgoing traffic (netem delay, or HTB shaping where the kernel has no netem) and reports what writes cost before and during. */
function slowNetwork(): Fault {
  const sample = async (ctx: FaultContext, label: string): Promise<string> => {
    const node = ctx.leader ?? ctx.cluster.nodes[0] as HostNode;
    const ms: number[] = [];
    for (let k = 0; k < 3; k++) {
      const t = await ctx.probePut(node, `${label}-${k}`);
      if (t !== null) ms.push(t);
    }
    return ms.length === 0 ? 'all 3 failed' : `${median(ms).toFixed(0)} ms`;
  };
  return {
    name: 'slow-network',
    async start(ctx) {
      const before = await sample(ctx, 'before-shaping');
      for (const i of indexes(ctx)) shape(i, ctx.shaping);
      const during = await sample(ctx, 'during-shaping');
      const how = ctx.shaping.kind === 'netem'
        ? `tc netem delay ${ctx.shaping.delayMs} ms ± ${ctx.shaping.jitterMs} ms on every node's egress`
        : `tc htb ${ctx.shaping.rateKbit} kbit/s on every node's egress (rate shaping: queueing delay under load, not a fixed latency; this kernel has no netem)`;
      return `${how}; median write through the leader: ${before} before, ${during} shaped`;
    },
    heal(ctx) {
      for (const i of indexes(ctx)) unshape(i);
      return Promise.resolve();
    },
  };
}

/**
 * Hook: membership changes during faults (issue 7's membership part, which
 * is being built in src/core). When `quorumlog member add|remove|promote`
 * exists, return a Fault here that, during a partition, removes a voter, adds
 * it back as a learner with a wiped data directory and promotes it; the
 * runner then puts it in the schedule. Until then it returns null and every
 * report says the step was skipped.
 */
export function membershipChangeFault(): Fault | null {
  return null;
}

/** Every fault of the schedule, in a fixed order (the runner shuffles them with the seed). */
export function allFaults(): Fault[] {
  const faults: Fault[] = [
    netFault('majority-minority', (ctx) => {
      const l = leaderIndex(ctx);
      const other = ctx.rng.shuffle(indexes(ctx).filter((i) => i !== l))[0] as number;
      return majorityMinority(ctx.cluster.nodes.length, [l, other]); // the leader in the minority
    }),
    netFault('bridge', (ctx) => bridge(ctx.rng.shuffle(indexes(ctx)))),
    netFault('ring', (ctx) => ring(ctx.rng.shuffle(indexes(ctx)))),
    netFault('one-way-loss', (ctx) => oneWayLoss(ctx.cluster.nodes.length, leaderIndex(ctx), 60)),
    netFault('random-loss', (ctx) => randomLoss(ctx.cluster.nodes.length, 20)),
    killFault('kill-leader', (ctx) => [leaderIndex(ctx)]),
    killFault('kill-two', (ctx) => ctx.rng.shuffle(indexes(ctx)).slice(0, 2)),
    slowNetwork(),
  ];
  const membership = membershipChangeFault();
  if (membership !== null) faults.push(membership);
  return faults;
}
