// Issue 18: a node's client-protocol worker (src/server/protocol-workers) is
// killed with kill -9 while clients write through it. The node process
// survives, forks a new worker that serves the same port, and not one
// acknowledged write is lost: every put a client saw succeed, on the killed
// worker's node or another, reads back afterwards with its value, from every
// node. Writes that were in flight when the worker died have an unknown
// outcome (their clients saw the connection drop), as after any lost
// connection; they may or may not be there, and the test says how many were.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EtcdTestClient } from './etcd-client.js';
import { TestCluster, type TestNode } from './harness.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

for (const mode of ['push', 'pull'] as const) {
  test(`kill -9 of a protocol worker under load: the node keeps serving, no acknowledged write is lost (${mode} mode)`, { timeout: 120_000 }, async () => {
    const c = await TestCluster.start({ nodes: 3, mode });
    const clients: EtcdTestClient[] = [];
    try {
      const leader = await c.waitForLeader();
      const follower = c.nodes.find((n) => n !== leader) as TestNode;
      for (const target of [leader, follower]) {
        const before = await c.waitFor(target, (s) => s.protocolWorkers?.alive === 1, 10_000, `${target.id}'s protocol worker`);
        assert.equal(before.protocolWorkers?.pids.length, 1);
      }
      const victim = leader;
      const statusBefore = await c.waitFor(victim, () => true, 5000, `${victim.id}'s status`);
      const nodePid = statusBefore.pid;
      const workerPid = statusBefore.protocolWorkers?.pids[0] as number;
      assert.ok(workerPid > 0 && workerPid !== nodePid, `worker pid ${workerPid}, node pid ${nodePid}`);

      // Writers: 8 through the victim's worker, 4 through another node's; each puts its own keys, one at a time.
      const acked = new Map<string, string>();
      let inFlightAtFailure = 0;
      let failures = 0;
      let stop = false;
      let killedAt = Infinity;
      let ackedAfterRestartOnVictim = 0;
      let restartedAt = Infinity;
      const writer = async (endpoint: string, name: string, onVictim: boolean): Promise<void> => {
        const cl = new EtcdTestClient(endpoint, 5000);
        clients.push(cl);
        for (let n = 0; !stop; n++) {
          const key = `pw/${name}/${n}`;
          const value = `${name}-${n}-${'v'.repeat(64)}`;
          try {
            await cl.put(key, value);
            acked.set(key, value);
            if (onVictim && Date.now() > restartedAt) ackedAfterRestartOnVictim++;
          } catch {
            failures++;
            if (Date.now() >= killedAt) inFlightAtFailure++;
            await sleep(20);
          }
        }
      };
      const writers = [
        ...Array.from({ length: 8 }, (_, i) => writer(victim.endpoint, `v${i}`, true)),
        ...Array.from({ length: 4 }, (_, i) => writer(follower.endpoint, `f${i}`, false)),
      ];
      await sleep(1500);
      const ackedBeforeKill = acked.size;
      assert.ok(ackedBeforeKill > 50, `only ${ackedBeforeKill} puts acknowledged before the kill`);
      killedAt = Date.now();
      process.kill(workerPid, 'SIGKILL');
      // The node forks another worker on the same port; the writers' clients reconnect to it.
      const after = await c.waitFor(victim, (s) => (s.protocolWorkers?.restarts ?? 0) >= 1 && s.protocolWorkers?.alive === 1, 15_000,
        `${victim.id} replacing its killed protocol worker`);
      restartedAt = Date.now();
      assert.equal(after.pid, nodePid, 'the node process itself must survive its worker');
      const newWorker = after.protocolWorkers?.pids[0] as number;
      assert.ok(newWorker !== workerPid, `a new worker (pid ${newWorker}) replaced ${workerPid}`);
      const deadline = Date.now() + 15_000;
      while (ackedAfterRestartOnVictim < 50 && Date.now() < deadline) await sleep(100);
      stop = true;
      await Promise.all(writers);
      console.log(`${mode}: ${ackedBeforeKill} puts acknowledged before the kill, ${acked.size} in all; ${failures} failed `
        + `(${inFlightAtFailure} after the kill), ${ackedAfterRestartOnVictim} acknowledged through the new worker `
        + `${restartedAt - killedAt} ms after the kill`);
      assert.ok(ackedAfterRestartOnVictim >= 50, `the node served only ${ackedAfterRestartOnVictim} puts through its new worker`);

      // Every acknowledged write is there, with its value, on every node (linearizable reads, through each node's worker).
      for (const n of c.nodes) {
        const cl = new EtcdTestClient(n.endpoint, 10_000);
        clients.push(cl);
        const held = await cl.getPrefix('pw/');
        assert.ok(held.size >= acked.size, `${n.id} holds ${held.size} pw/ keys; ${acked.size} were acknowledged`);
        const missing: string[] = [];
        for (const [key, value] of acked) if (held.get(key) !== value) missing.push(key);
        assert.deepEqual(missing.slice(0, 10), [], `${n.id}: ${missing.length} acknowledged writes missing or wrong`);
      }
    } finally {
      for (const cl of clients) cl.close();
      await c.close();
    }
  });
}
