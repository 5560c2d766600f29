/**
 * Which signature schemes may be a credential's `dc_cert_verify_algorithm`, how to make a key for
 * each, and which is cheapest to use in a handshake.
 *
 * rsa_pss_rsae_* is never allowed: a DC key must not have an rsaEncryption SPKI (RFC 9345 §4);
 * RSA credentials use RSASSA-PSS keys (rsa_pss_pss_*). rsa_pkcs1_* is not a TLS 1.3
 * CertificateVerify scheme at all.
 */
import { createECDH, generateKeyPair, type KeyObject } from 'node:crypto';
import { SignatureScheme, signatureSchemeName } from '../constants.js';
import { keyMatchesScheme, schemeParams } from '../signature-schemes.js';
import { DerTag, encodeTlv } from '../x509/der.js';

const S = SignatureScheme;

/** DC algorithms by name, as used in file names, CRDs and CLI flags. */
export const DC_ALGORITHMS = {
  ed25519: S.ed25519,
  ecdsa_secp256r1_sha256: S.ecdsa_secp256r1_sha256,
  ecdsa_secp384r1_sha384: S.ecdsa_secp384r1_sha384,
  ecdsa_secp521r1_sha512: S.ecdsa_secp521r1_sha512,
  rsa_pss_pss_sha256: S.rsa_pss_pss_sha256,
  rsa_pss_pss_sha384: S.rsa_pss_pss_sha384,
  rsa_pss_pss_sha512: S.rsa_pss_pss_sha512,
  mldsa44: S.mldsa44,
  mldsa65: S.mldsa65,
  mldsa87: S.mldsa87,
} as const;
export type DcAlgorithmName = keyof typeof DC_ALGORITHMS;

/**
 * Preference when several credentials fit. ML-DSA first: a peer lists it in both
 * signature_algorithms and extension 34 only when it wants post-quantum authentication (no
 * browser does yet), and an operator who issued one wants it used; it costs ~5 KB more first
 * flight and ~2x the server CPU of a P-256 credential (bench/results/pq.md). Then cheapest to sign and verify (Ed25519, ECDSA by curve size,
 * RSA-PSS).
 */
const PREFERENCE: readonly number[] = [
  S.mldsa44,
  S.mldsa65,
  S.mldsa87,
  S.ed25519,
  S.ecdsa_secp256r1_sha256,
  S.ecdsa_secp384r1_sha384,
  S.ecdsa_secp521r1_sha512,
  S.rsa_pss_pss_sha256,
  S.rsa_pss_pss_sha384,
  S.rsa_pss_pss_sha512,
];

export function isDcAlgorithm(scheme: number): boolean {
  return PREFERENCE.includes(scheme);
}

/** Lower is better; unknown schemes sort last. */
export function dcAlgorithmRank(scheme: number): number {
  const i = PREFERENCE.indexOf(scheme);
  return i < 0 ? PREFERENCE.length : i;
}

export function dcAlgorithmFromName(name: string): number | undefined {
  return Object.prototype.hasOwnProperty.call(DC_ALGORITHMS, name)
    ? DC_ALGORITHMS[name as DcAlgorithmName]
    : undefined;
}

export function dcAlgorithmName(scheme: number): string {
  return signatureSchemeName(scheme);
}

/** Accepts a name (`ed25519`) or a code point; returns the code point of a valid DC algorithm. */
export function resolveDcAlgorithm(algorithm: DcAlgorithmName | number | string): number | undefined {
  const scheme = typeof algorithm === 'number' ? algorithm : dcAlgorithmFromName(algorithm);
  return scheme !== undefined && isDcAlgorithm(scheme) ? scheme : undefined;
}

/**
 * True when a DC public key fits `scheme`: key type and curve, and for RSASSA-PSS keys whose
 * SPKI restricts the hash, that hash (RFC 8446 §4.2.3 rsa_pss_pss_*).
 */
