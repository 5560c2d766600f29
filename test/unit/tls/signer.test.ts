/**
 * The key signer (src/tls/signer.ts) on both of its paths: the handshake addon's signature block
 * (src/tls/native/signing.ts over handshake.c) and node:crypto. Every scheme of every key type is
 * signed and the signature verified with node:crypto as a peer verifies it. This file runs again
 * with DC_TLS_NATIVE=off in record-path-node-crypto.test.ts, where every signature is node:crypto's.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, generateKeyPairSync, randomBytes, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { SignatureScheme } from '../../../src/tls/constants.js';
import { nativeHandshake, type NativeHandshake } from '../../../src/tls/native/handshake.js';
import { nativeSigningKey, nativeSigningStatus } from '../../../src/tls/native/signing.js';
import { verifySignature, verifyTls12Signature } from '../../../src/tls/signature-schemes.js';
import { createKeySigner, signsNatively } from '../../../src/tls/signer.js';

const forcedPure = process.env['DC_TLS_NATIVE'] === 'off';
const S = SignatureScheme;

const KEYS: readonly (readonly [string, () => { privateKey: KeyObject; publicKey: KeyObject }, boolean])[] = [
  // name, key pair, whether the addon serves it
  ['P-256', () => generateKeyPairSync('ec', { namedCurve: 'P-256' }), true],
  ['P-384', () => generateKeyPairSync('ec', { namedCurve: 'P-384' }), true],
  ['P-521', () => generateKeyPairSync('ec', { namedCurve: 'P-521' }), true],
  ['RSA-2048', () => generateKeyPairSync('rsa', { modulusLength: 2048 }), true],
  ['Ed25519', () => generateKeyPairSync('ed25519'), true],
  ['RSASSA-PSS key', () => generateKeyPairSync('rsa-pss', { modulusLength: 2048 }), false],
];

function addon(): NativeHandshake {
  const n = nativeHandshake();
  assert.ok(n, 'the handshake addon must load after make build');
  return n;
}

void test('signatures run on the addon after its self-check, and on node:crypto with DC_TLS_NATIVE=off', () => {
  assert.equal(nativeSigningStatus(), forcedPure ? 'node:crypto (no native handshake addon)' : 'native');
});

void describe('every scheme of every key type signs, and node:crypto verifies it', () => {
  for (const [name, pair, served] of KEYS) {
    void test(name, () => {
      const { privateKey, publicKey } = pair();
      const signer = createKeySigner(privateKey);
      const all = [...new Set([...signer.schemes, ...(signer.tls12Schemes ?? [])])];
      assert.ok(all.length > 0);
      for (const scheme of all) {
        assert.equal(signsNatively(signer, scheme), served && !forcedPure, `${name} 0x${scheme.toString(16)}: which path signs`);
        // Empty, a CertificateVerify's size, and a delegated credential's (it holds a certificate);
        // twice each: the first native signature per scheme is verified inside, the later ones not.
        for (const message of [new Uint8Array(0), randomBytes(130), randomBytes(130), randomBytes(70_000)]) {
          const signature = signer.sign(scheme, message) as Uint8Array;
          const tls13 = signer.schemes.includes(scheme);
          const ok = tls13 ? verifySignature(scheme, publicKey, message, signature) : verifyTls12Signature(scheme, publicKey, message, signature);
          assert.ok(ok, `${name} 0x${scheme.toString(16)}, ${message.length} bytes: the signature verifies`);
          // A signature of other bytes does not verify: the check above can fail.
          assert.equal(verifySignature(scheme, publicKey, Buffer.concat([message, Uint8Array.of(1)]), signature), false);
        }
      }
    });
  }
});

void test('deterministic schemes give the bytes node:crypto and RFC 8032 give: Ed25519, RSA PKCS#1 v1.5', () => {
  // RFC 8032 §7.1 TEST 3.
  const ed = createPrivateKey({
    key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), Buffer.from('c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7', 'hex')]),
    format: 'der',
    type: 'pkcs8',
  });
  const expected = '6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a';
  assert.equal(Buffer.from(createKeySigner(ed).sign(S.ed25519, Buffer.from('af82', 'hex')) as Uint8Array).toString('hex'), expected);
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const message = randomBytes(100);
  for (const [scheme, hash] of [
    [S.rsa_pkcs1_sha256, 'sha256'],
    [S.rsa_pkcs1_sha384, 'sha384'],
    [S.rsa_pkcs1_sha512, 'sha512'],
  ] as const) {
    assert.deepEqual(Buffer.from(createKeySigner(privateKey).sign(scheme, message) as Uint8Array), cryptoSign(hash, message, { key: privateKey, padding: 1 }));
  }
});

void test('a scheme that does not fit the key is refused on both paths', () => {
  const signer = createKeySigner(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
  assert.throws(() => signer.sign(S.ecdsa_secp384r1_sha384, randomBytes(10)), /cannot sign with scheme 0x503/);
  assert.throws(() => signer.sign(S.rsa_pss_rsae_sha256, randomBytes(10)), /cannot sign with scheme 0x804/);
});

void describe('the addon signature block refuses bad input with a clear error', { skip: forcedPure && 'DC_TLS_NATIVE=off: no addon' }, () => {
  const signCode = (e: unknown): boolean => (e as { code?: string }).code === 'ERR_TLS_NATIVE_SIGN';
  const pkcs8 = (key: KeyObject): Buffer => key.export({ format: 'der', type: 'pkcs8' });

  void test('the PKCS#8 DER is wiped after import, whether the import works or not', () => {
    const der = pkcs8(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
    addon().signingKey(der);
    assert.ok(der.every((b) => b === 0), 'wiped after a good import');
    const garbage = randomBytes(100);
    assert.throws(() => addon().signingKey(garbage), (e) => signCode(e) && /PKCS#8 private key/.test((e as Error).message));
    assert.ok(garbage.every((b) => b === 0), 'wiped after a failed import');
    const rsaPss = pkcs8(generateKeyPairSync('rsa-pss', { modulusLength: 2048 }).privateKey);
    assert.throws(() => addon().signingKey(rsaPss), (e) => signCode(e) && /serves EC P-256\/P-384\/P-521, RSA/.test((e as Error).message));
    assert.ok(rsaPss.every((b) => b === 0), 'wiped after a refused key type');
  });

  void test('malformed and unsupported keys: garbage, trailing bytes, a public key, other curves and types', () => {
    const good = pkcs8(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
    assert.throws(() => addon().signingKey(Buffer.concat([good, Uint8Array.of(0)])), signCode);
    assert.throws(() => addon().signingKey(new Uint8Array(0)), signCode);
    assert.throws(() => addon().signingKey(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'der', type: 'spki' })), signCode);
    for (const other of [
      generateKeyPairSync('ec', { namedCurve: 'brainpoolP256r1' }).privateKey,
      generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).privateKey,
      generateKeyPairSync('x25519').privateKey,
      generateKeyPairSync('ed448').privateKey,
    ]) {
      assert.throws(() => addon().signingKey(pkcs8(other)), (e) => signCode(e) && /serves/.test((e as Error).message), other.asymmetricKeyType);
      assert.equal(nativeSigningKey(other), undefined, `${other.asymmetricKeyType}: node:crypto signs it`);
    }
    assert.throws(() => addon().signingKey('key' as unknown as Uint8Array), TypeError);
  });

  void test('sign: a scheme that does not fit the key, a scheme out of range, a foreign object, too many bytes', () => {
    const p256 = addon().signingKey(pkcs8(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey));
    const rsa = addon().signingKey(pkcs8(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey));
    const message = randomBytes(32);
    for (const scheme of [S.ecdsa_secp384r1_sha384, S.rsa_pss_rsae_sha256, S.ed25519, S.rsa_pss_pss_sha256, S.mldsa65, 0]) {
      assert.throws(() => addon().sign(p256, scheme, message), (e) => signCode(e) && /does not fit the key/.test((e as Error).message), `0x${scheme.toString(16)}`);
    }
    assert.throws(() => addon().sign(rsa, S.ecdsa_secp256r1_sha256, message), signCode);
    assert.throws(() => addon().sign(rsa, S.rsa_pss_pss_sha256, message), signCode);
    for (const scheme of [-1, 0x10000, 1.5, Number.NaN]) assert.throws(() => addon().sign(p256, scheme, message), /out of range/);
    const transcript = addon().transcriptCreate(1);
    assert.throws(() => addon().sign(transcript as never, S.ecdsa_secp256r1_sha256, message), /not a signing key/);
    assert.throws(() => addon().sign({} as never, S.ecdsa_secp256r1_sha256, message), /not a signing key/);
    assert.throws(() => addon().sign(p256, S.ecdsa_secp256r1_sha256, 'message' as unknown as Uint8Array), TypeError);
    assert.throws(() => addon().sign(p256, S.ecdsa_secp256r1_sha256, new Uint8Array((1 << 24) + 1)), /too long/);
    assert.equal(addon().sign(p256, S.ecdsa_secp256r1_sha256, new Uint8Array(1 << 24)).length > 0, true);
  });

  void test('a key whose native signing fails goes back to node:crypto for good, with one warning', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const native = nativeSigningKey(privateKey);
    assert.ok(native);
    assert.ok(native.serves(S.ecdsa_secp256r1_sha256));
    const warnings: Error[] = [];
    const onWarning = (w: Error): number => warnings.push(w);
    process.on('warning', onWarning);
    try {
      // The addon refuses a scheme of another curve: the wrapper answers undefined (node:crypto's turn).
      assert.equal(native.sign(S.ecdsa_secp384r1_sha384, randomBytes(10)), undefined);
      assert.equal(native.serves(S.ecdsa_secp256r1_sha256), false);
      assert.equal(native.sign(S.ecdsa_secp256r1_sha256, randomBytes(10)), undefined);
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off('warning', onWarning);
    }
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!.message, /an ec key: signing with scheme 0x503 failed .*; it signs on node:crypto/);
    // A signer over the same key, made afresh, is unaffected.
    const signer = createKeySigner(privateKey);
    const message = randomBytes(50);
    assert.ok(signsNatively(signer, S.ecdsa_secp256r1_sha256));
    assert.ok(verifySignature(S.ecdsa_secp256r1_sha256, publicKey, message, signer.sign(S.ecdsa_secp256r1_sha256, message) as Uint8Array));
  });

  void test('keys made and dropped in numbers are freed by the collector (no crash, signatures stay right)', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const message = randomBytes(64);
    for (let i = 0; i < 2000; i++) {
      const key = addon().signingKey(pkcs8(privateKey));
      const signature = addon().sign(key, S.ecdsa_secp256r1_sha256, message);
      if (i % 500 === 0) assert.ok(verifySignature(S.ecdsa_secp256r1_sha256, publicKey, message, signature));
    }
  });
});
