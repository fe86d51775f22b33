// Quorum queues on a real three-node cluster in this process (real runtimes,
// TCP between nodes, durable storage in a temp dir, small snapshots so that
// restarted nodes install them), in both replication modes: while the leader
// is stopped and restarted again and again, a publisher publishes and a
// consumer consumes through the typed client. Afterwards: every confirmed
// message was delivered at least once or is itself in the dead-letter queue;
// first deliveries came in message-id order; no delivery count passed the
// limit; the replicas hold byte-identical queue state; and the consumers of
// a node that stays down are released by the leader's liveness rule.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { QueueClient, type Consumer } from '../../client/queue.js';
import { attachQueue, QueueStateMachine } from '../../services/queue/state-machine.js';
import { NODE_DEFAULTS, type MemberConfig, type NodeConfig } from '../config.js';
import { startNode, type RunningNode } from '../node-process.js';
import { startQueueRuntime, type QueueRuntime } from './runtime-backend.js';
import { addQueueService, type QueueService } from './server.js';

const logger = pino({ level: process.env['QUEUE_TEST_LOG'] ?? 'silent' });
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Whether nothing listens on 127.0.0.1:`port` now. */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

const taken = new Set<number>();

/**
 * A port for a node to listen on later (and again after a restart), below
 * the ephemeral range (32768+ here): a port the kernel handed out for
 * port 0 may be taken meanwhile by any outgoing connection of the tests
 * running beside this one (CI saw EADDRINUSE so), while one below it can
 * only collide with another listener that checked it free in the same
 * instant. test/cluster/harness.ts picks its ports the same way.
 */
async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = 10_000 + Math.floor(Math.random() * 22_000);
    if (taken.has(port) || !(await portFree(port))) continue;
    taken.add(port);
    return port;
  }
  throw new Error('no free port below the ephemeral range');
}

const TICK_MS = 10;
const ELECTION_MAX_TICKS = 30;

class QNode {
  running: RunningNode | null = null;
  machine: QueueStateMachine | null = null;
  private rt: QueueRuntime | null = null;
  private service: QueueService | null = null;
  private server: grpc.Server | null = null;
  constructor(readonly config: NodeConfig, readonly queuePort: number) {}

  get id(): string {
    return this.config.nodeId;
  }
  get address(): string {
    return `127.0.0.1:${this.queuePort}`;
  }
  get isLeader(): boolean {
    return this.running?.runtime.isLeader() === true;
  }

  async start(): Promise<void> {
    let machine = new QueueStateMachine();
    const running = await startNode(this.config, {
      logger, registerServices: (s) => {
        machine = attachQueue(s); // the node's own, when it runs the queue service already
      },
    });
    const rt = startQueueRuntime(running.runtime, machine, {
      peers: this.config.members.filter((m) => m.role === 'voter').map((m) => m.id), downAfterMs: ELECTION_MAX_TICKS * TICK_MS, logger,
    });
    const server = new grpc.Server();
    this.service = addQueueService(server, rt.backend, { logger, reconcileIntervalMs: 200 });
    await new Promise<void>((resolve, reject) => server.bindAsync(this.address, grpc.ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve())));
    this.running = running;
    this.machine = machine;
    this.rt = rt;
    this.server = server;
  }

  async stop(): Promise<void> {
    this.service?.close();
    this.server?.forceShutdown();
    this.rt?.stop();
    await this.running?.stop();
    this.running = null;
    this.rt = null;
    this.service = null;
    this.server = null;
  }
}

