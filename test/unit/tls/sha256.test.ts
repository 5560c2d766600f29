import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { HmacSha256, sha256 } from '../../../src/tls/sha256.js';
import { hkdfExpand, hkdfExpandLabel, hkdfExtract, hmac } from '../../../src/tls/key-schedule.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

void test('SHA-256 matches node:crypto for every length around the padding boundaries', () => {
  for (let n = 0; n <= 300; n++) {
    const data = randomBytes(n);
    assert.equal(hex(sha256(data)), createHash('sha256').update(data).digest('hex'), `length ${n}`);
  }
});

void test('SHA-256 reproduces the FIPS 180-4 examples', () => {
  assert.equal(hex(sha256(Buffer.from('abc'))), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  assert.equal(
    hex(sha256(Buffer.from('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq'))),
    '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1',
  );
});

void test('HMAC-SHA-256 matches node:crypto for keys shorter than, equal to and longer than a block', () => {
  for (const keyLength of [0, 1, 32, 63, 64, 65, 131]) {
    const key = randomBytes(keyLength);
    const mac = new HmacSha256(key);
    for (const n of [0, 1, 32, 55, 56, 64, 119, 200]) {
      const data = randomBytes(n);
      assert.equal(hex(mac.mac(data)), createHmac('sha256', key).update(data).digest('hex'), `key ${keyLength}, data ${n}`);
    }
  }
});

void test('HMAC-SHA-256 reproduces RFC 4231 test case 2 and truncates on request', () => {
  const mac = new HmacSha256(Buffer.from('Jefe'));
  const data = Buffer.from('what do ya want for nothing?');
  assert.equal(hex(mac.mac(data)), '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843');
  assert.equal(hex(mac.mac(data, 16)), '5bdcc146bf60754e6a042426089575c7');
});

void test('the key schedule HMAC gives the right answer when a key array is reused with new contents', () => {
  const key = new Uint8Array(randomBytes(32));
  const data = randomBytes(40);
  assert.equal(hex(hmac('sha256', key, data)), createHmac('sha256', key).update(data).digest('hex'));
  key[0] = key[0]! ^ 1;
  assert.equal(hex(hmac('sha256', key, data)), createHmac('sha256', key).update(data).digest('hex'));
});

void test('the key schedule HMAC stays right when more keys are in use than it caches, and for keys over a block', () => {
  const keys = Array.from({ length: 20 }, (_, i) => new Uint8Array(randomBytes(i % 5 === 0 ? 100 : 32)));
  const data = randomBytes(33);
  for (let round = 0; round < 3; round++) {
    for (const key of keys) assert.equal(hex(hmac('sha256', key, data)), createHmac('sha256', key).update(data).digest('hex'));
  }
});

void test('HKDF over SHA-256 reproduces RFC 5869 test case 1, including output longer than one hash', () => {
  const ikm = Buffer.alloc(22, 0x0b);
  const salt = Buffer.from('000102030405060708090a0b0c', 'hex');
  const info = Buffer.from('f0f1f2f3f4f5f6f7f8f9', 'hex');
  const prk = hkdfExtract('sha256', salt, ikm);
  assert.equal(hex(prk), '077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5');
  assert.equal(
    hex(hkdfExpand('sha256', prk, info, 42)),
    '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865',
  );
});

void test('HKDF-Expand-Label agrees between SHA-256 and SHA-384 paths and node:crypto HMAC', () => {
  for (const [hash, len] of [['sha256', 32], ['sha384', 48]] as const) {
    const secret = randomBytes(len);
    const context = randomBytes(len);
    for (const length of [12, 16, len, len + 10]) {
      // Expected: HKDF-Expand(secret, HkdfLabel, length) with node:crypto's HMAC.
      const label = Buffer.from('tls13 test label', 'latin1');
      const info = Buffer.concat([Buffer.from([length >> 8, length & 0xff, label.length]), label, Buffer.from([context.length]), context]);
      let prev = Buffer.alloc(0);
      const blocks: Buffer[] = [];
      for (let i = 1; Buffer.concat(blocks).length < length; i++) {
        prev = createHmac(hash, secret).update(Buffer.concat([prev, info, Buffer.from([i])])).digest();
        blocks.push(prev);
      }
      const expected = Buffer.concat(blocks).subarray(0, length).toString('hex');
      assert.equal(hex(hkdfExpandLabel(hash, secret, 'test label', context, length)), expected, `${hash} ${length}`);
    }
  }
});
