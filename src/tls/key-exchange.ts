/**
 * Key shares on node:crypto (RFC 8446 §4.2.8.2, §7.4): (EC)DHE for x25519, secp256r1 and
 * secp384r1, and the hybrid post-quantum groups X25519MLKEM768 and SecP256r1MLKEM768
 * (draft-ietf-tls-ecdhe-mlkem: ML-KEM-768 from FIPS 203 next to an ECDH share).
 *
 * Peer shares are validated: exact length, uncompressed form for NIST curves, point on the curve
 * (ECDH.computeSecret rejects points off the curve), a non-zero X25519 result, and for ML-KEM the
 * FIPS 203 §7.2 encapsulation key checks (length, and every coefficient below q: node:crypto's
 * import refuses a key that fails the modulus check). A server share's ML-KEM ciphertext needs
 * only its length checked (§7.3): decapsulation of any ciphertext yields a secret (implicit
 * rejection), and a wrong one just fails the Finished check.
 *
 * The (EC)DHE halves run on the native addon when it is loaded (./native/handshake.ts: one call
 * per server share, the private key never leaves C, ~15-40% less CPU than node:crypto's key
 * objects, bench/results/handshake.md), else on node:crypto; both validate the same way.
 *
 * A KEM is not symmetric like DH: the server's share depends on the client's (the ciphertext
 * encapsulated to the client's key), so the client side is a `KeyShare` made before the peer's
 * share is known and the server side is `respondToKeyShare`, which needs the client's share.
 */
import { createECDH, createPublicKey, decapsulate, diffieHellman, encapsulate, generateKeyPairSync, type ECDH, type KeyObject } from 'node:crypto';
import { NamedGroup } from './constants.js';
import { PeerMisbehaved } from './errors.js';
import { NATIVE_GROUP, NATIVE_HYBRID, nativeHandshake, type NativeGroup, type NativeHybrid, type NativeKey } from './native/handshake.js';

/**
 * Every group we implement, in our order of preference. The hybrids come first: a client that
 * offers one gets post-quantum key exchange (see `isPostQuantumGroup` for the server's choice).
 */
export const SUPPORTED_GROUPS: readonly number[] = [
  NamedGroup.X25519MLKEM768,
  NamedGroup.x25519,
  NamedGroup.SecP256r1MLKEM768,
  NamedGroup.secp256r1,
  NamedGroup.secp384r1,
];

/** True for the hybrid groups whose secret also resists a quantum computer. */
export function isPostQuantumGroup(group: number): boolean {
  return group === NamedGroup.X25519MLKEM768 || group === NamedGroup.SecP256r1MLKEM768;
}

/** The client's side: an ephemeral private key with its encoded public share. */
export interface KeyShare {
  readonly group: number;
  readonly publicKey: Uint8Array;
  /** Computes the shared secret with the peer's encoded share; throws IllegalParameter on a bad share. */
  computeSecret(peerShare: Uint8Array): Uint8Array;
}

