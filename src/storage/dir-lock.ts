// The data directory's lock: one process at a time may write a data
// directory (`quorumlog start`, `quorumlog restore`: an exclusive lock), and
// readers (`quorumlog check-data`: shared locks) may run together but never
// beside a writer. Node has no flock, so the lock is made of files:
//
//   DIR/quorumlog.lock                  the exclusive holder
//   DIR/quorumlog.lock.shared.<pid>     one per shared holder
//   DIR/quorumlog.lock.takeover         held for the instant a stale lock is replaced
//
// Each file is a JSON LockHolder (pid, the process's start time from
// /proc/<pid>/stat, host, mode, command, since). A lock file is written
// whole under a temporary name and then hard-linked to its name: link()
// fails with EEXIST if the name exists, so creation is exclusive (O_EXCL's
// guarantee) and nobody ever reads a half-written lock.
//
// A lock whose holder is dead is stale and is taken over (the caller logs
// it, from DirLock.tookOver). "Dead" means: no process with that pid, or a
// process with that pid that started at another time (the pid was reused),
// or a zombie. A lock written on another host (a shared file system) cannot
// be checked and counts as held. Without /proc, only the pid is checked.
//
// Readers and the writer exclude each other by announcing themselves first
// and looking for the other kind second (the writer: link the exclusive
// file, then list the shared ones; a reader: write its shared file, then
// read the exclusive one). Of two that race, at least one sees the other, so
// never both get in (both may be refused: run again).
//
// A lock is released by release(), and by a process 'exit' handler for every
// lock the process still holds (process.exit(), the end of the event loop,
// an uncaught exception). kill -9 leaves the file behind: the next taker
// finds its holder dead and takes it over.

import { closeSync, fsyncSync, linkSync, mkdirSync, openSync, readdirSync, readFileSync, realpathSync, rmSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';

/** Name of the exclusive lock file inside a data directory. */
export const LOCK_FILE_NAME = 'quorumlog.lock';
const SHARED_PREFIX = `${LOCK_FILE_NAME}.shared.`;
const TAKEOVER_NAME = `${LOCK_FILE_NAME}.takeover`;
/** Temporary files of createWhole(): quorumlog.lock.tmp.<pid>.<random>. */
const TMP_NAME = /^quorumlog\.lock\.tmp\.([0-9]+)\./;

/** exclusive: the one writer; shared: one of several readers. */
export type LockMode = 'exclusive' | 'shared';

/** What a lock file says about the process that holds it. */
export interface LockHolder {
  readonly pid: number;
  /** Field 22 of /proc/<pid>/stat (clock ticks after boot), or null where there is no /proc. */
  readonly startTime: string | null;
  readonly host: string;
  readonly mode: LockMode;
  /** What the holder runs, e.g. "quorumlog start". */
  readonly command: string;
  /** When it took the lock (ISO 8601). */
  readonly since: string;
}

/** A stale lock that was taken over (its holder was dead), for the caller to log. */
export interface StaleLock {
  readonly file: string;
  /** The dead holder; null when the file was unreadable (e.g. emptied by a power cut). */
  readonly holder: LockHolder | null;
  /** Why it counts as dead. */
  readonly reason: string;
}

/** A held lock. Invariant: the file `file` exists and holds this process's LockHolder until release(). */
export interface DirLock {
  readonly dir: string;
  readonly mode: LockMode;
  readonly file: string;
  /** Stale locks removed on the way in (a writer's, or a reader's that a writer cleared). */
  readonly tookOver: readonly StaleLock[];
  /** A stale exclusive lock a reader found and left for the next writer to take over. */
  readonly leftStale: readonly StaleLock[];
  /** Removes the lock file; idempotent. */
  release(): void;
}

/** Another live process holds the directory; nothing in it was read or written. */
export class DataDirLockedError extends Error {
  override readonly name = 'DataDirLockedError';
  readonly dir: string;
  readonly holder: LockHolder;

  constructor(dir: string, holder: LockHolder, wanted: LockMode, options?: ErrorOptions) {
    const host = holder.host === hostname() ? '' : ` on host ${holder.host}`;
    const what = holder.mode === 'exclusive' ? 'has it open' : 'is reading it';
    const remedy = holder.mode === 'shared' ? 'wait for it to finish, or stop it'
      : wanted === 'exclusive' ? 'stop that process first (two processes must never write one data directory)'
        : 'stop that process first (a check reads a directory that nothing writes)';
    super(`data directory ${dir} is locked: process ${holder.pid}${host} (${holder.command}, since ${holder.since}) ${what}; ${remedy}`, options);
    this.dir = dir;
    this.holder = holder;
  }
}

/** The lock's files could not be made (permissions, a read-only file system): the directory is not locked. */
export class DataDirLockError extends Error {
  override readonly name = 'DataDirLockError';
  readonly dir: string;

  constructor(dir: string, detail: string, options?: ErrorOptions) {
    super(`cannot lock data directory ${dir}: ${detail}`, options);
    this.dir = dir;
  }
}

/** Options of {@link lockDataDir}. */
export interface LockOptions {
  /** What this process runs, written into the lock for whoever is refused (e.g. "quorumlog start"). */
  readonly command: string;
  /** Create the directory if missing (default true; a reader passes false and gets DataDirLockError for a missing one). */
  readonly create?: boolean;
}

/** Locks held by this process, by lock file; released by the 'exit' handler if still held then. */
const held = new Map<string, () => void>();
let exitHookInstalled = false;

/**
 * Locks `dir` for this process, or throws {@link DataDirLockedError} naming
 * the live holder (before anything else in the directory is touched), or
 * {@link DataDirLockError} when the lock files cannot be written.
 */
export function lockDataDir(dir: string, mode: LockMode, opts: LockOptions): DirLock {
  if (opts.create !== false) {
    try {
      mkdirSync(dir, { recursive: true });
    } catch (e) {
      throw new DataDirLockError(dir, (e as Error).message, { cause: e });
    }
  }
  let real: string;
  try {
    real = realpathSync(dir);
  } catch (e) {
    throw new DataDirLockError(dir, (e as Error).message, { cause: e });
  }
  const me: LockHolder = { ...selfIdentity(), host: hostname(), mode, command: opts.command, since: new Date().toISOString() };
  const tookOver: StaleLock[] = [];
  const leftStale: StaleLock[] = [];
  const file = mode === 'exclusive' ? join(real, LOCK_FILE_NAME) : join(real, `${SHARED_PREFIX}${me.pid}`);
  if (held.has(file)) throw new DataDirLockedError(dir, me, mode); // this very process holds it already
  try {
    if (mode === 'exclusive') lockExclusive(dir, real, me, tookOver);
    else lockShared(dir, real, me, leftStale);
  } catch (e) {
    if (e instanceof DataDirLockedError || e instanceof DataDirLockError) throw e;
    throw new DataDirLockError(dir, (e as Error).message, { cause: e });
  }
  let released = false;
  const release = (): void => {
    if (released) return;
    released = true;
    held.delete(file);
    rmSync(file, { force: true });
  };
  held.set(file, release);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const r of [...held.values()]) {
        try {
          r();
        } catch {
          // exiting anyway; the next taker finds the lock stale
        }
      }
    });
  }
  return { dir, mode, file, tookOver, leftStale, release };
}

