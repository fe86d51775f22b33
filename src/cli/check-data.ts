// `quorumlog check-data DIR`: verifies a node's data directory without
// changing it (src/storage/data-dir.ts) under a shared lock
// (src/storage/dir-lock.ts): several checks may run at once, but not beside
// a node or a restore that has the directory open; that is refused at once,
// naming the process, before anything is read. Exit code 0 when clean, 1 on
// any problem or when the directory is locked.

import { existsSync } from 'node:fs';
import { checkDataDir } from '../storage/data-dir.js';
import { DataDirLockedError, DataDirLockError, exclusiveHolder, lockDataDir, type DirLock } from '../storage/dir-lock.js';
import { NodeFileSystem } from '../storage/fs.js';

/** Checks `dir`; prints the report to `out` and lock notes to `err`; returns the exit code. */
export function runCheckData(dir: string, opts: { json: boolean }, out: (line: string) => void, err: (line: string) => void): number {
  let lock: DirLock | null = null;
  if (existsSync(dir)) {
    try {
      lock = lockDataDir(dir, 'shared', { command: 'quorumlog check-data', create: false });
    } catch (e) {
      if (e instanceof DataDirLockedError) {
        err(`check-data: ${e.message}`);
        return 1;
      }
      if (!(e instanceof DataDirLockError)) throw e;
      // A read-only copy cannot take a lock file; still refuse beside a live writer.
      const writer = exclusiveHolder(dir);
      if (writer !== null) {
        err(`check-data: ${new DataDirLockedError(dir, writer, 'shared').message}`);
        return 1;
      }
      err(`check-data: checking without a lock (${e.message}); make sure no node runs on it`);
    }
  }
  try {
    for (const s of lock?.leftStale ?? []) {
      err(`check-data: note: a stale lock of process ${s.holder?.pid ?? '?'} is in ${dir} (${s.reason}); the next start takes it over`);
    }
    const report = checkDataDir(new NodeFileSystem(), dir);
    if (opts.json) {
      out(JSON.stringify(report, null, 2));
    } else {
      const { log } = report;
      out(`log: ${log.entries} entries [${log.firstIndex}, ${log.lastIndex}]; snapshots: ${report.snapshots}`);
      for (const r of report.repairs) out(`repair at start-up: ${r.file} at byte ${r.offset}: ${r.detail}`);
      for (const p of report.problems) out(`PROBLEM: ${p.file} at byte ${p.offset}: ${p.detail}`);
      out(report.problems.length === 0 ? 'ok: no problems found' : `${report.problems.length} problem(s) found: the node will refuse to start`);
    }
    return report.problems.length === 0 ? 0 : 1;
  } finally {
    lock?.release();
  }
}
