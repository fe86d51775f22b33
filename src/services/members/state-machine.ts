// The members registry: a small replicated service (tag 0x43, "C" for
// cluster) that carries what a Raft configuration does not — where each
// member is reached. A record, keyed by node id, holds the peer address
// (Raft traffic), the client address(es) (the etcd API), an optional display
// name, and `promoteWhenCaughtUp`: the leader promotes that observer as soon
// as the core accepts it (src/node/membership-watch.ts). The static members of the
// config file are the starting point; a record adds a member or overrides
// its addresses (docs/MEMBERSHIP.md).
//
// Commands: u8 format version (1), then UTF-8 JSON, one of
//   { "op": "put", "record": MemberRecord }   (insert or replace)
//   { "op": "delete", "id": string }
// Snapshot: u8 version (1), then UTF-8 JSON of the records sorted by id.
// Validation is strict and deterministic: a command that does not decode
// gives the same error result on every replica and changes nothing.

import type { LogIndex } from '../../protocol/ids.js';
import type { ServiceMachine } from '../machine.js';

/** One member's addresses. Invariants: `id` matches NAME; addresses are host:port; at least one client address. */
export interface MemberRecord {
  readonly id: string;
  /** host:port where peers reach it. */
  readonly peer: string;
  /** host:port where clients reach it (first = the one MemberList shows first). May be empty until the member publishes it. */
  readonly clients: readonly string[];
  readonly name?: string;
  /** The leader promotes this observer once it has caught up (etcd's MemberAdd without --learner). */
  readonly promoteWhenCaughtUp: boolean;
}

/** A registry command. */
export type MembersCommand =
  | { readonly op: 'put'; readonly record: MemberRecord }
  | { readonly op: 'delete'; readonly id: string };

/** What applying a command returns (to the proposer). */
export type MembersResult =
  | { readonly type: 'ok'; readonly existed: boolean }
  | { readonly type: 'error'; readonly message: string };

const VERSION = 1;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[^:[\]\s/#]+):(\d{1,5})$/;
const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: true });

/** A registry command or snapshot that does not decode. */
export class MembersCodecError extends Error {
  override readonly name = 'MembersCodecError';
}

/** Why `r` is not a valid record, or null. */
export function recordProblem(r: unknown): string | null {
  if (typeof r !== 'object' || r === null || Array.isArray(r)) return 'a record must be an object';
  const o = r as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!['id', 'peer', 'clients', 'name', 'promoteWhenCaughtUp'].includes(k)) return `unknown field ${k}`;
  if (typeof o['id'] !== 'string' || !NAME.test(o['id'])) return `id ${JSON.stringify(o['id'])} is not a node id`;
  if (!isHostPort(o['peer'])) return `peer ${JSON.stringify(o['peer'])} is not host:port`;
  if (!Array.isArray(o['clients']) || o['clients'].length > 16 || !o['clients'].every(isHostPort)) return 'clients must be a list of host:port';
  if (o['name'] !== undefined && (typeof o['name'] !== 'string' || o['name'].length > 128)) return 'name must be a string of at most 128 characters';
  if (typeof o['promoteWhenCaughtUp'] !== 'boolean') return 'promoteWhenCaughtUp must be a boolean';
  return null;
}

function isHostPort(s: unknown): boolean {
  if (typeof s !== 'string') return false;
  const m = HOST_PORT.exec(s);
  if (m === null) return false;
  const port = Number(m[2]);
  return port >= 1 && port <= 65535;
}

function normalize(r: MemberRecord): MemberRecord {
  return {
    id: r.id, peer: r.peer, clients: [...r.clients], ...(r.name !== undefined ? { name: r.name } : {}), promoteWhenCaughtUp: r.promoteWhenCaughtUp,
  };
}

