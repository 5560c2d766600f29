/**
 * Subject Key Identifier of a public key, the name by which keyless requests select a key.
 *
 * protocol.md only says "Subject Key Identifier for the requested key" (20 bytes). We use
 * RFC 5280 §4.2.1.2 method (1): SHA-1 over the value of the subjectPublicKey BIT STRING (without
 * tag, length and unused-bits byte). It is also what OpenSSL and Go write into a certificate's
 * subjectKeyIdentifier extension by default, so `openssl x509 -noout -ext subjectKeyIdentifier`
 * shows the same value for an ordinary certificate.
 */
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';

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
 */
export function subjectPublicKeyBits(spki: Uint8Array): Uint8Array {
  const outer = derElement(spki, 0, 0x30, 'SubjectPublicKeyInfo');
  const algorithm = derElement(spki, outer.start, 0x30, 'AlgorithmIdentifier');
  const bits = derElement(spki, algorithm.end, 0x03, 'subjectPublicKey');
  if (bits.end !== outer.end) throw new Error('SubjectPublicKeyInfo has trailing data');
  if (bits.end - bits.start < 1 || spki[bits.start] !== 0) throw new Error('subjectPublicKey has unused bits');
  return spki.subarray(bits.start + 1, bits.end);
}

/** One DER TLV at `at` with the expected tag; returns the bounds of its contents. */
function derElement(der: Uint8Array, at: number, tag: number, what: string): { start: number; end: number } {
  if (der[at] !== tag) throw new Error(`${what}: expected DER tag 0x${tag.toString(16)}`);
  let length = der[at + 1];
  let start = at + 2;
  if (length === undefined) throw new Error(`${what}: truncated`);
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count < 1 || count > 3) throw new Error(`${what}: unsupported length encoding`);
    length = 0;
    for (let i = 0; i < count; i++) {
      const b = der[start + i];
      if (b === undefined) throw new Error(`${what}: truncated`);
      length = (length << 8) | b;
    }
    start += count;
  }
  const end = start + length;
  if (end > der.length) throw new Error(`${what}: truncated`);
  return { start, end };
}
