/**
 * Inputs shared by the TLS/delegated-credential commands (dc issue, dc inspect, serve, probe):
 * a certificate chain and its private key read from PEM files, durations like `24h`, and
 * HOST:PORT. Every error names the flag and the file.
 */
import type { KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import { certificatePublicKey, chainOrderProblem, pemToDers, publicKeyMatchesPrivate } from '../../tls/x509/index.js';
import { keyPairFault } from '../../tls/key-pair.js';
import { parsePrivateKeyPem } from '../../signer/in-memory.js';
import { InputError, UsageError } from '../framework/errors.js';
import { readTextFile, resolvePath } from '../framework/files.js';

export interface CertificateFile {
  readonly path: string;
  readonly pem: string;
  /** DER certificates, end-entity first. */
  readonly chain: readonly Uint8Array[];
}

/** Reads a PEM certificate chain (leaf first; with `endEntityFirst`, a chain that starts with a CA is refused). */
export async function readCertificateFile(cwd: string, file: string, flag: string, opts: { endEntityFirst?: boolean } = {}): Promise<CertificateFile> {
  const path = resolvePath(cwd, file);
  const pem = await readTextFile(path, flag);
  let chain: Uint8Array[];
  try {
    chain = pemToDers(pem, 'CERTIFICATE');
  } catch (e) {
    throw new InputError(`${flag} ${file}: ${(e as Error).message}`);
  }
  if (chain.length === 0) throw new InputError(`${flag} ${file}: no PEM CERTIFICATE found`);
  const order = opts.endEntityFirst ? chainOrderProblem(chain) : undefined;
  if (order) throw new InputError(`${flag} ${file}: ${order}`);
  return { path, pem, chain };
}

/** Reads a PEM private key and checks that it belongs to the certificate's end-entity. */
export async function readMatchingKey(cwd: string, file: string, flag: string, cert: CertificateFile, certFlag: string): Promise<{ pem: string; key: KeyObject }> {
  const pem = await readTextFile(resolvePath(cwd, file), flag);
  let key: KeyObject;
  try {
    key = parsePrivateKeyPem(pem, file);
  } catch (e) {
    throw new InputError(`${flag}: ${(e as Error).message}`);
  }
  let matches = false;
  try {
    matches = publicKeyMatchesPrivate(cert.chain[0]!, key);
  } catch {
    matches = false;
  }
  if (!matches) {
    // The key of a later certificate: the chain is upside down, not the key wrong.
    const later = cert.chain.findIndex((d, i) => {
      try {
        return i > 0 && publicKeyMatchesPrivate(d, key);
      } catch {
        return false;
      }
    });
    if (later > 0) {
      throw new InputError(`${flag} ${file} belongs to certificate ${later + 1} of ${certFlag}, not the first: the chain is in the wrong order; put the end-entity certificate first`);
    }
    let swapped = false;
    try {
      swapped = keyPairFault(key, certificatePublicKey(cert.chain[0]!)) === 'private-part-differs';
    } catch {
      swapped = false;
    }
    const why = swapped
      ? "it carries the certificate's public key, but its private part does not produce signatures that key verifies: the key file is corrupted or tampered"
      : 'its public key is a different key';
    throw new InputError(`${flag} ${file} does not match the certificate in ${certFlag} (${why})`);
  }
  return { pem, key };
}

const UNIT_SECONDS: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600, d: 86400 };

/** `90s`, `30m`, `24h`, `7d`, or combinations like `1d12h`; returns whole seconds. */
export function durationFlag(flag: string, value: string): number {
  const re = /(\d+)([smhd])/gy;
  let total = 0;
  let matched = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(value)) !== null) {
    total += Number(m[1]) * UNIT_SECONDS[m[2]!]!;
    matched = re.lastIndex;
  }
  if (value.length === 0 || matched !== value.length) {
    throw new UsageError(`"${value}" is not a duration; use a number with a unit s, m, h or d, e.g. 24h, 90m or 1d12h`, flag);
  }
  return total;
}

/** `1d2h3m` style for output. */
export function humanDuration(totalSeconds: number): string {
  const sign = totalSeconds < 0 ? '-' : '';
  let s = Math.abs(Math.round(totalSeconds));
  const parts: string[] = [];
  for (const [unit, size] of [['d', 86400], ['h', 3600], ['m', 60]] as const) {
    if (s >= size) {
      parts.push(`${Math.floor(s / size)}${unit}`);
      s %= size;
    }
  }
  if (s > 0 || parts.length === 0) parts.push(`${s}s`);
  return sign + parts.join('');
}

/** HOST:PORT, [IPv6]:PORT. */
export function hostPortArgument(name: string, value: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(value) ?? /^([^:]+):(\d+)$/.exec(value);
  if (!m) throw new UsageError(`${name}: "${value}" is not HOST:PORT (IPv6: [ADDR]:PORT)`);
  const host = m[1]!;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) throw new UsageError(`${name}: port must be between 1 and 65535, got ${m[2]}`);
  if (value.startsWith('[') && isIP(host) !== 6) throw new UsageError(`${name}: "${host}" is not an IPv6 address`);
  return { host, port };
}
