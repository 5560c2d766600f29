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
 * call per HMAC or HKDF-Expand-Label, ~1 us each), else on node:crypto's createHmac (the
 * fallback: ~1.75x the CPU of the TypeScript SHA-256 it replaced, but no hand-written hashing
 * of secrets; bench/results/handshake.md).
 */
import { createHash, createHmac, timingSafeEqual, type Hash } from 'node:crypto';
import { nativeHandshake, type NativeTranscript } from './native/handshake.js';
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

/** A native call that failed part-way may have left blocks in NATIVE_OUT: zeroed, then rethrown. */
function scrubNativeOut(err: unknown): never {
  NATIVE_OUT.fill(0);
  throw err;
}

/**
 * Where one handshake's secrets (or its transcript digests) are kept: views of a few blocks that
 * belong to that handshake alone, written by the addon in place. A Uint8Array of its own costs
 * ~265 bytes of heap per 32-byte secret, a view of a block ~105, and a full handshake derives
 * ~25 of them: the collector's work per connection is what our server pays over node:tls
 * (docs/architecture.md, "Hot paths"). Never shared between connections (a view's `.buffer`
 * reaches only its own handshake's secrets), and never the home of bytes handed to the
 * application (exporters get their own buffer). Native path only: node:crypto returns a new
 * Buffer per HMAC anyway.
 */
export class SecretBlock {
  private block: Uint8Array = EMPTY;
  private used = 0;
  /** Every block made so far (one for a whole handshake, usually): what `wipeExcept` zeroes. */
  private readonly blocks: Uint8Array[] = [];
  /** `size`: bytes per block, enough for what the owner usually takes (more blocks are made as needed). */
  constructor(private readonly size: number) {}

  /** `length` fresh bytes (zeros until written). */
  take(length: number): Uint8Array {
    if (this.used + length > this.block.length) {
      this.block = new Uint8Array(Math.max(this.size, length));
      this.blocks.push(this.block);
      this.used = 0;
    }
    const out = this.block.subarray(this.used, this.used + length);
    this.used += length;
    return out;
  }

  /**
   * Zeroes every byte of every block except those of `keep` (views this block handed out): a view
   * still in use keeps the whole block reachable, so the secrets no longer needed are erased in
   * place rather than left to the collector.
   */
  wipeExcept(keep: readonly Uint8Array[]): void {
    // Indexed loops: an iterator per loop was ~660 bytes per handshake (bench/handshake-alloc.ts).
    for (let b = 0; b < this.blocks.length; b++) {
      const block = this.blocks[b]!;
      // Zero gap by gap up to the next kept view (a handful: no sorting, nothing allocated).
      let from = 0;
      for (;;) {
        let next: Uint8Array | undefined;
        for (let k = 0; k < keep.length; k++) {
          const v = keep[k]!;
          if (v.length === 0 || v.buffer !== block.buffer || v.byteOffset - block.byteOffset < from) continue;
          if (next === undefined || v.byteOffset < next.byteOffset) next = v;
        }
        if (next === undefined) break;
        const at = next.byteOffset - block.byteOffset;
        block.fill(0, from, at);
        from = at + next.length;
      }
      block.fill(0, from);
    }
  }
}

/** A native call that failed part-way may have left blocks in `out`: zeroed, then rethrown. */
function scrub(out: Uint8Array, err: unknown): never {
  out.fill(0);
  throw err;
}

// --- HMAC and HKDF (RFC 2104, RFC 5869) -------------------------------------------------------------

const HASH_LENGTH: Record<HashName, number> = { sha256: 32, sha384: 48 };
const EMPTY = new Uint8Array(0);

/** HMAC(key, data); with `into`, natively computed there. */
export function hmac(hash: HashName, key: Uint8Array, data: Uint8Array, into?: SecretBlock): Uint8Array {
  return truncatedHmac(hash, key, data, HASH_LENGTH[hash], into);
}

/** The first `length` bytes of HMAC(key, data). */
function truncatedHmac(hash: HashName, key: Uint8Array, data: Uint8Array, length: number, into?: SecretBlock): Uint8Array {
  if (native && into) {
    const out = into.take(length);
    try {
      native.hmac(NATIVE_HASH[hash], key, data, length, out);
    } catch (err) {
      scrub(out, err);
    }
    return out;
  }
  if (native) {
    try {
      native.hmac(NATIVE_HASH[hash], key, data, length, NATIVE_OUT);
    } catch (err) {
      scrubNativeOut(err);
    }
    return takeNativeOut(length);
  }
  const mac = createHmac(hash, key).update(data).digest();
  return mac.length === length ? mac : mac.subarray(0, length);
}

