/**
 * The TLS 1.3 key schedule (RFC 8446 §7.1), one class per stage so that only the derivations
 * the RFC allows at a point can be made there:
 *
 *            PSK or 0 -> EarlySecret --(EC)DHE--> HandshakeSecret --0--> MasterSecret
 *
 * plus HKDF-Expand-Label, traffic keys (§7.3), Finished (§4.4.4), KeyUpdate (§7.2), resumption
 * PSKs (§4.6.1), binders (§4.2.11.2) and exporters (§7.5).
 *
 * HMAC and HKDF run on the native addon when it is loaded (./native/handshake.ts: one OpenSSL
 * call per HMAC or HKDF-Expand-Label, ~1 us each), else on TypeScript SHA-256 for SHA-256 suites
 * (./sha256.ts) and node:crypto for SHA-384.
 */
import { createHash, createHmac, hash as oneShotHash, timingSafeEqual, type Hash } from 'node:crypto';
import { nativeHandshake, type NativeTranscript } from './native/handshake.js';
import { HmacSha256 } from './sha256.js';
import type { HashName, SuiteParams } from './suites.js';

const native = nativeHandshake();
const NATIVE_HASH: Record<HashName, 1 | 2> = { sha256: 1, sha384: 2 };
/**
 * Where the addon writes each output (a new Buffer per call from C cost more than the HMAC):
 * copied out at once and zeroed, so no secret stays here between calls.
 */
const NATIVE_OUT = new Uint8Array(255 * 48);
function takeNativeOut(length: number): Uint8Array {
  const out = NATIVE_OUT.slice(0, length);
  NATIVE_OUT.fill(0, 0, length);
  return out;
}

// --- HMAC and HKDF (RFC 2104, RFC 5869) -------------------------------------------------------------

const BLOCK_SIZE: Record<HashName, number> = { sha256: 64, sha384: 128 };
const HASH_LENGTH: Record<HashName, number> = { sha256: 32, sha384: 48 };

/**
 * The most recent HMAC-SHA-256 keys. A secret is usually the key of several HMACs close
 * together (a traffic secret gives key, iv and the finished key; the handshake and master
 * secrets give two or three secrets each), so its padded key blocks are absorbed once. Entries
 * match by identity and then by content, so an array reused with new contents is not confused
 * with its old self. (A WeakMap did the same with more GC work than it saved.)
 *
 * Secrets held here: the last 8 HMAC-SHA-256 keys (traffic and stage secrets), as a reference, a
 * copy and the absorbed key blocks. An evicted entry is wiped, and the whole cache is wiped once a
 * second passes without a lookup, so an idle process keeps no secret here; under load entries
 * are replaced within a few handshakes.
 */
const KEY_CACHE_SIZE = 8;
const KEY_CACHE_IDLE_CLEAR_MS = 1000;
const cachedKeys: (Uint8Array | undefined)[] = new Array<Uint8Array | undefined>(KEY_CACHE_SIZE).fill(undefined);
/** The contents of each cached key when it was cached (keys over 64 bytes are not cached). */
const cachedCopies: Uint8Array[] = Array.from({ length: KEY_CACHE_SIZE }, () => new Uint8Array(64));
const cachedLengths = new Int32Array(KEY_CACHE_SIZE);
const cachedHmacs: (HmacSha256 | undefined)[] = new Array<HmacSha256 | undefined>(KEY_CACHE_SIZE).fill(undefined);
let nextCacheSlot = 0;
let lookupsSinceTick = 0;
let idleClear: ReturnType<typeof setInterval> | undefined;

function forgetCacheSlot(slot: number): void {
  cachedHmacs[slot]?.wipe();
  cachedHmacs[slot] = undefined;
  cachedKeys[slot] = undefined;
  cachedCopies[slot]!.fill(0);
  cachedLengths[slot] = 0;
}

/** Wipes every cached key (also called by the idle timer). */
export function clearHmacKeyCache(): void {
  for (let i = 0; i < KEY_CACHE_SIZE; i++) forgetCacheSlot(i);
}

/** How many secrets the HMAC key cache holds now (tests: an idle process holds none). */
export function cachedHmacKeyCount(): number {
  return cachedHmacs.reduce((n, h) => n + (h ? 1 : 0), 0);
}

function armIdleClear(): void {
  if (idleClear) return;
  idleClear = setInterval(() => {
    if (lookupsSinceTick === 0) {
      clearHmacKeyCache();
      clearInterval(idleClear);
      idleClear = undefined;
    }
    lookupsSinceTick = 0;
  }, KEY_CACHE_IDLE_CLEAR_MS);
  idleClear.unref();
}

