// The dispatcher's command line: benchmark names are told apart from the
// options it forwards to them (a flag's value may look like a word), its own
// --quick is not forwarded twice, and a word that names no benchmark is
// reported rather than run as the whole suite.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { splitArgs, SUITE } from './run.js';

const known = SUITE.map((b) => b.name);

test('names, forwarded options with their values, and unknown words are told apart', () => {
  assert.deepEqual(splitArgs(['amqp', '--targets', 'rabbitmq', '--publishers', '1,64', '--seconds=20'], known),
    { names: ['amqp'], forwarded: ['--targets', 'rabbitmq', '--publishers', '1,64', '--seconds=20'], unknown: [] });
  assert.deepEqual(splitArgs(['--quick', 'writes', 'idle'], known), { names: ['writes', 'idle'], forwarded: [], unknown: [] });
  // A benchmark name after a flag is a name, not the flag's value (the flag is then boolean).
  assert.deepEqual(splitArgs(['--verbose', 'amqp'], known), { names: ['amqp'], forwarded: ['--verbose'], unknown: [] });
  assert.deepEqual(splitArgs(['wrtes'], known), { names: [], forwarded: [], unknown: ['wrtes'] });
  assert.deepEqual(splitArgs(['--seconds=3', 'x', 'amqp'], known), { names: ['amqp'], forwarded: ['--seconds=3'], unknown: ['x'] });
});

test('the amqp benchmark is in the suite', () => {
  assert.ok(SUITE.some((b) => b.name === 'amqp' && b.script === 'amqp.js'));
});
