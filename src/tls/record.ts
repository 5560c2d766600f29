/**
 * Record protection (RFC 8446 §5.2–§5.3): AEAD with nonce = iv XOR sequence number, the inner
 * plaintext `content || type || zeros`, and the length limits. One `RecordSealer` or
 * `RecordOpener` per traffic secret and direction. The AEAD is the native addon when it loads
 * (native/aead.ts: one OpenSSL context per direction, records sealed and opened into shared
 * slabs), else node:crypto's synchronous cipher API; both produce the same bytes.
 */
import { createCipheriv, createDecipheriv, type CipherGCMTypes } from 'node:crypto';
import { ContentType, MAX_CIPHERTEXT, MAX_INNER_PLAINTEXT, RECORD_HEADER_LENGTH } from './constants.js';
import { BadRecordMac, InternalError, RecordOverflow, PeerMisbehaved } from './errors.js';
import { trafficKeys } from './key-schedule.js';
import type { SuiteParams } from './suites.js';
import { NATIVE_ALGORITHM, RECORD_SLAB, nativeAead, type NativeAead, type NativeAeadContext } from './native/aead.js';

/**
 * What the record layer needs to protect outgoing records: TLS 1.3's `RecordSealer` below, or
 * TLS 1.2's (`tls12/record.ts`), which differ in nonce, additional data and content type.
 */
export interface RecordProtector {
  readonly suite: SuiteParams;
  /** Records protected so far. */
  readonly sequence: number;
  sealInto(out: Uint8Array[], type: number, content: Uint8Array): number;
}

/** What the record layer needs to open incoming records (TLS 1.3 or TLS 1.2). */
export interface RecordUnprotector {
  /**
   * True for TLS 1.3 (the real type is inside, every protected record says application_data);
   * false for TLS 1.2, where every record after ChangeCipherSpec is protected under its own type.
   */
  readonly hidesContentType: boolean;
  /**
   * `inPlace`: the caller owns `buf` and hands over the record's bytes, so the plaintext may be
   * written over its own ciphertext (an implementation may still open elsewhere).
   */
  openIn(buf: Uint8Array, start: number, end: number, inPlace?: boolean): OpenedRecord;
}

/**
 * The additional data (the record header) handed to the native AEAD, one for every key: sealing
 * and opening are synchronous and the addon reads it only during the call.
 */
const RECORD_AAD = Buffer.alloc(RECORD_HEADER_LENGTH);
const NO_NONCE = Buffer.alloc(0);
const NO_KEY = new Uint8Array(0);

/** Sequence numbers are 64-bit; we stop far below 2^53 (and rekey long before). */
const MAX_SEQUENCE = Number.MAX_SAFE_INTEGER;

abstract class RecordCipher {
  protected seq = 0;
  protected readonly key: Uint8Array;
  /**
   * The IV, overwritten per record in bytes 4..11 by `nextNonce`; bytes 0..3 never change. Only
   * node:crypto's path uses it (the native AEAD keeps the IV in its context): empty there, one
   * Buffer fewer per key (allocation per handshake is what the collector costs us).
   */
  private readonly nonce: Buffer;
  /** IV bytes 8..11 and 4..7 as unsigned 32-bit numbers. */
  private readonly ivLow: number;
  private readonly ivHigh: number;
  protected readonly algorithm: CipherGCMTypes | 'chacha20-poly1305';
  /** The native AEAD and its context for this key and direction; undefined: node:crypto. */
  protected readonly native: NativeAead | undefined;
  protected readonly context: NativeAeadContext | undefined;

