// The auth service's data model: etcd v3's users, roles and permissions
// (authpb.User, authpb.Role, authpb.Permission), extended with quorumlog's
// own resources (the quorum queues and the metadata log), and the commands
// that change them through the replicated log (src/services/auth/codec.ts).
//
// The rules are etcd 3.4's (auth/store.go): a user named "root" holding the
// role "root" must exist before auth can be enabled; the root role may do
// everything; once auth is on, neither the root user nor its root role can be
// removed. Every successful change moves the auth revision on by one; a
// request checked against an older revision is refused when it applies
// ('oldRevision'), so that a permission revoked after the check still holds.

/** etcd's permission types (authpb.Permission.Type): READ = 0, WRITE = 1, READWRITE = 2. */
export type PermissionType = 'read' | 'write' | 'readwrite';

/**
 * What a permission covers. 'kv': etcd keys (the only resource etcd knows).
 * 'queue': quorum queue names (their UTF-8 bytes; a prefix grants a family of
 * queues), READ to consume (Consume, Ack, Nack, Stats) and WRITE to publish
 * and declare (a declare needs WRITE on its dead-letter queue too).
 * 'metadata': the metadata log as a whole, READ to follow it and read its
 * image, WRITE to append records; only a permission covering every key
 * (key [0x00], range end [0x00]: needs.ts METADATA_LOG_KEY) grants it, since
 * a follower sees every record and an image holds them all (narrower ranges
 * grant nothing; they are left for record-level permissions later).
 * docs/QUEUES.md and docs/METADATA.md, "Permissions".
 */
export type PermissionResource = 'kv' | 'queue' | 'metadata';

/**
 * One permission, with etcd's meaning of (key, rangeEnd): rangeEnd empty =
 * the single key; [0x00] = every key >= key; otherwise [key, rangeEnd).
 */
export interface Permission {
  readonly resource: PermissionResource;
  readonly type: PermissionType;
  readonly key: Uint8Array;
  readonly rangeEnd: Uint8Array;
}

export interface User {
  readonly name: string;
  /** The bcrypt hash of the password; null for a user added with no_password (it can only authenticate by TLS certificate). */
  readonly passwordHash: string | null;
  /** Sorted, no duplicates. */
  readonly roles: readonly string[];
  /**
   * The auth revision at which the user was added or its password last
   * changed. A token carries it: deleting the user, re-adding it or changing
   * its password invalidates every token issued before (etcd's invalidateUser).
   */
  readonly passwordRevision: number;
}

export interface Role {
  readonly name: string;
  /** Sorted by (resource, key, rangeEnd); at most one permission per (resource, key, rangeEnd). */
  readonly permissions: readonly Permission[];
}

export const ROOT_USER = 'root';
export const ROOT_ROLE = 'root';

/** Limits on what the log accepts (a name or a hash beyond them is refused before it is proposed). */
export const AUTH_LIMITS = {
  /** User and role names, in UTF-8 bytes. */
  nameBytesMax: 255,
  /** A bcrypt hash is 60 characters; room for other formats. */
  hashBytesMax: 128,
  /** Permission keys and range ends. */
  keyBytesMax: 4096,
  /** Permissions per role. */
  permissionsPerRoleMax: 1024,
  /** Users, and roles. */
  usersMax: 100_000,
  rolesMax: 100_000,
  /** The token signing key, in bytes. */
  tokenKeyBytes: 32,
} as const;

export const AUTH_COMMAND_FORMAT_VERSION = 1;

/** A change to the auth state, as it goes through the log. Passwords arrive already hashed (the proposer hashed them). */
export type AuthCommand =
  /** `tokenKey`: random bytes the proposer drew, with which every member signs and checks tokens until auth is next enabled. */
  | { readonly type: 'enable'; readonly tokenKey: Uint8Array }
  | { readonly type: 'disable' }
  | { readonly type: 'userAdd'; readonly name: string; readonly passwordHash: string | null }
  | { readonly type: 'userDelete'; readonly name: string }
  | { readonly type: 'userChangePassword'; readonly name: string; readonly passwordHash: string }
  | { readonly type: 'userGrantRole'; readonly user: string; readonly role: string }
  | { readonly type: 'userRevokeRole'; readonly user: string; readonly role: string }
  | { readonly type: 'roleAdd'; readonly name: string }
  | { readonly type: 'roleDelete'; readonly name: string }
  | { readonly type: 'roleGrantPermission'; readonly role: string; readonly permission: Permission }
  | { readonly type: 'roleRevokePermission'; readonly role: string; readonly resource: PermissionResource; readonly key: Uint8Array; readonly rangeEnd: Uint8Array };

