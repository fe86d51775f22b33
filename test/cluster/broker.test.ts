// The metadata log on real processes: three controllers (`quorumlog start`
// voters, whose client ports serve the metadata API) and brokers embedded
// in this process as observers (src/broker), in pull mode — the brokers'
// native mode — and in push mode. Records written through the controllers'
// API and through a broker reach every broker's image, equal to the
// controllers'; a broker restarted from its disk catches up from its own
// position; a broker that starts after the controllers compacted their log
// catches up through a snapshot; lag() falls to zero. Brokers that register
// themselves are unfenced once caught up and fenced by a controlled shutdown.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { Command } from 'commander';
import { startBroker, type Broker } from '../../src/broker/broker.js';
import { addMetadataCommands } from '../../src/cli/metadata.js';
import { prepareCluster, type ClusterLayout } from '../../src/cli/cluster.js';
import { loadConfigFile } from '../../src/server/config.js';
import { MetadataClient } from '../../src/server/metadata/client.js';
import { encodeImage } from '../../src/services/metadata/codec.js';
import type { MetadataEvent } from '../../src/services/metadata/state-machine.js';
import type { AcceptedRecord, MetadataRecord } from '../../src/services/metadata/types.js';
import { TestCluster } from './harness.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Three controllers: `quorumlog start` voters, whose client ports serve the metadata API; the observers' configs are for brokers. */
interface Cluster {
  readonly cluster: TestCluster;
  readonly layout: ClusterLayout;
  readonly client: MetadataClient;
}

async function startControllers(mode: 'push' | 'pull', brokers: number): Promise<Cluster> {
  const cluster = await TestCluster.start({ nodes: 3, mode, observers: brokers, extra: { logLevel: 'warn', snapshotEveryEntries: 20 } });
  // Every controller answers its status once its client port is open (the metrics port opens after it).
  for (const n of cluster.nodes.filter((n) => n.member.role === 'voter')) await cluster.waitFor(n, () => true, 30_000, `${n.id} serving`);
  return { cluster, layout: cluster.layout, client: new MetadataClient(cluster.endpoints, 5000) };
}

async function stopControllers(c: Cluster): Promise<void> {
  c.client.close();
  await c.cluster.close();
}

/** Retries a write while the cluster elects its first leader (or while a controller's API starts). */
async function writeRetrying(c: Cluster, record: MetadataRecord, timeoutMs = 30_000): Promise<AcceptedRecord> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await c.client.write(record);
    } catch (e) {
      if (Date.now() > deadline || (e as Error).name === 'MetadataRejectedError') throw e;
      await sleep(100);
    }
  }
}

function broker(c: Cluster, id: string): Promise<Broker> {
  return startBroker({ config: loadConfigFile(c.layout.configPath(id)), logger: pino({ level: 'warn' }) });
}

async function waitForLag0(b: Broker, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (b.lag().entries !== 0 || b.lag().appliedIndex === 0) {
    if (Date.now() > deadline) throw new Error(`${b.id}: lag stayed at ${JSON.stringify(b.lag())}`);
    await sleep(20);
  }
}

