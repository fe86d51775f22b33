// Configuration errors are one line naming the setting; a data directory
// belongs to one node of one cluster.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { claimDataDir, ConfigFileError, parseConfig } from './config.js';

const member = (id: string, n: number, role = 'voter'): Record<string, string> =>
  ({ id, role, peer: `127.0.0.1:${7000 + n}`, client: `127.0.0.1:${2379 + n}`, metrics: `127.0.0.1:${9000 + n}` });
const base = (): Record<string, unknown> => ({ clusterId: 'blue', nodeId: 'n1', dataDir: '/tmp/x', members: [member('n1', 1), member('n2', 2), member('n3', 3)] });

function refused(raw: unknown, setting: string, pattern: RegExp): void {
  assert.throws(() => parseConfig(raw), (e: unknown) => {
    assert.ok(e instanceof ConfigFileError, String(e));
    assert.equal(e.setting, setting);
    assert.match(e.message, pattern);
    assert.ok(!e.message.includes('\n'), 'one line');
    return true;
  });
}

test('a valid config gets the defaults', () => {
  const c = parseConfig(base());
  assert.equal(c.mode, 'push');
  assert.equal(c.tickMs, 25);
  assert.equal(c.members.length, 3);
  assert.deepEqual(c.members[1]?.client, { host: '127.0.0.1', port: 2381 });
});

test('each problem names its setting', () => {
  refused({ ...base(), colour: 'red' }, 'colour', /unknown setting/);
  refused({ ...base(), mode: 'sideways' }, 'mode', /push, pull/);
  refused({ ...base(), members: [member('n1', 1), { ...member('n2', 2), peer: 'nowhere' }] }, 'members[1].peer', /not host:port/);
  refused({ ...base(), members: [member('n1', 1), { ...member('n2', 2), peer: '127.0.0.1:70000' }] }, 'members[1].peer', /outside 1-65535/);
  refused({ ...base(), members: [member('n1', 1), { ...member('n2', 2), client: '127.0.0.1:2380' }] }, 'members[1].client', /already used by n1.client/);
  refused({ ...base(), members: [member('n1', 1), { ...member('n2', 2), extra: 1 }] }, 'members[1].extra', /unknown setting/);
  refused({ ...base(), nodeId: 'n9' }, 'nodeId', /not one of the members/);
  refused({ ...base(), tickMs: 0 }, 'tickMs', />= 1/);
  refused({ ...base(), electionTimeoutMinTicks: 10, electionTimeoutMaxTicks: 10 }, 'electionTimeoutMaxTicks', /must exceed/);
  refused({ ...base(), members: [member('n1', 1, 'observer')] }, 'members', /voter/);
  refused({ ...base(), peerTls: { cert: '/nonexistent.pem', key: '/k', ca: '/c' } }, 'peerTls.cert', /does not exist/);
  refused({ ...base(), clusterId: 'has space' }, 'clusterId', /letters, digits/);
  const pem = process.execPath; // any existing file will do for the path checks
  refused({ ...base(), peerTls: { cert: pem, key: pem, ca: pem, verifyNodeIds: 'yes' } }, 'peerTls.verifyNodeIds', /true or false/);
  refused({ ...base(), clientTls: { cert: pem, key: pem, ca: pem, verifyNodeIds: true } }, 'clientTls.verifyNodeIds', /unknown setting/);
  assert.equal(parseConfig({ ...base(), peerTls: { cert: pem, key: pem, ca: pem } }).peerTls?.verifyNodeIds, true, 'bound to node ids by default');
  assert.equal(parseConfig({ ...base(), peerTls: { cert: pem, key: pem, ca: pem, verifyNodeIds: false } }).peerTls?.verifyNodeIds, false);
});

