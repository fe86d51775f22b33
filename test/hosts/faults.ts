// The nemesis of the multi-host tests: each fault starts (a partition, loss,
// a slow network, kill -9 of nodes), is held for a while by the runner
// (run.ts), then heals (rules removed, killed nodes restarted), after which
// the runner measures how long the cluster takes to recover. Network plans
// come from nemesis.ts and are installed per namespace by netns.ts.

import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runMember } from '../../src/cli/member.js';
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
 * Membership changes during the run (docs/MEMBERSHIP.md): a voter other than
 * the leader is removed (`quorumlog member remove`), killed, its data
 * directory wiped, and added back as a learner (`quorumlog member add
 * --learner`, its config now listing itself as an observer, as a joining
 * node must); healing promotes it (`quorumlog member promote`, retried while
 * it catches up). The runner then checks, as after every fault, that every
 * node takes a write. (Not under a partition: the change itself is the fault.)
 */
export function membershipChangeFault(): Fault | null {
  let target: HostNode | null = null;
  const endpoints = (ctx: FaultContext): string[] => ctx.cluster.nodes.filter((n) => n !== target).map((n) => n.endpoint);
  const member = async (ctx: FaultContext, verb: 'remove' | 'add' | 'promote', args: Parameters<typeof runMember>[2]): Promise<string | null> => {
    const out: string[] = [];
    const code = await runMember(verb, { endpoints: endpoints(ctx), timeoutMs: 10_000 }, args, (l) => out.push(l));
    return code === 0 ? null : out.join(' ');
  };
  return {
    name: 're-add-voter',
    async start(ctx) {
      const l = leaderIndex(ctx);
      const node = ctx.cluster.nodes[ctx.rng.shuffle(indexes(ctx).filter((i) => i !== l))[0] as number] as HostNode;
      target = node;
      const removed = await member(ctx, 'remove', { name: node.id });
      if (removed !== null) {
        target = null;
        return `could not remove ${node.id}: ${removed}`;
      }
      await node.kill9();
      rmSync(join(ctx.cluster.dir, node.id, 'data'), { recursive: true, force: true });
      const cfg = JSON.parse(readFileSync(node.configPath, 'utf8')) as { members: { id: string; role: string }[] };
      for (const m of cfg.members) if (m.id === node.id) m.role = 'observer';
      writeFileSync(node.configPath, JSON.stringify(cfg, null, 2) + '\n');
      const added = await member(ctx, 'add', { name: node.id, peer: `${node.member.peer.host}:${node.member.peer.port}`, client: node.endpoint, learner: true });
      node.start();
      return added === null ? `removed ${node.id}, wiped its data directory, added it back as a learner` : `removed ${node.id}; adding it back failed: ${added}`;
    },
    async heal(ctx) {
      const node = target;
      if (node === null) return;
      const deadline = Date.now() + 15_000;
      while (Date.now() < deadline && (await member(ctx, 'promote', { name: node.id })) !== null) await new Promise((r) => setTimeout(r, 200));
      target = null;
    },
  };
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
