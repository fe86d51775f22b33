// `quorumlog queue declare|publish|consume|ack|nack|stats`: the quorum queue
// verbs, over the typed client (src/client/queue.ts). Every verb takes
// --endpoints (tried in order) and --timeout-ms. Registered in
// src/cli/quorumlog.ts with addQueueCommands(program).

import { Command, InvalidArgumentError } from 'commander';
import { QueueClient, type Delivery } from '../client/queue.js';
import type { GrpcQueueStats } from '../services/queue/types.js';
import { addClientCredentialOptions, clientCredentials, clientOptions } from './credentials.js';
import { isTransportError } from './transport-errors.js';

/** Where the verbs connect. */
export interface QueueVerbOptions {
  readonly endpoints: readonly string[];
  readonly timeoutMs: number;
}

function intArg(what: string, min: number, max: number): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (!/^[0-9]+$/.test(v) || !Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${what} must be an integer in [${min}, ${max}]`);
    return n;
  };
}

function client(o: QueueVerbOptions): QueueClient {
  return new QueueClient({ endpoints: o.endpoints, timeoutMs: o.timeoutMs, retryForMs: o.timeoutMs, credentials: clientCredentials(), clientOptions: clientOptions() });
}

/** `queue declare`: prints "created NAME" or "exists NAME". */
export async function runQueueDeclare(o: QueueVerbOptions, name: string, opts: { deliveryLimit: number; deadLetterQueue: string | null }, out: (l: string) => void): Promise<number> {
  const c = client(o);
  try {
    const r = await c.declare(name, opts);
    out(`${r.created ? 'created' : 'exists'} ${name}`);
    return 0;
  } finally {
    c.close();
  }
}

/** `queue publish`: one message per body; prints each message's id once it is confirmed (committed). */
export async function runQueuePublish(o: QueueVerbOptions, name: string, bodies: readonly string[], out: (l: string) => void): Promise<number> {
  const c = client(o);
  try {
    for (const b of bodies) out(`confirmed ${name} #${await c.publish(name, b)}`);
    return 0;
  } finally {
    c.close();
  }
}

/** One printed line per delivery: consumer, tag, message id, delivery count, body (UTF-8). */
export function formatDelivery(d: Delivery): string {
  const origin = d.deadLetter === null ? '' : ` [dead-lettered from ${d.deadLetter.queue} #${d.deadLetter.messageId}: ${d.deadLetter.reason}]`;
  return `${d.consumerId} tag=${d.deliveryTag} #${d.messageId} delivery=${d.deliveryCount}${origin} ${Buffer.from(d.body).toString('utf8')}`;
}

/**
 * `queue consume`: prints deliveries and acks each after printing (or leaves
 * them unacked with `ack: false`, for `queue ack` from elsewhere); stops after
 * `count` deliveries, or on Ctrl-C (the consumer is cancelled and what it
 * holds unacked goes back to the queue).
 */
export async function runQueueConsume(o: QueueVerbOptions, name: string, opts: { prefetch: number; count: number | null; ack: boolean }, out: (l: string) => void): Promise<number> {
  const c = client(o);
  try {
    const consumer = await c.consume(name, { prefetch: opts.prefetch });
    out(`consumer ${consumer.id}`);
    const stop = (): void => consumer.cancel();
    process.once('SIGINT', stop);
    let seen = 0;
    try {
      if (opts.count === 0) return 0;
      for await (const d of consumer) {
        out(formatDelivery(d));
        if (opts.ack) await d.ack();
        if (opts.count !== null && ++seen >= opts.count) break;
      }
    } finally {
      process.removeListener('SIGINT', stop);
      consumer.cancel();
    }
    return 0;
  } finally {
    c.close();
  }
}

/** `queue ack` / `queue nack`: settles a consumer's deliveries by tag. */
export async function runQueueSettle(o: QueueVerbOptions, kind: 'ack' | 'nack', consumerId: string, tags: readonly number[], discard: boolean, out: (l: string) => void): Promise<number> {
  const c = client(o);
  try {
    const r = kind === 'ack' ? await c.ack(consumerId, tags) : await c.nack(consumerId, tags, { discard });
    out(`${kind === 'ack' ? 'acked' : discard ? 'discarded' : 'returned'} ${r.settled}; unknown tags ${r.unknown}`);
    return r.unknown === 0 ? 0 : 1;
  } finally {
    c.close();
  }
}

/** A fixed-width table of queue statistics. */
export function formatStats(stats: readonly GrpcQueueStats[]): string[] {
  const header = ['QUEUE', 'READY', 'UNACKED', 'CONSUMERS', 'ENQUEUED', 'ACKED', 'DEAD-LETTERED', 'DROPPED', 'LIMIT', 'DLQ'];
  const rows = stats.map((s) => [s.queue, s.ready, s.unacked, s.consumers, s.enqueued, s.acked, s.deadLettered, s.dropped, s.deliveryLimit === 0 ? '-' : s.deliveryLimit, s.deadLetterQueue ?? '-'].map(String));
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  return [header, ...rows].map((r) => r.map((cell, i) => cell.padEnd(widths[i] as number)).join('  ').trimEnd());
}

