/**
 * Issuing a delegated credential (RFC 9345 §4): a fresh key pair, an expiry of at most 7 days
 * that never passes the certificate's notAfter, signed with the certificate's key through a
 * `Signer` (in-process or a remote key server; `sign` may be async).
 *
 * Everything that would make a receiver reject the credential is refused here first, with a
 * DelegationError that says what to fix.
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { signatureSchemeName } from '../constants.js';
import { isCertificateVerifyScheme, keyMatchesScheme, schemesForKey, verifySignature } from '../signature-schemes.js';
import type { Signer } from '../signer.js';
import { generateDcKeyPairDer, resolveDcAlgorithm, type DcAlgorithmName } from './algorithms.js';
import { derToPem } from '../x509/pem.js';
import { delegationCertificate, type CertificateInput, type DelegationCertificate } from './certificate.js';
import { encodeDelegatedCredential } from './codec.js';
import { DelegationError } from './errors.js';
import { delegatedCredentialSignedContent } from './signed-content.js';
import { MAX_DC_VALIDITY_SECONDS, type Credential, type DelegatedCredential, type DelegationSide } from './types.js';
import { spkiFingerprint } from './inspect.js';
import { describeKey } from './verify.js';

export interface IssueOptions {
  /** The delegation certificate (DER or parsed). Its key is the one `signer` holds. */
  readonly certificate: CertificateInput;
  readonly signer: Signer;
  /**
   * The scheme the certificate key signs the credential with (the credential's `algorithm`).
   * Defaults to the first scheme the certificate key supports that the signer offers.
   */
  readonly signatureScheme?: number;
  /** The credential's key type / CertificateVerify scheme. */
  readonly dcAlgorithm: DcAlgorithmName | number;
  /** Seconds from `now` to expiry; at most 604800 (7 days). */
  readonly validitySeconds: number;
  readonly now?: Date;
  readonly side?: DelegationSide;
  /** Modulus size for rsa_pss_pss_* credential keys (default 2048). */
  readonly rsaModulusBits?: number;
}

export interface IssuedDelegatedCredential {
  /** The encoded DelegatedCredential, as sent in the Certificate message. */
  readonly delegatedCredential: Uint8Array;
  readonly decoded: DelegatedCredential;
  readonly privateKey: KeyObject;
  /** The private key as PKCS#8 PEM, for Secrets and files. */
  readonly privateKeyPem: string;
  readonly publicKey: KeyObject;
  /** Hex SHA-256 of the credential's SubjectPublicKeyInfo (for status fields and logs). */
  readonly publicKeyFingerprint: string;
  readonly expiresAt: Date;
}

