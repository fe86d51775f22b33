// Bad input on the AMQP port, on a raw socket: every case is refused with
// the reply code the specification gives it, counted, and leaves the
// listener serving others (a real client connects and works afterwards);
// no case is an internal error. Then a fuzzer: random bytes, and mutations
// of a valid session's frames, after the protocol header.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect as tcpConnect, type Socket } from 'node:net';
import amqp from 'amqplib';
import fc from 'fast-check';
import { pino } from 'pino';
import {
  encodeBodyFrames, encodeContentHeaderFrame, encodeFrame, encodeMethodFrame, FRAME_BODY, FrameReader, decodeMethod, FRAME_METHOD, PROTOCOL_HEADER,
  type AmqpMethod,
} from '../../codec/amqp/index.js';
import { LocalQueueBackend } from '../queue/backend.js';
import { startAmqpListener, type AmqpListener } from './listener.js';

let listener: AmqpListener;
let backend: LocalQueueBackend;

before(async () => {
  backend = new LocalQueueBackend({ nodeId: 'n1' });
  listener = await startAmqpListener({
    host: '127.0.0.1', port: 0, backend, logger: pino({ level: process.env['AMQP_TEST_LOG'] ?? 'silent' }), clusterName: 'test',
    limits: { outputMaxBytes: 1 << 20, handshakeTimeoutMs: 2000, frameMax: 8192 },
  });
});

after(async () => {
  await listener.close();
});

/** A raw AMQP client: writes bytes, reads frames (methods decoded), sees the socket close. */
class Raw {
  readonly socket: Socket;
  private readonly reader = new FrameReader(1 << 20);
  private readonly methods: { channel: number; m: AmqpMethod }[] = [];
  private waiters: (() => void)[] = [];
  raw = Buffer.alloc(0);
  closed = false;

