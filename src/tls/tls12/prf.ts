/**
 * The TLS 1.2 key derivation (RFC 5246 §5, §6.3, §7.4.9), with the extended master secret of
 * RFC 7627 (the only master secret we derive) and the exporter of RFC 5705.
 *
 * The PRF is one call to the handshake addon when it is loaded (`tls12Prf`, the last block of
 * ../native/handshake.c: the HMAC key set once, no Buffer per block), checked at load against
 * the published SHA-256 vector and node:crypto; else P_hash from the key schedule's `hmac`
 * (OpenSSL through the addon, node:crypto's createHmac without it).
 */
import { createHmac } from 'node:crypto';
import { hmac } from '../key-schedule.js';
import { nativeHandshake } from '../native/handshake.js';
import type { Tls12SuiteParams } from './suites.js';
import type { HashName } from '../suites.js';

/** The addon's PRF: P_hash(secret, label || seed || seed2)[0, length) into out; hash 1 SHA-256, 2 SHA-384. */
type NativePrf = (hash: 1 | 2, secret: Uint8Array, label: Uint8Array, seed: Uint8Array, seed2: Uint8Array, length: number, out: Uint8Array) => void;
type Hmac = (hash: HashName, key: Uint8Array, data: Uint8Array) => Uint8Array;

const NATIVE_HASH: Record<HashName, 1 | 2> = { sha256: 1, sha384: 2 };
/** The addon's bounds on the output and the secret (handshake.c); beyond them the HMAC-built PRF. */
const NATIVE_MAX_OUTPUT = 1 << 16;
const NATIVE_MAX_SECRET = 1024;
const EMPTY = new Uint8Array(0);

/**
 * P_hash(secret, label || seed || seed2) truncated to `length` bytes (RFC 5246 §5). `seed2`
 * (default empty) saves a concatenation when the seed is two values (the key block's randoms).
 */
export function prf(hash: HashName, secret: Uint8Array, label: string | Uint8Array, seed: Uint8Array, length: number, seed2: Uint8Array = EMPTY): Buffer {
  const labelBytes = typeof label === 'string' ? Buffer.from(label, 'latin1') : label;
  // The addon takes 1..2^16 bytes; anything else (0 for an empty export) goes the HMAC way, as before it.
  if (nativePrf && Number.isInteger(length) && length > 0 && length <= NATIVE_MAX_OUTPUT && secret.length <= NATIVE_MAX_SECRET) {
    // Secrets (the master secret, the key block): a buffer of their own, never Node's shared pool.
    const out = Buffer.allocUnsafeSlow(length);
    nativePrf(NATIVE_HASH[hash], secret, labelBytes, seed, seed2, length, out);
    return out;
  }
  return prfWithHmac(hmac, hash, secret, labelBytes, seed2.length > 0 ? Buffer.concat([seed, seed2]) : seed, length);
}

/** P_hash built from an HMAC function, two HMACs per output block: the fallback and the reference. */
export function prfWithHmac(mac: Hmac, hash: HashName, secret: Uint8Array, label: Uint8Array, seed: Uint8Array, length: number): Buffer {
  const labelSeed = Buffer.concat([label, seed]);
  const out = Buffer.allocUnsafeSlow(length);
  let a = mac(hash, secret, labelSeed); // A(1)
  const aSeed = Buffer.allocUnsafe(a.length + labelSeed.length);
  labelSeed.copy(aSeed, a.length);
  for (let off = 0; off < length; ) {
    aSeed.set(a, 0);
    const block = mac(hash, secret, aSeed);
    const take = Math.min(block.length, length - off);
    out.set(take === block.length ? block : block.subarray(0, take), off);
    off += take;
    if (off < length) a = mac(hash, secret, a);
  }
  return out;
}

/** node:crypto's HMAC, the reference the addon is checked against. */
const nodeHmac: Hmac = (hash, key, data) => createHmac(hash, key).update(data).digest();

/**
 * The addon's PRF if it is there and gives the known answers: the SHA-256 vector published on
 * the IETF TLS list (mail-archive msg03416, used by many stacks' tests) and, for SHA-384 over
 * several blocks with a split seed, node:crypto's HMAC. Undefined: the HMAC-built PRF is used.
 */
function checkedNativePrf(): NativePrf | undefined {
  const native = nativeHandshake() as { readonly tls12Prf?: NativePrf } | undefined;
  const f = native?.tls12Prf;
  if (typeof f !== 'function') return undefined;
  try {
    const hex = (s: string): Buffer => Buffer.from(s, 'hex');
    const label = Buffer.from('test label', 'latin1');
    const out = Buffer.alloc(200);
    f(1, hex('9bbe436ba940f017b17652849a71db35'), label, hex('a0ba9f936cda311827a6f796ffd5198c'), EMPTY, 100, out);
    const expected = 'e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff70187347b66';
    if (out.subarray(0, 100).toString('hex') !== expected) return undefined;
    const secret = Buffer.alloc(48, 0x5c);
    const seed = Buffer.alloc(32, 0x36);
    const seed2 = Buffer.alloc(32, 0xa5);
    f(2, secret, label, seed, seed2, 200, out);
    if (!out.equals(prfWithHmac(nodeHmac, 'sha384', secret, label, Buffer.concat([seed, seed2]), 200))) return undefined;
    return f;
  } catch {
    return undefined;
  }
}

/** The labels of the handshake, as bytes once. */
const EXTENDED_MASTER_SECRET = Buffer.from('extended master secret', 'latin1');
const KEY_EXPANSION = Buffer.from('key expansion', 'latin1');
const CLIENT_FINISHED = Buffer.from('client finished', 'latin1');
const SERVER_FINISHED = Buffer.from('server finished', 'latin1');

/** Checked once at load: everything it uses is defined above. */
const nativePrf = checkedNativePrf();

/** Whether the PRF runs on the addon (diagnostics and tests). */
export const tls12PrfIsNative = nativePrf !== undefined;

/** RFC 7627 §4: master_secret = PRF(pre_master_secret, "extended master secret", session_hash)[0..47]. */
export function extendedMasterSecret(suite: Tls12SuiteParams, preMasterSecret: Uint8Array, sessionHash: Uint8Array): Buffer {
  return prf(suite.hash, preMasterSecret, EXTENDED_MASTER_SECRET, sessionHash, 48);
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
  const block = prf(suite.hash, masterSecret, KEY_EXPANSION, serverRandom, 2 * k + 2 * iv, clientRandom);
  return {
    clientKey: block.subarray(0, k),
    serverKey: block.subarray(k, 2 * k),
    clientIv: block.subarray(2 * k, 2 * k + iv),
    serverIv: block.subarray(2 * k + iv, 2 * k + 2 * iv),
  };
}

/** §7.4.9: verify_data = PRF(master_secret, finished_label, Hash(handshake_messages))[0..11]. */
export function finishedVerifyData12(suite: Tls12SuiteParams, masterSecret: Uint8Array, side: 'client' | 'server', transcriptHash: Uint8Array): Buffer {
  return prf(suite.hash, masterSecret, side === 'client' ? CLIENT_FINISHED : SERVER_FINISHED, transcriptHash, 12);
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
