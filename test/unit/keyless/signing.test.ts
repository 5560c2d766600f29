import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  constants,
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  publicDecrypt,
  verify,
  type KeyObject,
} from 'node:crypto';
import { KeylessError, KeylessFormatError } from '../../../src/keyless/errors.js';
import { SigningKey } from '../../../src/keyless/keystore.js';
import { emsaPssEncode } from '../../../src/keyless/digest-signing.js';
import { ErrorCode, Opcode, signOperationOf } from '../../../src/keyless/protocol.js';
import type { SignRequest } from '../../../src/keyless/sign-request.js';
import { computeSki, parseSkiHex, skiHex } from '../../../src/keyless/ski.js';
import { SignatureScheme, signatureSchemeName } from '../../../src/tls/constants.js';
import { verifySignature } from '../../../src/tls/signature-schemes.js';
import { makeKeylessPki, opensslSkiOf, type KeylessPki } from './pki.js';

const message = Buffer.from('TLS 1.3, server CertificateVerify test message');
const digest = (hash: string): Buffer => createHash(hash).update(message).digest();

/** A documented (digest) signing request. */
function req(code: number, payload: Uint8Array): SignRequest {
  const operation = signOperationOf(code);
  assert.ok(operation, `opcode 0x${code.toString(16)} is a signing opcode`);
  return { kind: 'digest', operation, payload };
}

void describe('digest signing: node:crypto for RSA and Ed25519, @noble/curves for ECDSA', () => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const rsaKey = new SigningKey(rsa.privateKey, 'test');

  for (const [code, hash] of [
    [Opcode.rsaSignSha1, 'sha1'],
    [Opcode.rsaSignSha224, 'sha224'],
    [Opcode.rsaSignSha256, 'sha256'],
    [Opcode.rsaSignSha384, 'sha384'],
    [Opcode.rsaSignSha512, 'sha512'],
  ] as const) {
    void it(`signs an RSA PKCS#1 v1.5 ${hash} digest that node:crypto verifies over the message`, () => {
      const sig = rsaKey.sign(req(code, digest(hash)));
      assert.ok(verify(hash, message, { key: rsa.publicKey, padding: constants.RSA_PKCS1_PADDING }, sig));
    });
  }

  void it('signs an RSA MD5SHA1 digest as PKCS#1 type 1 padding without DigestInfo', () => {
    const md5sha1 = Buffer.concat([digest('md5'), digest('sha1')]);
    const sig = rsaKey.sign(req(Opcode.rsaSignMd5Sha1, md5sha1));
    assert.deepEqual(publicDecrypt({ key: rsa.publicKey, padding: constants.RSA_PKCS1_PADDING }, sig), md5sha1);
  });

  for (const [code, hash] of [
    [Opcode.rsaPssSignSha256, 'sha256'],
    [Opcode.rsaPssSignSha384, 'sha384'],
    [Opcode.rsaPssSignSha512, 'sha512'],
  ] as const) {
    void it(`signs an RSA-PSS ${hash} digest (salt = hash length) that node:crypto verifies`, () => {
      const sig = rsaKey.sign(req(code, digest(hash)));
      assert.equal(sig.length, 256);
      const key = { key: rsa.publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: createHash(hash).digest().length };
      assert.ok(verify(hash, message, key, sig));
    });
  }

  void it('signs RSA-PSS with a modulus whose encoded message is one byte shorter than the modulus', () => {
    const odd = generateKeyPairSync('rsa', { modulusLength: 1537 });
    const sig = new SigningKey(odd.privateKey, 'test').sign(req(Opcode.rsaPssSignSha256, digest('sha256')));
    assert.equal(odd.privateKey.asymmetricKeyDetails?.modulusLength, 1537);
    assert.equal(sig.length, 193);
    assert.ok(verify('sha256', message, { key: odd.publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, sig));
  });

  void it('encodes EMSA-PSS with a trailer byte 0xbc and the top bits cleared', () => {
    const em = emsaPssEncode('sha256', digest('sha256'), 2047, new Uint8Array(32));
    assert.equal(em.length, 256);
    assert.equal(em[255], 0xbc);
    assert.equal(em[0]! & 0x80, 0);
  });

  const curves = [
    ['P-256', 'prime256v1', [['sha256', Opcode.ecdsaSignSha256], ['sha384', Opcode.ecdsaSignSha384], ['sha512', Opcode.ecdsaSignSha512], ['sha1', Opcode.ecdsaSignSha1], ['sha224', Opcode.ecdsaSignSha224]]],
    ['P-384', 'secp384r1', [['sha384', Opcode.ecdsaSignSha384], ['sha256', Opcode.ecdsaSignSha256]]],
    ['P-521', 'secp521r1', [['sha512', Opcode.ecdsaSignSha512], ['sha256', Opcode.ecdsaSignSha256]]],
  ] as const;
  for (const [label, curve, hashes] of curves) {
    const pair = generateKeyPairSync('ec', { namedCurve: curve });
    const key = new SigningKey(pair.privateKey, 'test');
    for (const [hash, code] of hashes) {
      void it(`signs an ECDSA ${label} ${hash} digest that node:crypto verifies, 50 times in a row`, () => {
        for (let i = 0; i < 50; i++) {
          const msg = Buffer.from(`message ${i}`);
          const sig = key.sign(req(code, createHash(hash).update(msg).digest()));
          assert.ok(verify(hash, msg, { key: pair.publicKey, dsaEncoding: 'der' }, sig), `signature ${i}`);
        }
      });
    }
  }

  void it('hedges ECDSA nonces: the same digest signed 200 times gives 200 different r values', () => {
    const pair = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const key = new SigningKey(pair.privateKey, 'test');
    const d = digest('sha256');
    const rs = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const sig = Buffer.from(key.sign(req(Opcode.ecdsaSignSha256, d)));
      assert.ok(verify('sha256', message, { key: pair.publicKey, dsaEncoding: 'der' }, sig));
      const rLength = sig[3]!;
      rs.add(sig.subarray(4, 4 + rLength).toString('hex'));
    }
    assert.equal(rs.size, 200);
  });

  void it('signs the whole message with Ed25519', () => {
    const pair = generateKeyPairSync('ed25519');
    const sig = new SigningKey(pair.privateKey, 'test').sign(req(Opcode.ed25519Sign, message));
    assert.ok(verify(null, message, pair.publicKey, sig));
  });

  void it('rejects a digest of the wrong length as a format error', () => {
    const pair = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const key = new SigningKey(pair.privateKey, 'test');
    assert.throws(() => key.sign(req(Opcode.ecdsaSignSha256, new Uint8Array(31))), KeylessFormatError);
    assert.throws(() => rsaKey.sign(req(Opcode.rsaPssSignSha256, new Uint8Array(48))), KeylessFormatError);
  });

  void it('refuses an opcode of another key family with a crypto failure naming the key', () => {
    const pair = generateKeyPairSync('ed25519');
    const key = new SigningKey(pair.privateKey, 'test');
    assert.throws(
      () => key.sign(req(Opcode.ecdsaSignSha256, digest('sha256'))),
      (err: unknown) => err instanceof KeylessError && err.code === ErrorCode.cryptoFailed && err.message.includes(key.skiHex),
    );
  });
});

