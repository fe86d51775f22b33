// The auth service's state machine against etcd 3.4's rules (auth/store.go),
// its codec (round trips, canonical bytes, malformed input), the permission
// check (against a brute-force model), and the gate in front of the other
// services (stamps, revisions, unstamped commands, planted bugs).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { encodeCommand } from '../kv/codec.js';
import { KvStateMachine } from '../kv/state-machine.js';
import { keySpan, idOf } from '../kv/key-range.js';
import { encodeServiceCommand, ServiceStateMachine, stampCommand, STAMP_TAG } from '../machine.js';
import {
  AuthCodecError, decodeAuthCommand, decodeAuthSnapshot, decodeStampHeader, encodeAuthCommand, encodeAuthSnapshot, encodeStampHeader, SYSTEM_STAMP,
  type AuthStamp,
} from './codec.js';
import { AuthGate } from './gate.js';
import { kvApplyCheck } from './needs.js';
import { grantedSpans, spansCover } from './permissions.js';
import { AuthStateMachine } from './state-machine.js';
import { isAuthDenied, type AuthCommand, type AuthResult, type Permission, type PermissionResource, type PermissionType } from './types.js';

const enc = new TextEncoder();
const b = (s: string): Uint8Array => enc.encode(s);
const KEY = new Uint8Array(32).fill(7);
let index = 0;

function apply(m: AuthStateMachine, cmd: AuthCommand): AuthResult {
  return m.apply(encodeAuthCommand(cmd), ++index);
}

function ok(r: AuthResult): number {
  assert.equal(r.type, 'ok', r.type === 'error' ? r.message : '');
  return (r as { revision: number }).revision;
}

function err(r: AuthResult, code: string): void {
  assert.equal(r.type, 'error');
  assert.equal((r as { error: string }).error, code);
}

const perm = (type: PermissionType, key: string, rangeEnd = '', resource: PermissionResource = 'kv'): Permission => ({ resource, type, key: b(key), rangeEnd: b(rangeEnd) });

/** root with the root role, a reader role on /app/ (prefix), user alice with it. */
function seeded(): AuthStateMachine {
  const m = new AuthStateMachine();
  ok(apply(m, { type: 'userAdd', name: 'root', passwordHash: 'h-root' }));
  ok(apply(m, { type: 'roleAdd', name: 'root' }));
  ok(apply(m, { type: 'userGrantRole', user: 'root', role: 'root' }));
  ok(apply(m, { type: 'roleAdd', name: 'reader' }));
  ok(apply(m, { type: 'roleGrantPermission', role: 'reader', permission: perm('read', '/app/', '/app0') }));
  ok(apply(m, { type: 'userAdd', name: 'alice', passwordHash: 'h-alice' }));
  ok(apply(m, { type: 'userGrantRole', user: 'alice', role: 'reader' }));
  return m;
}

