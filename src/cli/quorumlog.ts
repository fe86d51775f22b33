#!/usr/bin/env node
// The `quorumlog` command: cluster (a local cluster to try), start (one node),
// status, check-data, the key-value verbs put, get, del, watch, transfer-leader,
// backup and restore, the membership verbs under `member`, the quorum queue
// verbs under `queue`, the metadata log's under `metadata`, and `role` for
// permissions on keys, queues and the metadata log (etcdctl's `role` cannot
// name the latter two). Verbs that talk to a cluster take --user, as etcdctl.
// Built on commander (a maintained CLI library).

import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { Command, Option } from 'commander';
import { runCluster, runClusterRestart } from './cluster.js';
import { CLUSTER_DEFAULTS } from '../../scripts/cluster-ports.mjs';
import { runStart, type StartFlags } from './start.js';
import { NODE_DEFAULTS } from '../server/config.js';
import { runStatus } from './status.js';
import { runDel, runGet, runPut, runWatch, type KvVerbOptions } from './kv-verbs.js';
import { addMetadataCommands } from './metadata.js';
import { addQueueCommands } from './queue.js';
import { addRoleCommands } from './role.js';
import { addMemberCommands } from './member.js';
import { runTransferLeader } from './transfer-leader.js';
import { runBackup, runRestore } from './backup.js';
import { addClientCredentialOptions, promptPassword, setClientTls, setClientUser, tlsFromFlags, userFromFlags } from './credentials.js';
import { runCheckData } from './check-data.js';
import { setVerbContext, verbContext, verbErrorLine } from './transport-errors.js';

