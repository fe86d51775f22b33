// Idle cost (issue 5, item 5): what a 3-node cluster costs when nobody
// writes, in push mode, in pull mode, and for a 3-member etcd 3.4 cluster.
// The three clusters run at the same time on this machine (nine processes;
// idle, they barely compete), each settles with one committed write, then
// for the measured interval nothing talks to them: no client, no metrics
// scrape. Per process, from /proc: CPU seconds (→ % of one core), context
// switches of all its threads (a cheap count of wakeups). Between the
// members, from the kernel's TCP counters (`ss -tinp`): data segments and
// bytes per second in each direction, so that "pull mode does not busy-poll"
// is measured rather than assumed: a follower's fetches per second.
//
//   node dist/bench/idle.js [--quick] [--seconds 60] [--settle-seconds 5] [--etcd yes|no]
//     [--profile auto|yes|no] [--profile-seconds 20]
//
// With --profile auto (the default), a mode that misses the idle-CPU target
// is then run again, alone with the other mode, under `node --cpu-prof`
// (cluster/cpu-profile.ts) and the report says where the CPU goes.
//
// Writes docs/bench/idle.{json,md} (quick-idle.* with --quick).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { EtcdTestClient } from '../test/cluster/etcd-client.js';
import { TestCluster } from '../test/cluster/harness.js';
import { EtcdCluster } from './cluster/etcd.js';
import { profileIdleCluster, type NodeProfile } from './cluster/cpu-profile.js';
import { clusterTimeouts, contextSwitches, freeEtcdBasePort, isMainModule, onInterrupt, sleep, type ClusterTimeouts } from './cluster/fault-util.js';
import { trafficBetween, trafficSnapshot } from './cluster/peer-traffic.js';
import { cpuMeter } from './cluster/proc.js';
import { fmt, mdTable, progress, writeReport } from './cluster/report.js';

type System = 'quorumlog push' | 'quorumlog pull' | 'etcd 3.4';

/** One process's idle cost. */
export interface IdleNode {
  readonly system: System;
  readonly node: string;
  readonly pid: number;
  readonly role: 'leader' | 'follower';
  readonly cpuSeconds: number;
  /** CPU seconds per wall second × 100: percent of one core. */
  readonly cpuPercent: number;
  readonly contextSwitchesPerSecond: number;
}

/** Traffic between the leader and one follower. */
export interface IdleLink {
  readonly system: System;
  readonly follower: string;
  readonly toLeaderSegmentsPerSecond: number;
  readonly fromLeaderSegmentsPerSecond: number;
  readonly toLeaderBytesPerSecond: number;
  readonly fromLeaderBytesPerSecond: number;
}

interface Measured {
  readonly system: System;
  readonly pids: Record<string, number>;
  readonly leader: string;
  readonly peerPorts: number[];
}

