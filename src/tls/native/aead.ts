/**
 * The optional native AEAD of the record path (aead.c, built by scripts/build-native.mjs into
 * dist/src/tls/native/aead.node). One OpenSSL cipher context per direction with its key expanded
 * once, sealing and opening into buffers we provide: node:crypto's cipher API instead builds a
 * cipher object and three buffers per record (bench/results/native-aead.md measures both).
 *
 * `nativeAead()` loads it once per process and checks it against node:crypto on a known record;
 * it answers undefined (and the record layer keeps node:crypto) when the addon was not built, does
 * not load, disagrees with node:crypto, or DC_TLS_AEAD=node or DC_TLS_NATIVE=off is set (benches
 * and tests use them to force the fallback; ./switch.ts).
 */
import { createCipheriv } from 'node:crypto';
import { createRequire } from 'node:module';
import type { AeadName } from '../suites.js';
import { nativeSwitchedOff } from './switch.js';

/** An OpenSSL cipher context with its key (opaque; freed when collected). */
export type NativeAeadContext = { readonly __nativeAeadContext: never };

/**
 * The addon's functions. `seq` is the record's 64-bit value XORed into the low 8 bytes of the
 * context's 12-byte IV: a sequence number below 2^53, or 8 big-endian bytes (TLS 1.2 AES-GCM's
 * explicit nonce as received); or 12 bytes, the whole nonce (the context's IV is then unused:
 * session tickets, one context per ticket key). Offsets and lengths index the given buffers; the
 * addon checks them.
 */
export interface NativeAead {
  create(algorithm: 1 | 2 | 3, encrypt: boolean, key: Uint8Array, iv: Uint8Array): NativeAeadContext;
  /**
   * Encrypts src[srcOff, srcOff+srcLen), then the byte `trailer` if it is 0..255 (-1: none), into
   * dst at dstOff, followed by the 16-byte tag. Returns the bytes written.
   */
  seal(ctx: NativeAeadContext, seq: number | Uint8Array, aad: Uint8Array, src: Uint8Array, srcOff: number, srcLen: number, trailer: number, dst: Uint8Array, dstOff: number): number;
  /** Opens ciphertext||tag src[srcOff, srcOff+srcLen) into dst at dstOff; false if the tag does not verify. */
  open(ctx: NativeAeadContext, seq: number | Uint8Array, aad: Uint8Array, src: Uint8Array, srcOff: number, srcLen: number, dst: Uint8Array, dstOff: number): boolean;
}

/** The most bytes one seal or open takes (aead.c's MAX_INPUT: above any TLS record). */
export const NATIVE_AEAD_MAX_INPUT = 1 << 15;

export const NATIVE_ALGORITHM: Readonly<Record<AeadName, 1 | 2 | 3>> = { 'aes-128-gcm': 1, 'aes-256-gcm': 2, 'chacha20-poly1305': 3 };

let loaded: { readonly aead: NativeAead | undefined; readonly status: string } | undefined;

/** The native AEAD, or undefined when the record layer must use node:crypto. */
export function nativeAead(): NativeAead | undefined {
  return (loaded ??= load()).aead;
}

/** Why the record layer uses what it uses, for diagnostics (`native` or the reason it does not). */
export function nativeAeadStatus(): string {
  return (loaded ??= load()).status;
}

function load(): { aead: NativeAead | undefined; status: string } {
  const off = nativeSwitchedOff('aead');
  if (off) return { aead: undefined, status: `node:crypto (${off})` };
  let aead: NativeAead;
  try {
    aead = createRequire(import.meta.url)('./aead.node') as NativeAead;
  } catch (e) {
    return { aead: undefined, status: `node:crypto (native AEAD not loaded: ${(e as Error).message.split('\n')[0]})` };
  }
  if (!agreesWithNodeCrypto(aead)) return { aead: undefined, status: 'node:crypto (native AEAD disagrees with node:crypto)' };
  return { aead, status: 'native' };
}

