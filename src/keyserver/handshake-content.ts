// What a sidecar may have signed with its certificate's key: the content of a TLS handshake
// signature, and nothing else. A keyless key server is a signing oracle by design; limiting it to
// these exact shapes keeps a stolen sidecar identity from minting what outlives its own client
// certificate, above all a delegated credential (valid for up to 7 days, with a key the thief
// would hold). docs/architecture.md, "Where secrets live", records the rule.
//
// The shapes (a sidecar only ever terminates, so only the server's contexts):
// - TLS 1.3 CertificateVerify (RFC 8446 §4.4.3): 64 spaces, "TLS 1.3, server CertificateVerify",
//   0x00, then a transcript hash of 32, 48 or 64 bytes.
// - TLS 1.2 ServerKeyExchange for ECDHE (RFC 8422 §5.4): client_random (32), server_random (32),
//   curve_type named_curve (3), a named group (u16), and its public value (u8 length), exactly.
// Digest opcodes are refused: a digest says nothing about what was hashed. ML-DSA (TLS 1.3 only,
// draft-ietf-tls-mldsa) may sign a CertificateVerify and nothing of TLS 1.2.
import type { SignRequest } from '../keyless/sign-request.js';
import { isPostQuantumSignature } from '../tls/signature-schemes.js';

const SPACES = 64;
const CERTIFICATE_VERIFY_CONTEXT = Buffer.from('TLS 1.3, server CertificateVerify\0', 'latin1');
const DELEGATED_CREDENTIAL_CONTEXT = Buffer.from('TLS, server delegated credentials\0', 'latin1');
const TRANSCRIPT_HASH_LENGTHS: ReadonlySet<number> = new Set([32, 48, 64]);

const RANDOMS = 64;
const NAMED_CURVE = 3;
/** Named group → the length of its ECDHE public value in a ServerKeyExchange. */
const TLS12_PUBLIC_VALUE_LENGTHS: ReadonlyMap<number, number> = new Map([
  [0x0017, 65], // secp256r1, uncompressed
  [0x0018, 97], // secp384r1
  [0x0019, 133], // secp521r1
  [0x001d, 32], // x25519
  [0x001e, 56], // x448
]);

function hasContextPrefix(message: Uint8Array, context: Buffer): boolean {
  if (message.length < SPACES + context.length) return false;
  for (let i = 0; i < SPACES; i++) if (message[i] !== 0x20) return false;
  return context.equals(message.subarray(SPACES, SPACES + context.length));
}

function isCertificateVerifyContent(message: Uint8Array): boolean {
  return hasContextPrefix(message, CERTIFICATE_VERIFY_CONTEXT) && TRANSCRIPT_HASH_LENGTHS.has(message.length - SPACES - CERTIFICATE_VERIFY_CONTEXT.length);
}

function isServerKeyExchangeContent(message: Uint8Array): boolean {
  if (message.length < RANDOMS + 4 || message[RANDOMS] !== NAMED_CURVE) return false;
  const group = (message[RANDOMS + 1]! << 8) | message[RANDOMS + 2]!;
  const length = message[RANDOMS + 3]!;
  return TLS12_PUBLIC_VALUE_LENGTHS.get(group) === length && message.length === RANDOMS + 4 + length;
}

/** Why a sidecar may not have `request` signed, or undefined when it is a handshake signature. */
export function notHandshakeContent(request: SignRequest): string | undefined {
  let message: Uint8Array;
  if (request.kind === 'message') message = request.message;
  else if (request.operation.kind === 'ed25519') message = request.payload; // Ed25519's opcode carries the whole message
  else return 'a digest opcode hides what was hashed; a sidecar has whole handshake messages signed (opcode 0xC0)';
  if (hasContextPrefix(message, DELEGATED_CREDENTIAL_CONTEXT)) return 'the message is a delegated credential: only the controller issues those, never a sidecar';
  if (isCertificateVerifyContent(message)) return undefined;
  if (isServerKeyExchangeContent(message)) {
    return request.kind === 'message' && isPostQuantumSignature(request.scheme) ? 'ML-DSA signs TLS 1.3 CertificateVerify only, never a TLS 1.2 ServerKeyExchange' : undefined;
  }
  return `the ${message.length}-byte message is neither a TLS 1.3 server CertificateVerify nor a TLS 1.2 ECDHE ServerKeyExchange`;
}
