// Binary encoding of a cluster configuration (src/protocol/entry.ts), shared
// by the wire (configuration entries, snapshot ids in messages) and the disk
// (the payload of a configuration record in the log's segments, and whatever
// a runtime stores beside a snapshot).
//
// Layout: u8 version | varint voter count | voter ids | varint observer
// count | observer ids; ids are u8 length (1..255) + UTF-8. Version 1 ends
// there. Version 2 (written only when the configuration records directory
// ids, docs/LOST-DISKS.md) goes on with varint record count (>= 1) | per
// record: node id, varint directory id in [1, 2^48). A configuration without
// records is still written as version 1, so existing logs and snapshots read
// as before. Canonical: a decoded configuration re-encodes to the same bytes.
// Decoding checks the Configuration invariants (a voter at least, no repeats,
// directory ids only for members, at most one each, in range).

import { configurationProblem, type Configuration, type DirIdRecord } from '../protocol/entry.js';
import type { NodeId } from '../protocol/ids.js';
import { ByteReader, ByteWriter, shortStringUtf8, varintBytes } from './bytes.js';
import { CodecError } from './errors.js';

/** The version byte written first: 1 without directory ids, 2 with them. */
export const CONFIGURATION_VERSION = 1;
export const CONFIGURATION_VERSION_DIR_IDS = 2;

interface EncodedIds {
  voters: Uint8Array[];
  observers: Uint8Array[];
  dirIds: { node: Uint8Array; dirId: number }[] | null;
  size: number;
}

/** The encoded size of `c`; throws CodecError if it cannot be carried. */
export function configurationSize(c: Configuration): number {
  return encodedIds(c).size;
}

function encodedIds(c: Configuration): EncodedIds {
  const problem = configurationProblem(c);
  if (problem !== null) throw new CodecError(`configuration: ${problem}`, null);
  const voters = c.voters.map((id, i) => shortStringUtf8(`configuration.voters[${i}]`, id));
  const observers = c.observers.map((id, i) => shortStringUtf8(`configuration.observers[${i}]`, id));
  let size = 1 + varintBytes(voters.length) + varintBytes(observers.length);
  for (const b of voters) size += 1 + b.byteLength;
  for (const b of observers) size += 1 + b.byteLength;
  let dirIds: EncodedIds['dirIds'] = null;
  if (c.dirIds !== undefined) {
    dirIds = c.dirIds.map((r, i) => ({ node: shortStringUtf8(`configuration.dirIds[${i}].node`, r.node), dirId: r.dirId }));
    size += varintBytes(dirIds.length);
    for (const r of dirIds) size += 1 + r.node.byteLength + varintBytes(r.dirId);
  }
  return { voters, observers, dirIds, size };
}

/** Encodes a configuration; throws CodecError when it is invalid (always a bug in the caller). */
export function encodeConfiguration(c: Configuration): Uint8Array {
  const ids = encodedIds(c);
  const w = new ByteWriter(ids.size);
  writeIds(w, ids);
  return w.bytes;
}

/** Writes `c` into a writer sized with {@link configurationSize}. */
export function writeConfiguration(w: ByteWriter, c: Configuration): void {
  writeIds(w, encodedIds(c));
}

function writeIds(w: ByteWriter, ids: EncodedIds): void {
  w.u8(ids.dirIds === null ? CONFIGURATION_VERSION : CONFIGURATION_VERSION_DIR_IDS);
  w.uint(ids.voters.length);
  for (const b of ids.voters) w.shortString(b);
  w.uint(ids.observers.length);
  for (const b of ids.observers) w.shortString(b);
  if (ids.dirIds === null) return;
  w.uint(ids.dirIds.length);
  for (const r of ids.dirIds) {
    w.shortString(r.node);
    w.uint(r.dirId);
  }
}

/** Reads a configuration at the reader's position (CodecError on anything malformed). */
export function readConfiguration(r: ByteReader, field: string): Configuration {
  const at = r.pos;
  const version = r.u8(`${field}.version`);
  if (version !== CONFIGURATION_VERSION && version !== CONFIGURATION_VERSION_DIR_IDS) {
    r.fail(`${field}.version`, `unknown configuration version ${version}`, at);
  }
  const voters = readIds(r, `${field}.voters`);
  const observers = readIds(r, `${field}.observers`);
  const c: Configuration = version === CONFIGURATION_VERSION
    ? { voters, observers }
    : { voters, observers, dirIds: readDirIds(r, `${field}.dirIds`) };
  const problem = configurationProblem(c);
  if (problem !== null) r.fail(field, problem, at);
  return c;
}

function readIds(r: ByteReader, field: string): NodeId[] {
  const at = r.pos;
  const count = r.uint(`${field} count`);
  if (count > r.remaining() / 2) r.fail(`${field} count`, `${count} ids cannot fit in ${r.remaining()} bytes`, at);
  const ids: NodeId[] = [];
  for (let i = 0; i < count; i++) ids.push(r.shortString(`${field}[${i}]`, false) as NodeId);
  return ids;
}

function readDirIds(r: ByteReader, field: string): DirIdRecord[] {
  const at = r.pos;
  const count = r.uint(`${field} count`);
  if (count === 0) r.fail(`${field} count`, 'version 2 records at least one directory id', at);
  if (count > r.remaining() / 3) r.fail(`${field} count`, `${count} records cannot fit in ${r.remaining()} bytes`, at);
  const records: DirIdRecord[] = [];
  for (let i = 0; i < count; i++) {
    const node = r.shortString(`${field}[${i}].node`, false) as NodeId;
    records.push({ node, dirId: r.uint(`${field}[${i}].dirId`) });
  }
  return records;
}

/** Decodes a configuration occupying all of `bytes`. */
export function decodeConfiguration(bytes: Uint8Array): Configuration {
  const r = new ByteReader(bytes);
  const c = readConfiguration(r, 'configuration');
  r.end('configuration');
  return c;
}
