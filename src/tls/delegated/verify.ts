/**
 * Receiver-side validation of a peer's delegated credential (RFC 9345 §4.1.3, §4.2, §5.1).
 * Every failure raises InvalidDelegatedCredential (alert illegal_parameter) naming the rule.
 *
 * `validateDelegatedCredential` holds the checks that depend only on the credential, the
 * certificate and the clock (used by loaders and `dcctl dc inspect`);
 * `verifyDelegatedCredential` adds the negotiation checks against the peer's two scheme lists.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { signatureSchemeName } from '../constants.js';
import { isCertificateVerifyScheme, keyMatchesScheme, verifySignature } from '../signature-schemes.js';
import { isMinimalDer } from '../x509/der.js';
import { dcKeyMatchesScheme, isDcAlgorithm } from './algorithms.js';
import { delegationCertificate, type CertificateInput, type DelegationCertificate } from './certificate.js';
import { decodeDelegatedCredential } from './codec.js';
import { InvalidDelegatedCredential } from './errors.js';
import { delegatedCredentialSignedContent } from './signed-content.js';
import { MAX_DC_VALIDITY_SECONDS, type DelegatedCredential, type DelegationSide } from './types.js';

export interface ValidateOptions {
  readonly certificate: CertificateInput;
  /** Defaults to the current time. */
  readonly now?: Date;
  /** Whose credential this is: selects the signed context string. Defaults to 'server'. */
  readonly side?: DelegationSide;
  /**
   * Which time rules apply: 'all' (the default, what a receiver checks: not expired, at most
   * 7 days left), 'expiry' (not expired) or 'none'. A credential we serve ourselves is chosen
   * by time per handshake (credential-set.ts), so its loader may defer either rule.
   */
  readonly timeRules?: 'all' | 'expiry' | 'none';
}

export interface VerifyOptions extends ValidateOptions {
  /** The schemes we sent in our delegated_credential extension (34). */
  readonly acceptedDcSchemes: readonly number[];
  /** The schemes we sent in our signature_algorithms extension. */
  readonly acceptedSignatureSchemes: readonly number[];
}

export interface VerifiedDelegatedCredential {
  readonly delegatedCredential: DelegatedCredential;
  /** The credential's public key: verify the peer's CertificateVerify with it. */
  readonly publicKey: KeyObject;
  /** The scheme the peer's CertificateVerify must use. */
  readonly dcCertVerifyAlgorithm: number;
  readonly expiresAt: Date;
}

/** Full receiver validation, including both negotiated scheme lists. */
export function verifyDelegatedCredential(
  dc: Uint8Array | DelegatedCredential,
  options: VerifyOptions,
): VerifiedDelegatedCredential {
  const decoded = dc instanceof Uint8Array ? decodeDelegatedCredential(dc) : dc;
  const { dcCertVerifyAlgorithm } = decoded.credential;
  // Two lists, two checks: extension 34 governs the DC key, signature_algorithms the DC signature.
  if (!options.acceptedDcSchemes.includes(dcCertVerifyAlgorithm)) {
    throw new InvalidDelegatedCredential(
      'dc-scheme-not-offered',
      `dc_cert_verify_algorithm ${signatureSchemeName(dcCertVerifyAlgorithm)} is not in our delegated_credential list`,
    );
  }
  if (!options.acceptedSignatureSchemes.includes(decoded.algorithm)) {
    throw new InvalidDelegatedCredential(
      'signature-scheme-not-offered',
      `algorithm ${signatureSchemeName(decoded.algorithm)} is not in our signature_algorithms list`,
    );
  }
  return validateDelegatedCredential(decoded, options);
}

/** Validation without the negotiation lists: time, certificate, keys and signature. */
export function validateDelegatedCredential(
  dc: Uint8Array | DelegatedCredential,
  options: ValidateOptions,
): VerifiedDelegatedCredential {
  const decoded = dc instanceof Uint8Array ? decodeDelegatedCredential(dc) : dc;
  const cert = delegationCertificate(options.certificate);
  const nowMs = (options.now ?? new Date()).getTime();
  const expiresAt = checkTime(decoded, cert, nowMs, options.timeRules ?? 'all');
  checkCertificate(cert);
  checkSignatureAlgorithm(decoded, cert);
  const publicKey = checkCredentialKey(decoded);
  if (!signatureVerifies(decoded, cert, options.side ?? 'server')) {
    throw new InvalidDelegatedCredential(
      'bad-signature',
      `signature (${signatureSchemeName(decoded.algorithm)}) does not verify with the certificate's key`,
    );
  }
  return { delegatedCredential: decoded, publicKey, dcCertVerifyAlgorithm: decoded.credential.dcCertVerifyAlgorithm, expiresAt };
}

/**
 * Checks only the signature over the RFC 9345 signed content; no time, extension or scheme-list
 * rule. For test vectors and diagnostics (`dcctl dc inspect`).
 */
export function delegatedCredentialSignatureVerifies(
  dc: Uint8Array | DelegatedCredential,
  certificate: CertificateInput,
  side: DelegationSide = 'server',
): boolean {
  const decoded = dc instanceof Uint8Array ? decodeDelegatedCredential(dc) : dc;
  return signatureVerifies(decoded, delegationCertificate(certificate), side);
}

/** notBefore + valid_time, the moment the credential stops being valid. */
export function delegatedCredentialExpiry(dc: DelegatedCredential, certificate: CertificateInput): Date {
  const cert = delegationCertificate(certificate);
  return new Date((cert.notBeforeSeconds + dc.credential.validTime) * 1000);
}