export function hkdfExtract(hash: HashName, salt: Uint8Array, ikm: Uint8Array, into?: SecretBlock): Uint8Array {
  return hmac(hash, salt, ikm, into);
}

export function hkdfExpand(hash: HashName, prk: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  if (native) {
    try {
      native.hkdfExpand(NATIVE_HASH[hash], prk, info, length, NATIVE_OUT);
    } catch (err) {
      scrubNativeOut(err);
    }
    return takeNativeOut(length);
  }
  const hashLength = HASH_LENGTH[hash];
  const out = new Uint8Array(Math.ceil(length / hashLength) * hashLength);
  // T(i) = HMAC(PRK, T(i-1) || info || i), T(0) empty.
  let prev: Uint8Array = new Uint8Array(0);
  for (let i = 0, off = 0; off < length; i++, off += hashLength) {
    prev = createHmac(hash, prk)
      .update(prev)
      .update(info)
      .update(Uint8Array.of(i + 1))
      .digest();
    out.set(prev, off);
  }
  return out.subarray(0, length);
}

const LABEL_PREFIX = Buffer.from('tls13 ', 'latin1');
const labelCache = new Map<string, Buffer>();

/** HKDF-Expand-Label(Secret, Label, Context, Length) (§7.1); with `into`, natively computed there. */
export function hkdfExpandLabel(
  hash: HashName,
  secret: Uint8Array,
  label: string,
  context: Uint8Array,
  length: number,
  into?: SecretBlock,
): Uint8Array {
  const l = fullLabel(label);
  if (native && into) {
    const out = into.take(length);
    try {
      native.hkdfExpandLabel(NATIVE_HASH[hash], secret, l, context, length, out);
    } catch (err) {
      scrub(out, err);
    }
    return out;
  }
  if (native) {
    try {
      native.hkdfExpandLabel(NATIVE_HASH[hash], secret, l, context, length, NATIVE_OUT);
    } catch (err) {
      scrubNativeOut(err);
    }
    return takeNativeOut(length);
  }
  // HkdfLabel: uint16 length, opaque label<7..255>, opaque context<0..255>.
  const info = new Uint8Array(2 + 1 + l.length + 1 + context.length);
  info[0] = length >>> 8;
  info[1] = length & 0xff;
  info[2] = l.length;
  info.set(l, 3);
  info[3 + l.length] = context.length;
  info.set(context, 4 + l.length);
  return hkdfExpand(hash, secret, info, length);
}

/**
 * Two HKDF-Expand-Labels of one secret and one context (a side's key and IV; the client's and the
 * server's traffic secrets). On the addon one call, the HMAC keyed with the secret once: ~0.5 us
 * less than two calls (bench/results/resumption.md); with `into`, written there.
 */
export function hkdfExpandLabelPair(
  hash: HashName,
  secret: Uint8Array,
  labels: readonly [string, string],
  context: Uint8Array,
  lengths: readonly [number, number],
  into?: SecretBlock,
): [Uint8Array, Uint8Array] {
  if (!native) return [hkdfExpandLabel(hash, secret, labels[0], context, lengths[0]), hkdfExpandLabel(hash, secret, labels[1], context, lengths[1])];
  const first = into ? into.take(lengths[0]) : new Uint8Array(lengths[0]);
  const second = into ? into.take(lengths[1]) : new Uint8Array(lengths[1]);
  try {
    native.hkdfExpandLabelPair(NATIVE_HASH[hash], secret, fullLabel(labels[0]), fullLabel(labels[1]), context, lengths[0], lengths[1], first, second);
  } catch (err) {
    first.fill(0);
    scrub(second, err);
  }
  return [first, second];
}

/**
 * "tls13 " + label, as bytes: at most 255 (HkdfLabel's label<7..255>), refused above on both the
 * native and the node:crypto path. Cached: labels are a handful of constants, plus the
 * application's exporter labels (the cache stops growing at 64).
 */
function fullLabel(label: string): Buffer {
  let l = labelCache.get(label);
  if (!l) {
    l = Buffer.concat([LABEL_PREFIX, Buffer.from(label, 'latin1')]);
    if (l.length > 255) throw new RangeError(`HKDF label "tls13 ${label.slice(0, 40)}…" is ${l.length} bytes; at most 255 (RFC 8446 §7.1)`);
    if (labelCache.size < 64) labelCache.set(label, l);
  }
  return l;
}

