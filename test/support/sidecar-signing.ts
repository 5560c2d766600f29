// What a sidecar has a key server sign, for tests that stand in for a sidecar: whole handshake
// contents through opcode 0xC0. The in-cluster key server signs nothing else for a sidecar
// identity (src/keyserver/handshake-content.ts), so a digest or any other bytes would be refused.
import { randomBytes } from 'node:crypto';
import type { KeylessClient } from '../../src/keyless/client.js';

export const ECDSA_SECP256R1_SHA256 = 0x0403;
const SPACES = Buffer.alloc(64, 0x20);

/** A TLS 1.3 server CertificateVerify's signed content, over a random 32-byte "transcript hash". */
export function certificateVerifyContent(): Buffer {
  return Buffer.concat([SPACES, Buffer.from('TLS 1.3, server CertificateVerify\0', 'latin1'), randomBytes(32)]);
}

/** RFC 9345's signed content of a delegated credential (what a sidecar must never get signed). */
export function delegatedCredentialContent(): Buffer {
  return Buffer.concat([SPACES, Buffer.from('TLS, server delegated credentials\0', 'latin1'), randomBytes(300)]);
}

/** Signs `message` whole (opcode 0xC0) with ECDSA P-256 as a sidecar does; never falls back to a digest. */
export function signAsSidecar(client: KeylessClient, ski: Uint8Array, message: Uint8Array, options: { timeoutMs?: number } = {}): Promise<Uint8Array> {
  return client.signMessage(ski, ECDSA_SECP256R1_SHA256, message, () => {
    throw new Error('the key server must support opcode 0xC0 (sign a whole message)');
  }, options);
}
