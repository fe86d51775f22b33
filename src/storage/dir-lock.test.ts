// The data directory's lock (dir-lock.ts) between real processes: a live
// holder refuses a second writer and readers, naming its pid; readers share;
// a holder that exits releases, one killed with -9 leaves a stale lock that
// the next writer takes over and reports; a reused pid, an unreadable lock
// file, a dead reader's file are stale too; a lock from another host is
// respected. The other processes are small node scripts that import the
// compiled module.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DataDirLockedError, DataDirLockError, exclusiveHolder, LOCK_FILE_NAME, lockDataDir, parseProcStat, procStat, type LockHolder,
} from './dir-lock.js';

const moduleUrl = new URL('./dir-lock.js', import.meta.url).href;
const dirs: string[] = [];
const children = new Set<ChildProcess>();

function newDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'quorumlog-lock-'));
  dirs.push(d);
  return d;
}

after(() => {
  for (const c of children) c.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A process that takes the lock, says "locked" (or "refused: <message>"), and exits when its stdin says "exit". */
async function holder(dir: string, mode: 'exclusive' | 'shared'): Promise<{ child: ChildProcess; said: string }> {
  const script = `
    import { lockDataDir } from ${JSON.stringify(moduleUrl)};
    try {
      lockDataDir(${JSON.stringify(dir)}, ${JSON.stringify(mode)}, { command: 'test holder' });
      console.log('locked');
    } catch (e) {
      console.log('refused: ' + e.message);
      process.exit(3);
    }
    process.stdin.on('data', () => process.exit(0));`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  const said = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(out.trim());
    });
    child.once('close', (code) => (out.trim() !== '' ? resolve(out.trim()) : reject(new Error(`holder exited with ${code}, saying nothing`))));
  });
  return { child, said };
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((r) => child.once('exit', () => r()));
}

function refusedBy(fn: () => unknown, pid: number, dir: string): DataDirLockedError {
  let caught: unknown = null;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof DataDirLockedError, `expected DataDirLockedError, got ${String(caught)}`);
  assert.equal(caught.holder.pid, pid);
  assert.ok(caught.message.includes(`process ${pid}`), caught.message);
  assert.ok(caught.message.includes(dir), caught.message);
  return caught;
}

const lockFile = (dir: string): LockHolder => JSON.parse(readFileSync(join(dir, LOCK_FILE_NAME), 'utf8')) as LockHolder;