/** Builds the command-line program; exported so that tests can run it in-process. */
export function program(out: (line: string) => void = console.log, err: (line: string) => void = console.error): Command {
  const cmd = new Command('quorumlog').description('a replicated log with Raft consensus, push or pull replication');
  cmd
    .command('check-data')
    .description('verify a node\'s data directory (log, term/vote, snapshots) without changing it; exits 1 on any problem, or when a running node or a restore has the directory open (several checks may run at once)')
    .argument('<dir>', 'the node\'s data directory')
    .option('--json', 'print the report as JSON')
    .action((dir: string, opts: { json?: boolean }) => {
      process.exitCode = runCheckData(dir, { json: opts.json === true }, out, err);
    });
  const cluster = cmd
    .command('cluster')
    .description('start a local cluster of N nodes (separate processes on 127.0.0.1) and keep it in the foreground; Ctrl-C stops it. '
      + 'Refuses (exit 1) when one of its ports is taken or the data directory already runs, naming the port and what holds it')
    .option('--nodes <n>', 'how many voters', String(CLUSTER_DEFAULTS.nodes))
    .option('--observers <n>', 'how many non-voting observers (o1, o2, ...) besides them', String(CLUSTER_DEFAULTS.observers))
    .addOption(new Option('--mode <mode>', 'replication mode').choices(['push', 'pull']).default('push'))
    .option('--data-dir <dir>', 'where configs, data and logs go', CLUSTER_DEFAULTS.dataDir)
    .option('--base-port <port>', 'client ports are base..base+N-1, peers base+100.., metrics base+200.., AMQP 5672.. (base+300.. for another base)', String(CLUSTER_DEFAULTS.basePort))
    .option('--control-port <port>', 'port on 127.0.0.1 of the control server behind the dashboard\'s buttons (0: any free port)', String(CLUSTER_DEFAULTS.controlPort))
    .action(async (o: { nodes: string; observers: string; mode: 'push' | 'pull'; dataDir: string; basePort: string; controlPort: string }) => {
      process.exitCode = await runCluster({
        nodes: Number(o.nodes), observers: Number(o.observers), mode: o.mode, dataDir: o.dataDir, basePort: Number(o.basePort),
        controlPort: Number(o.controlPort),
      }, out, (line) => console.error(line));
    });
  // `cluster restart n1 --data-dir D`: D is restart's own option, not the cluster's (commander needs the parents' options positional for that).
  cmd.enablePositionalOptions();
  cluster.enablePositionalOptions();
  cluster
    .command('restart')
    .description('restart one node of a running `quorumlog cluster` through it (its log stays in node.log and Ctrl-C of the cluster stops it); waits until the node answers and has caught up with the leader')
    .argument('<node>', 'the node\'s id, e.g. n1')
    .option('--data-dir <dir>', 'the running cluster\'s data directory', CLUSTER_DEFAULTS.dataDir)
    .action(async (node: string, o: { dataDir: string }) => {
      process.exitCode = await runClusterRestart(o.dataDir, node, out, (line) => console.error(line));
    });
  cmd
    .command('start')
    .description('run one node in the foreground (flags override the config file)')
    .option('--config <file>', 'JSON config file (see docs/OPERATIONS.md)')
    .option('--cluster-id <id>', 'the cluster\'s name; nodes of another cluster are refused')
    .option('--node-id <id>', 'this node\'s id (one of the members)')
    .addOption(new Option('--mode <mode>', 'replication mode').choices(['push', 'pull']))
    .option('--data-dir <dir>', 'this node\'s data directory')
    .option('--member <spec>', 'a member: id=peerHost:port,clientHost:port,metricsHost:port[,voter|observer] (repeat for each)',
      (v: string, prev: string[] | undefined) => [...(prev ?? []), v])
    .option('--listen-host <host>', 'listen on this host instead of the advertised one (e.g. 0.0.0.0)')
    .option('--tick-ms <ms>', `milliseconds per Raft tick (default ${NODE_DEFAULTS.tickMs})`)
    .option('--election-timeout-min-ticks <n>', `a follower campaigns after [min, max) ticks without a leader (default ${NODE_DEFAULTS.electionTimeoutMinTicks})`)
    .option('--election-timeout-max-ticks <n>', `(default ${NODE_DEFAULTS.electionTimeoutMaxTicks})`)
    .option('--heartbeat-interval-ticks <n>', `push mode: ticks between heartbeats (default ${NODE_DEFAULTS.heartbeatIntervalTicks})`)
    .option('--fetch-max-wait-ticks <n>', `pull mode: how long the leader parks a fetch (default ${NODE_DEFAULTS.fetchMaxWaitTicks})`)
    .option('--request-timeout-ms <ms>', `client request deadline (default ${NODE_DEFAULTS.requestTimeoutMs})`)
    .option('--snapshot-every-entries <n>', `snapshot and compact after this many applied entries (default ${NODE_DEFAULTS.snapshotEveryEntries})`)
    .option('--snapshot-every-bytes <n>', '...or this many bytes of them (default 64 MiB)')
    .option('--history-retention-revisions <n>', `key-value revisions kept before the leader compacts automatically; 0 = never (default ${NODE_DEFAULTS.historyRetentionRevisions})`)
    .option('--peer-tls-cert <file>', 'PEM certificate for mutual TLS between nodes (with --peer-tls-key and --peer-tls-ca)')
    .option('--peer-tls-key <file>')
    .option('--peer-tls-ca <file>')
    .option('--client-tls-cert <file>', 'PEM certificate for mutual TLS with clients (with --client-tls-key and --client-tls-ca)')
    .option('--client-tls-key <file>')
    .option('--client-tls-ca <file>')
    .addOption(new Option('--log-level <level>', 'log level').choices(['debug', 'info', 'warn', 'error']))
    .action(async (o: StartFlags) => {
      process.exitCode = await runStart(o, (line) => console.error(line), out);
    });
  addClientCredentialOptions(cmd
    .command('status')
    .description('show each node\'s role, term, commit and applied index, and the leader\'s view of replication lag; '
      + 'while auth is on, only root may ask (--user root), as etcd serves its Maintenance.Status')
    .requiredOption('--endpoints <list>', 'client endpoints, host:port,host:port,...')
    .option('--json', 'print JSON')
    .option('--timeout-ms <ms>', 'per-endpoint timeout', '2000'))
    .action(async (o: { endpoints: string; json?: boolean; timeoutMs: string; cacert?: string; cert?: string; key?: string }) => {
      process.exitCode = await runStatus({
        endpoints: o.endpoints.split(',').map((e) => e.trim()).filter((e) => e !== ''),
        json: o.json === true, timeoutMs: Number(o.timeoutMs), tls: tlsFromFlags(o) !== undefined,
      }, out);
    });
  const endpoints = (o: { endpoints: string; timeoutMs: string }): KvVerbOptions =>
    ({ endpoints: o.endpoints.split(',').map((e) => e.trim()).filter((e) => e !== ''), timeoutMs: Number(o.timeoutMs) });
  const clientVerb = (name: string, description: string): Command => addClientCredentialOptions(cmd.command(name).description(description))
    .option('--endpoints <list>', 'client endpoints, tried in order', '127.0.0.1:2379,127.0.0.1:2380,127.0.0.1:2381')
    .option('--timeout-ms <ms>', 'per-request timeout', '5000');
  clientVerb('put', 'write a key (through the log; any node forwards to the leader)')
    .argument('<key>').argument('<value>')
    .action(async (key: string, value: string, o: { endpoints: string; timeoutMs: string }) => {
      process.exitCode = await runPut(endpoints(o), key, value, out);
    });
  clientVerb('get', 'read a key or a prefix (linearizable unless --serializable); prints key and value lines, and nothing (exit 0) when no key matches, as etcdctl does')
    .argument('<key>').option('--prefix', 'every key starting with <key>').option('--serializable', 'answer from the node\'s local state')
    .action(async (key: string, o: { endpoints: string; timeoutMs: string; prefix?: boolean; serializable?: boolean }) => {
      process.exitCode = await runGet(endpoints(o), key, { prefix: o.prefix === true, serializable: o.serializable === true }, out);
    });
  clientVerb('del', 'delete a key or a prefix; prints how many were deleted')
    .argument('<key>').option('--prefix', 'every key starting with <key>')
    .action(async (key: string, o: { endpoints: string; timeoutMs: string; prefix?: boolean }) => {
      process.exitCode = await runDel(endpoints(o), key, { prefix: o.prefix === true }, out);
    });
  clientVerb('watch', 'print put and delete events for a key or a prefix until Ctrl-C')
    .argument('<key>').option('--prefix', 'every key starting with <key>')
    .action(async (key: string, o: { endpoints: string; timeoutMs: string; prefix?: boolean }) => {
      process.exitCode = await runWatch(endpoints(o), key, { prefix: o.prefix === true }, out);
    });
  clientVerb('transfer-leader', 'hand leadership to another voter (as etcdctl move-leader); prints the new leader')
    .requiredOption('--to <id>', 'the member to lead, by name (e.g. n2)')
    .action(async (o: { endpoints: string; timeoutMs: string; to: string }) => {
      process.exitCode = await runTransferLeader(endpoints(o).endpoints, o.to, Number(o.timeoutMs), out);
    });
  clientVerb('backup', 'save a backup of a node\'s whole state (every key with its revision, leases, queues, the metadata log) to a file, as `etcdctl snapshot save` does')
    .requiredOption('--out <file>', 'where to write it')
    .action(async (o: { endpoints: string; timeoutMs: string; out: string }) => {
      process.exitCode = await runBackup(endpoints(o).endpoints, o.out, Math.max(Number(o.timeoutMs), 60_000), out);
    });
  cmd
    .command('restore')
    .description('seed a new node\'s (empty) data directory from a backup; run it for every node of the new cluster, then start them')
    .requiredOption('--backup <file>', 'a file from `quorumlog backup` or `etcdctl snapshot save`')
    .requiredOption('--config <file>', 'the new node\'s config file (its data directory must hold no Raft data)')
    .action((o: { backup: string; config: string }) => {
      process.exitCode = runRestore(o.backup, o.config, out, err);
    });
  // Every verb's --cacert/--cert/--key (where it has them) set the credentials of the channels it opens, and its --user
  // (or $QUORUMLOG_USER) signs it in first (src/cli/credentials.ts); its name and endpoints are what a transport
  // failure's one line names (src/cli/transport-errors.ts).
  cmd.hook('preAction', async (_root, verb) => {
    const opts = verb.opts<{ endpoints?: unknown; cacert?: unknown; cert?: unknown; key?: unknown; user?: unknown; password?: unknown; timeoutMs?: unknown }>();
    const names: string[] = [];
    for (let c: Command | null = verb; c !== null && c !== cmd; c = c.parent) names.unshift(c.name());
    const endpoints = typeof opts.endpoints === 'string' ? opts.endpoints.split(',').map((e) => e.trim()).filter((e) => e !== '') : [];
    setVerbContext({ verb: names.join(' '), tls: false, endpoints });
    const tls = tlsFromFlags(opts);
    setVerbContext({ verb: names.join(' '), tls: tls !== undefined, endpoints });
    setClientTls(tls);
    // Only the verbs that talk to a cluster have --user; the others (start, cluster, restore) ignore $QUORUMLOG_USER.
    const user = verb.options.some((o) => o.long === '--user') ? userFromFlags(opts) : undefined;
    if (user === undefined) {
      await setClientUser(undefined, endpoints, 0);
      return;
    }
    const password = user.password ?? await promptPassword(user.name);
    const timeoutMs = Number(typeof opts.timeoutMs === 'string' ? opts.timeoutMs : 5000);
    await setClientUser({ name: user.name, password }, endpoints, Number.isFinite(timeoutMs) && timeoutMs > 0 ? timeoutMs : 5000);
  });
  addMemberCommands(cmd, out);
  addQueueCommands(cmd, out);
  addMetadataCommands(cmd, out);
  addRoleCommands(cmd, out);
  return cmd;
}

const invoked = process.argv[1] === undefined ? '' : pathToFileURL(realpathSync(process.argv[1])).href;
if (import.meta.url === invoked) {
  // grpc-js gives an IP address as the TLS server name, which Node answers with a deprecation warning (DEP0123)
  // on every TLS verb aimed at an IP endpoint: noise for the user, who gets one line per failure. Other warnings print as usual.
  process.removeAllListeners('warning');
  process.on('warning', (w: Error & { code?: string }) => {
    if (w.code !== 'DEP0123') console.error(`(node:${process.pid}) ${w.code !== undefined ? `[${w.code}] ` : ''}${w.name}: ${w.message}`);
  });
  program().parseAsync(process.argv).then(() => {
    // gRPC channels and timers may linger; the verb's exit code is final.
    process.exit(process.exitCode ?? 0);
  }, async (err: unknown) => {
    // One line on stderr: a transport failure in a few words (no grpc-js text), else the error's own message.
    const { line, code } = await verbErrorLine(err, verbContext());
    console.error(line);
    process.exit(code);
  });
}