describe('auth state machine (etcd 3.4 rules)', () => {
  it('enabling needs a root user holding the root role, as etcdctl auth enable expects', () => {
    const m = new AuthStateMachine();
    err(apply(m, { type: 'enable', tokenKey: KEY }), 'rootUserNotExist');
    ok(apply(m, { type: 'userAdd', name: 'root', passwordHash: 'h' }));
    err(apply(m, { type: 'enable', tokenKey: KEY }), 'rootRoleNotExist');
    // etcdctl's answer to rootRoleNotExist: RoleAdd root, UserGrantRole root root, enable again
    ok(apply(m, { type: 'roleAdd', name: 'root' }));
    ok(apply(m, { type: 'userGrantRole', user: 'root', role: 'root' }));
    assert.equal(m.enabled, false);
    const rev = ok(apply(m, { type: 'enable', tokenKey: KEY }));
    assert.equal(m.enabled, true);
    assert.deepEqual(m.tokenKey, KEY);
    assert.equal(ok(apply(m, { type: 'enable', tokenKey: KEY })), rev, 'enabling again changes nothing');
  });

  it('every change moves the revision by one; refusals and no-ops leave it', () => {
    const m = seeded();
    const r0 = m.revision;
    assert.equal(ok(apply(m, { type: 'roleAdd', name: 'w' })), r0 + 1);
    err(apply(m, { type: 'roleAdd', name: 'w' }), 'roleAlreadyExist');
    assert.equal(m.revision, r0 + 1);
    assert.equal(ok(apply(m, { type: 'userGrantRole', user: 'alice', role: 'reader' })), r0 + 1, 'granting a held role is a no-op, as etcd');
  });

  it('refuses what etcd refuses, with etcd\'s errors', () => {
    const m = seeded();
    err(apply(m, { type: 'userAdd', name: '', passwordHash: 'h' }), 'userEmpty');
    err(apply(m, { type: 'userAdd', name: 'alice', passwordHash: 'h' }), 'userAlreadyExist');
    err(apply(m, { type: 'roleAdd', name: '' }), 'roleEmpty');
    err(apply(m, { type: 'userDelete', name: 'bob' }), 'userNotFound');
    err(apply(m, { type: 'userChangePassword', name: 'bob', passwordHash: 'h' }), 'userNotFound');
    err(apply(m, { type: 'userGrantRole', user: 'bob', role: 'reader' }), 'userNotFound');
    err(apply(m, { type: 'userGrantRole', user: 'alice', role: 'nope' }), 'roleNotFound');
    err(apply(m, { type: 'userRevokeRole', user: 'alice', role: 'root' }), 'roleNotGranted');
    err(apply(m, { type: 'roleDelete', name: 'nope' }), 'roleNotFound');
    err(apply(m, { type: 'roleRevokePermission', role: 'reader', resource: 'kv', key: b('/x'), rangeEnd: b('') }), 'permissionNotGranted');
    err(apply(m, { type: 'roleRevokePermission', role: 'reader', resource: 'queue', key: b('/app/'), rangeEnd: b('/app0') }), 'permissionNotGranted');
    err(apply(m, { type: 'roleGrantPermission', role: 'nope', permission: perm('read', 'k') }), 'roleNotFound');
  });

  it('once auth is on, root and its root role stay', () => {
    const m = seeded();
    ok(apply(m, { type: 'enable', tokenKey: KEY }));
    err(apply(m, { type: 'userDelete', name: 'root' }), 'invalidAuthMgmt');
    err(apply(m, { type: 'userRevokeRole', user: 'root', role: 'root' }), 'invalidAuthMgmt');
    err(apply(m, { type: 'roleDelete', name: 'root' }), 'invalidAuthMgmt');
    ok(apply(m, { type: 'disable' }));
    ok(apply(m, { type: 'userRevokeRole', user: 'root', role: 'root' }));
  });

  it('a password change or a re-add gives the user a new password revision (old tokens stop holding)', () => {
    const m = seeded();
    const first = m.user('alice')?.passwordRevision;
    ok(apply(m, { type: 'userChangePassword', name: 'alice', passwordHash: 'h2' }));
    const second = m.user('alice')?.passwordRevision;
    assert.notEqual(second, first);
    ok(apply(m, { type: 'userDelete', name: 'alice' }));
    ok(apply(m, { type: 'userAdd', name: 'alice', passwordHash: 'h3' }));
    assert.notEqual(m.user('alice')?.passwordRevision, second);
    assert.deepEqual(m.user('alice')?.roles, [], 'a re-added user starts with no roles');
  });

  it('deleting a role takes it from every user; regranting a permission on the same range replaces it', () => {
    const m = seeded();
    ok(apply(m, { type: 'roleGrantPermission', role: 'reader', permission: perm('readwrite', '/app/', '/app0') }));
    assert.deepEqual(m.role('reader')?.permissions.map((p) => p.type), ['readwrite']);
    assert.equal(m.permitted('alice', 'kv', 'write', b('/app/x'), b('')), true);
    ok(apply(m, { type: 'roleDelete', name: 'reader' }));
    assert.deepEqual(m.user('alice')?.roles, []);
    assert.equal(m.permitted('alice', 'kv', 'read', b('/app/x'), b('')), false);
  });

  it('checks key permissions as etcd: keys, ranges, prefixes, from-key; root may do all; unknown users nothing', () => {
    const m = seeded();
    assert.equal(m.permitted('alice', 'kv', 'read', b('/app/a'), b('')), true);
    assert.equal(m.permitted('alice', 'kv', 'read', b('/app/'), b('/app0')), true, 'the whole prefix');
    assert.equal(m.permitted('alice', 'kv', 'read', b('/app/'), b('\u0000')), false, 'from-key reaches past the prefix');
    assert.equal(m.permitted('alice', 'kv', 'write', b('/app/a'), b('')), false);
    assert.equal(m.permitted('alice', 'kv', 'read', b('/secret'), b('')), false);
    assert.equal(m.permitted('alice', 'queue', 'read', b('/app/a'), b('')), false, 'a key permission is not a queue permission');
    assert.equal(m.permitted('root', 'kv', 'write', b('\u0000'), b('\u0000')), true);
    assert.equal(m.permitted('bob', 'kv', 'read', b('/app/a'), b('')), false);
  });

  it('snapshots and restores every part of the state, and tells listeners', () => {
    const m = seeded();
    ok(apply(m, { type: 'enable', tokenKey: KEY }));
    ok(apply(m, { type: 'userAdd', name: 'cert-only', passwordHash: null }));
    const copy = new AuthStateMachine();
    let told = 0;
    copy.onChange(() => told++);
    copy.restore(m.snapshot());
    assert.equal(told, 1);
    assert.deepEqual(copy.snapshot(), m.snapshot());
    assert.equal(copy.enabled, true);
    assert.equal(copy.revision, m.revision);
    assert.equal(copy.user('cert-only')?.passwordHash, null);
    assert.equal(copy.permitted('alice', 'kv', 'read', b('/app/z'), b('')), true);
  });

  it('a malformed command changes nothing, alike on every replica', () => {
    const m = seeded();
    const before = m.snapshot();
    const r = m.apply(new Uint8Array([1, 99]), 1);
    err(r, 'malformed');
    assert.deepEqual(m.snapshot(), before);
  });
});

