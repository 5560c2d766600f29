/**
 * (EC)DHE key shares for x25519, secp256r1 and secp384r1 on node:crypto (RFC 8446 §4.2.8.2,
 * §7.4). Peer shares are validated: exact length, uncompressed form for NIST curves, point on
 * the curve (ECDH.computeSecret rejects points off the curve), and a non-zero X25519 result.
 */
import { createECDH, createPublicKey, diffieHellman, generateKeyPairSync, type ECDH, type KeyObject } from 'node:crypto';
import { NamedGroup } from './constants.js';
import { PeerMisbehaved } from './errors.js';

export const SUPPORTED_GROUPS: readonly number[] = [NamedGroup.x25519, NamedGroup.secp256r1, NamedGroup.secp384r1];

/** An ephemeral private key with its encoded public share. */
export interface KeyShare {
  readonly group: number;
  readonly publicKey: Uint8Array;
  /** Computes the shared secret with the peer's encoded share; throws IllegalParameter on a bad share. */
  computeSecret(peerShare: Uint8Array): Uint8Array;
}

/*
 * Keys cross the node:crypto boundary as JWK: under OpenSSL 3, DER/SPKI import and export go
 * through the decoder framework and cost ~10x more than the JWK path (measured: ~300 us vs
 * ~4-30 us per key), which would dominate the handshake.
 */
/*
 * Not generateKeyPairSync() followed by publicKey.export({ format: 'jwk' }): in Node 20 that
 * deadlocked the process. The JWK export holds the key's mutex while allocating on the V8 heap; a
 * GC there may finalize the (already unreachable) KeyGenJob that made the key, whose destructor
 * takes the same mutex, and the main thread waits on itself forever (seen under handshake load
 * after a few thousand handshakes; a bare keygen+export loop hangs within seconds). Asking the
 * job itself to encode the public key as JWK does the export while the job is still running
 * (so it cannot be finalized), at the same cost (~52 us). diffieHellman() appears to release the
 * key locks before it allocates its result: 130k keygen + diffieHellman iterations did not hang,
 * where the old pattern hung within 2 s. On Node 24 neither a 200k-iteration keygen + export
 * loop nor the same loop on Node 20 hangs today, so the hang is not reliably reproducible; the
 * job-encoded JWK is kept because it cannot take that lock order, and Node 24's raw-public export
 * measured the same (~95-130 us per share with the import and diffieHellman, both ways).
 */
class X25519Share implements KeyShare {
  readonly group = NamedGroup.x25519;
  readonly publicKey: Uint8Array;
  private readonly privateKey: KeyObject;
  constructor() {
    const generate = generateKeyPairSync as unknown as (type: 'x25519', options: { publicKeyEncoding: { format: 'jwk' } }) => { publicKey: { x: string }; privateKey: KeyObject };
    const { publicKey, privateKey } = generate('x25519', { publicKeyEncoding: { format: 'jwk' } });
    this.privateKey = privateKey;
    this.publicKey = Buffer.from(publicKey.x, 'base64url');
  }
  computeSecret(peerShare: Uint8Array): Uint8Array {
    if (peerShare.length !== 32) throw new PeerMisbehaved('InvalidKeyShare', `x25519 share of ${peerShare.length} bytes`);
    let secret: Uint8Array;
    try {
      const x = Buffer.from(peerShare.buffer, peerShare.byteOffset, peerShare.length).toString('base64url');
      const publicKey = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x }, format: 'jwk' });
      secret = diffieHellman({ privateKey: this.privateKey, publicKey });
    } catch (e) {
      throw new PeerMisbehaved('InvalidKeyShare', 'invalid x25519 share', { cause: e });
    }
    // A low-order point yields all zeros (RFC 7748 §6.1); OpenSSL may or may not refuse it.
    let acc = 0;
    for (const b of secret) acc |= b;
    if (acc === 0) throw new PeerMisbehaved('ZeroSharedSecret', 'x25519 shared secret is all zeros');
    return secret;
  }
}

class NistShare implements KeyShare {
  readonly publicKey: Uint8Array;
  private readonly ecdh: ECDH;
  constructor(
    readonly group: number,
    curve: 'prime256v1' | 'secp384r1',
    private readonly coordinateLength: number,
  ) {
    this.ecdh = createECDH(curve);
    this.publicKey = this.ecdh.generateKeys();
  }
  computeSecret(peerShare: Uint8Array): Uint8Array {
    // TLS 1.3 allows only the uncompressed form (§4.2.8.2).
    if (peerShare.length !== 1 + 2 * this.coordinateLength || peerShare[0] !== 0x04) {
      throw new PeerMisbehaved('InvalidKeyShare', 'EC share is not an uncompressed point of the right size');
    }
    try {
      return this.ecdh.computeSecret(peerShare);
    } catch (e) {
      throw new PeerMisbehaved('InvalidKeyShare', 'EC share is not a point on the curve', { cause: e });
    }
  }
}

/** Generates a fresh share for `group`; undefined for groups we do not implement. */
export function generateKeyShare(group: number): KeyShare | undefined {
  switch (group) {
    case NamedGroup.x25519:
      return new X25519Share();
    case NamedGroup.secp256r1:
      return new NistShare(group, 'prime256v1', 32);
    case NamedGroup.secp384r1:
      return new NistShare(group, 'secp384r1', 48);
    default:
      return undefined;
  }
}
