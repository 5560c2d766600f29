/**
 * Extension framing shared by every message (RFC 8446 §4.2) and the codecs of the extension
 * bodies that appear in more than one message.
 *
 * Each message decoder walks the extension list once with `readExtensions`, which rejects a
 * duplicate extension type with illegal_parameter (RFC 8446 §4.2: "There MUST NOT be more than
 * one extension of the same type in a given extension block").
 */
import type { Reader, Writer } from '../codec.js';
import { DecodeError, PeerMisbehaved } from '../errors.js';

/** An extension kept as raw bytes: unknown ones, and the per-entry Certificate extensions. */
export interface RawExtension {
  readonly type: number;
  readonly data: Uint8Array;
}

export interface KeyShareEntry {
  readonly group: number;
  readonly keyExchange: Uint8Array;
}

/**
 * Calls `each(type, body)` for every extension in the list; `body` is a reader bounded to that
 * extension's data, and `each` must consume it completely (checked here). Duplicates are found
 * by a scan of the types seen so far (a hello carries a dozen extensions), switching to a Set
 * only for long lists so that a hostile list cannot make the scan quadratic.
 */
export function readExtensions(list: Reader, each: (type: number, body: Reader) => void): void {
  const seen: number[] = [];
  let seenSet: Set<number> | undefined;
  while (!list.isEmpty()) {
    const type = list.u16();
    const body = list.u16Prefixed();
    if (seenSet ? seenSet.has(type) : seen.includes(type)) throw new PeerMisbehaved('DuplicateExtension', `duplicate extension ${type}`);
    if (seenSet) seenSet.add(type);
    else if (seen.push(type) > 16) seenSet = new Set(seen);
    each(type, body);
    if (!body.isEmpty()) body.expectEnd(`extension ${type}`);
  }
}

export function writeExtension(w: Writer, type: number, body: (w: Writer) => void): void {
  w.u16(type).u16Prefixed(body);
}

export function writeRawExtensions(w: Writer, exts: readonly RawExtension[]): void {
  for (const e of exts) w.u16(e.type).opaque16(e.data);
}

/** `SignatureSchemeList supported_signature_algorithms<2..2^16-2>` (also NamedGroupList shape). */
export function readU16List(r: Reader, min = 2, max = 0xfffe): number[] {
  const v = r.u16Prefixed(min, max);
  if (v.remaining % 2 !== 0) throw new DecodeError('odd-length u16 list');
  const out: number[] = [];
  while (!v.isEmpty()) out.push(v.u16());
  return out;
}

export function writeU16List(w: Writer, list: readonly number[]): void {
  w.u16Prefixed((w) => {
    for (const v of list) w.u16(v);
  });
}

/** ALPN `ProtocolNameList protocol_name_list<2..2^16-1>`, names `opaque<1..2^8-1>` (latin1). */
export function readAlpnList(r: Reader): string[] {
  const v = r.u16Prefixed(2);
  const out: string[] = [];
  while (!v.isEmpty()) out.push(Buffer.from(v.opaque8(1)).toString('latin1'));
  return out;
}

export function writeAlpnList(w: Writer, names: readonly string[]): void {
  w.u16Prefixed((w) => {
    for (const n of names) w.opaque8(Buffer.from(n, 'latin1'));
  });
}

export function readKeyShareEntry(r: Reader): KeyShareEntry {
  const group = r.u16();
  const keyExchange = r.opaque16(1);
  return { group, keyExchange };
}

export function writeKeyShareEntry(w: Writer, e: KeyShareEntry): void {
  w.u16(e.group).opaque16(e.keyExchange);
}
