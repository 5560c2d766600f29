/**
 * Handshake framing (RFC 8446 §4) and the messages after the hellos: EncryptedExtensions,
 * Certificate, CertificateRequest, CertificateVerify, Finished, NewSessionTicket, KeyUpdate.
 */
import { Reader, Writer, allocUnfilled } from '../codec.js';
import { DecodeError, PeerMisbehaved } from '../errors.js';
import { ExtensionType, HandshakeType, KeyUpdateRequest } from '../constants.js';
import {
  readAlpnList,
  readExtensions,
  readU16List,
  writeExtension,
  writeRawExtensions,
  writeU16List,
  type RawExtension,
} from './extensions.js';
import { isKnownExtension } from './server-hello.js';

const E = ExtensionType;

/**
 * Largest body of any handshake message but Certificate (Go's crypto/tls: maxHandshake). Real
 * ones are far smaller: a ClientHello with a post-quantum share (X25519MLKEM768, 1,216 bytes of
 * key share) is ~2 KB, an ML-DSA-87 CertificateVerify ~4.7 KB; the headroom covers GREASE,
 * padding, many PSK identities or shares, and SLH-DSA signatures (up to ~50 KB).
 */
export const MAX_HANDSHAKE_BODY = 1 << 16;

/**
 * Largest ClientHello body that can be well formed (OpenSSL's CLIENT_HELLO_MAX_LENGTH): version 2,
 * random 32, session id 1 + 32, cipher suites 2 + 65534, compression methods 1 + 255, extensions
 * 2 + 65535. A client may legally fill the extension block (tlsfuzzer sends 32,715
 * signature_algorithms entries), so the limit is the syntax's, not a policy of ours; a larger one
 * cannot decode (decode_error at its header, `OversizedClientHello`).
 */
export const MAX_CLIENT_HELLO_BODY = 2 + 32 + (1 + 32) + (2 + 65534) + (1 + 255) + (2 + 65535);

/**
 * Largest NewSessionTicket body that can be well formed (OpenSSL's SESSION_TICKET_MAX_LENGTH_TLS13):
 * lifetime 4, age_add 4, nonce 1 + 255, ticket 2 + 65535, extensions 2 + 65534 (RFC 8446 §4.6.1).
 * A ticket is optional, but a message within the syntax's bounds is no protocol error: a client
 * that refused it would end a working connection over a ticket it may simply not use. A larger one
 * cannot be well formed and is refused at its header. TLS 1.2's (RFC 5077 §3.3: 4 + 2 + 65535) is smaller.
 */
export const MAX_NEW_SESSION_TICKET_BODY = 4 + 4 + (1 + 255) + (2 + 65535) + (2 + 65534);

/**
 * Largest Certificate body (Go's maxHandshakeCertificateMsg): a chain of a few certificates
 * with ML-DSA keys and signatures (~4-7 KB each) plus entry extensions (delegated credential,
 * OCSP, SCTs) stays well below it.
 */
export const MAX_CERTIFICATE_BODY = 1 << 18;

/**
 * The body size limit of a handshake message type, checked at its 4-byte header before any of
 * the body is buffered (the TLS 1.2 messages too: the state machine says which may arrive when);
 * 0 for types never received as we speak TLS: end_of_early_data
 * (we never accept 0-RTT), message_hash (transcript only), and unknown types.
 */
export function maxHandshakeBody(type: number): number {
  switch (type) {
    case HandshakeType.certificate:
      return MAX_CERTIFICATE_BODY;
    case HandshakeType.client_hello:
      return MAX_CLIENT_HELLO_BODY;
    case HandshakeType.new_session_ticket:
      return MAX_NEW_SESSION_TICKET_BODY;
    case HandshakeType.server_hello:
    case HandshakeType.encrypted_extensions:
    case HandshakeType.certificate_request:
    case HandshakeType.certificate_verify:
    case HandshakeType.finished:
    case HandshakeType.key_update:
    case HandshakeType.server_key_exchange:
    case HandshakeType.server_hello_done:
    case HandshakeType.client_key_exchange:
    case HandshakeType.hello_request: // empty (RFC 5246 §7.4.1.1); a body is decode_error at the TLS 1.2 client
      return MAX_HANDSHAKE_BODY;
    default:
      return 0;
  }
}