  /** @param aead the native AEAD to use, or null for node:crypto; by default the process's choice. */
  constructor(
    readonly suite: SuiteParams,
    secret: Uint8Array,
    encrypt: boolean,
    aead: NativeAead | null | undefined,
  ) {
    const { key, iv } = trafficKeys(suite, secret);
    if (iv.length !== 12) throw new InternalError(`unexpected AEAD IV length ${iv.length}`);
    this.ivLow = ((iv[8]! << 24) | (iv[9]! << 16) | (iv[10]! << 8) | iv[11]!) >>> 0;
    this.ivHigh = ((iv[4]! << 24) | (iv[5]! << 16) | (iv[6]! << 8) | iv[7]!) >>> 0;
    this.algorithm = suite.aead as CipherGCMTypes | 'chacha20-poly1305';
    this.native = aead === undefined ? nativeAead() : (aead ?? undefined);
    this.context = this.native?.create(NATIVE_ALGORITHM[suite.aead], encrypt, key, iv);
    this.nonce = this.native ? NO_NONCE : Buffer.from(iv);
    // The native context holds its own copy of the key (OpenSSL cleanses it when freed).
    if (this.context) key.fill(0);
    this.key = this.context ? NO_KEY : key;
  }

  /** Whether records go through the native AEAD (else node:crypto). */
  get isNative(): boolean {
    return this.native !== undefined;
  }

  /** Records protected under this key so far. */
  get sequence(): number {
    return this.seq;
  }

  /** True once the AEAD usage limit of the suite is reached: time for a KeyUpdate. */
  get nearLimit(): boolean {
    return this.seq >= this.suite.recordLimit;
  }

  /**
   * The per-record nonce (§5.3): the 64-bit sequence number XORed into the low bytes of the IV.
   * Written into one reused buffer: createCipheriv/createDecipheriv copy the IV they are given.
   */
  protected nextNonce(): Buffer {
    const seq = this.nextSequence();
    const nonce = this.nonce;
    const low = seq % 0x100000000;
    const high = (seq - low) / 0x100000000;
    // Plain byte stores: Buffer#writeUInt32BE range-checks its value and offset on every call.
    const l = this.ivLow ^ low;
    const h = this.ivHigh ^ high;
    nonce[4] = h >>> 24;
    nonce[5] = h >>> 16;
    nonce[6] = h >>> 8;
    nonce[7] = h;
    nonce[8] = l >>> 24;
    nonce[9] = l >>> 16;
    nonce[10] = l >>> 8;
    nonce[11] = l;
    return nonce;
  }

  /** Takes the next sequence number (the native AEAD derives the nonce from it itself). */
  protected nextSequence(): number {
    if (this.seq >= MAX_SEQUENCE) throw new InternalError('record sequence number exhausted');
    return this.seq++;
  }
}

/** One-byte inner content types, shared: cipher.update copies its input. */
const TYPE_TRAILERS = new Map<number, Buffer>();
function trailer(type: number, padding: number): Buffer {
  if (padding > 0) {
    const t = Buffer.alloc(1 + padding);
    t[0] = type;
    return t;
  }
  let t = TYPE_TRAILERS.get(type);
  if (!t) {
    t = Buffer.of(type);
    TYPE_TRAILERS.set(type, t);
  }
  return t;
}

/**
 * The inner-plaintext staging buffer, one per process: it is filled and handed to
 * cipher.update (which copies it) within one synchronous call, so no two seals can overlap.
 * One per sealer cost two 16 KiB allocations per handshake.
 */
const STAGING = Buffer.allocUnsafe(MAX_INNER_PLAINTEXT);

export class RecordSealer extends RecordCipher implements RecordProtector {
  constructor(suite: SuiteParams, secret: Uint8Array, aead?: NativeAead | null) {
    super(suite, secret, true, aead);
  }

