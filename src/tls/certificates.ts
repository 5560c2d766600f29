/**
 * X.509 for the TLS stack and the delegated-credential code: chain verification against a trust
 * store (path building, signatures, validity, CA constraints, key usages, host names), the
 * certificate checks RFC 9345 asks for (DelegationUsage, digitalSignature), and PEM/DER helpers.
 *
 * A small DER walker below reads what chain checks need (names, validity, SPKI, extensions incl.
 * basicConstraints path length, keyUsage bits, extendedKeyUsage, DelegationUsage criticality, key
 * identifiers, subjectAltName). Signatures are checked with node:crypto over the TBSCertificate
 * bytes; node's X509Certificate is built only on demand (its constructor costs more than an ECDSA
 * verification) and for RSASSA-PSS signatures. This file imports nothing of ours on purpose: it
 * is shared by the TLS client, the sidecar, the operator and dcctl.
 *
 * Speed: a client runs this per handshake. Trust stores are parsed once and cached, presented
 * certificates are cached by the SHA-256 of their DER, and a verified (certificate, issuer key)
 * signature is remembered, so a repeated chain costs a few hashes and map lookups.
 */
import { X509Certificate, constants as cryptoConstants, createHash, createPublicKey, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';

// ---------------------------------------------------------------------------------------------
// Errors

/** The TLS alert a certificate failure maps to (RFC 8446 §6.2). */
export type CertificateErrorKind =
  | 'bad_certificate'
  | 'unknown_ca'
  | 'certificate_expired'
  | 'unsupported_certificate'
  | 'certificate_unknown';

/** Alert description codes for each kind, for the TLS layer. */
export const CERTIFICATE_ERROR_ALERTS: Readonly<Record<CertificateErrorKind, number>> = {
  bad_certificate: 42,
  unsupported_certificate: 43,
  certificate_expired: 45,
  certificate_unknown: 46,
  unknown_ca: 48,
};

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
}

// ---------------------------------------------------------------------------------------------
// Constants

export const MAX_CHAIN_LENGTH = 10;
/** DelegationUsage, RFC 9345 §4.2 (under Cloudflare's private enterprise arc). */
export const DELEGATION_USAGE_OID = '1.3.6.1.4.1.44363.44';

const OID = {
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  nameConstraints: '2.5.29.30',
  certificatePolicies: '2.5.29.32',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  anyExtendedKeyUsage: '2.5.29.37.0',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
} as const;

/**
 * Critical extensions we understand and enforce. Anything else marked critical makes the
 * certificate unusable (RFC 5280 §4.2). Name constraints are enforced for dNSName and iPAddress
 * subtrees; a CA constraining other name types is refused (see checkNameConstraints).
 */
const HANDLED_CRITICAL = new Set<string>([
  OID.keyUsage,
  OID.subjectAltName,
  OID.basicConstraints,
  OID.extKeyUsage,
  OID.nameConstraints,
  OID.certificatePolicies, // no policy processing; accepted as Go and browsers do for TLS
  DELEGATION_USAGE_OID, // reported by hasDelegationUsage; RFC 9345 forbids critical, DC code rejects
]);

/** Certificate signature algorithms accepted on certificates we verify (no MD5, no SHA-1). */
const ACCEPTED_SIGNATURE_ALGORITHMS = new Map<string, string>([
  ['1.2.840.113549.1.1.11', 'sha256WithRSAEncryption'],
  ['1.2.840.113549.1.1.12', 'sha384WithRSAEncryption'],
  ['1.2.840.113549.1.1.13', 'sha512WithRSAEncryption'],
  ['1.2.840.113549.1.1.10', 'RSASSA-PSS'],
  ['1.2.840.10045.4.3.2', 'ecdsa-with-SHA256'],
  ['1.2.840.10045.4.3.3', 'ecdsa-with-SHA384'],
  ['1.2.840.10045.4.3.4', 'ecdsa-with-SHA512'],
  ['1.3.101.112', 'Ed25519'],
  ['1.3.101.113', 'Ed448'],
]);

/** keyUsage bit numbers (RFC 5280 §4.2.1.3). */
export const KeyUsageBit = {
  digitalSignature: 0,
  nonRepudiation: 1,
  keyEncipherment: 2,
  dataEncipherment: 3,
  keyAgreement: 4,
  keyCertSign: 5,
  cRLSign: 6,
  encipherOnly: 7,
  decipherOnly: 8,
} as const;

// ---------------------------------------------------------------------------------------------
// Minimal DER reader (only what certificates need)

class DerError extends Error {}

interface Tlv {
  readonly tag: number;
  /** Offset of the content. */
  readonly start: number;
  /** Offset just past the content. */
  readonly end: number;
  /** Offset of the tag byte. */
  readonly headerStart: number;
}

function readTlv(buf: Uint8Array, pos: number, limit: number): Tlv {
  if (pos + 2 > limit) throw new DerError('truncated');
  const tag = buf[pos]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError('high tag numbers are not used in certificates');
  let len = buf[pos + 1]!;
  let start = pos + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4) throw new DerError('unsupported length encoding');
    if (start + n > limit) throw new DerError('truncated length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[start + i]!;
    start += n;
  }
  const end = start + len;
  if (end > limit) throw new DerError('length runs past the end');
  return { tag, start, end, headerStart: pos };
}

/** Children of a constructed TLV, in order. */
function children(buf: Uint8Array, tlv: Tlv): Tlv[] {
  const out: Tlv[] = [];
  let p = tlv.start;
  while (p < tlv.end) {
    const c = readTlv(buf, p, tlv.end);
    out.push(c);
    p = c.end;
  }
  return out;
}

function expectTag(t: Tlv | undefined, tag: number, what: string): Tlv {
  if (!t || t.tag !== tag) throw new DerError(`expected ${what}`);
  return t;
}

function decodeOid(buf: Uint8Array, t: Tlv): string {
  if (t.tag !== 0x06 || t.end === t.start) throw new DerError('expected OBJECT IDENTIFIER');
  const parts: number[] = [];
  let value = 0;
  for (let i = t.start; i < t.end; i++) {
    const b = buf[i]!;
    value = value * 128 + (b & 0x7f);
    if (!(b & 0x80)) {
      if (parts.length === 0) {
        const first = value < 80 ? Math.floor(value / 40) : 2;
        parts.push(first, value - first * 40);
      } else {
        parts.push(value);
      }
      value = 0;
    }
  }
  return parts.join('.');
}

function decodeTime(buf: Uint8Array, t: Tlv): Date {
  const s = Buffer.from(buf.subarray(t.start, t.end)).toString('latin1');
  let m: RegExpExecArray | null;
  let year: number;
  if (t.tag === 0x17) {
    m = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s);
    if (!m) throw new DerError(`bad UTCTime ${s}`);
    const yy = Number(m[1]);
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
  } else if (t.tag === 0x18) {
    m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s);
    if (!m) throw new DerError(`bad GeneralizedTime ${s}`);
    year = Number(m[1]);
  } else {
    throw new DerError('expected a Time');
  }
  return new Date(Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
}

