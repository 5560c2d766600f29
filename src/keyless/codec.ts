/**
 * Codec of the Keyless SSL wire protocol (gokeyless protocol.md):
 *
 *   header = major u8 | minor u8 | body length u16 | id u32      (8 bytes, big endian)
 *   body   = item*            item = tag u8 | length u16 | value
 *
 * Decoding never trusts a length: every read is bounds-checked, bodies have a configurable limit
 * below the u16 maximum, and every failure is a KeylessFormatError (or KeylessVersionError /
 * KeylessOversizedError) that a server turns into an error response. Items whose tags we do not
 * interpret are kept in `unknown` and re-encoded unchanged.
 */
import { KeylessFormatError, KeylessOversizedError, KeylessVersionError } from './errors.js';
import {
  HEADER_LENGTH,
  ITEM_HEADER_LENGTH,
  MAX_WIRE_BODY_LENGTH,
  Tag,
  VERSION_MAJOR,
  VERSION_MINOR,
} from './protocol.js';

export interface Header {
  readonly major: number;
  readonly minor: number;
  /** Body length in bytes. */
  readonly length: number;
  /** Request id, echoed by the response. */
  readonly id: number;
}

/** One TLV item as it was on the wire. */
export interface Item {
  readonly tag: number;
  readonly value: Uint8Array;
}

/** The decoded body of a request or response. */
export interface Operation {
  readonly opcode: number;
  readonly payload?: Uint8Array;
  /** Subject Key Identifier of the key: 20 bytes. */
  readonly ski?: Uint8Array;
  /** Legacy key lookup: SHA-256 of the RSA modulus, 32 bytes. */
  readonly certificateDigest?: Uint8Array;
  readonly serverName?: string;
  /** 4 (IPv4) or 16 (IPv6) bytes. */
  readonly clientIp?: Uint8Array;
  /** 4 (IPv4) or 16 (IPv6) bytes. */
  readonly serverIp?: Uint8Array;
  readonly certificateId?: string;
  readonly customFuncName?: string;
  readonly supplementalPayload?: Uint8Array;
  readonly jaegerSpan?: Uint8Array;
  readonly complianceRegion?: Uint8Array;
  /** Items with tags this codec does not interpret, in wire order. */
  readonly unknown?: readonly Item[];
}

export interface Message {
  readonly id: number;
  readonly operation: Operation;
}

export interface EncodeOptions {
  /** Append a padding item so the whole message is at least this long (kssl pads to 1024). */
  readonly padTo?: number;
}

const SKI_LENGTH = 20;
const CERTIFICATE_DIGEST_LENGTH = 32;
// ignoreBOM: a leading U+FEFF is part of the text; stripping it would change the server name or ID.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();

// --- header ---------------------------------------------------------------------------------

