// kill -9 and restart of one member of a bench EtcdCluster, for the failover
// benchmark. The restart repeats the flags EtcdCluster.start uses (etcd
// ignores the --initial-cluster settings once its data directory exists), so
// keep the two in step if one changes.

import { execFileSync, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import type { EtcdCluster, EtcdMember } from './etcd.js';

/** kill -9 of a member; resolves once it has exited. */
export async function killEtcdMember(m: EtcdMember): Promise<void> {
  const p = m.process;
  if (p === null || p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise<void>((r) => p.once('exit', () => r()));
  p.kill('SIGKILL');
  await exited;
}

/** Starts member `index` (0-based) of a cluster started with `basePort` again, from its data directory. */
export function restartEtcdMember(c: EtcdCluster, index: number, basePort: number): void {
  const m = c.members[index];
  if (m === undefined) throw new Error(`no etcd member ${index}`);
  const initial = c.members.map((x, i) => `${x.name}=http://127.0.0.1:${basePort + 100 + i}`).join(',');
  const peer = `http://127.0.0.1:${basePort + 100 + index}`;
  const log = openSync(join(c.dir, `${m.name}.log`), 'a');
  m.process = spawn('etcd', [
    '--name', m.name, '--data-dir', join(c.dir, m.name),
    '--listen-client-urls', `http://${m.client}`, '--advertise-client-urls', `http://${m.client}`,
    '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
    '--initial-cluster', initial, '--initial-cluster-state', 'new', '--initial-cluster-token', `bench-${basePort}`,
    '--log-level', 'warn', '--logger', 'zap',
  ], { stdio: ['ignore', log, log] });
  closeSync(log);
}

/** Each member's raft index and leader id from `etcdctl endpoint status` (members that do not answer are absent). */
export function etcdEndpointStatus(c: EtcdCluster): Map<string, { raftIndex: number; leader: string; memberId: string }> {
  const out = new Map<string, { raftIndex: number; leader: string; memberId: string }>();
  for (const m of c.members) {
    try {
      const text = execFileSync('etcdctl', ['--endpoints', m.client, '--command-timeout', '1s', 'endpoint', 'status', '-w', 'json'], {
        encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, ETCDCTL_API: '3' },
      });
      const row = (JSON.parse(text) as { Status: { header: { member_id: number }; leader: number; raftIndex: number } }[])[0];
      if (row !== undefined) out.set(m.name, { raftIndex: row.Status.raftIndex, leader: String(row.Status.leader), memberId: String(row.Status.header.member_id) });
    } catch {
      // not answering (yet)
    }
  }
  return out;
}

/**
 * Waits until the cluster has settled (every member answers, agrees on the
 * leader and has its raft index) and returns the leader and its index in
 * `c.members`; throws after 30 s.
 */
export async function settledEtcdLeader(c: EtcdCluster): Promise<{ leader: EtcdMember; index: number }> {
  const settleBy = Date.now() + 30_000;
  while (Date.now() < settleBy) {
    const st = etcdEndpointStatus(c);
    const rows = [...st.values()];
    const lead = rows.find((r) => r.memberId === r.leader);
    if (st.size === c.members.length && lead !== undefined && rows.every((r) => r.leader === lead.leader && r.raftIndex >= lead.raftIndex)) {
      const name = [...st.entries()].find(([, r]) => r === lead)?.[0];
      const index = c.members.findIndex((m) => m.name === name);
      const leader = c.members[index];
      if (leader !== undefined) return { leader, index };
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`etcd did not settle within 30 s; logs in ${c.dir}`);
}