const nameArb = fc.string({ minLength: 0, maxLength: 8 });
const bytesArb = fc.uint8Array({ maxLength: 6 });
const permArb: fc.Arbitrary<Permission> = fc.record({
  resource: fc.constantFrom<PermissionResource>('kv', 'queue', 'metadata'),
  type: fc.constantFrom<PermissionType>('read', 'write', 'readwrite'),
  key: bytesArb, rangeEnd: bytesArb,
}, { noNullPrototype: true });
const commandArb: fc.Arbitrary<AuthCommand> = fc.oneof(
  fc.constant<AuthCommand>({ type: 'enable', tokenKey: KEY }),
  fc.constant<AuthCommand>({ type: 'disable' }),
  fc.record({ type: fc.constant('userAdd' as const), name: nameArb, passwordHash: fc.option(nameArb, { nil: null }) }, { noNullPrototype: true }),
  fc.record({ type: fc.constant('userDelete' as const), name: nameArb }, { noNullPrototype: true }),
  fc.record({ type: fc.constant('userChangePassword' as const), name: nameArb, passwordHash: nameArb }, { noNullPrototype: true }),
  fc.record({ type: fc.constantFrom('userGrantRole' as const, 'userRevokeRole' as const), user: nameArb, role: nameArb }, { noNullPrototype: true }),
  fc.record({ type: fc.constantFrom('roleAdd' as const, 'roleDelete' as const), name: nameArb }, { noNullPrototype: true }),
  fc.record({ type: fc.constant('roleGrantPermission' as const), role: nameArb, permission: permArb }, { noNullPrototype: true }),
  fc.record({ type: fc.constant('roleRevokePermission' as const), role: nameArb, resource: fc.constantFrom<PermissionResource>('kv', 'queue'), key: bytesArb, rangeEnd: bytesArb }, { noNullPrototype: true }),
);

