/**
 * Random bytes for hello randoms, session ids and ticket nonces, served from a pool refilled
 * 4 KiB at a time: one CSPRNG call instead of several small ones per handshake (each
 * node:crypto call has a fixed cost that matters at handshake rates).
 */
import { randomFillSync } from 'node:crypto';

const POOL_SIZE = 4096;
let pool = Buffer.allocUnsafe(0);
let offset = 0;

/** Makes at least `n` pooled bytes available at `offset`. */
function ensure(n: number): void {
  if (offset + n > pool.length) {
    pool = randomFillSync(Buffer.allocUnsafe(POOL_SIZE));
    offset = 0;
  }
}

/** Never hands out the same bytes twice: wipes the `n` bytes just taken and moves past them. */
function consume(n: number): void {
  pool.fill(0, offset, offset + n);
  offset += n;
}

/** `n` (≤ 256) fresh random bytes in a new buffer. */
export function randomBytesPooled(n: number): Buffer {
  ensure(n);
  const out = Buffer.from(pool.subarray(offset, offset + n));
  consume(n);
  return out;
}

/** Writes `n` (≤ 256) fresh random bytes into `out` at `at` (no allocation). */
export function randomFillPooled(out: Uint8Array, at: number, n: number): void {
  ensure(n);
  out.set(pool.subarray(offset, offset + n), at);
  consume(n);
}

/** A random unsigned 32-bit integer. */
export function randomUint32(): number {
  ensure(4);
  const v = pool.readUInt32BE(offset);
  consume(4);
  return v;
}
