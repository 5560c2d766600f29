/** Main-thread signing shared between identities by cost: order and admission, no timing. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FairQueue } from '../../../src/keyless/fair-queue.js';

/** A queue whose yields to the event loop are steps the test takes. */
function manual(sliceCost: number): { queue: FairQueue; step: () => boolean } {
  const pending: Array<() => void> = [];
  const queue = new FairQueue(sliceCost, (next) => pending.push(next));
  return { queue, step: () => (pending.length > 0 ? (pending.shift()!(), true) : false) };
}

void describe('FairQueue', () => {
  void it('an idle queue runs a job at once, in the same tick', async () => {
    const { queue } = manual(8);
    let ran = false;
    const done = queue.run('a', 1, () => {
      ran = true;
      return 42;
    });
    assert.equal(ran, true);
    assert.equal(await done, 42);
  });

  void it('an identity flooding with expensive signatures cannot hold back another: it is served within a round, not after the backlog', async () => {
    const { queue, step } = manual(8);
    const order: string[] = [];
    const flood = Array.from({ length: 200 }, (_, i) => queue.run('rsa-8192', 37, () => order.push(`A${i}`)));
    // The flood's first signature ran at once and spent the slice; everything else waits for the next one.
    assert.deepEqual(order, ['A0']);
    // Meanwhile (the event loop read another connection) the other identity asks 20 times.
    const other = Array.from({ length: 20 }, (_, i) => queue.run('p-256', 1, () => order.push(`B${i}`)));
    for (let i = 0; i < 10_000 && step(); i++);
    await Promise.all([...flood, ...other]);
    assert.equal(order.length, 220);
    // Cost-fair: per round A earns one unit, as B does; A's next signature (37 units) comes after
    // B's 20 (20 units): none of B's requests waits behind A's backlog of 199 × 37.
    assert.deepEqual(order.slice(0, 22), ['A0', ...Array.from({ length: 20 }, (_, i) => `B${i}`), 'A1'], order.slice(0, 25).join(' '));
    // Each identity's own requests keep their order.
    assert.deepEqual(order.filter((x) => x.startsWith('A')), Array.from({ length: 200 }, (_, i) => `A${i}`));
  });

  void it('gives the event loop back after every slice of cost, so new requests are read between slices', () => {
    const { queue, step } = manual(8);
    let ran = 0;
    for (let i = 0; i < 100; i++) void queue.run('a', 1, () => ran++);
    assert.equal(ran, 8, 'one slice of 8 cost units at once');
    assert.equal(queue.waiting, 92);
    assert.equal(step(), true);
    assert.equal(ran, 16);
    let steps = 1;
    while (step()) steps++;
    assert.equal(ran, 100);
    assert.equal(steps, 12, 'ceil(92 / 8) slices after the first');
  });

  void it('a job that throws rejects its own promise only', async () => {
    const { queue, step } = manual(100);
    const bad = queue.run('a', 1, () => {
      throw new Error('no such scheme');
    });
    const good = queue.run('a', 1, () => 'signed');
    while (step());
    await assert.rejects(bad, /no such scheme/);
    assert.equal(await good, 'signed');
  });
});
