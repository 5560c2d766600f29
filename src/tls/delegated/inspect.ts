/**
 * A plain, JSON-friendly description of a delegated credential for people and status fields
 * (`dcctl dc inspect`, the operator's `status.credentials[]`): its fields, expiry, remaining
 * validity, and whether it passes the receiver rules against its certificate right now.
 */
import { createHash, createPublicKey } from 'node:crypto';
import { signatureSchemeName } from '../constants.js';
import { delegationCertificate, type CertificateInput } from './certificate.js';
import { decodeDelegatedCredential } from './codec.js';
import { InvalidDelegatedCredential, type ReceiverRule } from './errors.js';
import type { DelegatedCredential, DelegationSide } from './types.js';
import { delegatedCredentialSignatureVerifies, describeKey, validateDelegatedCredential } from './verify.js';

export interface DelegatedCredentialDescription {
  /** dc_cert_verify_algorithm by name, e.g. `ecdsa_secp256r1_sha256`. */
  readonly algorithm: string;
  /** The scheme of the signature made by the certificate key. */
  readonly signatureAlgorithm: string;
  readonly validTime: number;
  readonly expiresAt: string;
  /** Negative once expired. */
  readonly remainingSeconds: number;
  /** Hex SHA-256 of the credential's SubjectPublicKeyInfo. */
  readonly publicKeyFingerprint: string;
  /** e.g. `ec prime256v1`, or `unparseable`. */
  readonly publicKeyType: string;
  readonly signatureValid: boolean;
  /** True when every receiver rule (time, 7 days, certificate, key, signature) holds now. */
  readonly valid: boolean;
  /** The first failing rule, when not valid. */
  readonly problem?: { readonly rule: ReceiverRule; readonly message: string };
}

/** Hex SHA-256 of a SubjectPublicKeyInfo: stable identity of a credential key. */
export function spkiFingerprint(spki: Uint8Array): string {
  return createHash('sha256').update(spki).digest('hex');
}

export function describeDelegatedCredential(
  dc: Uint8Array | DelegatedCredential,
  certificate: CertificateInput,
  options: { readonly now?: Date; readonly side?: DelegationSide } = {},
): DelegatedCredentialDescription {
  const decoded = dc instanceof Uint8Array ? decodeDelegatedCredential(dc) : dc;
  const cert = delegationCertificate(certificate);
  const now = options.now ?? new Date();
  const side = options.side ?? 'server';
  const expiresAtSeconds = cert.notBeforeSeconds + decoded.credential.validTime;
  let valid = true;
  let problem: DelegatedCredentialDescription['problem'];
  let publicKeyType = 'unparseable';
  try {
    const verified = validateDelegatedCredential(decoded, { certificate: cert, now, side });
    publicKeyType = describeKey(verified.publicKey);
  } catch (e) {
    if (!(e instanceof InvalidDelegatedCredential)) throw e;
    valid = false;
    problem = { rule: e.rule, message: e.message };
  }
  if (!valid) publicKeyType = keyTypeOrUnparseable(decoded);
  return {
    algorithm: signatureSchemeName(decoded.credential.dcCertVerifyAlgorithm),
    signatureAlgorithm: signatureSchemeName(decoded.algorithm),
    validTime: decoded.credential.validTime,
    expiresAt: new Date(expiresAtSeconds * 1000).toISOString(),
    remainingSeconds: Math.floor(expiresAtSeconds - now.getTime() / 1000),
    publicKeyFingerprint: spkiFingerprint(decoded.credential.spki),
    publicKeyType,
    signatureValid: delegatedCredentialSignatureVerifies(decoded, cert, side),
    valid,
    ...(problem ? { problem } : {}),
  };
}

function keyTypeOrUnparseable(dc: DelegatedCredential): string {
  try {
    return describeKey(createPublicKey({ key: Buffer.from(dc.credential.spki), format: 'der', type: 'spki' }));
  } catch {
    return 'unparseable';
  }
}