/** Derive-Secret(Secret, Label, Messages) with the transcript hash already computed. */
export function deriveSecret(hash: HashName, secret: Uint8Array, label: string, transcriptHash: Uint8Array, into?: SecretBlock): Uint8Array {
  return hkdfExpandLabel(hash, secret, label, transcriptHash, transcriptHash.length, into);
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

/** HashLen zeros, as an input only (HKDF salt or IKM): shared, nothing writes to it. */
const ZEROS: Record<number, Uint8Array> = { 32: new Uint8Array(32), 48: new Uint8Array(48) };
function zeros(n: number): Uint8Array {
  return ZEROS[n] ?? new Uint8Array(n);
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

/**
 * Early Secret = HKDF-Extract(0, PSK or 0^HashLen). `into`: where this handshake's secrets are
 * kept (SecretBlock), passed on to the later stages; without it each secret is its own buffer.
 */
export class EarlySecret {
  readonly secret: Uint8Array;
  private readonly derivedSalt: Uint8Array | undefined;
  constructor(
    readonly suite: SuiteParams,
    psk?: Uint8Array,
    private readonly into?: SecretBlock,
  ) {
    if (psk) {
      this.secret = hkdfExtract(suite.hash, zeros(suite.hashLength), psk, into);
    } else {
      const c = noPskEarlySecret(suite);
      this.secret = c.secret;
      this.derivedSalt = c.derived;
    }
  }

  /** binder_key for a resumption PSK ("res binder") or an external one ("ext binder"). */
  binderKey(kind: 'resumption' | 'external'): Uint8Array {
    const label = kind === 'resumption' ? 'res binder' : 'ext binder';
    return deriveSecret(this.suite.hash, this.secret, label, emptyHash(this.suite.hash), this.into);
  }

  clientEarlyTrafficSecret(transcriptHash: Uint8Array): Uint8Array {
    return deriveSecret(this.suite.hash, this.secret, 'c e traffic', transcriptHash, this.into);
  }

  earlyExporterMasterSecret(transcriptHash: Uint8Array): Uint8Array {
    return deriveSecret(this.suite.hash, this.secret, 'e exp master', transcriptHash, this.into);
  }

  /** Moves to the Handshake stage with the (EC)DHE shared secret (all zeros for psk_ke). */
  handshake(sharedSecret: Uint8Array | undefined): HandshakeSecret {
    const { hash, hashLength } = this.suite;
    const salt = this.derivedSalt ?? deriveSecret(hash, this.secret, 'derived', emptyHash(hash), this.into);
    const secret = hkdfExtract(hash, salt, sharedSecret ?? zeros(hashLength), this.into);
    // A PSK's "derived" salt is used once; the no-PSK one is a shared constant.
    if (salt !== this.derivedSalt) salt.fill(0);
    return new HandshakeSecret(this.suite, secret, this.into);
  }
}

export class HandshakeSecret {
  constructor(
    readonly suite: SuiteParams,
    readonly secret: Uint8Array,
    private readonly into?: SecretBlock,
  ) {}

  /** Transcript: ClientHello...ServerHello. */
  clientHandshakeTrafficSecret(transcriptHash: Uint8Array): Uint8Array {
    return deriveSecret(this.suite.hash, this.secret, 'c hs traffic', transcriptHash, this.into);
  }

  serverHandshakeTrafficSecret(transcriptHash: Uint8Array): Uint8Array {
    return deriveSecret(this.suite.hash, this.secret, 's hs traffic', transcriptHash, this.into);
  }

  /** Both handshake traffic secrets, client's first, in one derivation (hkdfExpandLabelPair). */
  handshakeTrafficSecrets(transcriptHash: Uint8Array): [Uint8Array, Uint8Array] {
    const n = transcriptHash.length;
    return hkdfExpandLabelPair(this.suite.hash, this.secret, HANDSHAKE_TRAFFIC_LABELS, transcriptHash, [n, n], this.into);
  }

  master(): MasterSecret {
    const { hash, hashLength } = this.suite;
    const salt = deriveSecret(hash, this.secret, 'derived', emptyHash(hash), this.into);
    const secret = hkdfExtract(hash, salt, zeros(hashLength), this.into);
    salt.fill(0);
    return new MasterSecret(this.suite, secret, this.into);
  }
}

export class MasterSecret {
  constructor(
    readonly suite: SuiteParams,
    readonly secret: Uint8Array,
    private readonly into?: SecretBlock,
  ) {}

  /** Transcript: ClientHello...server Finished. */
  clientApplicationTrafficSecret(transcriptHash: Uint8Array): Uint8Array {
    return deriveSecret(this.suite.hash, this.secret, 'c ap traffic', transcriptHash, this.into);
  }

  serverApplicationTrafficSecret(transcriptHash: Uint8Array): Uint8Array {
    return deriveSecret(this.suite.hash, this.secret, 's ap traffic', transcriptHash, this.into);
  }

  /** Both application traffic secrets, client's first, in one derivation (hkdfExpandLabelPair). */
  applicationTrafficSecrets(transcriptHash: Uint8Array): [Uint8Array, Uint8Array] {
    const n = transcriptHash.length;
    return hkdfExpandLabelPair(this.suite.hash, this.secret, APPLICATION_TRAFFIC_LABELS, transcriptHash, [n, n], this.into);
  }

  exporterMasterSecret(transcriptHash: Uint8Array): Uint8Array {
    return deriveSecret(this.suite.hash, this.secret, 'exp master', transcriptHash, this.into);
  }

  /** Transcript: ClientHello...client Finished. */
  resumptionMasterSecret(transcriptHash: Uint8Array): Uint8Array {
    return deriveSecret(this.suite.hash, this.secret, 'res master', transcriptHash, this.into);
  }
}

// --- Derived values -----------------------------------------------------------------------------

export interface TrafficKeys {
  readonly key: Uint8Array;
  readonly iv: Uint8Array;
}

const HANDSHAKE_TRAFFIC_LABELS = ['c hs traffic', 's hs traffic'] as const;
const APPLICATION_TRAFFIC_LABELS = ['c ap traffic', 's ap traffic'] as const;
const TRAFFIC_KEY_LABELS = ['key', 'iv'] as const;

/** [sender]_write_key and [sender]_write_iv from a traffic secret (§7.3), in one derivation. */
export function trafficKeys(suite: SuiteParams, secret: Uint8Array): TrafficKeys {
  const [key, iv] = hkdfExpandLabelPair(suite.hash, secret, TRAFFIC_KEY_LABELS, EMPTY, [suite.keyLength, suite.ivLength]);
  return { key, iv };
}

/** application_traffic_secret_N+1 (§7.2). */
export function nextTrafficSecret(suite: SuiteParams, secret: Uint8Array): Uint8Array {
  return hkdfExpandLabel(suite.hash, secret, 'traffic upd', EMPTY, suite.hashLength);
}

/** verify_data = HMAC(finished_key, transcript hash) (§4.4.4); also PSK binders. The finished key serves this one HMAC and is zeroed after it. */
export function finishedVerifyData(suite: SuiteParams, baseKey: Uint8Array, transcriptHash: Uint8Array, into?: SecretBlock): Uint8Array {
  const finishedKey = hkdfExpandLabel(suite.hash, baseKey, 'finished', EMPTY, suite.hashLength, into);
  const verifyData = hmac(suite.hash, finishedKey, transcriptHash, into);
  finishedKey.fill(0);
  return verifyData;
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
  // HKDF-Expand gives at most 255 blocks (RFC 5869 §2.3); HkdfLabel's length is a uint16.
  if (!Number.isInteger(length) || length < 0 || length > 255 * suite.hashLength) {
    throw new RangeError(`exporter length ${length} is not an integer from 0 to ${255 * suite.hashLength} (255 times the hash length)`);
  }
  if (length === 0) return new Uint8Array(0);
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

/**
 * On the native addon: one EVP_MD_CTX, copied into a scratch context for each digest. Digests
 * are written into this transcript's own SecretBlock (a server takes five or six per handshake).
 */
class NativeRunningHash implements RunningHash {
  private readonly transcript: NativeTranscript;
  private readonly digests: SecretBlock;
  private readonly length: number;
  constructor(hash: HashName) {
    this.transcript = native!.transcriptCreate(NATIVE_HASH[hash]);
    this.length = HASH_LENGTH[hash];
    this.digests = new SecretBlock(DIGESTS_PER_BLOCK * this.length);
  }
  update(data: Uint8Array): void {
    native!.transcriptUpdate(this.transcript, data);
  }
  digest(extra: Uint8Array = EMPTY): Uint8Array {
    const out = this.digests.take(this.length);
    native!.transcriptDigest(this.transcript, extra, out);
    return out;
  }
}
/** A full server handshake takes 5 digests, a client's 4 to 6. */
const DIGESTS_PER_BLOCK = 6;

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
 * (node:crypto's Hash costs a new object per intermediate digest).
 */
export class Transcript {
  private hash: RunningHash | undefined;
  private hashName: HashName | undefined;
  /** Messages added before `start` (the client's first ClientHello). */
  private pending: Uint8Array[] | undefined;
  /** The digest of everything added so far, once asked for (until the next `add`). */
  private snapshot: Uint8Array | undefined;

  start(hash: HashName): void {
    if (this.hash) return;
    this.hashName = hash;
    this.hash = runningHash(hash);
    if (this.pending) for (const m of this.pending) this.hash.update(m);
    this.pending = undefined;
  }

  get started(): boolean {
    return this.hash !== undefined;
  }

  /** Adds a complete handshake message (header included). */
  add(message: Uint8Array): void {
    this.snapshot = undefined;
    if (this.hash) this.hash.update(message);
    else (this.pending ??= []).push(message);
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
