/**
 * What delegated-credential code needs to know about the delegation (end-entity) certificate:
 * its DER, public key, validity in whole seconds and the two extensions RFC 9345 §4.2 requires
 * (DelegationUsage, non-critical with a NULL value; KeyUsage with digitalSignature).
 *
 * Parsing is done by ../x509/certificate.ts (bounded cache keyed by DER digest); this adapter only
 * reduces it to the facts the delegated-credential rules use, so a handshake can pass one parsed
 * value around instead of re-reading the DER.
 */
import { X509Certificate, type KeyObject } from 'node:crypto';
import { DELEGATION_USAGE_OID, KeyUsageBit, parseCertificate } from '../x509/certificate.js';

/** 'malformed': present but its value is not ASN.1 NULL. */
export type DelegationUsageState = 'absent' | 'non-critical' | 'critical' | 'malformed';

export interface DelegationCertificate {
  /** DER of the end-entity certificate: signed into every credential. */
  readonly der: Uint8Array;
  readonly publicKey: KeyObject;
  /** notBefore in whole seconds since the epoch (X.509 time has second precision). */
  readonly notBeforeSeconds: number;
  readonly notAfterSeconds: number;
  readonly delegationUsage: DelegationUsageState;
  /** true when KeyUsage is present and asserts digitalSignature. */
  readonly digitalSignature: boolean;
  /** false when the certificate has no KeyUsage extension at all. */
  readonly hasKeyUsage: boolean;
}

export type CertificateInput = Uint8Array | X509Certificate | DelegationCertificate;

/**
 * Parses (or passes through) the delegation certificate. Throws the CertificateError of
 * ../x509/certificate.ts (bad_certificate) when the DER is not a certificate.
 */
export function delegationCertificate(input: CertificateInput): DelegationCertificate {
  if (!(input instanceof Uint8Array) && !(input instanceof X509Certificate)) return input;
  const parsed = parseCertificate(input instanceof X509Certificate ? new Uint8Array(input.raw) : input);
  const ext = parsed.extensions.get(DELEGATION_USAGE_OID);
  let delegationUsage: DelegationUsageState = 'absent';
  if (ext) {
    const isNull = ext.value.length === 2 && ext.value[0] === 0x05 && ext.value[1] === 0x00;
    delegationUsage = !isNull ? 'malformed' : ext.critical ? 'critical' : 'non-critical';
  }
  const keyUsage = parsed.keyUsage;
  return {
    der: parsed.der,
    publicKey: parsed.x509.publicKey,
    notBeforeSeconds: Math.floor(parsed.notBefore.getTime() / 1000),
    notAfterSeconds: Math.floor(parsed.notAfter.getTime() / 1000),
    delegationUsage,
    digitalSignature: keyUsage !== undefined && (keyUsage & (1 << KeyUsageBit.digitalSignature)) !== 0,
    hasKeyUsage: keyUsage !== undefined,
  };
}
