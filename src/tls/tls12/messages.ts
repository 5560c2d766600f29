/**
 * TLS 1.2 handshake messages that differ from TLS 1.3's: ServerHello with the TLS 1.2
 * extensions, Certificate (a bare list), CertificateRequest (RFC 5246 §7.4.4), ServerKeyExchange and ClientKeyExchange for ECDHE
 * (RFC 8422 §5.4, §5.7), ServerHelloDone, NewSessionTicket (RFC 5077 §3.3). Bounded Reader and
 * Writer of codec.ts; duplicate extensions are refused by readExtensions.
 */
import { Reader, type Writer } from '../codec.js';
import { ExtensionType } from '../constants.js';
import { DecodeError, PeerMisbehaved } from '../errors.js';
import { readAlpnList, readExtensions } from '../messages/extensions.js';
import { isKnownExtension } from '../messages/server-hello.js';

const E = ExtensionType;

// --- ServerHello (RFC 5246 §7.4.1.3) ----------------------------------------------------------

export interface ServerHello12 {
  readonly random: Uint8Array;
  readonly sessionId: Uint8Array;
  readonly cipherSuite: number;
  /** RFC 5746: renegotiated_connection, empty in an initial handshake; absent = not sent. */
  readonly renegotiationInfo?: Uint8Array;
  readonly extendedMasterSecret: boolean;
  /** RFC 5077: the server will send a NewSessionTicket. */
  readonly sessionTicket: boolean;
  /** RFC 8422: sent when the client sent its point formats. */
  readonly ecPointFormats?: readonly number[];
  readonly alpn?: string;
  readonly serverNameAck: boolean;
}

export function writeServerHello12(w: Writer, sh: ServerHello12): void {
  w.u16(0x0303).bytes(sh.random).opaque8(sh.sessionId).u16(sh.cipherSuite).u8(0);
  const list = w.open(2);
  if (sh.renegotiationInfo) w.u16(E.renegotiation_info).u16(1 + sh.renegotiationInfo.length).opaque8(sh.renegotiationInfo);
  if (sh.extendedMasterSecret) w.u16(E.extended_master_secret).u16(0);
  if (sh.sessionTicket) w.u16(E.session_ticket).u16(0);
  if (sh.ecPointFormats) w.u16(E.ec_point_formats).u16(1 + sh.ecPointFormats.length).opaque8(Uint8Array.from(sh.ecPointFormats));
  if (sh.serverNameAck) w.u16(E.server_name).u16(0);
  if (sh.alpn !== undefined) {
    const name = Buffer.from(sh.alpn, 'latin1');
    w.u16(E.application_layer_protocol_negotiation).u16(3 + name.length).u16(1 + name.length).opaque8(name);
  }
  w.close(list);
}

export function decodeServerHello12(body: Uint8Array): ServerHello12 & { readonly legacyVersion: number; readonly compression: number } {
  const r = new Reader(body);
  const legacyVersion = r.u16();
  const random = r.bytes(32);
  const sessionId = r.opaque8(0, 32);
  const cipherSuite = r.u16();
  const compression = r.u8();
  let renegotiationInfo: Uint8Array | undefined;
  let extendedMasterSecret = false;
  let sessionTicket = false;
  let ecPointFormats: number[] | undefined;
  let alpn: string | undefined;
  let serverNameAck = false;
  if (!r.isEmpty()) {
    readExtensions(r.u16Prefixed(), (type, e) => {
      switch (type) {
        case E.renegotiation_info:
          renegotiationInfo = e.opaque8();
          return;
        case E.extended_master_secret:
          extendedMasterSecret = true;
          return;
        case E.session_ticket:
          sessionTicket = true;
          return;
        case E.ec_point_formats:
          ecPointFormats = [...e.opaque8(1)];
          return;
        case E.server_name:
          serverNameAck = true;
          return;
        case E.application_layer_protocol_negotiation: {
          const list = readAlpnList(e);
          if (list.length !== 1) throw new PeerMisbehaved('SelectedUnofferedAlpnProtocol', 'server selected more than one ALPN protocol');
          alpn = list[0];
          return;
        }
        default:
          if (isKnownExtension(type)) throw new PeerMisbehaved('ExtensionNotAllowedHere', `extension ${type} not allowed in a TLS 1.2 ServerHello`);
          throw new PeerMisbehaved('UnsolicitedExtension', `unsolicited extension ${type} in ServerHello`);
      }
    });
  }
  r.expectEnd('ServerHello');
  return {
    legacyVersion,
    random,
    sessionId,
    cipherSuite,
    compression,
    ...(renegotiationInfo ? { renegotiationInfo } : {}),
    extendedMasterSecret,
    sessionTicket,
    ...(ecPointFormats ? { ecPointFormats } : {}),
    ...(alpn !== undefined ? { alpn } : {}),
    serverNameAck,
  };
}

// --- Certificate (RFC 5246 §7.4.2): certificate_list<0..2^24-1> of ASN.1Cert<1..2^24-1> -------

export function writeCertificate12(w: Writer, chain: readonly Uint8Array[]): void {
  const list = w.open(3);
  for (const c of chain) w.opaque24(c);
  w.close(list);
}

export function decodeCertificate12(body: Uint8Array): Uint8Array[] {
  const r = new Reader(body);
  const list = r.u24Prefixed();
  const chain: Uint8Array[] = [];
  while (!list.isEmpty()) chain.push(list.opaque24(1));
  r.expectEnd('Certificate');
  return chain;
}

// --- CertificateRequest (RFC 5246 §7.4.4) ------------------------------------------------------

/** ClientCertificateType (RFC 5246 §7.4.4, RFC 8422 §5.5): the key types a client certificate may have. */
export const ClientCertificateType = { rsa_sign: 1, ecdsa_sign: 64 } as const;

