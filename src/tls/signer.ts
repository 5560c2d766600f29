/**
 * The `Signer`: whatever produces the CertificateVerify signature (and, in the operator, the
 * signature on a delegated credential). A signer may live in this process (a KeyObject) or on a
 * remote key server (keyless); `sign` may therefore return a Promise, and the handshake pauses
 * until it settles.
 */
import { sign as cryptoSign, type KeyObject } from 'node:crypto';
import { nativeSigningKey, type NativeKeySigner } from './native/signing.js';
import { cryptoOptions, keyMatchesScheme, schemesForKey, tls12SchemesForKey } from './signature-schemes.js';
import type { SignatureScheme } from './constants.js';

export interface Signer {
  /** The schemes this signer can produce, in order of preference. */
  readonly schemes: readonly SignatureScheme[];
  /**
   * TLS 1.2 ServerKeyExchange schemes, when they differ from `schemes`: an RSA key adds the
   * PKCS#1 v1.5 schemes after RSA-PSS (TLS 1.3 forbids them for handshake signatures, TLS 1.2
   * clients may offer nothing else). Absent: `schemes`.
   */
  readonly tls12Schemes?: readonly SignatureScheme[];
  /**
   * Signs `message` with `scheme` (one of `schemes`). `message` is the complete content to be
   * signed (for CertificateVerify: 64 spaces, context string, 0x00, transcript hash); the signer
   * hashes it as the scheme requires. ECDSA signatures are DER-encoded, as on the TLS wire.
   */
  sign(scheme: SignatureScheme, message: Uint8Array): Promise<Uint8Array> | Uint8Array;
}

/**
 * A synchronous signer over a private KeyObject: Ed25519, ECDSA P-256/P-384/P-521 (DER signature),
 * RSA-PSS with salt length = hash length (rsaEncryption keys: rsa_pss_rsae_*, RSASSA-PSS keys:
 * rsa_pss_pss_*). The KeyObject is kept; nothing is re-parsed per signature.
 *
 * The schemes the handshake addon serves for this key (native/signing.ts) sign there, on a
 * context made once per key and scheme; the rest, and every key when the addon is absent or
 * DC_TLS_NATIVE=off, sign with node:crypto.
 */
export function createKeySigner(key: KeyObject): Signer {
  if (key.type !== 'private') throw new TypeError('createKeySigner needs a private key');
  const schemes = schemesForKey(key);
  if (schemes.length === 0) {
    throw new TypeError(`unsupported key type for TLS 1.3 signing: ${key.asymmetricKeyType ?? 'unknown'}`);
  }
  const tls12Schemes = tls12SchemesForKey(key);
  // The node:crypto arguments of each scheme the key offers, made once: per signature they cost
  // a key-details object and an options object (allocation per handshake is what the collector
  // costs a server, docs/architecture.md "Hot paths"). node:crypto does not change them.
  const prepared = new Map<number, SignArguments>();
  for (const scheme of [...schemes, ...tls12Schemes]) prepared.set(scheme, signArguments(key, scheme));
  const native = nativeSigningKey(key);
  const signer: Signer = {
    schemes,
    ...(tls12Schemes.length !== schemes.length ? { tls12Schemes } : {}),
    sign(scheme: SignatureScheme, message: Uint8Array): Uint8Array {
      const { algorithm, options } = prepared.get(scheme) ?? signArguments(key, scheme);
      return (native?.serves(scheme) ? native.sign(scheme, message) : undefined) ?? cryptoSign(algorithm, message, options);
    },
  };
  if (native) nativeSigners.set(signer, native);
  return signer;
}

const nativeSigners = new WeakMap<Signer, NativeKeySigner>();

/** Whether `signer` (from createKeySigner) signs `scheme` on the handshake addon, for diagnostics and tests. */
export function signsNatively(signer: Signer, scheme: SignatureScheme): boolean {
  return nativeSigners.get(signer)?.serves(scheme) ?? false;
}

interface SignArguments {
  readonly algorithm: string | null;
  readonly options: Omit<ReturnType<typeof cryptoOptions>, 'algorithm'>;
}

function signArguments(key: KeyObject, scheme: number): SignArguments {
  if (!keyMatchesScheme(key, scheme)) {
    throw new RangeError(`key cannot sign with scheme 0x${scheme.toString(16)}`);
  }
  const { algorithm, ...options } = cryptoOptions(scheme, key);
  return { algorithm, options };
}