function hmacSha256Key(key: Uint8Array): HmacSha256 {
  lookupsSinceTick++;
  for (let i = 0; i < KEY_CACHE_SIZE; i++) {
    if (cachedKeys[i] === key && sameBytes(cachedCopies[i]!, cachedLengths[i]!, key)) return cachedHmacs[i]!;
  }
  const k = new HmacSha256(key);
  if (key.length <= 64) {
    const slot = nextCacheSlot;
    nextCacheSlot = (slot + 1) % KEY_CACHE_SIZE;
    forgetCacheSlot(slot);
    armIdleClear();
    cachedKeys[slot] = key;
    const copy = cachedCopies[slot]!;
    for (let i = 0; i < key.length; i++) copy[i] = key[i]!;
    cachedLengths[slot] = key.length;
    cachedHmacs[slot] = k;
  }
  return k;
}

/** Whether the first `length` bytes of `copy` are exactly `key`. */
function sameBytes(copy: Uint8Array, length: number, key: Uint8Array): boolean {
  if (length !== key.length) return false;
  for (let i = 0; i < length; i++) if (copy[i] !== key[i]) return false;
  return true;
}

/**
 * HMAC(key, data). SHA-256 runs in TypeScript (./sha256.ts: the inputs are one block, where a
 * native call costs more than the hashing). SHA-384 uses two one-shot `crypto.hash` calls,
 * about half the cost of createHmac for short inputs (keys longer than a block use createHmac).
 */
export function hmac(hash: HashName, key: Uint8Array, data: Uint8Array): Uint8Array {
  return truncatedHmac(hash, key, data, HASH_LENGTH[hash]);
}

/** The first `length` bytes of HMAC(key, data). */
function truncatedHmac(hash: HashName, key: Uint8Array, data: Uint8Array, length: number): Uint8Array {
  if (native) {
    native.hmac(NATIVE_HASH[hash], key, data, length, NATIVE_OUT);
    return takeNativeOut(length);
  }
  if (hash === 'sha256') return hmacSha256Key(key).mac(data, length);
  const block = BLOCK_SIZE[hash];
  let mac: Uint8Array;
  if (key.length > block) {
    mac = createHmac(hash, key).update(data).digest();
  } else {
    const inner = Buffer.allocUnsafe(block + data.length);
    const outer = Buffer.allocUnsafe(block + HASH_LENGTH[hash]);
    for (let i = 0; i < block; i++) {
      const k = i < key.length ? key[i]! : 0;
      inner[i] = k ^ 0x36;
      outer[i] = k ^ 0x5c;
    }
    inner.set(data, block);
    outer.set(oneShotHash(hash, inner, 'buffer'), block);
    mac = oneShotHash(hash, outer, 'buffer');
  }
  return mac.length === length ? mac : mac.subarray(0, length);
}

export function hkdfExtract(hash: HashName, salt: Uint8Array, ikm: Uint8Array): Uint8Array {
  return hmac(hash, salt, ikm);
}

export function hkdfExpand(hash: HashName, prk: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  if (native) {
    native.hkdfExpand(NATIVE_HASH[hash], prk, info, length, NATIVE_OUT);
    return takeNativeOut(length);
  }
  const hashLength = HASH_LENGTH[hash];
  if (length <= hashLength) {
    // One block, the only case TLS 1.3 itself needs: T(1) = HMAC(PRK, info || 0x01).
    const input = new Uint8Array(info.length + 1);
    input.set(info, 0);
    input[info.length] = 1;
    return truncatedHmac(hash, prk, input, length);
  }
  const out = new Uint8Array(Math.ceil(length / hashLength) * hashLength);
  let prev: Uint8Array = new Uint8Array(0);
  for (let i = 0, off = 0; off < length; i++, off += hashLength) {
    const input = new Uint8Array(prev.length + info.length + 1);
    input.set(prev, 0);
    input.set(info, prev.length);
    input[input.length - 1] = i + 1;
    prev = hmac(hash, prk, input);
    out.set(prev, off);
  }
  return out.subarray(0, length);
}

const LABEL_PREFIX = Buffer.from('tls13 ', 'latin1');
const labelCache = new Map<string, Buffer>();

