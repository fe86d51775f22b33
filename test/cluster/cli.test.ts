// The `quorumlog` command as a user runs it: `cluster` prints the endpoints,
// the leader and how to restart a node through it, and stops every node on SIGINT;
// `start` refuses a bad config in one line naming the setting, before
// anything listens; `status` prints the table (an unreachable row aligned,
// with a short reason); `get` on a missing key prints nothing and exits 0; a
// client aimed at a peer port gets one line, and the node logs where clients
// connect.

import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CLI_PATH } from '../../src/cli/cluster.js';
import { until } from './harness.js';

test('quorumlog cluster prints endpoints, leader and the restart command, and SIGINT stops every node', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'quorumlog-cli-'));
  const base = 10_000 + Math.floor(Math.random() * 22_000); // below the ephemeral port range
  const child = spawn(process.execPath, [CLI_PATH, 'cluster', '--nodes', '3', '--mode', 'pull', '--data-dir', dir, '--base-port', String(base)]);
  let out = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
  try {
    const deadline = Date.now() + 30_000;
    while (!out.includes('Ctrl-C') && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 100));
    const endpoints = /^endpoints: (.*)$/m.exec(out)?.[1];
    assert.equal(endpoints, [0, 1, 2].map((i) => `127.0.0.1:${base + i}`).join(','), out);
    assert.match(out, /^leader: n[123]$/m);
    assert.ok(out.includes(`: ${process.execPath} ${CLI_PATH} cluster restart <id> --data-dir ${dir}\n`), out);
    const status = spawnSync(process.execPath, [CLI_PATH, 'status', '--endpoints', endpoints as string], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(status.status, 0, status.stderr);
    assert.match(status.stdout, /node\s+pid\s+mode\s+role\s+term\s+leader\s+commit\s+applied/);
    assert.match(status.stdout, /replication, as leader n[123] sees it/);
    // The client verbs against it, a watch seeing a put made through another node.
    const verb = (...args: string[]): string => execFileSync(process.execPath, [CLI_PATH, ...args, '--endpoints', endpoints as string], { encoding: 'utf8', timeout: 20_000 });
    const watcher = spawn(process.execPath, [CLI_PATH, 'watch', 'tour/', '--prefix', '--endpoints', `127.0.0.1:${base + 2}`]);
    let watched = '';
    watcher.stdout.on('data', (d: Buffer) => { watched += d.toString(); });
    await new Promise((r) => setTimeout(r, 500));
    assert.match(verb('put', 'tour/a', 'one'), /^OK/);
    assert.match(verb('put', 'tour/b', 'two'), /^OK/);
    assert.equal(verb('get', 'tour/a'), 'tour/a\none\n');
    assert.equal(verb('get', 'tour/', '--prefix', '--serializable'), 'tour/a\none\ntour/b\ntwo\n');
    assert.equal(verb('del', 'tour/b'), '1\n');
    assert.equal(verb('get', 'tour/none'), '', 'a missing key prints nothing and exits 0, as etcdctl does');
    // A client aimed at a peer port: one line on its side; on the node's, a log line that says where clients go.
    const wrong = spawnSync(process.execPath, [CLI_PATH, 'get', 'tour/a', '--endpoints', `127.0.0.1:${base + 100}`], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(wrong.status, 2);
    assert.equal(wrong.stderr.trim().split('\n').length, 1, wrong.stderr);
    assert.match(wrong.stderr, new RegExp(`^quorumlog get: cannot reach 127\\.0\\.0\\.1:${base + 100}: `));
    const n1log = await until('the peer port\'s line', async () => {
      const text = readFileSync(join(dir, 'n1', 'node.log'), 'utf8');
      return text.includes('this is the peer port') ? text : null;
    }, 10_000);
    assert.match(n1log, new RegExp(`this is the peer port; clients connect to 127\\.0\\.0\\.1:${base}\\b`));
    assert.doesNotMatch(n1log, /length 541676112/);
    // status with a stopped endpoint among the others: that row says why, briefly, and the table stays aligned.
    const withDead = spawnSync(process.execPath, [CLI_PATH, 'status', '--endpoints', `${endpoints as string},127.0.0.1:${base + 3}`], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(withDead.status, 0, withDead.stderr);
    const rows = withDead.stdout.split('\n');
    const roleAt = (rows[0] ?? '').indexOf('role');
    assert.equal(rows[4]?.slice(roleAt), 'unreachable: connection refused');
    const wdeadline = Date.now() + 10_000;
    while (!watched.includes('DELETE') && Date.now() < wdeadline) await new Promise((r) => setTimeout(r, 100));
    watcher.kill('SIGINT');
    assert.equal(watched, 'PUT\ntour/a\none\nPUT\ntour/b\ntwo\nDELETE\ntour/b\n');
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGINT');
    assert.equal(await exited, 0);
    assert.match(out, /all nodes stopped/);
    const left = spawnSync('pgrep', ['-f', join(dir, 'n1', 'config.json')], { encoding: 'utf8' });
    assert.equal(left.stdout.trim(), '', 'a node process outlived the cluster');
  } finally {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('quorumlog start refuses a bad config in one line naming the setting', () => {
  const dir = mkdtempSync(join(tmpdir(), 'quorumlog-cfg-'));
  try {
    const cfg = join(dir, 'bad.json');
    writeFileSync(cfg, JSON.stringify({ clusterId: 'c', nodeId: 'n1', dataDir: join(dir, 'd'), members: [{ id: 'n1', peer: 'localhost', client: '127.0.0.1:1', metrics: '127.0.0.1:2' }] }));
    const r = spawnSync(process.execPath, [CLI_PATH, 'start', '--config', cfg], { encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.equal(r.stderr.trim(), 'config: members[0].peer: "localhost" is not host:port');
    const r2 = spawnSync(process.execPath, [CLI_PATH, 'start', '--config', cfg, '--mode', 'pull', '--member', 'n1=127.0.0.1:1,127.0.0.1:2,127.0.0.1:3', '--tick-ms', 'fast'], { encoding: 'utf8' });
    assert.equal(r2.status, 2);
    assert.equal(r2.stderr.trim(), 'config: --tick-ms: "fast" is not an integer');
    const help = execFileSync(process.execPath, [CLI_PATH, '--help'], { encoding: 'utf8' });
    for (const verb of ['cluster', 'start', 'status', 'check-data', 'put', 'get', 'del', 'watch']) assert.match(help, new RegExp(`\\b${verb}\\b`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
