/**
 * Whether a private key belongs to a public key (a certificate's, a delegated credential's): the
 * one check every place that accepts a key for a certificate uses.
 *
 * Comparing public keys is not enough. OpenSSL's X509_check_private_key (node's
 * `X509Certificate.checkPrivateKey`) and a fingerprint of `createPublicKey(privateKey)` both
 * compare the certificate's public key with the public key the key file *carries*: an EC
 * PKCS#8/SEC1 key holds its public point beside the private scalar, and OpenSSL takes the point
 * as written; an RSA key holds its modulus beside d, p and q, and OpenSSL imports them unchecked.
 * A file whose private part was swapped (corruption, a bad tool, tampering) passes every
 * public-key comparison, then every signature it makes fails at the client. So the check also
 * signs a fixed message with the private key and verifies it with the other side's public key:
 * the public-key comparison first (its failure has the clearer message: a key of another
 * certificate), then the signature.
 *
 * The signature uses the key's first TLS scheme through the same table handshakes use
 * (signature-schemes.ts); a key type TLS cannot sign with (a CA's or a webhook's key may be
 * one) is checked with node:crypto's defaults for that type. Cost: one signature and one
 * verification (P-256 and RSA-2048: bench/results/key-pair.md).
 */
import { createPublicKey, sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { cryptoOptions, schemesForKey, verifySignature } from './signature-schemes.js';

/** Why a private key does not belong to a public key. */
export type KeyPairFault =
  /** The public key the private key carries is another one: a key of another certificate. */
  | 'public-key-differs'
  /** The carried public key matches, but signatures of the private part do not verify with it. */
  | 'private-part-differs'
  /**
   * The key cannot make the signatures needed: not a private key, a type that has no signature,
   * or an intact key OpenSSL refuses to sign with (an RSA-PSS key restricted to parameters TLS
   * does not use, a modulus too small for the hash): the check's detail says which.
   */
  | 'cannot-sign';

/** A fault, and for a key OpenSSL refused to sign with, OpenSSL's words. */
export interface KeyPairCheck {
  readonly fault: KeyPairFault;
  /** Why signing failed (the error's text), when it did. */
  readonly signingError?: string;
}

/** What the check signs: fixed, so the check has no randomness of its own to go wrong. */
const MESSAGE = Buffer.from('dc-operator key pair check: does this private key belong to this public key?', 'latin1');

/** The fault of `privateKey` for `publicKey`, or undefined when they are one key pair. Never throws. */
export function keyPairFault(privateKey: KeyObject, publicKey: KeyObject): KeyPairFault | undefined {
  return checkKeyPair(privateKey, publicKey)?.fault;
}

/** keyPairFault with the signing error, when there was one. Never throws. */
export function checkKeyPair(privateKey: KeyObject, publicKey: KeyObject): KeyPairCheck | undefined {
  if (privateKey.type !== 'private') return { fault: 'cannot-sign' };
  let carried: KeyObject;
  try {
    carried = createPublicKey(privateKey);
  } catch {
    return { fault: 'cannot-sign' };
  }
  const other = publicKey.type === 'private' ? createPublicKey(publicKey) : publicKey;
  // Types first: KeyObject.equals of two key types leaves an OpenSSL error queued (Node 24), which
  // the next unrelated node:crypto call (a createPrivateKey) then throws as its own.
  if (other.type !== 'public' || carried.asymmetricKeyType !== other.asymmetricKeyType || !carried.equals(other)) return { fault: 'public-key-differs' };
  const verifies = signatureVerifies(privateKey, other);
  if (verifies === undefined) return { fault: 'cannot-sign' };
  if (typeof verifies === 'object') return { fault: 'cannot-sign', signingError: verifies.signingError };
  return verifies ? undefined : { fault: 'private-part-differs' };
}

/** The names a message about a key pair uses: the key's (a file, a Secret key) and its owner's. */
export interface KeyPairNames {
  /** The private key, as the person fixing it knows it: `tls.key`, `/etc/dc/tls.key`, `keyless-client.key`. */
  readonly key: string;
  /** What it should belong to: `tls.crt`, `the credential ed25519.cred`. */
  readonly owner: string;
}

/** Why `privateKey` does not belong to `publicKey`, in words that say what to fix; undefined when it does. */
export function keyPairProblem(privateKey: KeyObject, publicKey: KeyObject, names: KeyPairNames): string | undefined {
  const check = checkKeyPair(privateKey, publicKey);
  return check === undefined ? undefined : keyPairMessage(check.fault, names, check.signingError);
}

/** The message for a fault (keyPairProblem's words, for callers that keep the fault), with the signing error if there was one. */
export function keyPairMessage(fault: KeyPairFault, { key, owner }: KeyPairNames, signingError?: string): string {
  switch (fault) {
    case 'public-key-differs':
      return `${key} does not belong to ${owner}: its public key is not ${owner}'s (the key of another certificate?); put the key ${owner} was issued for in ${key}, or issue ${owner} again for this key`;
    case 'private-part-differs':
      return `${key} does not belong to ${owner}: its private part does not produce signatures ${owner}'s public key verifies (the file carries ${owner}'s public key beside another private key: corrupted or tampered); replace ${key} with the key ${owner} was issued for`;
    case 'cannot-sign':
      if (signingError !== undefined) {
        return `${key} cannot be used with ${owner}: OpenSSL refuses to make the signatures this check and TLS need with it (${signingError}); the key is not corrupted but restricted or too small for them (e.g. an RSA-PSS key limited to another hash or a longer salt than TLS uses, or an RSA modulus too short for the hash); use an RSA key without PSS restrictions, 2048 bits or more (or an ECDSA or Ed25519 key), and issue ${owner} for it`;
      }
      return `${key} does not belong to ${owner}: it cannot sign (not a private key of a signature algorithm); put the private key ${owner} was issued for in ${key}`;
  }
}

/** Keys that can be intact yet refuse TLS's signatures: RSA-PSS keys with parameters, RSA under 2048 bits. */
function restrictedOrSmall(key: KeyObject): boolean {
  if (key.asymmetricKeyType === 'rsa-pss') return true;
  return key.asymmetricKeyType === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048;
}

/**
 * Signs MESSAGE with the private key and verifies it with the public key; undefined when the key
 * is of a type that cannot sign, the error's text when OpenSSL refused to sign.
 */
function signatureVerifies(privateKey: KeyObject, publicKey: KeyObject): boolean | { signingError: string } | undefined {
  const scheme = schemesForKey(privateKey)[0];
  if (scheme !== undefined) {
    let signature: Buffer;
    try {
      const { algorithm, ...options } = cryptoOptions(scheme, privateKey);
      signature = cryptoSign(algorithm, MESSAGE, options);
    } catch (err) {
      // An RSA-PSS key restricted to another hash or a longer salt than TLS's, or an RSA modulus
      // too short for the hash: intact, but OpenSSL cannot sign this scheme with it (TLS could
      // not either). Any other key that fails to sign is broken (a zeroed prime: "no inverse"),
      // which is what 'private-part-differs' says.
      if (!restrictedOrSmall(privateKey)) return false;
      return { signingError: err instanceof Error ? err.message : String(err) };
    }
    try {
      return verifySignature(scheme, publicKey, MESSAGE, signature);
    } catch {
      return false;
    }
  }
  // No TLS scheme (Ed448, a curve TLS does not sign with, DSA): node:crypto's defaults for the type.
  const digest = privateKey.asymmetricKeyType === 'ed448' ? null : 'sha256';
  let signature: Buffer;
  try {
    signature = cryptoSign(digest, MESSAGE, privateKey);
  } catch {
    return undefined; // x25519, DH: no signatures at all
  }
  try {
    return cryptoVerify(digest, MESSAGE, publicKey, signature);
  } catch {
    return false;
  }
}
