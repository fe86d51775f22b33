// Binary encoding of the auth service's commands and snapshot, and of the
// auth stamp that wraps other services' commands. Canonical like the other
// services' codecs (ByteWriter / ByteReader of src/services/kv/codec.ts):
// decoding refuses overlong varints, malformed UTF-8, unknown tags, names or
// keys over AUTH_LIMITS and trailing bytes; untrusted bytes never give
// anything but a valid value or an AuthCodecError.
//
// Command format (version 1): u8 version, u8 tag, then the fields.
//   str = count, then that many bytes of well-formed UTF-8; bytes = count, then the bytes
//   1 enable                 bytes tokenKey (AUTH_LIMITS.tokenKeyBytes)
//   2 disable
//   3 userAdd                str name, u8 hasPassword, [str passwordHash]
//   4 userDelete             str name
//   5 userChangePassword     str name, str passwordHash
//   6 userGrantRole          str user, str role
//   7 userRevokeRole         str user, str role
//   8 roleAdd                str name
//   9 roleDelete             str name
//  10 roleGrantPermission    str role, permission
//  11 roleRevokePermission   str role, u8 resource, bytes key, bytes rangeEnd
//   permission = u8 resource (0 kv, 1 queue, 2 metadata), u8 type (0 read, 1 write, 2 readwrite), bytes key, bytes rangeEnd
//
// Stamp format (after the multiplexer's stamp tag, src/services/machine.ts):
//   u8 version, u8 kind (1 user, 2 system), [str user, count authRevision], then the wrapped command (its own tag first).
//
// Snapshot format: "QATH", u8 version, u8 enabled, count revision, bytes tokenKey,
//   count users × (str name, u8 hasPassword, [str hash], count passwordRevision, count roles × str),
//   count roles × (str name, count perms × permission).

import { ByteReader, ByteWriter, KvCodecError } from '../kv/codec.js';
import { AUTH_COMMAND_FORMAT_VERSION, AUTH_LIMITS, type AuthCommand, type Permission, type PermissionResource, type PermissionType, type Role, type User } from './types.js';

export class AuthCodecError extends Error {
  override readonly name = 'AuthCodecError';
}

const TAGS = {
  enable: 1, disable: 2, userAdd: 3, userDelete: 4, userChangePassword: 5, userGrantRole: 6, userRevokeRole: 7,
  roleAdd: 8, roleDelete: 9, roleGrantPermission: 10, roleRevokePermission: 11,
} as const;
const TAG_NAMES = Object.keys(TAGS) as (keyof typeof TAGS)[];
const RESOURCES: readonly PermissionResource[] = ['kv', 'queue', 'metadata'];
const TYPES: readonly PermissionType[] = ['read', 'write', 'readwrite'];
const SNAPSHOT_MAGIC = new Uint8Array([0x51, 0x41, 0x54, 0x48]); // "QATH"
const STAMP_VERSION = 1;
const FLAG = [0, 1] as const;
const KINDS = [0, 1, 2] as const;

function writeRevision(w: ByteWriter, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new AuthCodecError(`auth revision ${n} is not a non-negative integer`);
  w.int(n);
}

function readRevision(r: ByteReader): number {
  const n = r.int();
  if (n < 0) throw new AuthCodecError(`negative auth revision ${n}`);
  return n;
}

const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();
const LONE_SURROGATE = /\p{Cs}/u;

/** Why `name` is not a valid user or role name (1..255 bytes of well-formed UTF-8), or null. Empty names are the state machine's 'userEmpty'/'roleEmpty', not this. */
export function authNameProblem(name: string, what: string): string | null {
  if (typeof name !== 'string') return `${what} is not a string`;
  if (LONE_SURROGATE.test(name)) return `${what} is not well-formed Unicode`;
  const n = utf8Encoder.encode(name).byteLength;
  if (n > AUTH_LIMITS.nameBytesMax) return `${what} is ${n} bytes long; at most ${AUTH_LIMITS.nameBytesMax}`;
  return null;
}

/** Why a permission's key or range end is unacceptable, or null. */
export function permissionKeyProblem(key: Uint8Array, what: string): string | null {
  if (!(key instanceof Uint8Array)) return `${what} is not bytes`;
  if (key.byteLength > AUTH_LIMITS.keyBytesMax) return `${what} is ${key.byteLength} bytes long; at most ${AUTH_LIMITS.keyBytesMax}`;
  return null;
}

