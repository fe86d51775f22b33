// A node process with the quorum queue service, for the kill -9 tests
// (kill9.test.ts): `node test-node.js <config.json> <queuePort>` starts the
// node of that config (a NodeConfig as JSON) with the queue state machine
// registered, the liveness monitor, and the queue gRPC service on
// 127.0.0.1:<queuePort>; prints "ready" when it serves; SIGTERM stops it.
// Test support only: `quorumlog start` serves queues once the node process
// wires them (see docs/QUEUES.md).

import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { destination, pino } from 'pino';
import { attachQueue, QueueStateMachine } from '../../services/queue/state-machine.js';
import type { NodeConfig } from '../config.js';
import { startNode } from '../node-process.js';
import { startQueueRuntime } from './runtime-backend.js';
import { addQueueService } from './server.js';

async function main(): Promise<void> {
  const [configPath, port] = process.argv.slice(2);
  if (configPath === undefined || port === undefined) throw new Error('usage: test-node <config.json> <queuePort>');
  const config = JSON.parse(readFileSync(configPath, 'utf8')) as NodeConfig;
  const logger = pino({ level: config.logLevel, base: { node: config.nodeId } }, destination(2)); // stdout says "ready"; logs go to stderr
  let machine = new QueueStateMachine();
  const node = await startNode(config, {
    logger, registerServices: (s) => {
      machine = attachQueue(s); // the node's own, when it runs the queue service already
    },
    onFatal: (err) => {
      logger.fatal({ err }, 'fatal');
      process.exit(70);
    },
  });
  const rt = startQueueRuntime(node.runtime, machine, {
    peers: config.members.filter((m) => m.role === 'voter').map((m) => m.id),
    downAfterMs: config.electionTimeoutMaxTicks * config.tickMs,
    logger: logger.child({ component: 'queue' }),
  });
  const server = new grpc.Server();
  const service = addQueueService(server, rt.backend, { logger: logger.child({ component: 'queue-api' }) });
  await new Promise<void>((resolve, reject) => server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve())));
  process.stdout.write('ready\n');
  process.once('SIGTERM', () => {
    service.close();
    server.forceShutdown();
    rt.stop();
    node.stop().then(() => process.exit(0), () => process.exit(1));
  });
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(2);
});
