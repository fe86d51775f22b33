// The examples in examples/ run, unchanged, against a real 3-node cluster:
// each is started as its own process with QUORUMLOG_ENDPOINTS pointing at the
// cluster, and must exit 0 having printed its closing line.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { TestCluster } from './harness.js';

/** examples/ in the same build output as this test (…/test/cluster/ → …/examples/). */
const EXAMPLES = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'examples');

function runExample(name: string, endpoints: readonly string[], timeoutMs: number): Promise<{ code: number | null; output: string }> {
  const script = join(EXAMPLES, `${name}.js`);
  assert.ok(existsSync(script), `${script} is built`);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [script], { env: { ...process.env, QUORUMLOG_ENDPOINTS: endpoints.join(',') }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

describe('examples against a running cluster', { concurrency: false }, () => {
  let c: TestCluster;
  before(async () => {
    c = await TestCluster.start({ nodes: 3, mode: 'push' });
    await c.waitForLeader();
  });
  after(async () => {
    await c.close();
  });

  test('service-registry: join, crash (lease expiry), clean leave', { timeout: 40_000 }, async () => {
    const r = await runExample('service-registry', c.endpoints, 35_000);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /api-2 expired/);
    assert.match(r.output, /service-registry: done/);
  });

  test('leader-election: resignation, then a crashed leader\'s lease expires and the next takes over', { timeout: 40_000 }, async () => {
    const r = await runExample('leader-election', c.endpoints, 35_000);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /\[gamma\] took over/);
    assert.match(r.output, /leader-election: done/);
  });
});
