#!/usr/bin/env node
// The `quorumlog` command. Today it has one verb, check-data; the cluster
// issue adds the rest. Built on commander (a maintained CLI library).

import { Command } from 'commander';
import { checkDataDir } from '../storage/data-dir.js';
import { NodeFileSystem } from '../storage/fs.js';

/** Builds the command-line program; exported so that tests can run it in-process. */
export function program(out: (line: string) => void = console.log): Command {
  const cmd = new Command('quorumlog').description('a replicated log with Raft consensus, push or pull replication');
  cmd
    .command('check-data')
    .description('verify a node\'s data directory (log, term/vote, snapshots) without changing it; exits 1 on any problem')
    .argument('<dir>', 'the node\'s data directory')
    .option('--json', 'print the report as JSON')
    .action((dir: string, opts: { json?: boolean }) => {
      const report = checkDataDir(new NodeFileSystem(), dir);
      if (opts.json === true) {
        out(JSON.stringify(report, null, 2));
      } else {
        const { log } = report;
        out(`log: ${log.entries} entries [${log.firstIndex}, ${log.lastIndex}]; snapshots: ${report.snapshots}`);
        for (const r of report.repairs) out(`repair at start-up: ${r.file} at byte ${r.offset}: ${r.detail}`);
        for (const p of report.problems) out(`PROBLEM: ${p.file} at byte ${p.offset}: ${p.detail}`);
        out(report.problems.length === 0 ? 'ok: no problems found' : `${report.problems.length} problem(s) found: the node will refuse to start`);
      }
      process.exitCode = report.problems.length === 0 ? 0 : 1;
    });
  return cmd;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  program().parseAsync(process.argv).catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 2;
  });
}
