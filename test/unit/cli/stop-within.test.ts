import assert from 'node:assert/strict';
import { it } from 'node:test';
import { stopWithin } from '../../../src/cli/framework/stop-within.js';

void it('a stop that settles in time is "stopped"', async () => {
  assert.equal(await stopWithin(new Promise((r) => setTimeout(r, 5)), 5_000), 'stopped');
});

void it('a stop that never settles is "late" at the deadline, and the deadline keeps nothing alive', async () => {
  const started = Date.now();
  assert.equal(await stopWithin(new Promise<void>(() => undefined), 50), 'late');
  assert.ok(Date.now() - started >= 45, 'not before the deadline');
});

void it('a stop that fails rejects (the command reports it), not "late"', async () => {
  await assert.rejects(stopWithin(Promise.reject(new Error('lease release refused')), 5_000), /lease release refused/);
});