/** Seals and opens one record with each algorithm and compares with node:crypto's output. */
function agreesWithNodeCrypto(aead: NativeAead): boolean {
  try {
    for (const [name, id] of Object.entries(NATIVE_ALGORITHM) as [AeadName, 1 | 2 | 3][]) {
      const key = Buffer.alloc(name === 'aes-128-gcm' ? 16 : 32, 7);
      const iv = Buffer.alloc(12, 9);
      const aad = Buffer.from('aad');
      const plain = Buffer.from('native AEAD self-check');
      const nonce = Buffer.from(iv);
      nonce[11]! ^= 5; // sequence number 5
      const c = createCipheriv(name as 'aes-128-gcm', key, nonce, { authTagLength: 16 }).setAAD(aad);
      const want = Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
      const got = Buffer.alloc(want.length);
      if (aead.seal(aead.create(id, true, key, iv), 5, aad, plain, 0, plain.length, -1, got, 0) !== want.length || !got.equals(want)) return false;
      const back = Buffer.alloc(plain.length);
      if (!aead.open(aead.create(id, false, key, iv), 5, aad, want, 0, want.length, back, 0) || !back.equals(plain)) return false;
    }
    return true;
  } catch {
    return false;
  }
}

/**
 * Space for sealed records and opened plaintexts, shared by every connection of the process:
 * each record is a view of a 64 KiB slab instead of a Buffer of its own, so bulk traffic
 * allocates one slab per ~4 full records (V8 starts garbage collections by external memory
 * allocated, see docs/architecture.md "Hot paths"). A view is handed out only after its bytes are
 * final and is never written again; a slab lives while any of its views does, like node's own
 * Buffer pool (which is 8 KiB). Sealing and opening are synchronous, so no two uses interleave.
 *
 * Why 64 KiB and not more: a connection whose peer stops reading keeps its last write, at most
 * one slab view (the rest it keeps is copied, `unpinned`), and with it the whole slab. 64 KiB
 * bounds that to about 4 records' worth per stalled connection; 256 KiB measured no faster
 * (bench/results/native-aead.md, "Slab size") and would let a few hundred stalled connections
 * pin the sidecar's memory limit.
 */
const SLAB_SIZE = 64 * 1024;

/** The ArrayBuffers of every slab, so a consumer can tell a slab view from a buffer of its own. */
const SLAB_BUFFERS = new WeakSet<ArrayBufferLike>();

/**
 * `bytes` itself, or a copy of it when it is a view of a record slab or of less than half of its
 * memory. For bytes about to be kept (queued behind a peer that does not read, buffered in a
 * stream nobody drains): a view keeps its whole slab (or socket read) alive, so many stalled
 * connections would pin a slab each; a copy pins only its own size. Records opened in place are
 * views of the socket read they came in (src/tls/record-layer.ts), mostly all of it; a read of
 * many tiny records is not, and is copied like a slab view. Bytes handed on at once need no copy.
 */
export function unpinned(bytes: Uint8Array): Uint8Array {
  return isSlabView(bytes) || bytes.length * 2 < bytes.buffer.byteLength ? Buffer.from(bytes) : bytes;
}

/** Whether `bytes` is a view of a record slab (tests, and `unpinned`). */
export function isSlabView(bytes: Uint8Array): boolean {
  return SLAB_BUFFERS.has(bytes.buffer);
}

export class Slab {
  private buf = Buffer.allocUnsafe(0);
  private pos = 0;

  /** A buffer with `n` writable bytes at `offset`; `commit(n)` hands them out. */
  reserve(n: number): Buffer {
    if (this.buf.length - this.pos < n) {
      // allocUnsafeSlow: never node's shared 8 KiB pool, whose ArrayBuffer other Buffers use too.
      this.buf = Buffer.allocUnsafeSlow(Math.max(SLAB_SIZE, n));
      SLAB_BUFFERS.add(this.buf.buffer);
      this.pos = 0;
    }
    return this.buf;
  }

  get offset(): number {
    return this.pos;
  }

  /** The `n` bytes written at `offset` since `reserve`, as a view that nothing writes again. */
  commit(n: number): Buffer {
    const view = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return view;
  }

  /**
   * Commits `n` bytes and appends them to `pieces`, extending the last piece instead when it
   * ends where they start: records sealed one after another leave as one piece (one iovec of a
   * writev, nothing for a join to copy).
   */
  commitTo(pieces: Uint8Array[], n: number): void {
    const last = pieces.length > 0 ? pieces[pieces.length - 1]! : undefined;
    const buf = this.buf;
    if (last !== undefined && last.buffer === buf.buffer && last.byteOffset + last.length === buf.byteOffset + this.pos) {
      pieces[pieces.length - 1] = buf.subarray(this.pos - last.length, this.pos + n);
      this.pos += n;
      return;
    }
    pieces.push(this.commit(n));
  }
}

/** The one slab of the process for the record path. */
export const RECORD_SLAB = new Slab();
