/**
 * TLS 1.2 AEAD record protection (RFC 5246 §6.2.3.3): additional data is
 * seq_num || type || version || plaintext length, the content type stays in the header.
 *
 * - AES-GCM (RFC 5288 §3): nonce = 4-byte salt from the key block || 8-byte explicit nonce sent
 *   in front of the ciphertext; we send the sequence number as the explicit nonce (unique per key,
 *   as Go and OpenSSL do).
 * - ChaCha20-Poly1305 (RFC 7905 §2): nonce = 12-byte IV XOR the padded sequence number, as in
 *   TLS 1.3; nothing explicit.
 *
 * The AEAD is the native addon when it loads, else node:crypto (as in ../record.ts). The native
 * context gets the IV as salt || zeros for AES-GCM, so that its nonce, IV XOR the 8-byte value it
 * is given, is salt || explicit nonce; for ChaCha20-Poly1305 it is the IV and the sequence number.
 */
import { createCipheriv, createDecipheriv, type CipherGCMTypes } from 'node:crypto';
import { ContentType, MAX_PLAINTEXT, RECORD_HEADER_LENGTH } from '../constants.js';
import { BadRecordMac, InternalError, RecordOverflow } from '../errors.js';
import type { OpenedRecord, RecordProtector, RecordUnprotector } from '../record.js';
import type { Tls12SuiteParams } from './suites.js';
import { NATIVE_ALGORITHM, RECORD_SLAB, nativeAead, type NativeAead, type NativeAeadContext } from '../native/aead.js';

const MAX_SEQUENCE = Number.MAX_SAFE_INTEGER;

/**
 * The additional data, seq(8) type(1) version(2) length(2): one for every key, as in ../record.ts.
 * It is rewritten at the start of each seal or open and read only within that synchronous call.
 */
const RECORD_AAD = Buffer.alloc(13);
/** The IV handed to a native context's creation, which keeps its own copy; zeroed after each use. */
const CONTEXT_IV = Buffer.alloc(12);

abstract class Tls12RecordCipher {
  protected seq = 0;
  protected readonly aad = RECORD_AAD;
  /** node:crypto's per-record nonce, made on first use: the native AEAD keeps the IV in its context. */
  private nonce: Buffer | undefined;
  /** The native AEAD and its context for this key and direction; undefined: node:crypto. */
  protected readonly native: NativeAead | undefined;
  protected readonly context: NativeAeadContext | undefined;

  /** @param aead the native AEAD to use, or null for node:crypto; by default the process's choice. */
  constructor(
    readonly suite: Tls12SuiteParams,
    protected readonly key: Uint8Array,
    private readonly fixedIv: Uint8Array,
    encrypt: boolean,
    aead: NativeAead | null | undefined,
  ) {
    if (key.length !== suite.keyLength || fixedIv.length !== suite.fixedIvLength) throw new InternalError('TLS 1.2 key block of the wrong size');
    this.native = aead === undefined ? nativeAead() : (aead ?? undefined);
    if (this.native) {
      CONTEXT_IV.set(fixedIv, 0);
      try {
        this.context = this.native.create(NATIVE_ALGORITHM[suite.aead], encrypt, key, CONTEXT_IV);
      } finally {
        CONTEXT_IV.fill(0);
      }
    }
  }

  /** Whether records go through the native AEAD (else node:crypto). */
  get isNative(): boolean {
    return this.native !== undefined;
  }

  get sequence(): number {
    return this.seq;
  }

  protected get algorithm(): CipherGCMTypes {
    return this.suite.aead as CipherGCMTypes;
  }

  /** Takes the next sequence number and writes it into the additional data. */
  protected nextSequence(type: number, length: number): number {
    if (this.seq >= MAX_SEQUENCE) throw new InternalError('record sequence number exhausted');
    const seq = this.seq++;
    writeU64(this.aad, 0, seq);
    this.aad[8] = type;
    this.aad[9] = 0x03;
    this.aad[10] = 0x03;
    this.aad[11] = length >>> 8;
    this.aad[12] = length & 0xff;
    return seq;
  }

  /** The per-record nonce: salt || explicit (GCM) or IV XOR seq (ChaCha20-Poly1305). */
  protected nonceFor(seq: number, explicit: Uint8Array | undefined): Buffer {
    const n = (this.nonce ??= Buffer.alloc(12));
    if (this.suite.explicitNonceLength === 8) {
      n.set(this.fixedIv, 0);
      n.set(explicit!, 4);
      return n;
    }
    n.set(this.fixedIv, 0);
    const s = Buffer.alloc(8);
    writeU64(s, 0, seq);
    for (let i = 0; i < 8; i++) n[4 + i]! ^= s[i]!;
    return n;
  }
}

export class Tls12RecordSealer extends Tls12RecordCipher implements RecordProtector {
  constructor(suite: Tls12SuiteParams, key: Uint8Array, fixedIv: Uint8Array, aead?: NativeAead | null) {
    super(suite, key, fixedIv, true, aead);
  }

