// Backups (docs/OPERATIONS.md): a node's whole replicated state at one
// applied index — every service's snapshot (keys with their revisions and
// leases, queues, the metadata log, the members registry, users, roles and
// permissions with the token key) — in one
// self-checking file, and the restore that seeds a new cluster's data
// directories from it (etcd's `snapshot save` / `snapshot restore`).
//
// Taking one: the etcd Maintenance.Snapshot RPC streams it (so `etcdctl
// snapshot save FILE` works; etcdctl only writes the bytes, it does not
// read them), and `quorumlog backup` calls the same RPC. The node first
// passes a read barrier, so the backup holds every write acknowledged before
// it was asked for, then snapshots its state machine at its applied index,
// synchronously (nothing applies in between).
//
// The file: "QLBK", a version byte (1), a u32 length and a JSON header
// (cluster, node, index, term, when), a u64 length and the service snapshot
// ("QSVC", src/services/machine.ts), zeros up to a multiple of 512 bytes,
// then the SHA-256 of everything before it (etcd's own layout, which
// `etcdctl snapshot save` checks). A file that is cut short, altered or not a backup is refused with
// BackupFormatError before anything is written.
//
// Restoring (`quorumlog restore --backup FILE --config node.json`, once per
// node of the new cluster, each with its own config): the data directory
// must be new; it gets a snapshot at the backup's index and term whose
// configuration is the new cluster's bootstrap one (its config file's
// members), a hard state with that term and commit, and an empty log after
// it. The members registry is dropped: run-time addresses of the old cluster
// mean nothing to the new one, which takes its members from its config
// files. Auth is kept as it was (on or off, users, roles, the token key,
// so tokens issued before the backup still hold). Every service is decoded on the way, so a backup that does not
// restore is found at restore time, not at the first start.

import { createHash } from 'node:crypto';
import type { NodeRuntime } from '../node/runtime.js';
import { NodeStorage } from '../node/node-storage.js';
import type { SnapshotMeta } from '../protocol/entry.js';
import { nodeId } from '../protocol/ids.js';
import { ServiceStateMachine } from '../services/machine.js';
import { MembersStateMachine } from '../services/members/state-machine.js';
import { dataDirLayout } from '../storage/data-dir.js';
import { NodeFileSystem } from '../storage/fs.js';
import { lockDataDir } from '../storage/dir-lock.js';
import { claimDataDir, ConfigFileError, type NodeConfig } from './config.js';
import { nodeServices } from './node-services.js';

const MAGIC = Buffer.from('QLBK', 'latin1');
const VERSION = 1;
const HASH_BYTES = 32;
/**
 * Everything before the hash is padded with zeros to a multiple of this, as
 * etcd's own snapshots are (bbolt pages): `etcdctl snapshot save` checks that
 * the stream's length is 32 past a multiple of 512 before it keeps the file.
 */
const SECTOR = 512;

/** What a backup says about itself. */
export interface BackupHeader {
  readonly clusterId: string;
  /** The node it was taken from. */
  readonly nodeId: string;
  /** The applied index it holds everything up to. */
  readonly index: number;
  /** The term of the entry at `index`. */
  readonly term: number;
  /** Wall-clock time it was taken (ISO 8601). */
  readonly takenAt: string;
}

/** A decoded backup. */
export interface Backup {
  readonly header: BackupHeader;
  /** The service snapshot ("QSVC"). */
  readonly services: Uint8Array;
}

/** A file that is not a whole, unaltered quorumlog backup. */
export class BackupFormatError extends Error {
  override readonly name = 'BackupFormatError';
}

/** Encodes a backup file. */
export function encodeBackup(b: Backup): Uint8Array {
  const header = Buffer.from(JSON.stringify(b.header), 'utf8');
  const head = Buffer.alloc(MAGIC.length + 1 + 4);
  MAGIC.copy(head, 0);
  head.writeUInt8(VERSION, MAGIC.length);
  head.writeUInt32BE(header.length, MAGIC.length + 1);
  const len = Buffer.alloc(8);
  len.writeBigUInt64BE(BigInt(b.services.byteLength));
  const unpadded = head.length + header.length + len.length + b.services.byteLength;
  const body = Buffer.concat([head, header, len, b.services, Buffer.alloc((SECTOR - (unpadded % SECTOR)) % SECTOR)]);
  return Buffer.concat([body, createHash('sha256').update(body).digest()]);
}

