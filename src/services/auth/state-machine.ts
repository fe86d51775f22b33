// The auth service as a replicated state machine: users, roles, their
// permissions, whether auth is on, the auth revision and the token signing
// key. Deterministic: passwords arrive hashed and the token key arrives drawn
// (the proposer did both), so every replica applies the same bytes to the same
// state. The rules are etcd 3.4's (auth/store.go); see types.ts.

import type { LogIndex } from '../../protocol/ids.js';
import type { ServiceMachine } from '../machine.js';
import { keySpan, type KeySpan } from '../kv/key-range.js';
import { AuthCodecError, decodeAuthCommand, decodeAuthSnapshot, encodeAuthSnapshot } from './codec.js';
import { grantedSpans, spansCover, type Access } from './permissions.js';
import {
  authError, AUTH_LIMITS, ROOT_ROLE, ROOT_USER,
  type AuthCommand, type AuthResult, type Permission, type PermissionResource, type Role, type User,
} from './types.js';

const EMPTY = new Uint8Array(0);

function comparePermissions(a: Permission, b: Permission): number {
  if (a.resource !== b.resource) return a.resource < b.resource ? -1 : 1;
  const k = Buffer.compare(a.key, b.key);
  return k !== 0 ? k : Buffer.compare(a.rangeEnd, b.rangeEnd);
}

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => Buffer.compare(a, b) === 0;

/** Where a resource's read spans sit in a user's cache entry (its write spans: the next slot). */
const SLOT: Readonly<Record<PermissionResource, number>> = { kv: 0, queue: 2, metadata: 4 };

export class AuthStateMachine implements ServiceMachine {
  private enabledFlag = false;
  private rev = 0;
  private key: Uint8Array = EMPTY;
  private readonly users = new Map<string, User>();
  private readonly roles = new Map<string, Role>();
  /** Granted spans per user, then per resource and access (SLOT); cleared whenever the revision moves (or a snapshot is restored). */
  private readonly spanCache = new Map<string, (KeySpan[] | undefined)[]>();
  private readonly listeners = new Set<() => void>();

  get enabled(): boolean {
    return this.enabledFlag;
  }

  /** The auth revision: how many changes have applied (etcd's authRevision). */
  get revision(): number {
    return this.rev;
  }

  /** The key that signs tokens; empty until auth is first enabled. Secret: never log it. */
  get tokenKey(): Uint8Array {
    return this.key;
  }

  user(name: string): User | undefined {
    return this.users.get(name);
  }

  role(name: string): Role | undefined {
    return this.roles.get(name);
  }

  userNames(): string[] {
    return [...this.users.keys()].sort();
  }

  roleNames(): string[] {
    return [...this.roles.keys()].sort();
  }

  /** Whether the user exists and holds the root role (which may do everything). */
  isRoot(userName: string): boolean {
    return this.users.get(userName)?.roles.includes(ROOT_ROLE) === true;
  }

  hasRole(userName: string, role: string): boolean {
    return this.users.get(userName)?.roles.includes(role) === true;
  }

  /**
   * Whether `userName` may `access` the range (key, rangeEnd) of `resource`:
   * root may do everything; anyone else needs the union of its roles'
   * permissions to cover the whole range. An unknown user may do nothing.
   */
  permitted(userName: string, resource: PermissionResource, access: Access, key: Uint8Array, rangeEnd: Uint8Array): boolean {
    const u = this.users.get(userName);
    if (u === undefined) return false;
    if (u.roles.includes(ROOT_ROLE)) return true;
    let slots = this.spanCache.get(userName);
    if (slots === undefined) {
      slots = [];
      this.spanCache.set(userName, slots);
    }
    const slot = SLOT[resource] + (access === 'write' ? 1 : 0);
    let spans = slots[slot];
    if (spans === undefined) {
      const perms: Permission[] = [];
      for (const r of u.roles) perms.push(...(this.roles.get(r)?.permissions ?? []));
      spans = grantedSpans(perms, resource, access);
      slots[slot] = spans;
    }
    return spans.length > 0 && spansCover(spans, keySpan(key, rangeEnd));
  }

