import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { SignerKeyError, signerFromTlsSecret, type SecretLike } from '../../../src/signer/index.js';
import { asIssuer, issueCertificate, type IssuedCertificate } from '../../../src/cli/pki/dev-pki.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');

function tlsSecret(data: Record<string, string>): SecretLike {
  return { metadata: { namespace: 'shop', name: 'api-cert' }, data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])) };
}

function assertSignerError(fn: () => unknown, reason: SignerKeyError['reason'], message: string | RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof SignerKeyError, String(e));
    assert.equal(e.reason, reason);
    if (typeof message === 'string') assert.equal(e.message, message);
    else assert.match(e.message, message);
    return true;
  });
}

void describe('signerFromTlsSecret', () => {
  let ca: IssuedCertificate;
  let leaf: IssuedCertificate;
  let other: IssuedCertificate;
  before(async () => {
    ca = await issueCertificate({ commonName: 'Secret Test CA', isCA: true }, 'ecdsa-p256');
    leaf = await issueCertificate({ commonName: 'api.shop.svc', dnsNames: ['api.shop.svc'], delegationUsage: 'non-critical' }, 'ed25519', asIssuer(ca));
    other = await issueCertificate({ commonName: 'other.shop.svc', dnsNames: ['other.shop.svc'] }, 'ed25519', asIssuer(ca));
  });

  void it('loads the key from tls.key and the chain from tls.crt when they match', () => {
    const { signer, certificateChain } = signerFromTlsSecret(tlsSecret({ 'tls.key': leaf.key.privateKeyPem, 'tls.crt': leaf.pem + ca.pem }));
    assert.deepEqual([...signer.schemes], [0x0807]);
    assert.equal(certificateChain.length, 2);
    assert.deepEqual(certificateChain[0], leaf.der);
    assert.deepEqual(certificateChain[1], ca.der);
  });

  void it('reads stringData as well as base64 data', () => {
    const { signer } = signerFromTlsSecret({ metadata: { namespace: 'shop', name: 'x' }, stringData: { 'tls.key': leaf.key.privateKeyPem, 'tls.crt': leaf.pem } });
    assert.equal(signer.keyType, 'ed25519');
  });

  void it('says which Secret has no tls.key', () => {
    assertSignerError(() => signerFromTlsSecret(tlsSecret({ 'tls.crt': leaf.pem })), 'missing_key', 'Secret shop/api-cert has no tls.key');
    assertSignerError(() => signerFromTlsSecret({ metadata: { name: 'bare' } }), 'missing_key', 'Secret bare has no tls.key');
  });

  void it('says when tls.key is not a private key', () => {
    assertSignerError(() => signerFromTlsSecret(tlsSecret({ 'tls.key': leaf.pem, 'tls.crt': leaf.pem })), 'malformed_key', 'Secret shop/api-cert: tls.key is not a PKCS#8/PKCS#1/SEC1 PEM private key');
  });

  void it('says when the key does not match the certificate', () => {
    assertSignerError(() => signerFromTlsSecret(tlsSecret({ 'tls.key': other.key.privateKeyPem, 'tls.crt': leaf.pem })), 'key_mismatch', 'Secret shop/api-cert: key does not match the certificate in tls.crt');
  });

  void it('requires tls.crt unless told otherwise', () => {
    assertSignerError(() => signerFromTlsSecret(tlsSecret({ 'tls.key': leaf.key.privateKeyPem })), 'missing_certificate', 'Secret shop/api-cert has no tls.crt');
    const { certificateChain } = signerFromTlsSecret(tlsSecret({ 'tls.key': leaf.key.privateKeyPem }), { requireCertificate: false });
    assert.equal(certificateChain.length, 0);
  });

  void it('says when tls.crt is not a certificate chain', () => {
    assertSignerError(() => signerFromTlsSecret(tlsSecret({ 'tls.key': leaf.key.privateKeyPem, 'tls.crt': 'garbage' })), 'malformed_certificate', /^Secret shop\/api-cert: tls\.crt is not a PEM certificate chain/);
  });
});
