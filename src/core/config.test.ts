// Configuration checks: a configuration that cannot work is refused with a
// ConfigError that says why, before any node starts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nodeId } from '../protocol/ids.js';
import { Prng } from '../util/prng.js';
import { ConfigError, makeConfig } from './config.js';

const base = { id: nodeId('a'), voters: [nodeId('a'), nodeId('b'), nodeId('c')], replication: 'pull' as const, random: new Prng(1) };

test('defaults fill in a valid configuration', () => {
  const c = makeConfig(base);
  assert.equal(c.preVote, true);
  assert.equal(c.checkQuorum, true);
  assert.deepEqual(c.observers, []);
});

test('invalid configurations are refused with the reason', () => {
  const cases: Array<[Partial<Parameters<typeof makeConfig>[0]>, RegExp]> = [
    [{ voters: [] }, /at least one voter/],
    [{ observers: [nodeId('z'), nodeId('z')] }, /observers repeat/],
    [{ observers: [nodeId('a')] }, /both voter and observer/],
    [{ electionTimeoutMinTicks: 10, electionTimeoutMaxTicks: 10 }, /\[min, max\)/],
    [{ heartbeatIntervalTicks: 10 }, /heartbeatIntervalTicks/],
    [{ fetchMaxWaitTicks: 0 }, /fetchMaxWaitTicks must be in \[1/],
    [{ fetchMaxWaitTicks: 10 }, /fetchMaxWaitTicks/],
    [{ maxUncommittedBytes: 0 }, /limits must be positive/],
    [{ directoryId: 0 }, /directoryId must be an integer in \[1, 2\^48\)/],
    [{ directoryId: 2 ** 48 }, /directoryId/],
    [{ directoryId: 1.5 }, /directoryId/],
  ];
  for (const [patch, message] of cases) {
    assert.throws(() => makeConfig({ ...base, ...patch }), (err: unknown) => err instanceof ConfigError && message.test(err.message));
  }
});

test('a node in neither list is accepted: a non-member that starts as an observer', () => {
  const c = makeConfig({ ...base, id: nodeId('z') });
  assert.equal(c.voters.includes(c.id), false);
});

test('a directory id is optional (absent: the node has none) and kept as given', () => {
  assert.equal(makeConfig(base).directoryId, undefined);
  assert.equal(makeConfig({ ...base, directoryId: 2 ** 48 - 1 }).directoryId, 2 ** 48 - 1);
});
