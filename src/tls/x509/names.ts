/**
 * Names: matching a host name against a certificate's subjectAltName, and the dNSName/iPAddress
 * comparisons of name constraints (RFC 5280 §4.2.1.10).
 */
import { isIP } from 'node:net';

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

/** A lowercased host name (no trailing dot) against one dNSName of a certificate (lowercased). */
export function dnsNameMatches(pattern: string, host: string): boolean {
  const p = pattern.endsWith('.') ? pattern.slice(0, -1) : pattern;
  if (!p.startsWith('*.')) return !p.includes('*') && p === host;
  const suffix = p.slice(1); // ".example.com"
  if (suffix.includes('*') || suffix.split('.').length < 3) return false;
  if (!host.endsWith(suffix)) return false;
  const label = host.slice(0, host.length - suffix.length);
  return label.length > 0 && !label.includes('.');
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
