import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, createSign, createVerify } from 'node:crypto';
import { describe, it } from 'node:test';
import { SignatureScheme, signatureSchemeName } from '../../../../src/tls/constants.js';
import { dcKeyMatchesScheme, generateDcKeyPairDer } from '../../../../src/tls/delegated/index.js';

const S = SignatureScheme;
const EC = [
  { scheme: S.ecdsa_secp256r1_sha256, curve: 'prime256v1', hash: 'sha256', scalar: 32 },
  { scheme: S.ecdsa_secp384r1_sha384, curve: 'secp384r1', hash: 'sha384', scalar: 48 },
  { scheme: S.ecdsa_secp521r1_sha512, curve: 'secp521r1', hash: 'sha512', scalar: 66 },
] as const;

describe('generateDcKeyPairDer', () => {
  for (const { scheme, curve, hash, scalar } of EC) {
    it(`${signatureSchemeName(scheme)}: framed exactly as node:crypto exports the same key, and the halves belong together`, async () => {
      // Enough keys that a scalar with leading zero bytes (1 in 256 for P-256) is likely among them.
      for (let i = 0; i < 300; i++) {
        const { spki, pkcs8 } = await generateDcKeyPairDer(scheme);
        const privateKey = createPrivateKey({ key: Buffer.from(pkcs8), format: 'der', type: 'pkcs8' });
        assert.equal(privateKey.asymmetricKeyDetails?.namedCurve, curve);
        assert.deepEqual(new Uint8Array(privateKey.export({ type: 'pkcs8', format: 'der' })), pkcs8, 'PKCS#8 re-exported by OpenSSL is byte-identical');
        const publicKey = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
        assert.deepEqual(new Uint8Array(createPublicKey(privateKey).export({ type: 'spki', format: 'der' })), spki, 'the SPKI is the private key’s public key');
        assert.ok(dcKeyMatchesScheme(publicKey, scheme));
        const d = privateKey.export({ format: 'jwk' }).d;
        assert.equal(Buffer.from(d ?? '', 'base64url').length, scalar, 'fixed-length scalar');
      }
      const { spki, pkcs8 } = await generateDcKeyPairDer(scheme);
      const message = Buffer.from('delegated credential');
      const signature = createSign(hash).update(message).sign({ key: Buffer.from(pkcs8), format: 'der', type: 'pkcs8' });
      assert.ok(createVerify(hash).update(message).verify({ key: Buffer.from(spki), format: 'der', type: 'spki' }, signature));
    });
  }

  it('every key is fresh', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 50; i++) seen.add(Buffer.from((await generateDcKeyPairDer(S.ecdsa_secp256r1_sha256)).pkcs8).toString('hex'));
    assert.equal(seen.size, 50);
  });

  for (const scheme of [S.ed25519, S.rsa_pss_pss_sha256, S.mldsa44]) {
    it(`${signatureSchemeName(scheme)}: encoded by node:crypto, a key of the scheme`, async () => {
      const { spki, pkcs8 } = await generateDcKeyPairDer(scheme, 2048);
      const publicKey = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
      assert.ok(dcKeyMatchesScheme(publicKey, scheme));
      const fromPrivate = createPublicKey(createPrivateKey({ key: Buffer.from(pkcs8), format: 'der', type: 'pkcs8' }));
      assert.deepEqual(new Uint8Array(fromPrivate.export({ type: 'spki', format: 'der' })), spki);
    });
  }

  it('refuses a scheme that is no DC algorithm', async () => {
    await assert.rejects(generateDcKeyPairDer(S.rsa_pss_rsae_sha256), RangeError);
  });
});