// ---------------------------------------------------------------------------------------------
// Parsed certificate

export interface CertificateExtension {
  readonly critical: boolean;
  /** Contents of extnValue (the DER of the extension's own value). */
  readonly value: Uint8Array;
}

/** What we read from a certificate once; cached by DER digest. */
export interface ParsedCertificate {
  readonly der: Uint8Array;
  /** Hex SHA-256 of the DER. */
  readonly fingerprint: string;
  /** node's view of the certificate, built on first use (its constructor costs more than an ECDSA verify). */
  readonly x509: X509Certificate;
  /** The subject public key, built on first use and kept. */
  readonly publicKey: KeyObject;
  /** The signed bytes (TBSCertificate DER) and the signature (BIT STRING contents). */
  readonly tbs: Uint8Array;
  readonly signature: Uint8Array;
  readonly issuerName: Uint8Array;
  readonly subjectName: Uint8Array;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly spki: Uint8Array;
  readonly signatureAlgorithm: string;
  /** subjectAltName dNSName entries, lowercased, as written (wildcards included). */
  readonly dnsNames: readonly string[];
  /** subjectAltName iPAddress entries in canonical text form. */
  readonly ipAddresses: readonly string[];
  /** The same addresses as bytes (4 or 16), for name constraints. */
  readonly ipAddressBytes: readonly Uint8Array[];
  /** nameConstraints of a CA, when present. */
  readonly nameConstraints: NameConstraints | undefined;
  readonly extensions: ReadonlyMap<string, CertificateExtension>;
  readonly basicConstraints: { readonly ca: boolean; readonly pathLen: number | undefined } | undefined;
  /** Bitmask by KeyUsageBit, or undefined when the extension is absent. */
  readonly keyUsage: number | undefined;
  readonly extKeyUsage: readonly string[] | undefined;
  readonly subjectKeyId: string | undefined;
  readonly authorityKeyId: string | undefined;
  /** subject DER equals issuer DER */
  readonly selfIssued: boolean;
}

function parseExtensions(buf: Uint8Array, extsTlv: Tlv): Map<string, CertificateExtension> {
  const out = new Map<string, CertificateExtension>();
  const seq = expectTag(children(buf, extsTlv)[0], 0x30, 'Extensions SEQUENCE');
  for (const ext of children(buf, seq)) {
    expectTag(ext, 0x30, 'Extension');
    const parts = children(buf, ext);
    const oid = decodeOid(buf, expectTag(parts[0], 0x06, 'extnID'));
    let i = 1;
    let critical = false;
    if (parts[i]?.tag === 0x01) {
      const b = parts[i]!;
      if (b.end - b.start !== 1) throw new DerError('bad BOOLEAN');
      critical = buf[b.start] !== 0;
      i++;
    }
    const v = expectTag(parts[i], 0x04, 'extnValue OCTET STRING');
    if (parts.length !== i + 1) throw new DerError('trailing data in Extension');
    if (out.has(oid)) throw new DerError(`duplicate extension ${oid}`);
    out.set(oid, { critical, value: buf.subarray(v.start, v.end) });
  }
  return out;
}

function decodeBasicConstraints(v: Uint8Array): { ca: boolean; pathLen: number | undefined } {
  const seq = expectTag(readTlv(v, 0, v.length), 0x30, 'BasicConstraints');
  let ca = false;
  let pathLen: number | undefined;
  for (const c of children(v, seq)) {
    if (c.tag === 0x01) ca = v[c.start] !== 0;
    else if (c.tag === 0x02) {
      if (c.end - c.start > 4 || (v[c.start]! & 0x80) !== 0) throw new DerError('bad pathLenConstraint');
      let n = 0;
      for (let i = c.start; i < c.end; i++) n = n * 256 + v[i]!;
      pathLen = n;
    } else throw new DerError('bad BasicConstraints');
  }
  return { ca, pathLen };
}

function decodeKeyUsage(v: Uint8Array): number {
  const bs = expectTag(readTlv(v, 0, v.length), 0x03, 'KeyUsage BIT STRING');
  let mask = 0;
  const bytes = v.subarray(bs.start + 1, bs.end);
  for (let bit = 0; bit < 9 && bit < bytes.length * 8; bit++) {
    if ((bytes[bit >> 3]! >> (7 - (bit & 7))) & 1) mask |= 1 << bit;
  }
  return mask;
}

function decodeExtKeyUsage(v: Uint8Array): string[] {
  const seq = expectTag(readTlv(v, 0, v.length), 0x30, 'ExtKeyUsage');
  return children(v, seq).map((c) => decodeOid(v, c));
}

function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

function decodeSubjectKeyId(v: Uint8Array): string {
  const os = expectTag(readTlv(v, 0, v.length), 0x04, 'SubjectKeyIdentifier');
  return hex(v.subarray(os.start, os.end));
}

function decodeAuthorityKeyId(v: Uint8Array): string | undefined {
  const seq = expectTag(readTlv(v, 0, v.length), 0x30, 'AuthorityKeyIdentifier');
  const first = children(v, seq)[0];
  return first && first.tag === 0x80 ? hex(v.subarray(first.start, first.end)) : undefined;
}

/** dNSName ([2] IA5String) and iPAddress ([7] OCTET STRING) entries of a subjectAltName. */
function decodeSubjectAltName(v: Uint8Array): { dnsNames: string[]; ipAddresses: string[]; ipAddressBytes: Uint8Array[] } {
  const seq = expectTag(readTlv(v, 0, v.length), 0x30, 'SubjectAltName');
  const dnsNames: string[] = [];
  const ipAddresses: string[] = [];
  const ipAddressBytes: Uint8Array[] = [];
  for (const gn of children(v, seq)) {
    const body = v.subarray(gn.start, gn.end);
    if (gn.tag === 0x82) dnsNames.push(Buffer.from(body).toString('latin1').toLowerCase());
    else if (gn.tag === 0x87) {
      ipAddressBytes.push(body);
      if (body.length === 4) ipAddresses.push(Array.from(body).join('.'));
      else if (body.length === 16) {
        const groups: string[] = [];
        for (let k = 0; k < 16; k += 2) groups.push(((body[k]! << 8) | body[k + 1]!).toString(16));
        ipAddresses.push(canonicalIp(groups.join(':')) ?? groups.join(':'));
      } else throw new DerError('iPAddress of a length other than 4 or 16');
    }
  }
  return { dnsNames, ipAddresses, ipAddressBytes };
}

/** One subtree of a nameConstraints extension; 'other' is a name type we do not evaluate. */
export type NameSubtree =
  | { readonly type: 'dns'; readonly name: string }
  | { readonly type: 'ip'; readonly address: Uint8Array; readonly mask: Uint8Array }
  | { readonly type: 'other'; readonly what: string };

