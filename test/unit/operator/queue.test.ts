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

void test('delayed adds of many keys share one timer and come in due order, each once', async () => {
  const clock = new FakeClock();
  const q = new WorkQueue(clock);
  const delays = [7000, 1000, 5000, 3000, 9000, 2000, 8000, 4000, 6000, 10_000];
  delays.forEach((d, i) => q.addAfter(`ns/k${i}`, d));
  assert.equal(q.scheduled, 10);
  assert.equal(clock.pendingTimers(), 1, 'one timer for all of them');
  const order: string[] = [];
  for (let t = 0; t < 10; t++) {
    clock.advance(1000);
    while (q.length > 0) {
      const key = (await q.get()) ?? '';
      order.push(key);
      q.done(key);
    }
  }
  assert.deepEqual(order, [...delays.keys()].sort((a, b) => (delays[a] ?? 0) - (delays[b] ?? 0)).map((i) => `ns/k${i}`));
  assert.equal(q.scheduled, 0);
  assert.equal(clock.pendingTimers(), 0);
});

void test('a delay that is not a number is an add now, and holds back no other key', async () => {
  const clock = new FakeClock();
  const q = new WorkQueue(clock);
  q.addAfter('ns/a', 1000);
  q.addAfter('ns/b', 2000);
  q.addAfter('ns/bad', Number.NaN);
  assert.equal(q.length, 1, 'queued at once');
  assert.equal(await q.get(), 'ns/bad');
  q.done('ns/bad');
  clock.advance(2000);
  assert.equal(q.length, 2, 'the others came at their time');
  assert.equal(q.scheduled, 0);
});

void test('a delayed add moved earlier fires once, at the earlier time; cancel leaves the other keys due', async () => {
  const clock = new FakeClock();
  const q = new WorkQueue(clock);
  q.addAfter('ns/a', 10_000);
  q.addAfter('ns/b', 20_000);
  q.addAfter('ns/c', 15_000);
  q.addAfter('ns/a', 5_000);
  q.cancel('ns/c');
  clock.advance(5_000);
  assert.equal(await q.get(), 'ns/a');
  q.done('ns/a');
  clock.advance(10_000);
  assert.equal(q.length, 0, 'the superseded 10 s entry of ns/a and the cancelled ns/c add nothing');
  clock.advance(5_000);
  assert.equal(await q.get(), 'ns/b');
  q.done('ns/b');
  clock.advance(60_000);
  assert.equal(q.length, 0);
  assert.equal(clock.pendingTimers(), 0);
});

void test('delayed adds against a model: random delays, re-schedules and cancels over 2000 steps', async () => {
  let seed = 42;
  const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
  const clock = new FakeClock();
  const q = new WorkQueue(clock);
  const model = new Map<string, number>(); // key -> due
  let now = 0;
  const added: string[] = [];
  const expected: string[] = [];
  for (let step = 0; step < 2000; step++) {
    const key = `ns/k${rnd(50)}`;
    const op = rnd(10);
    if (op < 6) {
      const due = now + 1 + rnd(5000);
      if (!(model.has(key) && (model.get(key) ?? 0) <= due)) model.set(key, due);
      q.addAfter(key, due - now);
    } else if (op < 7) {
      model.delete(key);
      q.cancel(key);
    } else {
      const dt = rnd(700);
      const target = now + dt;
      const firing = [...model].filter(([, d]) => d <= target).sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : 1));
      for (const [k] of firing) {
        model.delete(k);
        expected.push(k);
      }
      clock.advance(dt);
      now = target;
      // Drain what came, so a key added again is visible again (a queued key is queued once).
      while (q.length > 0) {
        const k = (await q.get()) ?? '';
        added.push(k);
        q.done(k);
      }
    }
    assert.equal(q.scheduled, model.size, `step ${step}`);
  }
  assert.deepEqual([...added].sort(), [...expected].sort(), 'the same keys, each as often as the model says');
});
