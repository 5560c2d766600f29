/**
 * The server's handshake signatures (CertificateVerify, TLS 1.2 ServerKeyExchange, delegated
 * credentials) on the handshake addon (handshake.c, signature block): a P-256 signature costs
 * ~46 us through node:crypto's `sign`, most of it the digest-sign context node:crypto sets up per
 * call; the addon keeps one context per key and scheme (bench/results/handshake.md).
 *
 * Used by src/tls/signer.ts for local KeyObjects only; keyless and other remote signers never
 * come here. Two checks stand between the addon and a signature on the wire:
 *   - at the first key, a known-answer check: a fixed P-256 key signs, node:crypto verifies
 *     (ECDSA is randomised: verify, do not compare); a fixed Ed25519 key gives RFC 8032's bytes;
 *   - per key and scheme, the first signature is verified with the key's public half on
 *     node:crypto before it is used, so every scheme of every key (RSA-PSS, PKCS#1, each curve)
 *     is checked against what peers will do, for the price of one verification.
 * A failure of either puts that key (or every key) back on node:crypto and warns once.
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { SignatureScheme } from '../constants.js';
import { verifySignature } from '../signature-schemes.js';
import { nativeHandshake, type NativeHandshake, type NativeSigningKey } from './handshake.js';

/**
 * What the addon signs for one key: `serves` says which schemes; `sign` answers undefined when
 * node:crypto must sign instead (the addon failed or gave a signature that did not verify: that
 * key then stays on node:crypto).
 */
export interface NativeKeySigner {
  serves(scheme: number): boolean;
  sign(scheme: number, message: Uint8Array): Uint8Array | undefined;
}

/** The SignatureScheme code points handshake.c implements (its SCHEMES table). */
const S = SignatureScheme;
const NATIVE_SCHEMES = new Set<number>([
  S.ecdsa_secp256r1_sha256,
  S.ecdsa_secp384r1_sha384,
  S.ecdsa_secp521r1_sha512,
  S.rsa_pss_rsae_sha256,
  S.rsa_pss_rsae_sha384,
  S.rsa_pss_rsae_sha512,
  S.rsa_pkcs1_sha256,
  S.rsa_pkcs1_sha384,
  S.rsa_pkcs1_sha512,
  S.ed25519,
]);
const NATIVE_CURVES = new Set(['prime256v1', 'secp384r1', 'secp521r1']);

let checked: { readonly native: NativeHandshake | undefined; readonly status: string } | undefined;

/** Why signatures use what they use (`native` or the reason not), for diagnostics and tests. */
export function nativeSigningStatus(): string {
  return (checked ??= check()).status;
}

/**
 * A signer on the addon for `key`, or undefined when node:crypto must sign with it: no addon
 * (not built, DC_TLS_NATIVE=off), its self-check failed, or a key type it does not serve
 * (RSASSA-PSS keys, ML-DSA, other curves).
 */
export function nativeSigningKey(key: KeyObject): NativeKeySigner | undefined {
  if (key.type !== 'private' || !servesKeyType(key)) return undefined;
  const native = (checked ??= check()).native;
  if (!native) return undefined;
  let handle: NativeSigningKey;
  try {
    // The export is wiped by signingKey, whatever happens.
    handle = native.signingKey(key.export({ format: 'der', type: 'pkcs8' }));
  } catch (e) {
    warnOnce(`an ${key.asymmetricKeyType} key did not import (${(e as Error).message}); it signs on node:crypto`);
    return undefined;
  }
  const publicKey = createPublicKey(key);
  /** Schemes whose first native signature verified. */
  const verified = new Set<number>();
  let broken = false;
  const giveUp = (why: string): undefined => {
    broken = true;
    warnOnce(`an ${key.asymmetricKeyType} key: ${why}; it signs on node:crypto`);
    return undefined;
  };
  return {
    serves: (scheme) => !broken && NATIVE_SCHEMES.has(scheme),
    sign(scheme, message) {
      if (broken) return undefined;
      let signature: Uint8Array;
      try {
        signature = native.sign(handle, scheme, message);
      } catch (e) {
        return giveUp(`signing with scheme 0x${scheme.toString(16)} failed (${(e as Error).message})`);
      }
      if (verified.has(scheme)) return signature;
      if (!verifySignature(scheme, publicKey, message, signature)) return giveUp(`the first signature with scheme 0x${scheme.toString(16)} did not verify`);
      verified.add(scheme);
      return signature;
    },
  };
}

function servesKeyType(key: KeyObject): boolean {
  switch (key.asymmetricKeyType) {
    case 'rsa':
    case 'ed25519':
      return true;
    case 'ec':
      return NATIVE_CURVES.has(key.asymmetricKeyDetails?.namedCurve ?? '');
    default:
      return false;
  }
}

let warned = false;
function warnOnce(message: string): void {
  if (warned) return;
  warned = true;
  process.emitWarning(`TLS handshake signatures: ${message}`, { code: 'DC_TLS_NATIVE_SIGN' });
}

const b64 = (s: string): Buffer => Buffer.from(s, 'base64');

/** A P-256 key for the self-check only (PKCS#8); it signs nothing else. */
const CHECK_P256 =
  'MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgiCZYSIM81ftWC1dIvEx63elyNp+g6z3rIXPcN0x3Gx6hRANCAATM5Iv5Tzl0jtEyniKeXDGLXoVM3t85Jd8M/iINRp64VEPVQOvim6p6/6PfZjcf2atQNerJAZU4qyTw8kFjne+B';
/** RFC 8032 §7.1 TEST 2: the Ed25519 private key (as PKCS#8), the message and its signature. */
const RFC8032 = {
  pkcs8: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), Buffer.from('4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb', 'hex')]),
  message: Buffer.from('72', 'hex'),
  signature: Buffer.from('92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00', 'hex'),
};

function check(): { native: NativeHandshake | undefined; status: string } {
  const native = nativeHandshake();
  if (!native) return { native: undefined, status: 'node:crypto (no native handshake addon)' };
  const wrong = selfCheck(native);
  if (wrong) {
    warnOnce(`the native signature self-check failed (${wrong}); signatures use node:crypto`);
    return { native: undefined, status: `node:crypto (native signing fails its self-check: ${wrong})` };
  }
  return { native, status: 'native' };
}

/** Undefined when the addon signs as node:crypto verifies and as RFC 8032 says, else what failed. */
function selfCheck(native: NativeHandshake): string | undefined {
  try {
    const p256 = b64(CHECK_P256);
    const publicKey = createPublicKey(createPrivateKey({ key: p256, format: 'der', type: 'pkcs8' }));
    const message = Buffer.from('TLS 1.3, server CertificateVerify: the native signature self-check', 'latin1');
    if (!verifySignature(S.ecdsa_secp256r1_sha256, publicKey, message, native.sign(native.signingKey(p256), S.ecdsa_secp256r1_sha256, message))) return 'ECDSA P-256 against node:crypto';
    if (!native.sign(native.signingKey(Buffer.from(RFC8032.pkcs8)), S.ed25519, RFC8032.message).equals(RFC8032.signature)) return 'RFC 8032 Ed25519';
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}
