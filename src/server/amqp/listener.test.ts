// The AMQP listener in process, over a LocalQueueBackend (one copy, no log),
// driven by amqplib, a client nobody here wrote. Each case checks what
// RabbitMQ's documentation and amqplib promise a user: the message read back,
// its properties and headers, the reply codes and texts of refusals. The
// replicated cases (followers forwarding, kill -9 of the leader) are in
// test/cluster/amqp.test.ts.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import amqp from 'amqplib';
import type { ChannelModel, ConsumeMessage, Channel, GetMessage } from 'amqplib';
import { pino } from 'pino';
import { makePki } from '../../transport/test-util.js';
import { LocalQueueBackend } from '../queue/backend.js';
import { startAmqpListener, type AmqpListener } from './listener.js';
import { publishConfirmed, refusal } from './test-util.js';

let listener: AmqpListener;
let backend: LocalQueueBackend;
let url: string;
const open: ChannelModel[] = [];

before(async () => {
  backend = new LocalQueueBackend({ nodeId: 'n1' });
  listener = await startAmqpListener({
    host: '127.0.0.1', port: 0, backend, logger: pino({ level: process.env['AMQP_TEST_LOG'] ?? 'silent' }), clusterName: 'test',
  });
  url = `amqp://guest:guest@127.0.0.1:${listener.port}`;
});

after(async () => {
  for (const c of open) await c.close().catch(() => undefined);
  await listener.close();
});

async function connect(query = ''): Promise<ChannelModel> {
  const c = await amqp.connect(url + query);
  c.on('error', () => undefined);
  open.push(c);
  return c;
}

/** A channel whose closing by the server is expected (amqplib hands an unheard channel error to its connection, which then closes). */
async function channel(c: ChannelModel): Promise<Channel> {
  const ch = await c.createChannel();
  ch.on('error', () => undefined);
  return ch;
}

/** Waits for `n` messages from a consumer on `queue`; `onMessage` may ack/nack. */
function collect(ch: Channel, queue: string, n: number, onMessage: (m: ConsumeMessage) => void, opts: { noAck?: boolean } = {}): Promise<ConsumeMessage[]> {
  return new Promise((resolve, reject) => {
    const got: ConsumeMessage[] = [];
    const timer = setTimeout(() => reject(new Error(`only ${got.length} of ${n} messages from ${queue}`)), 5000);
    void ch.consume(queue, (m) => {
      if (m === null) return;
      got.push(m);
      onMessage(m);
      if (got.length === n) {
        clearTimeout(timer);
        resolve(got);
      }
    }, opts);
  });
}

