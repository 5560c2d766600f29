/**
 * ClientHello (RFC 8446 §4.1.2) with the extensions we understand. Unknown extensions are kept
 * (raw, in order) so that a server can route or log them and so that nothing is lost.
 *
 * Encoding is canonical: known extensions in a fixed order, then unknown ones, then
 * pre_shared_key, which MUST be last (§4.2.11). The transcript always uses the bytes as received,
 * never a re-encoding.
 */
import type { Writer } from '../codec.js';
import { Reader } from '../codec.js';
import { DecodeError, PeerMisbehaved } from '../errors.js';
import { ExtensionType } from '../constants.js';
import {
  readAlpnList,
  readExtensions,
  readKeyShareEntry,
  readU16List,
  writeAlpnList,
  writeExtension,
  writeKeyShareEntry,
  writeRawExtensions,
  writeU16List,
  type KeyShareEntry,
  type RawExtension,
} from './extensions.js';

export interface PskIdentity {
  readonly identity: Uint8Array;
  readonly obfuscatedTicketAge: number;
}

/** `OfferedPsks` (§4.2.11): identities and their binders, index-aligned. */
export interface OfferedPsks {
  readonly identities: readonly PskIdentity[];
  readonly binders: readonly Uint8Array[];
}

export interface ClientHelloExtensions {
  /** server_name with a host_name entry (RFC 6066), decoded as ASCII/latin1. */
  readonly serverName?: string;
  readonly supportedGroups?: readonly number[];
  readonly signatureAlgorithms?: readonly number[];
  readonly signatureAlgorithmsCert?: readonly number[];
  readonly supportedVersions?: readonly number[];
  readonly keyShares?: readonly KeyShareEntry[];
  readonly pskKeyExchangeModes?: readonly number[];
  readonly alpn?: readonly string[];
  readonly cookie?: Uint8Array;
  /** The client attempts 0-RTT; we never accept early data, so this is only recorded. */
  readonly earlyData?: boolean;
  readonly postHandshakeAuth?: boolean;
  /** RFC 9345: the schemes the client accepts for a CertificateVerify made with a DC key. */
  readonly delegatedCredential?: readonly number[];
  readonly preSharedKey?: OfferedPsks;
  /** TLS 1.2 (RFC 7627): the client derives the master secret from the session hash. */
  readonly extendedMasterSecret?: boolean;
  /** TLS 1.2 (RFC 5746): `renegotiated_connection`, empty in an initial handshake. */
  readonly renegotiationInfo?: Uint8Array;
  /** TLS 1.2 (RFC 5077): a ticket to resume with; empty when the client asks for a new one. */
  readonly sessionTicket?: Uint8Array;
  /** TLS 1.2 (RFC 8422 §5.1.2): point formats; 0 = uncompressed. */
  readonly ecPointFormats?: readonly number[];
  /** Extensions we do not parse, in the order received. */
  readonly unknown: readonly RawExtension[];
  /**
   * Every extension type in the order received (decoded hellos only): RFC 8446 §4.1.2 wants the
   * ClientHello after a HelloRetryRequest to be the same one, order included.
   */
  readonly order?: readonly number[];
}

export interface ClientHello {
  readonly legacyVersion: number;
  readonly random: Uint8Array;
  readonly legacySessionId: Uint8Array;
  readonly cipherSuites: readonly number[];
  readonly legacyCompressionMethods: Uint8Array;
  readonly extensions: ClientHelloExtensions;
}

const E = ExtensionType;

/** The extensions of a hello that has no extension block. */
const NO_EXTENSIONS: ClientHelloExtensions = Object.freeze({ unknown: Object.freeze([]) });

export function decodeClientHello(body: Uint8Array): ClientHello {
  const r = new Reader(body);
  const legacyVersion = r.u16();
  const random = r.bytes(32);
  const legacySessionId = r.opaque8(0, 32);
  const cipherSuites = readU16List(r, 2, 0xfffe);
  const legacyCompressionMethods = r.opaque8(1);
  // TLS 1.3's ClientHello has `extensions<8..2^16-1>`, but a hello without the block (SSLv3
  // era) or with a shorter one is a TLS 1.2-or-older hello, and Appendix D.2 answers those with
  // protocol_version, not decode_error: it decodes here, without supported_versions, and the
  // server's version check refuses it.
  const extensions = r.isEmpty() ? NO_EXTENSIONS : decodeClientHelloExtensions(r.u16Prefixed());
  r.expectEnd('ClientHello');
  return { legacyVersion, random, legacySessionId, cipherSuites, legacyCompressionMethods, extensions };
}