/** `Handshake` header: msg_type u8, length u24, then the body. */
export function frameHandshake(type: number, body: Uint8Array): Uint8Array {
  const out = allocUnfilled(4 + body.length);
  out[0] = type;
  out[1] = body.length >>> 16;
  out[2] = (body.length >>> 8) & 0xff;
  out[3] = body.length & 0xff;
  out.set(body, 4);
  return out;
}

/** Encodes a message body with `body` and frames it in one buffer (no extra copy). */
export function encodeHandshake(type: number, body: (w: Writer) => void, capacity = 256): Uint8Array {
  const w = new Writer(capacity);
  const length = w.u8(type).open(3);
  body(w);
  return w.close(length).finish();
}

// --- EncryptedExtensions (§4.3.1) -----------------------------------------------------------

export interface EncryptedExtensions {
  /** The server acknowledges SNI with an empty server_name extension. */
  readonly serverNameAck?: boolean;
  readonly supportedGroups?: readonly number[];
  /** The single selected ALPN protocol. */
  readonly alpn?: string;
  readonly earlyData?: boolean;
  readonly unknown: readonly RawExtension[];
}

const notInEncryptedExtensions = new Set<number>([
  E.supported_versions,
  E.key_share,
  E.pre_shared_key,
  E.psk_key_exchange_modes,
  E.cookie,
  E.signature_algorithms,
  E.signature_algorithms_cert,
  E.certificate_authorities,
  E.oid_filters,
  E.post_handshake_auth,
  E.status_request,
  E.signed_certificate_timestamp,
  E.delegated_credential,
  E.padding,
]);

export function decodeEncryptedExtensions(body: Uint8Array): EncryptedExtensions {
  const r = new Reader(body);
  const ext: { -readonly [K in keyof EncryptedExtensions]: EncryptedExtensions[K] } = { unknown: [] };
  const unknown: RawExtension[] = [];
  readExtensions(r.u16Prefixed(), (type, e) => {
    switch (type) {
      case E.server_name:
        ext.serverNameAck = true;
        return;
      case E.supported_groups:
        ext.supportedGroups = readU16List(e);
        return;
      case E.application_layer_protocol_negotiation: {
        const list = readAlpnList(e);
        if (list.length !== 1) throw new PeerMisbehaved('SelectedUnofferedAlpnProtocol', 'server selected more than one ALPN protocol');
        ext.alpn = list[0];
        return;
      }
      case E.early_data:
        ext.earlyData = true;
        return;
      default:
        if (notInEncryptedExtensions.has(type)) {
          throw new PeerMisbehaved('ExtensionNotAllowedHere', `extension ${type} not allowed in EncryptedExtensions`);
        }
        unknown.push({ type, data: e.rest() });
    }
  });
  r.expectEnd('EncryptedExtensions');
  ext.unknown = unknown;
  return ext;
}

export function writeEncryptedExtensions(w: Writer, ee: EncryptedExtensions): void {
  // Vectors opened and closed in place (no callbacks): this runs once per handshake.
  const list = w.open(2);
  if (ee.serverNameAck) w.u16(E.server_name).u16(0);
  if (ee.supportedGroups) writeExtension(w, E.supported_groups, (w) => writeU16List(w, ee.supportedGroups!));
  if (ee.alpn !== undefined) {
    const ext = w.u16(E.application_layer_protocol_negotiation).open(2);
    const names = w.open(2);
    w.opaque8(Buffer.from(ee.alpn, 'latin1'));
    w.close(names).close(ext);
  }
  if (ee.earlyData) w.u16(E.early_data).u16(0);
  writeRawExtensions(w, ee.unknown);
  w.close(list);
}

