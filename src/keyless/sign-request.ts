/**
 * What a signing request asks for, in one shape for the server, the signing workers and the key:
 * a digest the client computed (the documented opcodes), or a whole message with a TLS signature
 * scheme (our extension, sign-message.ts).
 */
import { schemeParams } from '../tls/signature-schemes.js';
import { Opcode, signOperationOf, type SignOperation } from './protocol.js';
import { decodeSignMessage } from './sign-message.js';

export type SignRequest =
  | { readonly kind: 'digest'; readonly operation: SignOperation; readonly payload: Uint8Array }
  | { readonly kind: 'message'; readonly scheme: number; readonly message: Uint8Array };

/**
 * The request an opcode and payload make, or undefined when the opcode is not a signing opcode
 * (answered "bad opcode"). Throws KeylessFormatError for a malformed extension payload.
 */
export function signRequestOf(opcode: number, payload: Uint8Array): SignRequest | undefined {
  if (opcode === Opcode.signMessage) {
    const { scheme, message } = decodeSignMessage(payload);
    return { kind: 'message', scheme, message };
  }
  const operation = signOperationOf(opcode);
  return operation ? { kind: 'digest', operation, payload } : undefined;
}

/**
 * True when the request signs with MD5-SHA1 or SHA-1, which a key server refuses unless told
 * otherwise (--allow-legacy-hashes): both have practical collisions, and no TLS 1.2 or 1.3 peer of
 * ours needs them. An unknown scheme is not legacy here; signing it fails on its own.
 */
export function usesLegacyHash(request: SignRequest): boolean {
  if (request.kind === 'digest') {
    const op = request.operation;
    return op.kind !== 'ed25519' && (op.hash === 'md5-sha1' || op.hash === 'sha1');
  }
  return LEGACY_SCHEMES.has(request.scheme) || schemeParams(request.scheme)?.hash === 'sha1';
}

/** rsa_pkcs1_sha1, ecdsa_sha1 (RFC 8446 §4.2.3, legacy) and TLS 1.2's dsa/sha1 pairs. */
const LEGACY_SCHEMES: ReadonlySet<number> = new Set([0x0201, 0x0203, 0x0202]);
