/**
 * ServerHello and HelloRetryRequest (RFC 8446 §4.1.3, §4.1.4). They share one wire structure;
 * a HelloRetryRequest is a ServerHello whose random is the special HRR value, and its key_share
 * carries only the selected group.
 */
import type { Writer } from '../codec.js';
import { Reader } from '../codec.js';
import { PeerMisbehaved } from '../errors.js';
import { ExtensionType, HELLO_RETRY_REQUEST_RANDOM } from '../constants.js';
import { readExtensions, readKeyShareEntry, writeKeyShareEntry, type KeyShareEntry } from './extensions.js';

export interface ServerHelloExtensions {
  readonly supportedVersion?: number;
  /** ServerHello only: the server's share. */
  readonly keyShare?: KeyShareEntry;
  /** HelloRetryRequest only: the group the client must use. */
  readonly selectedGroup?: number;
  /** HelloRetryRequest only. */
  readonly cookie?: Uint8Array;
  /** ServerHello only: index of the accepted PSK identity. */
  readonly preSharedKey?: number;
}

export interface ServerHello {
  readonly legacyVersion: number;
  readonly random: Uint8Array;
  readonly legacySessionIdEcho: Uint8Array;
  readonly cipherSuite: number;
  readonly legacyCompressionMethod: number;
  readonly extensions: ServerHelloExtensions;
}

const E = ExtensionType;

export function isHelloRetryRequestRandom(random: Uint8Array): boolean {
  if (random.length !== 32) return false;
  for (let i = 0; i < 32; i++) if (random[i] !== HELLO_RETRY_REQUEST_RANDOM[i]) return false;
  return true;
}

/**
 * Decodes a ServerHello or HelloRetryRequest. Extensions other than those allowed for the
 * message are rejected: known-but-misplaced with illegal_parameter, unknown with
 * unsupported_extension (a client never offered them, RFC 8446 §4.2).
 */
export function decodeServerHello(body: Uint8Array): ServerHello {
  const r = new Reader(body);
  const legacyVersion = r.u16();
  const random = r.bytes(32);
  const legacySessionIdEcho = r.opaque8(0, 32);
  const cipherSuite = r.u16();
  const legacyCompressionMethod = r.u8();
  const hrr = isHelloRetryRequestRandom(random);
  const ext: { -readonly [K in keyof ServerHelloExtensions]: ServerHelloExtensions[K] } = {};
  readExtensions(r.u16Prefixed(6), (type, e) => {
    switch (type) {
      case E.supported_versions:
        ext.supportedVersion = e.u16();
        return;
      case E.key_share:
        if (hrr) ext.selectedGroup = e.u16();
        else ext.keyShare = readKeyShareEntry(e);
        return;
      case E.cookie:
        if (!hrr) throw new PeerMisbehaved('ExtensionNotAllowedHere', 'cookie in ServerHello');
        ext.cookie = e.opaque16(1);
        return;
      case E.pre_shared_key:
        if (hrr) throw new PeerMisbehaved('ExtensionNotAllowedHere', 'pre_shared_key in HelloRetryRequest');
        ext.preSharedKey = e.u16();
        return;
      default:
        if (isKnownExtension(type)) throw new PeerMisbehaved('ExtensionNotAllowedHere', `extension ${type} not allowed in ServerHello`);
        throw new PeerMisbehaved('UnsolicitedExtension', `unsolicited extension ${type} in ServerHello`);
    }
  });
  r.expectEnd('ServerHello');
  return { legacyVersion, random, legacySessionIdEcho, cipherSuite, legacyCompressionMethod, extensions: ext };
}

export function writeServerHello(w: Writer, sh: ServerHello): void {
  const hrr = isHelloRetryRequestRandom(sh.random);
  const e = sh.extensions;
  w.u16(sh.legacyVersion).bytes(sh.random).opaque8(sh.legacySessionIdEcho).u16(sh.cipherSuite).u8(sh.legacyCompressionMethod);
  // Vectors opened and closed in place (no callbacks): this runs once per handshake.
  const list = w.open(2);
  if (e.supportedVersion !== undefined) w.u16(E.supported_versions).u16(2).u16(e.supportedVersion);
  if (hrr && e.selectedGroup !== undefined) w.u16(E.key_share).u16(2).u16(e.selectedGroup);
  if (!hrr && e.keyShare) {
    const ext = w.u16(E.key_share).open(2);
    writeKeyShareEntry(w, e.keyShare);
    w.close(ext);
  }
  if (hrr && e.cookie) {
    const ext = w.u16(E.cookie).open(2);
    w.opaque16(e.cookie);
    w.close(ext);
  }
  if (!hrr && e.preSharedKey !== undefined) w.u16(E.pre_shared_key).u16(2).u16(e.preSharedKey);
  w.close(list);
}

const knownExtensions = new Set<number>(Object.values(ExtensionType));
/** Extension types this implementation recognizes (for the illegal_parameter vs unsupported rule). */
export function isKnownExtension(type: number): boolean {
  return knownExtensions.has(type);
}
