/**
 * Names: the one matcher of a host name against a certificate's subjectAltName, and the
 * dNSName/iPAddress comparisons of name constraints (RFC 5280 §4.2.1.10).
 *
 * `matchesServerName` is called both by chain verification (verify-chain.ts) and by the
 * server's choice of a certificate for SNI (../credentials.ts, ../delegated/hooks.ts), so the
 * certificate a server picks for a name is the one a client verifying that name accepts (rustls'
 * SNI resolver likewise checks a certificate with the verifier's own verify_server_name).
 */
import { isIP } from 'node:net';

/** The subjectAltName entries a host name is matched against (a ParsedCertificate has them). */
export interface SubjectAltNames {
  /** dNSName entries as written, ASCII letters lowercased (wildcards and trailing dots kept). */
  readonly dnsNames: readonly string[];
  /** iPAddress entries: 4 or 16 bytes each. */
  readonly ipAddressBytes: readonly Uint8Array[];
}

export const NO_SUBJECT_ALT_NAMES: SubjectAltNames = Object.freeze({ dnsNames: Object.freeze([]), ipAddressBytes: Object.freeze([]) });

/**
 * Whether `servername` (a DNS name or an IP address, IPv6 optionally in brackets) is covered by
 * `names`. RFC 6125 §6.4 as browsers and webpki apply it, against subjectAltName only (never the
 * subject CN):
 * - one trailing dot is ignored on both sides; ASCII letters compare case-insensitively, every
 *   other character exactly;
 * - a wildcard only as the whole left-most label of a dNSName, matching exactly one non-empty
 *   label, and only with at least two labels after it (`*.example.com`, never `*.com`);
 * - a host name containing `*` matches nothing; neither does an empty one;
 * - an IP address (IPv4, or IPv6 in any notation) matches an iPAddress entry with the same bytes,
 *   never a dNSName; a DNS name never matches an iPAddress entry.
 */
export function matchesServerName(names: SubjectAltNames, servername: string): boolean {
  const name = servername.endsWith('.') ? servername.slice(0, -1) : servername;
  const bare = name.startsWith('[') && name.endsWith(']') ? name.slice(1, -1) : name;
  // isIP costs more than the rest of a match; only IPv6 has ':' and IPv4 always ends in a digit.
  const last = bare.charCodeAt(bare.length - 1);
  const family = bare.includes(':') || (last >= 0x30 && last <= 0x39) ? isIP(bare) : 0;
  if (family !== 0) {
    const address = family === 4 ? ipv4Bytes(bare) : ipv6Bytes(bare);
    return address !== undefined && names.ipAddressBytes.some((ip) => sameBytes(ip, address));
  }
  const host = asciiLowerCase(name);
  if (host.length === 0 || host.includes('*')) return false;
  return names.dnsNames.some((pattern) => dnsNameMatches(pattern, host));
}

/**
 * One dNSName (ASCII-lowercased) against a host name that is already ASCII-lowercased, has no
 * trailing dot, is not empty and has no `*`. The DNS half of matchesServerName.
 */
function dnsNameMatches(pattern: string, host: string): boolean {
  const p = pattern.endsWith('.') ? pattern.slice(0, -1) : pattern;
  if (!p.startsWith('*.')) return !p.includes('*') && p === host;
  const suffix = p.slice(1); // ".example.com"
  if (suffix.includes('*') || suffix.indexOf('.', 1) === -1) return false; // two labels after '*'
  if (!host.endsWith(suffix)) return false;
  const label = host.slice(0, host.length - suffix.length);
  return label.length > 0 && !label.includes('.');
}

/** `s` with A–Z turned into a–z and nothing else changed. */
export function asciiLowerCase(s: string): string {
  return /[A-Z]/.test(s) ? s.replace(/[A-Z]+/g, (m) => m.toLowerCase()) : s;
}

/** Canonical text of an IP address (IPv6 compressed, lowercase), or undefined if it is not one. */
export function canonicalIp(ip: string): string | undefined {
  const kind = isIP(ip);
  if (kind === 4) return ip;
  if (kind !== 6) return undefined;
  try {
    return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  } catch {
    return undefined;
  }
}

/** Dotted-quad IPv4 (as node's isIP accepts it: no leading zeros) to 4 bytes. */
function ipv4Bytes(text: string): Uint8Array | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) return undefined;
    out[i] = Number(p);
  }
  return out;
}

/** IPv6 text (RFC 4291 §2.2: `::`, an IPv4 tail) to 16 bytes; a zone (`%eth0`) is not an address here. */
function ipv6Bytes(text: string): Uint8Array | undefined {
  if (text.includes('%')) return undefined;
  let s = text;
  let v4: Uint8Array | undefined;
  if (s.includes('.')) {
    const at = s.lastIndexOf(':');
    v4 = ipv4Bytes(s.slice(at + 1));
    if (!v4) return undefined;
    s = `${s.slice(0, at + 1)}0:0`;
  }
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const head = halves[0] ? halves[0].split(':') : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(':') : [];
  let groups: string[];
  if (halves.length === 2) {
    if (head.length + tail.length > 7) return undefined;
    groups = [...head, ...new Array<string>(8 - head.length - tail.length).fill('0'), ...tail];
  } else groups = head;
  if (groups.length !== 8) return undefined;
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    const g = groups[i]!;
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
    const v = parseInt(g, 16);
    out[2 * i] = v >> 8;
    out[2 * i + 1] = v & 0xff;
  }
  if (v4) out.set(v4, 12);
  return out;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** "example.com" covers itself and its subdomains; ".example.com" only subdomains; "" everything. */
export function dnsWithinConstraint(name: string, constraint: string): boolean {
  const n = name.endsWith('.') ? name.slice(0, -1) : name;
  if (constraint === '') return true;
  if (constraint.startsWith('.')) return n.length > constraint.length && n.endsWith(constraint);
  return n === constraint || n.endsWith(`.${constraint}`);
}

/** An iPAddress (4 or 16 bytes) inside an address/mask subtree of the same family. */
export function ipWithinConstraint(ip: Uint8Array, address: Uint8Array, mask: Uint8Array): boolean {
  if (ip.length !== address.length) return false;
  for (let i = 0; i < ip.length; i++) if ((ip[i]! & mask[i]!) !== (address[i]! & mask[i]!)) return false;
  return true;
}