// --- Certificate (§4.4.2) -------------------------------------------------------------------

export interface CertificateEntry {
  /** DER of an X.509 certificate. */
  readonly data: Uint8Array;
  /**
   * Per-entry extensions, raw. RFC 9345 puts the delegated credential (type 34) in the
   * end-entity (first) entry; status_request and signed_certificate_timestamp may appear too.
   */
  readonly extensions: readonly RawExtension[];
}

export interface CertificateMessage {
  readonly context: Uint8Array;
  readonly entries: readonly CertificateEntry[];
}

const certificateEntryExtensions = new Set<number>([
  E.status_request,
  E.signed_certificate_timestamp,
  E.delegated_credential,
]);

export function decodeCertificate(body: Uint8Array): CertificateMessage {
  const r = new Reader(body);
  const context = r.opaque8();
  const list = r.u24Prefixed();
  const entries: CertificateEntry[] = [];
  while (!list.isEmpty()) {
    const data = list.opaque24(1);
    const extensions: RawExtension[] = [];
    readExtensions(list.u16Prefixed(), (type, e) => {
      if (!certificateEntryExtensions.has(type)) {
        if (isKnownExtension(type)) throw new PeerMisbehaved('ExtensionNotAllowedHere', `extension ${type} not allowed in CertificateEntry`);
        throw new PeerMisbehaved('UnsolicitedExtension', `unsolicited extension ${type} in CertificateEntry`);
      }
      extensions.push({ type, data: e.rest() });
    });
    entries.push({ data, extensions });
  }
  r.expectEnd('Certificate');
  return { context, entries };
}

export function writeCertificate(w: Writer, c: CertificateMessage): void {
  w.opaque8(c.context);
  w.u24Prefixed((w) => {
    for (const e of c.entries) {
      w.opaque24(e.data);
      w.u16Prefixed((w) => writeRawExtensions(w, e.extensions));
    }
  });
}

// --- CertificateRequest (§4.3.2) ------------------------------------------------------------

export interface CertificateRequest {
  readonly context: Uint8Array;
  readonly signatureAlgorithms?: readonly number[];
  readonly signatureAlgorithmsCert?: readonly number[];
  /** RFC 9345: the server accepts client DCs with these CertificateVerify schemes. */
  readonly delegatedCredential?: readonly number[];
  /** DistinguishedName values, raw DER. */
  readonly certificateAuthorities?: readonly Uint8Array[];
  readonly unknown: readonly RawExtension[];
}

export function decodeCertificateRequest(body: Uint8Array): CertificateRequest {
  const r = new Reader(body);
  const context = r.opaque8();
  const cr: { -readonly [K in keyof CertificateRequest]: CertificateRequest[K] } = { context, unknown: [] };
  const unknown: RawExtension[] = [];
  readExtensions(r.u16Prefixed(2), (type, e) => {
    switch (type) {
      case E.signature_algorithms:
        cr.signatureAlgorithms = readU16List(e);
        return;
      case E.signature_algorithms_cert:
        cr.signatureAlgorithmsCert = readU16List(e);
        return;
      case E.delegated_credential:
        cr.delegatedCredential = readU16List(e);
        return;
      case E.certificate_authorities: {
        const list = e.u16Prefixed(3);
        const names: Uint8Array[] = [];
        while (!list.isEmpty()) names.push(list.opaque16(1));
        cr.certificateAuthorities = names;
        return;
      }
      default:
        unknown.push({ type, data: e.rest() });
    }
  });
  r.expectEnd('CertificateRequest');
  cr.unknown = unknown;
  return cr;
}