  constructor(port: number, readonly read = true) {
    this.socket = tcpConnect(port, '127.0.0.1');
    this.socket.on('error', () => undefined);
    if (read) {
      this.socket.on('data', (d: Buffer) => {
        this.raw = Buffer.concat([this.raw, d]);
        if (this.raw.length >= 8 && this.raw.subarray(0, 4).toString() === 'AMQP') return; // a protocol header came back
        try {
          this.reader.push(d);
          for (let f = this.reader.next(); f !== null; f = this.reader.next()) {
            if (f.type === FRAME_METHOD) this.methods.push({ channel: f.channel, m: decodeMethod(f.payload) });
          }
        } catch { /* the tests look at the methods */ }
        this.wake();
      });
    } else {
      this.socket.pause();
    }
    this.socket.on('close', () => { this.closed = true; this.wake(); });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  async until<T>(f: () => T | undefined, ms = 5000): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = f();
      if (v !== undefined) return v;
      if (Date.now() > deadline) throw new Error(`timed out; methods so far: ${this.methods.map((x) => x.m.name).join(', ')}; closed ${this.closed}`);
      await new Promise<void>((r) => { this.waiters.push(r); setTimeout(r, 50); });
    }
  }

  method<N extends AmqpMethod['name']>(name: N): Promise<Extract<AmqpMethod, { name: N }>> {
    return this.until(() => this.methods.find((x) => x.m.name === name)?.m as Extract<AmqpMethod, { name: N }> | undefined);
  }

  send(b: Uint8Array): void {
    this.socket.write(b);
  }

  async handshake(heartbeat = 0): Promise<void> {
    this.send(PROTOCOL_HEADER);
    await this.method('connection.start');
    this.send(encodeMethodFrame(0, { name: 'connection.start-ok', clientProperties: [], mechanism: 'PLAIN', response: Buffer.from('\0guest\0guest'), locale: 'en_US' }));
    const tune = await this.method('connection.tune');
    this.send(encodeMethodFrame(0, { name: 'connection.tune-ok', channelMax: tune.channelMax, frameMax: tune.frameMax, heartbeat }));
    this.send(encodeMethodFrame(0, { name: 'connection.open', virtualHost: '/', capabilities: '', insist: false }));
    await this.method('connection.open-ok');
  }

  /** Opens channel 1 after the handshake and waits for its open-ok. */
  async openChannel(): Promise<void> {
    this.send(encodeMethodFrame(1, { name: 'channel.open', outOfBand: '' }));
    await this.method('channel.open-ok');
  }

  /** The connection.close the server sent, then the socket closes once we answer close-ok. */
  async closedWith(): Promise<number> {
    const c = await this.method('connection.close');
    this.send(encodeMethodFrame(0, { name: 'connection.close-ok' }));
    await this.until(() => (this.closed ? true : undefined));
    return c.replyCode;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** The listener still serves a real client, and has had no internal error. */
async function stillServes(): Promise<void> {
  const c = await amqp.connect(`amqp://guest:guest@127.0.0.1:${listener.port}`);
  const ch = await c.createChannel();
  const q = await ch.assertQueue('survivor', { durable: true });
  assert.equal(q.queue, 'survivor');
  await c.close();
  assert.equal(listener.stats.internalErrors, 0, 'no internal error');
}

const port = (): number => listener.port;

describe('AMQP listener under bad input', () => {
  it('a wrong protocol header gets ours back, and the socket closes', async () => {
    const r = new Raw(port());
    r.send(Buffer.from('AMQP\x00\x00\x08\x00'));
    await r.until(() => (r.closed ? true : undefined));
    assert.deepEqual(r.raw, PROTOCOL_HEADER);
    const http = new Raw(port());
    http.send(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    await http.until(() => (http.closed ? true : undefined));
    assert.deepEqual(http.raw, PROTOCOL_HEADER);
    await stillServes();
  });

  it('methods out of order: 503 COMMAND_INVALID', async () => {
    const r = new Raw(port());
    r.send(PROTOCOL_HEADER);
    await r.method('connection.start');
    r.send(encodeMethodFrame(1, { name: 'channel.open', outOfBand: '' }));
    assert.equal(await r.closedWith(), 503);
    await stillServes();
  });

  it('a frame on a channel that is not open: 504 CHANNEL_ERROR', async () => {
    const r = new Raw(port());
    await r.handshake();
    r.send(encodeMethodFrame(7, { name: 'queue.declare', ticket: 0, queue: 'x', passive: false, durable: true, exclusive: false, autoDelete: false, nowait: false, arguments: [] }));
    assert.equal(await r.closedWith(), 504);
  });

  it('an oversized frame: 501 FRAME_ERROR, refused from its header', async () => {
    const r = new Raw(port());
    await r.handshake();
    const head = Buffer.alloc(7);
    head.writeUInt8(FRAME_METHOD, 0);
    head.writeUInt16BE(0, 1);
    head.writeUInt32BE(1 << 30, 3); // 1 GiB announced, never sent
    r.send(head);
    assert.equal(await r.closedWith(), 501);
  });

  it('a body longer than its header said: 501 FRAME_ERROR', async () => {
    const r = new Raw(port());
    await r.handshake();
    await r.openChannel();
    r.send(encodeMethodFrame(1, { name: 'basic.publish', ticket: 0, exchange: '', routingKey: 'x', mandatory: false, immediate: false }));
    r.send(encodeContentHeaderFrame(1, 60, 3, 0, Buffer.alloc(0)));
    r.send(encodeFrame(FRAME_BODY, 1, Buffer.from('abcdef')));
    assert.equal(await r.closedWith(), 501);
  });

  it('a content frame with no publish before it: 505 UNEXPECTED_FRAME; a method inside a publish\'s content: 505', async () => {
    const r = new Raw(port());
    await r.handshake();
    await r.openChannel();
    r.send(encodeBodyFrames(1, Buffer.from('stray'), 8192)[0]!);
    assert.equal(await r.closedWith(), 505);
    const r2 = new Raw(port());
    await r2.handshake();
    await r2.openChannel();
    r2.send(encodeMethodFrame(1, { name: 'basic.publish', ticket: 0, exchange: '', routingKey: 'x', mandatory: false, immediate: false }));
    r2.send(encodeMethodFrame(1, { name: 'basic.qos', prefetchSize: 0, prefetchCount: 1, global: false }));
    assert.equal(await r2.closedWith(), 505);
    await stillServes();
  });

  it('a client silent past two heartbeat intervals is dropped', { timeout: 10_000 }, async () => {
    const before = listener.stats.missedHeartbeats;
    const r = new Raw(port());
    await r.handshake(1);
    const t0 = Date.now();
    await r.until(() => (r.closed ? true : undefined), 6000);
    assert.ok(Date.now() - t0 >= 1500, 'not before two intervals');
    assert.equal(listener.stats.missedHeartbeats, before + 1);
  });

  it('a handshake never finished is dropped', { timeout: 10_000 }, async () => {
    const r = new Raw(port());
    r.send(PROTOCOL_HEADER);
    await r.until(() => (r.closed ? true : undefined), 6000);
  });

  it('a consumer that never reads is disconnected once its output passes the limit; the node goes on', { timeout: 20_000 }, async () => {
    const c = await amqp.connect(`amqp://guest:guest@127.0.0.1:${listener.port}`);
    const ch = await c.createConfirmChannel();
    await ch.assertQueue('flood', { durable: true });
    const body = Buffer.alloc(8000, 1);
    for (let i = 0; i < 1500; i++) ch.sendToQueue('flood', body);
    await ch.waitForConfirms();
    await c.close();
    const before = listener.stats.slowClients;
    const r = new Raw(port());
    await r.handshake();
    r.socket.pause(); // reads nothing from now on
    r.send(encodeMethodFrame(1, { name: 'channel.open', outOfBand: '' }));
    r.send(encodeMethodFrame(1, { name: 'basic.consume', ticket: 0, queue: 'flood', consumerTag: '', noLocal: false, noAck: true, exclusive: false, nowait: false, arguments: [] }));
    await r.until(() => (listener.stats.slowClients > before ? true : undefined), 15_000);
    await stillServes();
  });

  it('fuzz: random bytes and mutated frames never crash the listener nor cause an internal error', { timeout: 60_000 }, async () => {
    const valid = Buffer.concat([
      encodeMethodFrame(1, { name: 'channel.open', outOfBand: '' }),
      encodeMethodFrame(1, { name: 'queue.declare', ticket: 0, queue: 'fz', passive: false, durable: true, exclusive: false, autoDelete: false, nowait: false, arguments: [] }),
      encodeMethodFrame(1, { name: 'basic.publish', ticket: 0, exchange: '', routingKey: 'fz', mandatory: true, immediate: false }),
      encodeContentHeaderFrame(1, 60, 5, 0, Buffer.alloc(0)),
      encodeBodyFrames(1, Buffer.from('hello'), 8192)[0]!,
      encodeMethodFrame(1, { name: 'basic.get', ticket: 0, queue: 'fz', noAck: false }),
    ]);
    await fc.assert(fc.asyncProperty(
      fc.oneof(
        fc.uint8Array({ maxLength: 300 }),
        fc.tuple(fc.nat(valid.length - 1), fc.uint8Array({ minLength: 1, maxLength: 8 })).map(([at, bytes]) => {
          const b = Buffer.from(valid);
          b.set(bytes.subarray(0, b.length - at), at);
          return new Uint8Array(b);
        }),
        fc.nat(valid.length).map((cut) => new Uint8Array(valid.subarray(0, cut))),
      ),
      fc.boolean(),
      async (bytes, handshake) => {
        const r = new Raw(port());
        if (handshake) await r.handshake();
        else r.send(PROTOCOL_HEADER);
        r.send(bytes);
        await new Promise((res) => setTimeout(res, 20));
        r.destroy();
      },
    ), { numRuns: 60 });
    await stillServes();
  });
});