/**
 * Errors, named as etcd's (rpctypes); src/server/auth maps each to etcd's
 * gRPC status and message. 'oldRevision', 'userEmpty' and 'permissionDenied'
 * are also the auth gate's (gate.ts) refusals of other services' commands.
 */
export type AuthErrorCode =
  | 'rootUserNotExist' // etcdserver: root user does not exist (FAILED_PRECONDITION)
  | 'rootRoleNotExist' // etcdserver: root user does not have root role (FAILED_PRECONDITION)
  | 'userAlreadyExist' // etcdserver: user name already exists (FAILED_PRECONDITION)
  | 'userEmpty' // etcdserver: user name is empty (INVALID_ARGUMENT)
  | 'userNotFound' // etcdserver: user name not found (FAILED_PRECONDITION)
  | 'roleAlreadyExist' // etcdserver: role name already exists (FAILED_PRECONDITION)
  | 'roleNotFound' // etcdserver: role name not found (FAILED_PRECONDITION)
  | 'roleEmpty' // etcdserver: role name is empty (INVALID_ARGUMENT)
  | 'permissionDenied' // etcdserver: permission denied (PERMISSION_DENIED)
  | 'roleNotGranted' // etcdserver: role is not granted to the user (FAILED_PRECONDITION)
  | 'permissionNotGranted' // etcdserver: permission is not granted to the role (FAILED_PRECONDITION)
  | 'invalidAuthMgmt' // etcdserver: invalid auth management (INVALID_ARGUMENT)
  | 'oldRevision' // etcdserver: revision of auth store is old (INVALID_ARGUMENT)
  | 'malformed'; // a command that does not decode: only a bug could log one

export interface AuthErrorResult {
  readonly type: 'error';
  readonly error: AuthErrorCode;
  readonly message: string;
}

/** The result of applying an {@link AuthCommand}: `revision` is the auth revision after it (unchanged when the command changed nothing). */
export type AuthResult = { readonly type: 'ok'; readonly revision: number } | AuthErrorResult;

/** etcd's text for each error (the gRPC status message clients match on). */
export const AUTH_ERROR_MESSAGES: Readonly<Record<AuthErrorCode, string>> = {
  rootUserNotExist: 'etcdserver: root user does not exist',
  rootRoleNotExist: 'etcdserver: root user does not have root role',
  userAlreadyExist: 'etcdserver: user name already exists',
  userEmpty: 'etcdserver: user name is empty',
  userNotFound: 'etcdserver: user name not found',
  roleAlreadyExist: 'etcdserver: role name already exists',
  roleNotFound: 'etcdserver: role name not found',
  roleEmpty: 'etcdserver: role name is empty',
  permissionDenied: 'etcdserver: permission denied',
  roleNotGranted: 'etcdserver: role is not granted to the user',
  permissionNotGranted: 'etcdserver: permission is not granted to the role',
  invalidAuthMgmt: 'etcdserver: invalid auth management',
  oldRevision: 'etcdserver: revision of auth store is old',
  malformed: 'etcdserver: malformed auth command',
};

export function authError(error: AuthErrorCode): AuthErrorResult {
  return { type: 'error', error, message: AUTH_ERROR_MESSAGES[error] };
}

/**
 * What the auth gate (gate.ts) answers instead of applying another service's
 * command: the command was stamped with an older auth revision, came with no
 * user while auth is on, or asks for what the user may not do. Nothing changed.
 */
export interface AuthDeniedResult {
  readonly type: 'authDenied';
  readonly error: 'oldRevision' | 'userEmpty' | 'permissionDenied';
  readonly message: string;
}

export function authDenied(error: AuthDeniedResult['error']): AuthDeniedResult {
  return { type: 'authDenied', error, message: AUTH_ERROR_MESSAGES[error] };
}

/** Whether a service's result is the auth gate's refusal. */
export function isAuthDenied(r: unknown): r is AuthDeniedResult {
  return typeof r === 'object' && r !== null && (r as { type?: unknown }).type === 'authDenied';
}
