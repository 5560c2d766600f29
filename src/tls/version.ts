/**
 * Version negotiation, in one place for both versions and both sides.
 *
 * Server (RFC 8446 §4.2.1, Appendix D): a ClientHello with supported_versions is answered with
 * the first of our enabled versions it lists; without the extension, legacy_version decides
 * (0x0303 and up means "TLS 1.2 at most"). SSL 3.0 and older abort whatever else the hello
 * says (D.5); a client that offers only TLS 1.0/1.1 gets protocol_version. TLS_FALLBACK_SCSV
 * below our best version is inappropriate_fallback (RFC 7507).
 *
 * Client: a ServerHello selects TLS 1.3 with supported_versions and TLS 1.2 without it; a
 * TLS 1.2 ServerHello from a server that can speak TLS 1.3 carries the downgrade sentinel in
 * its random (§4.1.3), which a client that offered TLS 1.3 refuses with illegal_parameter.
 */
import { CipherSuite, ExtensionType, ProtocolVersion } from './constants.js';
import { Reader } from './codec.js';
import { PeerMisbehaved } from './errors.js';
import type { ClientHello } from './messages/client-hello.js';

export type TlsVersionName = 'TLSv1.2' | 'TLSv1.3';

/** Wire value of a version name. */
export function versionCode(name: TlsVersionName): number {
  return name === 'TLSv1.3' ? ProtocolVersion.TLS1_3 : ProtocolVersion.TLS1_2;
}

/**
 * The versions a side enables, best first, from `minVersion`/`maxVersion` options. Only TLS 1.2
 * and 1.3 exist here: TLS 1.0/1.1 are not implemented (RFC 8996 deprecates them).
 */
export function enabledVersions(min: TlsVersionName = 'TLSv1.2', max: TlsVersionName = 'TLSv1.3'): readonly number[] {
  const all = [ProtocolVersion.TLS1_3, ProtocolVersion.TLS1_2];
  const enabled = all.filter((v) => v <= versionCode(max) && v >= versionCode(min));
  if (enabled.length === 0) throw new TypeError(`minVersion ${min} is above maxVersion ${max}`);
  return enabled;
}

/** The version the server speaks for this ClientHello, or the PeerMisbehaved fault that refuses it. */
export function negotiateServerVersion(hello: ClientHello, enabled: readonly number[]): number {
  // Appendix D.5: legacy_version 0x0300 (SSL 3.0) or lower aborts, whatever supported_versions says.
  if (hello.legacyVersion <= 0x0300) throw new PeerMisbehaved('LegacyVersionTooOld', `legacy_version 0x${hex(hello.legacyVersion)}`);
  const offered = hello.extensions.supportedVersions;
  let chosen: number | undefined;
  if (offered) chosen = enabled.find((v) => offered.includes(v));
  else if (hello.legacyVersion >= ProtocolVersion.TLS1_2 && enabled.includes(ProtocolVersion.TLS1_2)) chosen = ProtocolVersion.TLS1_2;
  if (chosen === undefined) {
    // Kept as the TLS 1.3-only server's fault name: "this server needs TLS 1.3".
    if (!enabled.includes(ProtocolVersion.TLS1_2)) throw new PeerMisbehaved('Tls13NotOffered', 'client does not offer TLS 1.3');
    const what = offered ? `supported_versions [${offered.map(hex).join(', ')}]` : `legacy_version 0x${hex(hello.legacyVersion)}`;
    throw new PeerMisbehaved('NoSupportedVersionInCommon', `client offers ${what}; this server speaks TLS 1.3 and TLS 1.2 only`);
  }
  if (chosen < enabled[0]! && hello.cipherSuites.includes(CipherSuite.TLS_FALLBACK_SCSV)) {
    throw new PeerMisbehaved('InappropriateFallback', 'TLS_FALLBACK_SCSV in a hello below our highest version');
  }
  return chosen;
}

/**
 * The last 8 bytes of ServerHello.random when a TLS 1.3-capable server negotiates TLS 1.2
 * (RFC 8446 §4.1.3): "DOWNGRD" followed by 0x01.
 */
export const DOWNGRADE_TLS12_SENTINEL: Uint8Array = Uint8Array.from([0x44, 0x4f, 0x57, 0x4e, 0x47, 0x52, 0x44, 0x01]);
/** The same for TLS 1.1 and below ("DOWNGRD" 0x00): we never negotiate those, but a client checks it. */
const DOWNGRADE_TLS11_SENTINEL: Uint8Array = Uint8Array.from([0x44, 0x4f, 0x57, 0x4e, 0x47, 0x52, 0x44, 0x00]);

/** Writes the TLS 1.2 downgrade sentinel into the last 8 bytes of a server random. */
export function markDowngrade(serverRandom: Uint8Array): void {
  serverRandom.set(DOWNGRADE_TLS12_SENTINEL, 24);
}

/** True when a server random carries either downgrade sentinel. */
export function hasDowngradeSentinel(serverRandom: Uint8Array): boolean {
  const tail = serverRandom.subarray(24, 32);
  const same = (s: Uint8Array): boolean => s.every((b, i) => tail[i] === b);
  return serverRandom.length === 32 && (same(DOWNGRADE_TLS12_SENTINEL) || same(DOWNGRADE_TLS11_SENTINEL));
}

/**
 * The version a ServerHello selects (client side), read before the message is decoded: TLS 1.3
 * and TLS 1.2 ServerHellos carry different extensions. Bounded like every decoder: a malformed
 * body raises DecodeError.
 */
export function serverHelloVersion(body: Uint8Array): number {
  const r = new Reader(body);
  const legacyVersion = r.u16();
  r.bytes(32);
  r.opaque8(0, 32);
  r.u16();
  r.u8();
  if (r.isEmpty()) return legacyVersion;
  const list = r.u16Prefixed();
  while (!list.isEmpty()) {
    const type = list.u16();
    const data = list.u16Prefixed();
    if (type === ExtensionType.supported_versions) return data.u16();
  }
  return legacyVersion;
}

/**
 * Client side: checks the version a ServerHello selected against what we offered, and the
 * downgrade sentinel when we offered TLS 1.3 and got TLS 1.2.
 */
export function checkServerVersion(selected: number, serverRandom: Uint8Array, offered: readonly number[]): void {
  if (!offered.includes(selected)) {
    if (selected !== ProtocolVersion.TLS1_3 && !offered.includes(ProtocolVersion.TLS1_2)) {
      throw new PeerMisbehaved('Tls13NotSelected', `server selected 0x${hex(selected)}, we offered TLS 1.3 only`);
    }
    throw new PeerMisbehaved('SelectedUnofferedVersion', `server selected 0x${hex(selected)}, which we did not offer`);
  }
  if (selected < ProtocolVersion.TLS1_3 && offered.includes(ProtocolVersion.TLS1_3) && hasDowngradeSentinel(serverRandom)) {
    throw new PeerMisbehaved('DowngradeDetected', 'a TLS 1.3 server answered our TLS 1.3 offer with TLS 1.2: the ClientHello was tampered with');
  }
}

function hex(v: number): string {
  return v.toString(16).padStart(4, '0');
}
