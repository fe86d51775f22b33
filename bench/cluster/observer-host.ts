// Runs several observer nodes inside ONE Node process, for the scale
// benchmark (bench/scale.ts): 64 observers as 64 processes would not fit on a
// 2-core machine beside the voters, and issue 5 allows observers to share
// processes as long as each has its own connection and its own log. Each
// observer is started with `startNode` from its own config file (its own data
// directory, peer, client and metrics ports), logs at 'warn', and all of them
// are stopped cleanly on SIGTERM or SIGINT.
//
//   node .build/bench-g/bench/cluster/observer-host.js DIR/o1/config.json DIR/o2/config.json ...
//
// Prints one JSON line `{"ready":[ids...],"pid":N}` on stdout once every
// observer listens, so that a parent can wait for it.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseConfig, type NodeConfig } from '../../src/server/config.js';
import { startNode, type RunningNode } from '../../src/server/node-process.js';

/** Reads an observer's config file, forcing logLevel 'warn' (K nodes share one stdout) and no protocol workers. */
export function observerConfig(path: string): NodeConfig {
  const raw = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  // Many observers share this process: each serves its client port on this thread rather than forking a worker.
  const config = parseConfig({ ...raw, logLevel: 'warn', protocolWorkers: 0 });
  const self = config.members.find((m) => m.id === config.nodeId);
  if (self?.role !== 'observer') throw new Error(`${path}: node ${config.nodeId} is not an observer in its member list`);
  return config;
}

/**
 * Starts one observer per config file in this process; rejects (after
 * stopping the ones already started) if any fails to start.
 */
export async function startObservers(configPaths: readonly string[], onFatal: (id: string, err: unknown) => void): Promise<RunningNode[]> {
  const configs = configPaths.map(observerConfig);
  const running: RunningNode[] = [];
  try {
    // One at a time: each claims its data directory and binds three ports;
    // a failure names the observer that failed.
    for (const c of configs) running.push(await startNode(c, { onFatal: (err) => onFatal(c.nodeId, err) }));
  } catch (e) {
    await Promise.allSettled(running.map((n) => n.stop()));
    throw e;
  }
  return running;
}

async function main(argv: readonly string[]): Promise<void> {
  if (argv.length === 0) {
    console.error('usage: observer-host.js CONFIG.json [CONFIG.json ...]');
    process.exit(2);
  }
  let nodes: RunningNode[] = [];
  let stopping: Promise<void> | null = null;
  const stopAll = (code: number): Promise<void> => {
    stopping ??= Promise.allSettled(nodes.map((n) => n.stop())).then(() => process.exit(code));
    return stopping;
  };
  process.once('SIGTERM', () => void stopAll(0));
  process.once('SIGINT', () => void stopAll(0));
  nodes = await startObservers(argv, (id, err) => {
    console.error(`observer ${id} failed: ${String(err)}`);
    void stopAll(1);
  });
  process.stdout.write(JSON.stringify({ ready: nodes.map((n) => n.config.nodeId), pid: process.pid }) + '\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