function decodeClientHelloExtensions(list: Reader): ClientHelloExtensions {
  const ext: { -readonly [K in keyof ClientHelloExtensions]: ClientHelloExtensions[K] } = { unknown: [] };
  const unknown: RawExtension[] = [];
  const order: number[] = [];
  readExtensions(list, (type, r) => {
    if (ext.preSharedKey !== undefined) {
      throw new PeerMisbehaved('PreSharedKeyNotLast', 'pre_shared_key is not the last extension');
    }
    order.push(type);
    switch (type) {
      case E.server_name:
        ext.serverName = readServerName(r);
        return;
      case E.supported_groups:
        ext.supportedGroups = readU16List(r, 2, 0xfffe);
        return;
      case E.signature_algorithms:
        ext.signatureAlgorithms = readU16List(r, 2, 0xfffe);
        return;
      case E.signature_algorithms_cert:
        ext.signatureAlgorithmsCert = readU16List(r, 2, 0xfffe);
        return;
      case E.supported_versions:
        ext.supportedVersions = readVersions(r);
        return;
      case E.key_share:
        ext.keyShares = readClientShares(r);
        return;
      case E.psk_key_exchange_modes:
        ext.pskKeyExchangeModes = [...r.opaque8(1)];
        return;
      case E.application_layer_protocol_negotiation:
        ext.alpn = readAlpnList(r);
        return;
      case E.cookie:
        ext.cookie = r.opaque16(1);
        return;
      case E.early_data:
        ext.earlyData = true;
        return;
      case E.post_handshake_auth:
        ext.postHandshakeAuth = true;
        return;
      case E.delegated_credential:
        ext.delegatedCredential = readU16List(r, 2, 0xfffe);
        return;
      case E.pre_shared_key:
        ext.preSharedKey = readOfferedPsks(r);
        return;
      case E.extended_master_secret:
        ext.extendedMasterSecret = true;
        return;
      case E.renegotiation_info:
        ext.renegotiationInfo = r.opaque8();
        return;
      case E.session_ticket:
        ext.sessionTicket = r.rest();
        return;
      case E.ec_point_formats:
        ext.ecPointFormats = [...r.opaque8(1)];
        return;
      default:
        unknown.push({ type, data: r.rest() });
    }
  });
  ext.unknown = unknown;
  ext.order = order;
  return ext;
}

/** `ServerNameList server_name_list<1..2^16-1>`; we take the host_name (type 0) entry. */
function readServerName(r: Reader): string | undefined {
  const list = r.u16Prefixed(1);
  let host: string | undefined;
  while (!list.isEmpty()) {
    const nameType = list.u8();
    const name = list.opaque16(1);
    if (nameType !== 0) continue; // other name types are not defined; ignore them
    if (host !== undefined) throw new PeerMisbehaved('DuplicateServerName', 'two host_name entries in server_name');
    // An index loop and a view, not an iterator and a copy: this runs once per connection, and
    // allocation per handshake is what the collector costs us (bench/results/socket-path.md).
    for (let i = 0; i < name.length; i++) {
      const c = name[i]!;
      // RFC 6066 §3: a DNS host name in ASCII. Control characters (BEL, ESC sequences) would
      // reach logs and name matching; a byte over 0x7e is not ASCII (IDNs come as A-labels).
      if (c < 0x20 || c > 0x7e) throw new PeerMisbehaved('ServerNameNotAscii', 'server_name host_name is not printable ASCII');
    }
    host = Buffer.from(name.buffer, name.byteOffset, name.length).toString('latin1');
  }
  return host;
}

/** `ProtocolVersion versions<2..254>` */
function readVersions(r: Reader): number[] {
  const v = r.u8Prefixed(2, 254);
  if (v.remaining % 2 !== 0) throw new DecodeError('odd-length supported_versions');
  const out: number[] = [];
  while (!v.isEmpty()) out.push(v.u16());
  return out;
}

function readClientShares(r: Reader): KeyShareEntry[] {
  const list = r.u16Prefixed();
  const out: KeyShareEntry[] = [];
  // A Set, not a search of `out`: a 128 KiB hello holds ~30,000 shares, and work stays linear.
  const seen = new Set<number>();
  while (!list.isEmpty()) {
    const e = readKeyShareEntry(list);
    if (seen.has(e.group)) {
      throw new PeerMisbehaved('DuplicateKeyShareGroup', `two key shares for group ${e.group}`);
    }
    seen.add(e.group);
    out.push(e);
  }
  return out;
}

