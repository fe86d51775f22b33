// For the runtime's own tests (runtime.test.ts, election-requests.test.ts):
// three NodeRuntimes on real stores (a temporary directory, fsync on) over an
// in-memory network that can partition them, each applying to a ListMachine.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { nodeId, type NodeId } from '../protocol/ids.js';
import { NodeFileSystem } from '../storage/fs.js';
import { MemoryNetwork, MemoryTransport } from '../transport/memory.js';
import { Prng } from '../util/prng.js';
import { NodeStorage } from './node-storage.js';
import { NodeRuntime, type StateMachine } from './runtime.js';

/** Appends each command to a list; its result is the list's length. */
export class ListMachine implements StateMachine {
  items: string[] = [];
  apply(command: Uint8Array): unknown {
    this.items.push(new TextDecoder().decode(command));
    return this.items.length;
  }
  snapshot(): Uint8Array {
    return new TextEncoder().encode(JSON.stringify(this.items));
  }
  restore(data: Uint8Array): void {
    this.items = JSON.parse(new TextDecoder().decode(data)) as string[];
  }
}

export interface MemoryClusterOptions {
  /** Seeds the nodes' election randomness: node i gets Prng(seed + i). */
  readonly seed: number;
  readonly requestTimeoutMs: number;
  readonly maxPendingRequests?: number;
  readonly orphanGraceMs?: number;
}

export interface MemoryNode {
  readonly id: NodeId;
  readonly sm: ListMachine;
  readonly runtime: NodeRuntime;
}

export interface MemoryCluster {
  readonly nodes: readonly MemoryNode[];
  readonly net: MemoryNetwork;
  readonly ids: readonly NodeId[];
  /** The first node found leading (not one of `exclude`), within 5 s. */
  leader(exclude?: readonly NodeId[]): Promise<MemoryNode>;
  /** Waits until every node in `on` has applied as far as the first of them has committed, then returns their lists. */
  settled(on: readonly MemoryNode[]): Promise<string[][]>;
  /** Stops every node and removes the directory. */
  close(): Promise<void>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Starts three nodes a, b, c (tickMs 5, elections in 10-20 ticks). */
export async function startMemoryCluster(mode: 'push' | 'pull', o: MemoryClusterOptions): Promise<MemoryCluster> {
  const ids = ['a', 'b', 'c'].map(nodeId);
  const net = new MemoryNetwork();
  const dir = mkdtempSync(join(tmpdir(), 'quorumlog-runtime-'));
  const nodes = ids.map((id, i): MemoryNode => {
    const sm = new ListMachine();
    const runtime = new NodeRuntime({
      raft: {
        id, voters: ids, replication: mode, random: new Prng(o.seed + i), electionTimeoutMinTicks: 10, electionTimeoutMaxTicks: 20,
        heartbeatIntervalTicks: 2, fetchMaxWaitTicks: 4,
      },
      storage: new NodeStorage(new NodeFileSystem(), join(dir, id)),
      transport: new MemoryTransport(net, id, ids.filter((x) => x !== id)),
      stateMachine: sm,
      logger: pino({ level: 'silent' }),
      tickMs: 5,
      requestTimeoutMs: o.requestTimeoutMs,
      ...(o.maxPendingRequests !== undefined ? { maxPendingRequests: o.maxPendingRequests } : {}),
      ...(o.orphanGraceMs !== undefined ? { orphanGraceMs: o.orphanGraceMs } : {}),
    });
    return { id, sm, runtime };
  });
  await Promise.all(nodes.map((n) => n.runtime.start()));
  return {
    nodes, net, ids,
    async leader(exclude = []) {
      for (let i = 0; i < 1000; i++) {
        const l = nodes.find((n) => n.runtime.isLeader() && !exclude.includes(n.id));
        if (l !== undefined) return l;
        await sleep(5);
      }
      throw new Error('no leader');
    },
    async settled(on) {
      for (let i = 0; i < 1000; i++) {
        const target = Math.max(...on.map((n) => n.runtime.commitIndex));
        if (on.every((n) => n.runtime.appliedIndex >= target)) break;
        await sleep(5);
      }
      return on.map((n) => n.sm.items);
    },
    async close() {
      await Promise.all(nodes.map((n) => n.runtime.stop()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