/** Link the exclusive file; then no live reader may be inside. */
function lockExclusive(dir: string, real: string, me: LockHolder, tookOver: StaleLock[]): void {
  const file = join(real, LOCK_FILE_NAME);
  for (let attempt = 0; ; attempt++) {
    if (createWhole(real, file, me)) break;
    const verdict = inspect(file);
    if (verdict.kind === 'gone') continue;
    if (verdict.kind === 'alive') throw new DataDirLockedError(dir, verdict.holder, 'exclusive');
    if (attempt >= 10) throw new DataDirLockError(dir, `could not replace the stale lock ${file}`);
    takeOver(dir, real, file, verdict, tookOver);
  }
  try {
    for (const name of listSafe(real)) {
      const tmpPid = TMP_NAME.exec(name)?.[1];
      if (tmpPid !== undefined && !pidExists(Number(tmpPid))) rmSync(join(real, name), { force: true }); // left by a crash mid-create
      if (!name.startsWith(SHARED_PREFIX)) continue;
      const reader = join(real, name);
      const verdict = inspect(reader);
      if (verdict.kind === 'alive') throw new DataDirLockedError(dir, verdict.holder, 'exclusive');
      if (verdict.kind === 'dead') {
        rmSync(reader, { force: true });
        tookOver.push({ file: reader, holder: verdict.holder, reason: verdict.reason });
      }
    }
  } catch (e) {
    rmSync(file, { force: true });
    throw e;
  }
}

/** Write our shared file; then no live writer may hold the exclusive one. */
function lockShared(dir: string, real: string, me: LockHolder, leftStale: StaleLock[]): void {
  const file = join(real, `${SHARED_PREFIX}${me.pid}`);
  rmSync(file, { force: true }); // ours by name: a leftover of an earlier process with our pid (a live one would be us)
  if (!createWhole(real, file, me)) throw new DataDirLockError(dir, `${file} appeared while it was being created`);
  const verdict = inspect(join(real, LOCK_FILE_NAME));
  if (verdict.kind === 'alive') {
    rmSync(file, { force: true });
    throw new DataDirLockedError(dir, verdict.holder, 'shared');
  }
  // A stale exclusive lock is left for the next writer to take over (and log); a reader changes nothing.
  if (verdict.kind === 'dead') leftStale.push({ file: join(real, LOCK_FILE_NAME), holder: verdict.holder, reason: verdict.reason });
}

/**
 * Removes a stale exclusive lock, serialised by the takeover file so that two
 * processes that both found it stale cannot remove each other's fresh lock:
 * only the takeover holder removes it, and only if it is still the same file.
 */
