/**
 * The one DER reader and writer of the project (X.509 here, SKIs and ECDSA signatures in
 * src/keyless).
 *
 * Reader: one tag-length-value at a time, always within a limit (the end of the enclosing
 * element), definite lengths only (the indefinite form 0x80 is BER, not DER), single-byte tags
 * (X.509 and the structures we read never use high tag numbers), lengths of at most four
 * bytes. Every failure is a DerDecodeError. A long-form length that could have been shorter is
 * accepted, as OpenSSL accepts it in certificates and keys: nothing here depends on a unique
 * encoding (signatures cover the exact bytes; names compared byte-wise only fail closed).
 *
 * Writer: minimal lengths, always.
 */
import { DerDecodeError } from './errors.js';

export { DerDecodeError };

/** Universal tags used by more than one reader or writer. */
export const DerTag = {
  integer: 0x02,
  bitString: 0x03,
  oid: 0x06,
  utcTime: 0x17,
  generalizedTime: 0x18,
  sequence: 0x30,
} as const;

/** One element: its tag and where its header and contents are in the buffer it was read from. */
export interface Tlv {
  readonly tag: number;
  /** Offset of the content. */
  readonly start: number;
  /** Offset just past the content. */
  readonly end: number;
  /** Offset of the tag byte. */
  readonly headerStart: number;
}

// ---------------------------------------------------------------------------------------------
// Reader

/** The element at `pos`, which must end at or before `limit`. */
export function readTlv(buf: Uint8Array, pos: number, limit: number): Tlv {
  if (limit > buf.length) limit = buf.length;
  if (pos + 2 > limit) throw new DerDecodeError('truncated');
  const tag = buf[pos]!;
  if ((tag & 0x1f) === 0x1f) throw new DerDecodeError('high tag numbers are not used in certificates');
  let len = buf[pos + 1]!;
  let start = pos + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0) throw new DerDecodeError('indefinite length (BER, not DER)');
    if (n > 4) throw new DerDecodeError('unsupported length encoding');
    if (start + n > limit) throw new DerDecodeError('truncated length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[start + i]!;
    start += n;
  }
  const end = start + len;
  if (end > limit) throw new DerDecodeError('length runs past the end');
  return { tag, start, end, headerStart: pos };
}

/** Children of a constructed element, in order; each must end within it. */
export function children(buf: Uint8Array, tlv: Tlv): Tlv[] {
  const out: Tlv[] = [];
  let p = tlv.start;
  while (p < tlv.end) {
    const c = readTlv(buf, p, tlv.end);
    out.push(c);
    p = c.end;
  }
  return out;
}

/**
 * Whether `buf` is exactly one element in distinguished encoding as far as lengths go: nothing
 * after it, and every length, at every depth of constructed elements, in its shortest form. For
 * structures a specification requires in DER where the reader above is lenient (a delegated
 * credential's SubjectPublicKeyInfo, RFC 9345 §4). Linear: each element is read once; nesting
 * deeper than MAX_DER_DEPTH is refused rather than recursed into.
 */
export function isMinimalDer(buf: Uint8Array): boolean {
  try {
    const top = readTlv(buf, 0, buf.length);
    return top.end === buf.length && lengthsMinimal(buf, top, 0);
  } catch (e) {
    if (e instanceof DerDecodeError) return false;
    throw e;
  }
}

/** Deeper than any key or certificate structure nests (an SPKI with explicit curve parameters: 5). */
const MAX_DER_DEPTH = 16;

function lengthsMinimal(buf: Uint8Array, t: Tlv, depth: number): boolean {
  if (depth > MAX_DER_DEPTH) return false;
  const header = buf.subarray(t.headerStart + 1, t.start);
  const minimal = encodeLength(t.end - t.start);
  if (header.length !== minimal.length || header.some((b, i) => b !== minimal[i])) return false;
  if ((buf[t.headerStart]! & 0x20) === 0) return true;
  return children(buf, t).every((c) => lengthsMinimal(buf, c, depth + 1));
}

export function expectTag(t: Tlv | undefined, tag: number, what: string): Tlv {
  if (!t || t.tag !== tag) throw new DerDecodeError(`expected ${what}`);
  return t;
}

export function decodeOid(buf: Uint8Array, t: Tlv): string {
  if (t.tag !== DerTag.oid || t.end === t.start) throw new DerDecodeError('expected OBJECT IDENTIFIER');
  const parts: number[] = [];
  let value = 0;
  for (let i = t.start; i < t.end; i++) {
    const b = buf[i]!;
    value = value * 128 + (b & 0x7f);
    if (!(b & 0x80)) {
      if (parts.length === 0) {
        const first = value < 80 ? Math.floor(value / 40) : 2;
        parts.push(first, value - first * 40);
      } else {
        parts.push(value);
      }
      value = 0;
    }
  }
  return parts.join('.');
}

export function decodeTime(buf: Uint8Array, t: Tlv): Date {
  const s = Buffer.from(buf.subarray(t.start, t.end)).toString('latin1');
  let m: RegExpExecArray | null;
  let year: number;
  if (t.tag === DerTag.utcTime) {
    m = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s);
    if (!m) throw new DerDecodeError(`bad UTCTime ${s}`);
    const yy = Number(m[1]);
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
  } else if (t.tag === DerTag.generalizedTime) {
    m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s);
    if (!m) throw new DerDecodeError(`bad GeneralizedTime ${s}`);
    year = Number(m[1]);
  } else {
    throw new DerDecodeError('expected a Time');
  }
  return new Date(Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
}

export function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

// ---------------------------------------------------------------------------------------------
// Writer

/** Length octets: the short form below 128, else the shortest long form. */
export function encodeLength(length: number): Uint8Array {
  if (!Number.isSafeInteger(length) || length < 0 || length > 0xffffffff) throw new RangeError(`DER length ${length}`);
  if (length < 0x80) return Uint8Array.of(length);
  const bytes: number[] = [];
  for (let v = length; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Uint8Array.of(0x80 | bytes.length, ...bytes);
}

/** One element: tag, minimal length, then `parts` concatenated as its contents. */
export function encodeTlv(tag: number, ...parts: readonly Uint8Array[]): Uint8Array {
  let size = 0;
  for (const p of parts) size += p.length;
  const length = encodeLength(size);
  const out = new Uint8Array(1 + length.length + size);
  out[0] = tag;
  out.set(length, 1);
  let at = 1 + length.length;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** An INTEGER of a non-negative value: big-endian, minimal, a 0x00 first only when the top bit is set. */
export function encodeUnsignedInteger(value: bigint): Uint8Array {
  if (value < 0n) throw new RangeError('encodeUnsignedInteger takes a non-negative value');
  let h = value.toString(16);
  if (h.length % 2) h = '0' + h;
  const body = Buffer.from(h, 'hex');
  return body[0]! & 0x80 ? encodeTlv(DerTag.integer, Uint8Array.of(0), body) : encodeTlv(DerTag.integer, body);
}