function check(problem: string | null): void {
  if (problem !== null) throw new AuthCodecError(problem);
}

function writeStr(w: ByteWriter, s: string, maxBytes: number, what: string): void {
  if (typeof s !== 'string') throw new AuthCodecError(`${what} is not a string`);
  if (LONE_SURROGATE.test(s)) throw new AuthCodecError(`${what} is not well-formed Unicode`);
  const b = utf8Encoder.encode(s);
  if (b.byteLength > maxBytes) throw new AuthCodecError(`${what} is ${b.byteLength} bytes long; at most ${maxBytes}`);
  w.bytes(b);
}

function readStr(r: ByteReader, maxBytes: number, what: string): string {
  const raw = r.bytes();
  if (raw.byteLength > maxBytes) throw new AuthCodecError(`${what} is ${raw.byteLength} bytes long; at most ${maxBytes}`);
  try {
    return utf8Decoder.decode(raw);
  } catch (e) {
    throw new AuthCodecError(`${what} is not well-formed UTF-8`, { cause: e });
  }
}

function writeKey(w: ByteWriter, key: Uint8Array, what: string): void {
  check(permissionKeyProblem(key, what));
  w.bytes(key);
}

function readKey(r: ByteReader, what: string): Uint8Array {
  const k = r.bytes();
  check(permissionKeyProblem(k, what));
  return k;
}

function writePermission(w: ByteWriter, p: Permission): void {
  const res = RESOURCES.indexOf(p.resource);
  const typ = TYPES.indexOf(p.type);
  if (res < 0) throw new AuthCodecError(`unknown permission resource ${String(p.resource)}`);
  if (typ < 0) throw new AuthCodecError(`unknown permission type ${String(p.type)}`);
  w.u8(res);
  w.u8(typ);
  writeKey(w, p.key, 'permission key');
  writeKey(w, p.rangeEnd, 'permission range end');
}

function readResource(r: ByteReader): PermissionResource {
  return r.enumOf(RESOURCES, 'permission resource');
}

function readPermission(r: ByteReader): Permission {
  const resource = readResource(r);
  const type = r.enumOf(TYPES, 'permission type');
  return { resource, type, key: readKey(r, 'permission key'), rangeEnd: readKey(r, 'permission range end') };
}

const name = (w: ByteWriter, s: string, what: string): void => writeStr(w, s, AUTH_LIMITS.nameBytesMax, what);
const readName = (r: ByteReader, what: string): string => readStr(r, AUTH_LIMITS.nameBytesMax, what);

/** Encodes a command for the log (the bytes after the service tag). Throws AuthCodecError on a command the format cannot hold. */
export function encodeAuthCommand(cmd: AuthCommand): Uint8Array {
  const w = new ByteWriter();
  w.u8(AUTH_COMMAND_FORMAT_VERSION);
  w.u8(TAGS[cmd.type]);
  switch (cmd.type) {
    case 'enable':
      if (!(cmd.tokenKey instanceof Uint8Array) || cmd.tokenKey.byteLength !== AUTH_LIMITS.tokenKeyBytes) throw new AuthCodecError(`the token key must be ${AUTH_LIMITS.tokenKeyBytes} bytes`);
      w.bytes(cmd.tokenKey);
      break;
    case 'disable':
      break;
    case 'userAdd':
      name(w, cmd.name, 'user name');
      if (cmd.passwordHash === null) w.u8(0);
      else {
        w.u8(1);
        writeStr(w, cmd.passwordHash, AUTH_LIMITS.hashBytesMax, 'password hash');
      }
      break;
    case 'userDelete':
    case 'roleAdd':
    case 'roleDelete':
      name(w, cmd.name, cmd.type === 'userDelete' ? 'user name' : 'role name');
      break;
    case 'userChangePassword':
      name(w, cmd.name, 'user name');
      writeStr(w, cmd.passwordHash, AUTH_LIMITS.hashBytesMax, 'password hash');
      break;
    case 'userGrantRole':
    case 'userRevokeRole':
      name(w, cmd.user, 'user name');
      name(w, cmd.role, 'role name');
      break;
    case 'roleGrantPermission':
      name(w, cmd.role, 'role name');
      writePermission(w, cmd.permission);
      break;
    case 'roleRevokePermission': {
      name(w, cmd.role, 'role name');
      const res = RESOURCES.indexOf(cmd.resource);
      if (res < 0) throw new AuthCodecError(`unknown permission resource ${String(cmd.resource)}`);
      w.u8(res);
      writeKey(w, cmd.key, 'permission key');
      writeKey(w, cmd.rangeEnd, 'permission range end');
      break;
    }
    default: {
      const never: never = cmd;
      throw new AuthCodecError(`unknown auth command ${String((never as { type: unknown }).type)}`);
    }
  }
  return w.finish();
}