  sealInto(out: Uint8Array[], type: number, content: Uint8Array): number {
    const explicitLength = this.suite.explicitNonceLength;
    const length = explicitLength + content.length + this.suite.tagLength;
    if (content.length > MAX_PLAINTEXT) throw new InternalError('record too large to seal');
    const seq = this.nextSequence(type, content.length);
    if (this.native) return this.sealNative(out, type, content, seq, length);
    const header = Buffer.allocUnsafe(RECORD_HEADER_LENGTH + explicitLength);
    header[0] = type;
    header[1] = 0x03;
    header[2] = 0x03;
    header[3] = length >>> 8;
    header[4] = length & 0xff;
    const explicit = explicitLength > 0 ? header.subarray(RECORD_HEADER_LENGTH) : undefined;
    if (explicit) explicit.set(this.aad.subarray(0, 8));
    const cipher = createCipheriv(this.algorithm, this.key, this.nonceFor(seq, explicit), { authTagLength: 16 });
    cipher.setAAD(this.aad);
    out.push(header, cipher.update(content));
    cipher.final();
    out.push(cipher.getAuthTag());
    return RECORD_HEADER_LENGTH + length;
  }

  /** One record, header || explicit nonce || ciphertext || tag, sealed into the record slab as one piece. */
  private sealNative(out: Uint8Array[], type: number, content: Uint8Array, seq: number, length: number): number {
    const total = RECORD_HEADER_LENGTH + length;
    const buf = RECORD_SLAB.reserve(total);
    let at = RECORD_SLAB.offset;
    buf[at] = type;
    buf[at + 1] = 0x03;
    buf[at + 2] = 0x03;
    buf[at + 3] = length >>> 8;
    buf[at + 4] = length & 0xff;
    at += RECORD_HEADER_LENGTH;
    if (this.suite.explicitNonceLength === 8) {
      for (let k = 0; k < 8; k++) buf[at + k] = this.aad[k]!; // the sequence number
      at += 8;
    }
    this.native!.seal(this.context!, seq, this.aad, content, 0, content.length, -1, buf, at);
    RECORD_SLAB.commitTo(out, total);
    return total;
  }

  /** Protects one record into a single buffer: header || explicit nonce || ciphertext || tag. */
  seal(type: number, content: Uint8Array): Buffer {
    const pieces: Uint8Array[] = [];
    const n = this.sealInto(pieces, type, content);
    return Buffer.concat(pieces, n);
  }
}

export class Tls12RecordOpener extends Tls12RecordCipher implements RecordUnprotector {
  readonly hidesContentType = false;

  constructor(suite: Tls12SuiteParams, key: Uint8Array, fixedIv: Uint8Array, aead?: NativeAead | null) {
    super(suite, key, fixedIv, false, aead);
  }

  openIn(buf: Uint8Array, start: number, end: number): OpenedRecord {
    const type = buf[start]!;
    const payloadStart = start + RECORD_HEADER_LENGTH;
    const explicitLength = this.suite.explicitNonceLength;
    const plainLength = end - payloadStart - explicitLength - this.suite.tagLength;
    if (plainLength < 0) throw new BadRecordMac('record shorter than its nonce and tag');
    if (plainLength > MAX_PLAINTEXT) throw new RecordOverflow('TLS 1.2 record plaintext over 2^14 bytes');
    const seq = this.nextSequence(type, plainLength);
    const explicit = explicitLength > 0 ? buf.subarray(payloadStart, payloadStart + explicitLength) : undefined;
    if (this.native) {
      // AES-GCM: the peer's explicit nonce, whatever it chose; ChaCha20-Poly1305: our count.
      const out = RECORD_SLAB.reserve(plainLength);
      const ok = this.native.open(this.context!, explicit ?? seq, this.aad, buf, payloadStart + explicitLength, plainLength + this.suite.tagLength, out, RECORD_SLAB.offset);
      if (!ok) throw new BadRecordMac('record authentication failed');
      const content = RECORD_SLAB.commit(plainLength);
      // As in ../record.ts: only application data stays a view of the shared slab.
      return { type, content: type === ContentType.application_data ? content : Buffer.from(content) };
    }
    const decipher = createDecipheriv(this.algorithm, this.key, this.nonceFor(seq, explicit), { authTagLength: 16 });
    decipher.setAAD(this.aad);
    decipher.setAuthTag(buf.subarray(end - this.suite.tagLength, end));
    const content = decipher.update(buf.subarray(payloadStart + explicitLength, end - this.suite.tagLength));
    try {
      decipher.final();
    } catch {
      throw new BadRecordMac('record authentication failed');
    }
    return { type, content };
  }
}

function writeU64(out: Buffer, at: number, v: number): void {
  const low = v % 0x100000000;
  out.writeUInt32BE((v - low) / 0x100000000, at);
  out.writeUInt32BE(low, at + 4);
}
