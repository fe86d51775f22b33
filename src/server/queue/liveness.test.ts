// The consumers-on-dead-nodes rule (liveness.ts) with fake hosts and a fake
// clock: a leader proposes nodeDown for a node it has not heard from for
// downAfterMs (with its applied index, so that later consumers are spared),
// not earlier, never for itself or as a follower; "alive" frames keep a node
// up; malformed frames are counted; a starting node releases its previous
// consumers before it is ready, retrying while the log refuses.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { NoLeaderError } from '../../node/errors.js';
import type { QueueCommand, QueueResult } from '../../services/queue/types.js';
import { LocalQueueBackend } from './backend.js';
import { QUEUE_CHANNEL, QueueLiveness, type LivenessHost } from './liveness.js';

const logger = pino({ level: 'silent' });

class FakeHost implements LivenessHost {
  leader = false;
  refuse = 0;
  readonly sent: { to: string; channel: number; payload: Uint8Array }[] = [];
  readonly written: QueueCommand[] = [];
  handler: ((from: string, payload: Uint8Array) => void) | null = null;
  constructor(readonly nodeId: string, readonly backend: LocalQueueBackend) {}
  isLeader(): boolean {
    return this.leader;
  }
  appliedIndex(): number {
    return this.backend.appliedIndex;
  }
  write(cmd: QueueCommand): Promise<QueueResult> {
    this.written.push(cmd);
    if (this.refuse > 0) {
      this.refuse--;
      return Promise.reject(new NoLeaderError());
    }
    return this.backend.write(cmd);
  }
  onChannel(channel: number, handler: (from: string, payload: Uint8Array) => void): void {
    assert.equal(channel, QUEUE_CHANNEL);
    this.handler = handler;
  }
  sendChannel(to: string, channel: number, payload: Uint8Array): boolean {
    this.sent.push({ to, channel, payload });
    return true;
  }
}

const flush = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('queue liveness', () => {
  it('the leader releases the consumers of a silent node after downAfterMs, sparing later ones', async () => {
    const backend = new LocalQueueBackend({ nodeId: 'n1' });
    let now = 1000;
    const host = new FakeHost('n1', backend);
    const live = new QueueLiveness(host, backend.machine, { peers: ['n1', 'n2', 'n3'], downAfterMs: 500, heartbeatMs: 1_000_000, logger, now: () => now });
    live.start();
    await live.whenReady();
    assert.deepEqual(host.written, [{ type: 'nodeDown', node: 'n1', attachedUpTo: Number.MAX_SAFE_INTEGER }]);
    assert.deepEqual(host.sent.map((m) => m.to), ['n2', 'n3', 'n2', 'n3'], 'alive at start and again once released, before any consumer can attach');
    host.written.length = 0;
    host.sent.length = 0;
    await backend.write({ type: 'declare', queue: 'q', deliveryLimit: 0, deadLetterQueue: null });
    await backend.write({ type: 'enqueue', queue: 'q', body: new Uint8Array([1]) });
    await backend.write({ type: 'attach', consumerId: 'a2', queue: 'q', node: 'n2', prefetch: 1, noAck: false, exclusive: false });
    await backend.write({ type: 'attach', consumerId: 'a3', queue: 'q', node: 'n3', prefetch: 1, noAck: false, exclusive: false });
    await backend.write({ type: 'attach', consumerId: 'a1', queue: 'q', node: 'n1', prefetch: 1, noAck: false, exclusive: false });

    live.tick();
    assert.deepEqual(host.sent.map((m) => m.to), ['n2', 'n3'], 'alive goes to the other voters');
    assert.deepEqual([...(host.sent[0]?.payload ?? [])], [1, 1]);
    assert.deepEqual(host.written, [], 'a follower proposes nothing');

    host.leader = true;
    now += 400;
    host.handler?.('n3', new Uint8Array([1, 1]));
    live.tick();
    assert.deepEqual(host.written, [], 'nobody silent for more than downAfterMs yet');
    now += 200; // n2 silent for 600 ms since the start; n3 heard 200 ms ago
    const cut = backend.appliedIndex;
    live.tick();
    assert.deepEqual(host.written, [{ type: 'nodeDown', node: 'n2', attachedUpTo: cut }]);
    live.tick();
    assert.equal(host.written.length, 1, 'no second proposal while one is in flight');
    await flush();
    assert.equal(backend.machine.consumer('a2'), undefined);
    assert.equal(backend.machine.queueStats('q')?.unacked, 1, 'a2\'s message went back and on to a3');
    assert.notEqual(backend.machine.consumer('a1'), undefined, 'never for itself');
    assert.notEqual(backend.machine.consumer('a3'), undefined);

    // n2 comes back and attaches; the leader, still not hearing it, cuts only up to what it has applied.
    await backend.write({ type: 'attach', consumerId: 'a2b', queue: 'q', node: 'n2', prefetch: 1, noAck: false, exclusive: false });
    const cut2 = backend.appliedIndex - 1;
    await backend.write({ type: 'nodeDown', node: 'n2', attachedUpTo: cut2 });
    assert.notEqual(backend.machine.consumer('a2b'), undefined, 'a consumer attached after the cut survives');

    host.handler?.('n2', new Uint8Array([9]));
    host.handler?.('n2', new Uint8Array([1, 1, 0]));
    assert.equal(live.stats.malformedFrames, 2);
    host.handler?.('n2', new Uint8Array([1, 1]));
    host.written.length = 0;
    live.tick();
    assert.deepEqual(host.written, [], 'heard from n2 just now');
    live.stop();
  });

  it('a starting node is ready only once the log took its own release, retrying meanwhile', async () => {
    const backend = new LocalQueueBackend({ nodeId: 'n1' });
    await backend.write({ type: 'declare', queue: 'q', deliveryLimit: 0, deadLetterQueue: null });
    await backend.write({ type: 'enqueue', queue: 'q', body: new Uint8Array([1]) });
    await backend.write({ type: 'attach', consumerId: 'old', queue: 'q', node: 'n1', prefetch: 1, noAck: false, exclusive: false });
    const host = new FakeHost('n1', backend);
    host.refuse = 2;
    const live = new QueueLiveness(host, backend.machine, { peers: [], downAfterMs: 500, retryMs: 5, logger });
    live.start();
    assert.equal(live.ready, false);
    await live.whenReady();
    assert.equal(host.written.length, 3);
    assert.equal(backend.machine.consumer('old'), undefined);
    assert.equal(backend.machine.queueStats('q')?.ready, 1);
    live.stop();
    const stopped = new QueueLiveness(new FakeHost('n9', backend), backend.machine, { peers: [], downAfterMs: 500, logger });
    stopped.stop();
    await assert.rejects(stopped.whenReady(), { message: 'the queue service stopped' });
  });
});
