/**
 * Every receiver rule of RFC 9345 has a test that breaks exactly that rule. Credentials are
 * forged with the certificate's own key so that only the rule under test is violated.
 */
import assert from 'node:assert/strict';
import { constants as cryptoConstants, generateKeyPairSync, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { before, describe, it } from 'node:test';
import { AlertDescription } from '../../../../src/tls/alerts.js';
import { encode } from '../../../../src/tls/codec.js';
import { SignatureScheme } from '../../../../src/tls/constants.js';
import { DecodeError, IllegalParameter, fatalAlertFor } from '../../../../src/tls/errors.js';
import type { Signer } from '../../../../src/tls/signer.js';
import {
  InvalidDelegatedCredential,
  MAX_DC_VALIDITY_SECONDS,
  delegatedCredentialSignedContent,
  encodeCredential,
  encodeDelegatedCredential,
  issueDelegatedCredential,
  verifyDelegatedCredential,
  type Credential,
  type DelegatedCredential,
  type DelegationSide,
  type ReceiverRule,
  type VerifyOptions,
} from '../../../../src/tls/delegated/index.js';
import { generateCertificateKeys, makeCertificate, otherSigner, type TestCertificate } from './fixtures.js';

const S = SignatureScheme;
const EVERYTHING = Object.values(S);
const spkiOf = (key: KeyObject): Uint8Array => new Uint8Array(key.export({ type: 'spki', format: 'der' }));
const ed25519Spki = spkiOf(generateKeyPairSync('ed25519').publicKey);

interface Forgery {
  readonly validTime?: number;
  readonly dcCertVerifyAlgorithm?: number;
  readonly spki?: Uint8Array;
  readonly algorithm?: number;
  readonly side?: DelegationSide;
  /** 'bogo' signs algorithm before the Credential, as BoringSSL's runner once did. */
  readonly order?: 'rfc' | 'bogo';
  readonly signer?: Signer;
  /** The scheme actually used to sign (defaults to `algorithm`). */
  readonly signAs?: number;
}

/** A credential valid for one hour from `now` unless a field is overridden, signed by `cert`. */
async function forge(cert: TestCertificate, now: Date, f: Forgery = {}): Promise<DelegatedCredential> {
  const notBefore = Math.floor(cert.notBefore.getTime() / 1000);
  const credential: Credential = {
    validTime: f.validTime ?? Math.floor(now.getTime() / 1000) - notBefore + 3600,
    dcCertVerifyAlgorithm: f.dcCertVerifyAlgorithm ?? S.ed25519,
    spki: f.spki ?? ed25519Spki,
  };
  const algorithm = f.algorithm ?? cert.signer.schemes[0]!;
  const content =
    f.order === 'bogo'
      ? Buffer.concat([
          Buffer.alloc(64, 0x20),
          Buffer.from('TLS, server delegated credentials\0', 'latin1'),
          Buffer.from(cert.der),
          Buffer.from(encode((w) => w.u16(algorithm))),
          Buffer.from(encodeCredential(credential)),
        ])
      : delegatedCredentialSignedContent(f.side ?? 'server', cert.der, credential, algorithm);
  const signature = await (f.signer ?? cert.signer).sign(f.signAs ?? algorithm, content);
  return { credential, algorithm, signature };
}

function rejects(rule: ReceiverRule, fn: () => unknown): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof InvalidDelegatedCredential, `expected InvalidDelegatedCredential(${rule}), got ${String(e)}`);
    assert.equal(e.rule, rule, e.message);
    assert.ok(e instanceof IllegalParameter);
    assert.equal(fatalAlertFor(e), AlertDescription.illegal_parameter);
    return true;
  });
}