/** Decodes a command (copies: nothing refers to `bytes` afterwards). Throws AuthCodecError on anything but exactly one valid command. */
export function decodeAuthCommand(bytes: Uint8Array): AuthCommand {
  return decoding(() => {
    const r = new ByteReader(bytes);
    const version = r.u8();
    if (version !== AUTH_COMMAND_FORMAT_VERSION) throw new AuthCodecError(`unknown auth command format version ${version}`);
    const type = TAG_NAMES[r.u8() - 1];
    let cmd: AuthCommand;
    switch (type) {
      case 'enable': {
        const tokenKey = r.bytes();
        if (tokenKey.byteLength !== AUTH_LIMITS.tokenKeyBytes) throw new AuthCodecError(`the token key must be ${AUTH_LIMITS.tokenKeyBytes} bytes`);
        cmd = { type, tokenKey };
        break;
      }
      case 'disable':
        cmd = { type };
        break;
      case 'userAdd': {
        const n = readName(r, 'user name');
        const has = r.enumOf(FLAG, 'flag');
        cmd = { type, name: n, passwordHash: has === 1 ? readStr(r, AUTH_LIMITS.hashBytesMax, 'password hash') : null };
        break;
      }
      case 'userDelete':
        cmd = { type, name: readName(r, 'user name') };
        break;
      case 'roleAdd':
      case 'roleDelete':
        cmd = { type, name: readName(r, 'role name') };
        break;
      case 'userChangePassword':
        cmd = { type, name: readName(r, 'user name'), passwordHash: readStr(r, AUTH_LIMITS.hashBytesMax, 'password hash') };
        break;
      case 'userGrantRole':
      case 'userRevokeRole':
        cmd = { type, user: readName(r, 'user name'), role: readName(r, 'role name') };
        break;
      case 'roleGrantPermission':
        cmd = { type, role: readName(r, 'role name'), permission: readPermission(r) };
        break;
      case 'roleRevokePermission':
        cmd = { type, role: readName(r, 'role name'), resource: readResource(r), key: readKey(r, 'permission key'), rangeEnd: readKey(r, 'permission range end') };
        break;
      case undefined:
        throw new AuthCodecError('unknown auth command tag');
      default: {
        const never: never = type;
        throw new AuthCodecError(`unknown auth command ${String(never)}`);
      }
    }
    r.end();
    return cmd;
  });
}

/** Who a stamped command comes from: a user checked at the auth revision `revision`, or the cluster itself (lease expiry, auto-compaction, queue liveness, embedded brokers). */
export type AuthStamp =
  | { readonly kind: 'user'; readonly user: string; readonly revision: number }
  | { readonly kind: 'system' };

export const SYSTEM_STAMP: AuthStamp = { kind: 'system' };

/** Recent users' stamp headers, by user and revision: every write of a user carries the same bytes until auth changes. */
const stampHeaders = new Map<string, Uint8Array>();
const STAMP_HEADERS_MAX = 1024;
let systemHeader: Uint8Array | null = null;

/** The stamp's header bytes (what goes between the multiplexer's stamp tag and the wrapped command). Do not modify them: they are shared. */
export function encodeStampHeader(stamp: AuthStamp): Uint8Array {
  if (stamp.kind === 'system') return (systemHeader ??= buildStampHeader(stamp));
  const key = `${stamp.revision}\u0000${stamp.user}`;
  let h = stampHeaders.get(key);
  if (h === undefined) {
    h = buildStampHeader(stamp);
    if (stampHeaders.size >= STAMP_HEADERS_MAX) stampHeaders.clear();
    stampHeaders.set(key, h);
  }
  return h;
}

function buildStampHeader(stamp: AuthStamp): Uint8Array {
  const w = new ByteWriter(stamp.kind === 'user' ? 16 + stamp.user.length * 3 : 2);
  w.u8(STAMP_VERSION);
  if (stamp.kind === 'user') {
    w.u8(1);
    name(w, stamp.user, 'user name');
    writeRevision(w, stamp.revision);
  } else {
    w.u8(2);
  }
  return w.finish();
}