  /** Calls `listener` after every change (an applied command that moved the revision, or a restored snapshot); returns the unsubscribe. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  apply(command: Uint8Array, _index: LogIndex): AuthResult {
    let cmd: AuthCommand;
    try {
      cmd = decodeAuthCommand(command);
    } catch (e) {
      if (!(e instanceof AuthCodecError)) throw e;
      return { type: 'error', error: 'malformed', message: `etcdserver: malformed auth command: ${e.message}` };
    }
    const r = this.applyCommand(cmd);
    if (r === 'changed') {
      this.rev++;
      this.spanCache.clear();
      for (const l of [...this.listeners]) l();
      return { type: 'ok', revision: this.rev };
    }
    if (r === 'unchanged') return { type: 'ok', revision: this.rev };
    return r;
  }

  /** Applies one command: 'changed' (the revision moves), 'unchanged' (an idempotent no-op, as etcd's), or the error. */
  private applyCommand(cmd: AuthCommand): 'changed' | 'unchanged' | AuthResult {
    switch (cmd.type) {
      case 'enable': {
        if (this.enabledFlag) return 'unchanged';
        const root = this.users.get(ROOT_USER);
        if (root === undefined) return authError('rootUserNotExist');
        if (!root.roles.includes(ROOT_ROLE)) return authError('rootRoleNotExist');
        this.enabledFlag = true;
        this.key = cmd.tokenKey.slice();
        return 'changed';
      }
      case 'disable':
        if (!this.enabledFlag) return 'unchanged';
        this.enabledFlag = false;
        return 'changed';
      case 'userAdd': {
        if (cmd.name.length === 0) return authError('userEmpty');
        if (this.users.has(cmd.name)) return authError('userAlreadyExist');
        if (this.users.size >= AUTH_LIMITS.usersMax) return authError('invalidAuthMgmt');
        this.users.set(cmd.name, { name: cmd.name, passwordHash: cmd.passwordHash, roles: [], passwordRevision: this.rev + 1 });
        return 'changed';
      }
      case 'userDelete':
        if (this.enabledFlag && cmd.name === ROOT_USER) return authError('invalidAuthMgmt');
        if (!this.users.delete(cmd.name)) return authError('userNotFound');
        return 'changed';
      case 'userChangePassword': {
        const u = this.users.get(cmd.name);
        if (u === undefined) return authError('userNotFound');
        this.users.set(cmd.name, { ...u, passwordHash: cmd.passwordHash, passwordRevision: this.rev + 1 });
        return 'changed';
      }
      case 'userGrantRole': {
        const u = this.users.get(cmd.user);
        if (u === undefined) return authError('userNotFound');
        if (cmd.role !== ROOT_ROLE && !this.roles.has(cmd.role)) return authError('roleNotFound');
        if (u.roles.includes(cmd.role)) return 'unchanged';
        this.users.set(cmd.user, { ...u, roles: [...u.roles, cmd.role].sort() });
        return 'changed';
      }
      case 'userRevokeRole': {
        if (this.enabledFlag && cmd.user === ROOT_USER && cmd.role === ROOT_ROLE) return authError('invalidAuthMgmt');
        const u = this.users.get(cmd.user);
        if (u === undefined) return authError('userNotFound');
        if (!u.roles.includes(cmd.role)) return authError('roleNotGranted');
        this.users.set(cmd.user, { ...u, roles: u.roles.filter((r) => r !== cmd.role) });
        return 'changed';
      }
      case 'roleAdd':
        if (cmd.name.length === 0) return authError('roleEmpty');
        if (this.roles.has(cmd.name)) return authError('roleAlreadyExist');
        if (this.roles.size >= AUTH_LIMITS.rolesMax) return authError('invalidAuthMgmt');
        this.roles.set(cmd.name, { name: cmd.name, permissions: [] });
        return 'changed';
      case 'roleDelete': {
        if (this.enabledFlag && cmd.name === ROOT_ROLE) return authError('invalidAuthMgmt');
        if (!this.roles.delete(cmd.name)) return authError('roleNotFound');
        for (const u of [...this.users.values()]) {
          if (u.roles.includes(cmd.name)) this.users.set(u.name, { ...u, roles: u.roles.filter((r) => r !== cmd.name) });
        }
        return 'changed';
      }
      case 'roleGrantPermission': {
        const role = this.roles.get(cmd.role);
        if (role === undefined) return authError('roleNotFound');
        const p = { ...cmd.permission, key: cmd.permission.key.slice(), rangeEnd: cmd.permission.rangeEnd.slice() };
        const rest = role.permissions.filter((q) => comparePermissions(q, p) !== 0);
        if (rest.length === role.permissions.length && rest.length >= AUTH_LIMITS.permissionsPerRoleMax) return authError('invalidAuthMgmt');
        this.roles.set(role.name, { name: role.name, permissions: [...rest, p].sort(comparePermissions) });
        return 'changed';
      }
      case 'roleRevokePermission': {
        const role = this.roles.get(cmd.role);
        if (role === undefined) return authError('roleNotFound');
        const rest = role.permissions.filter((q) => !(q.resource === cmd.resource && sameBytes(q.key, cmd.key) && sameBytes(q.rangeEnd, cmd.rangeEnd)));
        if (rest.length === role.permissions.length) return authError('permissionNotGranted');
        this.roles.set(role.name, { name: role.name, permissions: rest });
        return 'changed';
      }
      default: {
        const never: never = cmd;
        throw new Error(`unknown auth command ${String((never as { type: unknown }).type)}`);
      }
    }
  }

  snapshot(): Uint8Array {
    return encodeAuthSnapshot({
      enabled: this.enabledFlag,
      revision: this.rev,
      tokenKey: this.key,
      users: [...this.users.values()].sort((a, b) => (a.name < b.name ? -1 : 1)),
      roles: [...this.roles.values()].sort((a, b) => (a.name < b.name ? -1 : 1)),
    });
  }

  restore(data: Uint8Array): void {
    const s = decodeAuthSnapshot(data);
    this.enabledFlag = s.enabled;
    this.rev = s.revision;
    this.key = s.tokenKey;
    this.users.clear();
    this.roles.clear();
    for (const u of s.users) this.users.set(u.name, u);
    for (const r of s.roles) this.roles.set(r.name, r);
    this.spanCache.clear();
    for (const l of [...this.listeners]) l();
  }
}
