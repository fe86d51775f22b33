// Quorum queues under kill -9 (issue 6's queue test), in both replication
// modes: three real node processes (test-node.ts) over TCP with durable
// storage; while the leader is killed with SIGKILL and restarted again and
// again, a publisher publishes (every fifth message a "poison" one that the
// consumer always nacks) and a consumer consumes through the typed client,
// reconnecting when its stream fails. Afterwards:
// - every confirmed message was delivered at least once (poison ones
//   reached the dead-letter queue);
// - first deliveries came in message-id order (order per queue for the
//   messages that were not redelivered);
// - dead-lettering happened exactly at the limit: no delivery past it, every
//   poison message dead-lettered with reason deliveryLimit, and no other
//   message dead-lettered; the counts of the two queues agree.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fetchStatus } from '../../cli/cluster.js';
import { QueueClient, type Consumer, type Delivery } from '../../client/queue.js';
import { NODE_DEFAULTS, type MemberConfig, type NodeConfig } from '../config.js';

const ENTRY = join(dirname(fileURLToPath(import.meta.url)), 'test-node.js');
const LIMIT = 3;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** A base with `count` free ports above it, below the ephemeral range (a restarted node must get its ports back). */
async function freeBase(count: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 10_000 + Math.floor(Math.random() * 22_000);
    const ok = await Promise.all(Array.from({ length: count }, (_, i) => portFree(base + i)));
    if (ok.every((x) => x)) return base;
  }
  throw new Error('no free port range');
}

class ProcNode {
  child: ChildProcess | null = null;
  constructor(readonly member: MemberConfig, readonly configPath: string, readonly queuePort: number, readonly logPath: string) {}

  get address(): string {
    return `127.0.0.1:${this.queuePort}`;
  }

  async start(): Promise<void> {
    const fd = openSync(this.logPath, 'a');
    const child = spawn(process.execPath, [ENTRY, this.configPath, String(this.queuePort)], { stdio: ['ignore', 'pipe', fd] });
    closeSync(fd);
    live.add(child);
    this.child = child;
    child.once('exit', () => {
      live.delete(child);
      if (this.child === child) this.child = null;
    });
    await new Promise<void>((resolve, reject) => {
      let out = '';
      child.stdout?.on('data', (b: Buffer) => {
        out += b.toString();
        if (out.includes('ready')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`${this.member.id} exited with ${code} before it was ready (log: ${this.logPath})`)));
    });
  }

  async kill9(): Promise<void> {
    const c = this.child;
    if (c === null) return;
    const exited = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill('SIGKILL');
    await exited;
  }
}

async function startCluster(mode: 'push' | 'pull', dir: string): Promise<ProcNode[]> {
  const ids = ['k1', 'k2', 'k3'];
  const base = await freeBase(ids.length * 4);
  const members: MemberConfig[] = ids.map((id, i) => ({
    id, role: 'voter', peer: { host: '127.0.0.1', port: base + i }, client: { host: '127.0.0.1', port: base + 3 + i },
    metrics: { host: '127.0.0.1', port: base + 6 + i },
  }));
  const nodes = ids.map((id, i) => {
    const config: NodeConfig = {
      ...NODE_DEFAULTS, clusterId: `kill9-${mode}`, nodeId: id, mode, dataDir: join(dir, id, 'data'), members, tickMs: 10,
      electionTimeoutMinTicks: 15, electionTimeoutMaxTicks: 30, heartbeatIntervalTicks: 3, fetchMaxWaitTicks: 5,
      requestTimeoutMs: 2000, snapshotEveryEntries: 100, logLevel: 'info',
    };
    mkdirSync(join(dir, id), { recursive: true });
    const configPath = join(dir, id, 'config.json');
    writeFileSync(configPath, JSON.stringify(config));
    return new ProcNode(members[i] as MemberConfig, configPath, base + 9 + i, join(dir, id, 'node.log'));
  });
  await Promise.all(nodes.map((n) => n.start()));
  return nodes;
}

async function leaderOf(nodes: readonly ProcNode[], timeoutMs = 15_000): Promise<ProcNode> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    for (const n of nodes) {
      if (n.child === null) continue;
      const s = await fetchStatus(n.member, 300);
      if (s?.role === 'leader') return n;
    }
    if (Date.now() > end) throw new Error('no leader');
    await sleep(50);
  }
}

