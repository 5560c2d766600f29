import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  decodeDelegatedCredential,
  describeDelegatedCredential,
  issueDelegatedCredential,
} from '../../../../src/tls/delegated/index.js';
import { FIZZ_DELEGATION_CERTIFICATE_PEM, FIZZ_P256_DELEGATED_CREDENTIAL_HEX } from './fizz-vector.js';
import { makeCertificate } from './fixtures.js';

void describe('describing a delegated credential', () => {
  void it('reports fields, expiry, remaining time and validity of a fresh credential', async () => {
    const cert = await makeCertificate({ keyType: 'p384' });
    const now = new Date(Math.floor(Date.now() / 1000) * 1000);
    const issued = await issueDelegatedCredential({ certificate: cert.der, signer: cert.signer, dcAlgorithm: 'ed25519', validitySeconds: 7200, now });
    const d = describeDelegatedCredential(issued.delegatedCredential, cert.der, { now });
    assert.equal(d.algorithm, 'ed25519');
    assert.equal(d.signatureAlgorithm, 'ecdsa_secp384r1_sha384');
    assert.equal(d.expiresAt, issued.expiresAt.toISOString());
    assert.equal(d.remainingSeconds, 7200);
    assert.equal(d.publicKeyType, 'ed25519');
    const spki = decodeDelegatedCredential(issued.delegatedCredential).credential.spki;
    assert.equal(d.publicKeyFingerprint, createHash('sha256').update(spki).digest('hex'));
    assert.equal(d.publicKeyFingerprint, issued.publicKeyFingerprint);
    assert.equal(d.signatureValid, true);
    assert.equal(d.valid, true);
    assert.equal(d.problem, undefined);
    assert.doesNotThrow(() => JSON.stringify(d));
  });

  void it('says why the fizz credential is not valid today while its signature still is', () => {
    const d = describeDelegatedCredential(Buffer.from(FIZZ_P256_DELEGATED_CREDENTIAL_HEX, 'hex'), new X509Certificate(FIZZ_DELEGATION_CERTIFICATE_PEM));
    assert.equal(d.valid, false);
    assert.equal(d.problem?.rule, 'expired');
    assert.equal(d.signatureValid, true);
    assert.equal(d.publicKeyType, 'ec prime256v1');
    assert.equal(d.expiresAt, '2019-06-15T17:35:38.000Z');
    assert.ok(d.remainingSeconds < 0);
  });
});
