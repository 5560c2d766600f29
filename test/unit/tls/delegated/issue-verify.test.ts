import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { describe, it, before } from 'node:test';
import { SignatureScheme, signatureSchemeName } from '../../../../src/tls/constants.js';
import { verifySignature } from '../../../../src/tls/signature-schemes.js';
import { createKeySigner, type Signer } from '../../../../src/tls/signer.js';
import {
  DelegationError,
  MAX_DC_VALIDITY_SECONDS,
  decodeDelegatedCredential,
  issueDelegatedCredential,
  verifyDelegatedCredential,
  type DcAlgorithmName,
} from '../../../../src/tls/delegated/index.js';
import { makeCertificate, otherSigner, type CertKeyType, type TestCertificate } from './fixtures.js';
import { ecKeyWithForeignScalar } from '../../../support/mismatched-keys.js';

const S = SignatureScheme;
const CERT_KEYS: ReadonlyArray<{ keyType: CertKeyType; algorithm: number }> = [
  { keyType: 'ed25519', algorithm: S.ed25519 },
  { keyType: 'p256', algorithm: S.ecdsa_secp256r1_sha256 },
  { keyType: 'p384', algorithm: S.ecdsa_secp384r1_sha384 },
  { keyType: 'rsa', algorithm: S.rsa_pss_rsae_sha256 },
];
const DC_ALGORITHMS: readonly DcAlgorithmName[] = [
  'ed25519',
  'ecdsa_secp256r1_sha256',
  'ecdsa_secp384r1_sha384',
  'rsa_pss_pss_sha256',
];
const ALL_SCHEMES = Object.values(S);