describe('auth codec', () => {
  it('round-trips every command, canonically', () => {
    fc.assert(fc.property(commandArb, (cmd) => {
      const bytes = encodeAuthCommand(cmd);
      const back = decodeAuthCommand(bytes);
      assert.deepEqual(encodeAuthCommand(back), bytes);
    }), { numRuns: 1000 });
  });

  it('any bytes decode to a command that re-encodes to them, or give an AuthCodecError', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 40 }), (bytes) => {
      let cmd: AuthCommand;
      try {
        cmd = decodeAuthCommand(bytes);
      } catch (e) {
        assert.ok(e instanceof AuthCodecError, String(e));
        return;
      }
      assert.deepEqual(encodeAuthCommand(cmd), bytes);
    }), { numRuns: 3000 });
  });

  it('stamps round-trip and refuse garbage', () => {
    for (const s of [SYSTEM_STAMP, { kind: 'user', user: 'alice', revision: 12 } as AuthStamp]) {
      const h = encodeStampHeader(s);
      const d = decodeStampHeader(h, 0, h.byteLength);
      assert.deepEqual(d.stamp, s);
      assert.equal(d.innerStart, h.byteLength);
    }
    assert.throws(() => decodeStampHeader(new Uint8Array([1, 0]), 0, 2), AuthCodecError);
    assert.throws(() => decodeStampHeader(new Uint8Array([9, 2]), 0, 2), AuthCodecError);
  });

  it('any sequence of commands applied to two machines gives equal state and equal snapshots (determinism), and snapshots round-trip', () => {
    fc.assert(fc.property(fc.array(commandArb, { maxLength: 30 }), (cmds) => {
      const a = new AuthStateMachine();
      const c = new AuthStateMachine();
      for (const cmd of cmds) {
        const bytes = encodeAuthCommand(cmd);
        assert.deepEqual(a.apply(bytes, 1), c.apply(bytes, 1));
      }
      const snap = a.snapshot();
      assert.deepEqual(snap, c.snapshot());
      assert.deepEqual(encodeAuthSnapshot(decodeAuthSnapshot(snap)), snap);
    }), { numRuns: 300 });
  });
});

describe('permission coverage', () => {
  /** The model: every key of a small universe in the requested span must be in some granted span. */
  const universe: string[] = [];
  for (const c1 of ['', 'a', 'b', 'c']) for (const c2 of ['', '\u0000', 'a', 'b']) universe.push(c1 + c2);
  const keyArb = fc.constantFrom(...universe.filter((k) => k !== ''));
  const spanArg = fc.tuple(keyArb, fc.constantFrom('', '\u0000', 'a', 'b', 'bb', 'c', 'd'));
  it('agrees with a brute-force check over a small key universe', () => {
    fc.assert(fc.property(fc.array(spanArg, { maxLength: 5 }), spanArg, (grants, [wk, we]) => {
      const perms: Permission[] = grants.map(([k, e]) => perm('read', k, e));
      const spans = grantedSpans(perms, 'kv', 'read');
      const want = keySpan(b(wk), b(we));
      const got = spansCover(spans, want);
      // brute force: keys of the universe (and some longer ones) inside `want`, each inside a granted span
      const probe = [...universe, ...universe.map((k) => k + 'z'), 'zz', 'c\u0000\u0000'].filter((k) => k >= want.lo && (want.hi === null || k < want.hi));
      const empty = want.hi !== null && want.hi <= want.lo;
      const inGrant = (k: string): boolean => spans.some((s) => k >= s.lo && (s.hi === null || k < s.hi));
      const model = empty ? inGrant(want.lo) : probe.every(inGrant) && (want.hi !== null || spans.some((s) => s.hi === null));
      if (got) assert.ok(model, `covered, but a key is not granted: grants ${JSON.stringify(grants)} want ${JSON.stringify([wk, we])}`);
      else if (model) {
        // the model only probes a finite universe: a "no" must point at a gap the sweep found; check the sweep's gap exists
        assert.ok(!empty, 'an empty span the model allows must be allowed');
      }
    }), { numRuns: 3000 });
  });

  it('sees a gap between two grants, and a union that closes it', () => {
    const a = grantedSpans([perm('read', 'a', 'b'), perm('read', 'c', 'd')], 'kv', 'read');
    assert.equal(spansCover(a, keySpan(b('a'), b('d'))), false);
    const c = grantedSpans([perm('read', 'a', 'b'), perm('read', 'b', 'd')], 'kv', 'read');
    assert.equal(spansCover(c, keySpan(b('a'), b('d'))), true);
    assert.equal(spansCover(c, { lo: idOf(b('a')), hi: null }), false);
  });
});

