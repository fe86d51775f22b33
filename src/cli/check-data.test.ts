// `quorumlog check-data DIR`: a clean data directory passes; a bit flipped in
// the middle of a log segment, a corrupted term/vote file and a corrupted
// snapshot are each reported with file and byte offset, all in one run, and
// the command exits non-zero. Runs the real compiled CLI in a child process.
// A directory where it cannot write its shared lock is checked without one
// (said on stderr), but never beside a live writer.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nodeId } from '../protocol/ids.js';
import { dataDirLayout } from '../storage/data-dir.js';
import { LOCK_FILE_NAME, procStat } from '../storage/dir-lock.js';
import { runCheckData } from './check-data.js';
import { NodeFileSystem } from '../storage/fs.js';
import { DurableLogStore } from '../storage/log/durable-log.js';
import { DurableSnapshotStore } from '../storage/snapshot/durable-snapshot-store.js';
import { DurableStateStore } from '../storage/state/durable-state-store.js';

const cli = fileURLToPath(new URL('./quorumlog.js', import.meta.url));

function makeDataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'quorumlog-check-'));
  const fs = new NodeFileSystem();
  const layout = dataDirLayout(dir);
  const log = DurableLogStore.open(fs, layout.log, { segmentBytes: 4096 });
  for (let i = 1; i <= 200; i++) log.append([{ index: i, term: 1, type: 'data', data: new Uint8Array(50).fill(i & 0xff) }]);
  log.sync();
  log.close();
  new DurableStateStore(fs, layout.state).save({ term: 3, vote: nodeId('n2'), commit: 150 });
  const snaps = new DurableSnapshotStore(fs, layout.snapshots);
  const w = snaps.beginWrite({ index: 100, term: 1 });
  w.write(new Uint8Array(5000).fill(7));
  w.commit();
  return dir;
}

function run(dir: string): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, [cli, 'check-data', dir], { encoding: 'utf8' });
  return { status: r.status, out: r.stdout + r.stderr };
}

function flipByte(file: string, offset: number): void {
  const b = readFileSync(file);
  b[offset] = (b[offset] as number) ^ 0x10;
  writeFileSync(file, b);
}

test('check-data passes a clean data directory', () => {
  const dir = makeDataDir();
  try {
    const r = run(dir);
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /log: 200 entries \[1, 200\]; snapshots: 1/);
    assert.match(r.out, /ok: no problems found/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('check-data reports every corruption with file and offset, and exits 1', () => {
  const dir = makeDataDir();
  try {
    const layout = dataDirLayout(dir);
    const segments = readdirSync(layout.log).filter((n) => n.endsWith('.seg')).sort();
    assert.ok(segments.length >= 2, 'the log rolled into several segments');
    const firstSegment = join(layout.log, segments[0] as string);
    flipByte(firstSegment, 1000); // inside a record in the middle of a segment that is not the last
    flipByte(join(layout.state, 'hardstate'), 9); // inside the term
    const snap = readdirSync(layout.snapshots).find((n) => n.endsWith('.snap')) as string;
    flipByte(join(layout.snapshots, snap), 2500); // inside the body
    const r = run(dir);
    assert.equal(r.status, 1, r.out);
    assert.match(r.out, new RegExp(`PROBLEM: ${firstSegment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} at byte \\d+`));
    assert.match(r.out, /PROBLEM: .*hardstate at byte \d+/);
    assert.match(r.out, /PROBLEM: .*\.snap at byte 40: body checksum mismatch/);
    assert.match(r.out, /3 problem\(s\) found/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('check-data that cannot write its lock file still refuses beside a live writer, and otherwise checks without a lock, saying so', () => {
  const dir = makeDataDir();
  try {
    // A directory in the way of this process's shared lock file stands in for a read-only directory (root ignores permissions).
    mkdirSync(join(dir, `${LOCK_FILE_NAME}.shared.${process.pid}`));
    const out: string[] = [];
    const err: string[] = [];
    assert.equal(runCheckData(dir, { json: false }, (l) => out.push(l), (l) => err.push(l)), 0, err.join('\n'));
    assert.match(err.join('\n'), /^check-data: checking without a lock \(cannot lock data directory .*\); make sure no node runs on it$/);
    assert.equal(out.at(-1), 'ok: no problems found');
    // A live writer (this process, as far as the lock file says) keeps it out before anything is read.
    writeFileSync(join(dir, LOCK_FILE_NAME), JSON.stringify({ pid: process.pid, startTime: procStat(process.pid)?.startTime ?? null, host: hostname(), mode: 'exclusive', command: 'node n1 of cluster c', since: 'now' }));
    out.length = 0;
    err.length = 0;
    assert.equal(runCheckData(dir, { json: false }, (l) => out.push(l), (l) => err.push(l)), 1);
    assert.deepEqual(out, []);
    assert.match(err.join('\n'), new RegExp(`^check-data: data directory .* is locked: process ${process.pid} \\(node n1 of cluster c, since now\\) has it open; stop that process first`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