for (const mode of ['push', 'pull'] as const) {
  describe(`quorum queues under kill -9 (${mode})`, () => {
    const dir = mkdtempSync(join(tmpdir(), `quorumlog-queue-kill9-${mode}-`));
    let nodes: ProcNode[] = [];
    let failed = true;
    after(async () => {
      await Promise.all(nodes.map((n) => n.kill9()));
      if (!failed && process.env['QUEUE_KEEP_LOGS'] === undefined) rmSync(dir, { recursive: true, force: true });
      else console.error(`node logs kept in ${dir}`);
    });

    it('delivers every confirmed message, in order, and dead-letters exactly at the limit', { timeout: 180_000 }, async (t) => {
      nodes = await startCluster(mode, dir);
      await leaderOf(nodes);
      const client = new QueueClient({ endpoints: nodes.map((n) => n.address), timeoutMs: 3000, retryForMs: 30_000 });
      await client.declare('orders.dead');
      await client.declare('orders', { deliveryLimit: LIMIT, deadLetterQueue: 'orders.dead' });

      const confirmed = new Set<string>();
      const delivered = new Map<string, number>();
      const firstIds: number[] = [];
      let maxCount = 0;
      let publishing = true;
      const publisher = (async () => {
        for (let i = 0; publishing; i++) {
          const body = i % 5 === 4 ? `poison-${i}` : `m${i}`;
          try {
            await client.publish('orders', body);
            confirmed.add(body);
          } catch {
            // outcome unknown: not confirmed
          }
        }
      })();

      let consuming = true;
      const current: { orders: Consumer | null; dead: Consumer | null } = { orders: null, dead: null };
      const consume = async (queue: 'orders' | 'orders.dead', onDelivery: (d: Delivery) => Promise<void>): Promise<void> => {
        while (consuming) {
          let c: Consumer;
          try {
            c = await client.consume(queue, { prefetch: 5 });
          } catch {
            await sleep(50);
            continue;
          }
          current[queue === 'orders' ? 'orders' : 'dead'] = c;
          try {
            for (;;) {
              const r = await c.next();
              if (r.done === true) break;
              await onDelivery(r.value);
            }
          } catch {
            // the stream failed (node killed, consumer released): consume again
          }
        }
      };
      const deadLettered = new Map<string, { reason: string; queue: string }>();
      const consumers = [
        consume('orders', async (d) => {
          const body = Buffer.from(d.body).toString('utf8');
          delivered.set(body, (delivered.get(body) ?? 0) + 1);
          maxCount = Math.max(maxCount, d.deliveryCount);
          if (d.deliveryCount === 1) firstIds.push(d.messageId);
          if (body.startsWith('poison-')) await d.nack().catch(() => undefined);
          else await d.ack().catch(() => undefined); // a lost ack only means a redelivery
        }),
        consume('orders.dead', async (d) => {
          deadLettered.set(Buffer.from(d.body).toString('utf8'), { reason: d.deadLetter?.reason ?? '', queue: d.deadLetter?.queue ?? '' });
          await d.ack().catch(() => undefined);
        }),
      ];

      for (let round = 0; round < 4; round++) {
        await sleep(500);
        const leader = await leaderOf(nodes);
        await leader.kill9();
        await sleep(200);
        await leader.start();
        await leaderOf(nodes);
      }
      await sleep(500);
      publishing = false;
      await publisher;

      const normal = [...confirmed].filter((b) => !b.startsWith('poison-'));
      const poison = [...confirmed].filter((b) => b.startsWith('poison-'));
      const end = Date.now() + 60_000;
      while (normal.some((b) => !delivered.has(b)) || poison.some((b) => !deadLettered.has(b))) {
        if (Date.now() > end) {
          assert.fail(`not delivered: ${normal.filter((b) => !delivered.has(b)).slice(0, 5).join(', ')}; not dead-lettered: ${poison.filter((b) => !deadLettered.has(b)).slice(0, 5).join(', ')}`);
        }
        await sleep(50);
      }
      consuming = false;
      current.orders?.cancel();
      current.dead?.cancel();
      await Promise.all(consumers);
      const acksOfPoison = [...deadLettered.keys()].filter((b) => !b.startsWith('poison-')).length;

      const [orders] = await client.stats('orders');
      const [dead] = await client.stats('orders.dead');
      t.diagnostic(`${confirmed.size} confirmed (${poison.length} poison), ${delivered.size} delivered, ${[...delivered.values()].filter((n) => n > 1).length} more than once; ` +
        `orders: ${JSON.stringify(orders)}`);
      assert.ok(confirmed.size > 30, `only ${confirmed.size} confirmed`);
      for (let i = 1; i < firstIds.length; i++) assert.ok((firstIds[i] as number) > (firstIds[i - 1] as number), `first deliveries out of order at ${i}`);
      assert.ok(maxCount <= LIMIT, `a delivery count of ${maxCount} passed the limit ${LIMIT}`);
      for (const b of poison) assert.deepEqual(deadLettered.get(b), { reason: 'deliveryLimit', queue: 'orders' }, b);
      assert.equal(acksOfPoison, 0, 'only poison messages are dead-lettered');
      assert.equal(orders?.deadLettered, dead?.enqueued, 'what left orders arrived in orders.dead');
      assert.equal(orders?.dropped, 0);
      client.close();
      failed = false;
    });
  });
}
