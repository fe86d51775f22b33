// RabbitMQ's own clients against a real 3-node cluster (real processes,
// TCP, durable storage), in push and pull mode:
// - amqplib (npm) and pika (Debian's python3-pika, test/cluster/amqp-pika.py)
//   run the scenarios through a follower: publish with confirms,
//   consume with prefetch, ack, nack/requeue, reject to a dead-letter
//   exchange, basic.get, topic routing, a 406 on a mismatched redeclare, a
//   404 on a missing queue, heartbeats;
// - kill -9 of the leader in the middle of a publish-and-consume run, then
//   its restart: clients reconnect to another node and every confirmed
//   message is delivered or dead-lettered; none is lost.
// The same queues stay reachable by the gRPC queue API (checked on stats).

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import amqp from 'amqplib';
import type { ChannelModel } from 'amqplib';
import { QueueClient } from '../../src/client/queue.js';
import { publishConfirmed, refusal } from '../../src/server/amqp/test-util.js';
import { TestCluster, type TestNode } from './harness.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
// The Python script sits beside this file in the source tree (tsc does not copy it to dist/); run by Debian's python3, which has python3-pika.
const PIKA_SCRIPT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'test', 'cluster', 'amqp-pika.py');

/** Runs the pika scenarios against `url`; resolves with what the script printed (one JSON object). */
function runPika(url: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    execFile('/usr/bin/python3', [PIKA_SCRIPT, url], { timeout: 60_000 }, (err, stdout, stderr) => {
      if (err !== null) return reject(new Error(`pika scenarios failed: ${err.message}\n${stderr}\n${stdout}`));
      try {
        resolve(JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as Record<string, unknown>);
      } catch (e) {
        reject(new Error(`pika printed no JSON: ${stdout}\n${stderr}`, { cause: e }));
      }
    });
  });
}

/** `p`, or a failure naming what did not happen within `ms` (so a stuck step fails with its name instead of the test's timeout). */
async function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms); })]);
  } finally {
    clearTimeout(timer);
  }
}

async function connect(url: string): Promise<ChannelModel> {
  const c = await amqp.connect(url);
  c.on('error', () => undefined);
  return c;
}