function checkTime(dc: DelegatedCredential, cert: DelegationCertificate, nowMs: number, rules: 'all' | 'expiry' | 'none'): Date {
  const expiryMs = (cert.notBeforeSeconds + dc.credential.validTime) * 1000;
  const expiresAt = new Date(expiryMs);
  if (rules === 'none') return expiresAt;
  if (nowMs > expiryMs) {
    throw new InvalidDelegatedCredential('expired', `expired at ${expiresAt.toISOString()}`);
  }
  const remaining = (expiryMs - nowMs) / 1000;
  if (rules === 'all' && remaining > MAX_DC_VALIDITY_SECONDS) {
    throw new InvalidDelegatedCredential(
      'validity-too-long',
      `valid for ${Math.ceil(remaining)} s more (until ${expiresAt.toISOString()}), over the ${MAX_DC_VALIDITY_SECONDS} s (7 days) limit`,
    );
  }
  return expiresAt;
}

function checkCertificate(cert: DelegationCertificate): void {
  if (cert.delegationUsage === 'absent') {
    throw new InvalidDelegatedCredential('missing-delegation-usage', 'the certificate has no DelegationUsage extension');
  }
  if (cert.delegationUsage === 'critical') {
    throw new InvalidDelegatedCredential('critical-delegation-usage', 'the certificate marks DelegationUsage critical');
  }
  if (cert.delegationUsage === 'malformed') {
    throw new InvalidDelegatedCredential('malformed-delegation-usage', "the certificate's DelegationUsage value is not ASN.1 NULL");
  }
  if (!cert.digitalSignature) {
    throw new InvalidDelegatedCredential(
      'missing-digital-signature',
      cert.hasKeyUsage ? 'the certificate KeyUsage lacks digitalSignature' : 'the certificate has no KeyUsage extension',
    );
  }
}

function checkSignatureAlgorithm(dc: DelegatedCredential, cert: DelegationCertificate): void {
  if (!isCertificateVerifyScheme(dc.algorithm)) {
    throw new InvalidDelegatedCredential(
      'signature-scheme-not-allowed',
      `algorithm ${signatureSchemeName(dc.algorithm)} is not a TLS 1.3 signature scheme`,
    );
  }
  if (!keyMatchesScheme(cert.publicKey, dc.algorithm)) {
    throw new InvalidDelegatedCredential(
      'signature-scheme-mismatches-certificate-key',
      `algorithm ${signatureSchemeName(dc.algorithm)} cannot be made with the certificate's ${describeKey(cert.publicKey)} key`,
    );
  }
}

function checkCredentialKey(dc: DelegatedCredential): KeyObject {
  const { spki, dcCertVerifyAlgorithm } = dc.credential;
  let key: KeyObject;
  try {
    key = credentialKey(spki);
  } catch (cause) {
    throw new InvalidDelegatedCredential('malformed-spki', `the credential SubjectPublicKeyInfo does not parse: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
  if (key.asymmetricKeyType === 'rsa') {
    throw new InvalidDelegatedCredential('rsa-encryption-spki', 'the credential key is an rsaEncryption SPKI, which RFC 9345 forbids');
  }
  if (!isDcAlgorithm(dcCertVerifyAlgorithm)) {
    throw new InvalidDelegatedCredential(
      'dc-scheme-not-allowed',
      `dc_cert_verify_algorithm ${signatureSchemeName(dcCertVerifyAlgorithm)} is not allowed for a delegated credential`,
    );
  }
  if (!dcKeyMatchesScheme(key, dcCertVerifyAlgorithm)) {
    throw new InvalidDelegatedCredential(
      'spki-mismatches-dc-scheme',
      `the credential's ${describeKey(key)} key does not fit dc_cert_verify_algorithm ${signatureSchemeName(dcCertVerifyAlgorithm)}`,
    );
  }
  return key;
}

/**
 * DC public keys by SPKI bytes. A client meets the same credential on every connection to a
 * server, and building a KeyObject from DER costs ~0.5 ms under OpenSSL 3 (most of a
 * verification), so recent keys are kept. Bounded: the oldest entry goes first.
 */
const KEY_CACHE_LIMIT = 256;
const keyCache = new Map<string, KeyObject>();

function credentialKey(spki: Uint8Array): KeyObject {
  const der = Buffer.from(spki.buffer, spki.byteOffset, spki.byteLength);
  const id = der.toString('base64');
  const hit = keyCache.get(id);
  if (hit) return hit;
  // OpenSSL accepts trailing bytes and long-form lengths; RFC 9345 §4 asks for DER.
  if (!isMinimalDer(der)) throw new Error('not a DER SubjectPublicKeyInfo (trailing bytes or a non-minimal length)');
  const key = createPublicKey({ key: der, format: 'der', type: 'spki' });
  void key.asymmetricKeyDetails; // computed once here, not on every check below
  if (keyCache.size >= KEY_CACHE_LIMIT) keyCache.delete(keyCache.keys().next().value!);
  keyCache.set(id, key);
  return key;
}

function signatureVerifies(dc: DelegatedCredential, cert: DelegationCertificate, side: DelegationSide): boolean {
  const content = delegatedCredentialSignedContent(side, cert.der, dc.credential, dc.algorithm);
  return verifySignature(dc.algorithm, cert.publicKey, content, dc.signature);
}

export function describeKey(key: KeyObject): string {
  const type = key.asymmetricKeyType ?? 'unknown';
  const curve = key.asymmetricKeyDetails?.namedCurve;
  return curve ? `${type} ${curve}` : type;
}