test('a data directory belongs to one node of one cluster', () => {
  const dir = mkdtempSync(join(tmpdir(), 'quorumlog-ident-'));
  try {
    const dataDir = join(dir, 'data');
    claimDataDir({ clusterId: 'blue', nodeId: 'n1', dataDir });
    claimDataDir({ clusterId: 'blue', nodeId: 'n1', dataDir }); // the same node again: fine
    assert.throws(() => claimDataDir({ clusterId: 'blue', nodeId: 'n2', dataDir }), /belongs to node "n1" of cluster "blue", not node "n2"/);
    assert.throws(() => claimDataDir({ clusterId: 'red', nodeId: 'n1', dataDir }), /of cluster "blue", not node "n1" of cluster "red"/);
    const orphan = join(dir, 'orphan');
    mkdirSync(join(orphan, 'log'), { recursive: true });
    assert.throws(() => claimDataDir({ clusterId: 'blue', nodeId: 'n1', dataDir: orphan }), /no identity.json/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('every setting can be given as a flag of the same name', async () => {
  const { rawConfigFrom } = await import('../cli/start.js');
  const flags = {
    clusterId: 'blue', nodeId: 'n1', mode: 'pull', dataDir: '/tmp/d',
    member: ['n1=127.0.0.1:7001,127.0.0.1:2379,127.0.0.1:9001', 'o1=127.0.0.1:7002,127.0.0.1:2380,127.0.0.1:9002,observer'],
    electionTimeoutMinTicks: '40', electionTimeoutMaxTicks: '80', snapshotEveryBytes: '1000', tickMs: '5',
  };
  const raw = rawConfigFrom(flags);
  const c = parseConfig(raw);
  assert.equal(c.mode, 'pull');
  assert.equal(c.electionTimeoutMinTicks, 40);
  assert.equal(c.electionTimeoutMaxTicks, 80);
  assert.equal(c.snapshotEveryBytes, 1000);
  assert.equal(c.tickMs, 5);
  assert.equal(c.members[1]?.role, 'observer');
  assert.throws(() => rawConfigFrom({ heartbeatIntervalTicks: 'often' }), /config: --heartbeat-interval-ticks: "often" is not an integer/);
  assert.throws(() => parseConfig(rawConfigFrom({ ...flags, peerTlsCert: '/nonexistent.pem', peerTlsKey: '/k', peerTlsCa: '/c' })), /peerTls\.cert/);
});

test('a data directory keeps the id drawn when it was created; an emptied one gets a new one', () => {
  const dir = mkdtempSync(join(tmpdir(), 'quorumlog-dirid-'));
  try {
    const dataDir = join(dir, 'data');
    const id = claimDataDir({ clusterId: 'blue', nodeId: 'n1', dataDir });
    assert.ok(Number.isInteger(id) && id >= 1 && id < 2 ** 48, `dirId ${id}`);
    assert.equal(claimDataDir({ clusterId: 'blue', nodeId: 'n1', dataDir }), id, 'the same directory, the same id');
    assert.equal((JSON.parse(readFileSync(join(dataDir, 'identity.json'), 'utf8')) as { dirId: number }).dirId, id);
    rmSync(dataDir, { recursive: true, force: true }); // a lost disk
    assert.notEqual(claimDataDir({ clusterId: 'blue', nodeId: 'n1', dataDir }), id, 'an emptied directory is a new one');
    // A directory from before directory ids gets one at its next start, and keeps it.
    writeFileSync(join(dataDir, 'identity.json'), JSON.stringify({ clusterId: 'blue', nodeId: 'n1' }));
    const late = claimDataDir({ clusterId: 'blue', nodeId: 'n1', dataDir });
    assert.equal(claimDataDir({ clusterId: 'blue', nodeId: 'n1', dataDir }), late);
    writeFileSync(join(dataDir, 'identity.json'), JSON.stringify({ clusterId: 'blue', nodeId: 'n1', dirId: 0 }));
    assert.throws(() => claimDataDir({ clusterId: 'blue', nodeId: 'n1', dataDir }), /dirId 0 is not an integer in \[1, 2\^48\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
