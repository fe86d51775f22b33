// A metadata controller: a voting node running the metadata service. Every
// `quorumlog start` node registers the service and serves its gRPC API
// (quorumlog.metadata.v1) on its client port, so a cluster's voters are its
// controllers; startController() is for an application that embeds one. They
// validate records and append them; brokers (broker.ts) follow as observers.

import type { Logger } from 'pino';
import type { NodeConfig } from '../server/config.js';
import { SYSTEM_STAMP } from '../services/auth/codec.js';
import { RuntimeMetadataBackend } from '../server/metadata/runtime-backend.js';
import { startNode, type RunningNode } from '../server/node-process.js';
import type { ServiceStateMachine } from '../services/machine.js';
import { MetadataStateMachine, type MetadataStateMachineOptions } from '../services/metadata/state-machine.js';

/**
 * The metadata machine of `services`: the one already registered (a node
 * that runs the service by default), or a new one registered now.
 */
export function attachMetadata(services: ServiceStateMachine, opts: MetadataStateMachineOptions = {}): MetadataStateMachine {
  const existing = services.service('metadata');
  if (existing instanceof MetadataStateMachine) return existing;
  if (existing !== undefined) throw new Error('the metadata service tag is taken by another machine');
  const m = new MetadataStateMachine(opts);
  services.register('metadata', m);
  return m;
}

/** A running controller. */
export interface Controller {
  readonly node: RunningNode;
  readonly machine: MetadataStateMachine;
  /** Writes through the log and reads this controller's applied image. */
  readonly backend: RuntimeMetadataBackend;
  stop(): Promise<void>;
}

/** Starts a controller node (a voter in `config`); its client port serves the metadata API like any node's. */
export async function startController(config: NodeConfig, o: { logger?: Logger; onFatal?: (err: unknown) => void } = {}): Promise<Controller> {
  // An embedded node serves its client port on the application's own thread: a library forks no processes of its own.
  const node = await startNode({ ...config, protocolWorkers: 0 }, {
    ...(o.logger !== undefined ? { logger: o.logger } : {}),
    ...(o.onFatal !== undefined ? { onFatal: o.onFatal } : {}),
  });
  const machine = node.services.service('metadata');
  if (!(machine instanceof MetadataStateMachine)) {
    await node.stop();
    throw new Error('the node does not run the metadata service');
  }
  return { node, machine, backend: new RuntimeMetadataBackend(node.runtime, machine, SYSTEM_STAMP), stop: () => node.stop() };
}