async function startCluster(mode: 'push' | 'pull', dir: string): Promise<QNode[]> {
  const ids = ['q1', 'q2', 'q3'];
  const members: MemberConfig[] = [];
  for (const id of ids) {
    members.push({
      id, role: 'voter', peer: { host: '127.0.0.1', port: await freePort() }, client: { host: '127.0.0.1', port: await freePort() },
      metrics: { host: '127.0.0.1', port: await freePort() },
    });
  }
  const nodes: QNode[] = [];
  for (const id of ids) {
    const config: NodeConfig = {
      ...NODE_DEFAULTS, clusterId: `queue-${mode}`, nodeId: id, mode, dataDir: join(dir, id), members, tickMs: TICK_MS,
      electionTimeoutMinTicks: 15, electionTimeoutMaxTicks: ELECTION_MAX_TICKS, heartbeatIntervalTicks: 3, fetchMaxWaitTicks: 5,
      requestTimeoutMs: 2000, snapshotEveryEntries: 40, logLevel: 'warn',
    };
    nodes.push(new QNode(config, await freePort()));
  }
  await Promise.all(nodes.map((n) => n.start()));
  return nodes;
}

async function leaderOf(nodes: readonly QNode[], timeoutMs = 10_000): Promise<QNode> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const l = nodes.find((n) => n.isLeader);
    if (l !== undefined) return l;
    if (Date.now() > end) throw new Error('no leader');
    await sleep(20);
  }
}

