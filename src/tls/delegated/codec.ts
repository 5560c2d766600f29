/**
 * Encoding and decoding of Credential and DelegatedCredential with the shared TLS codec.
 * Decoding is strict: every length bound of RFC 9345 §4 is enforced (empty SPKI or signature
 * rejected) and trailing bytes are refused; syntax failures raise DecodeError (decode_error).
 * Decoded byte fields are copies, so a decoded credential never aliases a handshake buffer.
 */
import { decodeAll, encode, type Reader, type Writer } from '../codec.js';
import type { Credential, DelegatedCredential } from './types.js';

const MAX_SPKI = 0xffffff;
const MAX_SIGNATURE = 0xffff;

export function writeCredential(w: Writer, credential: Credential): void {
  w.u32(credential.validTime);
  w.u16(credential.dcCertVerifyAlgorithm);
  w.u24Prefixed((v) => v.bytes(nonEmpty(credential.spki, 'spki')));
}

export function writeDelegatedCredential(w: Writer, dc: DelegatedCredential): void {
  writeCredential(w, dc.credential);
  w.u16(dc.algorithm);
  w.u16Prefixed((v) => v.bytes(nonEmpty(dc.signature, 'signature')));
}

export function readCredential(r: Reader): Credential {
  const validTime = r.u32();
  const dcCertVerifyAlgorithm = r.u16();
  const spki = r.opaque24(1, MAX_SPKI).slice();
  return { validTime, dcCertVerifyAlgorithm, spki };
}

export function readDelegatedCredential(r: Reader): DelegatedCredential {
  const credential = readCredential(r);
  const algorithm = r.u16();
  const signature = r.opaque16(1, MAX_SIGNATURE).slice();
  return { credential, algorithm, signature };
}

/** The `Credential` bytes exactly as they are signed (RFC 9345 §4). */
export function encodeCredential(credential: Credential): Uint8Array {
  return encode((w) => writeCredential(w, credential), credential.spki.length + 16);
}

export function encodeDelegatedCredential(dc: DelegatedCredential): Uint8Array {
  return encode((w) => writeDelegatedCredential(w, dc), dc.credential.spki.length + dc.signature.length + 16);
}

export function decodeCredential(data: Uint8Array): Credential {
  return decodeAll(data, readCredential, 'Credential');
}

export function decodeDelegatedCredential(data: Uint8Array): DelegatedCredential {
  return decodeAll(data, readDelegatedCredential, 'DelegatedCredential');
}

/** An empty SPKI or signature is not encodable: refuse it here rather than emit a bad credential. */
function nonEmpty(data: Uint8Array, what: string): Uint8Array {
  if (data.length === 0) throw new RangeError(`DelegatedCredential ${what} must not be empty`);
  return data;
}
