import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import { encode } from '../../../../src/tls/codec.js';
import { SignatureScheme } from '../../../../src/tls/constants.js';
import { verifySignature } from '../../../../src/tls/signature-schemes.js';
import {
  decodeDelegatedCredential,
  delegatedCredentialExpiry,
  delegatedCredentialSignatureVerifies,
  delegatedCredentialSignedContent,
  encodeCredential,
  validateDelegatedCredential,
  verifyDelegatedCredential,
  InvalidDelegatedCredential,
} from '../../../../src/tls/delegated/index.js';
import { FIZZ_DELEGATION_CERTIFICATE_PEM, FIZZ_P256_DELEGATED_CREDENTIAL_HEX } from './fizz-vector.js';

const fizzDc = decodeDelegatedCredential(Buffer.from(FIZZ_P256_DELEGATED_CREDENTIAL_HEX, 'hex'));
const fizzCert = new X509Certificate(FIZZ_DELEGATION_CERTIFICATE_PEM);
const fizzCertDer = new Uint8Array(fizzCert.raw);

void describe('delegated credential signed content', () => {
  void it('is 64 spaces, the server context string, a zero byte, the certificate, the Credential, then algorithm', () => {
    const cert = Uint8Array.from([1, 2, 3]);
    const credential = { validTime: 7, dcCertVerifyAlgorithm: SignatureScheme.ed25519, spki: Uint8Array.from([9]) };
    const content = delegatedCredentialSignedContent('server', cert, credential, SignatureScheme.ecdsa_secp384r1_sha384);
    const expected = Buffer.concat([
      Buffer.alloc(64, 0x20),
      Buffer.from('TLS, server delegated credentials', 'ascii'),
      Buffer.from([0]),
      Buffer.from(cert),
      Buffer.from('00000007' + '0807' + '00000109', 'hex'),
      Buffer.from('0503', 'hex'),
    ]);
    assert.deepEqual(Buffer.from(content), expected);
  });

  void it('uses the client context string for client authentication', () => {
    const credential = { validTime: 1, dcCertVerifyAlgorithm: SignatureScheme.ed25519, spki: Uint8Array.from([9]) };
    const content = Buffer.from(delegatedCredentialSignedContent('client', new Uint8Array(), credential, SignatureScheme.ed25519));
    assert.equal(content.subarray(64, 64 + 33).toString('ascii'), 'TLS, client delegated credentials');
  });

  void it('verifies the signature of the fizz P-256 test credential over its certificate', () => {
    assert.equal(delegatedCredentialSignatureVerifies(fizzDc, fizzCertDer, 'server'), true);
  });

  void it('passes every receiver rule for the fizz credential at a time inside its window', () => {
    const expiry = delegatedCredentialExpiry(fizzDc, fizzCert);
    // notBefore 2019-05-24T19:52:57Z + 0x1ce0d1 s (21d 21h 42m 41s)
    assert.equal(expiry.toISOString(), '2019-06-15T17:35:38.000Z');
    const now = new Date(expiry.getTime() - 86400 * 1000);
    const verified = verifyDelegatedCredential(Buffer.from(FIZZ_P256_DELEGATED_CREDENTIAL_HEX, 'hex'), {
      certificate: fizzCert,
      now,
      acceptedDcSchemes: [SignatureScheme.ecdsa_secp256r1_sha256],
      acceptedSignatureSchemes: [SignatureScheme.ecdsa_secp256r1_sha256],
    });
    assert.equal(verified.publicKey.asymmetricKeyType, 'ec');
    assert.equal(verified.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.deepEqual(verified.expiresAt, expiry);
  });

  void it('rejects the fizz credential today because it expired in 2019', () => {
    assert.throws(
      () => validateDelegatedCredential(fizzDc, { certificate: fizzCert }),
      (e: unknown) => e instanceof InvalidDelegatedCredential && e.rule === 'expired',
    );
  });

  void it('does not verify the fizz credential with the context string of the other side', () => {
    assert.equal(delegatedCredentialSignatureVerifies(fizzDc, fizzCertDer, 'client'), false);
  });

  void it('does not verify the fizz credential when algorithm is placed before the Credential (the BoGo order)', () => {
    const context = Buffer.from('TLS, server delegated credentials', 'ascii');
    const wrongOrder = Buffer.concat([
      Buffer.alloc(64, 0x20),
      context,
      Buffer.from([0]),
      Buffer.from(fizzCertDer),
      Buffer.from(encode((w) => w.u16(fizzDc.algorithm))),
      Buffer.from(encodeCredential(fizzDc.credential)),
    ]);
    assert.equal(verifySignature(fizzDc.algorithm, fizzCert.publicKey, wrongOrder, fizzDc.signature), false);
    const rightOrder = delegatedCredentialSignedContent('server', fizzCertDer, fizzDc.credential, fizzDc.algorithm);
    assert.equal(verifySignature(fizzDc.algorithm, fizzCert.publicKey, rightOrder, fizzDc.signature), true);
  });

  void it('does not verify the fizz credential with one flipped signature bit', () => {
    const signature = Uint8Array.from(fizzDc.signature);
    signature[signature.length - 1]! ^= 1;
    assert.equal(delegatedCredentialSignatureVerifies({ ...fizzDc, signature }, fizzCertDer), false);
  });
});