async function waitFor(cond: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

for (const mode of ['push', 'pull'] as const) {
  describe(`quorum queues on a ${mode} cluster`, () => {
    const dir = mkdtempSync(join(tmpdir(), `quorumlog-queue-${mode}-`));
    let nodes: QNode[] = [];
    after(async () => {
      await Promise.all(nodes.map((n) => n.stop()));
      rmSync(dir, { recursive: true, force: true });
    });

    it('loses no confirmed message while the leader is stopped and restarted', { timeout: 120_000 }, async (t) => {
      nodes = await startCluster(mode, dir);
      await leaderOf(nodes);
      const client = new QueueClient({ endpoints: nodes.map((n) => n.address), timeoutMs: 3000, retryForMs: 30_000 });
      await client.declare('orders.dead');
      await client.declare('orders', { deliveryLimit: 4, deadLetterQueue: 'orders.dead' });

      // Dead-lettered on purpose by the consumer (nack with discard), so that the dead-letter check below always has one to find.
      const discarded = 'discarded-on-purpose';
      await client.publish('orders', discarded);
      const confirmed = new Set<string>();
      const delivered = new Map<string, number>();
      const firstIds: number[] = [];
      let maxCount = 0;
      let stop = false;
      const publisher = (async () => {
        for (let i = 0; !stop; i++) {
          const body = `m${i}`;
          try {
            await client.publish('orders', body);
            confirmed.add(body);
          } catch {
            // outcome unknown: not confirmed; it may still be delivered
          }
        }
      })();
      let consumerDone = false;
      let current: Consumer | null = null;
      const consumer = (async () => {
        while (!consumerDone) {
          try {
            current = await client.consume('orders', { prefetch: 5 });
          } catch {
            await sleep(50);
            continue;
          }
          try {
            for await (const d of current) {
              const body = Buffer.from(d.body).toString('utf8');
              delivered.set(body, (delivered.get(body) ?? 0) + 1);
              maxCount = Math.max(maxCount, d.deliveryCount);
              if (d.deliveryCount === 1) firstIds.push(d.messageId);
              if (body === discarded) await d.nack({ discard: true }).catch(() => undefined); // lost: redelivered, discarded again
              else await d.ack().catch(() => undefined); // a lost ack only means a redelivery
            }
          } catch {
            // the stream failed (node stopped, consumer released): consume again
          }
        }
      })();

      for (let round = 0; round < 3; round++) {
        await sleep(400);
        const leader = await leaderOf(nodes);
        await leader.stop();
        await sleep(300);
        await leader.start();
        await leaderOf(nodes);
      }
      await sleep(300);
      stop = true;
      await publisher;
      const drained = (): boolean => {
        if ([...confirmed].every((b) => delivered.has(b))) return true;
        const s = nodes.find((n) => n.isLeader)?.machine?.queueStats('orders');
        return s !== undefined && s.ready === 0 && s.unacked === 0;
      };
      await waitFor(drained, `every confirmed message delivered (${[...confirmed].filter((b) => !delivered.has(b)).length} of ${confirmed.size} missing)`, 30_000);
      consumerDone = true;
      (current as Consumer | null)?.cancel();
      await consumer;

      const redelivered = [...delivered.values()].filter((n) => n > 1).length;
      const snapshots = nodes.reduce((n, x) => n + (x.running?.runtime.metrics.snapshotsInstalled ?? 0) + (x.running?.runtime.metrics.snapshotsTaken ?? 0), 0);
      t.diagnostic(`${confirmed.size} confirmed, ${delivered.size} delivered, ${redelivered} more than once, ${firstIds.length} first deliveries; snapshots taken or installed since the last restarts: ${snapshots}`);
      assert.ok(confirmed.size > 20, `only ${confirmed.size} messages confirmed`);
      // A confirmed message that was never delivered must be in the dead-letter queue itself: read that queue's
      // messages and match their bodies against the missing ones (a count of dead-lettered messages says nothing of which).
      const dead = (await client.stats('orders.dead'))[0];
      assert.ok(dead !== undefined, 'orders.dead has no stats');
      const deadBodies: string[] = [];
      if (dead.enqueued > 0) {
        const dc = await client.consume('orders.dead', { prefetch: 50 });
        const reading = (async () => {
          for await (const d of dc) {
            assert.equal(d.deadLetter?.queue, 'orders', 'a message in orders.dead that was not dead-lettered from orders');
            deadBodies.push(Buffer.from(d.body).toString('utf8'));
            await d.ack();
          }
        })();
        await waitFor(() => deadBodies.length >= dead.enqueued, `the ${dead.enqueued} dead-lettered messages (${deadBodies.length} read)`, 10_000);
        dc.cancel();
        await reading;
      }
      const deadSet = new Set(deadBodies);
      assert.ok(deadSet.has(discarded), `the message discarded on purpose is not in orders.dead (${deadBodies.length} there)`);
      const missing = [...confirmed].filter((b) => !delivered.has(b));
      const unexplained = missing.filter((b) => !deadSet.has(b));
      t.diagnostic(`${missing.length} confirmed messages never delivered, all of them among the ${deadBodies.length} dead-lettered`);
      assert.deepEqual(unexplained.slice(0, 10), [], `${unexplained.length} confirmed messages neither delivered nor dead-lettered`);
      for (let i = 1; i < firstIds.length; i++) assert.ok((firstIds[i] as number) > (firstIds[i - 1] as number), `first deliveries out of order at ${i}`);
      assert.ok(maxCount <= 4, `a message was delivered ${maxCount} times; the limit is 4`);

      // The replicas agree byte for byte once they have applied the same log.
      await waitFor(() => {
        const idx = nodes.map((n) => n.running?.runtime.appliedIndex ?? -1);
        return idx.every((i) => i === idx[0]);
      }, 'replicas to converge');
      const snaps = nodes.map((n) => Buffer.from(n.machine?.snapshot() ?? new Uint8Array()).toString('hex'));
      assert.equal(new Set(snaps).size, 1, 'the replicas\' queue states differ');
      client.close();
    });

    it('releases the consumers of a node that stays down (leader\'s liveness rule)', { timeout: 60_000 }, async () => {
      const leader = await leaderOf(nodes);
      const follower = nodes.find((n) => n !== leader) as QNode;
      const onFollower = new QueueClient({ endpoints: [follower.address], timeoutMs: 3000, retryForMs: 10_000 });
      const anywhere = new QueueClient({ endpoints: [leader.address], timeoutMs: 3000, retryForMs: 10_000 });
      await anywhere.declare('held');
      await anywhere.publish('held', 'payload');
      const c = await onFollower.consume('held', { prefetch: 1 });
      const first = await c.next();
      assert.equal(first.done, false);
      await follower.stop();
      await waitFor(() => leader.machine?.queueStats('held')?.consumers === 0, 'the leader to release the stopped node\'s consumer', 10_000);
      const again = await anywhere.consume('held');
      const d = await again.next();
      assert.equal(d.done === false && d.value.deliveryCount, 2);
      again.cancel();
      onFollower.close();
      anywhere.close();
      await follower.start();
    });
  });
}
