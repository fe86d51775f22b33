// The data directory's lock on real processes (src/storage/dir-lock.ts,
// docs/STORAGE.md): while a node runs, a second `quorumlog start` on its data
// directory (with other ports, so the ports cannot be what stops it), a
// `check-data` and a `restore` are each refused with one line naming the
// node's pid and the directory, and the node keeps serving (a write made
// after them reads back). `backup` talks to the node over its API and works
// meanwhile. After kill -9 the restarted node takes the stale lock over and
// logs whose it was; a clean stop (SIGTERM) removes the lock.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { CLI_PATH } from '../../src/cli/cluster.js';
import { LOCK_FILE_NAME } from '../../src/storage/dir-lock.js';
import { EtcdTestClient } from './etcd-client.js';
import { TestCluster, until } from './harness.js';

const cli = (...args: string[]): { status: number | null; stdout: string; stderr: string } =>
  spawnSync(process.execPath, [CLI_PATH, ...args], { encoding: 'utf8', timeout: 30_000 });

test('a second process is refused on a locked data directory; the node keeps serving; kill -9 leaves a lock the restart takes over', { timeout: 120_000 }, async () => {
  const cluster = await TestCluster.start({ nodes: 1, mode: 'push', spares: 1 });
  const clients: EtcdTestClient[] = [];
  try {
    const node = await cluster.waitForLeader();
    const client = new EtcdTestClient(node.endpoint, 5000);
    clients.push(client);
    await client.put('lock/a', 'before');
    const pid = node.process?.pid as number;
    const configFile = cluster.layout.configPath(node.id);
    const config = JSON.parse(readFileSync(configFile, 'utf8')) as { dataDir: string; members: Record<string, unknown>[] };
    const dataDir = config.dataDir;
    assert.equal(JSON.parse(readFileSync(join(dataDir, LOCK_FILE_NAME), 'utf8')).pid, pid);

    // The same data directory under other ports (the spare slot), so that only the lock can stop it.
    const base = node.member.client.port;
    const other = join(cluster.dir, 'second.json');
    writeFileSync(other, JSON.stringify({
      ...config, members: [{ ...config.members[0], client: `127.0.0.1:${base + 1}`, peer: `127.0.0.1:${base + 101}`, metrics: `127.0.0.1:${base + 201}` }],
    }));
    const second = cli('start', '--config', other);
    assert.equal(second.status, 1, second.stderr);
    const line = second.stderr.trim();
    assert.equal(line.split('\n').length, 1, `one line: ${line}`);
    assert.ok(line.startsWith(`cannot start node ${node.id}: data directory ${dataDir} is locked: process ${pid} (node ${node.id} of cluster `), line);
    assert.doesNotMatch(second.stdout, /node started/);

    const check = cli('check-data', dataDir);
    assert.equal(check.status, 1);
    assert.match(check.stderr.trim(), new RegExp(`^check-data: data directory ${dataDir} is locked: process ${pid} \\(node ${node.id} .* has it open`));
    assert.equal(check.stdout, '', 'nothing was read');

    // backup needs no lock: it asks the node over its API. Restoring it into the running node's directory is refused.
    const backup = join(cluster.dir, 'b.backup');
    const saved = cli('backup', '--endpoints', node.endpoint, '--out', backup);
    assert.equal(saved.status, 0, saved.stderr);
    const restore = cli('restore', '--backup', backup, '--config', configFile);
    assert.equal(restore.status, 1);
    assert.match(restore.stderr.trim(), new RegExp(`^restore: data directory ${dataDir} is locked: process ${pid} `));

    // The first node kept serving through all of it.
    await client.put('lock/b', 'after');
    assert.equal(await client.get('lock/a'), 'before');
    assert.equal(await client.get('lock/b'), 'after');

    // kill -9 leaves the lock behind; the restart takes it over and says whose it was.
    await node.kill9();
    assert.equal(JSON.parse(readFileSync(join(dataDir, LOCK_FILE_NAME), 'utf8')).pid, pid);
    node.start();
    await cluster.waitForLeader();
    const restarted = node.process?.pid as number;
    assert.equal(JSON.parse(readFileSync(join(dataDir, LOCK_FILE_NAME), 'utf8')).pid, restarted);
    const log = readFileSync(join(cluster.dir, node.id, 'node.log'), 'utf8');
    assert.match(log, new RegExp(`took over the stale lock of ${dataDir}: process ${pid} (is gone|has exited)`));
    assert.equal(await until('reads after the restart', () => client.get('lock/b')), 'after');

    // A clean stop removes the lock, and check-data may then read the directory.
    await node.stop();
    assert.equal(existsSync(join(dataDir, LOCK_FILE_NAME)), false);
    const clean = cli('check-data', dataDir);
    assert.equal(clean.status, 0, clean.stdout + clean.stderr);
    assert.equal(existsSync(join(dataDir, LOCK_FILE_NAME)), false);
  } finally {
    for (const c of clients) c.close();
    await cluster.close();
  }
});
