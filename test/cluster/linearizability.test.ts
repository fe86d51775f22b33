// Linearizability of the key-value service under faults, on real processes:
// concurrent clients do put, get and compare-and-swap (Txn) on a few keys,
// each through its own node, while a nemesis kills the leader with kill -9
// and restarts it, and pauses the leader or a follower past the election
// timeout. The history
// (timed-out and failed operations marked unknown) must pass the checker in
// test/linearizability; the run also checks that writes did happen, so an
// idle cluster cannot pass by accident.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkLinearizable } from '../linearizability/checker.js';
import { HistoryRecorder } from '../linearizability/history.js';
import type { KvOp } from '../linearizability/checker.js';
import { EtcdTestClient } from './etcd-client.js';
import { TestCluster, type TestNode } from './harness.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const RUN_MS = Number(process.env['QUORUMLOG_LIN_RUN_MS'] ?? 12_000);
const KEYS = ['a', 'b', 'c'];
const CLIENTS = 6;

for (const mode of ['push', 'pull'] as const) {
  test(`the key-value service stays linearizable under kill -9 and SIGSTOP (${mode} mode)`, { timeout: 180_000 }, async () => {
    const c = await TestCluster.start({ nodes: 3, mode });
    const history = new HistoryRecorder();
    const clients: EtcdTestClient[] = [];
    let stop = false;
    let completedWrites = 0;
    try {
      await c.waitForLeader();
      const worker = async (id: number): Promise<void> => {
        let seq = 0;
        while (!stop) {
          const node = c.nodes[(id + seq) % c.nodes.length] as TestNode;
          const cl = new EtcdTestClient(node.endpoint, 1500);
          clients.push(cl);
          const key = KEYS[(id * 7 + seq) % KEYS.length] as string;
          const r = (seq * 31 + id * 17) % 10;
          const value = `c${id}-${seq}`;
          seq++;
          const op: KvOp = r < 4 ? { kind: 'get', key } : r < 7 ? { kind: 'put', key, value }
            : { kind: 'cas', key, expected: `c${(id + 1) % CLIENTS}-${Math.max(0, seq - 3)}`, value };
          const h = history.begin(id, op);
          try {
            switch (op.kind) {
              case 'get': history.end(h, { kind: 'get', value: await cl.get(key) }); break;
              case 'put': await cl.put(key, op.value); history.end(h, { kind: 'put' }); completedWrites++; break;
              case 'cas': history.end(h, { kind: 'cas', ok: await cl.cas(key, op.expected, op.value) }); completedWrites++; break;
            }
          } catch {
            history.unknown(h); // timed out or failed: it may or may not have taken effect
            await sleep(50);
          } finally {
            cl.close();
            clients.splice(clients.indexOf(cl), 1);
          }
        }
      };
      const nemesis = async (): Promise<void> => {
        const until = Date.now() + RUN_MS;
        let round = 0;
        while (Date.now() < until) {
          await sleep(1500);
          const leader = await c.waitForLeader(20_000).catch(() => null);
          if (leader === null) continue;
          switch (round++ % 3) {
            case 0:
              await leader.kill9();
              await sleep(800);
              leader.start();
              break;
            case 1:
              leader.pause();
              await sleep(1500); // past the 500-1000 ms election timeout
              leader.resume();
              break;
            default: {
              // A paused follower falls behind; requests queued meanwhile are
              // answered the moment it wakes, before it has caught up.
              const follower = c.nodes.find((n) => n !== leader && n.running) as TestNode;
              follower.pause();
              await sleep(1500);
              follower.resume();
            }
          }
        }
        stop = true;
      };
      await Promise.all([nemesis(), ...Array.from({ length: CLIENTS }, (_, i) => worker(i))]);
      const ops = history.operations();
      const result = checkLinearizable(ops, { timeBudgetMs: 60_000 });
      const known = ops.filter((o) => o.output !== null).length;
      console.log(`${mode}: ${ops.length} operations (${known} with known outcome, ${completedWrites} acknowledged writes); linearizable: ${result.ok}${result.timedOut ? ' (check timed out)' : ''}`);
      assert.ok(completedWrites > 20, `too few writes completed (${completedWrites}) for the check to mean anything`);
      assert.equal(result.timedOut, false, 'the checker ran out of time');
      assert.ok(result.ok, `not linearizable: ${result.failure?.key}: ${result.failure?.explanation}`);
    } finally {
      stop = true;
      for (const cl of clients) cl.close();
      await c.close();
    }
  });
}