export interface NameConstraints {
  readonly permitted: readonly NameSubtree[];
  readonly excluded: readonly NameSubtree[];
}

const GENERAL_NAME_TYPES: Readonly<Record<number, string>> = {
  0xa0: 'otherName',
  0x81: 'rfc822Name',
  0xa3: 'x400Address',
  0xa4: 'directoryName',
  0xa5: 'ediPartyName',
  0x86: 'uniformResourceIdentifier',
  0x88: 'registeredID',
};

function decodeNameConstraints(v: Uint8Array): NameConstraints {
  const seq = expectTag(readTlv(v, 0, v.length), 0x30, 'NameConstraints');
  const permitted: NameSubtree[] = [];
  const excluded: NameSubtree[] = [];
  for (const part of children(v, seq)) {
    if (part.tag !== 0xa0 && part.tag !== 0xa1) throw new DerError('bad NameConstraints');
    const out = part.tag === 0xa0 ? permitted : excluded;
    for (const subtree of children(v, part)) {
      const [base, ...rest] = children(v, expectTag(subtree, 0x30, 'GeneralSubtree'));
      if (!base) throw new DerError('empty GeneralSubtree');
      const body = v.subarray(base.start, base.end);
      // minimum must be 0 and maximum absent (RFC 5280 §4.2.1.10); anything else we do not evaluate.
      const defaultBounds = rest.every((r) => r.tag === 0x80 && r.end - r.start === 1 && v[r.start] === 0);
      if (!defaultBounds) out.push({ type: 'other', what: 'subtree with minimum/maximum' });
      else if (base.tag === 0x82) out.push({ type: 'dns', name: Buffer.from(body).toString('latin1').toLowerCase() });
      else if (base.tag === 0x87 && (body.length === 8 || body.length === 32)) {
        out.push({ type: 'ip', address: body.subarray(0, body.length / 2), mask: body.subarray(body.length / 2) });
      } else out.push({ type: 'other', what: GENERAL_NAME_TYPES[base.tag] ?? `GeneralName tag 0x${base.tag.toString(16)}` });
    }
  }
  return { permitted, excluded };
}

const CURVE_BY_OID: Readonly<Record<string, { crv: string; size: number }>> = {
  '1.2.840.10045.3.1.7': { crv: 'P-256', size: 32 },
  '1.3.132.0.34': { crv: 'P-384', size: 48 },
  '1.3.132.0.35': { crv: 'P-521', size: 66 },
};

function b64url(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');
}

/**
 * A public KeyObject from SubjectPublicKeyInfo DER. Under OpenSSL 3, importing DER goes through
 * the generic decoder framework and costs far more than a signature check; importing the same
 * key as a JWK is 2x (EC) to 40x (RSA) faster, so RSA, EC (uncompressed points) and EdDSA keys
 * take that path. Anything else (RSASSA-PSS keys, compressed points) is imported as DER.
 */
export function publicKeyFromSpki(spki: Uint8Array): KeyObject {
  try {
    const jwk = spkiToJwk(spki);
    if (jwk) return createPublicKey({ key: jwk, format: 'jwk' });
  } catch {
    // fall through to the DER import, which reports the real problem
  }
  return createPublicKey({ key: Buffer.from(spki.buffer, spki.byteOffset, spki.byteLength), format: 'der', type: 'spki' });
}

function spkiToJwk(spki: Uint8Array): Record<string, string> | undefined {
  const seq = expectTag(readTlv(spki, 0, spki.length), 0x30, 'SubjectPublicKeyInfo');
  if (seq.end !== spki.length) return undefined;
  const parts = children(spki, seq);
  if (parts.length !== 2) return undefined;
  const alg = children(spki, expectTag(parts[0], 0x30, 'AlgorithmIdentifier'));
  const bits = expectTag(parts[1], 0x03, 'subjectPublicKey');
  if (spki[bits.start] !== 0) return undefined;
  const key = spki.subarray(bits.start + 1, bits.end);
  const oid = decodeOid(spki, expectTag(alg[0], 0x06, 'algorithm'));
  switch (oid) {
    case '1.2.840.113549.1.1.1': {
      // rsaEncryption: params must be NULL; RSAPublicKey ::= SEQUENCE { modulus, publicExponent }
      const rsa = children(key, expectTag(readTlv(key, 0, key.length), 0x30, 'RSAPublicKey'));
      if (rsa.length !== 2) return undefined;
      const int = (t: Tlv | undefined): Uint8Array => {
        const v = expectTag(t, 0x02, 'INTEGER');
        let start = v.start;
        while (start < v.end - 1 && key[start] === 0) start++;
        return key.subarray(start, v.end);
      };
      return { kty: 'RSA', n: b64url(int(rsa[0])), e: b64url(int(rsa[1])) };
    }
    case '1.2.840.10045.2.1': {
      const curve = alg[1] && alg[1].tag === 0x06 ? CURVE_BY_OID[decodeOid(spki, alg[1])] : undefined;
      if (!curve || key.length !== 1 + 2 * curve.size || key[0] !== 0x04) return undefined;
      return { kty: 'EC', crv: curve.crv, x: b64url(key.subarray(1, 1 + curve.size)), y: b64url(key.subarray(1 + curve.size)) };
    }
    case '1.3.101.112':
      return alg.length === 1 && key.length === 32 ? { kty: 'OKP', crv: 'Ed25519', x: b64url(key) } : undefined;
    case '1.3.101.113':
      return alg.length === 1 && key.length === 57 ? { kty: 'OKP', crv: 'Ed448', x: b64url(key) } : undefined;
    default:
      return undefined;
  }
}

/** Canonical text of an IP address (IPv6 compressed, lowercase), or undefined if it is not one. */
function canonicalIp(ip: string): string | undefined {
  const kind = isIP(ip);
  if (kind === 4) return ip;
  if (kind !== 6) return undefined;
  try {
    return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  } catch {
    return undefined;
  }
}