/** The server's side: its encoded share and the shared secret, made from the client's share. */
export interface KeyShareResponse {
  readonly publicKey: Uint8Array;
  readonly secret: Uint8Array;
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

// --- (EC)DHE on the native addon ------------------------------------------------------------------

const native = nativeHandshake();

/** Our group numbers of the addon's groups, and their share lengths. */
const NATIVE_GROUPS = new Map<number, { readonly id: NativeGroup; readonly shareLength: number; readonly name: string }>([
  [NamedGroup.x25519, { id: NATIVE_GROUP.x25519, shareLength: 32, name: 'x25519' }],
  [NamedGroup.secp256r1, { id: NATIVE_GROUP.p256, shareLength: 65, name: 'EC' }],
  [NamedGroup.secp384r1, { id: NATIVE_GROUP.p384, shareLength: 97, name: 'EC' }],
]);

/** The addon's refusal of a peer's (EC)DHE share as the same PeerMisbehaved node:crypto's path throws; other errors as they are. */
function nativeRefusal(name: string, e: unknown): unknown {
  const code = (e as { code?: unknown }).code;
  // OpenSSL refuses an all-zero X25519 result (a low-order point) in both paths: same fault.
  if (code === 'ERR_TLS_NATIVE_ZERO_SECRET') return new PeerMisbehaved('InvalidKeyShare', `invalid ${name} share: the shared secret is all zeros`, { cause: e });
  if (code === 'ERR_TLS_NATIVE_BAD_SHARE') return new PeerMisbehaved('InvalidKeyShare', `invalid ${name} share: ${(e as Error).message}`, { cause: e });
  return e;
}

function nativeSecret(name: string, derive: () => Uint8Array): Uint8Array {
  try {
    return derive();
  } catch (e) {
    throw nativeRefusal(name, e);
  }
}

/** The addon's answer to a peer's share: our share into `publicOut` (exactly the share's length), the secret returned. */
function respondNatively(params: { readonly id: NativeGroup; readonly name: string }, peerShare: Uint8Array, publicOut: Uint8Array): Uint8Array {
  return nativeSecret(params.name, () => native!.ecdhRespond(params.id, peerShare, publicOut));
}

/** A client share whose private key the addon holds. */
class NativeShare implements KeyShare {
  readonly publicKey: Uint8Array;
  private readonly key: NativeKey;
  constructor(
    readonly group: number,
    private readonly params: { readonly id: NativeGroup; readonly shareLength: number; readonly name: string },
  ) {
    const publicKey = Buffer.allocUnsafe(params.shareLength);
    this.key = native!.ecdhGenerate(params.id, publicKey);
    this.publicKey = publicKey;
  }
  computeSecret(peerShare: Uint8Array): Uint8Array {
    return nativeSecret(this.params.name, () => native!.ecdhDerive(this.key, peerShare));
  }
}

/** Our share and the secret for the peer's (EC)DHE share, in one native call when we can. */
function respondToEcdh(group: number, peerShare: Uint8Array): KeyShareResponse | undefined {
  const params = native ? NATIVE_GROUPS.get(group) : undefined;
  if (params) {
    const publicKey = Buffer.allocUnsafe(params.shareLength);
    return { publicKey, secret: respondNatively(params, peerShare, publicKey) };
  }
  const share = generateKeyShare(group);
  if (!share) return undefined;
  return { publicKey: share.publicKey, secret: share.computeSecret(peerShare) };
}

// --- ML-KEM-768 and the hybrids ---------------------------------------------------------------------

/** FIPS 203 sizes for ML-KEM-768: encapsulation key, ciphertext, shared secret. */
const MLKEM768_ENCAPSULATION_KEY = 1184;
const MLKEM768_CIPHERTEXT = 1088;
const MLKEM_KEY_REFUSED = 'ML-KEM-768 encapsulation key fails the FIPS 203 modulus check';
/** A hybrid secret: ML-KEM-768's 32 bytes and the ECDH half's 32 (X25519, a P-256 x coordinate). */
const HYBRID_SECRET = 64;
/** Sizes of the ECDH halves: an X25519 key, an uncompressed P-256 point. */
const X25519_SHARE = 32;
const P256_SHARE = 65;

/** Where the ML-KEM part sits in a hybrid share and secret, and how long the ECDH part is. */
interface HybridLayout {
  readonly group: number;
  /** X25519MLKEM768 puts ML-KEM first; SecP256r1MLKEM768 puts ECDH first (draft-ietf-tls-ecdhe-mlkem §3). */
  readonly kemFirst: boolean;
  readonly ecdhLength: number;
  /** The group of the ECDH half. */
  readonly ecdhGroup: number;
  /** The addon's number for it. */
  readonly nativeId: NativeHybrid;
}

const HYBRIDS = new Map<number, HybridLayout>([
  [NamedGroup.X25519MLKEM768, { group: NamedGroup.X25519MLKEM768, kemFirst: true, ecdhLength: X25519_SHARE, ecdhGroup: NamedGroup.x25519, nativeId: NATIVE_HYBRID.X25519MLKEM768 }],
  [NamedGroup.SecP256r1MLKEM768, { group: NamedGroup.SecP256r1MLKEM768, kemFirst: false, ecdhLength: P256_SHARE, ecdhGroup: NamedGroup.secp256r1, nativeId: NATIVE_HYBRID.SecP256r1MLKEM768 }],
]);

/** Throws InvalidKeyShare unless `share` has exactly the length of its KEM and ECDH parts. */
function checkHybridLength(layout: HybridLayout, share: Uint8Array, kemLength: number, what: string): void {
  if (share.length !== kemLength + layout.ecdhLength) {
    throw new PeerMisbehaved('InvalidKeyShare', `${what} of ${share.length} bytes, expected ${kemLength + layout.ecdhLength}`);
  }
}

/** Splits `share` into its KEM and ECDH parts after checking its exact length. */
function splitHybrid(layout: HybridLayout, share: Uint8Array, kemLength: number, what: string): { kem: Uint8Array; ecdh: Uint8Array } {
  checkHybridLength(layout, share, kemLength, what);
  return layout.kemFirst
    ? { kem: share.subarray(0, kemLength), ecdh: share.subarray(kemLength) }
    : { ecdh: share.subarray(0, layout.ecdhLength), kem: share.subarray(layout.ecdhLength) };
}

function joinHybrid(layout: HybridLayout, kem: Uint8Array, ecdh: Uint8Array): Uint8Array {
  const out = Buffer.allocUnsafe(kem.length + ecdh.length);
  out.set(layout.kemFirst ? kem : ecdh, 0);
  out.set(layout.kemFirst ? ecdh : kem, layout.kemFirst ? kem.length : ecdh.length);
  return out;
}

/** Client side: an ML-KEM-768 key pair next to an ECDH share. */
class HybridShare implements KeyShare {
  readonly group: number;
  readonly publicKey: Uint8Array;
  private readonly decapsulationKey: KeyObject;
  private readonly ecdh: KeyShare;
  constructor(private readonly layout: HybridLayout) {
    this.group = layout.group;
    // The keygen job encodes the public key itself, for the lock-order reason given above.
    const generate = generateKeyPairSync as unknown as (type: 'ml-kem-768', options: { publicKeyEncoding: { format: 'raw-public' } }) => { publicKey: Buffer; privateKey: KeyObject };
    const { publicKey, privateKey } = generate('ml-kem-768', { publicKeyEncoding: { format: 'raw-public' } });
    this.decapsulationKey = privateKey;
    this.ecdh = generateKeyShare(layout.ecdhGroup)!;
    this.publicKey = joinHybrid(layout, publicKey, this.ecdh.publicKey);
  }
  computeSecret(peerShare: Uint8Array): Uint8Array {
    const { kem, ecdh } = splitHybrid(this.layout, peerShare, MLKEM768_CIPHERTEXT, 'hybrid server share');
    const ecdhSecret = this.ecdh.computeSecret(ecdh);
    let kemSecret: Uint8Array;
    try {
      kemSecret = decapsulate(this.decapsulationKey, kem);
    } catch (e) {
      throw new PeerMisbehaved('InvalidKeyShare', 'ML-KEM ciphertext does not decapsulate', { cause: e });
    }
    return joinHybrid(this.layout, kemSecret, ecdhSecret);
  }
}

/** Server side of a hybrid: encapsulate to the client's ML-KEM key, answer its ECDH share. */
function respondToHybrid(layout: HybridLayout, clientShare: Uint8Array): KeyShareResponse {
  if (native) return respondToHybridNatively(layout, clientShare);
  const { kem, ecdh } = splitHybrid(layout, clientShare, MLKEM768_ENCAPSULATION_KEY, 'hybrid client share');
  let encapsulationKey: KeyObject;
  try {
    encapsulationKey = createPublicKey({ key: kem, format: 'raw-public', asymmetricKeyType: 'ml-kem-768' } as unknown as Parameters<typeof createPublicKey>[0]);
  } catch (e) {
    throw new PeerMisbehaved('InvalidKeyShare', MLKEM_KEY_REFUSED, { cause: e });
  }
  // The ECDH half first: a bad point or a zero X25519 secret costs no encapsulation.
  const ours = respondToEcdh(layout.ecdhGroup, ecdh)!;
  const { sharedKey, ciphertext } = encapsulate(encapsulationKey);
  return { publicKey: joinHybrid(layout, ciphertext, ours.publicKey), secret: joinHybrid(layout, sharedKey, ours.secret) };
}

/**
 * The same on the addon, in one call: the client's share is read in place (no split), the
 * ciphertext and our ECDH share are written into our share and both secrets into the secret
 * (one allocation for the two), and the FIPS 203 §7.2 checks are OpenSSL's import of the key.
 */
function respondToHybridNatively(layout: HybridLayout, clientShare: Uint8Array): KeyShareResponse {
  checkHybridLength(layout, clientShare, MLKEM768_ENCAPSULATION_KEY, 'hybrid client share');
  const shareLength = MLKEM768_CIPHERTEXT + layout.ecdhLength;
  const out = Buffer.allocUnsafe(shareLength + HYBRID_SECRET);
  const publicKey = out.subarray(0, shareLength);
  const secret = out.subarray(shareLength);
  try {
    native!.hybridRespond(layout.nativeId, clientShare, publicKey, secret);
  } catch (e) {
    // Worded as node:crypto's path words it. The length was checked above, so an ML-KEM refusal
    // is the key failing §7.2; any other is the ECDH half's.
    const kem = (e as { code?: unknown }).code === 'ERR_TLS_NATIVE_BAD_SHARE' && (e as Error).message.includes('ML-KEM-768');
    throw kem ? new PeerMisbehaved('InvalidKeyShare', MLKEM_KEY_REFUSED, { cause: e }) : nativeRefusal(NATIVE_GROUPS.get(layout.ecdhGroup)!.name, e);
  }
  return { publicKey, secret };
}

/** Generates a fresh client share for `group`; undefined for groups we do not implement. */
export function generateKeyShare(group: number): KeyShare | undefined {
  const params = native ? NATIVE_GROUPS.get(group) : undefined;
  if (params) return new NativeShare(group, params);
  switch (group) {
    case NamedGroup.x25519:
      return new X25519Share();
    case NamedGroup.secp256r1:
      return new NistShare(group, 'prime256v1', 32);
    case NamedGroup.secp384r1:
      return new NistShare(group, 'secp384r1', 48);
    default: {
      const layout = HYBRIDS.get(group);
      return layout ? new HybridShare(layout) : undefined;
    }
  }
}

/**
 * The server's answer to the client's share for `group`: our share and the shared secret.
 * Throws PeerMisbehaved (illegal_parameter) on a bad client share; undefined for groups we do
 * not implement.
 */
export function respondToKeyShare(group: number, clientShare: Uint8Array): KeyShareResponse | undefined {
  const layout = HYBRIDS.get(group);
  if (layout) return respondToHybrid(layout, clientShare);
  return respondToEcdh(group, clientShare);
}
