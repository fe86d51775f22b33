// The Auth service's requests are marked when a string field's bytes are not
// UTF-8 (wire-utf8.ts): protobufjs would otherwise hand the handler a string
// with U+FFFD where the bad bytes were.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import { loadEtcdProtos } from './server.js';
import { checkUtf8Strings, firstMalformedUtf8Field, MALFORMED_UTF8, type MaybeMalformedUtf8 } from './wire-utf8.js';

const auth = (loadEtcdProtos()['etcdserverpb'] as grpc.GrpcObject)['Auth'] as grpc.ServiceClientConstructor;
const checked = checkUtf8Strings(auth.service);

/** Encodes `req` as the client would, and decodes it as the checked server does. */
function roundTrip(method: string, req: object): MaybeMalformedUtf8 & Record<string, unknown> {
  const def = checked[method] as grpc.MethodDefinition<object, unknown>;
  return def.requestDeserialize(def.requestSerialize(req)) as MaybeMalformedUtf8 & Record<string, unknown>;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

describe('wire-utf8', () => {
  it('marks a request whose name or password came as ill-formed UTF-8, naming the field', () => {
    assert.equal(roundTrip('UserAdd', { name: 'x\uD800', password: 'pw' })[MALFORMED_UTF8], 'name');
    assert.equal(roundTrip('UserAdd', { name: 'bob', password: '\uDFFFpw' })[MALFORMED_UTF8], 'password');
    assert.equal(roundTrip('UserGrantRole', { user: 'bob', role: '\uDC00' })[MALFORMED_UTF8], 'role');
    const plain = roundTrip('UserAdd', { name: 'b\uFFFDb 😀', password: 'pw' });
    assert.equal(plain[MALFORMED_UTF8], undefined);
    assert.equal(plain['name'], 'b\uFFFDb 😀');
  });

  it('leaves bytes fields alone: a permission key need not be UTF-8', () => {
    const r = roundTrip('RoleRevokePermission', { role: 'r', key: Buffer.from([0xff, 0xfe]), range_end: Buffer.from([0xc0]) });
    assert.equal(r[MALFORMED_UTF8], undefined);
    assert.deepEqual(r['key'], Buffer.from([0xff, 0xfe]));
    const g = roundTrip('RoleGrantPermission', { name: 'r', perm: { permType: 'READ', key: Buffer.from([0xff]) } });
    assert.equal(g[MALFORMED_UTF8], undefined);
  });

  it('reads raw bytes: a stray 0xFF in field 1 is caught, in an unlisted field it is not; a truncated message is left to the decoder', () => {
    const fields = new Map([[1, 'name']]);
    assert.equal(firstMalformedUtf8Field(Buffer.from([0x0a, 0x02, 0x61, 0xff]), fields), 'name');
    assert.equal(firstMalformedUtf8Field(Buffer.from([0x12, 0x01, 0xff, 0x0a, 0x01, 0x61]), fields), null);
    assert.equal(firstMalformedUtf8Field(Buffer.from([0x08, 0x96, 0x01, 0x0a, 0x01, 0xff]), fields), 'name'); // after a varint field
    assert.equal(firstMalformedUtf8Field(Buffer.from([0x0a, 0x05, 0xff]), fields), null);
    assert.equal(firstMalformedUtf8Field(Buffer.from([0x0b]), fields), null); // a group: not ours to parse
  });

  it('marks exactly the strings with a lone surrogate (what encodes to ill-formed UTF-8)', () => {
    const unit = fc.integer({ min: 0, max: 0xffff }).map((u) => String.fromCharCode(u));
    fc.assert(fc.property(fc.string({ unit, maxLength: 12 }), fc.string({ maxLength: 6 }), (name, password) => {
      const r = roundTrip('Authenticate', { name, password });
      assert.equal(r[MALFORMED_UTF8] === 'name', LONE_SURROGATE.test(name));
      if (r[MALFORMED_UTF8] === undefined) assert.equal(r['name'], name);
    }), { numRuns: 500 });
  });
});
