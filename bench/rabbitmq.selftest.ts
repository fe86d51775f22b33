// The RabbitMQ side of the AMQP benchmark against a real 3-node cluster of
// Debian's rabbitmq-server (installed by scripts/rabbitmq-deps.sh when
// missing; this needs root, as the other system packages do): that the
// cluster forms with every node running, that the generator's queue is a
// quorum queue with a member on every node, that a short load through every
// node loses nothing (each confirmed message delivered, none nacked) and
// leaves no queue behind, and that stop() leaves no process, port or
// directory. One cluster start (about 20 s on 2 cores) serves all the checks.
//
// Not part of `npm test` (its name does not end in .test.ts): it installs
// rabbitmq-server and Erlang and starts three Erlang VMs, which CI's time
// budget cannot carry. Run it when the benchmark's RabbitMQ side changes:
//   npm run build && node --test dist/bench/rabbitmq.selftest.js
// Ports: AMQP 5691-5693, distribution 25691-25693, epmd 6141, CLI
// 25694-25699, apart from the benchmark's own.

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { declareQueue, deleteQueue, runAmqpLoad, AMQP_LOAD_DEFAULTS } from './amqp-load.js';
import { descendantPids } from './cluster/proc.js';
import { portOpen, RabbitMqCluster, runningNodesOf, type RabbitMqPorts } from './rabbitmq.js';

const PORTS: RabbitMqPorts = { amqpBasePort: 5691, distBasePort: 25691, epmdPort: 6141, ctlDistPortMin: 25694, ctlDistPortMax: 25699 };

let cluster: RabbitMqCluster | null = null;

before(async () => {
  cluster = await RabbitMqCluster.start({ ports: PORTS, namePrefix: 'ql-rabbit-test' });
});

after(async () => {
  await cluster?.stop();
});

function running(): RabbitMqCluster {
  if (cluster === null) throw new Error('the cluster did not start');
  return cluster;
}

test('runningNodesOf reads cluster_status JSON and refuses output without the list', () => {
  assert.deepEqual(runningNodesOf('{"running_nodes":["a@localhost","b@localhost"],"disk_nodes":[]}'), ['a@localhost', 'b@localhost']);
  assert.throws(() => runningNodesOf('{"disk_nodes":[]}'));
});

test('the cluster forms: node 1 lists all three nodes running, and each serves AMQP on its port', async () => {
  const c = running();
  assert.deepEqual((await c.runningNodes()).sort(), ['ql-rabbit-test1@localhost', 'ql-rabbit-test2@localhost', 'ql-rabbit-test3@localhost']);
  assert.deepEqual(c.urls, [5691, 5692, 5693].map((p) => `amqp://guest:guest@127.0.0.1:${p}`));
  for (const p of [5691, 5692, 5693]) assert.equal(await portOpen(p), true, `AMQP port ${p}`);
  assert.ok(c.startTimes.totalMs >= c.startTimes.bootMs + c.startTimes.joinMs - 1, JSON.stringify(c.startTimes));
});

test('the generator declares a quorum queue with a member on every node', async () => {
  const c = running();
  const queue = `ql-test-declare-${Date.now()}`;
  await declareQueue(c.urls[1] as string, queue);
  try {
    const out = await c.ctl(c.nodes[0] as (typeof c.nodes)[number], ['list_queues', 'name', 'type', 'members', '--formatter', 'json']);
    const rows = JSON.parse(out) as { name: string; type: string; members: string[] }[];
    const q = rows.find((r) => r.name === queue);
    assert.ok(q !== undefined, `queue ${queue} not listed: ${out}`);
    assert.equal(q.type, 'quorum');
    assert.deepEqual([...q.members].sort(), c.nodes.map((n) => n.name).sort());
  } finally {
    await deleteQueue(c.urls[0] as string, queue);
  }
});

test('a short load through every node: every confirmed message is delivered, none nacked, and the queue is gone afterwards', async () => {
  const c = running();
  const queue = `ql-test-load-${Date.now()}`;
  const r = await runAmqpLoad({
    ...AMQP_LOAD_DEFAULTS, urls: c.urls, queue, publishers: 3, consumers: 2, window: 4, procs: 2, warmupMs: 300, durationMs: 1500, drainMs: 10_000,
  });
  assert.deepEqual(r.errors, []);
  assert.ok(r.confirmed > 0 && r.confirmedPerSecond > 0, `confirmed ${r.confirmed}`);
  assert.equal(r.nacked, 0);
  assert.equal(r.published, r.confirmed, 'every publish was confirmed before the run ended');
  assert.equal(r.undelivered, 0);
  assert.ok(r.delivered >= r.confirmed, `delivered ${r.delivered} < confirmed ${r.confirmed}`);
  assert.equal(r.confirmLatencyMs.count, Math.round(r.confirmedPerSecond * r.seconds));
  assert.ok(r.confirmLatencyMs.p50 > 0 && r.deliverLatencyMs.p50 > 0);
  assert.equal(r.generator.length, 2);
  for (const g of r.generator) assert.ok(g.percentOfCore > 0 && g.percentOfCore < 400, JSON.stringify(g));
  // The generator deleted its queue.
  const out = await c.ctl(c.nodes[0] as (typeof c.nodes)[number], ['list_queues', 'name', '--formatter', 'json']);
  assert.equal((JSON.parse(out) as { name: string }[]).some((q) => q.name === queue), false, `queue ${queue} still exists`);
});

test('stop() ends every node process and its children, closes every port and removes the directory', async () => {
  const c = running();
  const roots = Object.values(c.pids());
  assert.equal(roots.length, 3);
  const all = [...roots, ...roots.flatMap((p) => descendantPids(p))];
  assert.ok(all.length >= 6, `expected beam.smp under each node script, found ${all.length} processes`);
  await c.stop();
  cluster = null;
  // A zombie (state Z: exited, not yet reaped by whoever adopted it) counts as gone.
  const alive = all.filter((pid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
    } catch {
      return false;
    }
  });
  assert.deepEqual(alive, []);
  for (const p of [5691, 5692, 5693, 25691, 25692, 25693, 6141]) assert.equal(await portOpen(p), false, `port ${p} still open`);
  assert.equal(existsSync(c.dir), false);
});
