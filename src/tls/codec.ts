/**
 * The one codec of the TLS stack (RFC 8446 §3 presentation language).
 *
 * `Reader` reads from a window of a Uint8Array that shrinks from the front as it is read; every
 * read is bounds-checked and a length-prefixed vector yields a bounded sub-reader, so a message
 * decoder can never read past its own vector. Readers never copy: `bytes()` returns a subarray
 * view, so callers that keep data beyond the lifetime of the input must copy it themselves.
 *
 * `Writer` appends into a growable buffer and back-patches the length prefixes of vectors, so
 * encoders nest like the RFC's structs: `w.u16Prefixed(w => { w.u16(x); w.u8Prefixed(...) })`.
 *
 * Errors: the reader raises only DecodeError (syntax); the writer raises InternalError when asked
 * to encode a value that does not fit (a bug on our side, never peer input).
 */
import { DecodeError, InternalError } from './errors.js';

export class Reader {
  private pos: number;
  private readonly end: number;

  constructor(
    private readonly buf: Uint8Array,
    start = 0,
    end = buf.length,
  ) {
    this.pos = start;
    this.end = end;
  }

  /** Bytes left to read. */
  get remaining(): number {
    return this.end - this.pos;
  }

  isEmpty(): boolean {
    return this.pos === this.end;
  }

  private need(n: number, what: string): void {
    if (this.end - this.pos < n) {
      throw new DecodeError(`truncated ${what}: need ${n} bytes, have ${this.end - this.pos}`);
    }
  }

  u8(): number {
    this.need(1, 'u8');
    return this.buf[this.pos++]!;
  }

  u16(): number {
    this.need(2, 'u16');
    const b = this.buf;
    const p = this.pos;
    this.pos = p + 2;
    return (b[p]! << 8) | b[p + 1]!;
  }

  u24(): number {
    this.need(3, 'u24');
    const b = this.buf;
    const p = this.pos;
    this.pos = p + 3;
    return (b[p]! << 16) | (b[p + 1]! << 8) | b[p + 2]!;
  }

