import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Deadline } from '../../../src/sidecar/deadline.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

void describe('Deadline: one timer for the ClientHello and the handshake', () => {
  void it("runs only the current step's expiry, once", async () => {
    const d = new Deadline(60);
    const ran: string[] = [];
    d.onExpiry(() => ran.push('peek'));
    d.onExpiry(() => ran.push('handshake')); // the next step took over
    await sleep(120);
    assert.deepEqual(ran, ['handshake']);
    d.onExpiry(() => ran.push('late')); // a step starting after expiry learns at once
    assert.deepEqual(ran, ['handshake', 'late']);
  });

  void it('does nothing at expiry once cleared, or with no step registered', async () => {
    const cleared = new Deadline(30);
    let ran = false;
    cleared.onExpiry(() => (ran = true));
    cleared.clear();
    const between = new Deadline(30);
    between.onExpiry(() => (ran = true));
    between.onExpiry(undefined); // the peek finished; the engine has not registered yet
    await sleep(80);
    assert.equal(ran, false);
  });

  void it('says how much is left, at least 1 ms', async () => {
    const d = new Deadline(200);
    const left = d.remainingMs();
    assert.ok(left <= 200 && left > 100, String(left));
    d.clear();
    const past = new Deadline(1);
    await sleep(20);
    assert.equal(past.remainingMs(), 1);
  });
});
