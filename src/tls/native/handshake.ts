/**
 * The optional native crypto of the handshake (handshake.c, built by scripts/build-native.mjs
 * into dist/src/tls/native/handshake.node): (EC)DHE shares and secrets, ML-KEM-768
 * encapsulation and the hybrid groups' server answer, HMAC / HKDF and the transcript hash on the OpenSSL inside the node binary,
 * without node:crypto's per-call machinery (key-generation jobs, JWK encodings, KeyObjects, Hmac
 * and Hash objects). bench/results/handshake.md measures both paths.
 *
 * `nativeHandshake()` loads it once per process and checks it against known answers (RFC 7748,
 * RFC 5869) and node:crypto; it answers undefined (and src/tls keeps node:crypto) when the addon
 * was not built, does not load, gives a wrong answer, or DC_TLS_NATIVE=off is set.
 */
import { createECDH, createHash, createHmac, createPublicKey, decapsulate, diffieHellman, generateKeyPairSync } from 'node:crypto';
import { createRequire } from 'node:module';
import { nativeSwitchedOff } from './switch.js';

/** A private key held by the addon (opaque; freed, its memory cleansed, when collected). */
export type NativeKey = { readonly __nativeKey: never };

/** A running transcript hash held by the addon (opaque; freed when collected). */
export type NativeTranscript = { readonly __nativeTranscript: never };

/** A private key imported for signing (opaque; freed, its memory cleansed, when collected). */
export type NativeSigningKey = { readonly __nativeSigningKey: never };

/** The addon's group numbers. */
export const NATIVE_GROUP = { x25519: 1, p256: 2, p384: 3 } as const;
export type NativeGroup = (typeof NATIVE_GROUP)[keyof typeof NATIVE_GROUP];

/** The addon's hybrid groups (draft-ietf-tls-ecdhe-mlkem). */
export const NATIVE_HYBRID = { X25519MLKEM768: 1, SecP256r1MLKEM768: 2 } as const;
export type NativeHybrid = (typeof NATIVE_HYBRID)[keyof typeof NATIVE_HYBRID];

/**
 * The addon's functions. A bad peer share throws an Error with code ERR_TLS_NATIVE_BAD_SHARE
 * (wrong length, not an uncompressed point, off the curve) or ERR_TLS_NATIVE_ZERO_SECRET (an
 * all-zero X25519 result); any other error is a programming error.
 */
export interface NativeHandshake {
  /** A fresh private key; its public share is written to `publicOut` (exactly 32, 65 or 97 bytes). */
  ecdhGenerate(group: NativeGroup, publicOut: Uint8Array): NativeKey;
  /** The shared secret of `key` and the peer's share. */
  ecdhDerive(key: NativeKey, peerShare: Uint8Array): Buffer;
  /** A fresh key, its public share into `publicOut`, and the shared secret, in one call; the private key never leaves C. */
  ecdhRespond(group: NativeGroup, peerShare: Uint8Array, publicOut: Uint8Array): Buffer;
  /** X25519 with a given private key: the known-answer self-check and tests only. */
  ecdhDeriveWithPrivateKey(group: typeof NATIVE_GROUP.x25519, privateKey: Uint8Array, peerShare: Uint8Array): Buffer;
  /** ML-KEM-768 (FIPS 203): the ciphertext into `ciphertextOut` (1088 bytes), the shared secret returned; a key failing the §7.2 checks is ERR_TLS_NATIVE_BAD_SHARE. */
  mlkemEncapsulate(encapsulationKey: Uint8Array, ciphertextOut: Uint8Array): Buffer;
  /**
   * The server's answer to a hybrid client share in one call: our ECDH answer (first: a bad point
   * costs no encapsulation), then ML-KEM-768 encapsulation; the ciphertext and our ECDH share
   * into `shareOut` (1120 / 1153 bytes), the two secrets into `secretOut` (64 bytes), each in the
   * group's order (X25519MLKEM768: ML-KEM first). A client share of the wrong length, a bad ECDH
   * share or an encapsulation key failing FIPS 203 §7.2 throws like the calls above; the outputs
   * must not overlap the share or each other.
   */
  hybridRespond(hybrid: NativeHybrid, clientShare: Uint8Array, shareOut: Uint8Array, secretOut: Uint8Array): void;
  /*
   * The key schedule; hash 1 is SHA-256, 2 SHA-384. Each writes `length` bytes to out[0..]
   * (which must have room) and returns nothing.
   */
  /** The first `length` (1..hash length) bytes of HMAC(key, data); HKDF-Extract is hmac(salt, ikm). */
  hmac(hash: 1 | 2, key: Uint8Array, data: Uint8Array, length: number, out: Uint8Array): void;
  /** HKDF-Expand (RFC 5869 §2.3), length up to 255 hash lengths. */
  hkdfExpand(hash: 1 | 2, prk: Uint8Array, info: Uint8Array, length: number, out: Uint8Array): void;
  /** HKDF-Expand-Label (RFC 8446 §7.1); `label` includes "tls13 " (at most 255 bytes, as the context). */
  hkdfExpandLabel(hash: 1 | 2, secret: Uint8Array, label: Uint8Array, context: Uint8Array, length: number, out: Uint8Array): void;
  /** Two HKDF-Expand-Labels of one secret and one context in one call (the HMAC keyed once): `length1` bytes to out1, `length2` to out2. */
  hkdfExpandLabelPair(hash: 1 | 2, secret: Uint8Array, label1: Uint8Array, label2: Uint8Array, context: Uint8Array, length1: number, length2: number, out1: Uint8Array, out2: Uint8Array): void;
  /** A running hash (1 SHA-256, 2 SHA-384) for the transcript. */
  transcriptCreate(hash: 1 | 2): NativeTranscript;
  transcriptUpdate(transcript: NativeTranscript, data: Uint8Array): void;
  /** The digest of everything so far plus `extra` into out[0..]; returns its length. The running hash goes on without `extra`. */
  transcriptDigest(transcript: NativeTranscript, extra: Uint8Array, out: Uint8Array): number;
  /*
   * Handshake signatures (src/tls/native/signing.ts checks them and is their only user). A key
   * or scheme the addon does not serve throws an Error with code ERR_TLS_NATIVE_SIGN.
   */
  /** Imports a PKCS#8 private key (EC P-256/P-384/P-521, RSA, Ed25519); `pkcs8` is wiped, whatever happens. */
  signingKey(pkcs8: Uint8Array): NativeSigningKey;
  /** The signature of `data` under the TLS SignatureScheme `scheme` (ECDSA as DER; RSA-PSS salt = hash length). */
  sign(key: NativeSigningKey, scheme: number, data: Uint8Array): Buffer;
}

