// The auth gate against an independent model. Random runs of auth changes
// (by root, some with a stale auth revision, some unstamped) and of stamped
// and unstamped puts go through the service multiplexer; a model that knows
// nothing of spans or caches (single keys and prefixes, checked by string
// comparison) says for each put whether it may apply. The multiplexer must
// apply exactly the puts the model allows, and two replicas fed the same
// commands must end in the same state.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { encodeCommand } from '../kv/codec.js';
import { KvStateMachine } from '../kv/state-machine.js';
import { encodeServiceCommand, ServiceStateMachine, stampCommand } from '../machine.js';
import { encodeAuthCommand, SYSTEM_STAMP, type AuthStamp } from './codec.js';
import { AuthGate } from './gate.js';
import { kvApplyCheck } from './needs.js';
import { AuthStateMachine } from './state-machine.js';
import { isAuthDenied, type AuthCommand, type PermissionType } from './types.js';

const enc = new TextEncoder();
const KEY = new Uint8Array(32).fill(1);
const USERS = ['u1', 'u2'] as const;
const ROLES = ['r1', 'r2'] as const;
const KEYS = ['a', 'ab', 'b', 'ba', 'c'] as const;

/** The end of a prefix range, as etcdctl --prefix computes it (no key here ends in 0xff). */
function prefixEnd(p: string): string {
  return p.slice(0, -1) + String.fromCharCode(p.charCodeAt(p.length - 1) + 1);
}

type Op =
  | { readonly t: 'grant'; readonly role: string; readonly type: PermissionType; readonly key: string; readonly prefix: boolean; readonly stale: boolean }
  | { readonly t: 'revoke'; readonly role: string; readonly key: string; readonly prefix: boolean }
  | { readonly t: 'userRole'; readonly user: string; readonly role: string; readonly grant: boolean }
  | { readonly t: 'toggle'; readonly on: boolean }
  | { readonly t: 'put'; readonly by: 'anon' | 'system' | string; readonly key: string; readonly stale: boolean };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ t: fc.constant('grant' as const), role: fc.constantFrom(...ROLES), type: fc.constantFrom<PermissionType>('read', 'write', 'readwrite'), key: fc.constantFrom(...KEYS), prefix: fc.boolean(), stale: fc.boolean() }, { noNullPrototype: true }),
  fc.record({ t: fc.constant('revoke' as const), role: fc.constantFrom(...ROLES), key: fc.constantFrom(...KEYS), prefix: fc.boolean() }, { noNullPrototype: true }),
  fc.record({ t: fc.constant('userRole' as const), user: fc.constantFrom(...USERS), role: fc.constantFrom(...ROLES), grant: fc.boolean() }, { noNullPrototype: true }),
  fc.record({ t: fc.constant('toggle' as const), on: fc.boolean() }, { noNullPrototype: true }),
  fc.record({ t: fc.constant('put' as const), by: fc.constantFrom('anon', 'system', 'root', ...USERS), key: fc.constantFrom(...KEYS), stale: fc.boolean() }, { noNullPrototype: true }),
  fc.record({ t: fc.constant('put' as const), by: fc.constantFrom(...USERS), key: fc.constantFrom(...KEYS), stale: fc.constant(false) }, { noNullPrototype: true }),
);

/** The model: what a put needs, by string comparison over single keys and prefixes. */
class Model {
  enabled = false;
  revision = 0;
  readonly roles = new Map<string, { type: PermissionType; key: string; prefix: boolean }[]>();
  readonly users = new Map<string, Set<string>>();

  mayWrite(user: string, key: string): boolean {
    const roles = this.users.get(user);
    if (roles === undefined) return false;
    if (roles.has('root')) return true;
    for (const r of roles) {
      for (const p of this.roles.get(r) ?? []) {
        if (p.type === 'read') continue;
        if (p.prefix ? key.startsWith(p.key) : key === p.key) return true;
      }
    }
    return false;
  }
}

function node(): { mux: ServiceStateMachine; kv: KvStateMachine; auth: AuthStateMachine } {
  const kv = new KvStateMachine();
  const auth = new AuthStateMachine();
  const mux = new ServiceStateMachine().register('kv', kv).register('auth', auth).setGate(new AuthGate(auth, { kv: kvApplyCheck(auth, kv.store) }));
  return { mux, kv, auth };
}

const authCmd = (c: AuthCommand): Uint8Array => encodeServiceCommand('auth', encodeAuthCommand(c));
const put = (key: string, n: number): Uint8Array => encodeCommand({
  type: 'put', request: { key: enc.encode(key), value: enc.encode(String(n)), lease: 0, prevKv: false, ignoreValue: false, ignoreLease: false },
});