/** HKDF-Expand-Label(Secret, Label, Context, Length) (§7.1). */
export function hkdfExpandLabel(
  hash: HashName,
  secret: Uint8Array,
  label: string,
  context: Uint8Array,
  length: number,
): Uint8Array {
  if (native) {
    native.hkdfExpandLabel(NATIVE_HASH[hash], secret, fullLabel(label), context, length, NATIVE_OUT);
    return takeNativeOut(length);
  }
  if (context.length === 0 && length <= HASH_LENGTH[hash]) {
    return truncatedHmac(hash, secret, fixedInput(label, length), length);
  }
  const l = fullLabel(label);
  const infoLength = 2 + 1 + l.length + 1 + context.length;
  if (length > HASH_LENGTH[hash]) {
    const info = new Uint8Array(infoLength);
    writeLabel(info, l, context, length);
    return hkdfExpand(hash, secret, info, length);
  }
  // HkdfLabel || 0x01 built in place: the single HMAC input of a one-block expansion.
  const input = new Uint8Array(infoLength + 1);
  writeLabel(input, l, context, length);
  input[infoLength] = 1;
  return truncatedHmac(hash, secret, input, length);
}

/** "tls13 " + label, as bytes (cached: labels are a handful of constants, plus exporters'). */
function fullLabel(label: string): Buffer {
  let l = labelCache.get(label);
  if (!l) {
    l = Buffer.concat([LABEL_PREFIX, Buffer.from(label, 'latin1')]);
    labelCache.set(label, l);
  }
  return l;
}

function writeLabel(out: Uint8Array, label: Uint8Array, context: Uint8Array, length: number): void {
  out[0] = length >>> 8;
  out[1] = length & 0xff;
  out[2] = label.length;
  out.set(label, 3);
  out[3 + label.length] = context.length;
  out.set(context, 4 + label.length);
}

/** By label, then by output length (no key string built per call). */
const fixedInputs = new Map<string, Map<number, Uint8Array>>();
/** HkdfLabel || 0x01 of an empty-context expansion ("key", "iv", "finished", ...) never changes. */
function fixedInput(label: string, length: number): Uint8Array {
  let byLength = fixedInputs.get(label);
  if (!byLength) {
    byLength = new Map();
    fixedInputs.set(label, byLength);
  }
  let input = byLength.get(length);
  if (!input) {
    const l = Buffer.concat([LABEL_PREFIX, Buffer.from(label, 'latin1')]);
    input = Uint8Array.from([length >>> 8, length & 0xff, l.length, ...l, 0, 1]);
    byLength.set(length, input);
  }
  return input;
}

/** Derive-Secret(Secret, Label, Messages) with the transcript hash already computed. */
export function deriveSecret(hash: HashName, secret: Uint8Array, label: string, transcriptHash: Uint8Array): Uint8Array {
  return hkdfExpandLabel(hash, secret, label, transcriptHash, transcriptHash.length);
}

const emptyHashes = new Map<HashName, Uint8Array>();
export function emptyHash(hash: HashName): Uint8Array {
  let h = emptyHashes.get(hash);
  if (!h) {
    h = createHash(hash).digest();
    emptyHashes.set(hash, h);
  }
  return h;
}

function zeros(n: number): Uint8Array {
  return new Uint8Array(n);
}

// --- Stages -----------------------------------------------------------------------------------

/**
 * Without a PSK the Early Secret and its "derived" salt are constants per hash: computed once.
 */
const noPskEarly = new Map<HashName, { secret: Uint8Array; derived: Uint8Array }>();
function noPskEarlySecret(suite: SuiteParams): { secret: Uint8Array; derived: Uint8Array } {
  let v = noPskEarly.get(suite.hash);
  if (!v) {
    const secret = hkdfExtract(suite.hash, zeros(suite.hashLength), zeros(suite.hashLength));
    v = { secret, derived: deriveSecret(suite.hash, secret, 'derived', emptyHash(suite.hash)) };
    noPskEarly.set(suite.hash, v);
  }
  return v;
}

/** Early Secret = HKDF-Extract(0, PSK or 0^HashLen). */
export class EarlySecret {
  readonly secret: Uint8Array;
  private readonly derivedSalt: Uint8Array | undefined;
  constructor(
    readonly suite: SuiteParams,
    psk?: Uint8Array,
  ) {
    if (psk) {
      this.secret = hkdfExtract(suite.hash, zeros(suite.hashLength), psk);
    } else {
      const c = noPskEarlySecret(suite);
      this.secret = c.secret;
      this.derivedSalt = c.derived;
    }
  }

  /** binder_key for a resumption PSK ("res binder") or an external one ("ext binder"). */
  binderKey(kind: 'resumption' | 'external'): Uint8Array {
    const label = kind === 'resumption' ? 'res binder' : 'ext binder';
    return deriveSecret(this.suite.hash, this.secret, label, emptyHash(this.suite.hash));
  }