  /**
   * Protects one record and appends it to `out` as pieces (header, ciphertext, tag): the
   * record layer joins all pending pieces with a single copy. `content` must be at most 2^14
   * bytes; `padding` zero bytes are appended to the inner plaintext. Returns the record size.
   */
  sealInto(out: Uint8Array[], type: number, content: Uint8Array, padding = 0): number {
    const innerLength = content.length + 1 + padding;
    const length = innerLength + this.suite.tagLength;
    if (length > MAX_CIPHERTEXT) throw new InternalError('record too large to seal');
    if (this.native) return this.sealNative(out, type, content, padding, length);
    const header = Buffer.allocUnsafe(RECORD_HEADER_LENGTH);
    header[0] = ContentType.application_data;
    header[1] = 0x03;
    header[2] = 0x03;
    header[3] = length >>> 8;
    header[4] = length & 0xff;
    const cipher = createCipheriv(this.algorithm as CipherGCMTypes, this.key, this.nextNonce(), { authTagLength: 16 });
    cipher.setAAD(header);
    // One update over content || type: a second small update after a large one costs more
    // than copying the content into the reusable staging buffer (measured ~2x on 16 KiB).
    let inner: Uint8Array;
    if (padding === 0) {
      STAGING.set(content, 0);
      STAGING[content.length] = type;
      inner = STAGING.subarray(0, content.length + 1);
    } else {
      inner = Buffer.concat([content, trailer(type, padding)]);
    }
    out.push(header, cipher.update(inner));
    cipher.final();
    out.push(cipher.getAuthTag());
    return RECORD_HEADER_LENGTH + length;
  }

  /** One record, header || ciphertext || tag, sealed into the record slab: one piece, no Buffer of its own. */
  private sealNative(out: Uint8Array[], type: number, content: Uint8Array, padding: number, length: number): number {
    const total = RECORD_HEADER_LENGTH + length;
    const buf = RECORD_SLAB.reserve(total);
    const at = RECORD_SLAB.offset;
    const aad = RECORD_AAD;
    aad[0] = ContentType.application_data;
    aad[1] = 0x03;
    aad[2] = 0x03;
    aad[3] = length >>> 8;
    aad[4] = length & 0xff;
    buf.set(aad, at);
    const seq = this.nextSequence();
    const body = at + RECORD_HEADER_LENGTH;
    if (padding === 0) {
      this.native!.seal(this.context!, seq, aad, content, 0, content.length, type, buf, body);
    } else {
      // Rare (we never pad by default): the inner plaintext is staged in place, then sealed in place.
      buf.set(content, body);
      buf[body + content.length] = type;
      buf.fill(0, body + content.length + 1, body + content.length + 1 + padding);
      this.native!.seal(this.context!, seq, aad, buf, body, content.length + 1 + padding, -1, buf, body);
    }
    RECORD_SLAB.commitTo(out, total);
    return total;
  }

  /** Protects one record into a single buffer: header || ciphertext || tag. */
  seal(type: number, content: Uint8Array, padding = 0): Buffer {
    const pieces: Uint8Array[] = [];
    const n = this.sealInto(pieces, type, content, padding);
    return Buffer.concat(pieces, n);
  }
}

/** An opened record: the real content type and the content (padding removed). */
export interface OpenedRecord {
  readonly type: number;
  readonly content: Buffer;
}

export class RecordOpener extends RecordCipher implements RecordUnprotector {
  readonly hidesContentType = true;

  constructor(suite: SuiteParams, secret: Uint8Array, aead?: NativeAead | null) {
    super(suite, secret, false, aead);
  }

  /**
   * Opens a protected record given its 5-byte header and its payload. Returns the real content
   * type and the content (padding removed). BadRecordMac on authentication failure.
   */
  open(header: Uint8Array, payload: Uint8Array): OpenedRecord {
    const record = new Uint8Array(header.length + payload.length);
    record.set(header, 0);
    record.set(payload, header.length);
    return this.openIn(record, 0, record.length);
  }