describe('data directory lock', () => {
  it('holds one writer per directory in this process, and release() frees it', () => {
    const dir = join(newDir(), 'new', 'data');
    const lock = lockDataDir(dir, 'exclusive', { command: 'quorumlog start' });
    assert.ok(existsSync(dir), 'the directory is created');
    const h = lockFile(dir);
    assert.equal(h.pid, process.pid);
    assert.equal(h.mode, 'exclusive');
    assert.equal(h.command, 'quorumlog start');
    assert.equal(h.startTime, procStat(process.pid)?.startTime);
    refusedBy(() => lockDataDir(dir, 'exclusive', { command: 'again' }), process.pid, dir);
    refusedBy(() => lockDataDir(dir, 'shared', { command: 'reader' }), process.pid, dir);
    lock.release();
    lock.release(); // idempotent
    assert.equal(existsSync(join(dir, LOCK_FILE_NAME)), false);
    assert.deepEqual(readdirSync(dir), [], 'no temporary files are left behind');
    const again = lockDataDir(dir, 'exclusive', { command: 'quorumlog start' });
    assert.deepEqual(again.tookOver, []);
    again.release();
  });

  it('refuses a writer and a reader while another live process writes, and frees the directory when it exits', async () => {
    const dir = newDir();
    const { child, said } = await holder(dir, 'exclusive');
    assert.equal(said, 'locked');
    const e = refusedBy(() => lockDataDir(dir, 'exclusive', { command: 'second start' }), child.pid as number, dir);
    assert.match(e.message, /test holder.*has it open; stop that process first/);
    refusedBy(() => lockDataDir(dir, 'shared', { command: 'check-data' }), child.pid as number, dir);
    assert.equal(exclusiveHolder(dir)?.pid, child.pid);
    child.stdin?.write('exit\n');
    await exited(child);
    assert.equal(existsSync(join(dir, LOCK_FILE_NAME)), false, 'process.exit() released the lock');
    assert.equal(exclusiveHolder(dir), null);
    const lock = lockDataDir(dir, 'exclusive', { command: 'quorumlog start' });
    assert.deepEqual(lock.tookOver, []);
    lock.release();
  });

  it('takes over the lock of a process killed with -9, and says whose it was', async () => {
    const dir = newDir();
    const { child } = await holder(dir, 'exclusive');
    const pid = child.pid as number;
    child.kill('SIGKILL');
    await exited(child);
    assert.equal(lockFile(dir).pid, pid, 'kill -9 leaves the lock file behind');
    const lock = lockDataDir(dir, 'exclusive', { command: 'quorumlog start' });
    assert.equal(lock.tookOver.length, 1);
    assert.equal(lock.tookOver[0]?.holder?.pid, pid);
    assert.match(lock.tookOver[0]?.reason ?? '', new RegExp(`process ${pid} (is gone|has exited)`));
    assert.equal(lockFile(dir).pid, process.pid);
    lock.release();
  });

  it('counts a lock whose pid now belongs to another process, or that is unreadable, as stale', () => {
    const dir = newDir();
    const reused: LockHolder = { pid: process.pid, startTime: '1', host: hostname(), mode: 'exclusive', command: 'old', since: '2020-01-01T00:00:00Z' };
    writeFileSync(join(dir, LOCK_FILE_NAME), JSON.stringify(reused));
    const lock = lockDataDir(dir, 'exclusive', { command: 'quorumlog start' });
    assert.match(lock.tookOver[0]?.reason ?? '', new RegExp(`pid ${process.pid} now belongs to another process`));
    lock.release();
    writeFileSync(join(dir, LOCK_FILE_NAME), ''); // as a power cut can leave it
    const lock2 = lockDataDir(dir, 'exclusive', { command: 'quorumlog start' });
    assert.equal(lock2.tookOver[0]?.holder, null);
    assert.match(lock2.tookOver[0]?.reason ?? '', /unreadable/);
    lock2.release();
  });

  it('respects a lock taken on another host, which it cannot check', () => {
    const dir = newDir();
    const remote: LockHolder = { pid: 999_999_999, startTime: '5', host: `not-${hostname()}`, mode: 'exclusive', command: 'quorumlog start', since: 'then' };
    writeFileSync(join(dir, LOCK_FILE_NAME), JSON.stringify(remote));
    const e = refusedBy(() => lockDataDir(dir, 'exclusive', { command: 'quorumlog start' }), 999_999_999, dir);
    assert.match(e.message, new RegExp(`on host not-${hostname()}`));
  });

  it('lets readers share, keeps a writer out while one reads, and clears a dead reader\'s file', async () => {
    const dir = newDir();
    const reader = await holder(dir, 'shared');
    assert.equal(reader.said, 'locked');
    const mine = lockDataDir(dir, 'shared', { command: 'check-data' }); // two readers at once
    assert.equal(readdirSync(dir).filter((n) => n.startsWith(`${LOCK_FILE_NAME}.shared.`)).length, 2);
    mine.release();
    const e = refusedBy(() => lockDataDir(dir, 'exclusive', { command: 'quorumlog start' }), reader.child.pid as number, dir);
    assert.match(e.message, /is reading it; wait for it to finish/);
    assert.equal(existsSync(join(dir, LOCK_FILE_NAME)), false, 'the refused writer removed its own lock file');
    reader.child.kill('SIGKILL');
    await exited(reader.child);
    const lock = lockDataDir(dir, 'exclusive', { command: 'quorumlog start' });
    assert.deepEqual(lock.tookOver.map((s) => s.holder?.pid), [reader.child.pid]);
    assert.deepEqual(readdirSync(dir), [LOCK_FILE_NAME]);
    lock.release();
  });

  it('keeps a reader out while another process writes; a reader leaves a stale writer\'s lock for the next writer', async () => {
    const dir = newDir();
    const writer = await holder(dir, 'exclusive');
    const refused = await holder(dir, 'shared');
    assert.match(refused.said, new RegExp(`^refused: data directory .* is locked: process ${writer.child.pid} \\(test holder`));
    writer.child.kill('SIGKILL');
    await exited(writer.child);
    const r = lockDataDir(dir, 'shared', { command: 'check-data' });
    assert.equal(r.leftStale[0]?.holder?.pid, writer.child.pid);
    assert.equal(lockFile(dir).pid, writer.child.pid, 'a reader changes nothing');
    r.release();
  });

  it('gives a reader of a missing directory a DataDirLockError, without creating it', () => {
    const dir = join(newDir(), 'missing');
    assert.throws(() => lockDataDir(dir, 'shared', { command: 'check-data', create: false }), DataDirLockError);
    assert.equal(existsSync(dir), false);
  });

  it('reads the start time from /proc/<pid>/stat even when the command name holds spaces and parentheses', () => {
    const fields = Array.from({ length: 50 }, (_, i) => String(i + 3));
    fields[0] = 'S';
    assert.deepEqual(parseProcStat(`42 (a (weird) name) ${fields.join(' ')}\n`), { state: 'S', startTime: '22' });
    assert.equal(parseProcStat('garbage'), null);
    assert.equal(parseProcStat('1 (x) S 2 3'), null);
  });
});