describe('AMQP 0-9-1 with amqplib (in process)', () => {
  it('publishes with confirms and consumes with prefetch and acks, properties and headers intact', async () => {
    const c = await connect();
    const ch = await c.createConfirmChannel();
    const q = await ch.assertQueue('orders', { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    assert.equal(q.queue, 'orders');
    for (let i = 0; i < 20; i++) {
      ch.publish('', 'orders', Buffer.from(`m${i}`), {
        contentType: 'text/plain', correlationId: `c${i}`, headers: { n: i, tag: 'x' }, persistent: true, messageId: `id${i}`, timestamp: 1700000000,
      });
    }
    await ch.waitForConfirms();
    const cons = await c.createChannel();
    await cons.prefetch(5);
    let unacked = 0;
    let maxUnacked = 0;
    const msgs = await collect(cons, 'orders', 20, (m) => {
      unacked++;
      maxUnacked = Math.max(maxUnacked, unacked);
      setTimeout(() => { unacked--; cons.ack(m); }, 2);
    });
    assert.deepEqual(msgs.map((m) => m.content.toString()), Array.from({ length: 20 }, (_, i) => `m${i}`));
    assert.ok(maxUnacked <= 5, `prefetch 5 held, saw ${maxUnacked} unacked`);
    const m7 = msgs[7]!;
    assert.equal(m7.properties.contentType, 'text/plain');
    assert.equal(m7.properties.correlationId, 'c7');
    assert.equal(m7.properties.messageId, 'id7');
    assert.equal(m7.properties.deliveryMode, 2);
    assert.equal(m7.properties.timestamp, 1700000000);
    assert.deepEqual(m7.properties.headers, { n: 7, tag: 'x' });
    assert.equal(m7.fields.redelivered, false);
    assert.equal(m7.fields.routingKey, 'orders');
    await new Promise((r) => setTimeout(r, 50));
    const stats = backend.machine.queueStats('orders')!;
    assert.equal(stats.ready + stats.unacked, 0, 'every message acked');
    await cons.close();
    await ch.close();
  });

  it('nack with requeue redelivers with redelivered and x-delivery-count; reject without requeue dead-letters through an exchange with x-death', async () => {
    const c = await connect();
    const ch = await c.createConfirmChannel();
    await ch.assertExchange('dlx', 'direct', { durable: true });
    await ch.assertQueue('dead', { durable: true });
    await ch.bindQueue('dead', 'dlx', 'dead-key');
    await ch.assertQueue('work', { durable: true, arguments: { 'x-queue-type': 'quorum', 'x-dead-letter-exchange': 'dlx', 'x-dead-letter-routing-key': 'dead-key' } });
    await publishConfirmed(ch, '', 'work', Buffer.from('job'), { headers: { keep: 'me' } });
    const cons = await c.createChannel();
    let seen = 0;
    const [again] = await collect(cons, 'work', 2, (m) => {
      seen++;
      if (seen === 1) cons.nack(m, false, true);
      else cons.reject(m, false);
    }).then((ms) => [ms[1]!]);
    assert.equal(again!.fields.redelivered, true);
    assert.equal(again!.properties.headers?.['x-delivery-count'], 1);
    assert.equal(again!.properties.headers?.['keep'], 'me');
    const [dead] = await collect(cons, 'dead', 1, (m) => cons.ack(m));
    assert.equal(dead!.content.toString(), 'job');
    const death = dead!.properties.headers?.['x-death']?.[0];
    assert.equal(death?.reason, 'rejected');
    assert.equal(death?.queue, 'work');
    assert.equal(death?.count, 1);
    assert.deepEqual(death?.['routing-keys'], ['work']);
    assert.equal(dead!.properties.headers?.['x-first-death-reason'], 'rejected');
    assert.equal(dead!.fields.routingKey, 'dead-key');
    await c.close();
  });

  it('x-delivery-limit N dead-letters a message returned N times, as RabbitMQ counts it', async () => {
    const c = await connect();
    const ch = await c.createConfirmChannel();
    await ch.assertQueue('limited-dead', { durable: true });
    await ch.assertQueue('limited', { durable: true, arguments: { 'x-delivery-limit': 1, 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': 'limited-dead' } });
    await publishConfirmed(ch, '', 'limited', Buffer.from('poison'));
    const cons = await c.createChannel();
    const tries = await collect(cons, 'limited', 2, (m) => cons.nack(m, false, true));
    assert.deepEqual(tries.map((m) => m.fields.redelivered), [false, true]);
    const [dead] = await collect(cons, 'limited-dead', 1, (m) => cons.ack(m));
    assert.equal(dead!.properties.headers?.['x-death']?.[0]?.reason, 'delivery_limit');
    await c.close();
  });

  it('basic.get, with and without ack, and get-empty', async () => {
    const c = await connect();
    const ch = await c.createConfirmChannel();
    await ch.assertQueue('got', { durable: true });
    for (const b of ['a', 'b', 'c']) await publishConfirmed(ch, '', 'got', Buffer.from(b));
    const first = await ch.get('got', { noAck: true }) as GetMessage;
    assert.equal(first.content.toString(), 'a');
    assert.equal(first.fields.messageCount, 2);
    const second = await ch.get('got') as GetMessage;
    assert.equal(second.content.toString(), 'b');
    ch.nack(second, false, true); // back to the queue, ahead of c
    const again = await ch.get('got') as GetMessage;
    assert.equal(again.content.toString(), 'b');
    assert.equal(again.fields.redelivered, true);
    ch.ack(again);
    const third = await ch.get('got') as GetMessage;
    assert.equal(third.content.toString(), 'c');
    ch.ack(third);
    assert.equal(await ch.get('got'), false);
    await c.close();
  });

  it('topic, fanout and headers exchanges route as RabbitMQ does; mandatory unroutable publishes come back', async () => {
    const c = await connect();
    const ch = await c.createConfirmChannel();
    await ch.assertExchange('logs', 'topic', { durable: true });
    for (const q of ['all', 'errors', 'kern']) await ch.assertQueue(`t.${q}`, { durable: true });
    await ch.bindQueue('t.all', 'logs', '#');
    await ch.bindQueue('t.errors', 'logs', '*.error');
    await ch.bindQueue('t.kern', 'logs', 'kern.*');
    for (const rk of ['kern.error', 'app.error', 'kern.info', 'app.info.detail']) await publishConfirmed(ch, 'logs', rk, Buffer.from(rk));
    const keys = async (q: string): Promise<string[]> => {
      const out: string[] = [];
      for (;;) {
        const m = await ch.get(q, { noAck: true });
        if (m === false) return out;
        out.push(m.content.toString());
      }
    };
    assert.deepEqual(await keys('t.all'), ['kern.error', 'app.error', 'kern.info', 'app.info.detail']);
    assert.deepEqual(await keys('t.errors'), ['kern.error', 'app.error']);
    assert.deepEqual(await keys('t.kern'), ['kern.error', 'kern.info']);

    await ch.assertExchange('fan', 'fanout', { durable: true });
    await ch.assertQueue('f1', { durable: true });
    await ch.assertQueue('f2', { durable: true });
    await ch.bindQueue('f1', 'fan', '');
    await ch.bindQueue('f2', 'fan', 'ignored');
    await publishConfirmed(ch, 'fan', 'any', Buffer.from('both'));
    assert.deepEqual([await keys('f1'), await keys('f2')], [['both'], ['both']]);

    await ch.assertExchange('hdr', 'headers', { durable: true });
    await ch.assertQueue('h.all', { durable: true });
    await ch.assertQueue('h.any', { durable: true });
    await ch.bindQueue('h.all', 'hdr', '', { 'x-match': 'all', format: 'pdf', type: 'report' });
    await ch.bindQueue('h.any', 'hdr', '', { 'x-match': 'any', format: 'pdf', type: 'report' });
    await publishConfirmed(ch, 'hdr', '', Buffer.from('pdf-report'), { headers: { format: 'pdf', type: 'report' } });
    await publishConfirmed(ch, 'hdr', '', Buffer.from('pdf-log'), { headers: { format: 'pdf', type: 'log' } });
    assert.deepEqual(await keys('h.all'), ['pdf-report']);
    assert.deepEqual(await keys('h.any'), ['pdf-report', 'pdf-log']);

    await ch.assertExchange('unbound', 'direct', { durable: true });
    const returned = new Promise<amqp.Message>((resolve) => ch.once('return', resolve));
    await publishConfirmed(ch, 'unbound', 'nothing-binds-this', Buffer.from('lost?'), { mandatory: true });
    const r = await returned;
    assert.equal(r.content.toString(), 'lost?');
    assert.equal((r.fields as unknown as { replyCode: number }).replyCode, 312);
    await c.close();
  });

  it('refuses as RabbitMQ does: 406 on a mismatched redeclare, 404 on a missing queue or exchange, 403 on the default exchange, 540 for what is not supported', async () => {
    const c = await connect();
    let ch = await channel(c);
    await ch.assertQueue('strict', { durable: true, arguments: { 'x-delivery-limit': 5 } });
    const mismatch = await refusal(ch.assertQueue('strict', { durable: true, arguments: { 'x-delivery-limit': 6 } }));
    assert.equal(mismatch.code, 406);
    assert.match(mismatch.message, /PRECONDITION_FAILED - inequivalent arg 'x-delivery-limit' for queue 'strict' in vhost '\/': received the value '6' of type 'long' but current is the value '5'/);
    ch = await channel(c);
    const missing = await refusal(ch.checkQueue('no-such-queue'));
    assert.equal(missing.code, 404);
    assert.match(missing.message, /NOT_FOUND - no queue 'no-such-queue' in vhost '\/'/);
    ch = await channel(c);
    const noEx = await refusal(ch.checkExchange('no-such-exchange'));
    assert.equal(noEx.code, 404);
    ch = await channel(c);
    const dflt = await refusal(ch.bindQueue('strict', '', 'x'));
    assert.equal(dflt.code, 403);
    // The connection still works after channel errors.
    ch = await channel(c);
    assert.equal((await ch.checkQueue('strict')).queue, 'strict');
    // 540 is a hard error: it closes the connection, as in RabbitMQ.
    const closed = new Promise<Error & { code?: number }>((resolve) => c.once('close', resolve));
    await refusal(ch.assertQueue('ttl', { durable: true, arguments: { 'x-message-ttl': 1000 } }));
    const why = await closed;
    assert.equal(why.code, 540);
    assert.match(why.message, /NOT_IMPLEMENTED - queue argument 'x-message-ttl' is not supported/);
  });

  it('a queue deleted under a consumer cancels it (basic.cancel from the server); purge and delete answer their counts', async () => {
    const c = await connect();
    const ch = await c.createConfirmChannel();
    await ch.assertQueue('doomed', { durable: true });
    for (let i = 0; i < 3; i++) await publishConfirmed(ch, '', 'doomed', Buffer.from(String(i)));
    assert.equal((await ch.purgeQueue('doomed')).messageCount, 3);
    await publishConfirmed(ch, '', 'doomed', Buffer.from('x'));
    const cons = await c.createChannel();
    const cancelled = new Promise<ConsumeMessage | null>((resolve) => {
      void cons.consume('doomed', (m) => { if (m === null) resolve(m); }, { noAck: true });
    });
    const inUse = await channel(c);
    assert.equal((await refusal(inUse.deleteQueue('doomed', { ifUnused: true }))).code, 406);
    const del = await c.createChannel();
    await del.deleteQueue('doomed');
    assert.equal(await cancelled, null, 'amqplib hands a null message to a consumer the server cancelled');
    assert.equal(backend.machine.queueStats('doomed'), undefined);
    await c.close();
  });

  it('closing a channel gives its unacknowledged messages back; basic.recover redelivers them', async () => {
    const c = await connect();
    const ch = await c.createConfirmChannel();
    await ch.assertQueue('back', { durable: true });
    for (let i = 0; i < 4; i++) await publishConfirmed(ch, '', 'back', Buffer.from(String(i)));
    const cons = await c.createChannel();
    await cons.prefetch(10);
    await collect(cons, 'back', 4, () => undefined);
    await cons.recover();
    const cons2 = await c.createChannel();
    await cons.close();
    const again = await collect(cons2, 'back', 4, (m) => cons2.ack(m));
    assert.ok(again.every((m) => m.fields.redelivered));
    assert.deepEqual(again.map((m) => m.content.toString()).sort(), ['0', '1', '2', '3']);
    await c.close();
  });

  it('basic.cancel keeps what the consumer holds until it is acked, as RabbitMQ does: no redelivery to others meanwhile', async () => {
    const c = await connect();
    const ch = await c.createConfirmChannel();
    await ch.assertQueue('graceful', { durable: true });
    for (let i = 0; i < 6; i++) await publishConfirmed(ch, '', 'graceful', Buffer.from(String(i)));
    const worker = await c.createChannel();
    await worker.prefetch(3);
    const held: ConsumeMessage[] = [];
    let tag = '';
    await new Promise<void>((resolve) => {
      void worker.consume('graceful', (m) => { if (m !== null) { held.push(m); if (held.length === 3) resolve(); } }).then((r) => { tag = r.consumerTag; });
    });
    await worker.cancel(tag);
    // Another consumer gets the three never delivered, not the three the cancelled one still holds.
    const other = await c.createChannel();
    const rest = await collect(other, 'graceful', 3, (m) => other.ack(m));
    assert.deepEqual(rest.map((m) => m.content.toString()), ['3', '4', '5']);
    assert.ok(rest.every((m) => !m.fields.redelivered));
    for (const m of held) worker.ack(m);
    await new Promise((r) => setTimeout(r, 50));
    const s = backend.machine.queueStats('graceful')!;
    assert.deepEqual([s.ready, s.unacked, s.acked], [0, 0, 6], 'the held three acked after the cancel');
    assert.equal(backend.machine.allConsumers().filter((x) => x.queue === 'graceful').length, 1, 'the detached consumer is gone once it holds nothing; the other remains');
    await c.close();
  });

  it('heartbeats keep an idle connection open', { timeout: 15_000 }, async () => {
    const c = await connect('?heartbeat=1');
    const ch = await c.createConfirmChannel();
    await new Promise((r) => setTimeout(r, 3500));
    await ch.assertQueue('alive', { durable: true });
    await publishConfirmed(ch, '', 'alive', Buffer.from('still here'));
    const m = await ch.get('alive', { noAck: true });
    assert.ok(m !== false && m.content.toString() === 'still here');
    await c.close();
  });

  it('logs in only as guest/guest while auth is off', async () => {
    const bad = await refusal(amqp.connect(`amqp://someone:secret@127.0.0.1:${listener.port}`));
    assert.match(String((bad as unknown as Error).message), /ACCESS_REFUSED|403/);
  });
});

describe('AMQP over TLS (amqps)', () => {
  it('with client TLS a client needs a certificate from the CA; with one, it publishes and reads back', async () => {
    const pki = makePki(['node', 'client']);
    const node = pki.certs.get('node')!;
    const client = pki.certs.get('client')!;
    const tlsBackend = new LocalQueueBackend({ nodeId: 'n1' });
    const secure = await startAmqpListener({
      host: '127.0.0.1', port: 0, backend: tlsBackend, logger: pino({ level: 'silent' }), clusterName: 'test', tls: { ...node, ca: pki.ca },
    });
    try {
      const c = await amqp.connect(`amqps://guest:guest@127.0.0.1:${secure.port}`, { cert: client.cert, key: client.key, ca: [pki.ca] });
      const ch = await c.createConfirmChannel();
      await ch.assertQueue('secret', { durable: true });
      await publishConfirmed(ch, '', 'secret', Buffer.from('over tls'));
      const m = await ch.get('secret', { noAck: true });
      assert.ok(m !== false && m.content.toString() === 'over tls');
      await c.close();
      await refusal(amqp.connect(`amqps://guest:guest@127.0.0.1:${secure.port}`, { ca: [pki.ca] }));
      await refusal(amqp.connect(`amqp://guest:guest@127.0.0.1:${secure.port}`, { timeout: 2000 }));
      assert.equal(tlsBackend.machine.queueStats('secret')?.enqueued, 1, 'only the client with a certificate got in');
    } finally {
      await secure.close();
    }
  });
});
