/**
 * The TLS 1.2 key derivation (RFC 5246 §5, §6.3, §7.4.9), with the extended master secret of
 * RFC 7627 (the only master secret we derive) and the exporter of RFC 5705. HMAC is the key
 * schedule's (`hmac`: OpenSSL through the handshake addon, node:crypto's createHmac without it).
 */
import { hmac } from '../key-schedule.js';
import type { Tls12SuiteParams } from './suites.js';
import type { HashName } from '../suites.js';

/** P_hash(secret, label || seed) truncated to `length` bytes (RFC 5246 §5). */
export function prf(hash: HashName, secret: Uint8Array, label: string, seed: Uint8Array, length: number): Buffer {
  const labelSeed = Buffer.concat([Buffer.from(label, 'latin1'), seed]);
  const out = Buffer.allocUnsafe(length);
  let a = hmac(hash, secret, labelSeed); // A(1)
  const aSeed = Buffer.allocUnsafe(a.length + labelSeed.length);
  labelSeed.copy(aSeed, a.length);
  for (let off = 0; off < length; ) {
    aSeed.set(a, 0);
    const block = hmac(hash, secret, aSeed);
    const take = Math.min(block.length, length - off);
    out.set(take === block.length ? block : block.subarray(0, take), off);
    off += take;
    if (off < length) a = hmac(hash, secret, a);
  }
  return out;
}

/** RFC 7627 §4: master_secret = PRF(pre_master_secret, "extended master secret", session_hash)[0..47]. */
export function extendedMasterSecret(suite: Tls12SuiteParams, preMasterSecret: Uint8Array, sessionHash: Uint8Array): Buffer {
  return prf(suite.hash, preMasterSecret, 'extended master secret', sessionHash, 48);
}

export interface Tls12TrafficKeys {
  readonly clientKey: Buffer;
  readonly serverKey: Buffer;
  readonly clientIv: Buffer;
  readonly serverIv: Buffer;
}

/** §6.3: the key block, AEAD suites (no MAC keys): client key, server key, client IV, server IV. */
export function keyBlock(suite: Tls12SuiteParams, masterSecret: Uint8Array, clientRandom: Uint8Array, serverRandom: Uint8Array): Tls12TrafficKeys {
  const k = suite.keyLength;
  const iv = suite.fixedIvLength;
  const block = prf(suite.hash, masterSecret, 'key expansion', Buffer.concat([serverRandom, clientRandom]), 2 * k + 2 * iv);
  return {
    clientKey: block.subarray(0, k),
    serverKey: block.subarray(k, 2 * k),
    clientIv: block.subarray(2 * k, 2 * k + iv),
    serverIv: block.subarray(2 * k + iv, 2 * k + 2 * iv),
  };
}

/** §7.4.9: verify_data = PRF(master_secret, finished_label, Hash(handshake_messages))[0..11]. */
export function finishedVerifyData12(suite: Tls12SuiteParams, masterSecret: Uint8Array, side: 'client' | 'server', transcriptHash: Uint8Array): Buffer {
  return prf(suite.hash, masterSecret, side === 'client' ? 'client finished' : 'server finished', transcriptHash, 12);
}

/**
 * RFC 5705 §4: PRF(master_secret, label, client_random || server_random [|| u16 length || context]).
 * An empty `context` means "no context" (the connection API's default), as node:tls does.
 */
export function exportKeyingMaterial12(
  suite: Tls12SuiteParams,
  masterSecret: Uint8Array,
  clientRandom: Uint8Array,
  serverRandom: Uint8Array,
  label: string,
  context: Uint8Array,
  length: number,
): Uint8Array {
  const parts: Uint8Array[] = [clientRandom, serverRandom];
  if (context.length > 0) {
    if (context.length > 0xffff) throw new RangeError('exporter context over 65535 bytes');
    parts.push(Uint8Array.of(context.length >> 8, context.length & 0xff), context);
  }
  return prf(suite.hash, masterSecret, label, Buffer.concat(parts), length);
}
