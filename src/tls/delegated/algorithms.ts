/**
 * Which signature schemes may be a credential's `dc_cert_verify_algorithm`, how to make a key for
 * each, and which is cheapest to use in a handshake.
 *
 * rsa_pss_rsae_* is never allowed: a DC key must not have an rsaEncryption SPKI (RFC 9345 §4);
 * RSA credentials use RSASSA-PSS keys (rsa_pss_pss_*). rsa_pkcs1_* is not a TLS 1.3
 * CertificateVerify scheme at all.
 */
import { generateKeyPair, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { SignatureScheme, signatureSchemeName } from '../constants.js';
import { keyMatchesScheme, schemeParams } from '../signature-schemes.js';

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

const generate = promisify(generateKeyPair);

export interface KeyPair {
  readonly publicKey: KeyObject;
  readonly privateKey: KeyObject;
}

/** A fresh key pair for `scheme` (a valid DC algorithm). */
export async function generateDcKeyPair(scheme: number, rsaModulusBits = 2048): Promise<KeyPair> {
  switch (scheme) {
    case S.ed25519:
      return generate('ed25519');
    case S.mldsa44:
      return generate('ml-dsa-44');
    case S.mldsa65:
      return generate('ml-dsa-65');
    case S.mldsa87:
      return generate('ml-dsa-87');
    case S.ecdsa_secp256r1_sha256:
      return generate('ec', { namedCurve: 'P-256' });
    case S.ecdsa_secp384r1_sha384:
      return generate('ec', { namedCurve: 'P-384' });
    case S.ecdsa_secp521r1_sha512:
      return generate('ec', { namedCurve: 'P-521' });
    case S.rsa_pss_pss_sha256:
    case S.rsa_pss_pss_sha384:
    case S.rsa_pss_pss_sha512: {
      const params = schemeParams(scheme)!;
      const hash = params.hash!;
      // @types/node (20 and 24 alike) types saltLength as a string; node:crypto wants the number of bytes.
      const saltLength = params.hashLength as unknown as string;
      return generate('rsa-pss', { modulusLength: rsaModulusBits, hashAlgorithm: hash, mgf1HashAlgorithm: hash, saltLength });
    }
    default:
      throw new RangeError(`${signatureSchemeName(scheme)} is not a delegated credential algorithm`);
  }
}
