import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LogLimiter } from '../../../src/net/log-limiter.js';

void describe('LogLimiter', () => {
  void it('writes the first lines of a window, counts the rest, and reports the count on the next line written', () => {
    let now = 0;
    const limiter = new LogLimiter(3, 1000, () => now);
    const written: number[] = [];
    for (let i = 0; i < 1000; i++) limiter.log('timeout', (suppressed) => written.push(suppressed));
    assert.deepEqual(written, [0, 0, 0], 'three lines out of a thousand events');
    now = 999;
    limiter.log('timeout', (suppressed) => written.push(suppressed));
    assert.equal(written.length, 3, 'still the same window');
    now = 1000;
    limiter.log('timeout', (suppressed) => written.push(suppressed));
    assert.deepEqual(written, [0, 0, 0, 998], 'the first line of the next window says how many were left out');
  });

  void it('keeps a separate budget per key', () => {
    const limiter = new LogLimiter(1, 60_000, () => 0);
    const written: string[] = [];
    for (const key of ['limit', 'limit', 'unknown-ca', 'limit', 'unknown-ca', 'key-usage']) limiter.log(key, () => written.push(key));
    assert.deepEqual(written, ['limit', 'unknown-ca', 'key-usage']);
  });
});
