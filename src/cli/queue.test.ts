// `quorumlog queue ...` in process against an in-process queue server
// (LocalQueueBackend): declare, publish, consume --count (acking) and
// --no-ack then `queue ack`, nack, stats as a table and as JSON, and errors
// printed with exit code 1.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { Command } from 'commander';
import { pino } from 'pino';
import { LocalQueueBackend } from '../server/queue/backend.js';
import { addQueueService, type QueueService } from '../server/queue/server.js';
import { addQueueCommands, formatStats } from './queue.js';

describe('quorumlog queue', () => {
  const backend = new LocalQueueBackend({ nodeId: 'n1' });
  const server = new grpc.Server();
  let service: QueueService;
  let endpoint = '';
  before(async () => {
    service = addQueueService(server, backend, { logger: pino({ level: 'silent' }) });
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    endpoint = `127.0.0.1:${port}`;
  });
  after(async () => {
    service.close();
    await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    process.exitCode = 0;
  });

  /** Runs one command line; returns its output lines and exit code. */
  async function run(...args: string[]): Promise<{ lines: string[]; code: number }> {
    const lines: string[] = [];
    const program = new Command('quorumlog').exitOverride();
    addQueueCommands(program, (l) => lines.push(l));
    process.exitCode = 0;
    await program.parseAsync(['node', 'quorumlog', 'queue', ...args, '--endpoints', endpoint, '--timeout-ms', '2000']);
    const code = Number(process.exitCode ?? 0);
    process.exitCode = 0;
    return { lines, code };
  }

  it('declares, publishes, consumes, acks and shows stats', async () => {
    assert.deepEqual(await run('declare', 'dead'), { lines: ['created dead'], code: 0 });
    assert.deepEqual(await run('declare', 'jobs', '--delivery-limit', '2', '--dead-letter-queue', 'dead'), { lines: ['created jobs'], code: 0 });
    assert.deepEqual(await run('declare', 'jobs', '--delivery-limit', '2', '--dead-letter-queue', 'dead'), { lines: ['exists jobs'], code: 0 });
    assert.deepEqual(await run('publish', 'jobs', 'a', 'b', 'c'), { lines: ['confirmed jobs #1', 'confirmed jobs #2', 'confirmed jobs #3'], code: 0 });
    const consumed = await run('consume', 'jobs', '--count', '2', '--prefetch', '1');
    assert.equal(consumed.code, 0);
    assert.match(consumed.lines[0] ?? '', /^consumer n1\./);
    assert.match(consumed.lines[1] ?? '', /tag=1 #1 delivery=1 a$/);
    assert.match(consumed.lines[2] ?? '', /tag=2 #2 delivery=1 b$/);

    // --no-ack: the consumer holds #3 while the command waits for a second delivery; ack it from "another terminal".
    const lines: string[] = [];
    const program = new Command('quorumlog').exitOverride();
    addQueueCommands(program, (l) => lines.push(l));
    const holding = program.parseAsync(['node', 'quorumlog', 'queue', 'consume', 'jobs', '--no-ack', '--count', '2', '--endpoints', endpoint]);
    const end = Date.now() + 3000;
    while (lines.length < 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    const consumerId = (lines[0] ?? '').split(' ')[1] as string;
    assert.deepEqual(await run('ack', consumerId, '1', '7'), { lines: ['acked 1; unknown tags 1'], code: 1 });
    await run('publish', 'jobs', 'd');
    await holding;
    assert.match(lines[2] ?? '', /tag=2 #4 delivery=1 d$/);

    const stats = await run('stats', 'jobs', '--json');
    const parsed = JSON.parse(stats.lines.join('\n')) as { acked: number; ready: number; enqueued: number }[];
    assert.deepEqual(parsed.map((s) => [s.enqueued, s.acked, s.ready]), [[4, 3, 1]]);
    const table = await run('stats');
    assert.match(table.lines[0] ?? '', /^QUEUE\s+READY\s+UNACKED/);
    assert.equal(table.lines.length, 3);
  });

  it('prints errors and exits 1', async () => {
    const r = await run('publish', 'nope', 'x');
    assert.equal(r.code, 1);
    assert.match(r.lines[0] ?? '', /^error: queue: queue nope does not exist/);
    assert.equal((await run('nack', 'someone', '1', '--discard')).code, 1);
    await assert.rejects(run('declare', 'x', '--delivery-limit', 'many'), { code: 'commander.invalidArgument', message: /--delivery-limit must be an integer/ });
  });

  it('formats a stats table', () => {
    const t = formatStats([{ queue: 'q', deliveryLimit: 0, deadLetterQueue: null, ready: 1, unacked: 2, consumers: 3, enqueued: 4, acked: 5, deadLettered: 6, dropped: 7 }]);
    assert.equal(t[1], 'q      1      2        3          4         5      6              7        -      -');
  });
});
