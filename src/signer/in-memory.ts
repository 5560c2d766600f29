/**
 * A Signer over a private key held in this process (the in-cluster mode: the key comes from the
 * certificate Secret). Exposes the public half (KeyObject, SPKI DER and its SHA-256 fingerprint)
 * so callers can match it against a certificate and report which key signed.
 */
import { createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { createKeySigner, type Signer } from '../tls/signer.js';
import { checkKeyPair, type KeyPairCheck } from '../tls/key-pair.js';
import type { SignatureScheme } from '../tls/constants.js';

/** Why a key could not be turned into a signer; `reason` is stable for conditions and tests. */
export class SignerKeyError extends Error {
  constructor(
    readonly reason: 'malformed_key' | 'encrypted_key' | 'unsupported_key',
    message: string,
  ) {
    super(message);
    this.name = 'SignerKeyError';
  }
}

const PRIVATE_KEY_LABELS = /-----BEGIN (PRIVATE KEY|RSA PRIVATE KEY|EC PRIVATE KEY)-----/;

/**
 * Parses an unencrypted PKCS#8 ("PRIVATE KEY"), PKCS#1 ("RSA PRIVATE KEY") or SEC1
 * ("EC PRIVATE KEY") PEM private key. `what` names the source in messages, e.g. "tls.key".
 */
export function parsePrivateKeyPem(pem: string, what = 'key'): KeyObject {
  if (/-----BEGIN (ENCRYPTED PRIVATE KEY|[A-Z ]+PRIVATE KEY-----\s*Proc-Type: 4,ENCRYPTED)/.test(pem)) {
    throw new SignerKeyError('encrypted_key', `${what} is an encrypted private key; an unencrypted PKCS#8/PKCS#1/SEC1 PEM key is needed`);
  }
  if (!PRIVATE_KEY_LABELS.test(pem)) {
    throw new SignerKeyError('malformed_key', `${what} is not a PKCS#8/PKCS#1/SEC1 PEM private key`);
  }
  try {
    return createPrivateKey({ key: pem, format: 'pem' });
  } catch {
    throw new SignerKeyError('malformed_key', `${what} is not a PKCS#8/PKCS#1/SEC1 PEM private key`);
  }
}

export class InMemoryKeySigner implements Signer {
  readonly schemes: readonly SignatureScheme[];
  readonly publicKey: KeyObject;
  /** SubjectPublicKeyInfo DER of the public key. */
  readonly spki: Uint8Array;
  /** Lowercase hex SHA-256 of the SPKI DER. */
  readonly publicKeyFingerprint: string;
  /** node's name for the key type: 'ec', 'ed25519', 'rsa', 'rsa-pss'. */
  readonly keyType: string;
  private readonly inner: Signer;

  constructor(private readonly privateKey: KeyObject) {
    if (privateKey.type !== 'private') throw new SignerKeyError('malformed_key', 'InMemoryKeySigner needs a private key');
    try {
      this.inner = createKeySigner(privateKey);
    } catch (e) {
      throw new SignerKeyError('unsupported_key', (e as Error).message);
    }
    this.schemes = this.inner.schemes;
    this.keyType = privateKey.asymmetricKeyType ?? 'unknown';
    this.publicKey = createPublicKey(privateKey);
    this.spki = new Uint8Array(this.publicKey.export({ type: 'spki', format: 'der' }));
    this.publicKeyFingerprint = createHash('sha256').update(this.spki).digest('hex');
  }

  static fromPem(pem: string, what = 'key'): InMemoryKeySigner {
    const key = parsePrivateKeyPem(pem, what);
    try {
      return new InMemoryKeySigner(key);
    } catch (e) {
      if (e instanceof SignerKeyError && e.reason === 'unsupported_key') {
        throw new SignerKeyError('unsupported_key', `${what} holds a key of type ${describeKey(key)}, which cannot sign TLS 1.3 handshakes or delegated credentials (use ECDSA P-256/P-384/P-521, Ed25519 or RSA)`);
      }
      throw e;
    }
  }

  sign(scheme: SignatureScheme, message: Uint8Array): Uint8Array | Promise<Uint8Array> {
    return this.inner.sign(scheme, message);
  }

  /**
   * Why this key does not belong to `publicKey` (a certificate's), or undefined when it does (with
   * OpenSSL's words when it refused to sign):
   * the pairwise check of src/tls/key-pair.ts, not only a comparison of public keys.
   */
  pairFault(publicKey: KeyObject): KeyPairCheck | undefined {
    return checkKeyPair(this.privateKey, publicKey);
  }
}

function describeKey(key: KeyObject): string {
  const t = key.asymmetricKeyType ?? 'unknown';
  const curve = key.asymmetricKeyDetails?.namedCurve;
  return curve ? `${t} (${curve})` : t;
}