describe('the auth gate in the service multiplexer', () => {
  function node(): { mux: ServiceStateMachine; auth: AuthStateMachine; kv: KvStateMachine; gate: AuthGate } {
    const kv = new KvStateMachine();
    const auth = seeded();
    const gate = new AuthGate(auth, { kv: kvApplyCheck(auth, kv.store) });
    const mux = new ServiceStateMachine().register('kv', kv).register('auth', auth).setGate(gate);
    return { mux, auth, kv, gate };
  }
  const put = (key: string): Uint8Array => encodeCommand({ type: 'put', request: { key: b(key), value: b('v'), lease: 0, prevKv: false, ignoreValue: false, ignoreLease: false } });
  const enable = (mux: ServiceStateMachine): unknown => mux.apply(encodeServiceCommand('auth', encodeAuthCommand({ type: 'enable', tokenKey: KEY })), 1);

  it('lets everything through while auth is off, stamped or not', () => {
    const { mux, kv, auth } = node();
    assert.equal((mux.apply(put('/x'), 1) as { type: string }).type, 'put');
    assert.equal((mux.apply(stampCommand({ kind: 'user', user: 'nobody', revision: 0 }, put('/y')), 2) as { type: string }).type, 'put');
    assert.equal(kv.store.revision, 3);
    assert.equal(auth.enabled, false);
  });

  it('while auth is on: refuses unstamped commands, stale stamps and denied users; lets root, allowed users and the system through', () => {
    const { mux, auth, kv, gate } = node();
    enable(mux);
    const rev = auth.revision;
    const before = kv.store.revision;
    const refused = (r: unknown, error: string): void => {
      assert.ok(isAuthDenied(r), JSON.stringify(r));
      assert.equal(r.error, error);
    };
    refused(mux.apply(put('/app/x'), 2), 'userEmpty');
    refused(mux.apply(stampCommand({ kind: 'user', user: 'alice', revision: rev }, put('/app/x')), 3), 'permissionDenied');
    refused(mux.apply(stampCommand({ kind: 'user', user: 'root', revision: rev - 1 }, put('/app/x')), 4), 'oldRevision');
    refused(mux.apply(stampCommand({ kind: 'user', user: 'alice', revision: rev }, encodeServiceCommand('auth', encodeAuthCommand({ type: 'disable' }))), 5), 'permissionDenied');
    assert.equal(kv.store.revision, before, 'nothing a refused command asked for happened');
    assert.equal(auth.enabled, true);
    assert.equal((mux.apply(stampCommand({ kind: 'user', user: 'root', revision: rev }, put('/app/x')), 6) as { type: string }).type, 'put');
    assert.equal((mux.apply(stampCommand(SYSTEM_STAMP, put('/sys')), 7) as { type: string }).type, 'put');
    // alice, granted write, may now; her stamp from before the grant is stale
    mux.apply(stampCommand({ kind: 'user', user: 'root', revision: rev }, encodeServiceCommand('auth', encodeAuthCommand({ type: 'roleGrantPermission', role: 'reader', permission: perm('readwrite', '/app/', '/app0') }))), 8);
    refused(mux.apply(stampCommand({ kind: 'user', user: 'alice', revision: rev }, put('/app/y')), 9), 'oldRevision');
    assert.equal((mux.apply(stampCommand({ kind: 'user', user: 'alice', revision: auth.revision }, put('/app/y')), 10) as { type: string }).type, 'put');
    assert.deepEqual(gate.refused, { oldRevision: 2, userEmpty: 1, permissionDenied: 2 });
  });

  it('refuses nested stamps and malformed stamps without applying anything', () => {
    const { mux, kv } = node();
    const nested = stampCommand(SYSTEM_STAMP, stampCommand(SYSTEM_STAMP, put('/x')));
    assert.equal((mux.apply(nested, 1) as { type: string }).type, 'error');
    assert.equal((mux.apply(new Uint8Array([STAMP_TAG, 7, 7]), 2) as { type: string }).type, 'error');
    assert.equal(kv.store.revision, 1);
  });

  it('planted bug: a gate that ignores stamps lets a denied write through, and the check above catches it', () => {
    const kv = new KvStateMachine();
    const auth = seeded();
    const mux = new ServiceStateMachine().register('kv', kv).register('auth', auth).setGate({ admit: () => null });
    enable(mux);
    const r = mux.apply(stampCommand({ kind: 'user', user: 'alice', revision: auth.revision }, put('/app/x')), 2);
    assert.equal(isAuthDenied(r), false, 'without the gate the write applies');
    assert.equal(kv.store.revision, 2);
  });
});
