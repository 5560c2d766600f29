/**
 * Wire structures of RFC 9345 (Delegated Credentials for TLS and DTLS), §4:
 *
 *   struct {
 *     uint32 valid_time;
 *     SignatureScheme dc_cert_verify_algorithm;
 *     opaque ASN1_subjectPublicKeyInfo<1..2^24-1>;
 *   } Credential;
 *
 *   struct {
 *     Credential cred;
 *     SignatureScheme algorithm;
 *     opaque signature<1..2^16-1>;
 *   } DelegatedCredential;
 */
import type { SignatureScheme } from '../constants.js';

export interface Credential {
  /** Seconds after the delegation certificate's notBefore at which the credential expires. */
  readonly validTime: number;
  /** The scheme the peer's CertificateVerify must use, signed with the credential's key. */
  readonly dcCertVerifyAlgorithm: SignatureScheme;
  /** DER SubjectPublicKeyInfo of the credential's key. */
  readonly spki: Uint8Array;
}

export interface DelegatedCredential {
  readonly credential: Credential;
  /** The scheme of `signature`, made with the delegation certificate's key. */
  readonly algorithm: SignatureScheme;
  readonly signature: Uint8Array;
}

/** Which side of a TLS connection authenticates with the credential (selects the context string). */
export type DelegationSide = 'server' | 'client';

/** RFC 9345 §4.1.3: a credential may be valid for at most 7 days from the time it is checked. */
export const MAX_DC_VALIDITY_SECONDS = 7 * 24 * 60 * 60;

/** DelegationUsage certificate extension (RFC 9345 §4.2); its value is an ASN.1 NULL. */
export const DELEGATION_USAGE_OID = '1.3.6.1.4.1.44363.44';
