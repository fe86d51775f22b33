// The main job until the cluster issue lands: a narrated run of a simulated
// cluster, in both replication modes. Five voters and one observer elect a
// leader, replicate and commit, lose the leader (crash), elect another, take
// more writes, and bring the old leader back, which catches up. The run is
// deterministic (seeded) and drives the real core tick by tick; after each
// tick every message in flight is delivered, so one tick holds many round trips.

import type { RaftNode } from '../src/core/node.js';
import { Cluster, type Mode } from './scenarios/harness.js';

const VOTERS = 5;
const OBSERVERS = 1;

function status(c: Cluster): string {
  const rows: string[] = [];
  for (const [id, n] of c.nodes) {
    const core: RaftNode | null = n.core;
    rows.push(core === null
      ? `    ${id.padEnd(3)} down`
      : `    ${id.padEnd(3)} ${core.role.kind.padEnd(12)} term ${String(core.term).padStart(2)}  last ${String(core.log.lastIndex()).padStart(3)}` +
        `  commit ${String(core.log.commit).padStart(3)}  applied ${String(n.appliedIndex).padStart(3)}`);
  }
  return rows.join('\n');
}

function countTypes(c: Cluster, since: number): string {
  const counts = new Map<string, number>();
  for (const s of c.sent) if (s.tick >= since) counts.set(s.msg.type, (counts.get(s.msg.type) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1]).map(([t, k]) => `${t} ${k}`).join(', ');
}

function demo(mode: Mode): void {
  console.log(`\n=== ${mode} replication: ${VOTERS} voters + ${OBSERVERS} observer ===`);
  console.log(mode === 'push'
    ? '  The leader sends AppendEntries and heartbeats to every follower and observer.'
    : '  Followers and the observer Fetch from the leader; an idle fetch is parked (long poll).');
  const c = new Cluster({ mode, voters: VOTERS, observers: OBSERVERS, seed: 7 });
  const ticksPerRound = 1;

  const t1 = c.runUntil(() => c.leader() !== null, 200, 'first election');
  const first = c.leader() as string;
  console.log(`\n[tick ${c.ticks}] ${first} elected leader of term ${c.core(first).term} after ${t1 * ticksPerRound} ticks`);

  const payloads = Array.from({ length: 20 }, (_, i) => `set k${i}=v${i}`);
  c.propose(first, ...payloads);
  const t2 = c.runUntil(() => [...c.nodes.values()].every((n) => n.applied.length >= 20), 100, 'replication');
  console.log(`[tick ${c.ticks}] 20 writes proposed on ${first}, committed and applied on all ${VOTERS + OBSERVERS} nodes in ${t2} ticks`);
  const idleFrom = c.ticks;
  c.run(50);
  console.log(`[tick ${c.ticks}] 50 idle ticks cost: ${countTypes(c, idleFrom)}`);
  console.log(status(c));

  c.crash(first);
  const crashedAt = c.ticks;
  console.log(`\n[tick ${c.ticks}] leader ${first} crashes (kill -9: its disk stays, the rest is gone)`);
  c.runUntil(() => c.leader() !== null && c.leader() !== first, 300, 'failover');
  const second = c.leader() as string;
  console.log(`[tick ${c.ticks}] ${second} elected leader of term ${c.core(second).term}, ${c.ticks - crashedAt} ticks after the crash`);

  c.propose(second, 'set after=failover', 'set k0=changed');
  c.runUntil(() => [...c.nodes.values()].every((n) => n.core === null || n.applied.length >= 22), 100, 'writes after failover');
  console.log(`[tick ${c.ticks}] 2 more writes committed under ${second}; ${first} is still down`);
  console.log(status(c));

  c.restart(first);
  console.log(`\n[tick ${c.ticks}] ${first} restarts from its disk (term ${c.core(first).term}, log to ${c.core(first).log.lastIndex()})`);
  c.runUntil(() => c.node(first).applied.length >= 22, 200, 'catch-up');
  console.log(`[tick ${c.ticks}] ${first} rejoined as ${c.core(first).role.kind} and caught up`);
  console.log(status(c));

  const states = new Set([...c.nodes.values()].map((n) => n.applied.join('|')));
  console.log(`\n  every node applied the same ${c.node(first).applied.length} writes in the same order: ${states.size === 1 ? 'yes' : 'NO'}`);
  if (states.size !== 1) process.exitCode = 1;
}

for (const mode of ['push', 'pull'] as const) demo(mode);
console.log('\nNext: `npm test` runs the scenario tests and the simulator; `npm run sim -- --seeds 1000` runs more seeds.');
