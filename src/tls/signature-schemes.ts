/**
 * What each signature scheme means in node:crypto terms, and signature verification.
 * Used by the signer (CertificateVerify, DC issuance) and by the peers' CertificateVerify checks.
 */
import { constants as cryptoConstants, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { SignatureScheme } from './constants.js';

export interface SchemeParams {
  readonly kind: 'ecdsa' | 'rsa-pss' | 'ed25519' | 'rsa-pkcs1' | 'ml-dsa';
  /** node:crypto digest name, or null when the algorithm hashes by itself (Ed25519). */
  readonly hash: 'sha256' | 'sha384' | 'sha512' | 'sha1' | null;
  /** Key type the scheme requires (`KeyObject.asymmetricKeyType`). */
  readonly keyType: 'ec' | 'rsa' | 'rsa-pss' | 'ed25519' | 'ml-dsa-44' | 'ml-dsa-65' | 'ml-dsa-87';
  /** For ECDSA in TLS 1.3 the curve is bound to the scheme (OpenSSL name). */
  readonly curve?: 'prime256v1' | 'secp384r1' | 'secp521r1';
  /** Hash output length: the PSS salt length. */
  readonly hashLength: number;
}

const S = SignatureScheme;
const table = new Map<number, SchemeParams>([
  [S.ed25519, { kind: 'ed25519', hash: null, keyType: 'ed25519', hashLength: 0 }],
  [S.ecdsa_secp256r1_sha256, { kind: 'ecdsa', hash: 'sha256', keyType: 'ec', curve: 'prime256v1', hashLength: 32 }],
  [S.ecdsa_secp384r1_sha384, { kind: 'ecdsa', hash: 'sha384', keyType: 'ec', curve: 'secp384r1', hashLength: 48 }],
  [S.ecdsa_secp521r1_sha512, { kind: 'ecdsa', hash: 'sha512', keyType: 'ec', curve: 'secp521r1', hashLength: 64 }],
  [S.rsa_pss_rsae_sha256, { kind: 'rsa-pss', hash: 'sha256', keyType: 'rsa', hashLength: 32 }],
  [S.rsa_pss_rsae_sha384, { kind: 'rsa-pss', hash: 'sha384', keyType: 'rsa', hashLength: 48 }],
  [S.rsa_pss_rsae_sha512, { kind: 'rsa-pss', hash: 'sha512', keyType: 'rsa', hashLength: 64 }],
  [S.rsa_pss_pss_sha256, { kind: 'rsa-pss', hash: 'sha256', keyType: 'rsa-pss', hashLength: 32 }],
  [S.rsa_pss_pss_sha384, { kind: 'rsa-pss', hash: 'sha384', keyType: 'rsa-pss', hashLength: 48 }],
  [S.rsa_pss_pss_sha512, { kind: 'rsa-pss', hash: 'sha512', keyType: 'rsa-pss', hashLength: 64 }],
  // Pure ML-DSA with an empty context over the whole message, like Ed25519 (draft-ietf-tls-mldsa).
  [S.mldsa44, { kind: 'ml-dsa', hash: null, keyType: 'ml-dsa-44', hashLength: 0 }],
  [S.mldsa65, { kind: 'ml-dsa', hash: null, keyType: 'ml-dsa-65', hashLength: 0 }],
  [S.mldsa87, { kind: 'ml-dsa', hash: null, keyType: 'ml-dsa-87', hashLength: 0 }],
  [S.rsa_pkcs1_sha256, { kind: 'rsa-pkcs1', hash: 'sha256', keyType: 'rsa', hashLength: 32 }],
  [S.rsa_pkcs1_sha384, { kind: 'rsa-pkcs1', hash: 'sha384', keyType: 'rsa', hashLength: 48 }],
  [S.rsa_pkcs1_sha512, { kind: 'rsa-pkcs1', hash: 'sha512', keyType: 'rsa', hashLength: 64 }],
]);

export function schemeParams(scheme: number): SchemeParams | undefined {
  return table.get(scheme);
}

/** Schemes allowed for a TLS 1.3 CertificateVerify (never rsa_pkcs1_*, RFC 8446 §4.4.3). */
export function isCertificateVerifyScheme(scheme: number): boolean {
  const p = table.get(scheme);
  return p !== undefined && p.kind !== 'rsa-pkcs1';
}

/** True when `key` (public or private) is usable with `scheme`. */
export function keyMatchesScheme(key: KeyObject, scheme: number): boolean {
  const p = table.get(scheme);
  if (!p) return false;
  if (key.asymmetricKeyType !== p.keyType) return false;
  if (p.kind === 'ecdsa') return key.asymmetricKeyDetails?.namedCurve === p.curve;
  return true;
}

/** The TLS 1.3 schemes a key can sign with, strongest-cheapest first. */
export function schemesForKey(key: KeyObject): number[] {
  switch (key.asymmetricKeyType) {
    case 'ed25519':
      return [S.ed25519];
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      if (curve === 'prime256v1') return [S.ecdsa_secp256r1_sha256];
      if (curve === 'secp384r1') return [S.ecdsa_secp384r1_sha384];
      if (curve === 'secp521r1') return [S.ecdsa_secp521r1_sha512];
      return [];
    }
    case 'ml-dsa-44':
      return [S.mldsa44];
    case 'ml-dsa-65':
      return [S.mldsa65];
    case 'ml-dsa-87':
      return [S.mldsa87];
    case 'rsa':
      return [S.rsa_pss_rsae_sha256, S.rsa_pss_rsae_sha384, S.rsa_pss_rsae_sha512];
    case 'rsa-pss': {
      // A PSS key restricted to one hash may only use the matching scheme.
      const hash = key.asymmetricKeyDetails?.hashAlgorithm;
      if (hash === 'sha256') return [S.rsa_pss_pss_sha256];
      if (hash === 'sha384') return [S.rsa_pss_pss_sha384];
      if (hash === 'sha512') return [S.rsa_pss_pss_sha512];
      return [S.rsa_pss_pss_sha256, S.rsa_pss_pss_sha384, S.rsa_pss_pss_sha512];
    }
    default:
      return [];
  }
}

