// `npm run bench:storage`: the durable log's append throughput with group
// commit (one fdatasync per batch) for 100 B, 1 KiB and 16 KiB entries, next
// to a raw append + fdatasync loop writing the same bytes in the same batches
// to a plain file on the same disk in the same run (the physical limit), and
// the time to open (recover) a large log. Writes docs/bench/storage.json and
// docs/bench/storage.md. Options: --seconds S (per case, default 5),
// --recovery-mib M (default 1024), --dir D (default: a temp dir under the OS tmp).

import { closeSync, fdatasyncSync, mkdtempSync, openSync, rmSync, statfsSync, writeFileSync, writeSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Entry } from '../src/protocol/entry.js';
import { NodeFileSystem } from '../src/storage/fs.js';
import { DurableLogStore } from '../src/storage/log/durable-log.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    'recovery-mib': { type: 'string', default: '1024' },
    dir: { type: 'string' },
  },
});
const seconds = Number(values.seconds);
const recoveryMiB = Number(values['recovery-mib']);
const root = mkdtempSync(join(values.dir ?? tmpdir(), 'quorumlog-bench-'));

interface Case { readonly entryBytes: number; readonly batchEntries: number }
const CASES: Case[] = [
  { entryBytes: 100, batchEntries: 2048 },
  { entryBytes: 1024, batchEntries: 256 },
  { entryBytes: 16384, batchEntries: 16 },
];

interface Row {
  entryBytes: number; batchEntries: number;
  ours: { entriesPerSec: number; mbPerSec: number; syncs: number };
  raw: { mbPerSec: number; syncs: number };
  ratio: number;
}

function entriesFor(first: number, count: number, size: number): Entry[] {
  const data = new Uint8Array(size).fill(0x61);
  const out: Entry[] = [];
  for (let i = 0; i < count; i++) out.push({ index: first + i, term: 1, type: 'data', data });
  return out;
}

function ours(c: Case): Row['ours'] {
  const dir = join(root, `log-${c.entryBytes}`);
  const log = DurableLogStore.open(new NodeFileSystem(), dir, { segmentBytes: 64 << 20 });
  const start = performance.now();
  let entries = 0;
  let syncs = 0;
  while (performance.now() - start < seconds * 1000) {
    log.append(entriesFor(log.lastIndex() + 1, c.batchEntries, c.entryBytes));
    log.sync();
    entries += c.batchEntries;
    syncs++;
  }
  const s = (performance.now() - start) / 1000;
  log.close();
  rmSync(dir, { recursive: true, force: true });
  return { entriesPerSec: entries / s, mbPerSec: (entries * c.entryBytes) / s / 1e6, syncs };
}

function raw(c: Case): Row['raw'] {
  const file = join(root, `raw-${c.entryBytes}`);
  const fd = openSync(file, 'w');
  const buf = Buffer.alloc(c.entryBytes * c.batchEntries, 0x61);
  const start = performance.now();
  let bytes = 0;
  let syncs = 0;
  while (performance.now() - start < seconds * 1000) {
    writeSync(fd, buf);
    fdatasyncSync(fd);
    bytes += buf.byteLength;
    syncs++;
  }
  const s = (performance.now() - start) / 1000;
  closeSync(fd);
  rmSync(file, { force: true });
  return { mbPerSec: bytes / s / 1e6, syncs };
}

function recovery(): { mib: number; entries: number; writeSeconds: number; openSeconds: number } {
  const dir = join(root, 'recovery');
  const log = DurableLogStore.open(new NodeFileSystem(), dir, { segmentBytes: 64 << 20 });
  const total = Math.floor((recoveryMiB << 20) / 16384);
  const t0 = performance.now();
  while (log.lastIndex() < total) {
    log.append(entriesFor(log.lastIndex() + 1, Math.min(256, total - log.lastIndex()), 16384));
    if (log.lastIndex() % 4096 === 0) {
      log.sync();
      process.stderr.write(`bench:storage: writing the recovery log, ${Math.round(100 * log.lastIndex() / total)}%\r`);
    }
  }
  log.sync();
  log.close();
  const writeSeconds = (performance.now() - t0) / 1000;
  const t1 = performance.now();
  const reopened = DurableLogStore.open(new NodeFileSystem(), dir, { segmentBytes: 64 << 20 });
  const openSeconds = (performance.now() - t1) / 1000;
  const entries = reopened.lastIndex();
  reopened.close();
  rmSync(dir, { recursive: true, force: true });
  process.stderr.write('\n');
  return { mib: recoveryMiB, entries, writeSeconds, openSeconds };
}

const rows: Row[] = [];
try {
  for (const c of CASES) {
    process.stderr.write(`bench:storage: ${c.entryBytes} B entries, batches of ${c.batchEntries} (${seconds} s each for ours and raw)\n`);
    const o = ours(c);
    const r = raw(c);
    rows.push({ ...c, ours: o, raw: r, ratio: o.mbPerSec / r.mbPerSec });
  }
  const rec = recovery();
  const fsInfo = statfsSync(root);
  const report = {
    command: `node dist/bench/storage.js --seconds ${seconds} --recovery-mib ${recoveryMiB}`,
    machine: { cpus: cpus().length, cpu: cpus()[0]?.model, node: process.version, dir: root, fsBlockSize: fsInfo.bsize },
    rows,
    recovery: rec,
    targets: {
      '16 KiB at >= 80% of raw MB/s': (rows[2]?.ratio ?? 0) >= 0.8,
      '100 B at >= 100,000 entries/s': (rows[0]?.ours.entriesPerSec ?? 0) >= 100_000,
    },
  };
  const md = [
    '| entry | batch | ours entries/s | ours MB/s | raw MB/s | ours/raw | fdatasyncs (ours, raw) |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows.map((r) => `| ${r.entryBytes} B | ${r.batchEntries} | ${Math.round(r.ours.entriesPerSec).toLocaleString('en-US')} | ${r.ours.mbPerSec.toFixed(1)} | ${r.raw.mbPerSec.toFixed(1)} | ${(100 * r.ratio).toFixed(0)}% | ${r.ours.syncs}, ${r.raw.syncs} |`),
    '',
    `Recovery: opening a ${rec.mib} MiB log of ${rec.entries.toLocaleString('en-US')} entries took ${rec.openSeconds.toFixed(2)} s (writing it took ${rec.writeSeconds.toFixed(1)} s).`,
  ].join('\n');
  writeFileSync('docs/bench/storage.json', JSON.stringify(report, null, 2) + '\n');
  writeFileSync('docs/bench/storage.md', `# bench:storage\n\n\`${report.command}\` on ${report.machine.cpus} × ${report.machine.cpu}, Node ${report.machine.node}\n\n${md}\n`);
  console.log(md);
  console.log(JSON.stringify(report.targets));
} finally {
  rmSync(root, { recursive: true, force: true });
}
