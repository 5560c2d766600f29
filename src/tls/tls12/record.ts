/**
 * TLS 1.2 AEAD record protection (RFC 5246 §6.2.3.3): additional data is
 * seq_num || type || version || plaintext length, the content type stays in the header.
 *
 * - AES-GCM (RFC 5288 §3): nonce = 4-byte salt from the key block || 8-byte explicit nonce sent
 *   in front of the ciphertext; we send the sequence number as the explicit nonce (unique per key,
 *   as Go and OpenSSL do).
 * - ChaCha20-Poly1305 (RFC 7905 §2): nonce = 12-byte IV XOR the padded sequence number, as in
 *   TLS 1.3; nothing explicit.
 */
import { createCipheriv, createDecipheriv, type CipherGCMTypes } from 'node:crypto';
import { MAX_PLAINTEXT, RECORD_HEADER_LENGTH } from '../constants.js';
import { BadRecordMac, InternalError, RecordOverflow } from '../errors.js';
import type { OpenedRecord, RecordProtector, RecordUnprotector } from '../record.js';
import type { Tls12SuiteParams } from './suites.js';

const MAX_SEQUENCE = Number.MAX_SAFE_INTEGER;

abstract class Tls12RecordCipher {
  protected seq = 0;
  /** The additional data, rewritten per record: seq(8) type(1) version(2) length(2). */
  protected readonly aad = Buffer.alloc(13);
  private readonly nonce = Buffer.alloc(12);

  constructor(
    readonly suite: Tls12SuiteParams,
    protected readonly key: Uint8Array,
    private readonly fixedIv: Uint8Array,
  ) {
    if (key.length !== suite.keyLength || fixedIv.length !== suite.fixedIvLength) throw new InternalError('TLS 1.2 key block of the wrong size');
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
    const n = this.nonce;
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
  sealInto(out: Uint8Array[], type: number, content: Uint8Array): number {
    const explicitLength = this.suite.explicitNonceLength;
    const length = explicitLength + content.length + this.suite.tagLength;
    const seq = this.nextSequence(type, content.length);
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

  /** Protects one record into a single buffer: header || explicit nonce || ciphertext || tag. */
  seal(type: number, content: Uint8Array): Buffer {
    const pieces: Uint8Array[] = [];
    const n = this.sealInto(pieces, type, content);
    return Buffer.concat(pieces, n);
  }
}

export class Tls12RecordOpener extends Tls12RecordCipher implements RecordUnprotector {
  readonly hidesContentType = false;

  openIn(buf: Uint8Array, start: number, end: number): OpenedRecord {
    const type = buf[start]!;
    const payloadStart = start + RECORD_HEADER_LENGTH;
    const explicitLength = this.suite.explicitNonceLength;
    const plainLength = end - payloadStart - explicitLength - this.suite.tagLength;
    if (plainLength < 0) throw new BadRecordMac('record shorter than its nonce and tag');
    if (plainLength > MAX_PLAINTEXT) throw new RecordOverflow('TLS 1.2 record plaintext over 2^14 bytes');
    const seq = this.nextSequence(type, plainLength);
    const explicit = explicitLength > 0 ? buf.subarray(payloadStart, payloadStart + explicitLength) : undefined;
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