function takeOver(dir: string, real: string, file: string, stale: Extract<Verdict, { kind: 'dead' }>, tookOver: StaleLock[]): void {
  const guard = join(real, TAKEOVER_NAME);
  const me: LockHolder = { ...selfIdentity(), host: hostname(), mode: 'exclusive', command: 'lock takeover', since: new Date().toISOString() };
  if (!createWhole(real, guard, me)) {
    const g = inspect(guard);
    if (g.kind === 'alive') throw new DataDirLockedError(dir, g.holder, 'exclusive'); // another process is taking it over right now
    // A takeover interrupted by a crash (a window of microseconds): clear it and let the caller retry.
    rmSync(guard, { force: true });
    return;
  }
  try {
    const again = inspect(file);
    if (again.kind === 'dead' && again.text === stale.text) {
      rmSync(file, { force: true });
      tookOver.push({ file, holder: stale.holder, reason: stale.reason });
    }
  } finally {
    rmSync(guard, { force: true });
  }
}

type Verdict =
  | { readonly kind: 'gone' }
  | { readonly kind: 'alive'; readonly holder: LockHolder }
  | { readonly kind: 'dead'; readonly holder: LockHolder | null; readonly reason: string; readonly text: string };

/** Reads a lock file and judges its holder. */
function inspect(file: string): Verdict {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'gone' };
    throw e;
  }
  const holder = parseHolder(text);
  if (holder === null) return { kind: 'dead', holder: null, reason: 'the lock file is unreadable (a crash while the machine went down)', text };
  const why = deadReason(holder);
  return why === null ? { kind: 'alive', holder } : { kind: 'dead', holder, reason: why, text };
}

function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== 'ESRCH'; // EPERM: it exists, under another user
  }
}

/** Why `h` is surely dead, or null when it is (or may be) alive. */
export function deadReason(h: LockHolder): string | null {
  if (h.host !== hostname()) return null; // cannot tell from here
  if (!pidExists(h.pid)) return `process ${h.pid} is gone`;
  const now = procStat(h.pid);
  if (now === null) return null; // no /proc: the pid exists, that is all we know
  if (now.state === 'Z' || now.state === 'X') return `process ${h.pid} has exited`;
  if (h.startTime !== null && now.startTime !== h.startTime) return `pid ${h.pid} now belongs to another process`;
  return null;
}

function parseHolder(text: string): LockHolder | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null) return null;
  const o = v as Record<string, unknown>;
  if (typeof o['pid'] !== 'number' || !Number.isSafeInteger(o['pid']) || o['pid'] <= 0) return null;
  if (o['startTime'] !== null && typeof o['startTime'] !== 'string') return null;
  if (typeof o['host'] !== 'string' || (o['mode'] !== 'exclusive' && o['mode'] !== 'shared')) return null;
  return {
    pid: o['pid'], startTime: o['startTime'], host: o['host'], mode: o['mode'],
    command: typeof o['command'] === 'string' ? o['command'] : '?', since: typeof o['since'] === 'string' ? o['since'] : '?',
  };
}

/** The state letter and start time (field 22) of a process from /proc/<pid>/stat; null without /proc or process. */
export function procStat(pid: number): { state: string; startTime: string } | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  return parseProcStat(text);
}

/** Parses the text of /proc/<pid>/stat: its state letter and start time (field 22); null if it does not parse. */
export function parseProcStat(text: string): { state: string; startTime: string } | null {
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'.
  const close = text.lastIndexOf(')');
  if (close < 0) return null;
  const fields = text.slice(close + 2).split(' ');
  const state = fields[0];
  const startTime = fields[19]; // field 22 overall; fields[0] is field 3
  if (state === undefined || startTime === undefined || !/^[0-9]+$/.test(startTime)) return null;
  return { state, startTime };
}

function selfIdentity(): { pid: number; startTime: string | null } {
  return { pid: process.pid, startTime: procStat(process.pid)?.startTime ?? null };
}

/** Writes `holder` to a temporary file, fsyncs it, and links it to `file`; false when `file` exists. */
function createWhole(dir: string, file: string, holder: LockHolder): boolean {
  const tmp = join(dir, `${LOCK_FILE_NAME}.tmp.${process.pid}.${Math.random().toString(36).slice(2)}`);
  try {
    const fd = openSync(tmp, 'wx', 0o644);
    try {
      writeSync(fd, JSON.stringify(holder) + '\n');
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    try {
      linkSync(tmp, file);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw e;
    }
  } catch (e) {
    throw new DataDirLockError(dir, (e as Error).message, { cause: e });
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** The live holder of the exclusive lock of `dir`, or null (no lock, or a stale one): for a reader that cannot write its own lock file. */
export function exclusiveHolder(dir: string): LockHolder | null {
  const v = inspect(join(dir, LOCK_FILE_NAME));
  return v.kind === 'alive' ? v.holder : null;
}

function listSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
