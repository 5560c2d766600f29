/**
 * Subject Key Identifier of a public key, the name by which keyless requests select a key.
 *
 * The Keyless SSL protocol (gokeyless `protocol/protocol.md`) only says "Subject Key Identifier
 * for the requested key" (20 bytes). We use RFC 5280 §4.2.1.2 method (1): SHA-1 over the value of
 * the subjectPublicKey BIT STRING (without tag, length and unused-bits byte). It is also what
 * OpenSSL and Go write into a certificate's subjectKeyIdentifier extension by default, so
 * `openssl x509 -noout -ext subjectKeyIdentifier` shows the same value for an ordinary certificate.
 * The SubjectPublicKeyInfo is read with the project's DER reader (../tls/x509/der.ts).
 */
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { DerDecodeError, DerTag, children, expectTag, readTlv } from '../tls/x509/der.js';

export const SKI_LENGTH = 20;

/** SKI of a public (or private) key given as a KeyObject, or of a DER SubjectPublicKeyInfo. */
export function computeSki(key: KeyObject | Uint8Array): Uint8Array {
  const spki = key instanceof Uint8Array ? key : spkiOf(key);
  return new Uint8Array(createHash('sha1').update(subjectPublicKeyBits(spki)).digest());
}

export function skiHex(ski: Uint8Array): string {
  return Buffer.from(ski).toString('hex');
}

/** Parses an SKI written as hex, with or without ':' separators (as openssl prints it). */
export function parseSkiHex(text: string): Uint8Array {
  const clean = text.replace(/[:\s]/g, '').toLowerCase();
  if (!/^[0-9a-f]{40}$/.test(clean)) throw new Error(`SKI must be 20 bytes of hex, got "${text}"`);
  return new Uint8Array(Buffer.from(clean, 'hex'));
}

function spkiOf(key: KeyObject): Uint8Array {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return new Uint8Array(pub.export({ type: 'spki', format: 'der' }));
}

/**
 * The contents of subjectPublicKey in
 * `SubjectPublicKeyInfo ::= SEQUENCE { algorithm AlgorithmIdentifier, subjectPublicKey BIT STRING }`.
 * Throws DerDecodeError for anything else.
 */
export function subjectPublicKeyBits(spki: Uint8Array): Uint8Array {
  const outer = expectTag(readTlv(spki, 0, spki.length), DerTag.sequence, 'SubjectPublicKeyInfo');
  const [algorithm, bits, ...rest] = children(spki, outer);
  expectTag(algorithm, DerTag.sequence, 'AlgorithmIdentifier');
  expectTag(bits, DerTag.bitString, 'subjectPublicKey');
  if (rest.length > 0) throw new DerDecodeError('SubjectPublicKeyInfo has trailing data');
  if (bits!.end - bits!.start < 1 || spki[bits!.start] !== 0) throw new DerDecodeError('subjectPublicKey has unused bits');
  return spki.subarray(bits!.start + 1, bits!.end);
}
