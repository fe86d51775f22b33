// The nemesis of the multi-host tests: each fault starts (a partition, loss,
// a slow network, kill -9 of nodes), is held for a while by the runner
// (run.ts), then heals (rules removed, killed nodes restarted), after which
// the runner measures how long the cluster takes to recover. Network plans
// come from nemesis.ts and are installed per namespace by netns.ts.

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { CLI_PATH } from '../../src/cli/cluster.js';
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

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
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

/** Runs `quorumlog member ARGS --endpoints E` from the test's namespace; its exit code and output. */
function memberCli(args: readonly string[], endpoints: readonly string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI_PATH, 'member', ...args, '--endpoints', endpoints.join(',')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    child.once('exit', (code) => resolve({ code: code ?? 1, out: out.trim() }));
  });
}

/** How `node` stands in the cluster's member list (asked through `endpoints`): absent, a learner, a voter; null when no endpoint answered. */
async function memberStanding(node: string, endpoints: readonly string[]): Promise<'absent' | 'learner' | 'voter' | null> {
  const r = await memberCli(['list', '--json'], endpoints);
  if (r.code !== 0) return null;
  try {
    const m = (JSON.parse(r.out) as { name: string; isLearner: boolean }[]).find((x) => x.name === node);
    return m === undefined ? 'absent' : m.isLearner ? 'learner' : 'voter';
  } catch {
    return null;
  }
}

/**
 * Retries a member verb on `node` until the cluster is where the verb takes
 * it, or `ms` passes. A change may be refused while the previous one
 * commits, or a promotion until the node has caught up; and with packets
 * dropped, a change can commit after its client gave up, so a retry may be
 * told it was done already ("member not found", "can only promote a learner
 * member", "already exists"): the member list decides, not the exit code.
 */
async function memberUntil(args: readonly string[], endpoints: readonly string[], ms: number): Promise<string> {
  const [verb, node] = args as [string, string];
  const goal = verb === 'remove' ? 'absent' : verb === 'promote' ? 'voter' : 'learner';
  const deadline = performance.now() + ms;
  let last = '';
  while (performance.now() < deadline) {
    const r = await memberCli(args, endpoints);
    if (r.code === 0) return r.out;
    last = r.out;
    const standing = await memberStanding(node, endpoints);
    if (standing === goal) return `${last} (the member list shows ${node} ${goal}: an earlier attempt took)`;
    await sleep(300);
  }
  throw new Error(`quorumlog member ${args.join(' ')}: still failing after ${ms / 1000} s: ${last}`);
}

/** Waits until `node`'s log contains `text`; whether it did within `ms`. */
async function logShows(node: HostNode, text: string, ms: number): Promise<boolean> {
  const deadline = performance.now() + ms;
  while (performance.now() < deadline) {
    try {
      if (readFileSync(node.logPath, 'utf8').includes(text)) return true;
    } catch { /* not yet written */ }
    await sleep(200);
  }
  return false;
}

/** What a wiped node's log says (the one clear error), and what the check looks for. */
export const LOST_DISK_LOG_TEXT = "but the cluster's configuration records directory";

/**
 * Membership changes during faults, on a lost disk: a follower is killed and
 * its data directory deleted, then restarted as it was (it must refuse to
 * vote and say why); then, while 20% of every node's packets are dropped,
 * it is removed with `quorumlog member remove`, wiped again, added back with
 * `quorumlog member add --learner`, restarted as an observer and promoted
 * once it has caught up. Healing lifts the loss.
 */
export function membershipChangeFault(): Fault {
  return {
    name: 'replace-lost-disk',
    async start(ctx) {
      const leader = ctx.leader;
      const followers = ctx.cluster.nodes.filter((n) => n !== leader);
      const node = ctx.rng.shuffle(followers)[0] as HostNode;
      const endpoints = ctx.cluster.nodes.filter((n) => n !== node).map((n) => n.endpoint);
      const steps: string[] = [];
      await node.kill9();
      node.wipeData();
      const logBytes = (() => { try { return readFileSync(node.logPath).length; } catch { return 0; } })();
      node.start();
      const refused = await logShows(node, LOST_DISK_LOG_TEXT, 10_000);
      const line = refused ? readFileSync(node.logPath, 'utf8').slice(logBytes).split('\n').find((l) => l.includes(LOST_DISK_LOG_TEXT)) ?? '' : '';
      const said = ((): string => {
        try {
          return String((JSON.parse(line) as { msg?: unknown }).msg ?? line);
        } catch {
          return line;
        }
      })();
      if (!refused) throw new Error(`${node.id} restarted on an empty data directory without reporting the lost disk (log: ${node.logPath})`);
      steps.push(`kill -9 ${node.id}, data directory deleted, restarted: it refused to vote and said "${said.slice(0, 160)}…"`);
      installPlan(randomLoss(ctx.cluster.nodes.length, 20));
      steps.push('20% loss on every node');
      await memberUntil(['remove', node.id], endpoints, 20_000);
      steps.push(`member remove ${node.id}`);
      await node.kill9();
      node.wipeData();
      node.setOwnRole('observer');
      const m = node.member;
      await memberUntil(['add', node.id, '--learner', '--peer', `${m.peer.host}:${m.peer.port}`, '--client', `${m.client.host}:${m.client.port}`], endpoints, 20_000);
      node.start();
      steps.push(`member add ${node.id} --learner, restarted on an empty directory as an observer`);
      await memberUntil(['promote', node.id], endpoints, 30_000);
      steps.push(`member promote ${node.id} once caught up`);
      return steps.join('; ');
    },
    heal(ctx) {
      healNetwork(ctx);
      return Promise.resolve();
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
  faults.push(membershipChangeFault());
  return faults;
}