export async function issueDelegatedCredential(options: IssueOptions): Promise<IssuedDelegatedCredential> {
  const cert = certificateOrThrow(options.certificate);
  checkDelegationCapable(cert);
  const dcScheme = resolveDcAlgorithm(options.dcAlgorithm);
  if (dcScheme === undefined) {
    throw new DelegationError(
      'unsupported-dc-algorithm',
      `${String(options.dcAlgorithm)} cannot be a delegated credential algorithm (use ed25519, ecdsa_secp256r1_sha256, ecdsa_secp384r1_sha384, ecdsa_secp521r1_sha512 or rsa_pss_pss_sha256/384/512; rsa_pss_rsae_* keys are forbidden by RFC 9345)`,
    );
  }
  const algorithm = chooseSignatureScheme(cert, options.signer, options.signatureScheme);
  const nowMs = (options.now ?? new Date()).getTime();
  const expirySeconds = computeExpiry(cert, nowMs, options.validitySeconds);

  // Encoded, not as KeyObjects: the operator issues in bursts of thousands, and most callers only
  // store the key (the KeyObjects below are made when asked for).
  const { spki, pkcs8 } = await generateDcKeyPairDer(dcScheme, options.rsaModulusBits);
  const credential: Credential = {
    validTime: expirySeconds - cert.notBeforeSeconds,
    dcCertVerifyAlgorithm: dcScheme,
    spki,
  };
  const side = options.side ?? 'server';
  const content = delegatedCredentialSignedContent(side, cert.der, credential, algorithm);
  let signature: Uint8Array;
  try {
    signature = await options.signer.sign(algorithm, content);
  } catch (cause) {
    const why = cause instanceof Error ? cause.message : String(cause);
    throw new DelegationError('signer-failed', `the signer failed to sign the credential: ${why}`, { cause });
  }
  // A signer holding another key (or a misconfigured key server) is caught here, not by clients.
  if (!verifySignature(algorithm, cert.publicKey, content, signature)) {
    throw new DelegationError(
      'signer-key-mismatch',
      "the signer's key does not match the certificate: its signature does not verify with the certificate's public key",
    );
  }
  const decoded: DelegatedCredential = { credential, algorithm, signature: Uint8Array.from(signature) };
  let privateKey: KeyObject | undefined;
  let publicKey: KeyObject | undefined;
  return {
    delegatedCredential: encodeDelegatedCredential(decoded),
    decoded,
    get privateKey() {
      return (privateKey ??= createPrivateKey({ key: Buffer.from(pkcs8), format: 'der', type: 'pkcs8' }));
    },
    privateKeyPem: derToPem(pkcs8, 'PRIVATE KEY'),
    get publicKey() {
      return (publicKey ??= createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' }));
    },
    publicKeyFingerprint: spkiFingerprint(credential.spki),
    expiresAt: new Date(expirySeconds * 1000),
  };
}

function certificateOrThrow(input: CertificateInput): DelegationCertificate {
  try {
    return delegationCertificate(input);
  } catch (cause) {
    const why = cause instanceof Error ? cause.message : String(cause);
    throw new DelegationError('certificate-not-delegation-capable', `the certificate does not parse: ${why}`, { cause });
  }
}

function checkDelegationCapable(cert: DelegationCertificate): void {
  const problems: string[] = [];
  if (cert.delegationUsage === 'absent') problems.push('it has no DelegationUsage extension (OID 1.3.6.1.4.1.44363.44)');
  if (cert.delegationUsage === 'critical') problems.push('its DelegationUsage extension is marked critical (RFC 9345 requires non-critical)');
  if (cert.delegationUsage === 'malformed') problems.push('its DelegationUsage extension value is not ASN.1 NULL');
  if (!cert.digitalSignature) {
    problems.push(cert.hasKeyUsage ? 'its KeyUsage lacks digitalSignature' : 'it has no KeyUsage extension with digitalSignature');
  }
  if (problems.length > 0) {
    throw new DelegationError('certificate-not-delegation-capable', `the certificate cannot delegate: ${problems.join('; ')}`);
  }
}

function chooseSignatureScheme(cert: DelegationCertificate, signer: Signer, requested: number | undefined): number {
  const keyDescription = describeKey(cert.publicKey);
  if (requested !== undefined) {
    if (!isCertificateVerifyScheme(requested) || !keyMatchesScheme(cert.publicKey, requested)) {
      throw new DelegationError(
        'unsupported-signature-scheme',
        `the certificate's ${keyDescription} key cannot sign with ${signatureSchemeName(requested)}`,
      );
    }
    if (!signer.schemes.includes(requested)) {
      throw new DelegationError(
        'signer-key-mismatch',
        `the signer does not offer ${signatureSchemeName(requested)} (it offers ${signer.schemes.map(signatureSchemeName).join(', ') || 'nothing'}): its key does not match the certificate`,
      );
    }
    return requested;
  }
  const usable = schemesForKey(cert.publicKey).filter((s) => signer.schemes.includes(s));
  const first = usable[0];
  if (first === undefined) {
    throw new DelegationError(
      'signer-key-mismatch',
      `the signer offers ${signer.schemes.map(signatureSchemeName).join(', ') || 'nothing'}, none usable with the certificate's ${keyDescription} key`,
    );
  }
  return first;
}

function computeExpiry(cert: DelegationCertificate, nowMs: number, validitySeconds: number): number {
  if (!Number.isInteger(validitySeconds) || validitySeconds <= 0 || validitySeconds > MAX_DC_VALIDITY_SECONDS) {
    throw new DelegationError(
      'validity-out-of-range',
      `validity must be a whole number of seconds in 1..${MAX_DC_VALIDITY_SECONDS} (7 days); got ${validitySeconds}`,
    );
  }
  const nowSeconds = Math.floor(nowMs / 1000);
  if (nowSeconds < cert.notBeforeSeconds) {
    throw new DelegationError(
      'certificate-not-yet-valid',
      `the certificate is not valid before ${isoSeconds(cert.notBeforeSeconds)}; a credential cannot start earlier`,
    );
  }
  const expirySeconds = nowSeconds + validitySeconds;
  if (expirySeconds > cert.notAfterSeconds) {
    const over = expirySeconds - cert.notAfterSeconds;
    throw new DelegationError(
      'past-certificate-expiry',
      `the credential would expire at ${isoSeconds(expirySeconds)}, ${formatDuration(over)} after the certificate's notAfter ${isoSeconds(cert.notAfterSeconds)}; shorten the validity or renew the certificate`,
    );
  }
  if (expirySeconds - cert.notBeforeSeconds > 0xffffffff) {
    throw new DelegationError('validity-out-of-range', 'valid_time does not fit in 32 bits (certificate notBefore too far in the past)');
  }
  return expirySeconds;
}

function isoSeconds(seconds: number): string {
  return new Date(seconds * 1000).toISOString().replace('.000Z', 'Z');
}

/** `1d2h3m4s` style, for error messages. */
export function formatDuration(totalSeconds: number): string {
  const parts: string[] = [];
  let s = Math.max(0, Math.round(totalSeconds));
  for (const [unit, size] of [['d', 86400], ['h', 3600], ['m', 60]] as const) {
    if (s >= size) {
      parts.push(`${Math.floor(s / size)}${unit}`);
      s %= size;
    }
  }
  if (s > 0 || parts.length === 0) parts.push(`${s}s`);
  return parts.join('');
}
