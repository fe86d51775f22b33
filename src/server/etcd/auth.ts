// etcd's Auth service over the node's auth backend (src/server/auth,
// src/services/auth): users, roles, permissions, AuthEnable/Disable/Status and
// Authenticate, with etcd 3.4's rules, messages and status codes.
//
// Changes go through the log as auth commands, stamped with the caller
// (root, while auth is on) and checked again where they apply. Passwords are
// hashed here, before proposing, on the hasher's own thread: the log and
// every replica only ever see the bcrypt hash. Reads (UserGet, UserList,
// RoleGet, RoleList, Authenticate) wait on a read barrier first, so that a
// user added on one member can log in on another at once.
//
// Names and passwords must come as well-formed UTF-8 (wire-utf8.ts): bytes
// that are not would otherwise be read as another string.
//
// Authenticate is slowed per client address after repeated failures
// (LoginThrottle), never touches bcrypt while refused, and checks the
// password off the Raft thread; a flood of logins is answered "too many
// requests" once the hasher's queue is full. Passwords and tokens are never
// logged.

import { assertNever } from '../../util/assert.js';
import { PasswordLogin } from '../auth/login.js';
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { authNameProblem, permissionKeyProblem } from '../../services/auth/codec.js';
import {
  AUTH_LIMITS,
  type AuthCommand, type AuthResult, type Permission, type PermissionResource, type PermissionType,
} from '../../services/auth/types.js';
import type { AuthBackend, KvBackend } from './backend.js';
import type { WireHeader } from './convert.js';
import { AuthRefusedError, ETCD_STATUS, EtcdRequestError, MalformedRequestError, throwIfAuthDenied } from './errors.js';
import { CLIENT_ADDRESS_HEADER, grpcCredentials } from '../auth/credentials.js';
import { sendStamped, type Principal } from '../auth/authorizer.js';
import { BCRYPT_PASSWORD_BYTES_MAX, bcryptTruncates } from '../auth/password-hasher.js';
import { MALFORMED_UTF8, type MaybeMalformedUtf8 } from './wire-utf8.js';

type Caller = grpc.ServerUnaryCall<unknown, unknown>;
type Unary = <Req>(method: string, fn: (req: Req, call: Caller) => Promise<object> | object) => grpc.handleUnaryCall<unknown, unknown>;

export interface AuthServiceContext {
  readonly backend: KvBackend;
  readonly unary: Unary;
  readonly header: (revision: number) => WireHeader;
  readonly notServed: (message: string) => grpc.handleUnaryCall<unknown, unknown>;
  readonly logger: Logger;
  /** Calls arrive through protocol workers (trust their identity headers; server.ts). */
  readonly behindProtocolWorkers: boolean;
}

/** Longest password accepted (bcrypt reads only the first 72 bytes of it). */
const PASSWORD_MAX_BYTES = 1024;
const NOT_SERVED = 'etcdserver: this quorumlog backend serves no auth';

const WIRE_TYPES: Readonly<Record<string, PermissionType>> = { READ: 'read', WRITE: 'write', READWRITE: 'readwrite', 0: 'read', 1: 'write', 2: 'readwrite' };
const WIRE_RESOURCES: Readonly<Record<string, PermissionResource>> = { KV: 'kv', QUEUE: 'queue', METADATA: 'metadata', 0: 'kv', 1: 'queue', 2: 'metadata' };
const TYPE_TO_WIRE: Readonly<Record<PermissionType, string>> = { read: 'READ', write: 'WRITE', readwrite: 'READWRITE' };
const RESOURCE_TO_WIRE: Readonly<Record<PermissionResource, string>> = { kv: 'KV', queue: 'QUEUE', metadata: 'METADATA' };

function name(v: unknown, what: 'user name' | 'role name'): string {
  if (v !== undefined && typeof v !== 'string') throw new MalformedRequestError(`${what} is not a string`);
  const s = v ?? '';
  const problem = authNameProblem(s, what);
  if (problem !== null) throw new MalformedRequestError(problem);
  return s;
}

function password(v: unknown): string {
  if (v !== undefined && typeof v !== 'string') throw new MalformedRequestError('password is not a string');
  const s = v ?? '';
  if (Buffer.byteLength(s, 'utf8') > PASSWORD_MAX_BYTES) throw new MalformedRequestError(`password is longer than ${PASSWORD_MAX_BYTES} bytes`);
  return s;
}

/** A new password: bcrypt reads only its first 72 bytes, so a longer one is refused (as etcd's bcrypt refuses it) rather than silently cut. */
function newPassword(v: unknown): string {
  const s = password(v);
  if (bcryptTruncates(s)) throw new MalformedRequestError(`password is longer than ${BCRYPT_PASSWORD_BYTES_MAX} bytes, all bcrypt uses`);
  return s;
}

function keyBytes(v: unknown, what: string): Uint8Array {
  if (v === undefined || v === null) return new Uint8Array(0);
  if (!(v instanceof Uint8Array)) throw new MalformedRequestError(`${what} is not bytes`);
  const problem = permissionKeyProblem(v, what);
  if (problem !== null) throw new MalformedRequestError(problem);
  return v;
}

