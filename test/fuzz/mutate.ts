/**
 * Byte-level mutations in the style of libFuzzer's, plus two that suit length-prefixed binary
 * formats (TLS, keyless TLVs): nudging a big-endian 8/16/24-bit field by a small amount, and
 * setting such a field to the number of bytes that follow it (a length that matches again after
 * an insert or a delete). A mutant is 1–5 stacked mutations of a corpus input.
 */

/** A small seeded PRNG (mulberry32), so a run is repeatable from its seed. */
export class Random {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  /** Uniform in [0, 2^32). */
  u32(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** Uniform in [0, n); 0 when n <= 0. */
  below(n: number): number {
    return n <= 0 ? 0 : this.u32() % n;
  }
  chance(oneIn: number): boolean {
    return this.below(oneIn) === 0;
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.u32() & 0xff;
    return out;
  }
}

const INTERESTING_8 = [0x00, 0x01, 0x02, 0x03, 0x04, 0x10, 0x16, 0x17, 0x20, 0x7f, 0x80, 0xfe, 0xff];
const INTERESTING_16 = [0x0000, 0x0001, 0x0002, 0x0003, 0x0301, 0x0303, 0x0304, 0x00ff, 0x0100, 0x3fff, 0x4000, 0x4001, 0x4100, 0x7fff, 0x8000, 0xfffe, 0xffff];

function writeBE(b: Uint8Array, at: number, width: number, value: number): void {
  for (let i = width - 1; i >= 0; i--) {
    b[at + i] = value & 0xff;
    value = Math.floor(value / 256);
  }
}

function readBE(b: Uint8Array, at: number, width: number): number {
  let v = 0;
  for (let i = 0; i < width; i++) v = v * 256 + b[at + i]!;
  return v;
}

function splice(data: Uint8Array, at: number, remove: number, insert: Uint8Array): Uint8Array {
  const out = new Uint8Array(data.length - remove + insert.length);
  out.set(data.subarray(0, at), 0);
  out.set(insert, at);
  out.set(data.subarray(at + remove), at + insert.length);
  return out;
}

export class Mutator {
  constructor(
    private readonly rnd: Random,
    private readonly maxLength: number,
    private readonly dictionary: readonly Uint8Array[] = [],
  ) {}

  /** A mutant of `input`; `other` (another corpus input) feeds the crossover mutations. */
  mutate(input: Uint8Array, other: Uint8Array): Uint8Array {
    let data = input;
    const rounds = 1 + this.rnd.below(5);
    for (let i = 0; i < rounds; i++) data = this.once(data, other);
    return data.length > this.maxLength ? data.subarray(0, this.maxLength) : data;
  }

  private once(data: Uint8Array, other: Uint8Array): Uint8Array {
    const r = this.rnd;
    const n = data.length;
    if (n === 0) return r.bytes(1 + r.below(8));
    const at = r.below(n);
    switch (r.below(14)) {
      case 0: {
        const c = Uint8Array.from(data);
        c[at] = c[at]! ^ (1 << r.below(8));
        return c;
      }
      case 1: {
        const c = Uint8Array.from(data);
        c[at] = r.below(256);
        return c;
      }
      case 2: {
        const c = Uint8Array.from(data);
        c[at] = INTERESTING_8[r.below(INTERESTING_8.length)]!;
        return c;
      }
      case 3: {
        if (n < 2) return data;
        const c = Uint8Array.from(data);
        writeBE(c, r.below(n - 1), 2, INTERESTING_16[r.below(INTERESTING_16.length)]!);
        return c;
      }
      case 4: {
        // Nudge a big-endian field of 1, 2 or 3 bytes by -8..+8.
        const width = 1 + r.below(3);
        if (n < width) return data;
        const pos = r.below(n - width + 1);
        const max = 2 ** (8 * width);
        const c = Uint8Array.from(data);
        writeBE(c, pos, width, (readBE(c, pos, width) + r.below(17) - 8 + max) % max);
        return c;
      }
      case 5: {
        // A length field that matches the bytes after it (minus a few: a nested vector).
        const width = 1 + r.below(3);
        if (n < width) return data;
        const pos = r.below(n - width + 1);
        const after = n - pos - width;
        const c = Uint8Array.from(data);
        writeBE(c, pos, width, Math.max(0, after - (r.chance(2) ? 0 : r.below(Math.min(after, 64) + 1))) % 2 ** (8 * width));
        return c;
      }
      case 6:
        return n + 8 > this.maxLength ? data : splice(data, at, 0, r.bytes(1 + r.below(8)));
      case 7:
        return splice(data, at, 1 + r.below(Math.min(n - at, 16)), new Uint8Array(0));
      case 8: {
        // Duplicate a chunk in place (repeated extensions, list entries).
        const len = 1 + r.below(Math.min(n - at, 64));
        return n + len > this.maxLength ? data : splice(data, r.below(n + 1), 0, data.slice(at, at + len));
      }
      case 9: {
        // Copy a chunk over another place.
        const len = 1 + r.below(Math.min(n - at, 64));
        const to = r.below(n - len + 1);
        const c = Uint8Array.from(data);
        c.set(data.subarray(at, at + len), to);
        return c;
      }
      case 10: {
        // Crossover: our prefix, the other input's suffix.
        if (other.length === 0) return data;
        const cut = r.below(other.length);
        return splice(data, at, n - at, other.subarray(cut, cut + Math.max(0, this.maxLength - at)));
      }
      case 11: {
        // Insert a chunk of the other input.
        if (other.length === 0) return data;
        const from = r.below(other.length);
        const len = 1 + r.below(Math.min(other.length - from, 128));
        return n + len > this.maxLength ? data : splice(data, at, 0, other.subarray(from, from + len));
      }
      case 12:
      case 13: {
        // A dictionary token (a TLS code point, a keyless tag), inserted or written over.
        if (this.dictionary.length === 0) return data;
        const token = this.dictionary[r.below(this.dictionary.length)]!;
        if (r.chance(2) && n + token.length <= this.maxLength) return splice(data, at, 0, token);
        if (token.length > n) return data;
        const c = Uint8Array.from(data);
        c.set(token, Math.min(at, n - token.length));
        return c;
      }
      default:
        return data;
    }
  }
}

/** 2-byte big-endian tokens, for dictionaries of TLS code points. */
export function u16Tokens(values: Iterable<number>): Uint8Array[] {
  return [...values].map((v) => Uint8Array.of(v >> 8, v & 0xff));
}
