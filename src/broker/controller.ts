// A metadata controller: a voting node running the metadata service, and
// optionally the metadata gRPC API on a port of its own (until the node's
// client port serves it). The controllers of a cluster are its voters; they
// validate records and append them; brokers (broker.ts) follow as observers.

import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { Address, NodeConfig } from '../server/config.js';
import { RuntimeMetadataBackend } from '../server/metadata/runtime-backend.js';
import { addMetadataService } from '../server/metadata/service.js';
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
  readonly backend: RuntimeMetadataBackend;
  /** The metadata API's port, when one was asked for. */
  readonly apiPort: number | null;
  stop(): Promise<void>;
}

/** Starts a controller node; with `metadataApi`, also serves the metadata gRPC API there (port 0: any). */
export async function startController(config: NodeConfig, o: { logger?: Logger; metadataApi?: Address; machine?: MetadataStateMachineOptions; onFatal?: (err: unknown) => void } = {}): Promise<Controller> {
  let machine: MetadataStateMachine | null = null;
  const node = await startNode(config, {
    ...(o.logger !== undefined ? { logger: o.logger } : {}),
    ...(o.onFatal !== undefined ? { onFatal: o.onFatal } : {}),
    registerServices: (services) => {
      machine = attachMetadata(services, o.machine);
    },
  });
  const m = machine as MetadataStateMachine | null;
  if (m === null) {
    await node.stop();
    throw new Error('the node did not register its services');
  }
  const backend = new RuntimeMetadataBackend(node.runtime, m);
  let server: grpc.Server | null = null;
  let apiPort: number | null = null;
  let closeService = (): void => {};
  if (o.metadataApi !== undefined) {
    const srv = new grpc.Server();
    closeService = addMetadataService(srv, backend, { logger: node.logger.child({ component: 'metadata-api' }) }).close;
    const a = o.metadataApi;
    try {
      apiPort = await new Promise<number>((res, rej) => srv.bindAsync(`${a.host}:${a.port}`, grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
    } catch (e) {
      await node.stop();
      throw e;
    }
    server = srv;
  }
  let stopping: Promise<void> | null = null;
  return {
    node, machine: m, backend, apiPort,
    stop(): Promise<void> {
      stopping ??= (async () => {
        closeService();
        const s = server;
        if (s !== null) {
          await new Promise<void>((r) => {
            const t = setTimeout(() => { s.forceShutdown(); r(); }, 2000);
            s.tryShutdown(() => { clearTimeout(t); r(); });
          });
        }
        await node.stop();
      })();
      return stopping;
    },
  };
}