export interface CertificateRequest12 {
  /** certificate_types<1..2^8-1>. */
  readonly certificateTypes: readonly number[];
  /** supported_signature_algorithms<2..2^16-2>: the schemes a CertificateVerify may use. */
  readonly signatureAlgorithms: readonly number[];
  /** certificate_authorities<0..2^16-1> of DER DistinguishedName<1..2^16-1>; empty: any CA. */
  readonly certificateAuthorities: readonly Uint8Array[];
}

export function writeCertificateRequest12(w: Writer, cr: CertificateRequest12): void {
  w.opaque8(Uint8Array.from(cr.certificateTypes));
  const algs = w.open(2);
  for (const s of cr.signatureAlgorithms) w.u16(s);
  w.close(algs);
  const cas = w.open(2);
  for (const dn of cr.certificateAuthorities) w.opaque16(dn);
  w.close(cas);
}

export function decodeCertificateRequest12(body: Uint8Array): CertificateRequest12 {
  const r = new Reader(body);
  const certificateTypes = [...r.opaque8(1)];
  const algs = r.u16Prefixed(2);
  const signatureAlgorithms: number[] = [];
  while (!algs.isEmpty()) signatureAlgorithms.push(algs.u16());
  const cas = r.u16Prefixed();
  const certificateAuthorities: Uint8Array[] = [];
  while (!cas.isEmpty()) certificateAuthorities.push(cas.opaque16(1));
  r.expectEnd('CertificateRequest');
  return { certificateTypes, signatureAlgorithms, certificateAuthorities };
}

// --- CertificateVerify (RFC 5246 §7.4.8): a DigitallySigned, scheme and signature<0..2^16-1> ----

/**
 * The client's CertificateVerify. An empty signature is well-formed here (the vector's floor is
 * 0) and simply does not verify: decrypt_error, as OpenSSL answers, not decode_error.
 */
export function decodeCertificateVerify12(body: Uint8Array): { readonly scheme: number; readonly signature: Uint8Array } {
  const r = new Reader(body);
  const scheme = r.u16();
  const signature = r.opaque16();
  r.expectEnd('CertificateVerify');
  return { scheme, signature };
}

// --- ServerKeyExchange for ECDHE (RFC 8422 §5.4) ----------------------------------------------

/** ECCurveType named_curve: the only curve type we send or take. */
const NAMED_CURVE = 3;

/** `ServerECDHParams`: curve_type named_curve, the group, the server's point. */
export function encodeEcdheParams(group: number, publicKey: Uint8Array): Uint8Array {
  const out = Buffer.allocUnsafe(4 + publicKey.length);
  out[0] = NAMED_CURVE;
  out[1] = group >>> 8;
  out[2] = group & 0xff;
  out[3] = publicKey.length;
  out.set(publicKey, 4);
  return out;
}

/** The content a ServerKeyExchange signature covers: client_random || server_random || params. */
export function serverKeyExchangeContent(clientRandom: Uint8Array, serverRandom: Uint8Array, params: Uint8Array): Uint8Array {
  return Buffer.concat([clientRandom, serverRandom, params]);
}

export function writeServerKeyExchange(w: Writer, params: Uint8Array, scheme: number, signature: Uint8Array): void {
  w.bytes(params).u16(scheme).opaque16(signature);
}

export interface ServerKeyExchange {
  readonly params: Uint8Array;
  readonly group: number;
  readonly publicKey: Uint8Array;
  readonly scheme: number;
  readonly signature: Uint8Array;
}

export function decodeServerKeyExchange(body: Uint8Array): ServerKeyExchange {
  const r = new Reader(body);
  const curveType = r.u8();
  if (curveType !== NAMED_CURVE) throw new PeerMisbehaved('SelectedUnofferedGroup', `ECCurveType ${curveType} (only named_curve is offered)`);
  const group = r.u16();
  const publicKey = r.opaque8(1);
  const params = body.subarray(0, 4 + publicKey.length);
  const scheme = r.u16();
  const signature = r.opaque16(1);
  r.expectEnd('ServerKeyExchange');
  return { params, group, publicKey, scheme, signature };
}

// --- ClientKeyExchange for ECDHE (RFC 8422 §5.7): ClientECDiffieHellmanPublic -------------------

export function decodeClientKeyExchange(body: Uint8Array): Uint8Array {
  const r = new Reader(body);
  const point = r.opaque8(1);
  r.expectEnd('ClientKeyExchange');
  return point;
}

export function writeClientKeyExchange(w: Writer, publicKey: Uint8Array): void {
  w.opaque8(publicKey);
}

// --- ServerHelloDone (RFC 5246 §7.4.5): empty ------------------------------------------------

export function decodeServerHelloDone(body: Uint8Array): void {
  if (body.length !== 0) throw new DecodeError(`ServerHelloDone of ${body.length} bytes`);
}

// --- NewSessionTicket (RFC 5077 §3.3) ----------------------------------------------------------

export function writeNewSessionTicket12(w: Writer, lifetimeHint: number, ticket: Uint8Array): void {
  w.u32(lifetimeHint).opaque16(ticket);
}

export function decodeNewSessionTicket12(body: Uint8Array): { readonly lifetimeHint: number; readonly ticket: Uint8Array } {
  const r = new Reader(body);
  const lifetimeHint = r.u32();
  const ticket = r.opaque16();
  r.expectEnd('NewSessionTicket');
  return { lifetimeHint, ticket };
}

/** Finished in TLS 1.2 is 12 bytes of verify_data for every suite we speak. */
export function decodeFinished12(body: Uint8Array): Uint8Array {
  if (body.length !== 12) throw new DecodeError(`Finished of ${body.length} bytes, expected 12`);
  return body;
}
