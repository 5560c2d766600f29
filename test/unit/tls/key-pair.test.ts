import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { before, describe, it } from 'node:test';
import { loadCertifiedKey } from '../../../src/tls/credentials.js';
import { encodeTlv, DerTag } from '../../../src/tls/x509/der.js';
import { checkKeyPair, keyPairFault, keyPairProblem } from '../../../src/tls/key-pair.js';
import { ecKeyWithForeignScalar, rsaKeyWithForeignPrivateParts } from '../../support/mismatched-keys.js';
import { testPki, type Issued } from './pki.js';

/** An RSA-PSS key restricted to one hash and a minimum salt length (in bytes: @types/node types saltLength as a string, node takes the number). */
function restrictedPss(modulusLength: number, hash: string, saltLength: number): { privateKey: KeyObject; publicKey: KeyObject } {
  return generateKeyPairSync('rsa-pss', { modulusLength, hashAlgorithm: hash, mgf1HashAlgorithm: hash, saltLength: saltLength as unknown as string });
}

const pkcs8 = (key: KeyObject): string => key.export({ type: 'pkcs8', format: 'pem' }).toString();

void describe('a private key belongs to a public key only if it signs for it', () => {
  let p256: Issued;
  let rsa: Issued;
  before(async () => {
    const pki = await testPki();
    p256 = await pki.leaf('p256');
    rsa = await pki.leaf('rsa');
  });

  for (const type of ['pkcs8', 'sec1'] as const) {
    void it(`refuses a P-256 ${type} key whose scalar was swapped but whose public key was kept, which checkPrivateKey accepts`, () => {
      const cert = new X509Certificate(p256.pem);
      const { key } = ecKeyWithForeignScalar(p256.keyPem, type);
      assert.equal(cert.checkPrivateKey(key), true, 'the hole: OpenSSL compares the public keys only');
      assert.equal(keyPairFault(key, cert.publicKey), 'private-part-differs');
      assert.equal(keyPairFault(createPrivateKey(p256.keyPem), cert.publicKey), undefined);
    });
  }

  void it('refuses a P-384 key with another scalar the same way', () => {
    const original = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const { key } = ecKeyWithForeignScalar(pkcs8(original.privateKey), 'pkcs8');
    assert.equal(keyPairFault(key, original.publicKey), 'private-part-differs');
    assert.equal(keyPairFault(original.privateKey, original.publicKey), undefined);
  });

  void it("refuses an RSA-2048 key whose d, p and q belong to another modulus, which checkPrivateKey accepts", () => {
    const cert = new X509Certificate(rsa.pem);
    const { key } = rsaKeyWithForeignPrivateParts(rsa.keyPem);
    assert.equal(cert.checkPrivateKey(key), true, 'the hole: OpenSSL compares n and e only');
    assert.equal(keyPairFault(key, cert.publicKey), 'private-part-differs');
    assert.equal(keyPairFault(createPrivateKey(rsa.keyPem), cert.publicKey), undefined);
  });

  void it('refuses an RSA-PSS key with foreign private parts and accepts its own', () => {
    const original = generateKeyPairSync('rsa-pss', { modulusLength: 2048, hashAlgorithm: 'sha384', mgf1HashAlgorithm: 'sha384' });
    const { key } = rsaKeyWithForeignPrivateParts(pkcs8(original.privateKey));
    assert.equal(key.asymmetricKeyType, 'rsa-pss');
    assert.equal(keyPairFault(key, original.publicKey), 'private-part-differs');
    assert.equal(keyPairFault(original.privateKey, original.publicKey), undefined);
  });

  void it('sees an Ed25519 key carrying another public key as a key of another certificate: OpenSSL derives the public key from the seed', () => {
    // OneAsymmetricKey v2 (RFC 8410 §7): another key's seed with our public key beside it.
    const ours = generateKeyPairSync('ed25519');
    const other = generateKeyPairSync('ed25519');
    const seed = Buffer.from(other.privateKey.export({ format: 'jwk' }).d!, 'base64url');
    const publicKey = Buffer.from(ours.publicKey.export({ format: 'jwk' }).x!, 'base64url');
    const der = encodeTlv(
      DerTag.sequence,
      encodeTlv(DerTag.integer, Uint8Array.of(1)),
      encodeTlv(DerTag.sequence, encodeTlv(DerTag.oid, Uint8Array.of(0x2b, 0x65, 0x70))),
      encodeTlv(0x04, encodeTlv(0x04, seed)),
      encodeTlv(0x81, Buffer.concat([Buffer.of(0), publicKey])),
    );
    const key = createPrivateKey({ key: Buffer.from(der), format: 'der', type: 'pkcs8' });
    assert.ok(createPublicKey(key).equals(other.publicKey), 'the carried public key was ignored');
    assert.equal(keyPairFault(key, ours.publicKey), 'public-key-differs');
    assert.equal(keyPairFault(ours.privateKey, ours.publicKey), undefined);
  });

  void it('accepts the pairs of every signing key type and refuses a key of another pair', () => {
    const pairs: { privateKey: KeyObject; publicKey: KeyObject }[] = [
      generateKeyPairSync('ed25519'),
      generateKeyPairSync('ed448'), // no TLS scheme: node:crypto's defaults
      generateKeyPairSync('ec', { namedCurve: 'P-521' }),
      generateKeyPairSync('ec', { namedCurve: 'secp256k1' }), // no TLS scheme either
      generateKeyPairSync('rsa', { modulusLength: 2048 }),
      generateKeyPairSync('ml-dsa-44' as never),
    ];
    for (const [i, pair] of pairs.entries()) {
      const type = pair.privateKey.asymmetricKeyType;
      assert.equal(keyPairFault(pair.privateKey, pair.publicKey), undefined, `${type} with its own public key`);
      assert.equal(keyPairFault(pair.privateKey, pairs[(i + 1) % pairs.length]!.publicKey), 'public-key-differs', `${type} with another`);
    }
  });

  void it('says a key that cannot sign cannot sign', () => {
    const x25519 = generateKeyPairSync('x25519');
    assert.equal(keyPairFault(x25519.privateKey, x25519.publicKey), 'cannot-sign');
    assert.equal(keyPairFault(x25519.publicKey, x25519.publicKey), 'cannot-sign');
  });

  void it('names the key and its owner and says what to fix', () => {
    const cert = new X509Certificate(p256.pem);
    const names = { key: 'tls.key', owner: 'tls.crt' };
    assert.match(
      keyPairProblem(ecKeyWithForeignScalar(p256.keyPem, 'pkcs8').key, cert.publicKey, names)!,
      /^tls\.key does not belong to tls\.crt: its private part does not produce signatures tls\.crt's public key verifies .*replace tls\.key with the key tls\.crt was issued for$/,
    );
    assert.match(
      keyPairProblem(createPrivateKey(rsa.keyPem), cert.publicKey, names)!,
      /^tls\.key does not belong to tls\.crt: its public key is not tls\.crt's .*put the key tls\.crt was issued for in tls\.key/,
    );
    assert.equal(keyPairProblem(createPrivateKey(p256.keyPem), cert.publicKey, names), undefined);
  });

  void it('an intact key OpenSSL cannot sign with is one that cannot sign, with OpenSSL\'s reason, never a corrupted one', () => {
    const table: Array<[string, { privateKey: KeyObject; publicKey: KeyObject }]> = [
      ['RSA-PSS restricted to SHA-256 with a salt of at least 64 bytes (TLS uses 32)', restrictedPss(2048, 'sha256', 64)],
      ['RSA-PSS 1024 restricted to SHA-512 (64 + 64 + 2 bytes do not fit in 128)', restrictedPss(1024, 'sha512', 64)],
      ['RSA-512 (too short for PSS with SHA-256)', generateKeyPairSync('rsa', { modulusLength: 512 })],
    ];
    const names = { key: 'tls.key', owner: 'tls.crt' };
    for (const [name, pair] of table) {
      const check = checkKeyPair(pair.privateKey, pair.publicKey);
      assert.equal(check?.fault, 'cannot-sign', name);
      assert.ok(check.signingError !== undefined && check.signingError.length > 0, `${name}: OpenSSL's reason`);
      assert.equal(keyPairFault(pair.privateKey, pair.publicKey), 'cannot-sign', name);
      const message = keyPairProblem(pair.privateKey, pair.publicKey, names)!;
      assert.match(message, /^tls\.key cannot be used with tls\.crt: OpenSSL refuses to make the signatures this check and TLS need with it \(.+\); the key is not corrupted but restricted or too small for them/, name);
      assert.ok(message.includes(check.signingError), `${name}: ${message}`);
      assert.doesNotMatch(message, /corrupted or tampered|does not belong/, name);
    }
    // The same restrictions within what TLS uses sign: a PSS key limited to SHA-256 with salt 32.
    const fine = restrictedPss(2048, 'sha256', 32);
    assert.equal(checkKeyPair(fine.privateKey, fine.publicKey), undefined);
  });

  void it('an RSA-2048 key with a zeroed prime, which OpenSSL refuses to sign with, is a broken private part, not a restricted key', () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const jwk = privateKey.export({ format: 'jwk' });
    const der = privateKey.export({ type: 'pkcs1', format: 'der' });
    for (const field of ['p', 'q'] as const) {
      const value = Buffer.from(jwk[field]!, 'base64url');
      const at = der.indexOf(value);
      assert.ok(at > 0, `${field} found in the DER`);
      const broken = Buffer.from(der);
      broken.fill(0, at + 1, at + value.length);
      const key = createPrivateKey({ key: broken, format: 'der', type: 'pkcs1' });
      assert.deepEqual(checkKeyPair(key, publicKey), { fault: 'private-part-differs' }, field);
      assert.match(keyPairProblem(key, publicKey, { key: 'tls.key', owner: 'tls.crt' })!, /corrupted or tampered/, field);
    }
  });

  void it('loadCertifiedKey (every server and client configuration) refuses a swapped key as PEM, DER and KeyObject', () => {
    const swapped = ecKeyWithForeignScalar(p256.keyPem, 'pkcs8');
    const der = new Uint8Array(swapped.key.export({ type: 'pkcs8', format: 'der' }));
    for (const key of [swapped.pem, der, swapped.key]) {
      assert.throws(() => loadCertifiedKey({ cert: p256.pem, key }), /^TypeError: the private key does not belong to the certificate: its private part does not produce signatures/);
    }
    assert.throws(() => loadCertifiedKey({ cert: rsa.pem, key: rsaKeyWithForeignPrivateParts(rsa.keyPem).pem }), /its private part does not produce signatures/);
    assert.throws(() => loadCertifiedKey({ cert: rsa.pem, key: p256.keyPem }), /the private key does not belong to the certificate: its public key is not the certificate's/);
    assert.equal(loadCertifiedKey({ cert: p256.pem, key: p256.keyPem }).leaf.subject, new X509Certificate(p256.pem).subject);
  });
});