function parseDer(der: Uint8Array, fingerprint: string): ParsedCertificate {
  const cert = expectTag(readTlv(der, 0, der.length), 0x30, 'Certificate SEQUENCE');
  if (cert.end !== der.length) throw new DerError('trailing bytes after the certificate');
  const top = children(der, cert);
  if (top.length !== 3) throw new DerError('a Certificate has three parts');
  const [tbs, sigAlg, sigValue] = top as [Tlv, Tlv, Tlv];
  const tbsParts = children(der, expectTag(tbs, 0x30, 'TBSCertificate'));
  let i = 0;
  if (tbsParts[0]?.tag === 0xa0) i++; // version
  expectTag(tbsParts[i++], 0x02, 'serialNumber');
  const innerSigAlg = expectTag(tbsParts[i++], 0x30, 'signature AlgorithmIdentifier');
  const issuer = expectTag(tbsParts[i++], 0x30, 'issuer Name');
  const validity = children(der, expectTag(tbsParts[i++], 0x30, 'Validity'));
  const subject = expectTag(tbsParts[i++], 0x30, 'subject Name');
  const spki = expectTag(tbsParts[i++], 0x30, 'SubjectPublicKeyInfo');
  let extensions = new Map<string, CertificateExtension>();
  for (; i < tbsParts.length; i++) {
    const t = tbsParts[i]!;
    if (t.tag === 0xa3) extensions = parseExtensions(der, t);
    else if (t.tag !== 0x81 && t.tag !== 0x82) throw new DerError('unexpected field in TBSCertificate');
  }
  const sigAlgOid = decodeOid(der, expectTag(children(der, expectTag(sigAlg, 0x30, 'signatureAlgorithm'))[0], 0x06, 'algorithm'));
  if (validity.length !== 2) throw new DerError('bad Validity');
  // RFC 5280 §4.1.1.2: the signed and the outer algorithm identifiers must be identical.
  if (Buffer.compare(der.subarray(innerSigAlg.headerStart, innerSigAlg.end), der.subarray(sigAlg.headerStart, sigAlg.end)) !== 0) {
    throw new DerError('signatureAlgorithm differs from the signature field of TBSCertificate');
  }
  expectTag(sigValue, 0x03, 'signatureValue BIT STRING');
  if (sigValue.end - sigValue.start < 2 || der[sigValue.start] !== 0) throw new DerError('bad signatureValue');
  const san = extensions.get(OID.subjectAltName);
  const names = san ? decodeSubjectAltName(san.value) : { dnsNames: [], ipAddresses: [], ipAddressBytes: [] };
  const nc = extensions.get(OID.nameConstraints);

  const bc = extensions.get(OID.basicConstraints);
  const ku = extensions.get(OID.keyUsage);
  const eku = extensions.get(OID.extKeyUsage);
  const ski = extensions.get(OID.subjectKeyIdentifier);
  const aki = extensions.get(OID.authorityKeyIdentifier);
  const issuerName = der.subarray(issuer.headerStart, issuer.end);
  const subjectName = der.subarray(subject.headerStart, subject.end);
  let x509: X509Certificate | undefined;
  let publicKey: KeyObject | undefined;
  const spkiDer = der.subarray(spki.headerStart, spki.end);
  return {
    der,
    fingerprint,
    get x509() {
      return (x509 ??= new X509Certificate(der));
    },
    get publicKey() {
      return (publicKey ??= publicKeyFromSpki(spkiDer));
    },
    tbs: der.subarray(tbs.headerStart, tbs.end),
    signature: der.subarray(sigValue.start + 1, sigValue.end),
    dnsNames: names.dnsNames,
    ipAddresses: names.ipAddresses,
    ipAddressBytes: names.ipAddressBytes,
    nameConstraints: nc ? decodeNameConstraints(nc.value) : undefined,
    issuerName,
    subjectName,
    notBefore: decodeTime(der, validity[0]!),
    notAfter: decodeTime(der, validity[1]!),
    spki: spkiDer,
    signatureAlgorithm: sigAlgOid,
    extensions,
    basicConstraints: bc ? decodeBasicConstraints(bc.value) : undefined,
    keyUsage: ku ? decodeKeyUsage(ku.value) : undefined,
    extKeyUsage: eku ? decodeExtKeyUsage(eku.value) : undefined,
    subjectKeyId: ski ? decodeSubjectKeyId(ski.value) : undefined,
    authorityKeyId: aki ? decodeAuthorityKeyId(aki.value) : undefined,
    selfIssued: Buffer.compare(issuerName, subjectName) === 0,
  };
}

/**
 * A bounded cache that evicts the oldest insertion. Not LRU on purpose: refreshing the order on
 * every hit costs more than the occasional re-parse of an evicted entry.
 */
class BoundedCache<V> {
  private readonly map = new Map<string, V>();
  constructor(private readonly capacity: number) {}
  get(key: string): V | undefined {
    return this.map.get(key);
  }
  set(key: string, v: V): void {
    if (!this.map.has(key) && this.map.size >= this.capacity) this.map.delete(this.map.keys().next().value as string);
    this.map.set(key, v);
  }
}

const parsedCache = new BoundedCache<ParsedCertificate>(512);
/** The certificate's public key (cached on the parsed certificate). */
function publicKeyOf(c: ParsedCertificate): KeyObject {
  return c.publicKey;
}

const verifiedSignatures = new BoundedCache<true>(1024);