let loaded: { readonly native: NativeHandshake | undefined; readonly status: string } | undefined;

/** The native handshake crypto, or undefined when src/tls must use node:crypto. */
export function nativeHandshake(): NativeHandshake | undefined {
  return (loaded ??= load()).native;
}

/** Why the handshake uses what it uses, for diagnostics (`native` or the reason it does not). */
export function nativeHandshakeStatus(): string {
  return (loaded ??= load()).status;
}

function load(): { native: NativeHandshake | undefined; status: string } {
  const off = nativeSwitchedOff();
  if (off) return { native: undefined, status: `node:crypto (${off})` };
  let native: NativeHandshake;
  try {
    native = createRequire(import.meta.url)('./handshake.node') as NativeHandshake;
  } catch (e) {
    return { native: undefined, status: `node:crypto (native handshake not loaded: ${(e as Error).message.split('\n')[0]})` };
  }
  const wrong = selfCheck(native);
  if (wrong) return { native: undefined, status: `node:crypto (native handshake fails its self-check: ${wrong})` };
  return { native, status: 'native' };
}

const hex = (s: string): Buffer => Buffer.from(s, 'hex');

/** RFC 7748 §6.1: Alice's private key, Bob's public key, their shared secret. */
const RFC7748 = {
  alicePrivate: hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a'),
  alicePublic: hex('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a'),
  bobPublic: hex('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f'),
  shared: hex('4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742'),
};

/** Undefined when every function gives the known or node:crypto's answer, else what went wrong. */
function selfCheck(native: NativeHandshake): string | undefined {
  try {
    if (!native.ecdhDeriveWithPrivateKey(NATIVE_GROUP.x25519, RFC7748.alicePrivate, RFC7748.bobPublic).equals(RFC7748.shared)) return 'RFC 7748 X25519';
    // Our fresh share against node:crypto's key pair, both directions of the agreement.
    const x = generateKeyPairSync('x25519');
    const xRaw = Buffer.from(x.publicKey.export({ format: 'jwk' }).x!, 'base64url');
    const ours = Buffer.alloc(32);
    const secret = native.ecdhRespond(NATIVE_GROUP.x25519, xRaw, ours);
    const theirs = diffieHellman({ privateKey: x.privateKey, publicKey: createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: ours.toString('base64url') }, format: 'jwk' }) });
    if (!secret.equals(theirs)) return 'X25519 against node:crypto';
    for (const [group, curve, size] of [
      [NATIVE_GROUP.p256, 'prime256v1', 65],
      [NATIVE_GROUP.p384, 'secp384r1', 97],
    ] as const) {
      const ecdh = createECDH(curve);
      const point = ecdh.generateKeys();
      const pub = Buffer.alloc(size);
      const key = native.ecdhGenerate(group, pub);
      if (!native.ecdhDerive(key, point).equals(ecdh.computeSecret(pub))) return `${curve} against node:crypto`;
    }
    const kem = generateKeyPairSync('ml-kem-768' as 'x25519');
    const ciphertext = Buffer.alloc(1088);
    const kemSecret = native.mlkemEncapsulate(kem.publicKey.export({ format: 'raw-public' } as never) as unknown as Buffer, ciphertext);
    if (!kemSecret.equals(decapsulate(kem.privateKey, ciphertext))) return 'ML-KEM-768 against node:crypto';
    // The hybrid answer, against node:crypto's ML-KEM and X25519 keys, in X25519MLKEM768's order.
    const hybridShare = Buffer.alloc(1088 + 32);
    const hybridSecret = Buffer.alloc(64);
    native.hybridRespond(NATIVE_HYBRID.X25519MLKEM768, Buffer.concat([kem.publicKey.export({ format: 'raw-public' } as never) as unknown as Buffer, xRaw]), hybridShare, hybridSecret);
    const hybridX = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: hybridShare.subarray(1088).toString('base64url') }, format: 'jwk' });
    if (!hybridSecret.equals(Buffer.concat([decapsulate(kem.privateKey, hybridShare.subarray(0, 1088)), diffieHellman({ privateKey: x.privateKey, publicKey: hybridX })]))) {
      return 'X25519MLKEM768 against node:crypto';
    }
    return hkdfSelfCheck(native);
  } catch (e) {
    return (e as Error).message;
  }
}

