/**
 * The bytes the delegation certificate's key signs (RFC 9345 §4, "signature"):
 *
 *   64 × 0x20 || context string || 0x00 || DER(end-entity certificate) || Credential || algorithm
 *
 * in exactly this order. (BoringSSL's test runner once put `algorithm` before the Credential;
 * peers that follow the RFC, e.g. NSS and fizz, reject such signatures.)
 */
import { encode } from '../codec.js';
import type { SignatureScheme } from '../constants.js';
import { writeCredential } from './codec.js';
import type { Credential, DelegationSide } from './types.js';

const SERVER_CONTEXT = new TextEncoder().encode('TLS, server delegated credentials');
const CLIENT_CONTEXT = new TextEncoder().encode('TLS, client delegated credentials');

export function delegationContext(side: DelegationSide): Uint8Array {
  return side === 'server' ? SERVER_CONTEXT : CLIENT_CONTEXT;
}

export function delegatedCredentialSignedContent(
  side: DelegationSide,
  certificateDer: Uint8Array,
  credential: Credential,
  algorithm: SignatureScheme,
): Uint8Array {
  const context = delegationContext(side);
  const capacity = 64 + context.length + 1 + certificateDer.length + credential.spki.length + 16;
  return encode((w) => {
    for (let i = 0; i < 64; i++) w.u8(0x20);
    w.bytes(context);
    w.u8(0);
    w.bytes(certificateDer);
    writeCredential(w, credential);
    w.u16(algorithm);
  }, capacity);
}