  clientEarlyTrafficSecret(transcriptHash: Uint8Array): Uint8Array {
    return deriveSecret(this.suite.hash, this.secret, 'c e traffic', transcriptHash);
  }

  earlyExporterMasterSecret(transcriptHash: Uint8Array): Uint8Array {
    return deriveSecret(this.suite.hash, this.secret, 'e exp master', transcriptHash);
  }

  /** Moves to the Handshake stage with the (EC)DHE shared secret (all zeros for psk_ke). */
  handshake(sharedSecret: Uint8Array | undefined): HandshakeSecret {
    const { hash, hashLength } = this.suite;
    const salt = this.derivedSalt ?? deriveSecret(hash, this.secret, 'derived', emptyHash(hash));
    return new HandshakeSecret(this.suite, hkdfExtract(hash, salt, sharedSecret ?? zeros(hashLength)));
  }
}

export class HandshakeSecret {
  constructor(
    readonly suite: SuiteParams,
    readonly secret: Uint8Array,
  ) {}

  /** Transcript: ClientHello...ServerHello. */
  clientHandshakeTrafficSecret(transcriptHash: Uint8Array): Uint8Array {
    return deriveSecret(this.suite.hash, this.secret, 'c hs traffic', transcriptHash);
  }

  serverHandshakeTrafficSecret(transcriptHash: Uint8Array): Uint8Array {
    return deriveSecret(this.suite.hash, this.secret, 's hs traffic', transcriptHash);
  }

  master(): MasterSecret {
    const { hash, hashLength } = this.suite;
    const salt = deriveSecret(hash, this.secret, 'derived', emptyHash(hash));
    return new MasterSecret(this.suite, hkdfExtract(hash, salt, zeros(hashLength)));
  }
}

export class MasterSecret {
  constructor(
    readonly suite: SuiteParams,
    readonly secret: Uint8Array,
  ) {}

  /** Transcript: ClientHello...server Finished. */
  clientApplicationTrafficSecret(transcriptHash: Uint8Array): Uint8Array {
    return deriveSecret(this.suite.hash, this.secret, 'c ap traffic', transcriptHash);
  }

  serverApplicationTrafficSecret(transcriptHash: Uint8Array): Uint8Array {
    return deriveSecret(this.suite.hash, this.secret, 's ap traffic', transcriptHash);
  }

  exporterMasterSecret(transcriptHash: Uint8Array): Uint8Array {
    return deriveSecret(this.suite.hash, this.secret, 'exp master', transcriptHash);
  }

  /** Transcript: ClientHello...client Finished. */
  resumptionMasterSecret(transcriptHash: Uint8Array): Uint8Array {
    return deriveSecret(this.suite.hash, this.secret, 'res master', transcriptHash);
  }
}

// --- Derived values -----------------------------------------------------------------------------

export interface TrafficKeys {
  readonly key: Uint8Array;
  readonly iv: Uint8Array;
}

/** [sender]_write_key and [sender]_write_iv from a traffic secret (§7.3). */
export function trafficKeys(suite: SuiteParams, secret: Uint8Array): TrafficKeys {
  return {
    key: hkdfExpandLabel(suite.hash, secret, 'key', EMPTY, suite.keyLength),
    iv: hkdfExpandLabel(suite.hash, secret, 'iv', EMPTY, suite.ivLength),
  };
}
const EMPTY = new Uint8Array(0);

/** application_traffic_secret_N+1 (§7.2). */
export function nextTrafficSecret(suite: SuiteParams, secret: Uint8Array): Uint8Array {
  return hkdfExpandLabel(suite.hash, secret, 'traffic upd', EMPTY, suite.hashLength);
}

/** verify_data = HMAC(finished_key, transcript hash) (§4.4.4); also PSK binders. */
export function finishedVerifyData(suite: SuiteParams, baseKey: Uint8Array, transcriptHash: Uint8Array): Uint8Array {
  const finishedKey = hkdfExpandLabel(suite.hash, baseKey, 'finished', EMPTY, suite.hashLength);
  return hmac(suite.hash, finishedKey, transcriptHash);
}

/** Constant-time comparison of a received Finished/binder with the expected one. */
export function verifyDataEqual(expected: Uint8Array, received: Uint8Array): boolean {
  return expected.length === received.length && timingSafeEqual(expected, received);
}