export function writeCertificateRequest(w: Writer, cr: CertificateRequest): void {
  w.opaque8(cr.context);
  w.u16Prefixed((w) => {
    if (cr.signatureAlgorithms) writeExtension(w, E.signature_algorithms, (w) => writeU16List(w, cr.signatureAlgorithms!));
    if (cr.signatureAlgorithmsCert) {
      writeExtension(w, E.signature_algorithms_cert, (w) => writeU16List(w, cr.signatureAlgorithmsCert!));
    }
    if (cr.delegatedCredential) writeExtension(w, E.delegated_credential, (w) => writeU16List(w, cr.delegatedCredential!));
    if (cr.certificateAuthorities) {
      writeExtension(w, E.certificate_authorities, (w) =>
        w.u16Prefixed((w) => {
          for (const n of cr.certificateAuthorities!) w.opaque16(n);
        }),
      );
    }
    writeRawExtensions(w, cr.unknown);
  });
}

// --- CertificateVerify (§4.4.3) -------------------------------------------------------------

export interface CertificateVerify {
  readonly scheme: number;
  readonly signature: Uint8Array;
}

export function decodeCertificateVerify(body: Uint8Array): CertificateVerify {
  const r = new Reader(body);
  const scheme = r.u16();
  const signature = r.opaque16(1);
  r.expectEnd('CertificateVerify');
  return { scheme, signature };
}

export function writeCertificateVerify(w: Writer, cv: CertificateVerify): void {
  w.u16(cv.scheme).opaque16(cv.signature);
}

// --- Finished (§4.4.4) ----------------------------------------------------------------------

/** Finished is the bare verify_data; its length is the hash length of the suite. */
export function decodeFinished(body: Uint8Array, hashLength: number): Uint8Array {
  if (body.length !== hashLength) throw new DecodeError(`Finished of ${body.length} bytes, expected ${hashLength}`);
  return body;
}

// --- NewSessionTicket (§4.6.1) --------------------------------------------------------------

export interface NewSessionTicket {
  readonly lifetime: number;
  readonly ageAdd: number;
  readonly nonce: Uint8Array;
  readonly ticket: Uint8Array;
  readonly earlyDataMaxSize?: number;
  readonly unknown: readonly RawExtension[];
}

export function decodeNewSessionTicket(body: Uint8Array): NewSessionTicket {
  const r = new Reader(body);
  const lifetime = r.u32();
  const ageAdd = r.u32();
  const nonce = r.opaque8();
  const ticket = r.opaque16(1);
  let earlyDataMaxSize: number | undefined;
  const unknown: RawExtension[] = [];
  readExtensions(r.u16Prefixed(0, 0xfffe), (type, e) => {
    if (type === E.early_data) earlyDataMaxSize = e.u32();
    else if (isKnownExtension(type)) throw new PeerMisbehaved('ExtensionNotAllowedHere', `extension ${type} not allowed in NewSessionTicket`);
    else unknown.push({ type, data: e.rest() });
  });
  r.expectEnd('NewSessionTicket');
  if (lifetime > 604800) throw new PeerMisbehaved('TicketLifetimeTooLong', 'ticket lifetime over 7 days');
  return earlyDataMaxSize === undefined
    ? { lifetime, ageAdd, nonce, ticket, unknown }
    : { lifetime, ageAdd, nonce, ticket, earlyDataMaxSize, unknown };
}

export function writeNewSessionTicket(w: Writer, t: NewSessionTicket): void {
  w.u32(t.lifetime).u32(t.ageAdd).opaque8(t.nonce).opaque16(t.ticket);
  w.u16Prefixed((w) => {
    if (t.earlyDataMaxSize !== undefined) writeExtension(w, E.early_data, (w) => w.u32(t.earlyDataMaxSize!));
    writeRawExtensions(w, t.unknown);
  });
}

// --- KeyUpdate (§4.6.3) ---------------------------------------------------------------------

export function decodeKeyUpdate(body: Uint8Array): KeyUpdateRequest {
  const r = new Reader(body);
  const v = r.u8();
  r.expectEnd('KeyUpdate');
  if (v !== KeyUpdateRequest.update_not_requested && v !== KeyUpdateRequest.update_requested) {
    throw new PeerMisbehaved('IllegalKeyUpdateRequest', `KeyUpdate request_update ${v}`);
  }
  return v;
}