void describe('whole-message signing (the sign-message extension) with node:crypto', () => {
  const S = SignatureScheme;
  const pairs = {
    p256: generateKeyPairSync('ec', { namedCurve: 'prime256v1' }),
    p384: generateKeyPairSync('ec', { namedCurve: 'secp384r1' }),
    p521: generateKeyPairSync('ec', { namedCurve: 'secp521r1' }),
    rsa: generateKeyPairSync('rsa', { modulusLength: 2048 }),
    ed25519: generateKeyPairSync('ed25519'),
  };
  const cases = [
    ['p256', S.ecdsa_secp256r1_sha256],
    ['p384', S.ecdsa_secp384r1_sha384],
    ['p521', S.ecdsa_secp521r1_sha512],
    ['rsa', S.rsa_pss_rsae_sha256],
    ['rsa', S.rsa_pss_rsae_sha384],
    ['rsa', S.rsa_pss_rsae_sha512],
    ['rsa', S.rsa_pkcs1_sha256],
    ['rsa', S.rsa_pkcs1_sha384],
    ['rsa', S.rsa_pkcs1_sha512],
    ['ed25519', S.ed25519],
  ] as const;
  for (const [name, scheme] of cases) {
    void it(`signs with ${signatureSchemeName(scheme)} what node:crypto verifies as that scheme`, () => {
      const key = new SigningKey(pairs[name].privateKey, 'test');
      const sig = key.sign({ kind: 'message', scheme, message });
      assert.ok(verifySignature(scheme, pairs[name].publicKey, message, sig));
      assert.ok(!verifySignature(scheme, pairs[name].publicKey, Buffer.from('another message'), sig));
    });
  }

  void it('refuses a scheme that does not fit the key, and an unknown scheme, as crypto failures', () => {
    const key = new SigningKey(pairs.p256.privateKey, 'test');
    for (const scheme of [S.ecdsa_secp384r1_sha384, S.rsa_pss_rsae_sha256, S.ed25519, 0x1234]) {
      assert.throws(
        () => key.sign({ kind: 'message', scheme, message }),
        (err: unknown) => err instanceof KeylessError && err.code === ErrorCode.cryptoFailed && err.message.includes('scheme'),
        `scheme 0x${scheme.toString(16)}`,
      );
    }
  });
});

void describe('subject key identifier', () => {
  let pki: KeylessPki;
  before(() => {
    pki = makeKeylessPki(['ed25519', 'p256', 'rsa2048']);
  });
  after(() => pki.cleanup());

  void it('equals the subjectKeyIdentifier openssl writes into a certificate, for every key type', () => {
    for (const name of ['ed25519', 'p256', 'rsa2048'] as const) {
      const { cert, key } = pki.keys[name];
      assert.equal(skiHex(computeSki(createPrivateKey(key))), opensslSkiOf(cert, pki.dir), name);
    }
  });

  void it('is the same from the private key, the public key and the DER SubjectPublicKeyInfo', () => {
    const priv = createPrivateKey(pki.keys.p256.key);
    const pub: KeyObject = createPublicKey(priv);
    const spki = new Uint8Array(pub.export({ type: 'spki', format: 'der' }));
    assert.equal(skiHex(computeSki(priv)), skiHex(computeSki(pub)));
    assert.equal(skiHex(computeSki(pub)), skiHex(computeSki(spki)));
  });

  void it('parses hex with colons as openssl prints it', () => {
    const hex = 'AB:CD:'.repeat(10).slice(0, -1);
    assert.equal(skiHex(parseSkiHex(hex)), 'abcd'.repeat(10));
    assert.throws(() => parseSkiHex('abcd'), /20 bytes/);
  });
});