for (const mode of ['pull', 'push'] as const) {
  test(`brokers follow the metadata log, restart from their disk, and catch up through a snapshot (${mode} mode)`, { timeout: 180_000 }, async () => {
    const c = await startControllers(mode, 3);
    const brokers: Broker[] = [];
    try {
      const [b1, b2] = [await broker(c, 'o1'), await broker(c, 'o2')];
      brokers.push(b1, b2);
      const heard: MetadataEvent[] = [];
      b1.subscribe((e) => heard.push(e));
      // Records through the controllers' API.
      await writeRetrying(c, { type: 'registerBroker', brokerId: 1, epoch: 0, host: 'b1.local', port: 9092, rack: 'r1', fenced: false });
      await c.client.write({ type: 'registerBroker', brokerId: 2, epoch: 0, host: 'b2.local', port: 9092, rack: 'r2', fenced: false });
      await c.client.write({ type: 'registerBroker', brokerId: 3, epoch: 0, host: 'b3.local', port: 9092, rack: null, fenced: false });
      await c.client.write({ type: 'createTopic', name: 'orders', partitions: 3, configs: [{ key: 'retention.ms', value: '604800000' }] });
      await c.client.write({ type: 'assignPartitions', topic: 'orders', assignments: [0, 1, 2].map((p) => ({ partition: p, replicas: [1 + p, 1 + ((p + 1) % 3)] })) });
      await c.client.write({ type: 'setConfig', resource: { type: 'cluster' }, key: 'num.io.threads', value: '8' });
      // A rejected record changes nothing.
      await assert.rejects(c.client.write({ type: 'createTopic', name: 'orders', partitions: 1, configs: [] }), /already exists/);
      // A record through a broker (forwarded to the leader), answered once the broker applied it.
      const viaBroker = await b2.write({ type: 'fenceBroker', brokerId: 3, epoch: 1 });
      assert.equal(viaBroker.offset, 7);
      assert.equal(b2.image().brokers.get(3)?.fenced, true);
      const want = await c.client.image();
      assert.equal(want.offset, 7);
      for (const b of brokers) {
        const img = await b.waitForOffset(7);
        assert.deepEqual(encodeImage(img), encodeImage(want), `${b.id}'s image differs from the controllers'`);
        await waitForLag0(b);
      }
      assert.deepEqual(heard.map((e) => (e.type === 'record' ? e.offset : 'reset')), [1, 2, 3, 4, 5, 6, 7]);
      const fence = heard[6];
      assert.ok(fence?.type === 'record');
      assert.deepEqual(fence.delta.brokers.map((d) => [d.brokerId, d.before?.fenced, d.after?.fenced]), [[3, false, true]]);

      // o2 stops; records go on; it restarts from its own disk and catches up.
      const b2Position = b2.node.runtime.appliedIndex;
      await b2.stop();
      brokers.splice(brokers.indexOf(b2), 1);
      for (let i = 0; i < 10; i++) await c.client.write({ type: 'createTopic', name: `t${i}`, partitions: 1, configs: [] });
      const recovered: { lastIndex?: number; msg?: string }[] = [];
      const b2again = await startBroker({
        config: loadConfigFile(c.layout.configPath('o2')),
        logger: pino({ level: 'info' }, { write: (line: string) => { recovered.push(JSON.parse(line) as { lastIndex?: number; msg?: string }); } }),
      });
      brokers.push(b2again);
      const fromDisk = recovered.find((l) => l.msg === 'recovered from disk');
      assert.ok(fromDisk?.lastIndex !== undefined && fromDisk.lastIndex >= b2Position, `o2 did not restart from its own log (${JSON.stringify(fromDisk)}, had applied ${b2Position})`);
      const img17 = await b2again.waitForOffset(17);
      assert.deepEqual(encodeImage(img17), encodeImage(await c.client.image()));

      // Enough entries for the controllers to have compacted (snapshotEveryEntries 20): o3, starting now with
      // an empty disk, is behind the log start and catches up through a snapshot.
      for (let i = 10; i < 40; i++) await c.client.write({ type: 'setConfig', resource: { type: 'broker', brokerId: 1 }, key: 'message.max.bytes', value: String(1000 + i) });
      const b3 = await broker(c, 'o3');
      brokers.push(b3);
      const resets: MetadataEvent[] = [];
      b3.subscribe((e) => { if (e.type === 'reset') resets.push(e); });
      const final = await c.client.image();
      assert.equal(final.offset, 47);
      for (const b of brokers) {
        const img = await b.waitForOffset(47);
        assert.deepEqual(encodeImage(img), encodeImage(final), `${b.id}'s image differs from the controllers' at offset 47`);
        await waitForLag0(b);
      }
      assert.ok(b3.node.runtime.metrics.snapshotsInstalled >= 1, 'o3 did not catch up through a snapshot');
      assert.ok(resets.length >= 1, 'o3 heard no reset');
      // The image's content, as an application sees it.
      assert.equal(b3.image().brokerConfigs.get(1)?.get('message.max.bytes'), '1039');
      assert.deepEqual(b3.image().topics.get('orders')?.partitions.map((p) => p.replicas), [[1, 2], [2, 3], [3, 1]]);
    } finally {
      for (const b of brokers) await b.stop();
      await stopControllers(c);
    }
  });
}