export function dcKeyMatchesScheme(key: KeyObject, scheme: number): boolean {
  if (!keyMatchesScheme(key, scheme)) return false;
  const params = schemeParams(scheme);
  if (key.asymmetricKeyType === 'rsa-pss' && params) {
    const details = key.asymmetricKeyDetails;
    if (details?.hashAlgorithm !== undefined && details.hashAlgorithm !== params.hash) return false;
    if (details?.mgf1HashAlgorithm !== undefined && details.mgf1HashAlgorithm !== params.hash) return false;
  }
  return true;
}

export interface KeyPair {
  readonly publicKey: KeyObject;
  readonly privateKey: KeyObject;
}

/** A fresh key pair for `scheme` (a valid DC algorithm). */
export async function generateDcKeyPair(scheme: number, rsaModulusBits = 2048): Promise<KeyPair> {
  return generate<KeyObject>(keySpec(scheme, rsaModulusBits), {});
}

/** A key pair as the bytes that are stored and sent: no KeyObject is made for either half. */
export interface EncodedKeyPair {
  /** SubjectPublicKeyInfo, DER: the credential's ASN1_subjectPublicKeyInfo. */
  readonly spki: Uint8Array;
  /** PrivateKeyInfo (PKCS#8), DER, unencrypted. */
  readonly pkcs8: Uint8Array;
}

/**
 * A fresh key pair for `scheme`, encoded. The operator issues thousands of credentials in a burst:
 * making KeyObjects and exporting them through OpenSSL's encoders cost ~290 µs of CPU per P-256
 * key, an ECDH key pair framed here ~80 µs (bench/results/operator.md, issue 19). The key itself
 * comes from OpenSSL either way (createECDH draws a uniformly random scalar on the named curve, as
 * EC key generation does); only the fixed ASN.1 framing is written here, and
 * test/unit/tls/delegated/keygen.test.ts checks it byte for byte against node:crypto's export of
 * the same key. Other key types: node:crypto encodes them on its thread pool.
 */
export async function generateDcKeyPairDer(scheme: number, rsaModulusBits = 2048): Promise<EncodedKeyPair> {
  const curve = EC_CURVES.get(scheme);
  if (curve !== undefined) return ecKeyPairDer(curve);
  const { publicKey, privateKey } = await generate<Buffer>(keySpec(scheme, rsaModulusBits), {
    publicKeyEncoding: { type: 'spki', format: 'der' },
    privateKeyEncoding: { type: 'pkcs8', format: 'der' },
  });
  return { spki: new Uint8Array(publicKey), pkcs8: new Uint8Array(privateKey) };
}

interface KeySpec {
  readonly type: 'ed25519' | 'ml-dsa-44' | 'ml-dsa-65' | 'ml-dsa-87' | 'ec' | 'rsa-pss';
  readonly options: Readonly<Record<string, unknown>>;
}

function keySpec(scheme: number, rsaModulusBits: number): KeySpec {
  switch (scheme) {
    case S.ed25519:
      return { type: 'ed25519', options: {} };
    case S.mldsa44:
      return { type: 'ml-dsa-44', options: {} };
    case S.mldsa65:
      return { type: 'ml-dsa-65', options: {} };
    case S.mldsa87:
      return { type: 'ml-dsa-87', options: {} };
    case S.ecdsa_secp256r1_sha256:
      return { type: 'ec', options: { namedCurve: 'P-256' } };
    case S.ecdsa_secp384r1_sha384:
      return { type: 'ec', options: { namedCurve: 'P-384' } };
    case S.ecdsa_secp521r1_sha512:
      return { type: 'ec', options: { namedCurve: 'P-521' } };
    case S.rsa_pss_pss_sha256:
    case S.rsa_pss_pss_sha384:
    case S.rsa_pss_pss_sha512: {
      const params = schemeParams(scheme)!;
      const hash = params.hash!;
      // node:crypto wants saltLength as the number of bytes.
      return { type: 'rsa-pss', options: { modulusLength: rsaModulusBits, hashAlgorithm: hash, mgf1HashAlgorithm: hash, saltLength: params.hashLength } };
    }
    default:
      throw new RangeError(`${signatureSchemeName(scheme)} is not a delegated credential algorithm`);
  }
}