/** Decodes and verifies a backup file; throws {@link BackupFormatError}. */
export function decodeBackup(bytes: Uint8Array): Backup {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fixed = MAGIC.length + 1 + 4;
  if (buf.length < fixed + 8 + HASH_BYTES || !buf.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw new BackupFormatError('not a quorumlog backup (no "QLBK" at its start, or too short)');
  }
  const version = buf.readUInt8(MAGIC.length);
  if (version !== VERSION) throw new BackupFormatError(`backup format version ${version} is not known to this quorumlog (it reads version ${VERSION})`);
  const body = buf.subarray(0, buf.length - HASH_BYTES);
  const want = buf.subarray(buf.length - HASH_BYTES);
  if (!createHash('sha256').update(body).digest().equals(want)) {
    throw new BackupFormatError('the backup\'s SHA-256 does not match its contents: the file is cut short or altered');
  }
  const headerLen = buf.readUInt32BE(MAGIC.length + 1);
  if (fixed + headerLen + 8 > body.length) throw new BackupFormatError(`header length ${headerLen} runs past the end of the backup`);
  let header: BackupHeader;
  try {
    header = JSON.parse(body.subarray(fixed, fixed + headerLen).toString('utf8')) as BackupHeader;
  } catch (e) {
    throw new BackupFormatError(`the backup's header is not JSON: ${(e as Error).message}`, { cause: e });
  }
  for (const k of ['index', 'term'] as const) {
    if (!Number.isSafeInteger(header[k]) || header[k] < 0) throw new BackupFormatError(`the backup's header has no valid ${k}`);
  }
  if (typeof header.clusterId !== 'string' || typeof header.nodeId !== 'string') throw new BackupFormatError('the backup\'s header names no cluster or node');
  const servicesLen = body.readBigUInt64BE(fixed + headerLen);
  const start = fixed + headerLen + 8;
  const padding = BigInt(body.length - start) - servicesLen;
  if (padding < 0n || padding >= BigInt(SECTOR)) {
    throw new BackupFormatError(`the backup says its state is ${servicesLen} bytes, but ${body.length - start} follow`);
  }
  const end = start + Number(servicesLen);
  if (body.subarray(end).some((x) => x !== 0)) throw new BackupFormatError('the backup\'s padding is not zeros');
  return { header, services: new Uint8Array(body.subarray(start, end)) };
}

/**
 * Takes a backup of a running node: passes a read barrier (so it holds every
 * write acknowledged before the call), then snapshots every service at the
 * applied index in one synchronous step.
 */
export async function takeBackup(runtime: NodeRuntime, services: ServiceStateMachine, clusterId: string): Promise<Uint8Array> {
  await runtime.readBarrier();
  const index = runtime.appliedIndex;
  const term = runtime.termAt(index);
  if (term === undefined) throw new Error(`the term of applied index ${index} is unknown`);
  const snapshot = services.snapshot();
  return encodeBackup({ header: { clusterId, nodeId: runtime.id, index, term, takenAt: new Date().toISOString() }, services: snapshot });
}

/** What a restore did. */
export interface RestoreResult {
  readonly index: number;
  readonly term: number;
  readonly dirId: number;
  readonly header: BackupHeader;
}

/**
 * Seeds `config.dataDir` (which must hold no Raft data) from a backup, for a
 * node of a new cluster whose bootstrap configuration is `config.members`.
 * Throws {@link BackupFormatError} for a bad backup, DataDirLockedError for
 * a data directory another process has open (a running node), and
 * ConfigFileError for one that already holds data, before writing anything.
 * The directory is locked while it is written.
 */
export function restoreBackup(bytes: Uint8Array, config: NodeConfig): RestoreResult {
  const backup = decodeBackup(bytes);
  const { services, members } = nodeServices();
  try {
    services.restore(backup.services);
  } catch (e) {
    throw new BackupFormatError(`the backup's state does not restore: ${(e as Error).message}`, { cause: e });
  }
  members.restore(new MembersStateMachine().snapshot()); // the old cluster's run-time addresses do not carry over
  const state = services.snapshot();
  const lock = lockDataDir(config.dataDir, 'exclusive', { command: `quorumlog restore (node ${config.nodeId})` });
  try {
    return restoreLocked(backup, state, config);
  } finally {
    lock.release();
  }
}

function restoreLocked(backup: Backup, state: Uint8Array, config: NodeConfig): RestoreResult {
  const fs = new NodeFileSystem();
  const layout = dataDirLayout(config.dataDir);
  for (const dir of [layout.log, layout.state, layout.snapshots]) {
    if (fs.exists(dir) && fs.list(dir).length > 0) {
      throw new ConfigFileError('dataDir', `${config.dataDir} already holds Raft data (${dir}): a backup is restored into a new data directory only`);
    }
  }
  const dirId = claimDataDir(config);
  const { index, term } = backup.header;
  const meta: SnapshotMeta = {
    index, term,
    config: {
      voters: config.members.filter((m) => m.role === 'voter').map((m) => nodeId(m.id)),
      observers: config.members.filter((m) => m.role === 'observer').map((m) => nodeId(m.id)),
    },
  };
  const storage = new NodeStorage(fs, config.dataDir);
  try {
    storage.saveSnapshot(meta, state);
    storage.compactTo(meta);
    storage.state.save({ term, vote: null, commit: index });
  } finally {
    storage.close();
  }
  return { index, term, dirId, header: backup.header };
}
