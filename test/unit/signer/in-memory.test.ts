import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { constants, createPrivateKey, generateKeyPairSync, verify, type KeyObject } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { InMemoryKeySigner, SignerKeyError, parsePrivateKeyPem, type Signer } from '../../../src/signer/index.js';

const S = { ecdsa256: 0x0403, ecdsa384: 0x0503, ecdsa521: 0x0603, ed25519: 0x0807, pssRsae256: 0x0804, pssRsae384: 0x0805, pssRsae512: 0x0806 };
const message = new TextEncoder().encode('TLS, server delegated credentials and a transcript');

function pkcs8(key: KeyObject): string {
  return key.export({ type: 'pkcs8', format: 'pem' }).toString();
}

/** Verifies a signature with node:crypto directly, as a peer would for each scheme. */
function verifies(scheme: number, publicKey: KeyObject, sig: Uint8Array): boolean {
  switch (scheme) {
    case S.ed25519:
      return verify(null, message, publicKey, sig);
    case S.ecdsa256:
      return verify('sha256', message, { key: publicKey, dsaEncoding: 'der' }, sig);
    case S.ecdsa384:
      return verify('sha384', message, { key: publicKey, dsaEncoding: 'der' }, sig);
    case S.pssRsae256:
      return verify('sha256', message, { key: publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, sig);
    case S.pssRsae384:
      return verify('sha384', message, { key: publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 48 }, sig);
    default:
      throw new Error(`no verifier for ${scheme}`);
  }
}

async function signWith(signer: Signer, scheme: number): Promise<Uint8Array> {
  return await signer.sign(scheme, message);
}

void describe('InMemoryKeySigner', () => {
  const cases: Array<{ name: string; pem: string; schemes: number[]; key: KeyObject }> = [];
  const ed = generateKeyPairSync('ed25519');
  cases.push({ name: 'Ed25519 PKCS#8', pem: pkcs8(ed.privateKey), schemes: [S.ed25519], key: ed.publicKey });
  const p256 = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  cases.push({ name: 'P-256 PKCS#8', pem: pkcs8(p256.privateKey), schemes: [S.ecdsa256], key: p256.publicKey });
  cases.push({ name: 'P-256 SEC1', pem: p256.privateKey.export({ type: 'sec1', format: 'pem' }).toString(), schemes: [S.ecdsa256], key: p256.publicKey });
  const p384 = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
  cases.push({ name: 'P-384 PKCS#8', pem: pkcs8(p384.privateKey), schemes: [S.ecdsa384], key: p384.publicKey });
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  cases.push({ name: 'RSA-2048 PKCS#8', pem: pkcs8(rsa.privateKey), schemes: [S.pssRsae256, S.pssRsae384, S.pssRsae512], key: rsa.publicKey });
  cases.push({ name: 'RSA-2048 PKCS#1', pem: rsa.privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(), schemes: [S.pssRsae256, S.pssRsae384, S.pssRsae512], key: rsa.publicKey });

  for (const c of cases) {
    void it(`signs with a ${c.name} key so that node:crypto verifies every offered scheme`, async () => {
      const signer = InMemoryKeySigner.fromPem(c.pem);
      assert.deepEqual([...signer.schemes], c.schemes);
      for (const scheme of signer.schemes.filter((s) => s !== S.pssRsae512)) {
        assert.equal(verifies(scheme, c.key, await signWith(signer, scheme)), true, `scheme 0x${scheme.toString(16)}`);
      }
      assert.deepEqual(Buffer.from(signer.spki), c.key.export({ type: 'spki', format: 'der' }));
    });
  }

  void it('exposes the SHA-256 fingerprint of the SPKI, the same as openssl computes', () => {
    const pem = cases[1]!.pem;
    const signer = InMemoryKeySigner.fromPem(pem);
    const spkiDer = execFileSync('openssl', ['pkey', '-pubout', '-outform', 'DER'], { input: pem });
    const expected = execFileSync('openssl', ['dgst', '-sha256', '-r'], { input: spkiDer }).toString().split(' ')[0];
    assert.equal(signer.publicKeyFingerprint, expected);
    assert.equal(signer.keyType, 'ec');
    assert.deepEqual(signer.publicKey.export({ type: 'spki', format: 'der' }), spkiDer);
  });

  void it('accepts a KeyObject directly', async () => {
    const signer = new InMemoryKeySigner(ed.privateKey);
    assert.equal(verifies(S.ed25519, ed.publicKey, await signWith(signer, S.ed25519)), true);
  });

  void it('refuses to sign with a scheme the key cannot produce', () => {
    const signer = InMemoryKeySigner.fromPem(cases[1]!.pem);
    assert.throws(() => signer.sign(S.ed25519, message), /cannot sign with scheme 0x807/);
  });

  void it('rejects a public key, with a message', () => {
    assert.throws(() => new InMemoryKeySigner(ed.publicKey), (e: unknown) => e instanceof SignerKeyError && e.reason === 'malformed_key');
  });

  void it('rejects text that is not a PEM private key with a message naming the source', () => {
    for (const bad of ['', 'hello', ed.publicKey.export({ type: 'spki', format: 'pem' }).toString(), '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n']) {
      assert.throws(
        () => parsePrivateKeyPem(bad, 'tls.key'),
        (e: unknown) => e instanceof SignerKeyError && e.reason === 'malformed_key' && e.message === 'tls.key is not a PKCS#8/PKCS#1/SEC1 PEM private key',
      );
    }
  });

  void it('says so when the key is encrypted', () => {
    const encrypted = p256.privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'secret' }).toString();
    assert.throws(() => InMemoryKeySigner.fromPem(encrypted, 'tls.key'), (e: unknown) => e instanceof SignerKeyError && e.reason === 'encrypted_key' && /encrypted/.test(e.message));
  });

  void it('names the key type when it cannot sign TLS 1.3 handshakes', () => {
    const x = generateKeyPairSync('x25519');
    assert.throws(
      () => InMemoryKeySigner.fromPem(pkcs8(x.privateKey), 'tls.key'),
      (e: unknown) => e instanceof SignerKeyError && e.reason === 'unsupported_key' && /tls\.key holds a key of type x25519/.test(e.message),
    );
    const k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' });
    assert.throws(() => InMemoryKeySigner.fromPem(pkcs8(k1.privateKey)), /ec \(secp256k1\)/);
    assert.ok(createPrivateKey(pkcs8(k1.privateKey)));
  });
});