/** generateKeyPair on the thread pool: KeyObjects without encodings, Buffers with them. */
function generate<K>(spec: KeySpec, encodings: Readonly<Record<string, unknown>>): Promise<{ publicKey: K; privateKey: K }> {
  return new Promise((resolve, reject) => {
    // One call for every key type; @types/node only types it per literal type.
    (generateKeyPair as unknown as (type: string, options: object, done: (err: Error | null, publicKey: K, privateKey: K) => void) => void)(
      spec.type,
      { ...spec.options, ...encodings },
      (err, publicKey, privateKey) => (err ? reject(err) : resolve({ publicKey, privateKey })),
    );
  });
}

interface EcCurve {
  /** OpenSSL's name, for createECDH. */
  readonly name: string;
  /** Contents of the curve's OBJECT IDENTIFIER (RFC 5480 §2.1.1.1). */
  readonly oid: Uint8Array;
  /** Bytes of a private scalar: ceiling(log2(n) / 8) (RFC 5915 §3). */
  readonly scalarLength: number;
}

/** id-ecPublicKey, 1.2.840.10045.2.1 (RFC 5480 §2.1.1). */
const EC_PUBLIC_KEY_OID = Uint8Array.of(0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01);

const EC_CURVES: ReadonlyMap<number, EcCurve> = new Map([
  // secp256r1, 1.2.840.10045.3.1.7
  [S.ecdsa_secp256r1_sha256, { name: 'prime256v1', oid: Uint8Array.of(0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07), scalarLength: 32 }],
  // secp384r1, 1.3.132.0.34
  [S.ecdsa_secp384r1_sha384, { name: 'secp384r1', oid: Uint8Array.of(0x2b, 0x81, 0x04, 0x00, 0x22), scalarLength: 48 }],
  // secp521r1, 1.3.132.0.35
  [S.ecdsa_secp521r1_sha512, { name: 'secp521r1', oid: Uint8Array.of(0x2b, 0x81, 0x04, 0x00, 0x23), scalarLength: 66 }],
]);

const OCTET_STRING = 0x04;
const PUBLIC_KEY_FIELD = 0xa1; // [1] EXPLICIT, ECPrivateKey.publicKey

/**
 * SubjectPublicKeyInfo (RFC 5480) and PrivateKeyInfo (RFC 5208) holding ECPrivateKey (RFC 5915)
 * with the public key and without the parameters the outer AlgorithmIdentifier already names:
 * the layout node:crypto (OpenSSL 3) exports.
 */
function ecKeyPairDer(curve: EcCurve): EncodedKeyPair {
  const ecdh = createECDH(curve.name);
  const point = ecdh.generateKeys(); // uncompressed: 0x04 || X || Y
  const scalar = ecdh.getPrivateKey();
  // getPrivateKey drops leading zero bytes; the encoding has a fixed length.
  const d = new Uint8Array(curve.scalarLength);
  d.set(scalar, curve.scalarLength - scalar.length);
  scalar.fill(0);
  const algorithm = encodeTlv(DerTag.sequence, encodeTlv(DerTag.oid, EC_PUBLIC_KEY_OID), encodeTlv(DerTag.oid, curve.oid));
  const publicKeyBits = encodeTlv(DerTag.bitString, Uint8Array.of(0), point);
  const ecPrivateKey = encodeTlv(
    DerTag.sequence,
    encodeTlv(DerTag.integer, Uint8Array.of(1)),
    encodeTlv(OCTET_STRING, d),
    encodeTlv(PUBLIC_KEY_FIELD, publicKeyBits),
  );
  d.fill(0);
  const pkcs8 = encodeTlv(DerTag.sequence, encodeTlv(DerTag.integer, Uint8Array.of(0)), algorithm, encodeTlv(OCTET_STRING, ecPrivateKey));
  ecPrivateKey.fill(0);
  return { spki: encodeTlv(DerTag.sequence, algorithm, publicKeyBits), pkcs8 };
}
