// Runs one metadata controller process:
//   node controller-main.js --config <node config.json> [--metadata-port <port>]
// The node is a `quorumlog start` node with the metadata service registered,
// plus the metadata gRPC API on its own port when asked. SIGTERM/SIGINT stop
// it cleanly; a storage failure exits with code 1. Used by the broker tests
// (test/cluster/broker.test.ts) and by anyone who runs controllers before
// `quorumlog start` serves the metadata API itself.

import { loadConfigFile } from '../server/config.js';
import { startController } from './controller.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<void> {
  const configPath = arg('--config');
  if (configPath === undefined) throw new Error('usage: controller-main --config <file> [--metadata-port <port>]');
  const config = loadConfigFile(configPath);
  const port = arg('--metadata-port');
  const self = config.members.find((m) => m.id === config.nodeId);
  const c = await startController(config, {
    ...(port !== undefined ? { metadataApi: { host: self?.client.host ?? '127.0.0.1', port: Number(port) } } : {}),
    onFatal: (err) => {
      console.error('fatal:', err);
      process.exit(1);
    },
  });
  console.log(JSON.stringify({ started: config.nodeId, metadataPort: c.apiPort }));
  const stop = (): void => {
    void c.stop().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((e: unknown) => {
  console.error((e as Error).message);
  process.exit(2);
});
