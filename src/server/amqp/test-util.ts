// Helpers for tests that drive the AMQP listener with amqplib (in process,
// and against a real cluster).

import assert from 'node:assert/strict';
import type { ConfirmChannel, Options } from 'amqplib';

/** The error a promise rejects with (it must reject): amqplib's channel or connection close, with the reply code and text. */
export async function refusal(p: Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await p;
  } catch (e) {
    return e as { code: number; message: string };
  }
  assert.fail('expected a refusal');
}

/** Publishes on a confirm channel and resolves once the broker confirms it (rejects on a nack). */
export function publishConfirmed(ch: ConfirmChannel, exchange: string, routingKey: string, body: Buffer | string, opts: Options.Publish = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    ch.publish(exchange, routingKey, typeof body === 'string' ? Buffer.from(body) : body, opts, (err) => (err ? reject(err as Error) : resolve()));
  });
}