function rejectsWith(code: string, pattern?: RegExp): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof DelegationError, `expected DelegationError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (pattern) assert.match(e.message, pattern);
    return true;
  };
}

void describe('issuing and verifying delegated credentials', () => {
  const certs = new Map<CertKeyType, TestCertificate>();
  before(async () => {
    for (const { keyType } of CERT_KEYS) certs.set(keyType, await makeCertificate({ keyType }));
  });

  for (const { keyType, algorithm } of CERT_KEYS) {
    for (const dcAlgorithm of DC_ALGORITHMS) {
      void it(`issues a ${dcAlgorithm} credential with a ${keyType} certificate key that a receiver accepts and whose key signs CertificateVerify`, async () => {
        const cert = certs.get(keyType)!;
        const now = new Date();
        const issued = await issueDelegatedCredential({
          certificate: cert.der,
          signer: cert.signer,
          signatureScheme: algorithm,
          dcAlgorithm,
          validitySeconds: 86400,
          now,
        });
        const decoded = decodeDelegatedCredential(issued.delegatedCredential);
        assert.equal(decoded.algorithm, algorithm);
        assert.equal(signatureSchemeName(decoded.credential.dcCertVerifyAlgorithm), dcAlgorithm);
        assert.equal(issued.expiresAt.getTime(), (Math.floor(now.getTime() / 1000) + 86400) * 1000);
        assert.match(issued.privateKeyPem, /^-----BEGIN PRIVATE KEY-----/);

        const verified = verifyDelegatedCredential(issued.delegatedCredential, {
          certificate: cert.der,
          now,
          acceptedDcSchemes: [decoded.credential.dcCertVerifyAlgorithm],
          acceptedSignatureSchemes: [algorithm],
        });
        assert.deepEqual(verified.expiresAt, issued.expiresAt);
        assert.ok(verified.publicKey.equals(issued.publicKey));
        // The credential key is the one a CertificateVerify would be checked against.
        const message = Buffer.from('transcript');
        const sig = await createKeySigner(issued.privateKey).sign(verified.dcCertVerifyAlgorithm, message);
        assert.equal(verifySignature(verified.dcCertVerifyAlgorithm, verified.publicKey, message, sig), true);
      });
    }
  }

  void it('issues a fresh key pair every time', async () => {
    const cert = certs.get('p256')!;
    const opts = { certificate: cert.der, signer: cert.signer, dcAlgorithm: 'ed25519' as const, validitySeconds: 3600 };
    const a = await issueDelegatedCredential(opts);
    const b = await issueDelegatedCredential(opts);
    assert.equal(a.publicKey.equals(b.publicKey), false);
  });

  void it('defaults the signature scheme to one the certificate key and the signer both support', async () => {
    const cert = certs.get('rsa')!;
    const issued = await issueDelegatedCredential({ certificate: cert.der, signer: cert.signer, dcAlgorithm: 'ed25519', validitySeconds: 60 });
    assert.equal(issued.decoded.algorithm, S.rsa_pss_rsae_sha256);
  });

  void it('accepts the certificate as a node:crypto X509Certificate as well as DER', async () => {
    const cert = certs.get('p256')!;
    const x509 = new X509Certificate(cert.pem);
    const issued = await issueDelegatedCredential({ certificate: x509, signer: cert.signer, dcAlgorithm: 'ed25519', validitySeconds: 60 });
    verifyDelegatedCredential(issued.delegatedCredential, { certificate: x509, acceptedDcSchemes: ALL_SCHEMES, acceptedSignatureSchemes: ALL_SCHEMES });
    verifyDelegatedCredential(issued.delegatedCredential, { certificate: cert.der, acceptedDcSchemes: ALL_SCHEMES, acceptedSignatureSchemes: ALL_SCHEMES });
  });

  void it('works with an asynchronous (remote) signer', async () => {
    const cert = certs.get('p384')!;
    const remote: Signer = {
      schemes: cert.signer.schemes,
      sign: async (scheme, message) => {
        await new Promise((r) => setTimeout(r, 5));
        return cert.signer.sign(scheme, message);
      },
    };
    const issued = await issueDelegatedCredential({ certificate: cert.der, signer: remote, dcAlgorithm: 'ecdsa_secp256r1_sha256', validitySeconds: 600 });
    verifyDelegatedCredential(issued.decoded, {
      certificate: cert.der,
      acceptedDcSchemes: ALL_SCHEMES,
      acceptedSignatureSchemes: ALL_SCHEMES,
    });
  });

  void it('signs a client-authentication credential that verifies only with the client context', async () => {
    const cert = certs.get('ed25519')!;
    const issued = await issueDelegatedCredential({ certificate: cert.der, signer: cert.signer, dcAlgorithm: 'ed25519', validitySeconds: 600, side: 'client' });
    const opts = { certificate: cert.der, acceptedDcSchemes: ALL_SCHEMES, acceptedSignatureSchemes: ALL_SCHEMES };
    verifyDelegatedCredential(issued.delegatedCredential, { ...opts, side: 'client' });
    assert.throws(() => verifyDelegatedCredential(issued.delegatedCredential, { ...opts, side: 'server' }), /bad-signature/);
  });

  void it('accepts exactly 7 days of validity and refuses one second more', async () => {
    const cert = await makeCertificate({ keyType: 'ed25519' });
    const base = { certificate: cert.der, signer: cert.signer, dcAlgorithm: 'ed25519' as const };
    const issued = await issueDelegatedCredential({ ...base, validitySeconds: MAX_DC_VALIDITY_SECONDS });
    verifyDelegatedCredential(issued.delegatedCredential, { certificate: cert.der, acceptedDcSchemes: ALL_SCHEMES, acceptedSignatureSchemes: ALL_SCHEMES });
    await assert.rejects(issueDelegatedCredential({ ...base, validitySeconds: MAX_DC_VALIDITY_SECONDS + 1 }), rejectsWith('validity-out-of-range', /7 days/));
    await assert.rejects(issueDelegatedCredential({ ...base, validitySeconds: 0 }), rejectsWith('validity-out-of-range'));
    await assert.rejects(issueDelegatedCredential({ ...base, validitySeconds: 1.5 }), rejectsWith('validity-out-of-range'));
  });

  void it("refuses a credential that would outlive the certificate and says by how much", async () => {
    const notBefore = new Date(Date.UTC(2030, 0, 1));
    const notAfter = new Date(Date.UTC(2030, 0, 10));
    const cert = await makeCertificate({ keyType: 'p256', notBefore, notAfter });
    await assert.rejects(
      issueDelegatedCredential({
        certificate: cert.der,
        signer: cert.signer,
        dcAlgorithm: 'ed25519',
        validitySeconds: 3 * 86400,
        now: new Date(Date.UTC(2030, 0, 8, 12)),
      }),
      rejectsWith('past-certificate-expiry', /1d12h after the certificate's notAfter 2030-01-10T00:00:00Z/),
    );
    await assert.rejects(
      issueDelegatedCredential({ certificate: cert.der, signer: cert.signer, dcAlgorithm: 'ed25519', validitySeconds: 60, now: new Date(Date.UTC(2029, 11, 31)) }),
      rejectsWith('certificate-not-yet-valid'),
    );
  });

  void it('refuses a certificate without DelegationUsage, with it critical, or without digitalSignature', async () => {
    for (const [options, pattern] of [
      [{ delegationUsage: 'absent' }, /no DelegationUsage extension/],
      [{ delegationUsage: 'critical' }, /marked critical/],
      [{ keyUsage: 'keyEncipherment' }, /lacks digitalSignature/],
      [{ keyUsage: 'none' }, /no KeyUsage extension/],
    ] as const) {
      const cert = await makeCertificate({ keyType: 'p256', ...options });
      await assert.rejects(
        issueDelegatedCredential({ certificate: cert.der, signer: cert.signer, dcAlgorithm: 'ed25519', validitySeconds: 60 }),
        rejectsWith('certificate-not-delegation-capable', pattern),
      );
    }
  });

  void it("refuses a signer whose key does not match the certificate's", async () => {
    const cert = certs.get('p256')!;
    await assert.rejects(
      issueDelegatedCredential({ certificate: cert.der, signer: await otherSigner('p256'), dcAlgorithm: 'ed25519', validitySeconds: 60 }),
      rejectsWith('signer-key-mismatch', /does not match the certificate/),
    );
    await assert.rejects(
      issueDelegatedCredential({ certificate: cert.der, signer: await otherSigner('ed25519'), dcAlgorithm: 'ed25519', validitySeconds: 60 }),
      rejectsWith('signer-key-mismatch'),
    );
    // The certificate's public key beside another scalar: the operator's in-cluster signer compares
    // public keys only, and it is this check on the signature that refuses such a key.
    const swapped = ecKeyWithForeignScalar(cert.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), 'sec1').key;
    await assert.rejects(
      issueDelegatedCredential({ certificate: cert.der, signer: createKeySigner(swapped), dcAlgorithm: 'ed25519', validitySeconds: 60 }),
      rejectsWith('signer-key-mismatch', /its signature does not verify with the certificate's public key/),
    );
  });

  void it('refuses rsa_pss_rsae_* and rsa_pkcs1_* as credential algorithms', async () => {
    const cert = certs.get('rsa')!;
    for (const dcAlgorithm of [S.rsa_pss_rsae_sha256, S.rsa_pkcs1_sha256, 'rsa_pss_rsae_sha256']) {
      await assert.rejects(
        issueDelegatedCredential({ certificate: cert.der, signer: cert.signer, dcAlgorithm, validitySeconds: 60 } as never),
        rejectsWith('unsupported-dc-algorithm', /rsa_pss_rsae_\* keys are forbidden/),
      );
    }
  });

  void it('refuses a signature scheme the certificate key cannot produce', async () => {
    const cert = certs.get('p256')!;
    for (const signatureScheme of [S.ecdsa_secp384r1_sha384, S.ed25519, S.rsa_pkcs1_sha256]) {
      await assert.rejects(
        issueDelegatedCredential({ certificate: cert.der, signer: cert.signer, signatureScheme, dcAlgorithm: 'ed25519', validitySeconds: 60 }),
        rejectsWith('unsupported-signature-scheme'),
      );
    }
  });

  void it('reports a failing signer as signer-failed', async () => {
    const cert = certs.get('p256')!;
    const broken: Signer = { schemes: [S.ecdsa_secp256r1_sha256], sign: () => Promise.reject(new Error('key server unreachable')) };
    await assert.rejects(
      issueDelegatedCredential({ certificate: cert.der, signer: broken, dcAlgorithm: 'ed25519', validitySeconds: 60 }),
      rejectsWith('signer-failed', /key server unreachable/),
    );
  });
});