test('brokers register themselves, unfence once caught up, and fence themselves on stop (controlled shutdown)', { timeout: 120_000 }, async () => {
  const c = await startControllers('pull', 2);
  const brokers: Broker[] = [];
  const start = (id: string, brokerId: number): Promise<Broker> => startBroker({
    config: loadConfigFile(c.layout.configPath(id)), logger: pino({ level: 'warn' }),
    registration: { brokerId, host: `${id}.local`, port: 9092, rack: 'r1' },
  });
  try {
    brokers.push(await start('o1', 101), await start('o2', 102));
    assert.deepEqual(await Promise.all(brokers.map((b) => b.registered())), [{ brokerId: 101, epoch: 1 }, { brokerId: 102, epoch: 1 }]);
    const img = await c.client.image();
    assert.deepEqual(img.brokerList().map((b) => [b.brokerId, b.epoch, b.fenced, b.host]), [[101, 1, false, 'o1.local'], [102, 1, false, 'o2.local']]);
    // A controlled shutdown fences o2; a restart registers it again with a higher epoch and unfences it.
    const o2 = brokers.pop() as Broker;
    await o2.stop();
    assert.equal((await c.client.image()).brokers.get(102)?.fenced, true);
    await c.client.write({ type: 'createTopic', name: 'x', partitions: 1, configs: [] });
    await assert.rejects(c.client.write({ type: 'assignPartitions', topic: 'x', assignments: [{ partition: 0, replicas: [101, 102] }] }),
      { name: 'MetadataRejectedError', code: 'brokerFenced' }, 'a fenced broker gets no new replicas');
    const again = await start('o2', 102);
    brokers.push(again);
    assert.deepEqual(await again.registered(), { brokerId: 102, epoch: 2 });
    const after = await c.client.image();
    assert.deepEqual([after.brokers.get(102)?.epoch, after.brokers.get(102)?.fenced], [2, false]);
    assert.deepEqual(encodeImage(await again.waitForOffset(after.offset)), encodeImage(after));
    // The CLI against the controllers: follow from the start prints every record, image prints the brokers.
    const lines: string[] = [];
    const program = new Command('quorumlog').exitOverride();
    addMetadataCommands(program, (l) => lines.push(l));
    const endpoints = c.cluster.endpoints.join(',');
    await program.parseAsync(['node', 'quorumlog', 'metadata', 'follow', '--from', '1', '--limit', String(after.offset), '--endpoints', endpoints]);
    assert.equal(lines.length, after.offset);
    assert.match(lines[0] ?? '', /^1 \(log index \d+\): registerBroker 10[12] epoch=1 o[12]\.local:9092 rack=r1 fenced$/);
    lines.length = 0;
    await program.parseAsync(['node', 'quorumlog', 'metadata', 'image', '--endpoints', endpoints]);
    assert.deepEqual(lines.filter((l) => l.startsWith('broker ')), ['broker 101 epoch=1 o1.local:9092 rack=r1', 'broker 102 epoch=2 o2.local:9092 rack=r1']);
    process.exitCode = 0;
  } finally {
    for (const b of brokers) await b.stop();
    await stopControllers(c);
  }
});

test('a broker must be an observer', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'quorumlog-broker-cfg-'));
  try {
    const layout = prepareCluster({ nodes: 1, mode: 'pull', dataDir: dir, basePort: 10_000 + Math.floor(Math.random() * 20_000) });
    await assert.rejects(startBroker({ config: loadConfigFile(layout.configPath('n1')) }), { name: 'BrokerConfigError' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