  u32(): number {
    this.need(4, 'u32');
    const b = this.buf;
    const p = this.pos;
    this.pos = p + 4;
    return ((b[p]! << 24) >>> 0) + ((b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!);
  }

  /** The next `n` bytes as a view (no copy). */
  bytes(n: number): Uint8Array {
    this.need(n, 'bytes');
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** All remaining bytes as a view. */
  rest(): Uint8Array {
    return this.bytes(this.remaining);
  }

  /** A sub-reader over a vector with a 1-byte length prefix; length must be in [min, max]. */
  u8Prefixed(min = 0, max = 0xff): Reader {
    return this.sub(this.u8(), min, max);
  }

  /** A sub-reader over a vector with a 2-byte length prefix; length must be in [min, max]. */
  u16Prefixed(min = 0, max = 0xffff): Reader {
    return this.sub(this.u16(), min, max);
  }

  /** A sub-reader over a vector with a 3-byte length prefix; length must be in [min, max]. */
  u24Prefixed(min = 0, max = 0xffffff): Reader {
    return this.sub(this.u24(), min, max);
  }

  /** `opaque x<min..max>` with a 1-byte length, as a view. */
  opaque8(min = 0, max = 0xff): Uint8Array {
    return this.vector(this.u8(), min, max);
  }

  /** `opaque x<min..max>` with a 2-byte length, as a view. */
  opaque16(min = 0, max = 0xffff): Uint8Array {
    return this.vector(this.u16(), min, max);
  }

  /** `opaque x<min..max>` with a 3-byte length, as a view. */
  opaque24(min = 0, max = 0xffffff): Uint8Array {
    return this.vector(this.u24(), min, max);
  }

  private sub(len: number, min: number, max: number): Reader {
    const start = this.pos;
    this.skipVector(len, min, max);
    return new Reader(this.buf, start, this.pos);
  }

  /** A vector's bytes as a view, without a sub-reader (an opaque is read whole). */
  private vector(len: number, min: number, max: number): Uint8Array {
    const start = this.pos;
    this.skipVector(len, min, max);
    return this.buf.subarray(start, this.pos);
  }

  private skipVector(len: number, min: number, max: number): void {
    if (len < min || len > max) {
      throw new DecodeError(`vector length ${len} outside [${min}, ${max}]`);
    }
    this.need(len, 'vector');
    this.pos += len;
  }

  /** Rejects trailing bytes: every decoder ends with this. */
  expectEnd(what = 'message'): void {
    if (this.pos !== this.end) {
      throw new DecodeError(`${this.end - this.pos} trailing bytes after ${what}`);
    }
  }
}

export class Writer {
  private buf: Uint8Array;
  private len = 0;

  constructor(initialCapacity = 256) {
    this.buf = allocUnfilled(initialCapacity);
  }

  get length(): number {
    return this.len;
  }

  private reserve(n: number): void {
    const need = this.len + n;
    if (need <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < need) cap *= 2;
    const next = allocUnfilled(cap);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  u8(v: number): this {
    checkRange(v, 0xff, 'u8');
    this.reserve(1);
    this.buf[this.len++] = v;
    return this;
  }

  u16(v: number): this {
    checkRange(v, 0xffff, 'u16');
    this.reserve(2);
    this.buf[this.len++] = v >>> 8;
    this.buf[this.len++] = v & 0xff;
    return this;
  }

  u24(v: number): this {
    checkRange(v, 0xffffff, 'u24');
    this.reserve(3);
    this.buf[this.len++] = v >>> 16;
    this.buf[this.len++] = (v >>> 8) & 0xff;
    this.buf[this.len++] = v & 0xff;
    return this;
  }

  u32(v: number): this {
    checkRange(v, 0xffffffff, 'u32');
    this.reserve(4);
    this.buf[this.len++] = v >>> 24;
    this.buf[this.len++] = (v >>> 16) & 0xff;
    this.buf[this.len++] = (v >>> 8) & 0xff;
    this.buf[this.len++] = v & 0xff;
    return this;
  }

  bytes(data: Uint8Array): this {
    this.reserve(data.length);
    this.buf.set(data, this.len);
    this.len += data.length;
    return this;
  }

  /** Writes a vector with a 1-byte length prefix filled in after `body` ran. */
  u8Prefixed(body: (w: this) => void): this {
    return this.prefixed(1, 0xff, body);
  }

  /** Writes a vector with a 2-byte length prefix filled in after `body` ran. */
  u16Prefixed(body: (w: this) => void): this {
    return this.prefixed(2, 0xffff, body);
  }

  /** Writes a vector with a 3-byte length prefix filled in after `body` ran. */
  u24Prefixed(body: (w: this) => void): this {
    return this.prefixed(3, 0xffffff, body);
  }

  /**
   * Opens a vector with a `size`-byte length prefix, filled in by `close(mark)`: the same as
   * `u8Prefixed` and friends without a callback, for encoders on the hot path (no closure per
   * vector). Vectors nest: close them in reverse order.
   */
  open(size: 1 | 2 | 3): number {
    this.reserve(size);
    const at = this.len;
    this.len += size;
    return at * 4 + size;
  }

  close(mark: number): this {
    const size = mark & 3;
    const at = (mark - size) / 4;
    const n = lengthFits(this.len - at - size, size === 1 ? 0xff : size === 2 ? 0xffff : 0xffffff);
    for (let i = size - 1; i >= 0; i--) {
      this.buf[at + size - 1 - i] = (n >>> (8 * i)) & 0xff;
    }
    return this;
  }

  /** `opaque x<..2^8-1>` */
  opaque8(data: Uint8Array): this {
    return this.u8(lengthFits(data.length, 0xff)).bytes(data);
  }

  /** `opaque x<..2^16-1>` */
  opaque16(data: Uint8Array): this {
    return this.u16(lengthFits(data.length, 0xffff)).bytes(data);
  }

  /** `opaque x<..2^24-1>` */
  opaque24(data: Uint8Array): this {
    return this.u24(lengthFits(data.length, 0xffffff)).bytes(data);
  }

  private prefixed(size: number, max: number, body: (w: this) => void): this {
    this.reserve(size);
    const at = this.len;
    this.len += size;
    body(this);
    const n = lengthFits(this.len - at - size, max);
    for (let i = size - 1; i >= 0; i--) {
      this.buf[at + size - 1 - i] = (n >>> (8 * i)) & 0xff;
    }
    return this;
  }

  /** The encoded bytes (a view of the internal buffer; the writer must not be used afterwards). */
  finish(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }
}

/**
 * A Uint8Array (not a Buffer: decoders hand out views of what they decode) that the caller must
 * fill: small arrays are carved from a pool, as Node's Buffer.allocUnsafe does, instead of each
 * allocating and zero-filling a backing store of their own (a `new Uint8Array(n)` over 64 bytes
 * measured ~0.8 us, a pooled one ~0.3 us). Our own pool, not Node's: a view of Node's pool took
 * a Buffer object and a Uint8Array per call, this one Uint8Array (~105 bytes of heap less per
 * encoded message; allocation per handshake is what the collector costs a server,
 * docs/architecture.md "Hot paths"). Like Node's pool, its ArrayBuffer is shared by messages of
 * different connections: handshake messages only, never secrets (the key schedule keeps those
 * per handshake, key-schedule.ts SecretBlock).
 */
export function allocUnfilled(n: number): Uint8Array {
  if (n > POOL_SIZE >>> 2) {
    const b = Buffer.allocUnsafeSlow(n);
    return new Uint8Array(b.buffer, b.byteOffset, n);
  }
  if (poolOffset + n > POOL_SIZE) {
    pool = new ArrayBuffer(POOL_SIZE);
    poolOffset = 0;
  }
  const out = new Uint8Array(pool, poolOffset, n);
  // 8-byte aligned, as Node's pool.
  poolOffset = (poolOffset + n + 7) & ~7;
  return out;
}
const POOL_SIZE = 64 * 1024;
let pool = new ArrayBuffer(POOL_SIZE);
let poolOffset = 0;

function checkRange(v: number, max: number, what: string): void {
  if (!Number.isInteger(v) || v < 0 || v > max) throw new InternalError(`${what} out of range: ${v}`);
}

function lengthFits(n: number, max: number): number {
  if (n > max) throw new InternalError(`vector of ${n} bytes exceeds its ${max}-byte limit`);
  return n;
}

/** Encodes with a fresh Writer: `encode(w => ...)`. */
export function encode(body: (w: Writer) => void, capacity?: number): Uint8Array {
  const w = new Writer(capacity);
  body(w);
  return w.finish();
}

/** Decodes all of `data` with `body`, rejecting trailing bytes. */
export function decodeAll<T>(data: Uint8Array, body: (r: Reader) => T, what?: string): T {
  const r = new Reader(data);
  const v = body(r);
  r.expectEnd(what);
  return v;
}
