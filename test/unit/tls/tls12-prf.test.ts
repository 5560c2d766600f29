import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { nativeHandshake, nativeHandshakeStatus } from '../../../src/tls/native/handshake.js';
import { prf, prfWithHmac, tls12PrfIsNative } from '../../../src/tls/tls12/prf.js';

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

const forcedPure = process.env['DC_TLS_NATIVE'] === 'off';

void test('the PRF runs on the handshake addon after its known-answer check, and on HMAC with DC_TLS_NATIVE=off', () => {
  assert.equal(tls12PrfIsNative, !forcedPure, `addon: ${nativeHandshakeStatus()}`);
});

void test('the PRF (addon or fallback) agrees with P_hash on node:crypto: every length around block edges and past the addon output bound, split seeds, empty and long secrets', () => {
  const nodeHmac = (hash: 'sha256' | 'sha384', key: Uint8Array, data: Uint8Array): Buffer => createHmac(hash, key).update(data).digest();
  for (const hash of ['sha256', 'sha384'] as const) {
    for (const secretLength of [0, 1, 48, 64, 129, 1024]) {
      const secret = randomBytes(secretLength);
      for (const length of [1, 12, 31, 32, 33, 40, 47, 48, 49, 72, 96, 97, 1000, 70_000]) {
        const seed = randomBytes(32);
        const seed2 = randomBytes(length % 3 === 0 ? 0 : 32);
        const label = Buffer.from(`label ${length}`, 'latin1');
        const expected = prfWithHmac(nodeHmac, hash, secret, label, Buffer.concat([seed, seed2]), length);
        assert.deepEqual(prf(hash, secret, label, seed, length, seed2), expected, `${hash}, secret ${secretLength}, length ${length}`);
        assert.deepEqual(prf(hash, secret, label.toString('latin1'), Buffer.concat([seed, seed2]), length), expected);
      }
    }
  }
  // An exporter may ask for nothing: an empty answer, on either path.
  assert.equal(prf('sha256', randomBytes(48), 'EXPORTER-empty', randomBytes(64), 0).length, 0);
});

void describe('the addon PRF refuses bad arguments with a clear error and writes nothing', { skip: forcedPure && 'DC_TLS_NATIVE=off: no addon' }, () => {
  const tls12Prf = (nativeHandshake() as unknown as { tls12Prf: (...a: unknown[]) => void }).tls12Prf;
  const usage = (e: unknown): boolean => (e as { code?: string }).code === 'ERR_TLS_NATIVE_HANDSHAKE';
  const secret = Buffer.alloc(48, 1);
  const label = Buffer.from('key expansion');
  const seed = Buffer.alloc(64, 2);
  void test('lengths out of range, an output too short, a secret or seed too long, wrong types', () => {
    const out = Buffer.alloc(64);
    assert.throws(() => tls12Prf(3, secret, label, seed, seed, 40, out), /out of range/);
    assert.throws(() => tls12Prf(1, secret, label, seed, seed, 0, out), /out of range/);
    assert.throws(() => tls12Prf(1, secret, label, seed, seed, 40.5, out), /out of range/);
    assert.throws(() => tls12Prf(1, secret, label, seed, seed, (1 << 16) + 1, Buffer.alloc((1 << 16) + 1)), /out of range/);
    assert.throws(() => tls12Prf(1, secret, label, seed, seed, 65, out), (e) => usage(e) && /output buffer too short/.test((e as Error).message));
    assert.throws(() => tls12Prf(1, Buffer.alloc(1025), label, seed, seed, 40, out), /PRF secret too long/);
    assert.throws(() => tls12Prf(1, secret, label, Buffer.alloc(1 << 17), seed, 40, out), /PRF label and seed too long/);
    assert.throws(() => tls12Prf(1, secret, 'key expansion', seed, seed, 40, out), TypeError);
    assert.throws(() => tls12Prf(1, secret, label, seed, new Uint16Array(4), 40, out), TypeError);
    assert.throws(() => tls12Prf(1, secret, label, seed, seed, 40), /tls12Prf\(hash, secret, label, seed, seed2, length, out\)/);
    assert.ok(out.equals(Buffer.alloc(64)), 'a refused call wrote into the output');
  });
  void test('an output overlapping an input is refused (blocks are written while the inputs are still read)', () => {
    const shared = Buffer.alloc(200, 3);
    const seedIn = shared.subarray(0, 64);
    assert.throws(() => tls12Prf(1, secret, label, seedIn, seed, 40, shared.subarray(32, 72)), /PRF output overlaps an input/);
    assert.throws(() => tls12Prf(1, shared.subarray(100, 148), label, seed, seed, 40, shared.subarray(120, 160)), /PRF output overlaps an input/);
    assert.ok(shared.equals(Buffer.alloc(200, 3)), 'nothing written');
    // Adjacent is not overlapping.
    assert.doesNotThrow(() => tls12Prf(1, secret, label, seedIn, seed, 40, shared.subarray(64, 104)));
  });
});
