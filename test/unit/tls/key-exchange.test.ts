/**
 * The hybrid post-quantum groups' wire layout (draft-ietf-tls-ecdhe-mlkem §3), checked against
 * node:crypto used directly rather than against our own other side: X25519MLKEM768 puts ML-KEM
 * first in the shares and in the secret, SecP256r1MLKEM768 puts ECDH first.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createECDH, createPublicKey, decapsulate, diffieHellman, encapsulate, generateKeyPairSync } from 'node:crypto';
import { NamedGroup } from '../../../src/tls/constants.js';
import { generateKeyShare, respondToKeyShare } from '../../../src/tls/key-exchange.js';
import { PeerMisbehaved } from '../../../src/tls/errors.js';

function mlkemKeyPair() {
  const { publicKey, privateKey } = generateKeyPairSync('ml-kem-768');
  return { raw: publicKey.export({ format: 'raw-public' } as never) as unknown as Buffer, publicKey, privateKey };
}

function x25519KeyPair() {
  const { publicKey, privateKey } = generateKeyPairSync('x25519');
  return { raw: Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url'), privateKey };
}

function x25519Public(raw: Uint8Array) {
  return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: Buffer.from(raw).toString('base64url') }, format: 'jwk' });
}

void describe('X25519MLKEM768 layout', () => {
  void test('the server answers a client share of ML-KEM key then x25519 key with ciphertext then x25519 key, secret ML-KEM first', () => {
    const kem = mlkemKeyPair();
    const x = x25519KeyPair();
    const response = respondToKeyShare(NamedGroup.X25519MLKEM768, Buffer.concat([kem.raw, x.raw]))!;
    assert.equal(response.publicKey.length, 1088 + 32);
    assert.equal(response.secret.length, 64);
    const kemSecret = decapsulate(kem.privateKey, response.publicKey.subarray(0, 1088));
    const ecdhSecret = diffieHellman({ privateKey: x.privateKey, publicKey: x25519Public(response.publicKey.subarray(1088)) });
    assert.deepEqual(Buffer.from(response.secret), Buffer.concat([kemSecret, ecdhSecret]));
  });

  void test('the client share is 1184 bytes of ML-KEM key then 32 of x25519, and its secret matches an independent server', () => {
    const share = generateKeyShare(NamedGroup.X25519MLKEM768)!;
    assert.equal(share.publicKey.length, 1184 + 32);
    const ek = createPublicKey({ key: Buffer.from(share.publicKey.subarray(0, 1184)), format: 'raw-public', asymmetricKeyType: 'ml-kem-768' } as never);
    const { sharedKey, ciphertext } = encapsulate(ek);
    const x = x25519KeyPair();
    const ecdhSecret = diffieHellman({ privateKey: x.privateKey, publicKey: x25519Public(share.publicKey.subarray(1184)) });
    const secret = share.computeSecret(Buffer.concat([ciphertext, x.raw]));
    assert.deepEqual(Buffer.from(secret), Buffer.concat([sharedKey, ecdhSecret]));
  });

  void test('a server share one byte short is refused before any decapsulation', () => {
    const share = generateKeyShare(NamedGroup.X25519MLKEM768)!;
    assert.throws(() => share.computeSecret(new Uint8Array(1088 + 31)), (e: unknown) => e instanceof PeerMisbehaved && e.fault === 'InvalidKeyShare');
  });

  void test('a server share whose x25519 half is all zeros is refused', () => {
    const share = generateKeyShare(NamedGroup.X25519MLKEM768)!;
    assert.throws(() => share.computeSecret(new Uint8Array(1088 + 32).fill(7, 0, 1088)), (e: unknown) => e instanceof PeerMisbehaved && e.alert === 47);
  });
});

void describe('SecP256r1MLKEM768 layout', () => {
  void test('ECDH part first in both shares and in the secret', () => {
    const kem = mlkemKeyPair();
    const ecdh = createECDH('prime256v1');
    const point = ecdh.generateKeys();
    const response = respondToKeyShare(NamedGroup.SecP256r1MLKEM768, Buffer.concat([point, kem.raw]))!;
    assert.equal(response.publicKey.length, 65 + 1088);
    assert.equal(response.publicKey[0], 0x04);
    const ecdhSecret = ecdh.computeSecret(response.publicKey.subarray(0, 65));
    const kemSecret = decapsulate(kem.privateKey, response.publicKey.subarray(65));
    assert.deepEqual(Buffer.from(response.secret), Buffer.concat([ecdhSecret, kemSecret]));
  });

  void test('the client share is a 65-byte point then 1184 bytes of ML-KEM key, and both sides agree', () => {
    const share = generateKeyShare(NamedGroup.SecP256r1MLKEM768)!;
    assert.equal(share.publicKey.length, 65 + 1184);
    const response = respondToKeyShare(NamedGroup.SecP256r1MLKEM768, share.publicKey)!;
    assert.deepEqual(Buffer.from(share.computeSecret(response.publicKey)), Buffer.from(response.secret));
  });
});

void describe('hostile hybrid client shares get illegal_parameter, in the same words with and without the native addon', () => {
  const refused = (message: RegExp) => (e: unknown) => e instanceof PeerMisbehaved && e.fault === 'InvalidKeyShare' && e.alert === 47 && message.test(e.message);
  for (const [name, group, kemAt, ecdhLength] of [
    ['X25519MLKEM768', NamedGroup.X25519MLKEM768, 0, 32],
    ['SecP256r1MLKEM768', NamedGroup.SecP256r1MLKEM768, 65, 65],
  ] as const) {
    const good = () => Buffer.from(generateKeyShare(group)!.publicKey);
    void test(`${name}: a share of the wrong length`, () => {
      const share = good();
      const expected = 1184 + ecdhLength;
      for (const bad of [share.subarray(0, expected - 1), Buffer.concat([share, Uint8Array.of(0)]), share.subarray(kemAt, kemAt + 1184), new Uint8Array(0)]) {
        assert.throws(() => respondToKeyShare(group, bad), refused(new RegExp(`: hybrid client share of ${bad.length} bytes, expected ${expected}$`)));
      }
    });

    void test(`${name}: an encapsulation key failing the FIPS 203 modulus check (a coefficient of q, and of 0xfff)`, () => {
      for (const coefficient of [3329, 0xfff]) {
        const share = good();
        // The first 12-bit coefficient: byte 0 and the low half of byte 1 (FIPS 203 ByteEncode12).
        share[kemAt] = coefficient & 0xff;
        share[kemAt + 1] = (share[kemAt + 1]! & 0xf0) | (coefficient >> 8);
        assert.throws(() => respondToKeyShare(group, share), refused(/: ML-KEM-768 encapsulation key fails the FIPS 203 modulus check$/), String(coefficient));
      }
    });

    void test(`${name}: a bad ECDH half`, () => {
      const share = good();
      if (group === NamedGroup.X25519MLKEM768) share.fill(0, 1184);
      else share[0] = 0x02; // not the uncompressed form
      assert.throws(() => respondToKeyShare(group, share), refused(group === NamedGroup.X25519MLKEM768 ? /x25519/ : /EC share|point/));
    });
  }
});
