// One replicated log, several services: the state machine the runtime feeds
// (src/node/runtime.ts StateMachine) is this multiplexer, and each service
// (the etcd key-value store, quorum queues, the metadata log) is a state
// machine of its own behind a one-byte tag.
//
// Commands. The first byte names the service. Bytes 0x01-0x0f belong to the
// key-value service, whose commands start with their own format version
// (src/services/kv/codec.ts), so logs written before there were other
// services read unchanged. Every other service's command is its tag byte
// followed by the service's own bytes (which carry their own version).
//
// Snapshots. "QSVC", then a count of sections, each a tag byte and the
// service's snapshot bytes (count-prefixed, as in the KV codec). A snapshot
// that starts with the key-value store's own magic ("QKVS") is one from
// before services were multiplexed: the store gets it, every other service
// starts empty. Restoring always replaces every service's state: a service
// that the snapshot does not mention is reset to empty.
//
// Stamps. A command may come wrapped in an auth stamp: the byte STAMP_TAG,
// the stamp (src/services/auth/codec.ts: who asked, and at which auth
// revision their request was checked), then the command with its own tag.
// Before a command applies, the gate (when one is set: the auth service's,
// src/services/auth/gate.ts) may refuse it; a refused command changes
// nothing and its result is the refusal. Stamps do not nest.
//
// Determinism: every replica routes the same bytes to the same service; a
// command for a tag no service has (only a bug or a newer version could log
// one) gives the same error result everywhere and changes nothing.

import type { LogIndex } from '../protocol/ids.js';
import { AuthCodecError, decodeStampHeader, encodeStampHeader, type AuthStamp } from './auth/codec.js';
import { ByteReader, ByteWriter } from './kv/codec.js';

/** One service's replicated state machine. Must be deterministic. */
export interface ServiceMachine {
  /** Applies one committed command (the bytes after the tag; a view into the log entry: copy what you keep); the result goes back to the proposer. */
  apply(command: Uint8Array, index: LogIndex): unknown;
  /** Optional: apply(data.subarray(start, end), index) without the view (the key-value service has it: its commit path). */
  applyAt?(data: Uint8Array, start: number, end: number, index: LogIndex): unknown;
  /** The whole state as bytes. */
  snapshot(): Uint8Array;
  /** Replaces the state with a snapshot's. */
  restore(data: Uint8Array): void;
}

/** The tags of the services; the key-value service owns 0x01-0x0f (its commands begin with their format version). */
export const SERVICE_TAGS = { queue: 0x51, metadata: 0x4d, members: 0x43, auth: 0x41 } as const;
/** The first byte of a stamped command. */
export const STAMP_TAG = 0x53;
export type ServiceName = 'kv' | keyof typeof SERVICE_TAGS;

/** Decides, before a command applies, whether it may (null) or what to answer instead. Must be deterministic. */
export interface CommandGate {
  admit(service: ServiceName, stamp: AuthStamp | null, data: Uint8Array, start: number, end: number): unknown;
}

/** Wraps a service command (as encodeServiceCommand made it) in an auth stamp. */
export function stampCommand(stamp: AuthStamp, command: Uint8Array): Uint8Array {
  const header = encodeStampHeader(stamp);
  const out = new Uint8Array(1 + header.byteLength + command.byteLength);
  out[0] = STAMP_TAG;
  out.set(header, 1);
  out.set(command, 1 + header.byteLength);
  return out;
}

/** What a command for an unknown service returns, on every replica alike. */
export interface UnknownServiceResult {
  readonly type: 'error';
  readonly error: 'unknownService';
  readonly message: string;
}

/** A malformed multiplexed snapshot. */
export class ServiceSnapshotError extends Error {
  override readonly name = 'ServiceSnapshotError';
}

const MAGIC = new Uint8Array([0x51, 0x53, 0x56, 0x43]); // "QSVC"
const KV_MAGIC = new Uint8Array([0x51, 0x4b, 0x56, 0x53]); // "QKVS", the key-value store's snapshot
const KV_FIRST = 0x01;
const KV_LAST = 0x0f;

interface Registered {
  readonly name: ServiceName;
  readonly tag: number;
  readonly machine: ServiceMachine;
  /** A fresh instance's snapshot: what "empty" restores to. */
  readonly empty: Uint8Array;
}

/** Prefixes a service's command bytes with its tag (the key-value service's commands go as they are). */
export function encodeServiceCommand(service: ServiceName, payload: Uint8Array): Uint8Array {
  if (service === 'kv') {
    const first = payload[0];
    if (first === undefined || first < KV_FIRST || first > KV_LAST) throw new RangeError('a key-value command must start with its format version (0x01-0x0f)');
    return payload;
  }
  const out = new Uint8Array(payload.byteLength + 1);
  out[0] = SERVICE_TAGS[service];
  out.set(payload, 1);
  return out;
}

/** The runtime's state machine: routes each command to its service, and snapshots them all together. */
export class ServiceStateMachine {
  private readonly byName = new Map<ServiceName, Registered>();
  private readonly byTag = new Map<number, Registered>();
  /** The key-value service, once registered (looked up for most commands). */
  private kv: ServiceMachine | null = null;
  private gate: CommandGate | null = null;

