import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { FakeClock } from '../../../src/operator/clock.js';
import { startMallocTrim } from '../../../src/operator/memory-trim.js';
import { mallocTrim, trimMalloc } from '../../../src/operator/native/malloc-trim.js';

void test('trims every interval until stopped; never when off or without the addon', () => {
  const clock = new FakeClock(0);
  let calls = 0;
  const trimmer = startMallocTrim(clock, 5000, () => (calls++, true), true);
  clock.advance(4999);
  assert.equal(calls, 0);
  clock.advance(1);
  assert.equal(calls, 1);
  clock.advance(15_000);
  assert.equal(calls, 4);
  trimmer.stop();
  clock.advance(60_000);
  assert.equal(calls, 4, 'stopped');
  assert.equal(clock.pendingTimers(), 0);
  for (const [interval, available] of [[0, true], [5000, false]] as const) {
    startMallocTrim(clock, interval, () => (calls++, true), available);
    clock.advance(60_000);
    assert.equal(calls, 4, `interval ${interval}, addon ${available ? 'loaded' : 'absent'}: no timer, no call`);
    assert.equal(clock.pendingTimers(), 0);
  }
});

void test('the addon loads where it was built (glibc) and trims; else it says why not', () => {
  const built = existsSync(fileURLToPath(new URL('../../../src/operator/native/malloc-trim.node', import.meta.url)));
  const glibc = (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime !== undefined;
  if (built && glibc) {
    assert.equal(mallocTrim.available, true, mallocTrim.unavailableBecause);
    const big = Array.from({ length: 64 }, () => Buffer.alloc(64 * 1024, 1));
    big.length = 0;
    assert.equal(typeof trimMalloc(), 'boolean');
  } else {
    assert.equal(mallocTrim.available, false);
    assert.match(mallocTrim.unavailableBecause ?? '', /\S/);
    assert.equal(trimMalloc(), undefined);
  }
});