/** `queue stats`: one queue or all, as a table or JSON. */
export async function runQueueStats(o: QueueVerbOptions, name: string | undefined, json: boolean, out: (l: string) => void): Promise<number> {
  const c = client(o);
  try {
    const stats = await c.stats(name);
    if (json) out(JSON.stringify(stats, null, 2));
    else for (const l of formatStats(stats)) out(l);
    return 0;
  } finally {
    c.close();
  }
}

/** Adds `queue <verb>` to the program. */
export function addQueueCommands(program: Command, out: (line: string) => void = console.log): Command {
  const queue = program.command('queue').description('quorum queues: durable FIFO queues replicated through the log (see docs/QUEUES.md)');
  const verb = (name: string, description: string): Command => addClientCredentialOptions(queue.command(name).description(description))
    .option('--endpoints <list>', 'client endpoints, tried in order', '127.0.0.1:2379,127.0.0.1:2380,127.0.0.1:2381')
    .option('--timeout-ms <ms>', 'per-request timeout', '5000');
  const conn = (o: { endpoints: string; timeoutMs: string }): QueueVerbOptions => ({
    endpoints: o.endpoints.split(',').map((e) => e.trim()).filter((e) => e !== ''), timeoutMs: intArg('--timeout-ms', 1, 3_600_000)(o.timeoutMs),
  });
  const run = async (fn: () => Promise<number>): Promise<void> => {
    try {
      process.exitCode = await fn();
    } catch (e) {
      if (isTransportError(e)) throw e; // one line on stderr from the program (transport-errors.ts)
      out(`error: ${(e as Error).message}`);
      process.exitCode = 1;
    }
  };
  verb('declare', 'create a queue (or check that it exists with the same settings)')
    .argument('<name>')
    .option('--delivery-limit <n>', 'most deliveries per message; past it the message is dead-lettered (0 = no limit)', intArg('--delivery-limit', 0, 1_000_000), 0)
    .option('--dead-letter-queue <name>', 'where messages past the limit or discarded go (default: dropped and counted)')
    .action(async (name: string, o: { endpoints: string; timeoutMs: string; deliveryLimit: number; deadLetterQueue?: string }) => {
      await run(() => runQueueDeclare(conn(o), name, { deliveryLimit: o.deliveryLimit, deadLetterQueue: o.deadLetterQueue ?? null }, out));
    });
  verb('publish', 'publish messages; each is printed with its id once confirmed (committed)')
    .argument('<name>').argument('<body...>')
    .action(async (name: string, bodies: string[], o: { endpoints: string; timeoutMs: string }) => {
      await run(() => runQueuePublish(conn(o), name, bodies, out));
    });
  verb('consume', 'print deliveries (acking each) until Ctrl-C or --count')
    .argument('<name>')
    .option('--prefetch <n>', 'most unacknowledged deliveries at a time', intArg('--prefetch', 1, 10_000), 10)
    .option('--count <n>', 'stop after this many deliveries', intArg('--count', 0, Number.MAX_SAFE_INTEGER))
    .option('--no-ack', 'leave deliveries unacknowledged (ack them with `quorumlog queue ack` while this runs)')
    .action(async (name: string, o: { endpoints: string; timeoutMs: string; prefetch: number; count?: number; ack: boolean }) => {
      await run(() => runQueueConsume(conn(o), name, { prefetch: o.prefetch, count: o.count ?? null, ack: o.ack }, out));
    });
  verb('ack', 'acknowledge deliveries of a consumer by tag')
    .argument('<consumer>').argument('<tags...>')
    .action(async (consumer: string, tags: string[], o: { endpoints: string; timeoutMs: string }) => {
      await run(() => runQueueSettle(conn(o), 'ack', consumer, tags.map(intArg('tag', 1, Number.MAX_SAFE_INTEGER)), false, out));
    });
  verb('nack', 'return deliveries of a consumer to the queue (or dead-letter them with --discard)')
    .argument('<consumer>').argument('<tags...>')
    .option('--discard', 'dead-letter instead of requeueing')
    .action(async (consumer: string, tags: string[], o: { endpoints: string; timeoutMs: string; discard?: boolean }) => {
      await run(() => runQueueSettle(conn(o), 'nack', consumer, tags.map(intArg('tag', 1, Number.MAX_SAFE_INTEGER)), o.discard === true, out));
    });
  verb('stats', 'ready, unacked, consumers and counters of one queue or all')
    .argument('[name]')
    .option('--json', 'print JSON')
    .action(async (name: string | undefined, o: { endpoints: string; timeoutMs: string; json?: boolean }) => {
      await run(() => runQueueStats(conn(o), name, o.json === true, out));
    });
  return queue;
}