describe('the auth gate against a model', () => {
  it('applies exactly the puts the model allows, and replicas agree', () => {
    fc.assert(fc.property(fc.array(opArb, { minLength: 1, maxLength: 60 }), (ops) => {
      const a = node();
      const b = node();
      const model = new Model();
      let index = 0;
      const both = (bytes: Uint8Array): unknown => {
        index++;
        const ra = a.mux.apply(bytes, index);
        assert.deepEqual(b.mux.apply(bytes, index), ra, 'replicas answered alike');
        return ra;
      };
      /** A root change at the current revision: the model mirrors its effect when it applied. */
      const asRoot = (c: AuthCommand, stale = false): boolean => {
        const stamp: AuthStamp = { kind: 'user', user: 'root', revision: Math.max(0, a.auth.revision - (stale ? 1 : 0)) };
        const r = both(stampCommand(stamp, authCmd(c))) as { type: string };
        if (r.type === 'ok' && a.auth.revision !== model.revision) model.revision = a.auth.revision;
        return r.type === 'ok';
      };
      // root and the roles exist from the start (auth off)
      for (const c of [
        { type: 'userAdd', name: 'root', passwordHash: 'h' }, { type: 'roleAdd', name: 'root' }, { type: 'userGrantRole', user: 'root', role: 'root' },
        ...ROLES.map((name) => ({ type: 'roleAdd', name })), ...USERS.map((name) => ({ type: 'userAdd', name, passwordHash: 'h' })),
      ] as AuthCommand[]) assert.ok(asRoot(c));
      model.users.set('root', new Set(['root']));
      for (const u of USERS) model.users.set(u, new Set());
      for (const r of ROLES) model.roles.set(r, []);
      let n = 0;
      for (const op of ops) {
        switch (op.t) {
          case 'grant': {
            const perm = { resource: 'kv' as const, type: op.type, key: enc.encode(op.key), rangeEnd: enc.encode(op.prefix ? prefixEnd(op.key) : '') };
            const staleRefused = op.stale && model.enabled && model.revision > 0;
            if (asRoot({ type: 'roleGrantPermission', role: op.role, permission: perm }, op.stale)) {
              assert.ok(!staleRefused, 'a stale stamp applied while auth was on');
              const list = (model.roles.get(op.role) ?? []).filter((p) => !(p.key === op.key && p.prefix === op.prefix));
              list.push({ type: op.type, key: op.key, prefix: op.prefix });
              model.roles.set(op.role, list);
            } else {
              assert.ok(staleRefused, 'a grant by root at the current revision was refused');
            }
            break;
          }
          case 'revoke': {
            const list = model.roles.get(op.role) ?? [];
            const had = list.some((p) => p.key === op.key && p.prefix === op.prefix);
            const applied = asRoot({ type: 'roleRevokePermission', role: op.role, resource: 'kv', key: enc.encode(op.key), rangeEnd: enc.encode(op.prefix ? prefixEnd(op.key) : '') });
            assert.equal(applied, had);
            model.roles.set(op.role, list.filter((p) => !(p.key === op.key && p.prefix === op.prefix)));
            break;
          }
          case 'userRole': {
            const roles = model.users.get(op.user) as Set<string>;
            const applied = asRoot(op.grant ? { type: 'userGrantRole', user: op.user, role: op.role } : { type: 'userRevokeRole', user: op.user, role: op.role });
            assert.equal(applied, op.grant || roles.has(op.role));
            if (op.grant) roles.add(op.role);
            else roles.delete(op.role);
            break;
          }
          case 'toggle':
            assert.ok(asRoot(op.on ? { type: 'enable', tokenKey: KEY } : { type: 'disable' }));
            model.enabled = op.on;
            break;
          case 'put': {
            n++;
            const bytes = put(op.key, n);
            const stamped = op.by === 'anon' ? bytes
              : stampCommand(op.by === 'system' ? SYSTEM_STAMP : { kind: 'user', user: op.by, revision: Math.max(0, a.auth.revision - (op.stale ? 1 : 0)) }, bytes);
            const before = a.kv.store.revision;
            const r = both(stamped);
            const allowed = !model.enabled || op.by === 'system'
              || (op.by !== 'anon' && !(op.stale && a.auth.revision > 0) && model.mayWrite(op.by, op.key));
            assert.equal(!isAuthDenied(r), allowed, `put ${op.key} by ${op.by}${op.stale ? ' (stale)' : ''} with auth ${model.enabled ? 'on' : 'off'}: ${JSON.stringify(r)}`);
            assert.equal(a.kv.store.revision, allowed ? before + 1 : before, 'a refused put changed nothing; an allowed one applied');
            break;
          }
        }
      }
      assert.deepEqual(a.mux.snapshot(), b.mux.snapshot());
    }), { numRuns: 400 });
  });
});
