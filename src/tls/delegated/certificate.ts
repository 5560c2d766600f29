/**
 * What delegated-credential code needs to know about the delegation (end-entity) certificate,
 * parsed once: its DER, public key, validity and the two extensions RFC 9345 §4.2 requires
 * (DelegationUsage, non-critical; KeyUsage with digitalSignature).
 *
 * The extensions are read with a small DER walk over tbsCertificate (node:crypto's
 * X509Certificate does not expose extensions).
 */
import { X509Certificate, type KeyObject } from 'node:crypto';

export type DelegationUsageState = 'absent' | 'non-critical' | 'critical';

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

const DELEGATION_USAGE_OID_DER = Uint8Array.from([0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0xda, 0x4b, 0x2c]);
const KEY_USAGE_OID_DER = Uint8Array.from([0x55, 0x1d, 0x0f]);

/** Parses (or passes through) the delegation certificate. Throws TypeError on a malformed one. */
export function delegationCertificate(input: CertificateInput): DelegationCertificate {
  if (isDelegationCertificate(input)) return input;
  const x509 = input instanceof X509Certificate ? input : new X509Certificate(input);
  const der = new Uint8Array(x509.raw);
  const ext = readExtensions(der);
  return {
    der,
    publicKey: x509.publicKey,
    notBeforeSeconds: parseX509Date(x509.validFrom),
    notAfterSeconds: parseX509Date(x509.validTo),
    delegationUsage: ext.delegationUsage,
    digitalSignature: ext.digitalSignature,
    hasKeyUsage: ext.hasKeyUsage,
  };
}

function isDelegationCertificate(input: CertificateInput): input is DelegationCertificate {
  return !(input instanceof Uint8Array) && !(input instanceof X509Certificate);
}

function parseX509Date(text: string): number {
  const ms = Date.parse(text);
  if (Number.isNaN(ms)) throw new TypeError(`unparseable certificate date ${JSON.stringify(text)}`);
  return Math.floor(ms / 1000);
}

interface Tlv {
  readonly tag: number;
  readonly body: Uint8Array;
  readonly next: number;
}

function readTlv(buf: Uint8Array, at: number): Tlv {
  if (at + 2 > buf.length) throw new TypeError('malformed certificate: truncated DER');
  const tag = buf[at]!;
  let len = buf[at + 1]!;
  let p = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || p + n > buf.length) throw new TypeError('malformed certificate: bad DER length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[p + i]!;
    p += n;
  }
  if (p + len > buf.length) throw new TypeError('malformed certificate: DER value overruns');
  return { tag, body: buf.subarray(p, p + len), next: p + len };
}

function children(body: Uint8Array): Tlv[] {
  const out: Tlv[] = [];
  for (let at = 0; at < body.length; ) {
    const t = readTlv(body, at);
    out.push(t);
    at = t.next;
  }
  return out;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function readExtensions(der: Uint8Array): {
  delegationUsage: DelegationUsageState;
  digitalSignature: boolean;
  hasKeyUsage: boolean;
} {
  const cert = readTlv(der, 0);
  const tbs = children(cert.body)[0];
  if (!tbs || tbs.tag !== 0x30) throw new TypeError('malformed certificate: no tbsCertificate');
  // Extensions are the [3] EXPLICIT field at the end of tbsCertificate (X.509 v3).
  const extField = children(tbs.body).find((t) => t.tag === 0xa3);
  let delegationUsage: DelegationUsageState = 'absent';
  let digitalSignature = false;
  let hasKeyUsage = false;
  if (!extField) return { delegationUsage, digitalSignature, hasKeyUsage };
  const seq = readTlv(extField.body, 0);
  for (const ext of children(seq.body)) {
    const [oid, second, third] = children(ext.body);
    if (!oid || oid.tag !== 0x06) continue;
    const critical = second?.tag === 0x01 && second.body[0] !== 0;
    const value = second?.tag === 0x04 ? second : third;
    if (equalBytes(oid.body, DELEGATION_USAGE_OID_DER)) {
      delegationUsage = critical ? 'critical' : 'non-critical';
    } else if (equalBytes(oid.body, KEY_USAGE_OID_DER) && value) {
      hasKeyUsage = true;
      const bits = readTlv(value.body, 0);
      // BIT STRING: first byte counts unused bits; digitalSignature is bit 0 (the MSB).
      digitalSignature = bits.tag === 0x03 && bits.body.length >= 2 && (bits.body[1]! & 0x80) !== 0;
    }
  }
  return { delegationUsage, digitalSignature, hasKeyUsage };
}