function readOfferedPsks(r: Reader): OfferedPsks {
  const ids = r.u16Prefixed(7);
  const identities: PskIdentity[] = [];
  while (!ids.isEmpty()) {
    const identity = ids.opaque16(1);
    const obfuscatedTicketAge = ids.u32();
    identities.push({ identity, obfuscatedTicketAge });
  }
  const bs = r.u16Prefixed(33);
  const binders: Uint8Array[] = [];
  while (!bs.isEmpty()) binders.push(bs.opaque8(32));
  if (binders.length !== identities.length) {
    throw new PeerMisbehaved('BinderCountMismatch', 'pre_shared_key: number of binders differs from identities');
  }
  return { identities, binders };
}

export function writeClientHello(w: Writer, ch: ClientHello): void {
  w.u16(ch.legacyVersion).bytes(ch.random).opaque8(ch.legacySessionId);
  writeU16List(w, ch.cipherSuites);
  w.opaque8(ch.legacyCompressionMethods);
  w.u16Prefixed((w) => writeClientHelloExtensions(w, ch.extensions));
}

function writeClientHelloExtensions(w: Writer, e: ClientHelloExtensions): void {
  if (e.serverName !== undefined) {
    const name = Buffer.from(e.serverName, 'latin1');
    writeExtension(w, E.server_name, (w) => w.u16Prefixed((w) => w.u8(0).opaque16(name)));
  }
  if (e.supportedGroups) writeExtension(w, E.supported_groups, (w) => writeU16List(w, e.supportedGroups!));
  if (e.signatureAlgorithms) writeExtension(w, E.signature_algorithms, (w) => writeU16List(w, e.signatureAlgorithms!));
  if (e.signatureAlgorithmsCert) {
    writeExtension(w, E.signature_algorithms_cert, (w) => writeU16List(w, e.signatureAlgorithmsCert!));
  }
  if (e.supportedVersions) {
    writeExtension(w, E.supported_versions, (w) =>
      w.u8Prefixed((w) => {
        for (const v of e.supportedVersions!) w.u16(v);
      }),
    );
  }
  if (e.keyShares) {
    writeExtension(w, E.key_share, (w) =>
      w.u16Prefixed((w) => {
        for (const k of e.keyShares!) writeKeyShareEntry(w, k);
      }),
    );
  }
  if (e.pskKeyExchangeModes) {
    writeExtension(w, E.psk_key_exchange_modes, (w) => w.opaque8(Uint8Array.from(e.pskKeyExchangeModes!)));
  }
  if (e.alpn) writeExtension(w, E.application_layer_protocol_negotiation, (w) => writeAlpnList(w, e.alpn!));
  if (e.cookie) writeExtension(w, E.cookie, (w) => w.opaque16(e.cookie!));
  if (e.earlyData) writeExtension(w, E.early_data, () => {});
  if (e.postHandshakeAuth) writeExtension(w, E.post_handshake_auth, () => {});
  if (e.delegatedCredential) {
    writeExtension(w, E.delegated_credential, (w) => writeU16List(w, e.delegatedCredential!));
  }
  if (e.extendedMasterSecret) writeExtension(w, E.extended_master_secret, () => {});
  if (e.renegotiationInfo) writeExtension(w, E.renegotiation_info, (w) => w.opaque8(e.renegotiationInfo!));
  if (e.sessionTicket) writeExtension(w, E.session_ticket, (w) => w.bytes(e.sessionTicket!));
  if (e.ecPointFormats) writeExtension(w, E.ec_point_formats, (w) => w.opaque8(Uint8Array.from(e.ecPointFormats!)));
  writeRawExtensions(w, e.unknown);
  if (e.preSharedKey) writeExtension(w, E.pre_shared_key, (w) => writeOfferedPsks(w, e.preSharedKey!));
}

export function writeOfferedPsks(w: Writer, p: OfferedPsks): void {
  w.u16Prefixed((w) => {
    for (const id of p.identities) w.opaque16(id.identity).u32(id.obfuscatedTicketAge);
  });
  writeBinders(w, p.binders);
}

export function writeBinders(w: Writer, binders: readonly Uint8Array[]): void {
  w.u16Prefixed((w) => {
    for (const b of binders) w.opaque8(b);
  });
}

/** Length of the encoded binders list (2-byte prefix included) at the end of a ClientHello. */
export function bindersLength(binders: readonly Uint8Array[]): number {
  let n = 2;
  for (const b of binders) n += 1 + b.length;
  return n;
}
