/**
 * Errors of the X.509 code. A CertificateError carries the TLS alert it maps to (its `kind`,
 * named as in RFC 8446 §6.2; the numbers come from ../alerts.ts) and a precise `code`.
 */
import { AlertDescription } from '../alerts.js';

/** The TLS alert a certificate failure maps to (RFC 8446 §6.2). */
export type CertificateErrorKind =
  | 'bad_certificate'
  | 'unknown_ca'
  | 'certificate_expired'
  | 'unsupported_certificate'
  | 'certificate_unknown';

/** The precise reason, stable for tests and metrics; `message` says it for a person. */
export type CertificateErrorCode =
  | 'empty_chain'
  | 'chain_too_long'
  | 'malformed'
  | 'expired'
  | 'not_yet_valid'
  | 'untrusted'
  | 'bad_signature'
  | 'issuer_not_ca'
  | 'issuer_cannot_sign_certificates'
  | 'path_length_exceeded'
  | 'wrong_purpose'
  | 'key_usage_forbids_signing'
  | 'unhandled_critical_extension'
  | 'unsupported_signature_algorithm'
  | 'name_constraint_violation'
  | 'unsupported_name_constraint'
  | 'hostname_mismatch'
  | 'invalid_trust_anchor';

export class CertificateError extends Error {
  /** The alert to send. */
  readonly kind: CertificateErrorKind;
  readonly code: CertificateErrorCode;
  /** Position in the presented chain (0 = leaf), or -1 for a trust anchor / no single cert. */
  readonly certificateIndex: number;
  constructor(kind: CertificateErrorKind, code: CertificateErrorCode, message: string, certificateIndex = -1) {
    super(message);
    this.name = 'CertificateError';
    this.kind = kind;
    this.code = code;
    this.certificateIndex = certificateIndex;
  }

  /** The alert description number of `kind`. */
  get alert(): AlertDescription {
    return AlertDescription[this.kind];
  }
}

/**
 * Bytes that are not the DER we expect: truncated, indefinite or oversized lengths, a wrong tag,
 * trailing data. Certificate parsing turns it into CertificateError(bad_certificate, 'malformed').
 */
export class DerDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DerDecodeError';
  }
}