void describe('receiver rules for a delegated credential', () => {
  let cert: TestCertificate;
  const now = new Date();
  const opts = (): VerifyOptions => ({
    certificate: cert.der,
    now,
    acceptedDcSchemes: EVERYTHING,
    acceptedSignatureSchemes: EVERYTHING,
  });
  before(async () => {
    cert = await makeCertificate({ keyType: 'p256' });
  });

  void it('accepts the forged baseline credential (so each test below breaks only its own rule)', async () => {
    const dc = await forge(cert, now);
    const verified = verifyDelegatedCredential(encodeDelegatedCredential(dc), opts());
    assert.equal(verified.dcCertVerifyAlgorithm, S.ed25519);
  });

  void it('accepts a credential at the exact second it expires and rejects it one second later', async () => {
    const issued = await issueDelegatedCredential({ certificate: cert.der, signer: cert.signer, dcAlgorithm: 'ed25519', validitySeconds: 600, now });
    verifyDelegatedCredential(issued.delegatedCredential, { ...opts(), now: issued.expiresAt });
    rejects('expired', () =>
      verifyDelegatedCredential(issued.delegatedCredential, { ...opts(), now: new Date(issued.expiresAt.getTime() + 1000) }),
    );
  });

  void it('rejects a credential with more than 7 days left, counting valid_time from the certificate notBefore', async () => {
    const nowSeconds = Math.floor(now.getTime() / 1000);
    const notBefore = Math.floor(cert.notBefore.getTime() / 1000);
    const exactly7d = await forge(cert, now, { validTime: nowSeconds - notBefore + MAX_DC_VALIDITY_SECONDS });
    verifyDelegatedCredential(exactly7d, { ...opts(), now: new Date(nowSeconds * 1000) });
    const over = await forge(cert, now, { validTime: nowSeconds - notBefore + MAX_DC_VALIDITY_SECONDS + 1 });
    rejects('validity-too-long', () => verifyDelegatedCredential(over, { ...opts(), now: new Date(nowSeconds * 1000) }));
  });

  void it('rejects a 7-day credential seen by a client whose clock runs slow', async () => {
    const issued = await issueDelegatedCredential({ certificate: cert.der, signer: cert.signer, dcAlgorithm: 'ed25519', validitySeconds: MAX_DC_VALIDITY_SECONDS, now });
    rejects('validity-too-long', () => verifyDelegatedCredential(issued.delegatedCredential, { ...opts(), now: new Date(now.getTime() - 3600_000) }));
  });

  void it('rejects a dc_cert_verify_algorithm missing from our delegated_credential list even when signature_algorithms has it', async () => {
    const dc = await forge(cert, now, { dcCertVerifyAlgorithm: S.ed25519 });
    rejects('dc-scheme-not-offered', () =>
      verifyDelegatedCredential(dc, { ...opts(), acceptedDcSchemes: [S.ecdsa_secp256r1_sha256], acceptedSignatureSchemes: EVERYTHING }),
    );
  });

  void it('rejects an algorithm missing from our signature_algorithms even when the delegated_credential list has it', async () => {
    const dc = await forge(cert, now, { algorithm: S.ecdsa_secp256r1_sha256 });
    rejects('signature-scheme-not-offered', () =>
      verifyDelegatedCredential(dc, {
        ...opts(),
        acceptedDcSchemes: [S.ed25519, S.ecdsa_secp256r1_sha256],
        acceptedSignatureSchemes: [S.ed25519, S.rsa_pss_rsae_sha256],
      }),
    );
  });

  void it("rejects an algorithm the certificate's key cannot have made", async () => {
    const dc = await forge(cert, now, { algorithm: S.ecdsa_secp384r1_sha384, signAs: S.ecdsa_secp256r1_sha256 });
    rejects('signature-scheme-mismatches-certificate-key', () => verifyDelegatedCredential(dc, opts()));
  });

  void it('rejects an rsa_pkcs1 signature on the credential (not a TLS 1.3 scheme)', async () => {
    const rsaCert = await makeCertificate({ keyType: 'rsa' });
    const pkcs1: Signer = {
      schemes: [S.rsa_pkcs1_sha256],
      sign: (_scheme, message) => cryptoSign('sha256', message, { key: rsaCert.privateKey, padding: cryptoConstants.RSA_PKCS1_PADDING }),
    };
    const dc = await forge(rsaCert, now, { algorithm: S.rsa_pkcs1_sha256, signer: pkcs1 });
    rejects('signature-scheme-not-allowed', () => verifyDelegatedCredential(dc, { ...opts(), certificate: rsaCert.der }));
  });

  void it('rejects an rsaEncryption SubjectPublicKeyInfo, whatever scheme it claims', async () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
    for (const dcCertVerifyAlgorithm of [S.rsa_pss_rsae_sha256, S.rsa_pss_pss_sha256]) {
      const dc = await forge(cert, now, { dcCertVerifyAlgorithm, spki: spkiOf(rsa) });
      rejects('rsa-encryption-spki', () => verifyDelegatedCredential(dc, opts()));
    }
  });

  void it('rejects a dc_cert_verify_algorithm that can never be a credential scheme', async () => {
    const dc = await forge(cert, now, { dcCertVerifyAlgorithm: S.ecdsa_sha1 });
    rejects('dc-scheme-not-allowed', () => verifyDelegatedCredential(dc, opts()));
  });

  void it('rejects a credential key that does not fit dc_cert_verify_algorithm', async () => {
    const p384 = spkiOf(generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey);
    const pss256 = spkiOf(
      generateKeyPairSync('rsa-pss', { modulusLength: 2048, hashAlgorithm: 'sha256', mgf1HashAlgorithm: 'sha256', saltLength: 32 as unknown as string }).publicKey,
    );
    for (const [dcCertVerifyAlgorithm, spki] of [
      [S.ecdsa_secp256r1_sha256, ed25519Spki],
      [S.ecdsa_secp256r1_sha256, p384],
      [S.ed25519, p384],
      [S.rsa_pss_pss_sha384, pss256],
    ] as const) {
      const dc = await forge(cert, now, { dcCertVerifyAlgorithm, spki });
      rejects('spki-mismatches-dc-scheme', () => verifyDelegatedCredential(dc, opts()));
    }
  });

  void it('rejects a SubjectPublicKeyInfo that does not parse', async () => {
    const dc = await forge(cert, now, { spki: Uint8Array.from([0x30, 0x03, 0x02, 0x01, 0x00]) });
    rejects('malformed-spki', () => verifyDelegatedCredential(dc, opts()));
  });

  // RFC 9345 §4: "a DER-encoded SubjectPublicKeyInfo"; OpenSSL alone would parse both of these.
  for (const [what, spki] of [
    ['a byte after it', Uint8Array.from([...ed25519Spki, 0x00])],
    ['a long-form length where the short form fits', Uint8Array.from([0x30, 0x81, ed25519Spki[1]!, ...ed25519Spki.subarray(2)])],
    ['a long-form length inside it', Uint8Array.from([0x30, ed25519Spki[1]! + 1, 0x30, 0x81, ...ed25519Spki.subarray(3)])],
  ] as const) {
    void it(`rejects a SubjectPublicKeyInfo that is not DER: ${what}`, async () => {
      const dc = await forge(cert, now, { spki });
      rejects('malformed-spki', () => verifyDelegatedCredential(dc, opts()));
    });
  }

  void it('rejects a signature made over algorithm-before-Credential (the wrong order)', async () => {
    const dc = await forge(cert, now, { order: 'bogo' });
    rejects('bad-signature', () => verifyDelegatedCredential(dc, opts()));
  });

  void it('rejects a credential signed by a key other than the certificate key', async () => {
    const dc = await forge(cert, now, { signer: await otherSigner('p256') });
    rejects('bad-signature', () => verifyDelegatedCredential(dc, opts()));
  });

  void it('rejects a credential presented with a different certificate of the same key', async () => {
    const keys = await generateCertificateKeys('p256');
    const first = await makeCertificate({ keys });
    const second = await makeCertificate({ keys });
    const dc = await forge(first, now);
    verifyDelegatedCredential(dc, { ...opts(), certificate: first.der });
    rejects('bad-signature', () => verifyDelegatedCredential(dc, { ...opts(), certificate: second.der }));
  });

  void it('rejects a server credential presented for client authentication', async () => {
    const dc = await forge(cert, now, { side: 'server' });
    rejects('bad-signature', () => verifyDelegatedCredential(dc, { ...opts(), side: 'client' }));
  });

  void it('rejects a credential whose modified valid_time no longer matches the signature', async () => {
    const dc = await forge(cert, now);
    const tampered = { ...dc, credential: { ...dc.credential, validTime: dc.credential.validTime + 1 } };
    rejects('bad-signature', () => verifyDelegatedCredential(tampered, opts()));
  });

  void it('rejects the credential after any single bit flip, anywhere in its encoding', async () => {
    const issued = await issueDelegatedCredential({ certificate: cert.der, signer: cert.signer, dcAlgorithm: 'ecdsa_secp256r1_sha256', validitySeconds: 600, now });
    verifyDelegatedCredential(issued.delegatedCredential, opts());
    for (let i = 0; i < issued.delegatedCredential.length; i++) {
      for (const bit of [0x01, 0x80]) {
        const mutated = Uint8Array.from(issued.delegatedCredential);
        mutated[i]! ^= bit;
        assert.throws(
          () => verifyDelegatedCredential(mutated, opts()),
          (e: unknown) => e instanceof DecodeError || e instanceof InvalidDelegatedCredential,
          `byte ${i} bit 0x${bit.toString(16)} was accepted`,
        );
      }
    }
  });

  for (const [what, options, rule] of [
    ['without the DelegationUsage extension', { delegationUsage: 'absent' }, 'missing-delegation-usage'],
    ['with a critical DelegationUsage extension', { delegationUsage: 'critical' }, 'critical-delegation-usage'],
    ['whose KeyUsage lacks digitalSignature', { keyUsage: 'keyEncipherment' }, 'missing-digital-signature'],
    ['without a KeyUsage extension', { keyUsage: 'none' }, 'missing-digital-signature'],
  ] as const) {
    void it(`rejects a credential from a certificate ${what}, even when correctly signed`, async () => {
      const bad = await makeCertificate({ keyType: 'p256', ...options });
      const dc = await forge(bad, now);
      rejects(rule, () => verifyDelegatedCredential(dc, { ...opts(), certificate: bad.der }));
    });
  }
});