  /** Sets the gate every command passes before it applies (the auth service's). */
  setGate(gate: CommandGate): this {
    this.gate = gate;
    return this;
  }

  /**
   * Adds a service; call before the runtime starts, while the machine is
   * fresh (its current snapshot is taken as the empty state).
   */
  register(name: ServiceName, machine: ServiceMachine): this {
    if (this.byName.has(name)) throw new Error(`service ${name} is registered twice`);
    const tag = name === 'kv' ? KV_FIRST : SERVICE_TAGS[name];
    const r: Registered = { name, tag, machine, empty: machine.snapshot() };
    this.byName.set(name, r);
    this.byTag.set(tag, r);
    if (name === 'kv') this.kv = machine;
    return this;
  }

  /** The registered service machine, if any. */
  service(name: ServiceName): ServiceMachine | undefined {
    return this.byName.get(name)?.machine;
  }

  apply(command: Uint8Array, index: LogIndex): unknown {
    return this.applyAt(command, 0, command.byteLength, index);
  }

  /** Routes the command in data[start, end); only other services' commands get a view (of the bytes after the tag). */
  applyAt(data: Uint8Array, start: number, end: number, index: LogIndex): unknown {
    const first = start < end ? (data[start] as number) : 0;
    if (first !== STAMP_TAG) return this.route(null, data, start, end, index);
    let stamped;
    try {
      stamped = decodeStampHeader(data, start + 1, end);
    } catch (e) {
      if (!(e instanceof AuthCodecError)) throw e;
      const malformed: UnknownServiceResult = { type: 'error', error: 'unknownService', message: `malformed auth stamp: ${e.message}` };
      return malformed;
    }
    if (data[stamped.innerStart] === STAMP_TAG) {
      const nested: UnknownServiceResult = { type: 'error', error: 'unknownService', message: 'an auth stamp inside an auth stamp' };
      return nested;
    }
    return this.route(stamped.stamp, data, stamped.innerStart, end, index);
  }

  private route(stamp: AuthStamp | null, data: Uint8Array, start: number, end: number, index: LogIndex): unknown {
    const first = start < end ? (data[start] as number) : 0;
    if (first >= KV_FIRST && first <= KV_LAST) {
      const kv = this.kv;
      if (kv !== null) {
        if (this.gate !== null) {
          const refused = this.gate.admit('kv', stamp, data, start, end);
          if (refused !== null) return refused;
        }
        return kv.applyAt !== undefined ? kv.applyAt(data, start, end, index) : kv.apply(data.subarray(start, end), index);
      }
    } else {
      const r = this.byTag.get(first);
      if (r !== undefined) {
        if (this.gate !== null) {
          const refused = this.gate.admit(r.name, stamp, data, start + 1, end);
          if (refused !== null) return refused;
        }
        return r.machine.apply(data.subarray(start + 1, end), index);
      }
    }
    const unknown: UnknownServiceResult = {
      type: 'error', error: 'unknownService', message: `no service for command tag 0x${first.toString(16).padStart(2, '0')} on this node`,
    };
    return unknown;
  }

  snapshot(): Uint8Array {
    const w = new ByteWriter();
    w.raw(MAGIC);
    const all = [...this.byName.values()].sort((a, b) => a.tag - b.tag);
    w.count(all.length);
    for (const r of all) {
      w.u8(r.tag);
      w.bytes(r.machine.snapshot());
    }
    return w.finish();
  }

  restore(data: Uint8Array): void {
    if (startsWith(data, KV_MAGIC)) {
      for (const r of this.byName.values()) r.machine.restore(r.name === 'kv' ? data : r.empty);
      return;
    }
    if (!startsWith(data, MAGIC)) throw new ServiceSnapshotError('not a quorumlog service snapshot (bad magic)');
    const sections = new Map<number, Uint8Array>();
    try {
      const rd = new ByteReader(data);
      rd.raw(MAGIC.byteLength);
      const n = rd.count();
      for (let i = 0; i < n; i++) {
        const tag = rd.u8();
        const bytes = rd.bytes();
        if (sections.has(tag)) throw new ServiceSnapshotError(`service tag 0x${tag.toString(16)} appears twice`);
        if (!this.byTag.has(tag)) throw new ServiceSnapshotError(`the snapshot holds service tag 0x${tag.toString(16)}, which this node does not run`);
        sections.set(tag, bytes);
      }
      rd.end();
    } catch (e) {
      if (e instanceof ServiceSnapshotError) throw e;
      throw new ServiceSnapshotError(`malformed service snapshot: ${(e as Error).message}`, { cause: e });
    }
    for (const r of this.byName.values()) r.machine.restore(sections.get(r.tag) ?? r.empty);
  }
}

function startsWith(data: Uint8Array, prefix: Uint8Array): boolean {
  if (data.byteLength < prefix.byteLength) return false;
  for (let i = 0; i < prefix.byteLength; i++) if (data[i] !== prefix[i]) return false;
  return true;
}