/** The PSK of a ticket: HKDF-Expand-Label(resumption_master_secret, "resumption", nonce, Hash.length). */
export function resumptionPsk(suite: SuiteParams, resumptionMasterSecret: Uint8Array, nonce: Uint8Array): Uint8Array {
  return hkdfExpandLabel(suite.hash, resumptionMasterSecret, 'resumption', nonce, suite.hashLength);
}

/** TLS-Exporter(label, context_value, key_length) (§7.5). */
export function exportKeyingMaterial(
  suite: SuiteParams,
  exporterMasterSecret: Uint8Array,
  label: string,
  context: Uint8Array,
  length: number,
): Uint8Array {
  const derived = deriveSecret(suite.hash, exporterMasterSecret, label, emptyHash(suite.hash));
  const contextHash = createHash(suite.hash).update(context).digest();
  return hkdfExpandLabel(suite.hash, derived, 'exporter', contextHash, length);
}

// --- Transcript hash (§4.4.1) ---------------------------------------------------------------------

/** A running hash that can give the digest so far (plus optional extra bytes) and continue. */
interface RunningHash {
  update(data: Uint8Array): void;
  digest(extra?: Uint8Array): Uint8Array;
}

/** On the native addon: one EVP_MD_CTX, copied into a scratch context for each digest. */
class NativeRunningHash implements RunningHash {
  private readonly transcript: NativeTranscript;
  constructor(hash: HashName) {
    this.transcript = native!.transcriptCreate(NATIVE_HASH[hash]);
  }
  update(data: Uint8Array): void {
    native!.transcriptUpdate(this.transcript, data);
  }
  digest(extra: Uint8Array = EMPTY): Uint8Array {
    return NATIVE_OUT.slice(0, native!.transcriptDigest(this.transcript, extra, NATIVE_OUT));
  }
}

class NodeRunningHash implements RunningHash {
  private readonly hash: Hash;
  constructor(name: HashName) {
    this.hash = createHash(name);
  }
  update(data: Uint8Array): void {
    this.hash.update(data);
  }
  digest(extra?: Uint8Array): Uint8Array {
    const copy = this.hash.copy();
    if (extra) copy.update(extra);
    return copy.digest();
  }
}

function runningHash(name: HashName): RunningHash {
  return native ? new NativeRunningHash(name) : new NodeRunningHash(name);
}

/**
 * The running transcript hash. Messages may be added before the hash function is known (the
 * client's ClientHello); they are buffered until `start(hash)`. After a HelloRetryRequest the
 * first ClientHello is replaced by the synthetic message_hash message. A digest is taken once
 * per point (the server asks twice after its Finished). Native when the addon is loaded
 * (node:crypto's Hash costs a new object per intermediate digest); hashing the transcript in
 * TypeScript (./sha256.ts) measured no faster than node:crypto.
 */
export class Transcript {
  private hash: RunningHash | undefined;
  private hashName: HashName | undefined;
  private pending: Uint8Array[] = [];
  /** The digest of everything added so far, once asked for (until the next `add`). */
  private snapshot: Uint8Array | undefined;

  start(hash: HashName): void {
    if (this.hash) return;
    this.hashName = hash;
    this.hash = runningHash(hash);
    for (const m of this.pending) this.hash.update(m);
    this.pending = [];
  }

  get started(): boolean {
    return this.hash !== undefined;
  }

  /** Adds a complete handshake message (header included). */
  add(message: Uint8Array): void {
    this.snapshot = undefined;
    if (this.hash) this.hash.update(message);
    else this.pending.push(message);
  }

  /** Hash of everything added so far (the running hash continues). Do not modify the result. */
  current(): Uint8Array {
    if (!this.hash) throw new Error('transcript hash not started');
    return (this.snapshot ??= this.hash.digest());
  }

  /** Hash of everything so far plus `extra` (e.g. a truncated ClientHello for binders). */
  currentWith(extra: Uint8Array): Uint8Array {
    if (!this.hash) throw new Error('transcript hash not started');
    return this.hash.digest(extra);
  }

  /**
   * HelloRetryRequest: ClientHello1 is replaced by
   * `message_hash(254) || 00 00 Hash.length || Hash(ClientHello1)` (§4.4.1).
   */
  replaceWithMessageHash(): void {
    if (!this.hash || !this.hashName) throw new Error('transcript hash not started');
    const h = this.hash.digest();
    this.snapshot = undefined;
    this.hash = runningHash(this.hashName);
    this.hash.update(Uint8Array.of(254, 0, 0, h.length));
    this.hash.update(h);
  }
}