for (const mode of ['push', 'pull'] as const) {
  describe(`AMQP 0-9-1 clients on a 3-node cluster (${mode})`, () => {
    let cluster: TestCluster | null = null;
    let failed = true;
    // Where the test is, and what it counted: printed with the nodes' last log lines when it fails (CI keeps no directory).
    let phase = 'starting the cluster';
    const counts: Record<string, number> = {};
    after(async () => {
      if (failed && cluster !== null) {
        console.error(`failed during: ${phase}; ${JSON.stringify(counts)}; node logs in ${cluster.dir} (set KEEP_CLUSTER_DIRS to keep them)`);
        console.error(cluster.logTails(25));
      }
      await cluster?.close();
    });

    it('amqplib and pika run the scenarios through a follower; kill -9 of the leader loses no confirmed message', { timeout: 240_000 }, async (t) => {
      const c = await TestCluster.start({
        nodes: 3, mode, extra: { tickMs: 10, electionTimeoutMinTicks: 15, electionTimeoutMaxTicks: 30, heartbeatIntervalTicks: 3, fetchMaxWaitTicks: 5, requestTimeoutMs: 3000 },
      });
      cluster = c;
      const leader = await c.waitForLeader();
      const follower = ['n1', 'n2', 'n3'].map((id) => c.node(id)).find((n) => n.id !== leader.id)!;

      // ---- amqplib, through a follower ----
      phase = `amqplib through ${follower.id}: declare and publish`;
      const conn = await connect(follower.amqpUrl + '?heartbeat=1');
      let ch = await conn.createConfirmChannel();
      await ch.assertExchange('dlx', 'fanout', { durable: true });
      await ch.assertQueue('dead', { durable: true, arguments: { 'x-queue-type': 'quorum' } });
      await ch.bindQueue('dead', 'dlx', '');
      await ch.assertQueue('jobs', { durable: true, arguments: { 'x-queue-type': 'quorum', 'x-dead-letter-exchange': 'dlx' } });
      for (let i = 0; i < 10; i++) ch.publish('', 'jobs', Buffer.from(`job${i}`), { messageId: String(i) });
      await ch.waitForConfirms();
      phase = 'amqplib: consume with prefetch, nack/requeue, reject';
      const consumer = await conn.createChannel();
      await consumer.prefetch(3);
      const seen: string[] = [];
      const settled = new Set<string>();
      let nacked = false;
      counts['serverCancels'] = 0;
      await within(30_000, 'the ten jobs consumed', new Promise<void>((resolve, reject) => {
        const start = (): void => {
          consumer.consume('jobs', (m) => {
            if (m === null) {
              // The server cancelled the consumer (basic.cancel: the leader thought this node silent, under load);
              // its unsettled messages went back to the queue. Consume again, as a client does.
              counts['serverCancels']!++;
              start();
              return;
            }
            const body = m.content.toString();
            if (body === 'job3' && !nacked) {
              nacked = true;
              consumer.nack(m, false, true); // requeue: comes back redelivered
              return;
            }
            if (body === 'job5') consumer.reject(m, false); // to the dead-letter exchange
            else consumer.ack(m);
            seen.push(`${body}${m.fields.redelivered ? '*' : ''}`);
            settled.add(body);
            if (settled.size === 10) resolve();
          }).catch(reject);
        };
        start();
      }));
      assert.ok(seen.includes('job3*'), `job3 redelivered: ${seen.join(' ')}`);
      const dead = await ch.get('dead', { noAck: true });
      assert.ok(dead !== false && dead.content.toString() === 'job5');
      assert.equal((dead.properties.headers?.['x-death'] as { reason: string }[])[0]!.reason, 'rejected');
      phase = 'amqplib: topic routing, refusals, heartbeats';
      await ch.assertExchange('events', 'topic', { durable: true });
      await ch.assertQueue('eu-orders', { durable: true });
      await ch.bindQueue('eu-orders', 'events', 'eu.*.order');
      for (const rk of ['eu.de.order', 'us.ny.order', 'eu.fr.refund', 'eu.fr.order']) await publishConfirmed(ch, 'events', rk, rk);
      const routed: string[] = [];
      for (let m = await ch.get('eu-orders', { noAck: true }); m !== false; m = await ch.get('eu-orders', { noAck: true })) routed.push(m.content.toString());
      assert.deepEqual(routed, ['eu.de.order', 'eu.fr.order']);
      // Channels the server will close get an error listener: amqplib hands an unheard channel error to the connection, which then closes.
      let doomed = await conn.createChannel();
      doomed.on('error', () => undefined);
      const mismatch = await refusal(doomed.assertQueue('jobs', { durable: true, arguments: { 'x-dead-letter-exchange': 'dlx', 'x-delivery-limit': 9 } }));
      assert.equal(mismatch.code, 406);
      assert.match(mismatch.message, /inequivalent arg 'x-delivery-limit' for queue 'jobs'/);
      doomed = await conn.createChannel();
      doomed.on('error', () => undefined);
      assert.equal((await refusal(doomed.checkQueue('nowhere'))).code, 404);
      ch = await conn.createConfirmChannel();
      await sleep(2500); // idle past two heartbeat intervals: heartbeats keep it open
      await publishConfirmed(ch, '', 'jobs', 'after-idle');
      await conn.close();
      // The follower counted what it served, and the refusals by code.
      const metrics = await (await fetch(`http://${follower.member.metrics.host}:${follower.member.metrics.port}/metrics`)).text();
      assert.match(metrics, /^quorumlog_amqp_published_total\{node="[^"]+"\} 15$/m, 'ten jobs, four topic messages, one after the idle time');
      assert.match(metrics, /^quorumlog_amqp_refused_total\{reason="PRECONDITION_FAILED",node="[^"]+"\} 1$/m);
      assert.match(metrics, /^quorumlog_amqp_refused_total\{reason="NOT_FOUND",node="[^"]+"\} 1$/m);

      phase = 'the gRPC queue API reads what AMQP wrote';
      // The gRPC queue API sees the same queue (the leader's applied state, through a read barrier).
      const grpcClient = new QueueClient({ endpoints: c.endpoints, timeoutMs: 3000 });
      const stats = await grpcClient.stats('jobs');
      assert.equal(stats[0]?.enqueued, 11, 'the gRPC API reads the queue AMQP wrote: ten jobs and one after the idle time');
      assert.equal(stats[0]?.deadLettered, 1, 'job5, rejected');
      grpcClient.close();

      // ---- pika, through a follower ----
      phase = 'pika through a follower';
      const pika = await runPika(follower.amqpUrl);
      assert.deepEqual(pika, {
        confirmed: 5, consumed: ['p0', 'p1', 'p2', 'p3', 'p4'], requeued: true, dead_lettered: 'p-poison', get: 'p-get', get_empty: true,
        topic: ['a.x.b'], redeclare: 406, missing: 404, heartbeat: true,
      });

      // ---- kill -9 of the leader mid publish-and-consume ----
      phase = 'chaos: declaring its queues';
      const urls = ['n1', 'n2', 'n3'].map((id) => c.node(id).amqpUrl);
      const setup = await connect(urls[0]!);
      const sch = await setup.createChannel();
      await sch.assertQueue('chaos.dead', { durable: true });
      await sch.assertQueue('chaos', { durable: true, arguments: { 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': 'chaos.dead' } });
      await setup.close();

      const confirmed = new Set<string>();
      const delivered = new Set<string>();
      const deadLettered = new Set<string>();
      let publishing = true;
      let consuming = true;
      let stopConsumers = (): void => undefined;
      const stopped = new Promise<void>((resolve) => { stopConsumers = resolve; });
      let next = 0;
      // A batch the server neither confirmed nor nacked, nor closed the connection on, within 15 s: a server defect
      // (every publish settles within the request timeout, 3 s here), reported by name rather than as the test's timeout.
      const unsettled: string[] = [];
      counts['publisherReconnects'] = 0;
      const publisher = (async () => {
        let u = 0;
        while (publishing) {
          let pc: ChannelModel | null = null;
          const url = urls[u++ % urls.length]!;
          try {
            pc = await within(10_000, `publisher: connecting to ${url}`, connect(url));
            const pch = await within(10_000, `publisher: a confirm channel on ${url}`, pc.createConfirmChannel());
            while (publishing) {
              const batch: string[] = [];
              for (let k = 0; k < 20; k++) batch.push(`${next++ % 10 === 7 ? 'poison' : 'm'}-${next}`);
              for (const b of batch) pch.publish('', 'chaos', Buffer.from(b));
              const settledOrNot = await within(15_000, 'confirms', pch.waitForConfirms().then(() => true, () => false)).catch(() => null);
              if (settledOrNot === null) {
                unsettled.push(`a batch of 20 publishes on ${url}, from ${batch[0]}`);
                publishing = false;
                break;
              }
              if (!settledOrNot) throw new Error('nacked'); // outcome unknown: not confirmed
              for (const b of batch) confirmed.add(b);
            }
            await pc.close();
          } catch {
            // The node died, a publish was nacked, or the connection stalled: the batch's outcome is unknown, not confirmed. Reconnect elsewhere.
            counts['publisherReconnects']!++;
            pc?.close().catch(() => undefined);
            await sleep(100);
          }
        }
      })();
      counts['consumerReconnects'] = 0;
      counts['chaosServerCancels'] = 0;
      const consume = (queue: string, offset: number, onMessage: (body: string) => 'ack' | 'reject', into: Set<string>) => (async () => {
        let u = offset;
        while (consuming) {
          let cc: ChannelModel | null = null;
          const url = urls[u++ % urls.length]!;
          try {
            cc = await within(10_000, `consumer: connecting to ${url}`, connect(url));
            const gone = new Promise<void>((resolve) => { cc!.once('close', () => resolve()); });
            let serverCancelled = (): void => undefined;
            const cancelled = new Promise<void>((resolve) => { serverCancelled = resolve; });
            const cch = await within(10_000, `consumer: a channel on ${url}`, cc.createChannel());
            await within(10_000, `consumer: prefetch on ${url}`, cch.prefetch(20));
            // basic.consume waits on a restarted node until its previous consumers are released through the log.
            await within(20_000, `consumer: consuming ${queue} on ${url}`, cch.consume(queue, (m) => {
              if (m === null) {
                // basic.cancel from the server (this node was thought silent): reconnect and consume again.
                counts['chaosServerCancels']!++;
                serverCancelled();
                return;
              }
              const body = m.content.toString();
              if (onMessage(body) === 'ack') {
                into.add(body);
                cch.ack(m);
              } else {
                cch.reject(m, false);
              }
            }));
            await Promise.race([gone, stopped, cancelled]);
            await within(5000, 'consumer: closing', cc.close()).catch(() => undefined);
          } catch {
            counts['consumerReconnects']!++;
            cc?.close().catch(() => undefined);
            await sleep(100);
          }
        }
      })();
      const consumers = [
        consume('chaos', 1, (b) => (b.startsWith('poison') ? 'reject' : 'ack'), delivered),
        consume('chaos.dead', 2, () => 'ack', deadLettered),
      ];
      phase = 'chaos: publishing and consuming before the kill';
      await sleep(1000);
      const victim: TestNode = await c.waitForLeader();
      phase = `chaos: kill -9 of the leader ${victim.id}, waiting for a new one`;
      await victim.kill9();
      await c.waitForLeader(20_000, [victim.id]);
      await sleep(1000);
      phase = `chaos: ${victim.id} restarted`;
      victim.start();
      await sleep(1000);
      phase = 'chaos: stopping the publisher';
      publishing = false;
      await within(30_000, 'the publisher stopping', publisher);
      assert.deepEqual(unsettled, [], 'every publish is confirmed or nacked, or its connection closes');
      phase = 'chaos: draining the queues';
      const deadline = Date.now() + 60_000;
      const missing = (): string[] => [...confirmed].filter((b) => !(b.startsWith('poison') ? deadLettered.has(b) : delivered.has(b)));
      while (missing().length > 0 && Date.now() < deadline) await sleep(200);
      phase = 'chaos: stopping the consumers';
      consuming = false;
      stopConsumers();
      await within(30_000, 'the consumers stopping', Promise.all(consumers));
      counts['confirmed'] = confirmed.size;
      counts['missing'] = missing().length;
      assert.ok(confirmed.size > 100, `a real run: ${confirmed.size} confirmed`);
      assert.deepEqual(missing(), [], `every confirmed message delivered or dead-lettered (${confirmed.size} confirmed)`);
      t.diagnostic(JSON.stringify(counts));
      failed = false;
    });
  });
}
