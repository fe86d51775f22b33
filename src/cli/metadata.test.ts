// `quorumlog metadata` verbs in process, against the metadata gRPC service
// over the unreplicated backend.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { Command } from 'commander';
import { pino } from 'pino';
import { LocalMetadataBackend } from '../server/metadata/local-backend.js';
import { addMetadataService } from '../server/metadata/service.js';
import { addMetadataCommands, parseAssignment } from './metadata.js';

async function withServer(fn: (endpoint: string, backend: LocalMetadataBackend) => Promise<void>): Promise<void> {
  const server = new grpc.Server();
  const backend = new LocalMetadataBackend();
  const svc = addMetadataService(server, backend, { logger: pino({ level: 'silent' }) });
  const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  try {
    await fn(`127.0.0.1:${port}`, backend);
  } finally {
    svc.close();
    await new Promise<void>((r) => server.tryShutdown(() => r()));
  }
}

/** Runs `quorumlog metadata <args>`; returns the exit code and the printed lines. */
async function run(endpoint: string, ...args: string[]): Promise<{ code: number; lines: string[] }> {
  const lines: string[] = [];
  const program = new Command('quorumlog').exitOverride();
  addMetadataCommands(program, (l) => lines.push(l));
  process.exitCode = 0;
  await program.parseAsync(['node', 'quorumlog', 'metadata', ...args, '--endpoints', endpoint]);
  const code = Number(process.exitCode ?? 0);
  process.exitCode = 0;
  return { code, lines };
}

test('metadata verbs write records, print the image and follow the log', async () => {
  await withServer(async (ep, backend) => {
    let r = await run(ep, 'register-broker', '--id', '1', '--host', 'b1.local', '--port', '9092', '--rack', 'east');
    assert.deepEqual(r, { code: 0, lines: ['OK offset 1 (log index 1): registerBroker 1 epoch=1 b1.local:9092 rack=east'] });
    await run(ep, 'register-broker', '--id', '2', '--host', 'b2.local', '--port', '9092');
    r = await run(ep, 'create-topic', 'orders', '--partitions', '2', '--config', 'retention.ms=1000', '--config', 'cleanup.policy=compact');
    assert.equal(r.code, 0, r.lines.join('\n'));
    r = await run(ep, 'assign', 'orders', '0=1,2', '1=2');
    assert.match(r.lines[0] ?? '', /^OK offset 4 .*assignPartitions orders 0=1,2 1=2$/);
    assert.equal((await run(ep, 'set-config', 'num.io.threads', '8', '--cluster')).code, 0);
    assert.equal((await run(ep, 'set-config', 'message.max.bytes', '100', '--broker', '2')).code, 0);
    assert.equal((await run(ep, 'set-config', 'retention.ms', '--topic', 'orders', '--delete')).code, 0);
    r = await run(ep, 'fence', '--id', '2');
    assert.match(r.lines[0] ?? '', /fenceBroker 2 epoch=1$/, 'the epoch comes from the image');
    r = await run(ep, 'assign', 'orders', '1=2');
    assert.deepEqual(r, { code: 1, lines: ['rejected (brokerFenced): orders-1: broker 2 is fenced'] });
    r = await run(ep, 'set-config', 'x', '1');
    assert.equal(r.code, 2, 'no resource given');
    r = await run(ep, 'image');
    assert.deepEqual(r.lines, [
      'offset 8',
      'broker 1 epoch=1 b1.local:9092 rack=east',
      'broker 2 epoch=1 b2.local:9092 FENCED',
      'topic orders id=3 partitions=2 cleanup.policy=compact',
      '  orders-0 replicas=1,2',
      '  orders-1 replicas=2',
      'broker-config 2 message.max.bytes=100',
      'cluster-config num.io.threads=8',
    ]);
    const json = await run(ep, 'image', '--json');
    assert.equal((JSON.parse(json.lines.join('\n')) as { offset: number }).offset, 8);
    r = await run(ep, 'follow', '--from', '7', '--limit', '2');
    assert.deepEqual(r.lines, ['7 (log index 7): setConfig topic orders retention.ms (deleted)', '8 (log index 8): fenceBroker 2 epoch=1']);
    r = await run(ep, 'follow', '--from', '8', '--limit', '1', '--json');
    assert.deepEqual(JSON.parse(r.lines[0] ?? ''), { type: 'record', offset: 8, index: 8, record: { type: 'fenceBroker', brokerId: 2, epoch: 1 } });
    assert.equal(backend.machine.image.offset, 8);
  });
});

test('assignments parse strictly', () => {
  assert.deepEqual(parseAssignment('3=1,2,7'), { partition: 3, replicas: [1, 2, 7] });
  for (const bad of ['3', '=1', '3=', '3=1,,2', 'a=1', '3=1 2']) assert.throws(() => parseAssignment(bad), { name: 'MetadataUsageError' });
});