function sha256hex(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

/**
 * Parses a DER certificate (cached by digest). Throws CertificateError(bad_certificate,
 * 'malformed') for anything that is not a well-formed X.509 certificate.
 */
export function parseCertificate(der: Uint8Array, index = -1): ParsedCertificate {
  const fp = sha256hex(der);
  const hit = parsedCache.get(fp);
  if (hit) return hit;
  let parsed: ParsedCertificate;
  try {
    // Copy: the caller's buffer may be a view into a reused record buffer.
    parsed = parseDer(Uint8Array.from(der), fp);
  } catch (e) {
    const where = index >= 0 ? `certificate #${index} in the chain` : 'certificate';
    throw new CertificateError('bad_certificate', 'malformed', `${where} is not a valid DER X.509 certificate: ${(e as Error).message}`, index);
  }
  parsedCache.set(fp, parsed);
  return parsed;
}

type CertificateInput = X509Certificate | Uint8Array | string;

function toParsed(cert: CertificateInput): ParsedCertificate {
  if (cert instanceof X509Certificate) return parseCertificate(cert.raw);
  if (typeof cert === 'string') {
    const ders = pemToDers(cert, 'CERTIFICATE');
    if (ders.length === 0) throw new CertificateError('bad_certificate', 'malformed', 'no PEM CERTIFICATE block found');
    return parseCertificate(ders[0]!);
  }
  return parseCertificate(cert);
}

/** A short human name for a certificate in messages: its subject, e.g. `CN=example.com`. */
export function describeCertificate(cert: CertificateInput): string {
  const p = toParsed(cert);
  let subject = '';
  try {
    subject = p.x509.subject.replace(/\n/g, ', ');
  } catch {
    // OpenSSL refused what our reader accepted; fall back to the digest.
  }
  return subject === '' ? `(empty subject, sha256 ${p.fingerprint.slice(0, 16)})` : subject;
}

// ---------------------------------------------------------------------------------------------
// Trust store

export interface TrustStore {
  readonly anchors: readonly ParsedCertificate[];
  /** Anchors by hex of their subject Name DER. */
  readonly bySubject: ReadonlyMap<string, readonly ParsedCertificate[]>;
  /** Anchors by fingerprint (for a leaf that is itself trusted). */
  readonly byFingerprint: ReadonlySet<string>;
}

export type TrustAnchorInput = string | Uint8Array | X509Certificate;

const storeByArray = new WeakMap<readonly TrustAnchorInput[], { entries: TrustAnchorInput[]; store: TrustStore }>();
const storeByKey = new BoundedCache<TrustStore>(32);

/**
 * Builds a trust store from PEM bundles (several certificates per string allowed), DER bytes or
 * X509Certificate objects. Throws CertificateError('invalid_trust_anchor') naming the bad entry.
 */
export function createTrustStore(ca: readonly TrustAnchorInput[]): TrustStore {
  const anchors: ParsedCertificate[] = [];
  ca.forEach((entry, i) => {
    let ders: Uint8Array[];
    if (typeof entry === 'string') {
      ders = pemToDers(entry, 'CERTIFICATE');
      if (ders.length === 0) {
        throw new CertificateError('certificate_unknown', 'invalid_trust_anchor', `trust anchor #${i} contains no PEM CERTIFICATE block`);
      }
    } else if (entry instanceof X509Certificate) ders = [entry.raw];
    else ders = [entry];
    for (const der of ders) {
      try {
        anchors.push(parseCertificate(der));
      } catch (e) {
        throw new CertificateError('certificate_unknown', 'invalid_trust_anchor', `trust anchor #${i}: ${(e as Error).message}`);
      }
    }
  });
  const bySubject = new Map<string, ParsedCertificate[]>();
  for (const a of anchors) {
    const k = hex(a.subjectName);
    const list = bySubject.get(k);
    if (list) list.push(a);
    else bySubject.set(k, [a]);
  }
  return { anchors, bySubject, byFingerprint: new Set(anchors.map((a) => a.fingerprint)) };
}

function isTrustStore(x: unknown): x is TrustStore {
  return typeof x === 'object' && x !== null && 'bySubject' in x && 'anchors' in x;
}

/**
 * Cached: the same array with the same entries (checked, so a mutated array is re-read), or equal
 * PEM strings in a new array, reuse the parsed store.
 */
function trustStoreFor(ca: readonly TrustAnchorInput[] | TrustStore): TrustStore {
  if (isTrustStore(ca)) return ca;
  const byArray = storeByArray.get(ca);
  if (byArray && byArray.entries.length === ca.length && byArray.entries.every((e, i) => e === ca[i])) return byArray.store;
  let key: string | undefined;
  let store: TrustStore | undefined;
  if (ca.every((c) => typeof c === 'string')) {
    key = sha256hex(Buffer.from((ca as string[]).join('\u0000')));
    store = storeByKey.get(key);
  }
  if (!store) {
    store = createTrustStore(ca);
    if (key) storeByKey.set(key, store);
  }
  storeByArray.set(ca, { entries: [...ca], store });
  return store;
}

// ---------------------------------------------------------------------------------------------
// Chain verification

export interface VerifyChainOptions {
  /** Trust anchors, or a store from createTrustStore (fastest). */
  ca: readonly TrustAnchorInput[] | TrustStore;
  /** DNS name or IP address the leaf must be valid for; omitted: no name check. */
  servername?: string;
  now?: Date;
  /** extendedKeyUsage required on the leaf (and intermediates) when they carry the extension. Default 'server'. */
  purpose?: 'server' | 'client';
}

/** `leaf`, `path` and `anchor` build node X509Certificate objects on first access. */
export interface VerifiedChain {
  readonly leaf: X509Certificate;
  readonly leafDer: Uint8Array;
  readonly publicKey: KeyObject;
  /** Leaf first, trust anchor last (a directly trusted leaf: just the leaf). */
  readonly path: readonly X509Certificate[];
  readonly anchor: X509Certificate;
}

/** Budget of signature checks while searching for a path: bounds pathological chains. */
const MAX_SIGNATURE_CHECKS = 64;

interface SearchState {
  checks: number;
  /** Failures seen while searching, to explain why no path was found. */
  badSignatureBetweenPresented: { child: number; issuer: number } | undefined;
  anchorNameMatchedButSignatureFailed: ParsedCertificate | undefined;
  firstPathError: CertificateError | undefined;
}

export function verifyCertificateChain(chainDers: readonly Uint8Array[], opts: VerifyChainOptions): VerifiedChain {
  if (chainDers.length === 0) throw new CertificateError('bad_certificate', 'empty_chain', 'the peer sent no certificate');
  if (chainDers.length > MAX_CHAIN_LENGTH) {
    throw new CertificateError('bad_certificate', 'chain_too_long', `certificate chain has ${chainDers.length} certificates; at most ${MAX_CHAIN_LENGTH} are accepted`);
  }
  const now = opts.now ?? new Date();
  const purpose = opts.purpose ?? 'server';
  const chain = chainDers.map((d, i) => parseCertificate(d, i));
  const store = trustStoreFor(opts.ca);
  const leaf = chain[0]!;

  // Intrinsic leaf checks first: they are true whatever the path is, and the most useful message.
  checkValidity(leaf, now, 0, 'leaf');

  const state: SearchState = {
    checks: 0,
    badSignatureBetweenPresented: undefined,
    anchorNameMatchedButSignatureFailed: undefined,
    firstPathError: undefined,
  };
  let path: ParsedCertificate[] | undefined;
  if (store.byFingerprint.has(leaf.fingerprint)) {
    // The leaf itself is trusted (a pinned self-signed or dev certificate).
    const err = validatePath([leaf], now, purpose, [0]);
    if (err) throw err;
    path = [leaf];
  } else {
    path = findPath(chain, store, now, purpose, state);
  }
  if (!path) throw noPathError(chain, state);

  if (opts.servername !== undefined) checkName(leaf, opts.servername);
  const found = path;
  return {
    get leaf() {
      return leaf.x509;
    },
    leafDer: leaf.der,
    publicKey: publicKeyOf(leaf),
    get path() {
      return found.map((p) => p.x509);
    },
    get anchor() {
      return found[found.length - 1]!.x509;
    },
  };
}

/** Depth-first search from the leaf to an anchor; every complete path is validated, first valid wins. */
function findPath(
  chain: readonly ParsedCertificate[],
  store: TrustStore,
  now: Date,
  purpose: 'server' | 'client',
  state: SearchState,
): ParsedCertificate[] | undefined {
  const used = new Set<number>([0]);
  // Repeated copies of a certificate add nothing but search time.
  const duplicates = new Set<number>();
  const seen = new Set<string>();
  chain.forEach((c, i) => {
    if (seen.has(c.fingerprint)) duplicates.add(i);
    seen.add(c.fingerprint);
  });
  const path: ParsedCertificate[] = [chain[0]!];
  const indices: number[] = [0];

  const step = (): ParsedCertificate[] | undefined => {
    const current = path[path.length - 1]!;
    const currentIndex = indices[indices.length - 1]!;
    // 1. A trust anchor that issued `current`.
    for (const anchor of store.bySubject.get(hex(current.issuerName)) ?? []) {
      if (!keyIdsCompatible(current, anchor)) continue;
      if (anchor.fingerprint === current.fingerprint) continue;
      if (!signatureVerifies(current, anchor, state)) {
        state.anchorNameMatchedButSignatureFailed ??= anchor;
        continue;
      }
      const candidate = [...path, anchor];
      const err = validatePath(candidate, now, purpose, [...indices, -1]);
      if (!err) return candidate;
      state.firstPathError ??= err;
    }
    // A presented self-signed root that is not trusted ends this branch.
    if (current.selfIssued && signatureVerifies(current, current, state)) return undefined;
    if (path.length >= MAX_CHAIN_LENGTH) return undefined;
    // 2. A presented intermediate that issued `current`.
    for (let j = 1; j < chain.length; j++) {
      if (used.has(j) || duplicates.has(j)) continue;
      const issuer = chain[j]!;
      if (Buffer.compare(issuer.subjectName, current.issuerName) !== 0) continue;
      if (!keyIdsCompatible(current, issuer)) continue;
      if (!signatureVerifies(current, issuer, state)) {
        state.badSignatureBetweenPresented ??= { child: currentIndex, issuer: j };
        continue;
      }
      // A presented copy of a trust anchor: treat it as reaching that anchor.
      if (store.byFingerprint.has(issuer.fingerprint)) {
        const candidate = [...path, issuer];
        const err = validatePath(candidate, now, purpose, [...indices, j]);
        if (!err) return candidate;
        state.firstPathError ??= err;
        continue;
      }
      used.add(j);
      path.push(issuer);
      indices.push(j);
      const found = step();
      if (found) return found;
      path.pop();
      indices.pop();
      used.delete(j);
    }
    return undefined;
  };
  return step();
}

/** When both key identifiers are present they must agree; otherwise the name match decides. */
function keyIdsCompatible(child: ParsedCertificate, issuer: ParsedCertificate): boolean {
  return child.authorityKeyId === undefined || issuer.subjectKeyId === undefined || child.authorityKeyId === issuer.subjectKeyId;
}

function signatureVerifies(child: ParsedCertificate, issuer: ParsedCertificate, state: SearchState): boolean {
  const key = `${child.fingerprint}:${issuer.fingerprint}`;
  if (verifiedSignatures.get(key)) return true;
  if (state.checks++ >= MAX_SIGNATURE_CHECKS) return false;
  let ok = false;
  try {
    ok = verifyCertificateSignature(child, publicKeyOf(issuer));
  } catch {
    ok = false;
  }
  if (ok) verifiedSignatures.set(key, true);
  return ok;
}

/**
 * Checks the issuer's signature over the TBSCertificate with node:crypto directly (no
 * X509Certificate needed). RSASSA-PSS, whose parameters live in the AlgorithmIdentifier, is left
 * to OpenSSL through X509Certificate.verify.
 */
function verifyCertificateSignature(child: ParsedCertificate, key: KeyObject): boolean {
  const type = key.asymmetricKeyType;
  const sig = child.signature;
  switch (child.signatureAlgorithm) {
    case '1.2.840.113549.1.1.11':
    case '1.2.840.113549.1.1.12':
    case '1.2.840.113549.1.1.13':
      if (type !== 'rsa') return false;
      return cryptoVerify(SIGNATURE_HASH[child.signatureAlgorithm]!, child.tbs, { key, padding: cryptoConstants.RSA_PKCS1_PADDING }, sig);
    case '1.2.840.10045.4.3.2':
    case '1.2.840.10045.4.3.3':
    case '1.2.840.10045.4.3.4':
      if (type !== 'ec') return false;
      return cryptoVerify(SIGNATURE_HASH[child.signatureAlgorithm]!, child.tbs, { key, dsaEncoding: 'der' }, sig);
    case '1.3.101.112':
      return type === 'ed25519' && cryptoVerify(null, child.tbs, key, sig);
    case '1.3.101.113':
      return type === 'ed448' && cryptoVerify(null, child.tbs, key, sig);
    default:
      return child.x509.verify(key);
  }
}

const SIGNATURE_HASH: Readonly<Record<string, string>> = {
  '1.2.840.113549.1.1.11': 'sha256',
  '1.2.840.113549.1.1.12': 'sha384',
  '1.2.840.113549.1.1.13': 'sha512',
  '1.2.840.10045.4.3.2': 'sha256',
  '1.2.840.10045.4.3.3': 'sha384',
  '1.2.840.10045.4.3.4': 'sha512',
};

/**
 * Checks a complete path (leaf first, anchor last) against validity, CA and usage constraints.
 * Returns the first problem, or undefined when the path is good.
 */
function validatePath(
  path: readonly ParsedCertificate[],
  now: Date,
  purpose: 'server' | 'client',
  presentedIndices: readonly number[],
): CertificateError | undefined {
  try {
    const last = path.length - 1;
    for (let k = 0; k <= last; k++) {
      const c = path[k]!;
      const index = presentedIndices[k] ?? -1;
      const role = k === 0 ? 'leaf' : k === last ? 'trust anchor' : 'intermediate';
      checkValidity(c, now, index, role);
      checkCriticalExtensions(c, index, role);
      // The anchor's own signature and EKU are not checked: it is trusted by configuration.
      if (k < last) checkSignatureAlgorithm(c, index, role);
      if (k === 0 || k < last) checkPurpose(c, purpose, index, role);
      if (k === 0) {
        if (c.keyUsage !== undefined && !(c.keyUsage & (1 << KeyUsageBit.digitalSignature))) {
          throw new CertificateError('unsupported_certificate', 'key_usage_forbids_signing', `leaf certificate ${describe(c)} has a keyUsage extension without digitalSignature, so it cannot sign a TLS 1.3 handshake`, index);
        }
        continue;
      }
      // Issuers.
      if (!c.basicConstraints?.ca) {
        throw new CertificateError('bad_certificate', 'issuer_not_ca', `${role} ${describe(c)} issued ${describe(path[k - 1]!)} but is not a CA (basicConstraints cA is ${c.basicConstraints ? 'false' : 'absent'})`, index);
      }
      if (c.keyUsage !== undefined && !(c.keyUsage & (1 << KeyUsageBit.keyCertSign))) {
        throw new CertificateError('bad_certificate', 'issuer_cannot_sign_certificates', `${role} ${describe(c)} has a keyUsage extension without keyCertSign`, index);
      }
      if (c.nameConstraints) checkNameConstraints(c, role, index, path.slice(0, k), presentedIndices);
      const pathLen = c.basicConstraints.pathLen;
      if (pathLen !== undefined) {
        // Non-self-issued intermediate CAs below this one (RFC 5280 §4.2.1.9).
        let below = 0;
        for (let j = 1; j < k; j++) if (!path[j]!.selfIssued) below++;
        if (below > pathLen) {
          throw new CertificateError('bad_certificate', 'path_length_exceeded', `${role} ${describe(c)} allows ${pathLen} intermediate CA(s) below it (pathLenConstraint) but the chain has ${below}`, index);
        }
      }
    }
    return undefined;
  } catch (e) {
    if (e instanceof CertificateError) return e;
    throw e;
  }
}

/**
 * RFC 5280 §4.2.1.10 for dNSName and iPAddress subtrees, applied to the subjectAltName names of
 * every certificate below the constraining CA (self-issued intermediates excepted). The subject
 * common name is not a host name here (we never match host names against it), so it is not checked.
 */
function checkNameConstraints(ca: ParsedCertificate, role: string, index: number, below: readonly ParsedCertificate[], presentedIndices: readonly number[]): void {
  const nc = ca.nameConstraints!;
  const other = [...nc.permitted, ...nc.excluded].find((t) => t.type === 'other');
  if (other && other.type === 'other') {
    throw new CertificateError('unsupported_certificate', 'unsupported_name_constraint', `${role} ${describe(ca)} has name constraints on ${other.what}, which we do not evaluate`, index);
  }
  const permittedDns = nc.permitted.filter((t) => t.type === 'dns');
  const permittedIp = nc.permitted.filter((t) => t.type === 'ip');
  below.forEach((c, j) => {
    if (j > 0 && c.selfIssued) return;
    const violation = (name: string, why: string) =>
      new CertificateError('bad_certificate', 'name_constraint_violation', `certificate ${describe(c)} has the name ${name}, which the name constraints of ${role} ${describe(ca)} ${why}`, presentedIndices[j] ?? -1);
    for (const dns of c.dnsNames) {
      if (nc.excluded.some((t) => t.type === 'dns' && dnsWithinConstraint(dns, t.name))) throw violation(`DNS:${dns}`, 'exclude');
      if (permittedDns.length > 0 && !permittedDns.some((t) => t.type === 'dns' && dnsWithinConstraint(dns, t.name))) throw violation(`DNS:${dns}`, 'do not permit');
    }
    c.ipAddressBytes.forEach((ip, n) => {
      const label = `IP:${c.ipAddresses[n] ?? '?'}`;
      if (nc.excluded.some((t) => t.type === 'ip' && ipWithinConstraint(ip, t.address, t.mask))) throw violation(label, 'exclude');
      if (permittedIp.length > 0 && !permittedIp.some((t) => t.type === 'ip' && ipWithinConstraint(ip, t.address, t.mask))) throw violation(label, 'do not permit');
    });
  });
}

/** "example.com" covers itself and its subdomains; ".example.com" only subdomains; "" everything. */
function dnsWithinConstraint(name: string, constraint: string): boolean {
  const n = name.endsWith('.') ? name.slice(0, -1) : name;
  if (constraint === '') return true;
  if (constraint.startsWith('.')) return n.length > constraint.length && n.endsWith(constraint);
  return n === constraint || n.endsWith(`.${constraint}`);
}

function ipWithinConstraint(ip: Uint8Array, address: Uint8Array, mask: Uint8Array): boolean {
  if (ip.length !== address.length) return false;
  for (let i = 0; i < ip.length; i++) if ((ip[i]! & mask[i]!) !== (address[i]! & mask[i]!)) return false;
  return true;
}

function describe(c: ParsedCertificate): string {
  return `"${describeCertificate(c.der)}"`;
}

function checkValidity(c: ParsedCertificate, now: Date, index: number, role: string): void {
  const t = now.getTime();
  if (t < c.notBefore.getTime()) {
    throw new CertificateError('certificate_expired', 'not_yet_valid', `${role} certificate ${describe(c)} is not valid before ${c.notBefore.toISOString()} (now ${now.toISOString()})`, index);
  }
  if (t > c.notAfter.getTime()) {
    throw new CertificateError('certificate_expired', 'expired', `${role} certificate ${describe(c)} expired at ${c.notAfter.toISOString()} (now ${now.toISOString()})`, index);
  }
}

function checkCriticalExtensions(c: ParsedCertificate, index: number, role: string): void {
  for (const [oid, ext] of c.extensions) {
    if (ext.critical && !HANDLED_CRITICAL.has(oid)) {
      throw new CertificateError('unsupported_certificate', 'unhandled_critical_extension', `${role} certificate ${describe(c)} has a critical extension we do not process (${oid})`, index);
    }
  }
}

function checkSignatureAlgorithm(c: ParsedCertificate, index: number, role: string): void {
  if (!ACCEPTED_SIGNATURE_ALGORITHMS.has(c.signatureAlgorithm)) {
    throw new CertificateError('unsupported_certificate', 'unsupported_signature_algorithm', `${role} certificate ${describe(c)} is signed with an algorithm we do not accept (${c.signatureAlgorithm}); SHA-256 or stronger RSA/ECDSA, or Ed25519/Ed448, are required`, index);
  }
}

function checkPurpose(c: ParsedCertificate, purpose: 'server' | 'client', index: number, role: string): void {
  const eku = c.extKeyUsage;
  if (eku === undefined) return;
  const wanted = purpose === 'server' ? OID.serverAuth : OID.clientAuth;
  if (eku.includes(wanted) || eku.includes(OID.anyExtendedKeyUsage)) return;
  throw new CertificateError('unsupported_certificate', 'wrong_purpose', `${role} certificate ${describe(c)} is not valid for TLS ${purpose} authentication (extendedKeyUsage lacks ${purpose === 'server' ? 'serverAuth' : 'clientAuth'})`, index);
}

/**
 * RFC 6125 matching against subjectAltName only (never the subject CN): DNS names
 * case-insensitively, a wildcard only as the whole leftmost label matching exactly one label and
 * never directly under a top-level label; IP addresses against iPAddress entries.
 */
function checkName(leaf: ParsedCertificate, servername: string): void {
  const name = (servername.endsWith('.') ? servername.slice(0, -1) : servername).toLowerCase();
  const bare = name.startsWith('[') && name.endsWith(']') ? name.slice(1, -1) : name;
  const ip = canonicalIp(bare);
  if (ip !== undefined ? leaf.ipAddresses.includes(ip) : leaf.dnsNames.some((pattern) => dnsNameMatches(pattern, name))) return;
  const covered = [...leaf.dnsNames.map((d) => `DNS:${d}`), ...leaf.ipAddresses.map((a) => `IP Address:${a}`)];
  const names = covered.length ? covered.join(', ') : '(no subjectAltName names)';
  throw new CertificateError('bad_certificate', 'hostname_mismatch', `certificate ${describe(leaf)} is not valid for "${servername}"; it covers ${names}`, 0);
}

function dnsNameMatches(pattern: string, host: string): boolean {
  const p = pattern.endsWith('.') ? pattern.slice(0, -1) : pattern;
  if (!p.startsWith('*.')) return !p.includes('*') && p === host;
  const suffix = p.slice(1); // ".example.com"
  if (suffix.includes('*') || suffix.split('.').length < 3) return false;
  if (!host.endsWith(suffix)) return false;
  const label = host.slice(0, host.length - suffix.length);
  return label.length > 0 && !label.includes('.');
}

function noPathError(chain: readonly ParsedCertificate[], state: SearchState): CertificateError {
  if (state.firstPathError) return state.firstPathError;
  if (state.badSignatureBetweenPresented) {
    const { child, issuer } = state.badSignatureBetweenPresented;
    return new CertificateError('bad_certificate', 'bad_signature', `the signature on certificate #${child} ${describe(chain[child]!)} does not verify with the key of certificate #${issuer} ${describe(chain[issuer]!)}`, child);
  }
  const leaf = chain[0]!;
  const top = chain[chain.length - 1]!;
  let issuerName = '(unreadable)';
  try {
    issuerName = top.x509.issuer.replace(/\n/g, ', ');
  } catch {
    // keep the placeholder
  }
  if (state.anchorNameMatchedButSignatureFailed) {
    return new CertificateError('unknown_ca', 'untrusted', `certificate ${describe(top)} names a trusted CA (${issuerName}) as issuer but its signature does not verify with that CA's key: it was issued by a different CA with the same name`, chain.length - 1);
  }
  if (state.checks >= MAX_SIGNATURE_CHECKS) {
    return new CertificateError('unknown_ca', 'untrusted', `gave up building a path for ${describe(leaf)} after ${MAX_SIGNATURE_CHECKS} signature checks`, 0);
  }
  return new CertificateError('unknown_ca', 'untrusted', `certificate ${describe(leaf)} does not chain to a trusted CA (the chain ends at an issuer named "${issuerName}", which is not in the trust store)`, chain.length - 1);
}

// ---------------------------------------------------------------------------------------------
// Helpers for the delegated-credential code

/** DelegationUsage (RFC 9345 §4.2): presence, criticality, and whether the value is ASN.1 NULL. */
export function hasDelegationUsage(cert: CertificateInput): { present: boolean; critical: boolean; valueIsNull: boolean } {
  const ext = toParsed(cert).extensions.get(DELEGATION_USAGE_OID);
  if (!ext) return { present: false, critical: false, valueIsNull: false };
  const v = ext.value;
  return { present: true, critical: ext.critical, valueIsNull: v.length === 2 && v[0] === 0x05 && v[1] === 0x00 };
}

/** True only when a keyUsage extension is present and asserts digitalSignature (RFC 9345 §4.2). */
export function hasDigitalSignatureKeyUsage(cert: CertificateInput): boolean {
  const ku = toParsed(cert).keyUsage;
  return ku !== undefined && (ku & (1 << KeyUsageBit.digitalSignature)) !== 0;
}

/**
 * Why the certificate cannot delegate credentials, as one sentence for a person (operator
 * conditions, dcctl), or undefined when it can.
 */
export function delegationUsageProblem(cert: CertificateInput): string | undefined {
  const du = hasDelegationUsage(cert);
  if (!du.present) return `certificate ${describeCertificate(cert)} lacks the DelegationUsage extension (${DELEGATION_USAGE_OID}); reissue it with that extension to delegate credentials`;
  if (du.critical) return `certificate ${describeCertificate(cert)} marks the DelegationUsage extension critical; RFC 9345 requires it to be non-critical`;
  if (!du.valueIsNull) return `certificate ${describeCertificate(cert)} has a DelegationUsage extension whose value is not ASN.1 NULL`;
  if (!hasDigitalSignatureKeyUsage(cert)) return `certificate ${describeCertificate(cert)} lacks the digitalSignature key usage that delegating credentials requires`;
  return undefined;
}

export function certificateNotBefore(cert: CertificateInput): Date {
  return new Date(toParsed(cert).notBefore.getTime());
}

export function certificateNotAfter(cert: CertificateInput): Date {
  return new Date(toParsed(cert).notAfter.getTime());
}

/** The SubjectPublicKeyInfo DER exactly as it appears in the certificate. */
export function spkiOf(cert: CertificateInput): Uint8Array {
  return Uint8Array.from(toParsed(cert).spki);
}

/** The certificate's public key, built once per certificate (KeyObject creation is slow under OpenSSL 3). */
export function certificatePublicKey(cert: CertificateInput): KeyObject {
  return publicKeyOf(toParsed(cert));
}

/** The parsed certificate's raw extension map (OID → criticality and value DER). */
export function certificateExtensions(cert: CertificateInput): ReadonlyMap<string, CertificateExtension> {
  return toParsed(cert).extensions;
}

/**
 * TLS 1.3 CertificateVerify schemes (RFC 8446 code points) a certificate's public key can
 * produce, preferred first; empty for key types TLS 1.3 cannot sign with. One table for the
 * whole stack: signature-schemes.ts.
 */
export { schemesForKey as schemesForPublicKey } from './signature-schemes.js';

/** True when `privateKey` is the private half of the certificate's public key. */
export function publicKeyMatchesPrivate(cert: CertificateInput, privateKey: KeyObject): boolean {
  if (privateKey.type !== 'private') return false;
  const certKey = publicKeyOf(toParsed(cert));
  if (certKey.asymmetricKeyType !== privateKey.asymmetricKeyType) return false;
  const a = certKey.export({ type: 'spki', format: 'der' });
  const b = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
  return Buffer.compare(a, b) === 0;
}

// ---------------------------------------------------------------------------------------------
// PEM

const PEM_RE = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;

/**
 * All DER blocks with the given label (e.g. 'CERTIFICATE'), in order. Blocks with other labels
 * are skipped. Throws on a block whose base64 body is invalid.
 */
export function pemToDers(pem: string, label: string): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const m of pem.matchAll(PEM_RE)) {
    if (m[1] !== label) continue;
    const body = m[2]!.replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body) || body.length % 4 !== 0) {
      throw new CertificateError('bad_certificate', 'malformed', `PEM ${label} block #${out.length} has an invalid base64 body`);
    }
    out.push(new Uint8Array(Buffer.from(body, 'base64')));
  }
  return out;
}

export function derToPem(der: Uint8Array, label: string): string {
  const b64 = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/**
 * The CERTIFICATE blocks of a PEM bundle re-encoded from their DER, and the labels of the private
 * key blocks it also held (a "combined PEM": certificate followed by its key). For passing a
 * `tls.crt` on: rebuilt from the parsed DER, nothing else in the input (other blocks, text around
 * them, a key) can travel with it. Throws like pemToDers on a CERTIFICATE block that is not base64.
 */
export function certificatesOfPem(pem: string): { ders: Uint8Array[]; pem: string; privateKeyLabels: string[] } {
  const ders = pemToDers(pem, 'CERTIFICATE');
  // BEGIN lines, not whole blocks: a key whose END line is damaged is still a key.
  const privateKeyLabels = [...pem.matchAll(/-----BEGIN ([A-Z0-9 ]*PRIVATE KEY)-----/g)].map((m) => m[1] ?? '');
  return { ders, pem: ders.map((d) => derToPem(d, 'CERTIFICATE')).join(''), privateKeyLabels };
}
