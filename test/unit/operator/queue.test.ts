import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../../src/operator/clock.js';
import { WorkQueue, backoffDelay } from '../../../src/operator/queue.js';

void test('backoff doubles from 1s and is capped at 5 minutes', () => {
  assert.deepEqual([1, 2, 3, 4, 5, 9, 10, 50].map((n) => backoffDelay(n)), [1000, 2000, 4000, 8000, 16000, 256000, 300000, 300000]);
});

void test('a key added twice is queued once', async () => {
  const q = new WorkQueue(new FakeClock());
  q.add('ns/a');
  q.add('ns/a');
  q.add('ns/b');
  assert.equal(q.length, 2);
  assert.equal(await q.get(), 'ns/a');
  assert.equal(await q.get(), 'ns/b');
});

void test('a key added while processing is handed out again only after done', async () => {
  const q = new WorkQueue(new FakeClock());
  q.add('ns/a');
  const key = await q.get();
  q.add('ns/a');
  assert.equal(q.length, 0, 'not handed to a second worker');
  q.done(key ?? '');
  assert.equal(q.length, 1);
});

void test('failures re-queue with growing per-key delays and success resets them', async () => {
  const clock = new FakeClock();
  const q = new WorkQueue(clock);
  assert.equal(q.addRateLimited('ns/a'), 1000);
  clock.advance(999);
  assert.equal(q.length, 0);
  clock.advance(1);
  assert.equal(q.length, 1);
  q.done((await q.get()) ?? '');
  assert.equal(q.addRateLimited('ns/a'), 2000);
  assert.equal(q.addRateLimited('ns/b'), 1000, 'other keys have their own backoff');
  q.forget('ns/a');
  assert.equal(q.failureCount('ns/a'), 0);
  assert.equal(q.addRateLimited('ns/a'), 1000);
});

void test('addAfter keeps the earliest timer for a key', () => {
  const clock = new FakeClock();
  const q = new WorkQueue(clock);
  q.addAfter('ns/a', 10_000);
  q.addAfter('ns/a', 60_000);
  q.addAfter('ns/a', 5_000);
  assert.equal(q.scheduled, 1);
  clock.advance(5_000);
  assert.equal(q.length, 1);
  clock.advance(60_000);
  assert.equal(q.length, 1, 'the later timers were dropped');
});

void test('a waiting worker receives a key as soon as it is added, and undefined on shutdown', async () => {
  const q = new WorkQueue(new FakeClock());
  const first = q.get();
  q.add('ns/a');
  assert.equal(await first, 'ns/a');
  const second = q.get();
  q.shutdown();
  assert.equal(await second, undefined);
});

void test('cancel drops the pending renewal timer of a deleted object', () => {
  const clock = new FakeClock();
  const q = new WorkQueue(clock);
  q.addAfter('ns/a', 1000);
  q.cancel('ns/a');
  clock.advance(2000);
  assert.equal(q.length, 0);
  assert.equal(clock.pendingTimers(), 0);
});
