/**
 * The key schedule's HMAC-SHA-256 key cache holds traffic and stage secrets: it must empty itself
 * when the process goes idle, and never change a result.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { cachedHmacKeyCount, clearHmacKeyCache, hmac } from '../../../src/tls/key-schedule.js';
import { nativeHandshake } from '../../../src/tls/native/handshake.js';

void test('with the native key schedule no secret is cached in JavaScript at all (the cache is the fallback\'s, tested under DC_TLS_NATIVE=off)', { skip: !nativeHandshake() && 'the fallback is in use' }, () => {
  clearHmacKeyCache();
  const s = randomBytes(32);
  assert.deepEqual(Buffer.from(hmac('sha256', s, Buffer.from('x'))), createHmac('sha256', s).update('x').digest());
  assert.equal(cachedHmacKeyCount(), 0);
});

const fallback = { skip: nativeHandshake() !== undefined && 'the native key schedule caches nothing; this runs under DC_TLS_NATIVE=off (record-path-node-crypto.test.ts)' };

void test('the HMAC key cache is wiped once a second passes without a lookup, and results stay correct', fallback, async () => {
  clearHmacKeyCache();
  const secrets = Array.from({ length: 3 }, () => randomBytes(32));
  const data = Buffer.from('tls13 key');
  for (const s of secrets) assert.deepEqual(Buffer.from(hmac('sha256', s, data)), createHmac('sha256', s).update(data).digest());
  assert.equal(cachedHmacKeyCount(), 3);
  // Idle: the timer checks every second and clears after a tick without lookups (at most ~2 s).
  const deadline = Date.now() + 5000;
  while (cachedHmacKeyCount() > 0 && Date.now() < deadline) await sleep(100);
  assert.equal(cachedHmacKeyCount(), 0, 'an idle process keeps no secret in the cache');
  for (const s of secrets) assert.deepEqual(Buffer.from(hmac('sha256', s, data)), createHmac('sha256', s).update(data).digest());
});

void test('more distinct keys than slots: evicted entries are wiped and never returned', fallback, () => {
  clearHmacKeyCache();
  const data = Buffer.from('x');
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 20; i++) {
      const s = Buffer.alloc(32, i);
      assert.deepEqual(Buffer.from(hmac('sha256', s, data)), createHmac('sha256', s).update(data).digest(), `key ${i}`);
    }
  }
  assert.ok(cachedHmacKeyCount() <= 8);
  clearHmacKeyCache();
});
