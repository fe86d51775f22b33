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
    ['0201016100', /unknown configuration version 2/],
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