/** Reads a stamp header from data[start, end): the stamp and where the wrapped command starts. Throws AuthCodecError. */
export function decodeStampHeader(data: Uint8Array, start: number, end: number): { readonly stamp: AuthStamp; readonly innerStart: number } {
  return decoding(() => {
    const r = new ByteReader(data, start, end);
    const version = r.u8();
    if (version !== STAMP_VERSION) throw new AuthCodecError(`unknown auth stamp version ${version}`);
    const kind = r.enumOf(KINDS, 'auth stamp kind');
    let stamp: AuthStamp;
    if (kind === 1) {
      const user = readName(r, 'user name');
      stamp = { kind: 'user', user, revision: readRevision(r) };
    } else if (kind === 2) {
      stamp = SYSTEM_STAMP;
    } else {
      throw new AuthCodecError('unknown auth stamp kind 0');
    }
    return { stamp, innerStart: start + r.position };
  });
}

/** The state a snapshot holds. */
export interface AuthSnapshot {
  readonly enabled: boolean;
  readonly revision: number;
  readonly tokenKey: Uint8Array;
  readonly users: readonly User[];
  readonly roles: readonly Role[];
}

export function encodeAuthSnapshot(s: AuthSnapshot): Uint8Array {
  const w = new ByteWriter();
  w.raw(SNAPSHOT_MAGIC);
  w.u8(AUTH_COMMAND_FORMAT_VERSION);
  w.u8(s.enabled ? 1 : 0);
  writeRevision(w, s.revision);
  w.bytes(s.tokenKey);
  w.count(s.users.length);
  for (const u of s.users) {
    name(w, u.name, 'user name');
    if (u.passwordHash === null) w.u8(0);
    else {
      w.u8(1);
      writeStr(w, u.passwordHash, AUTH_LIMITS.hashBytesMax, 'password hash');
    }
    writeRevision(w, u.passwordRevision);
    w.count(u.roles.length);
    for (const role of u.roles) name(w, role, 'role name');
  }
  w.count(s.roles.length);
  for (const role of s.roles) {
    name(w, role.name, 'role name');
    w.count(role.permissions.length);
    for (const p of role.permissions) writePermission(w, p);
  }
  return w.finish();
}

export function decodeAuthSnapshot(bytes: Uint8Array): AuthSnapshot {
  return decoding(() => {
    const r = new ByteReader(bytes);
    const magic = r.raw(SNAPSHOT_MAGIC.byteLength);
    if (!magic.every((b, i) => b === SNAPSHOT_MAGIC[i])) throw new AuthCodecError('not an auth snapshot (bad magic)');
    const version = r.u8();
    if (version !== AUTH_COMMAND_FORMAT_VERSION) throw new AuthCodecError(`unknown auth snapshot version ${version}`);
    const enabled = r.enumOf(FLAG, 'flag') === 1;
    const revision = readRevision(r);
    const tokenKey = r.bytes();
    if (tokenKey.byteLength !== 0 && tokenKey.byteLength !== AUTH_LIMITS.tokenKeyBytes) throw new AuthCodecError('bad token key length');
    const users: User[] = [];
    for (let i = 0, n = r.count(); i < n; i++) {
      const userName = readName(r, 'user name');
      const passwordHash = r.enumOf(FLAG, 'flag') === 1 ? readStr(r, AUTH_LIMITS.hashBytesMax, 'password hash') : null;
      const passwordRevision = readRevision(r);
      const roles: string[] = [];
      for (let j = 0, m = r.count(); j < m; j++) roles.push(readName(r, 'role name'));
      users.push({ name: userName, passwordHash, passwordRevision, roles });
    }
    const roles: Role[] = [];
    for (let i = 0, n = r.count(); i < n; i++) {
      const roleName = readName(r, 'role name');
      const permissions: Permission[] = [];
      for (let j = 0, m = r.count(); j < m; j++) permissions.push(readPermission(r));
      roles.push({ name: roleName, permissions });
    }
    r.end();
    return { enabled, revision, tokenKey, users, roles };
  });
}

function decoding<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof AuthCodecError) throw e;
    if (e instanceof KvCodecError) throw new AuthCodecError(e.message, { cause: e });
    throw e;
  }
}
