// Tests of the configuration encoding shared by the wire and the disk: golden
// bytes, round trips, and the rejections (invalid configurations, unknown
// versions, repeated ids, trailing bytes).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nodeId } from '../protocol/ids.js';
import { decodeConfiguration, encodeConfiguration } from './configuration.js';
import { CodecError } from './errors.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const bytes = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'));

test('golden bytes: version 1, voter ids, observer ids; decoding gives the same configuration back', () => {
  const c = { voters: [nodeId('a'), nodeId('b')], observers: [nodeId('c')] };
  assert.equal(hex(encodeConfiguration(c)), '010201610162010163');
  assert.deepEqual(decodeConfiguration(encodeConfiguration(c)), c);
  const none = { voters: [nodeId('nœud')], observers: [] };
  assert.deepEqual(decodeConfiguration(encodeConfiguration(none)), none);
});

test('invalid configurations are refused both ways', () => {
  assert.throws(() => encodeConfiguration({ voters: [], observers: [] }), CodecError);
  assert.throws(() => encodeConfiguration({ voters: [nodeId('a')], observers: [nodeId('a')] }), CodecError);
  const cases: Array<[string, RegExp]> = [
    ['0901016100', /unknown configuration version 9/],
    ['010000', /at least one voter/],
    ['01020161016100', /listed twice/],
    ['0101016100ff', /trailing/],
    ['0101', /cannot fit/],
    ['01010261', /truncated/],
  ];
  for (const [h, why] of cases) {
    assert.throws(() => decodeConfiguration(bytes(h)), (e: unknown) => e instanceof CodecError && why.test(e.message), h);
  }
});

test('version 2 carries directory ids; version 1 still decodes and is still written without them', () => {
  const c = { voters: [nodeId('a'), nodeId('b')], observers: [nodeId('c')], dirIds: [{ node: nodeId('b'), dirId: 5 }, { node: nodeId('c'), dirId: 300 }] };
  assert.equal(hex(encodeConfiguration(c)), '020201610162010163020162050163ac02');
  assert.deepEqual(decodeConfiguration(encodeConfiguration(c)), c);
  assert.deepEqual(decodeConfiguration(bytes('010201610162010163')), { voters: [nodeId('a'), nodeId('b')], observers: [nodeId('c')] });
  const top = { voters: [nodeId('a')], observers: [], dirIds: [{ node: nodeId('a'), dirId: 2 ** 48 - 1 }] };
  assert.deepEqual(decodeConfiguration(encodeConfiguration(top)), top);
});

test('directory ids that break the invariants are refused both ways', () => {
  const a = nodeId('a');
  assert.throws(() => encodeConfiguration({ voters: [a], observers: [], dirIds: [] }), CodecError);
  assert.throws(() => encodeConfiguration({ voters: [a], observers: [], dirIds: [{ node: nodeId('x'), dirId: 1 }] }), CodecError);
  assert.throws(() => encodeConfiguration({ voters: [a], observers: [], dirIds: [{ node: a, dirId: 0 }] }), CodecError);
  assert.throws(() => encodeConfiguration({ voters: [a], observers: [], dirIds: [{ node: a, dirId: 2 ** 48 }] }), CodecError);
  assert.throws(() => encodeConfiguration({ voters: [a], observers: [], dirIds: [{ node: a, dirId: 1 }, { node: a, dirId: 2 }] }), CodecError);
  const cases: Array<[string, RegExp]> = [
    ['020101610000', /at least one directory id/],
    ['02010161000101610101', /trailing/],
    ['020101610001017801', /not a member/],
    ['020101610001016100', /not an integer in \[1, 2\^48\)/],
    ['020101610002016101016102', /two directory ids/],
    ['020101610001016180808080808040', /not an integer in \[1, 2\^48\)/],
    ['0301016100', /unknown configuration version 3/],
  ];
  for (const [h, why] of cases) {
    assert.throws(() => decodeConfiguration(bytes(h)), (e: unknown) => e instanceof CodecError && why.test(e.message), h);
  }
});