function enumOf<T>(table: Readonly<Record<string, T>>, v: unknown, fallback: T, what: string): T {
  if (v === undefined || v === null) return fallback;
  const t = table[String(v)];
  if (t === undefined) throw new MalformedRequestError(`unknown ${what} ${String(v)}`);
  return t;
}

function wirePermission(p: Permission): object {
  return { permType: TYPE_TO_WIRE[p.type], key: Buffer.from(p.key), range_end: Buffer.from(p.rangeEnd), resource: RESOURCE_TO_WIRE[p.resource] };
}

/** The Auth service's handlers; without an auth backend every method answers UNIMPLEMENTED. */
export function authHandlers(ctx: AuthServiceContext): grpc.UntypedServiceImplementation {
  const { backend, header, notServed } = ctx;
  // A name or password that came as bytes that are not UTF-8 would have been decoded into another string: refused
  // (server.ts decodes this service's requests with checkUtf8Strings, which marks them).
  const unary: Unary = <Req>(method: string, fn: (req: Req, call: Caller) => Promise<object> | object) => ctx.unary<Req>(method, (req, call) => {
    const bad = (req as MaybeMalformedUtf8 | null | undefined)?.[MALFORMED_UTF8];
    if (bad !== undefined) throw new MalformedRequestError(`${bad} is not well-formed UTF-8`);
    return fn(req, call);
  });
  const auth: AuthBackend | undefined = backend.auth;
  const methods = [
    'AuthEnable', 'AuthDisable', 'AuthStatus', 'Authenticate', 'UserAdd', 'UserGet', 'UserList', 'UserDelete', 'UserChangePassword',
    'UserGrantRole', 'UserRevokeRole', 'RoleAdd', 'RoleGet', 'RoleList', 'RoleDelete', 'RoleGrantPermission', 'RoleRevokePermission',
  ];
  if (auth === undefined) return Object.fromEntries(methods.map((m) => [m, notServed(NOT_SERVED)]));
  const authz = auth.authorizer;
  const state = authz.state;
  const store = backend.store;
  const ok = (): object => ({ header: header(store.revision) });

  /** The caller while auth is on (null while off); `root`: refuses anyone but root. */
  function caller(call: Caller, root: boolean): Principal | null {
    if (!state.enabled) return null;
    return authz.check(grpcCredentials(call, ctx.behindProtocolWorkers), root ? 'root' : []);
  }

  /** An auth change through the log as root's (anyone's while auth is off), tried again if the auth state moved past the check. */
  async function change(call: Caller, cmd: AuthCommand): Promise<void> {
    const result = await sendStamped(authz, () => caller(call, true), (stamp) => auth!.write(cmd, stamp));
    const r = throwIfAuthDenied(result) as AuthResult;
    if (r.type === 'error') throw new AuthRefusedError(r.error);
  }

  async function hash(pw: string): Promise<string> {
    return auth!.hasher.hash(pw);
  }

  const passwordLogin = new PasswordLogin(auth, () => backend.readBarrier());

  /** The client's address, for the login throttle. */
  function clientKey(call: Caller): string {
    if (ctx.behindProtocolWorkers) {
      const v = call.metadata.get(CLIENT_ADDRESS_HEADER)[0];
      if (typeof v === 'string' && v !== '') return v;
    }
    const peer = call.getPeer();
    const cut = peer.lastIndexOf(':');
    return cut > 0 ? peer.slice(0, cut) : peer;
  }

  async function authenticate(req: { name?: string; password?: string }, call: Caller): Promise<object> {
    const user = name(req.name, 'user name');
    const pw = password(req.password);
    if (!state.enabled) throw new EtcdRequestError(ETCD_STATUS.authNotEnabled);
    const outcome = await passwordLogin.login(user, pw, clientKey(call));
    switch (outcome.type) {
      case 'ok':
        break;
      case 'throttled':
        throw new EtcdRequestError({
          code: grpc.status.RESOURCE_EXHAUSTED,
          message: `etcdserver: too many failed authentication attempts from this client; retry in ${Math.ceil(outcome.retryAfterMs / 1000)} s`,
        });
      case 'authDisabled':
        throw new EtcdRequestError(ETCD_STATUS.authNotEnabled);
      case 'failed':
        throw new EtcdRequestError(ETCD_STATUS.authFailed);
      default:
        assertNever(outcome, 'login outcome');
    }
    return { header: header(store.revision), token: authz.issue(user) };
  }

  return {
    AuthEnable: unary<object>('AuthEnable', async (_req, call) => {
      await change(call, { type: 'enable', tokenKey: randomBytes(AUTH_LIMITS.tokenKeyBytes) });
      return ok();
    }),
    AuthDisable: unary<object>('AuthDisable', async (_req, call) => {
      await change(call, { type: 'disable' });
      return ok();
    }),
    AuthStatus: unary<object>('AuthStatus', async () => {
      await backend.readBarrier();
      return { header: header(store.revision), enabled: state.enabled, authRevision: String(state.revision) };
    }),
    Authenticate: unary('Authenticate', authenticate),
    UserAdd: unary<{ name?: string; password?: string; options?: { no_password?: boolean } | null }>('UserAdd', async (req, call) => {
      const user = name(req.name, 'user name');
      const pw = newPassword(req.password);
      caller(call, true);
      if (user !== '' && state.user(user) !== undefined) throw new AuthRefusedError('userAlreadyExist'); // before spending a hash
      const noPassword = req.options?.no_password === true;
      await change(call, { type: 'userAdd', name: user, passwordHash: noPassword ? null : await hash(pw) });
      return ok();
    }),
    UserGet: unary<{ name?: string }>('UserGet', async (req, call) => {
      const user = name(req.name, 'user name');
      await backend.readBarrier();
      const p = state.enabled ? authz.identify(grpcCredentials(call, ctx.behindProtocolWorkers)) : null;
      if (p !== null && p.user !== user) authz.require(p, 'root'); // a user may look at itself
      const u = state.user(user);
      if (u === undefined) throw new AuthRefusedError('userNotFound');
      return { header: header(store.revision), roles: [...u.roles] };
    }),
    UserList: unary<object>('UserList', async (_req, call) => {
      await backend.readBarrier();
      caller(call, true);
      return { header: header(store.revision), users: state.userNames() };
    }),
    UserDelete: unary<{ name?: string }>('UserDelete', async (req, call) => {
      await change(call, { type: 'userDelete', name: name(req.name, 'user name') });
      return ok();
    }),
    UserChangePassword: unary<{ name?: string; password?: string }>('UserChangePassword', async (req, call) => {
      const user = name(req.name, 'user name');
      const pw = newPassword(req.password);
      caller(call, true);
      if (state.user(user) === undefined) throw new AuthRefusedError('userNotFound');
      await change(call, { type: 'userChangePassword', name: user, passwordHash: await hash(pw) });
      return ok();
    }),
    UserGrantRole: unary<{ user?: string; role?: string }>('UserGrantRole', async (req, call) => {
      await change(call, { type: 'userGrantRole', user: name(req.user, 'user name'), role: name(req.role, 'role name') });
      return ok();
    }),
    UserRevokeRole: unary<{ name?: string; role?: string }>('UserRevokeRole', async (req, call) => {
      await change(call, { type: 'userRevokeRole', user: name(req.name, 'user name'), role: name(req.role, 'role name') });
      return ok();
    }),
    RoleAdd: unary<{ name?: string }>('RoleAdd', async (req, call) => {
      await change(call, { type: 'roleAdd', name: name(req.name, 'role name') });
      return ok();
    }),
    RoleGet: unary<{ role?: string; all_resources?: boolean }>('RoleGet', async (req, call) => {
      const role = name(req.role, 'role name');
      await backend.readBarrier();
      const p = state.enabled ? authz.identify(grpcCredentials(call, ctx.behindProtocolWorkers)) : null;
      if (p !== null && !state.hasRole(p.user, role)) authz.require(p, 'root'); // a user may look at its own roles
      const r = state.role(role);
      if (r === undefined) throw new AuthRefusedError('roleNotFound');
      const perms = req.all_resources === true ? r.permissions : r.permissions.filter((q) => q.resource === 'kv');
      return { header: header(store.revision), perm: perms.map(wirePermission) };
    }),
    RoleList: unary<object>('RoleList', async (_req, call) => {
      await backend.readBarrier();
      caller(call, true);
      return { header: header(store.revision), roles: state.roleNames() };
    }),
    RoleDelete: unary<{ role?: string }>('RoleDelete', async (req, call) => {
      await change(call, { type: 'roleDelete', name: name(req.role, 'role name') });
      return ok();
    }),
    RoleGrantPermission: unary<{ name?: string; perm?: { permType?: unknown; key?: unknown; range_end?: unknown; resource?: unknown } | null }>(
      'RoleGrantPermission', async (req, call) => {
        const role = name(req.name, 'role name');
        const perm = req.perm;
        if (perm === undefined || perm === null) throw new MalformedRequestError('no permission given');
        const permission: Permission = {
          resource: enumOf(WIRE_RESOURCES, perm.resource, 'kv', 'permission resource'),
          type: enumOf(WIRE_TYPES, perm.permType, 'read', 'permission type'),
          key: keyBytes(perm.key, 'permission key'),
          rangeEnd: keyBytes(perm.range_end, 'permission range end'),
        };
        await change(call, { type: 'roleGrantPermission', role, permission });
        return ok();
      }),
    RoleRevokePermission: unary<{ role?: string; key?: unknown; range_end?: unknown; resource?: unknown }>('RoleRevokePermission', async (req, call) => {
      await change(call, {
        type: 'roleRevokePermission',
        role: name(req.role, 'role name'),
        resource: enumOf(WIRE_RESOURCES, req.resource, 'kv', 'permission resource'),
        key: keyBytes(req.key, 'permission key'),
        rangeEnd: keyBytes(req.range_end, 'permission range end'),
      });
      return ok();
    }),
  };
}

