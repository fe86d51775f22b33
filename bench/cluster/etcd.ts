// A 3-member etcd cluster on loopback, for benchmarks that put quorumlog
// beside the Raft store people would pick instead. etcd comes from Debian's
// etcd-server package (3.4), installed here when missing (as root; elsewhere
// the error says what to run). Each member is its own process with its own
// data directory; fsync is on, as it is for quorumlog.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { EtcdTestClient } from '../../test/cluster/etcd-client.js';

/** Installs etcd-server (and etcd-client) from Debian if `etcd` is not on the PATH. */
export function ensureEtcdServer(): void {
  try {
    execFileSync('etcd', ['--version'], { stdio: 'ignore' });
    return;
  } catch {
    // not installed
  }
  if (process.getuid?.() !== 0) throw new Error('etcd is not installed: run `sudo apt-get install -y etcd-server etcd-client`');
  console.error('installing Debian packages etcd-server etcd-client for the comparison');
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'etcd-server', 'etcd-client'], {
    stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
}

export interface EtcdMember {
  readonly name: string;
  readonly client: string;
  process: ChildProcess | null;
}

/** A running etcd cluster. */
export class EtcdCluster {
  private constructor(readonly dir: string, readonly members: EtcdMember[]) {}

  /** Starts `size` members with client ports base.. and peer ports base+100.. under dir. */
  static async start(dir: string, basePort: number, size = 3): Promise<EtcdCluster> {
    ensureEtcdServer();
    mkdirSync(dir, { recursive: true });
    const names = Array.from({ length: size }, (_, i) => `e${i + 1}`);
    const initial = names.map((n, i) => `${n}=http://127.0.0.1:${basePort + 100 + i}`).join(',');
    const members: EtcdMember[] = names.map((name, i) => {
      const client = `127.0.0.1:${basePort + i}`;
      const log = openSync(join(dir, `${name}.log`), 'a');
      const p = spawn('etcd', [
        '--name', name, '--data-dir', join(dir, name),
        '--listen-client-urls', `http://${client}`, '--advertise-client-urls', `http://${client}`,
        '--listen-peer-urls', `http://127.0.0.1:${basePort + 100 + i}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${basePort + 100 + i}`,
        '--initial-cluster', initial, '--initial-cluster-state', 'new', '--initial-cluster-token', `bench-${basePort}`,
        '--log-level', 'warn', '--logger', 'zap',
      ], { stdio: ['ignore', log, log] });
      closeSync(log);
      return { name, client, process: p };
    });
    const c = new EtcdCluster(dir, members);
    await c.waitReady();
    return c;
  }

  /** The pid of each member, by name. */
  pids(): Record<string, number> {
    return Object.fromEntries(this.members.filter((m) => m.process?.pid !== undefined).map((m) => [m.name, m.process?.pid as number]));
  }

  get endpoints(): string[] {
    return this.members.map((m) => m.client);
  }

  /** Waits until a write commits. */
  async waitReady(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const cl = new EtcdTestClient(this.members[0]?.client ?? '', 1000);
    try {
      while (Date.now() < deadline) {
        try {
          await cl.put('bench-ready', 'yes');
          return;
        } catch {
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      throw new Error(`etcd did not become ready within ${timeoutMs} ms; logs in ${this.dir}`);
    } finally {
      cl.close();
    }
  }

  /** The member that leads now (from Maintenance.Status through etcdctl). */
  leader(): EtcdMember {
    const out = execFileSync('etcdctl', ['--endpoints', this.endpoints.join(','), 'endpoint', 'status', '-w', 'json'], {
      encoding: 'utf8', env: { ...process.env, ETCDCTL_API: '3' },
    });
    const rows = JSON.parse(out) as { Endpoint: string; Status: { header: { member_id: number }; leader: number } }[];
    const lead = rows.find((r) => String(r.Status.header.member_id) === String(r.Status.leader));
    const m = this.members.find((x) => lead !== undefined && lead.Endpoint.endsWith(x.client));
    if (m === undefined) throw new Error('etcd has no leader');
    return m;
  }

  /** Stops every member (SIGTERM, then SIGKILL). */
  async stop(): Promise<void> {
    await Promise.all(this.members.map((m) => new Promise<void>((resolve) => {
      const p = m.process;
      if (p === null || p.exitCode !== null) return resolve();
      p.once('exit', () => resolve());
      p.kill('SIGTERM');
      setTimeout(() => p.kill('SIGKILL'), 5000).unref();
    })));
  }
}