/**
 * The TLS 1.2 ServerKeyExchange schemes a key can sign with: those of TLS 1.3 and, for RSA,
 * PKCS#1 v1.5 after RSA-PSS (RSA-PSS where the client offers it, then PKCS#1). ECDSA keeps the
 * curve's own hash, as in TLS 1.3.
 */
export function tls12SchemesForKey(key: KeyObject): number[] {
  const schemes = schemesForKey(key);
  if (key.asymmetricKeyType === 'rsa') schemes.push(S.rsa_pkcs1_sha256, S.rsa_pkcs1_sha384, S.rsa_pkcs1_sha512);
  return schemes;
}

/**
 * TLS 1.2 signature check (ServerKeyExchange): the scheme names hash and algorithm only, so an
 * ECDSA signature is checked with the scheme's hash whatever the key's curve (RFC 5246 §7.4.1.4.1);
 * PKCS#1 v1.5 is allowed. Never throws.
 */
export function verifyTls12Signature(scheme: number, publicKey: KeyObject, message: Uint8Array, signature: Uint8Array): boolean {
  const p = table.get(scheme);
  if (!p || p.kind === 'ed25519') return false;
  if (p.kind !== 'ecdsa') return verifySignature(scheme, publicKey, message, signature);
  if (publicKey.asymmetricKeyType !== 'ec') return false;
  try {
    return cryptoVerify(p.hash, message, { key: publicKey, dsaEncoding: 'der' }, signature);
  } catch {
    return false;
  }
}

/** node:crypto sign/verify options for a scheme and key. */
export function cryptoOptions(
  scheme: number,
  key: KeyObject,
): { algorithm: string | null; key: KeyObject; padding?: number; saltLength?: number; dsaEncoding?: 'der' } {
  const p = table.get(scheme);
  if (!p) throw new RangeError(`unsupported signature scheme 0x${scheme.toString(16)}`);
  switch (p.kind) {
    case 'ed25519':
    case 'ml-dsa':
      return { algorithm: null, key };
    case 'ecdsa':
      return { algorithm: p.hash, key, dsaEncoding: 'der' };
    case 'rsa-pss':
      return { algorithm: p.hash, key, padding: cryptoConstants.RSA_PKCS1_PSS_PADDING, saltLength: p.hashLength };
    case 'rsa-pkcs1':
      return { algorithm: p.hash, key, padding: cryptoConstants.RSA_PKCS1_PADDING };
  }
}

/**
 * Verifies `signature` over `message` with `publicKey` under `scheme`. Returns false for a bad
 * signature, a scheme that does not fit the key, or malformed input; never throws.
 */
export function verifySignature(
  scheme: number,
  publicKey: KeyObject,
  message: Uint8Array,
  signature: Uint8Array,
): boolean {
  if (!keyMatchesScheme(publicKey, scheme)) return false;
  try {
    const { algorithm, ...opts } = cryptoOptions(scheme, publicKey);
    return cryptoVerify(algorithm, message, opts, signature);
  } catch {
    return false;
  }
}

/**
 * The content covered by a TLS 1.3 CertificateVerify signature (RFC 8446 §4.4.3):
 * 64 spaces, the context string, a zero byte, then the transcript hash.
 */
export function certificateVerifyContent(side: 'server' | 'client', transcriptHash: Uint8Array): Uint8Array {
  const prefix = side === 'server' ? SERVER_PREFIX : CLIENT_PREFIX;
  const out = Buffer.allocUnsafe(prefix.length + transcriptHash.length);
  out.set(prefix, 0);
  out.set(transcriptHash, prefix.length);
  return out;
}
/** 64 spaces, the context string and the zero byte: the same for every signature of a side. */
const SERVER_PREFIX = Buffer.concat([Buffer.alloc(64, 0x20), Buffer.from('TLS 1.3, server CertificateVerify', 'latin1'), Buffer.of(0)]);
const CLIENT_PREFIX = Buffer.concat([Buffer.alloc(64, 0x20), Buffer.from('TLS 1.3, client CertificateVerify', 'latin1'), Buffer.of(0)]);

/** True for the ML-DSA schemes (post-quantum signatures). */
export function isPostQuantumSignature(scheme: number): boolean {
  return table.get(scheme)?.kind === 'ml-dsa';
}
