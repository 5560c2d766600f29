import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { prf } from '../../../src/tls/tls12/prf.js';

/** P_hash straight from RFC 5246 §5 with createHmac, to check the one the handshake uses. */
function referencePrf(hash: 'sha256' | 'sha384', secret: Buffer, label: string, seed: Buffer, length: number): Buffer {
  const labelSeed = Buffer.concat([Buffer.from(label, 'latin1'), seed]);
  const out: Buffer[] = [];
  let a = createHmac(hash, secret).update(labelSeed).digest();
  let n = 0;
  while (n < length) {
    const block = createHmac(hash, secret).update(Buffer.concat([a, labelSeed])).digest();
    out.push(block);
    n += block.length;
    a = createHmac(hash, secret).update(a).digest();
  }
  return Buffer.concat(out).subarray(0, length);
}

void test('the TLS 1.2 PRF matches RFC 5246 §5 for SHA-256 and SHA-384, short and long secrets, any length', () => {
  // The published test vector for TLS 1.2 PRF-SHA256 (from the IETF TLS list, used by many stacks).
  const secret = Buffer.from('9bbe436ba940f017b17652849a71db35', 'hex');
  const seed = Buffer.from('a0ba9f936cda311827a6f796ffd5198c', 'hex');
  const expected = Buffer.from(
    'e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff70187347b66',
    'hex',
  );
  assert.deepEqual(prf('sha256', secret, 'test label', seed, expected.length), expected);
  for (const hash of ['sha256', 'sha384'] as const) {
    for (const secretLength of [32, 48, 97, 200]) {
      for (const length of [12, 48, 72, 100]) {
        const s = Buffer.alloc(secretLength, secretLength);
        const sd = Buffer.alloc(64, 3);
        assert.deepEqual(prf(hash, s, 'key expansion', sd, length), referencePrf(hash, s, 'key expansion', sd, length), `${hash} ${secretLength} ${length}`);
      }
    }
  }
});
