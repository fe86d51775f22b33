// `quorumlog start`: runs one node in the foreground, from a config file
// and/or flags (flags override the file). Configuration problems are one
// line naming the setting, before anything starts (exit 2). SIGINT/SIGTERM
// stop the node cleanly; a storage failure stops it with exit code 1. The
// config of a node of a running `quorumlog cluster` is handed to that
// cluster's supervisor instead (src/cli/cluster.ts handToSupervisor), so
// that the node logs to its node.log and stops with the cluster.

import { readFileSync } from 'node:fs';
import { ConfigFileError, parseConfig } from '../server/config.js';
import { startNode } from '../server/node-process.js';
import { handToSupervisor } from './cluster.js';

/** Flags of `quorumlog start` (all optional when --config names a complete file). */
export interface StartFlags {
  readonly config?: string;
  readonly clusterId?: string;
  readonly nodeId?: string;
  readonly mode?: string;
  readonly dataDir?: string;
  readonly member?: readonly string[];
  readonly listenHost?: string;
  readonly tickMs?: string;
  readonly electionTimeoutMinTicks?: string;
  readonly electionTimeoutMaxTicks?: string;
  readonly heartbeatIntervalTicks?: string;
  readonly fetchMaxWaitTicks?: string;
  readonly requestTimeoutMs?: string;
  readonly snapshotEveryEntries?: string;
  readonly snapshotEveryBytes?: string;
  readonly historyRetentionRevisions?: string;
  readonly peerTlsCert?: string;
  readonly peerTlsKey?: string;
  readonly peerTlsCa?: string;
  readonly clientTlsCert?: string;
  readonly clientTlsKey?: string;
  readonly clientTlsCa?: string;
  readonly logLevel?: string;
}

/** The numeric settings that have a flag of the same name (kebab-case). */
export const NUMERIC_FLAGS = ['tickMs', 'electionTimeoutMinTicks', 'electionTimeoutMaxTicks', 'heartbeatIntervalTicks',
  'fetchMaxWaitTicks', 'requestTimeoutMs', 'snapshotEveryEntries', 'snapshotEveryBytes', 'historyRetentionRevisions'] as const;

/** camelCase to --kebab-case. */
export function flagName(key: string): string {
  return '--' + key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
}

/** Parses `--member id=peer,client,metrics[,observer]`. */
export function parseMemberFlag(s: string, i: number): Record<string, string> {
  const m = /^([^=]+)=([^,]+),([^,]+),([^,]+)(?:,(voter|observer))?$/.exec(s);
  if (m === null) throw new ConfigFileError(`--member #${i + 1}`, `"${s}" is not id=peerHost:port,clientHost:port,metricsHost:port[,voter|observer]`);
  return { id: m[1] as string, peer: m[2] as string, client: m[3] as string, metrics: m[4] as string, role: m[5] ?? 'voter' };
}

/** Merges the config file and the flags into one raw config object. */
export function rawConfigFrom(flags: StartFlags): Record<string, unknown> {
  let raw: Record<string, unknown> = {};
  if (flags.config !== undefined) {
    let text: string;
    try {
      text = readFileSync(flags.config, 'utf8');
    } catch (e) {
      throw new ConfigFileError('--config', `cannot read ${flags.config}: ${(e as Error).message}`);
    }
    try {
      raw = JSON.parse(text) as Record<string, unknown>;
    } catch (e) {
      throw new ConfigFileError('--config', `${flags.config} is not valid JSON: ${(e as Error).message}`);
    }
  }
  const set = (k: string, v: unknown): void => {
    if (v !== undefined) raw[k] = v;
  };
  set('clusterId', flags.clusterId);
  set('nodeId', flags.nodeId);
  set('mode', flags.mode);
  set('dataDir', flags.dataDir);
  set('listenHost', flags.listenHost);
  set('logLevel', flags.logLevel);
  for (const key of NUMERIC_FLAGS) {
    const v = flags[key];
    if (v === undefined) continue;
    const n = Number(v);
    if (!Number.isInteger(n)) throw new ConfigFileError(flagName(key), `"${v}" is not an integer`);
    raw[key] = n;
  }
  for (const side of ['peer', 'client'] as const) {
    const cert = flags[`${side}TlsCert`];
    const key = flags[`${side}TlsKey`];
    const ca = flags[`${side}TlsCa`];
    if (cert === undefined && key === undefined && ca === undefined) continue;
    const old = (raw[`${side}Tls`] ?? {}) as Record<string, unknown>;
    raw[`${side}Tls`] = { ...old, ...(cert !== undefined ? { cert } : {}), ...(key !== undefined ? { key } : {}), ...(ca !== undefined ? { ca } : {}) };
  }
  if (flags.member !== undefined && flags.member.length > 0) raw['members'] = flags.member.map(parseMemberFlag);
  return raw;
}

/** Runs one node until a signal (or hands it to its cluster's supervisor); resolves with the exit code. */
export async function runStart(flags: StartFlags, err: (line: string) => void, out: (line: string) => void = err): Promise<number> {
  let config;
  try {
    config = parseConfig(rawConfigFrom(flags));
  } catch (e) {
    if (e instanceof ConfigFileError) {
      err(e.message);
      return 2;
    }
    throw e;
  }
  // A supervisor's own children carry its control URL; anyone else starting one of its nodes is handed to it.
  if (flags.config !== undefined && !process.env['QUORUMLOG_CLUSTER_CONTROL']) {
    const others = Object.entries(flags).filter(([k, v]) => k !== 'config' && v !== undefined).map(([k]) => flagName(k));
    const handed = await handToSupervisor(flags.config, config, others, out, err);
    if (handed !== null) return handed;
  }
  let fatal: ((code: number) => void) | null = null;
  const exited = new Promise<number>((res) => { fatal = res; });
  let node;
  try {
    node = await startNode(config, { onFatal: () => fatal?.(1) });
  } catch (e) {
    err(e instanceof ConfigFileError ? e.message : `cannot start node ${config.nodeId}: ${(e as Error).message}`);
    return e instanceof ConfigFileError ? 2 : 1;
  }
  const onSignal = (): void => {
    void node.stop().then(() => fatal?.(0));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const code = await exited;
  await node.stop();
  return code;
}
