import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { DecodeError } from '../../../../src/tls/errors.js';
import { SignatureScheme } from '../../../../src/tls/constants.js';
import {
  decodeCredential,
  decodeDelegatedCredential,
  encodeCredential,
  encodeDelegatedCredential,
  type DelegatedCredential,
} from '../../../../src/tls/delegated/index.js';
import { FIZZ_P256_DELEGATED_CREDENTIAL_HEX } from './fizz-vector.js';

const arbitraryDc: fc.Arbitrary<DelegatedCredential> = fc.record({
  credential: fc.record({
    validTime: fc.integer({ min: 0, max: 0xffffffff }),
    dcCertVerifyAlgorithm: fc.integer({ min: 0, max: 0xffff }),
    spki: fc.uint8Array({ minLength: 1, maxLength: 400 }),
  }),
  algorithm: fc.integer({ min: 0, max: 0xffff }),
  signature: fc.uint8Array({ minLength: 1, maxLength: 600 }),
}).map((dc) => ({ ...dc, credential: { ...dc.credential } })); // plain objects for deepEqual

const sample: DelegatedCredential = {
  credential: { validTime: 0x01020304, dcCertVerifyAlgorithm: SignatureScheme.ed25519, spki: Uint8Array.from([0xaa, 0xbb]) },
  algorithm: SignatureScheme.ecdsa_secp256r1_sha256,
  signature: Uint8Array.from([0xcc]),
};

void describe('DelegatedCredential codec', () => {
  void it('round-trips any well-formed credential', () => {
    fc.assert(
      fc.property(arbitraryDc, (dc) => {
        const bytes = encodeDelegatedCredential(dc);
        assert.deepEqual(decodeDelegatedCredential(bytes), dc);
        assert.deepEqual(decodeCredential(encodeCredential(dc.credential)), dc.credential);
      }),
    );
  });

  void it('encodes fields in RFC 9345 order with 24-bit and 16-bit length prefixes', () => {
    assert.equal(
      Buffer.from(encodeDelegatedCredential(sample)).toString('hex'),
      '01020304' + '0807' + '000002aabb' + '0403' + '0001cc',
    );
  });

  void it('rejects every strict prefix of a valid credential with DecodeError', () => {
    fc.assert(
      fc.property(arbitraryDc, (dc) => {
        const bytes = encodeDelegatedCredential(dc);
        for (let n = 0; n < bytes.length; n++) {
          assert.throws(() => decodeDelegatedCredential(bytes.subarray(0, n)), DecodeError);
        }
      }),
      { numRuns: 30 },
    );
  });

  void it('rejects trailing bytes after the signature', () => {
    const bytes = encodeDelegatedCredential(sample);
    const longer = new Uint8Array([...bytes, 0]);
    assert.throws(() => decodeDelegatedCredential(longer), (e: unknown) => e instanceof DecodeError && /trailing/.test(e.message));
  });

  void it('rejects an empty signature', () => {
    const bytes = Buffer.from('01020304' + '0807' + '000002aabb' + '0403' + '0000', 'hex');
    assert.throws(() => decodeDelegatedCredential(bytes), DecodeError);
  });

  void it('rejects an empty SubjectPublicKeyInfo', () => {
    const bytes = Buffer.from('01020304' + '0807' + '000000' + '0403' + '0001cc', 'hex');
    assert.throws(() => decodeDelegatedCredential(bytes), DecodeError);
  });

  void it('refuses to encode an empty signature or SPKI', () => {
    assert.throws(() => encodeDelegatedCredential({ ...sample, signature: new Uint8Array() }), RangeError);
    assert.throws(
      () => encodeDelegatedCredential({ ...sample, credential: { ...sample.credential, spki: new Uint8Array() } }),
      RangeError,
    );
  });

  void it('never throws anything but DecodeError on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        try {
          decodeDelegatedCredential(bytes);
        } catch (e) {
          assert.ok(e instanceof DecodeError, String(e));
        }
      }),
    );
  });

  void it('decodes the fizz P-256 test credential and re-encodes it byte for byte', () => {
    const bytes = Buffer.from(FIZZ_P256_DELEGATED_CREDENTIAL_HEX, 'hex');
    const dc = decodeDelegatedCredential(bytes);
    assert.equal(dc.credential.validTime, 0x001ce0d1);
    assert.equal(dc.credential.dcCertVerifyAlgorithm, SignatureScheme.ecdsa_secp256r1_sha256);
    assert.equal(dc.credential.spki.length, 91);
    assert.equal(dc.algorithm, SignatureScheme.ecdsa_secp256r1_sha256);
    assert.equal(dc.signature.length, 0x48);
    assert.deepEqual(Buffer.from(encodeDelegatedCredential(dc)), bytes);
  });

  void it('decoded fields do not alias the input buffer', () => {
    const bytes = encodeDelegatedCredential(sample).slice();
    const dc = decodeDelegatedCredential(bytes);
    bytes.fill(0);
    assert.deepEqual(dc.signature, Uint8Array.from([0xcc]));
  });
});