  /**
   * Opens the protected record `buf[start..end)` (header included) where it lies: the record
   * layer parses received chunks without slicing out each record first. With `inPlace` (the
   * caller owns `buf`: a received chunk) the native AEAD decrypts over the ciphertext, and the
   * content is a view of `buf`; otherwise it goes to the record slab. node:crypto always returns
   * a Buffer of its own.
   */
  openIn(buf: Uint8Array, start: number, end: number, inPlace = false): OpenedRecord {
    const payloadStart = start + RECORD_HEADER_LENGTH;
    if (end - payloadStart > MAX_CIPHERTEXT) throw new RecordOverflow('ciphertext record over 2^14+256 bytes');
    const tagStart = end - this.suite.tagLength;
    if (tagStart - payloadStart < 1) throw new BadRecordMac('record shorter than its tag');
    const inner = this.native
      ? inPlace
        ? this.openNativeInPlace(buf, start, payloadStart, end)
        : this.openNative(buf, start, payloadStart, end)
      : this.openNodeCrypto(buf, start, payloadStart, tagStart, end);
    if (inner.length > MAX_INNER_PLAINTEXT) throw new RecordOverflow('inner plaintext over 2^14+1 bytes');
    // Strip the zero padding: the content type is the last non-zero byte (§5.4).
    let i = inner.length - 1;
    while (i >= 0 && inner[i] === 0) i--;
    if (i < 0) throw new PeerMisbehaved('AllZeroInnerPlaintext', 'record with all-zero inner plaintext');
    const type = inner[i]!;
    // Only application data stays a view (of the shared slab, or of the received chunk when
    // opened in place: the application consumes it); handshake messages and alerts are copied
    // out, so a kept one (a session ticket, say) pins no slab or chunk.
    if (this.native && type !== ContentType.application_data) return { type, content: Buffer.from(inner.subarray(0, i)) };
    return { type, content: inner.subarray(0, i) };
  }

  /** The inner plaintext, opened into the record slab; unauthenticated bytes are never handed out. */
  private openNative(buf: Uint8Array, start: number, payloadStart: number, end: number): Buffer {
    const aad = RECORD_AAD;
    for (let k = 0; k < RECORD_HEADER_LENGTH; k++) aad[k] = buf[start + k]!;
    const plainLength = end - payloadStart - this.suite.tagLength;
    const out = RECORD_SLAB.reserve(plainLength);
    const seq = this.nextSequence();
    if (!this.native!.open(this.context!, seq, aad, buf, payloadStart, end - payloadStart, out, RECORD_SLAB.offset)) {
      this.seq--; // the record did not count (matters only when skipping rejected early data)
      throw new BadRecordMac('record authentication failed');
    }
    return RECORD_SLAB.commit(plainLength);
  }

  /** The inner plaintext, opened over its ciphertext in `buf`; unauthenticated bytes are never handed out. */
  private openNativeInPlace(buf: Uint8Array, start: number, payloadStart: number, end: number): Buffer {
    const aad = RECORD_AAD;
    for (let k = 0; k < RECORD_HEADER_LENGTH; k++) aad[k] = buf[start + k]!;
    const seq = this.nextSequence();
    if (!this.native!.open(this.context!, seq, aad, buf, payloadStart, end - payloadStart, buf, payloadStart)) {
      this.seq--;
      throw new BadRecordMac('record authentication failed');
    }
    return Buffer.from(buf.buffer, buf.byteOffset + payloadStart, end - this.suite.tagLength - payloadStart);
  }

  private openNodeCrypto(buf: Uint8Array, start: number, payloadStart: number, tagStart: number, end: number): Buffer {
    const decipher = createDecipheriv(this.algorithm as CipherGCMTypes, this.key, this.nextNonce(), { authTagLength: 16 });
    decipher.setAAD(buf.subarray(start, payloadStart));
    decipher.setAuthTag(buf.subarray(tagStart, end));
    const inner = decipher.update(buf.subarray(payloadStart, tagStart));
    try {
      decipher.final();
    } catch {
      this.seq--; // the record did not count (matters only when skipping rejected early data)
      throw new BadRecordMac('record authentication failed');
    }
    return inner;
  }
}