/** Runs the benchmark; `argv` are the options after the script name. */
export async function main(argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      quick: { type: 'boolean', default: false },
      seconds: { type: 'string' },
      'settle-seconds': { type: 'string' },
      etcd: { type: 'string', default: 'yes' },
      profile: { type: 'string', default: 'auto' },
      'profile-seconds': { type: 'string' },
    },
  });
  const quick = values.quick === true;
  const seconds = Number(values.seconds ?? (quick ? 5 : 60));
  const settleSeconds = Number(values['settle-seconds'] ?? (quick ? 2 : 5));
  const withEtcd = values.etcd !== 'no';
  const profile = values.profile;
  const profileSeconds = Number(values['profile-seconds'] ?? (quick ? 5 : 20));
  const name = quick ? 'quick-idle' : 'idle';
  const command = `node dist/bench/idle.js${argv.length > 0 ? ` ${argv.join(' ')}` : ''}`;
  const report = progress('idle');

  const clusters: TestCluster[] = [];
  let etcd: EtcdCluster | null = null;
  const etcdDir = mkdtempSync(join(tmpdir(), 'quorumlog-bench-etcd-idle-'));
  const etcdBase = await freeEtcdBasePort(36_000);
  const cleanup = async (): Promise<void> => {
    await Promise.all(clusters.map((c) => c.close()));
    await etcd?.stop();
    if (process.env['KEEP_CLUSTER_DIRS'] === undefined) rmSync(etcdDir, { recursive: true, force: true });
  };
  const detach = onInterrupt(cleanup);
  const nodes: IdleNode[] = [];
  const links: IdleLink[] = [];
  let timeouts: ClusterTimeouts | null = null;
  try {
    // Start everything at once, then one committed write each and a quiet settle.
    const started = await Promise.all([
      TestCluster.start({ nodes: 3, mode: 'push' }), TestCluster.start({ nodes: 3, mode: 'pull' }),
    ]);
    clusters.push(...started);
    if (withEtcd) etcd = await EtcdCluster.start(etcdDir, etcdBase);
    const measured: Measured[] = [];
    for (const c of clusters) {
      const leader = await c.waitForLeader(30_000);
      const cl = new EtcdTestClient(leader.endpoint, 5000);
      try {
        await cl.put('idle/ready', 'yes');
      } finally {
        cl.close();
      }
      const target = (await leader.status())?.commitIndex ?? 0;
      for (const n of c.nodes) await c.waitFor(n, (s) => s.appliedIndex >= target, 30_000, 'applying the first write');
      timeouts = clusterTimeouts(c);
      measured.push({
        system: `quorumlog ${c.options.mode}`,
        pids: Object.fromEntries(c.nodes.map((n) => [n.id, n.process?.pid as number])),
        leader: leader.id,
        peerPorts: c.nodes.map((n) => n.member.peer.port),
      });
    }
    if (etcd !== null) {
      measured.push({
        system: 'etcd 3.4', pids: etcd.pids(), leader: etcd.leader().name,
        peerPorts: etcd.members.map((_, i) => etcdBase + 100 + i),
      });
    }
    await sleep(settleSeconds * 1000);

    // The measured interval: nothing but the clock touches the clusters.
    const allPids: Record<string, number> = {};
    for (const m of measured) for (const [id, pid] of Object.entries(m.pids)) allPids[`${m.system}/${id}`] = pid;
    const ctx0 = Object.fromEntries(Object.entries(allPids).map(([k, pid]) => [k, contextSwitches(pid)]));
    const traffic0 = measured.map((m) => trafficSnapshot(m.peerPorts));
    const meter = cpuMeter(allPids);
    const t0 = performance.now();
    const endAt = t0 + seconds * 1000;
    while (performance.now() < endAt) {
      await sleep(Math.min(1000, endAt - performance.now()));
      report(`${fmt((performance.now() - t0) / 1000, 0)} of ${seconds} s idle`);
    }
    const cpu = meter.stop();
    const wall = (performance.now() - t0) / 1000;
    const traffic1 = measured.map((m) => trafficSnapshot(m.peerPorts));
    const ctx1 = Object.fromEntries(Object.entries(allPids).map(([k, pid]) => [k, contextSwitches(pid)]));

    measured.forEach((m, i) => {
      const leaderPid = m.pids[m.leader] as number;
      for (const [id, pid] of Object.entries(m.pids)) {
        const key = `${m.system}/${id}`;
        const s = cpu[key] ?? NaN;
        nodes.push({
          system: m.system, node: id, pid, role: id === m.leader ? 'leader' : 'follower', cpuSeconds: s, cpuPercent: (s / wall) * 100,
          contextSwitchesPerSecond: ((ctx1[key] ?? NaN) - (ctx0[key] ?? NaN)) / wall,
        });
      }
      const between = trafficBetween(traffic0[i] as ReturnType<typeof trafficSnapshot>, traffic1[i] as ReturnType<typeof trafficSnapshot>);
      for (const [id, pid] of Object.entries(m.pids)) {
        if (id === m.leader) continue;
        const up = between.get(`${pid}>${leaderPid}`) ?? { segs: 0, bytes: 0 };
        const down = between.get(`${leaderPid}>${pid}`) ?? { segs: 0, bytes: 0 };
        links.push({
          system: m.system, follower: id,
          toLeaderSegmentsPerSecond: up.segs / wall, fromLeaderSegmentsPerSecond: down.segs / wall,
          toLeaderBytesPerSecond: up.bytes / wall, fromLeaderBytesPerSecond: down.bytes / wall,
        });
      }
    });
  } finally {
    await cleanup();
    detach();
  }

  // Verdicts.
  const bySystem = (s: System): IdleNode[] => nodes.filter((n) => n.system === s);
  const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const summary = (['quorumlog push', 'quorumlog pull', 'etcd 3.4'] as const).filter((s) => bySystem(s).length > 0).map((s) => {
    const ns = bySystem(s);
    return {
      system: s,
      meanCpuPercent: mean(ns.map((n) => n.cpuPercent)),
      maxCpuPercent: Math.max(...ns.map((n) => n.cpuPercent)),
      leaderCpuPercent: ns.find((n) => n.role === 'leader')?.cpuPercent ?? NaN,
      meanContextSwitchesPerSecond: mean(ns.map((n) => n.contextSwitchesPerSecond)),
    };
  });
  const etcdSummary = summary.find((s) => s.system === 'etcd 3.4');
  const t = timeouts as ClusterTimeouts | null;
  const fetchWaitMs = t === null ? NaN : t.fetchMaxWaitTicks * t.tickMs;
  const parkedRate = 1000 / fetchWaitMs;
  const pullLinks = links.filter((l) => l.system === 'quorumlog pull');
  const maxFetchRate = Math.max(...pullLinks.map((l) => l.toLeaderSegmentsPerSecond));
  // A parked fetch is answered after fetchMaxWait at the latest; allow half as much again for the round trip and
  // the occasional extra message, and call anything above that polling.
  const noBusyPolling = pullLinks.length > 0 && maxFetchRate <= parkedRate * 1.5;
  const verdicts: string[] = [];
  const missed: ('push' | 'pull')[] = [];
  for (const s of summary.filter((x) => x.system !== 'etcd 3.4')) {
    if (etcdSummary === undefined) break;
    const met = s.meanCpuPercent <= etcdSummary.meanCpuPercent && s.maxCpuPercent <= etcdSummary.maxCpuPercent;
    if (!met) missed.push(s.system === 'quorumlog push' ? 'push' : 'pull');
    verdicts.push(`- Idle CPU per node, ${s.system}: mean ${fmt(s.meanCpuPercent, 2)}% and busiest node ${fmt(s.maxCpuPercent, 2)}% of a core, ` +
      `against etcd's ${fmt(etcdSummary.meanCpuPercent, 2)}% and ${fmt(etcdSummary.maxCpuPercent, 2)}%: target "no higher than etcd's" **${met ? 'met' : 'not met'}**.`);
  }
  if (etcdSummary === undefined) verdicts.push('- Idle CPU per node against etcd: not judged (etcd was not run, --etcd no).');
  if (pullLinks.length > 0) {
    verdicts.push(`- No busy polling in pull mode: each follower sent at most ${fmt(maxFetchRate, 1)} messages/s to the leader ` +
      `(a fetch parked for fetchMaxWait = ${fmt(fetchWaitMs, 0)} ms gives ≈ ${fmt(parkedRate, 1)}/s): **${noBusyPolling ? 'met' : 'not met'}** — ` +
      (noBusyPolling ? 'fetches are parked on the leader, not repeated in a loop.' : 'more fetches than parking allows: the follower polls.'));
  }

  // Where the CPU goes, when a target is missed (or when asked).
  const toProfile: ('push' | 'pull')[] = profile === 'yes' ? ['push', 'pull'] : profile === 'auto' ? missed : [];
  let profiles: NodeProfile[] = [];
  const profileMd: string[] = [];
  if (toProfile.length > 0) {
    console.log(`profiling idle ${toProfile.join(' and ')} clusters under node --cpu-prof for ${profileSeconds} s`);
    try {
      profiles = (await Promise.all(toProfile.map((m) => profileIdleCluster(m, profileSeconds)))).flat();
    } catch (e) {
      profileMd.push(`(The profile run failed: ${(e as Error).message}.)`);
    }
    for (const mode of toProfile) {
      const ps = profiles.filter((p) => p.mode === mode);
      const shown = [ps.find((p) => p.role === 'leader'), ps.find((p) => p.role !== 'leader')].filter((p): p is NodeProfile => p !== undefined);
      const lead = shown[0];
      const perFollower = links.filter((l) => l.system === `quorumlog ${mode}`).map((l) => l.fromLeaderSegmentsPerSecond);
      if (lead !== undefined && t !== null) {
        profileMd.push(`${mode} mode, what the profile shows: on the leader ${fmt(lead.underTimersPercent, 0)}% of the JavaScript-visible CPU is under timer ` +
          `callbacks, chiefly the runtime's tick, which runs every ${t.tickMs} ms (${fmt(1000 / t.tickMs, 0)} wakeups/s on every node, idle or not; ` +
          `etcd's raft ticks once per 100 ms heartbeat), and ${fmt(lead.inSocketWritesPercent, 0)}% in socket writes (one writev system call per ` +
          `message, ${fmt(Math.max(0, ...perFollower), 0)}/s to each follower). /proc also counts what the profiler cannot see (kernel time of ` +
          'those system calls and of epoll, V8 and libuv threads), so its figures are higher.', '');
      }
      for (const p of shown) {
        profileMd.push(`**${mode} mode, ${p.node} (${p.role})**: busy ${fmt(p.busyPercent, 2)}% of a core under the profiler; ` +
          `${fmt(p.underTimersPercent, 0)}% of that under Node's timer callbacks (the runtime's tick), ${fmt(p.inSocketWritesPercent, 0)}% in socket writes.`, '');
        profileMd.push(mdTable(['self time', 'share', 'function'], p.top.map((e) => [`${fmt(e.selfMs, 1)} ms`, `${fmt(e.selfPercent, 1)}%`, `\`${e.where}\``])), '');
      }
    }
  }

  const nodeTable = mdTable(['system', 'node', 'role', 'CPU s', 'CPU % of a core', 'context switches/s'],
    nodes.map((n) => [n.system, n.node, n.role, fmt(n.cpuSeconds, 2), fmt(n.cpuPercent, 2), fmt(n.contextSwitchesPerSecond, 0)]));
  const summaryTable = mdTable(['system', 'CPU % per node (mean)', 'busiest node', 'leader', 'context switches/s per node'],
    summary.map((s) => [s.system, fmt(s.meanCpuPercent, 2), fmt(s.maxCpuPercent, 2), fmt(s.leaderCpuPercent, 2), fmt(s.meanContextSwitchesPerSecond, 0)]));
  const linkTable = mdTable(['system', 'follower', 'messages/s to leader', 'messages/s from leader', 'bytes/s to leader', 'bytes/s from leader'],
    links.map((l) => [l.system, l.follower, fmt(l.toLeaderSegmentsPerSecond, 1), fmt(l.fromLeaderSegmentsPerSecond, 1),
      fmt(l.toLeaderBytesPerSecond, 0), fmt(l.fromLeaderBytesPerSecond, 0)]));
  const settings = t === null ? '' : `quorumlog settings (from the nodes' config): ${t.tickMs} ms ticks, push heartbeats every ` +
    `${t.heartbeatIntervalTicks * t.tickMs} ms, pull fetches parked up to ${fetchWaitMs} ms, election timeout ${t.electionTimeoutMinMs}-${t.electionTimeoutMaxMs} ms. ` +
    'etcd with its defaults (heartbeat 100 ms, election timeout 1000 ms).';
  const md = [
    '# Idle cost: CPU per node with no traffic',
    '',
    `A 3-node push cluster, a 3-node pull cluster${withEtcd ? ' and a 3-member etcd 3.4 cluster' : ''}, all running at the same time on this machine. ` +
      `Each committed one write, then settled ${settleSeconds} s; then ${seconds} s with no client, no scrape and no status query. ` +
      'CPU seconds (user + system) and context switches (all threads) per process come from /proc; messages between the members ' +
      'are the kernel\'s count of TCP segments that carried data (`ss -tinp`, data_segs_out), summed over every connection between two members.',
    '',
    settings,
    '',
    summaryTable,
    '',
    ...verdicts,
    '',
    '## Per process',
    '',
    nodeTable,
    '',
    '## Between each follower and its leader',
    '',
    linkTable,
    ...(profileMd.length > 0 ? ['', '## Where the CPU goes (node --cpu-prof of idle clusters, run after the measurement)', '',
      `Each cluster idle ${profileSeconds} s after a 3 s settle; self time per function over that interval, the top ones.`, '', ...profileMd] : []),
  ].join('\n');
  const files = writeReport(name, command, { seconds, settleSeconds, timeouts: t, summary, nodes, links, noBusyPolling, profiles }, md);
  const profileLines = profiles.filter((p) => p.role === 'leader' || p.node === profiles.find((q) => q.mode === p.mode && q.role !== 'leader')?.node)
    .map((p) => `${p.mode} ${p.node} (${p.role}): ${fmt(p.underTimersPercent, 0)}% under timers, ${fmt(p.inSocketWritesPercent, 0)}% in socket writes; ` +
      `top: ${p.top.slice(0, 3).map((e) => `${e.where} ${fmt(e.selfPercent, 0)}%`).join(', ')}`);
  console.log(`\n${summaryTable}\n\n${linkTable}\n\n${verdicts.join('\n')}\n${profileLines.length > 0 ? `\nprofile:\n${profileLines.join('\n')}\n` : ''}\nwrote ${files.join(', ')}`);
}

if (isMainModule(import.meta.url)) {
  main().then(() => process.exit(0), (e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
