/**
 * Parsing an X.509 certificate into what chain verification and the delegated-credential code
 * need (names, validity, SPKI, extensions incl. basicConstraints path length, keyUsage bits,
 * extendedKeyUsage, DelegationUsage criticality, key identifiers, subjectAltName, name
 * constraints), and the per-certificate helpers built on it.
 *
 * Speed: a client runs this per handshake. Parsed certificates are cached by the SHA-256 of their
 * DER; node's X509Certificate is built only on demand (its constructor costs more than an ECDSA
 * verification), and so is the public KeyObject.
 */
import { X509Certificate, createPublicKey, type KeyObject } from 'node:crypto';
import { BoundedCache, sha256hex } from './cache.js';
import { DerDecodeError, children, decodeOid, decodeTime, expectTag, hex, readTlv, type Tlv } from './der.js';
import { CertificateError } from './errors.js';
import { asciiLowerCase, canonicalIp } from './names.js';
import { pemToDers } from './pem.js';
import { keyPairFault } from '../key-pair.js';

/** DelegationUsage, RFC 9345 §4.2 (under Cloudflare's private enterprise arc). */
export const DELEGATION_USAGE_OID = '1.3.6.1.4.1.44363.44';

export const OID = {
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
  /** subjectAltName dNSName entries as written, ASCII letters lowercased (wildcards included). */
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
      if (b.end - b.start !== 1) throw new DerDecodeError('bad BOOLEAN');
      critical = buf[b.start] !== 0;
      i++;
    }
    const v = expectTag(parts[i], 0x04, 'extnValue OCTET STRING');
    if (parts.length !== i + 1) throw new DerDecodeError('trailing data in Extension');
    if (out.has(oid)) throw new DerDecodeError(`duplicate extension ${oid}`);
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
      if (c.end - c.start > 4 || (v[c.start]! & 0x80) !== 0) throw new DerDecodeError('bad pathLenConstraint');
      let n = 0;
      for (let i = c.start; i < c.end; i++) n = n * 256 + v[i]!;
      pathLen = n;
    } else throw new DerDecodeError('bad BasicConstraints');
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
    if (gn.tag === 0x82) dnsNames.push(asciiLowerCase(Buffer.from(body).toString('latin1')));
    else if (gn.tag === 0x87) {
      ipAddressBytes.push(body);
      if (body.length === 4) ipAddresses.push(Array.from(body).join('.'));
      else if (body.length === 16) {
        const groups: string[] = [];
        for (let k = 0; k < 16; k += 2) groups.push(((body[k]! << 8) | body[k + 1]!).toString(16));
        ipAddresses.push(canonicalIp(groups.join(':')) ?? groups.join(':'));
      } else throw new DerDecodeError('iPAddress of a length other than 4 or 16');
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
    if (part.tag !== 0xa0 && part.tag !== 0xa1) throw new DerDecodeError('bad NameConstraints');
    const out = part.tag === 0xa0 ? permitted : excluded;
    for (const subtree of children(v, part)) {
      const [base, ...rest] = children(v, expectTag(subtree, 0x30, 'GeneralSubtree'));
      if (!base) throw new DerDecodeError('empty GeneralSubtree');
      const body = v.subarray(base.start, base.end);
      // minimum must be 0 and maximum absent (RFC 5280 §4.2.1.10); anything else we do not evaluate.
      const defaultBounds = rest.every((r) => r.tag === 0x80 && r.end - r.start === 1 && v[r.start] === 0);
      if (!defaultBounds) out.push({ type: 'other', what: 'subtree with minimum/maximum' });
      else if (base.tag === 0x82) out.push({ type: 'dns', name: asciiLowerCase(Buffer.from(body).toString('latin1')) });
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
function parseDer(der: Uint8Array, fingerprint: string): ParsedCertificate {
  const cert = expectTag(readTlv(der, 0, der.length), 0x30, 'Certificate SEQUENCE');
  if (cert.end !== der.length) throw new DerDecodeError('trailing bytes after the certificate');
  const top = children(der, cert);
  if (top.length !== 3) throw new DerDecodeError('a Certificate has three parts');
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
    else if (t.tag !== 0x81 && t.tag !== 0x82) throw new DerDecodeError('unexpected field in TBSCertificate');
  }
  const sigAlgOid = decodeOid(der, expectTag(children(der, expectTag(sigAlg, 0x30, 'signatureAlgorithm'))[0], 0x06, 'algorithm'));
  if (validity.length !== 2) throw new DerDecodeError('bad Validity');
  // RFC 5280 §4.1.1.2: the signed and the outer algorithm identifiers must be identical.
  if (Buffer.compare(der.subarray(innerSigAlg.headerStart, innerSigAlg.end), der.subarray(sigAlg.headerStart, sigAlg.end)) !== 0) {
    throw new DerDecodeError('signatureAlgorithm differs from the signature field of TBSCertificate');
  }
  expectTag(sigValue, 0x03, 'signatureValue BIT STRING');
  if (sigValue.end - sigValue.start < 2 || der[sigValue.start] !== 0) throw new DerDecodeError('bad signatureValue');
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

const parsedCache = new BoundedCache<ParsedCertificate>(512);

/** The certificate's public key (cached on the parsed certificate). */
export function publicKeyOf(c: ParsedCertificate): KeyObject {
  return c.publicKey;
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

export type CertificateInput = X509Certificate | Uint8Array | string;

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

/** describeCertificate of a parsed certificate, in quotes, for messages. */
export function describe(c: ParsedCertificate): string {
  return `"${describeCertificate(c.der)}"`;
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
 * Why `chain` is not end-entity first, or undefined: a CA certificate (basicConstraints cA) ahead
 * of one that is not. Certificates that do not parse are left to the checks that read them.
 */
export function chainOrderProblem(chain: readonly Uint8Array[]): string | undefined {
  if (chain.length < 2) return undefined;
  let isCa: boolean[];
  try {
    isCa = chain.map((d) => parseCertificate(d).basicConstraints?.ca === true);
  } catch {
    return undefined;
  }
  const leaf = isCa.indexOf(false);
  if (leaf <= 0) return undefined;
  return `the chain is in the wrong order: certificate ${leaf + 1} (${describeCertificate(chain[leaf]!)}) is the end-entity and must come first, before the CA certificates`;
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
 * True when `privateKey` is the private half of the certificate's public key: the public key it
 * carries is the certificate's, and it signs for it (../key-pair.ts: a key file's public part can
 * lie). `keyPairFault` says which of the two failed.
 */
export function publicKeyMatchesPrivate(cert: CertificateInput, privateKey: KeyObject): boolean {
  return keyPairFault(privateKey, publicKeyOf(toParsed(cert))) === undefined;
}