/** Encodes a command for the log (without the service tag: see encodeServiceCommand). */
export function encodeMembersCommand(c: MembersCommand): Uint8Array {
  if (c.op === 'put') {
    const p = recordProblem(c.record);
    if (p !== null) throw new MembersCodecError(`invalid member record: ${p}`);
  }
  const json = c.op === 'put' ? { op: 'put', record: normalize(c.record) } : { op: 'delete', id: c.id };
  const body = utf8.encode(JSON.stringify(json));
  const out = new Uint8Array(body.byteLength + 1);
  out[0] = VERSION;
  out.set(body, 1);
  return out;
}

/** Decodes a command; throws MembersCodecError. */
export function decodeMembersCommand(bytes: Uint8Array): MembersCommand {
  if (bytes[0] !== VERSION) throw new MembersCodecError(`unknown members command version ${String(bytes[0])}`);
  let o: unknown;
  try {
    o = JSON.parse(utf8Strict.decode(bytes.subarray(1)));
  } catch (e) {
    throw new MembersCodecError(`members command is not JSON: ${(e as Error).message}`);
  }
  if (typeof o !== 'object' || o === null) throw new MembersCodecError('members command must be an object');
  const c = o as Record<string, unknown>;
  if (c['op'] === 'put') {
    const p = recordProblem(c['record']);
    if (p !== null) throw new MembersCodecError(`invalid member record: ${p}`);
    return { op: 'put', record: normalize(c['record'] as MemberRecord) };
  }
  if (c['op'] === 'delete') {
    if (typeof c['id'] !== 'string' || !NAME.test(c['id'])) throw new MembersCodecError(`id ${JSON.stringify(c['id'])} is not a node id`);
    return { op: 'delete', id: c['id'] };
  }
  throw new MembersCodecError(`unknown members op ${JSON.stringify(c['op'])}`);
}

/** The registry's state machine. Listeners hear every change (after apply or restore). */
export class MembersStateMachine implements ServiceMachine {
  private records = new Map<string, MemberRecord>();
  private readonly listeners: (() => void)[] = [];

  /** The record of `id`, if any. */
  get(id: string): MemberRecord | undefined {
    return this.records.get(id);
  }

  /** Every record, sorted by id. */
  all(): MemberRecord[] {
    return [...this.records.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** Calls `l` after every change; returns a function that removes it. */
  onChange(l: () => void): () => void {
    this.listeners.push(l);
    return () => {
      const i = this.listeners.indexOf(l);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  apply(command: Uint8Array, _index: LogIndex): MembersResult {
    let c: MembersCommand;
    try {
      c = decodeMembersCommand(command);
    } catch (e) {
      return { type: 'error', message: (e as Error).message };
    }
    let existed: boolean;
    if (c.op === 'put') {
      existed = this.records.has(c.record.id);
      this.records.set(c.record.id, c.record);
    } else {
      existed = this.records.delete(c.id);
    }
    this.changed();
    return { type: 'ok', existed };
  }

  snapshot(): Uint8Array {
    const body = utf8.encode(JSON.stringify(this.all()));
    const out = new Uint8Array(body.byteLength + 1);
    out[0] = VERSION;
    out.set(body, 1);
    return out;
  }

  restore(data: Uint8Array): void {
    if (data[0] !== VERSION) throw new MembersCodecError(`unknown members snapshot version ${String(data[0])}`);
    let list: unknown;
    try {
      list = JSON.parse(utf8Strict.decode(data.subarray(1)));
    } catch (e) {
      throw new MembersCodecError(`members snapshot is not JSON: ${(e as Error).message}`);
    }
    if (!Array.isArray(list)) throw new MembersCodecError('members snapshot must be a list');
    const next = new Map<string, MemberRecord>();
    for (const r of list) {
      const p = recordProblem(r);
      if (p !== null) throw new MembersCodecError(`members snapshot: ${p}`);
      const rec = normalize(r as MemberRecord);
      if (next.has(rec.id)) throw new MembersCodecError(`members snapshot: ${rec.id} appears twice`);
      next.set(rec.id, rec);
    }
    this.records = next;
    this.changed();
  }

  private changed(): void {
    for (const l of [...this.listeners]) {
      try {
        l();
      } catch {
        // a listener's failure is its own (it logs); the state machine stays deterministic
      }
    }
  }
}
