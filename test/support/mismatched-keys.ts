/**
 * Private keys that carry one key's public part and another key's private part: what a corrupted
 * or tampered key file looks like to OpenSSL, which imports them and whose public-key comparison
 * (X509Certificate.checkPrivateKey) they pass. Built byte by byte from real keys; each builder
 * checks that node:crypto took the public part as written, so a test using one really tests the
 * hole it is about.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { DerTag, children, encodeTlv, readTlv } from '../../src/tls/x509/der.js';

const OCTET_STRING = 0x04;

function der(key: KeyObject, type: 'pkcs8' | 'sec1' | 'pkcs1'): Buffer {
  return key.export({ type, format: 'der' } as never) as Buffer;
}

function pem(bytes: Uint8Array, label: string): string {
  const b64 = Buffer.from(bytes).toString('base64').replace(/.{64}/g, '$&\n');
  return `-----BEGIN ${label}-----\n${b64.endsWith('\n') ? b64 : b64 + '\n'}-----END ${label}-----\n`;
}

function keptPublicKey(made: KeyObject, original: KeyObject): KeyObject {
  if (!createPublicKey(made).equals(createPublicKey(original))) {
    throw new Error('node:crypto did not keep the public key as written: this key does not test the hole');
  }
  return made;
}

/**
 * An EC key (PKCS#8 or SEC1 'EC PRIVATE KEY') with `original`'s public point and a fresh key's
 * private scalar on the same curve.
 */
export function ecKeyWithForeignScalar(originalPem: string, type: 'pkcs8' | 'sec1'): { pem: string; key: KeyObject } {
  const original = createPrivateKey(originalPem);
  const curve = original.asymmetricKeyDetails?.namedCurve;
  if (original.asymmetricKeyType !== 'ec' || curve === undefined) throw new TypeError('an EC key is needed');
  const other = generateKeyPairSync('ec', { namedCurve: curve }).privateKey;
  const bytes = der(original, type);
  // JWK d has the curve's fixed length, as the ECPrivateKey's OCTET STRING does.
  const scalar = Buffer.from(original.export({ format: 'jwk' }).d!, 'base64url');
  const foreign = Buffer.from(other.export({ format: 'jwk' }).d!, 'base64url');
  const at = bytes.indexOf(scalar);
  if (at < 0 || bytes.indexOf(scalar, at + 1) >= 0) throw new Error('the private scalar is not found exactly once');
  foreign.copy(bytes, at);
  const text = pem(bytes, type === 'pkcs8' ? 'PRIVATE KEY' : 'EC PRIVATE KEY');
  return { pem: text, key: keptPublicKey(createPrivateKey(text), original) };
}

/** The TLVs of a DER SEQUENCE's elements, whole (header included). */
function elements(bytes: Uint8Array): Uint8Array[] {
  return children(bytes, readTlv(bytes, 0, bytes.length)).map((t) => bytes.subarray(t.headerStart, t.end));
}

/**
 * An RSA key (PKCS#8, of `original`'s algorithm: rsaEncryption or RSASSA-PSS with its parameters)
 * with `original`'s modulus and exponent and a fresh key's d, p, q and CRT values.
 */
export function rsaKeyWithForeignPrivateParts(originalPem: string): { pem: string; key: KeyObject } {
  const original = createPrivateKey(originalPem);
  if (original.asymmetricKeyType !== 'rsa' && original.asymmetricKeyType !== 'rsa-pss') throw new TypeError('an RSA key is needed');
  const bits = original.asymmetricKeyDetails!.modulusLength!;
  // PrivateKeyInfo: version, AlgorithmIdentifier, OCTET STRING holding RSAPrivateKey (RFC 8017 A.1.2:
  // version, n, e, d, p, q, dp, dq, qi).
  const [version, algorithm, wrapped] = elements(der(original, 'pkcs8'));
  const own = elements(wrapped!.subarray(readTlv(wrapped!, 0, wrapped!.length).start));
  const other = elements(der(generateKeyPairSync('rsa', { modulusLength: bits }).privateKey, 'pkcs1'));
  const pkcs1 = encodeTlv(DerTag.sequence, own[0]!, own[1]!, own[2]!, ...other.slice(3));
  const pkcs8 = encodeTlv(DerTag.sequence, version!, algorithm!, encodeTlv(OCTET_STRING, pkcs1));
  const text = pem(pkcs8, 'PRIVATE KEY');
  return { pem: text, key: keptPublicKey(createPrivateKey(text), original) };
}
