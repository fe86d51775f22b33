// checkLogDir: verifies a log directory and reports every problem it finds,
// changing nothing. The `quorumlog check-data DIR` command calls it and exits
// non-zero when `problems` is not empty. The rules are those of recovery
// (recovery.ts); `repairs` lists what opening the log would change (cut a
// torn tail, remove an aborted segment creation, finish a compaction), which
// are normal after a crash and not problems.

import type { LogIndex } from '../../protocol/ids.js';
import type { FileSystem } from '../fs.js';
import { analyzeLogDir, type LogFinding } from './recovery.js';

/** The result of {@link checkLogDir}. */
export interface LogCheckReport {
  /** Corruption, each naming a file and byte offset; the log will not open while there is any. */
  readonly problems: LogFinding[];
  /** What opening the log would repair (not problems). */
  readonly repairs: LogFinding[];
  /** Entries the log holds, from firstIndex to lastIndex (best effort when there are problems). */
  readonly entries: number;
  readonly firstIndex: LogIndex;
  readonly lastIndex: LogIndex;
}

/** Verifies the log in `dir` without modifying anything; reports every problem found. */
export function checkLogDir(fs: FileSystem, dir: string): LogCheckReport {
  if (!fs.exists(dir)) {
    return { problems: [{ file: dir, offset: 0, detail: 'log directory does not exist' }], repairs: [], entries: 0, firstIndex: 1, lastIndex: 0 };
  }
  let a;
  try {
    a = analyzeLogDir(fs, dir);
  } catch (e) {
    const detail = e instanceof Error ? e.message : String(e);
    return { problems: [{ file: dir, offset: 0, detail: `cannot read the log: ${detail}` }], repairs: [], entries: 0, firstIndex: 1, lastIndex: 0 };
  }
  return {
    problems: a.problems,
    repairs: a.repairs.map((r) => ({ file: r.file, offset: r.offset, detail: r.detail })),
    entries: a.entries,
    firstIndex: a.firstIndex,
    lastIndex: a.lastIndex,
  };
}
