// Binary encoding of a cluster configuration (src/protocol/entry.ts), shared
// by the wire (configuration entries, snapshot ids in messages) and the disk
// (the payload of a configuration record in the log's segments, and whatever
// a runtime stores beside a snapshot).
//
// Layout: u8 version (1) | varint voter count | voter ids | varint observer
// count | observer ids; ids are u8 length (1..255) + UTF-8. A later version
// (incarnation ids per member, for instance) takes a new version byte.
// Canonical: a decoded configuration re-encodes to the same bytes. Decoding
// checks the Configuration invariants (a voter at least, no repeats).

import { configurationProblem, type Configuration } from '../protocol/entry.js';
import type { NodeId } from '../protocol/ids.js';
import { ByteReader, ByteWriter, shortStringUtf8, varintBytes } from './bytes.js';
import { CodecError } from './errors.js';

/** The version byte written first. */
export const CONFIGURATION_VERSION = 1;

/** The encoded size of `c`; throws CodecError if it cannot be carried. */
export function configurationSize(c: Configuration): number {
  return encodedIds(c).size;
}

function encodedIds(c: Configuration): { voters: Uint8Array[]; observers: Uint8Array[]; size: number } {
  const problem = configurationProblem(c);
  if (problem !== null) throw new CodecError(`configuration: ${problem}`, null);
  const voters = c.voters.map((id, i) => shortStringUtf8(`configuration.voters[${i}]`, id));
  const observers = c.observers.map((id, i) => shortStringUtf8(`configuration.observers[${i}]`, id));
  let size = 1 + varintBytes(voters.length) + varintBytes(observers.length);
  for (const b of voters) size += 1 + b.byteLength;
  for (const b of observers) size += 1 + b.byteLength;
  return { voters, observers, size };
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

function writeIds(w: ByteWriter, ids: { voters: Uint8Array[]; observers: Uint8Array[] }): void {
  w.u8(CONFIGURATION_VERSION);
  w.uint(ids.voters.length);
  for (const b of ids.voters) w.shortString(b);
  w.uint(ids.observers.length);
  for (const b of ids.observers) w.shortString(b);
}

/** Reads a configuration at the reader's position (CodecError on anything malformed). */
export function readConfiguration(r: ByteReader, field: string): Configuration {
  const at = r.pos;
  const version = r.u8(`${field}.version`);
  if (version !== CONFIGURATION_VERSION) r.fail(`${field}.version`, `unknown configuration version ${version}`, at);
  const voters = readIds(r, `${field}.voters`);
  const observers = readIds(r, `${field}.observers`);
  const c: Configuration = { voters, observers };
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

/** Decodes a configuration occupying all of `bytes`. */
export function decodeConfiguration(bytes: Uint8Array): Configuration {
  const r = new ByteReader(bytes);
  const c = readConfiguration(r, 'configuration');
  r.end('configuration');
  return c;
}
