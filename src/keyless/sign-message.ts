/**
 * Our extension opcode, Opcode.signMessage (0xC0): "sign this whole message with this TLS
 * SignatureScheme". The key server then signs with node:crypto (OpenSSL hashes and signs in one
 * call, with its own constant-time code and nonces), instead of signing a digest the client made.
 *
 *   payload = SignatureScheme u16 (the TLS code point, network order) | message (the rest, ≥ 1 byte)
 *
 * The message is the complete signed content: for a TLS 1.3 CertificateVerify 64 spaces, the
 * context string, 0x00 and the transcript hash; for TLS 1.2 ServerKeyExchange client_random,
 * server_random and the params; for a delegated credential its RFC 9345 signed content.
 * Decoding never trusts the payload: short payloads are format errors (answered 0x07).
 */
import { KeylessFormatError } from './errors.js';
import { ITEM_HEADER_LENGTH, MAX_WIRE_BODY_LENGTH } from './protocol.js';

export interface SignMessageRequest {
  /** TLS SignatureScheme code point (RFC 8446 §4.2.3). */
  readonly scheme: number;
  /** The complete content to sign. */
  readonly message: Uint8Array;
}

const SCHEME_LENGTH = 2;
const SKI_LENGTH = 20;

/**
 * The longest message one request can carry: the u16 body limit less the opcode item (3 + 1), the
 * SKI item (3 + 20), the payload item header and the scheme. A longer message goes the digest way.
 */
export const MAX_SIGN_MESSAGE_LENGTH =
  MAX_WIRE_BODY_LENGTH - (ITEM_HEADER_LENGTH + 1) - (ITEM_HEADER_LENGTH + SKI_LENGTH) - ITEM_HEADER_LENGTH - SCHEME_LENGTH;

export function encodeSignMessage(request: SignMessageRequest): Uint8Array {
  const { scheme, message } = request;
  if (!Number.isInteger(scheme) || scheme < 0 || scheme > 0xffff) {
    throw new KeylessFormatError(`signature scheme ${scheme} is not a u16`);
  }
  if (message.length === 0) throw new KeylessFormatError('sign-message request with an empty message');
  if (message.length > MAX_SIGN_MESSAGE_LENGTH) {
    throw new KeylessFormatError(`a message of ${message.length} bytes does not fit one request (at most ${MAX_SIGN_MESSAGE_LENGTH})`);
  }
  const out = new Uint8Array(SCHEME_LENGTH + message.length);
  out[0] = scheme >>> 8;
  out[1] = scheme & 0xff;
  out.set(message, SCHEME_LENGTH);
  return out;
}

/** The message is a view into `payload`, not a copy. */
export function decodeSignMessage(payload: Uint8Array): SignMessageRequest {
  if (payload.length < SCHEME_LENGTH) {
    throw new KeylessFormatError(`sign-message payload needs a 2-byte signature scheme, got ${payload.length} bytes`);
  }
  if (payload.length === SCHEME_LENGTH) throw new KeylessFormatError('sign-message payload has a scheme but no message');
  return { scheme: (payload[0]! << 8) | payload[1]!, message: payload.subarray(SCHEME_LENGTH) };
}