/** Reads the 8-byte header; the caller checks the version (a mismatch still has a usable id). */
export function decodeHeader(bytes: Uint8Array): Header {
  if (bytes.length < HEADER_LENGTH) {
    throw new KeylessFormatError(`header needs ${HEADER_LENGTH} bytes, got ${bytes.length}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, HEADER_LENGTH);
  return { major: view.getUint8(0), minor: view.getUint8(1), length: view.getUint16(2), id: view.getUint32(4) };
}

/** Throws KeylessVersionError unless the header speaks major version 1. */
export function checkVersion(header: Header): void {
  if (header.major !== VERSION_MAJOR) throw new KeylessVersionError(header.major, header.minor);
}

// --- body -----------------------------------------------------------------------------------

/** Splits a body into items; rejects truncated items. */
export function decodeItems(body: Uint8Array): Item[] {
  const items: Item[] = [];
  let at = 0;
  while (at < body.length) {
    if (body.length - at < ITEM_HEADER_LENGTH) {
      throw new KeylessFormatError(`truncated item header at offset ${at}`);
    }
    const tag = body[at]!;
    const length = (body[at + 1]! << 8) | body[at + 2]!;
    at += ITEM_HEADER_LENGTH;
    if (body.length - at < length) {
      throw new KeylessFormatError(
        `item 0x${tag.toString(16)} declares ${length} bytes but only ${body.length - at} remain`,
      );
    }
    items.push({ tag, value: body.subarray(at, at + length) });
    at += length;
  }
  return items;
}

type MutableOperation = { -readonly [K in keyof Operation]: Operation[K] };

/** Decodes a body into an Operation: exactly one opcode, no duplicate tags, sized values. */
export function decodeOperation(body: Uint8Array): Operation {
  const seen = new Set<number>();
  const op: Partial<MutableOperation> = {};
  const unknown: Item[] = [];
  for (const { tag, value } of decodeItems(body)) {
    if (tag !== Tag.padding) {
      if (seen.has(tag)) throw new KeylessFormatError(`duplicate item 0x${tag.toString(16)}`);
      seen.add(tag);
    }
    switch (tag) {
      case Tag.opcode:
        if (value.length !== 1) throw new KeylessFormatError(`opcode item must be 1 byte, got ${value.length}`);
        op.opcode = value[0]!;
        break;
      case Tag.payload:
        op.payload = value;
        break;
      case Tag.ski:
        op.ski = sized(value, SKI_LENGTH, 'SKI');
        break;
      case Tag.certificateDigest:
        op.certificateDigest = sized(value, CERTIFICATE_DIGEST_LENGTH, 'certificate digest');
        break;
      case Tag.serverName:
        op.serverName = text(value, 'server name');
        break;
      case Tag.clientIp:
        op.clientIp = ipAddress(value, 'client IP');
        break;
      case Tag.serverIp:
        op.serverIp = ipAddress(value, 'server IP');
        break;
      case Tag.certificateId:
        op.certificateId = text(value, 'certificate ID');
        break;
      case Tag.customFuncName:
        op.customFuncName = text(value, 'custom function name');
        break;
      case Tag.supplementalPayload:
        op.supplementalPayload = value;
        break;
      case Tag.jaegerSpan:
        op.jaegerSpan = value;
        break;
      case Tag.complianceRegion:
        op.complianceRegion = value;
        break;
      case Tag.padding:
        break; // content is meaningless by definition
      default:
        unknown.push({ tag, value });
    }
  }
  if (op.opcode === undefined) throw new KeylessFormatError('message has no opcode item');
  if (unknown.length > 0) op.unknown = unknown;
  return op as Operation;
}

function sized(value: Uint8Array, length: number, what: string): Uint8Array {
  if (value.length !== length) throw new KeylessFormatError(`${what} must be ${length} bytes, got ${value.length}`);
  return value;
}

function ipAddress(value: Uint8Array, what: string): Uint8Array {
  if (value.length !== 4 && value.length !== 16) {
    throw new KeylessFormatError(`${what} must be 4 or 16 bytes, got ${value.length}`);
  }
  return value;
}

function text(value: Uint8Array, what: string): string {
  try {
    return utf8.decode(value);
  } catch (cause) {
    throw new KeylessFormatError(`${what} is not valid UTF-8`, { cause });
  }
}

// --- encoding -------------------------------------------------------------------------------

/** The items of an operation in a fixed order: opcode, key selectors, context, payload, unknown. */
function itemsOf(op: Operation): Item[] {
  const items: Item[] = [{ tag: Tag.opcode, value: Uint8Array.of(checkByte(op.opcode)) }];
  const add = (tag: number, value: Uint8Array | string | undefined): void => {
    if (value === undefined) return;
    items.push({ tag, value: typeof value === 'string' ? utf8Encoder.encode(value) : value });
  };
  if (op.ski !== undefined) add(Tag.ski, sized(op.ski, SKI_LENGTH, 'SKI'));
  if (op.certificateDigest !== undefined) {
    add(Tag.certificateDigest, sized(op.certificateDigest, CERTIFICATE_DIGEST_LENGTH, 'certificate digest'));
  }
  add(Tag.serverName, op.serverName);
  if (op.clientIp !== undefined) add(Tag.clientIp, ipAddress(op.clientIp, 'client IP'));
  if (op.serverIp !== undefined) add(Tag.serverIp, ipAddress(op.serverIp, 'server IP'));
  add(Tag.certificateId, op.certificateId);
  add(Tag.customFuncName, op.customFuncName);
  add(Tag.supplementalPayload, op.supplementalPayload);
  add(Tag.jaegerSpan, op.jaegerSpan);
  add(Tag.complianceRegion, op.complianceRegion);
  add(Tag.payload, op.payload);
  for (const item of op.unknown ?? []) items.push(item);
  return items;
}

function checkByte(v: number): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xff) throw new KeylessFormatError(`opcode ${v} is not a byte`);
  return v;
}

interface Layout {
  readonly items: readonly Item[];
  /** Bytes of the padding item, its header included (0: none). */
  readonly paddingItem: number;
  /** Body length: the items and the padding item. */
  readonly total: number;
}

/** What a message of `op` will hold, or the KeylessFormatError that encoding it would throw. */
function layoutOf(op: Operation, options: EncodeOptions): Layout {
  const items = itemsOf(op);
  let bodyLength = 0;
  for (const item of items) {
    if (item.value.length > 0xffff) {
      throw new KeylessFormatError(`item 0x${item.tag.toString(16)} of ${item.value.length} bytes exceeds 65535`);
    }
    bodyLength += ITEM_HEADER_LENGTH + item.value.length;
  }
  const padTo = options.padTo ?? 0;
  const padding = HEADER_LENGTH + bodyLength < padTo ? padTo - HEADER_LENGTH - bodyLength : 0;
  // A padding item needs at least its own 3-byte header.
  const paddingItem = padding > 0 ? Math.max(padding, ITEM_HEADER_LENGTH) : 0;
  const total = bodyLength + paddingItem;
  if (total > MAX_WIRE_BODY_LENGTH) throw new KeylessFormatError(`message body of ${total} bytes exceeds 65535`);
  return { items, paddingItem, total };
}

/**
 * Throws the KeylessFormatError that encodeMessage would throw for `op`, without encoding it: a
 * request that waits before it is encoded (the client's queue) is checked when it is made.
 */
export function checkEncodable(op: Operation, options: EncodeOptions = {}): void {
  layoutOf(op, options);
}

/** Encodes a complete message (header and body). */
export function encodeMessage(id: number, op: Operation, options: EncodeOptions = {}): Uint8Array {
  if (!Number.isInteger(id) || id < 0 || id > 0xffffffff) throw new KeylessFormatError(`request id ${id} is not a u32`);
  const { items, paddingItem, total } = layoutOf(op, options);

  const out = new Uint8Array(HEADER_LENGTH + total);
  const view = new DataView(out.buffer);
  view.setUint8(0, VERSION_MAJOR);
  view.setUint8(1, VERSION_MINOR);
  view.setUint16(2, total);
  view.setUint32(4, id);
  let at = HEADER_LENGTH;
  for (const { tag, value } of items) {
    out[at] = tag;
    view.setUint16(at + 1, value.length);
    out.set(value, at + ITEM_HEADER_LENGTH);
    at += ITEM_HEADER_LENGTH + value.length;
  }
  if (paddingItem > 0) {
    out[at] = Tag.padding;
    view.setUint16(at + 1, paddingItem - ITEM_HEADER_LENGTH); // value bytes are already zero
  }
  return out;
}

/** Decodes one complete message; the header must be version 1 and its length must match. */
export function decodeMessage(bytes: Uint8Array, maxBodyLength = MAX_WIRE_BODY_LENGTH): Message {
  const header = decodeHeader(bytes);
  checkVersion(header);
  if (header.length > maxBodyLength) throw new KeylessOversizedError(header.length, maxBodyLength);
  if (bytes.length !== HEADER_LENGTH + header.length) {
    throw new KeylessFormatError(`header declares ${header.length} body bytes, got ${bytes.length - HEADER_LENGTH}`);
  }
  return { id: header.id, operation: decodeOperation(bytes.subarray(HEADER_LENGTH)) };
}

// --- stream framing -------------------------------------------------------------------------

/** A frame cut from a byte stream: its header and either its body or the fact it was too long. */
export type Frame =
  | { readonly kind: 'message'; readonly header: Header; readonly body: Uint8Array }
  | { readonly kind: 'oversized'; readonly header: Header };

/**
 * Cuts a TCP/TLS byte stream into frames. Never buffers more than one header plus `maxBodyLength`
 * bytes: the body of an oversized frame is skipped as it arrives (the stream stays in sync and the
 * peer still gets an answer for that id).
 *
 * Linear in the bytes pushed however they are cut, and the memory it holds follows the bytes
 * received, not the chunks they came in: a frame's body is copied into one buffer of its own that
 * grows by doubling up to the length its header gives. (Joining the chunks on every push copied
 * ~n²/2 bytes for a frame sent in 1-byte TLS records, 0.9 s of a blocked event loop for 64 KiB;
 * keeping them as a list held a Buffer object of ~115 bytes per 1-byte chunk, 7.6 MB per 64 KiB
 * frame held back by its last byte.) Growing rather than allocating the header's length at once
 * keeps a peer that sends headers and stalls from reserving 64 KiB per connection for free.
 */
export class FrameDecoder {
  /** The header being read when it arrived cut, `headerFill` bytes of it so far. */
  private readonly header = Buffer.alloc(HEADER_LENGTH);
  private headerFill = 0;
  /** The frame whose header was read: its body so far, `fill` bytes of `body`'s capacity. */
  private pending: { header: Header; body: Buffer; fill: number } | undefined;
  private skipping = 0;

  constructor(private readonly maxBodyLength: number = MAX_WIRE_BODY_LENGTH) {}

  push(chunk: Uint8Array): Frame[] {
    const frames: Frame[] = [];
    const n = chunk.byteLength;
    let at = 0;
    while (at < n) {
      if (this.skipping > 0) {
        const skip = Math.min(this.skipping, n - at);
        this.skipping -= skip;
        at += skip;
        continue;
      }
      const p = this.pending;
      if (p !== undefined) {
        const count = Math.min(p.header.length - p.fill, n - at);
        if (p.fill + count > p.body.length) p.body = grow(p.body, p.fill, Math.min(p.header.length, Math.max(p.fill + count, 2 * p.body.length)));
        p.body.set(chunk.subarray(at, at + count), p.fill);
        p.fill += count;
        at += count;
        if (p.fill === p.header.length) {
          frames.push({ kind: 'message', header: p.header, body: p.body });
          this.pending = undefined;
        }
        continue;
      }
      let headerBytes: Uint8Array;
      if (this.headerFill === 0 && n - at >= HEADER_LENGTH) {
        headerBytes = chunk.subarray(at, at + HEADER_LENGTH);
        at += HEADER_LENGTH;
      } else {
        const count = Math.min(HEADER_LENGTH - this.headerFill, n - at);
        this.header.set(chunk.subarray(at, at + count), this.headerFill);
        this.headerFill += count;
        at += count;
        if (this.headerFill < HEADER_LENGTH) break;
        this.headerFill = 0;
        headerBytes = this.header;
      }
      const header = decodeHeader(headerBytes);
      if (header.length > this.maxBodyLength) {
        frames.push({ kind: 'oversized', header });
        this.skipping = header.length;
      } else if (header.length === 0) {
        frames.push({ kind: 'message', header, body: Buffer.alloc(0) });
      } else {
        // A buffer of its own (not Node's shared pool), so the frame pins nothing else.
        this.pending = { header, body: Buffer.allocUnsafeSlow(Math.min(header.length, Math.max(n - at, FIRST_BODY_CAPACITY))), fill: 0 };
      }
    }
    return frames;
  }

  /** Bytes held for an incomplete frame. */
  get buffered(): number {
    return this.headerFill + (this.pending?.fill ?? 0);
  }

  /** Bytes of memory held for an incomplete frame (its body's capacity): at most twice `buffered` plus 4 KiB. */
  get reserved(): number {
    return HEADER_LENGTH + (this.pending?.body.length ?? 0);
  }
}

/** The first capacity of a body that arrives cut (grown by doubling from there). */
const FIRST_BODY_CAPACITY = 4096;

function grow(body: Buffer, fill: number, capacity: number): Buffer {
  const bigger = Buffer.allocUnsafeSlow(capacity);
  body.copy(bigger, 0, 0, fill);
  return bigger;
}