/** RFC 5869 A.1 (SHA-256) and node:crypto's HKDF and HMAC for SHA-384 and HKDF-Expand-Label. */
function hkdfSelfCheck(native: NativeHandshake): string | undefined {
  const out = new Uint8Array(255 * 48);
  const take = (n: number): Buffer => Buffer.from(out.subarray(0, n));
  const ikm = Buffer.alloc(22, 0x0b);
  const salt = hex('000102030405060708090a0b0c');
  const info = hex('f0f1f2f3f4f5f6f7f8f9');
  native.hmac(1, salt, ikm, 32, out);
  if (!take(32).equals(hex('077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5'))) return 'RFC 5869 A.1 HKDF-Extract';
  const prk = take(32);
  native.hkdfExpand(1, prk, info, 42, out);
  if (!take(42).equals(hex('3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865'))) return 'RFC 5869 A.1 HKDF-Expand';
  // HKDF-Expand over 5 SHA-384 blocks, against T(i) = HMAC(PRK, T(i-1) | info | i) on node:crypto.
  native.hkdfExpand(2, prk, info, 200, out);
  const blocks: Buffer[] = [];
  for (let i = 1, t = Buffer.alloc(0); blocks.length * 48 < 200; i++) blocks.push((t = createHmac('sha384', prk).update(Buffer.concat([t, info, Uint8Array.of(i)])).digest()));
  if (!take(200).equals(Buffer.concat(blocks).subarray(0, 200))) return 'HKDF-Expand SHA-384 against node:crypto';
  native.hmac(2, info, ikm, 48, out);
  if (!take(48).equals(createHmac('sha384', info).update(ikm).digest())) return 'HMAC-SHA-384 against node:crypto';
  const label = Buffer.from('tls13 c hs traffic', 'latin1');
  native.hkdfExpandLabel(1, prk, label, info, 32, out);
  const hkdfLabel = Buffer.concat([Uint8Array.of(0, 32, label.length), label, Uint8Array.of(info.length), info, Uint8Array.of(1)]);
  if (!take(32).equals(createHmac('sha256', prk).update(hkdfLabel).digest())) return 'HKDF-Expand-Label against node:crypto';
  // The pair: each half as hkdfExpandLabel gives it, a 2-block (SHA-256, 40 bytes) half included.
  const second = Buffer.from('tls13 s hs traffic', 'latin1');
  const pair = [new Uint8Array(40), new Uint8Array(32)];
  native.hkdfExpandLabelPair(1, prk, second, label, info, 40, 32, pair[0]!, pair[1]!);
  native.hkdfExpandLabel(1, prk, second, info, 40, out);
  if (!take(40).equals(pair[0]!)) return 'HKDF-Expand-Label pair, first';
  native.hkdfExpandLabel(1, prk, label, info, 32, out);
  if (!take(32).equals(pair[1]!)) return 'HKDF-Expand-Label pair, second';
  // The transcript hash: a digest in the middle and one with extra bytes, against node:crypto.
  for (const [id, name] of [
    [1, 'sha256'],
    [2, 'sha384'],
  ] as const) {
    const t = native.transcriptCreate(id);
    const reference = createHash(name);
    native.transcriptUpdate(t, ikm);
    reference.update(ikm);
    const n = native.transcriptDigest(t, info, out);
    if (!take(n).equals(reference.copy().update(info).digest())) return `transcript ${name} with extra bytes`;
    native.transcriptUpdate(t, salt);
    reference.update(salt);
    if (!take(native.transcriptDigest(t, new Uint8Array(0), out)).equals(reference.digest())) return `transcript ${name}`;
  }
  out.fill(0);
  return undefined;
}
