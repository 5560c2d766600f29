/**
 * The keyless client's TLS context (CA, client certificate and key), built once per client: every
 * connection of the pool shares it, and a certificate or key node:tls cannot load is a
 * configuration error when the client is made, saying which option to fix, instead of a failed
 * connection attempt retried with backoff forever.
 */
import { createSecureContext, type SecureContext } from 'node:tls';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { KeylessConfigError } from './errors.js';

type Pem = string | Uint8Array;

export interface ClientCredentials {
  readonly ca: Pem | readonly Pem[];
  readonly cert: Pem;
  readonly key: Pem;
}

/** The secure context of a client of key server `server`; KeylessConfigError naming the option at fault. */
export function clientSecureContext(options: ClientCredentials, server: string): SecureContext {
  const ca = toList(options.ca);
  const cert = toBuffer(options.cert);
  const key = toBuffer(options.key);
  try {
    return createSecureContext({ ca, cert, key, minVersion: 'TLSv1.2' });
  } catch (err) {
    throw new KeylessConfigError(`keyless client for key server ${server}: ${culprit(ca, cert, key)} (${err instanceof Error ? err.message : String(err)})`, { cause: err });
  }
}

/** Which option createSecureContext refused, and what to give instead (its own message names neither). */
function culprit(ca: readonly (string | Buffer)[], cert: string | Buffer, key: string | Buffer): string {
  if (!loads(() => createPrivateKey(key))) {
    return 'the client key (KeylessClientOptions.key) cannot be loaded; give the PEM private key (PKCS#8, SEC1 or PKCS#1, unencrypted) of the client certificate';
  }
  if (!loads(() => new X509Certificate(cert))) {
    return 'the client certificate (KeylessClientOptions.cert) cannot be loaded; give the PEM certificate (chain) the key server trusts, leaf first';
  }
  const badCa = ca.findIndex((c) => !loads(() => new X509Certificate(c)));
  if (badCa >= 0) return `CA certificate ${badCa + 1} (KeylessClientOptions.ca) cannot be loaded; give the PEM certificate(s) the key server's certificate chains to`;
  return 'the client certificate and key (KeylessClientOptions.cert, .key) do not go together; give the key of the certificate\'s public key';
}

function loads(f: () => unknown): boolean {
  try {
    f();
    return true;
  } catch {
    return false;
  }
}

function toBuffer(p: Pem): string | Buffer {
  return typeof p === 'string' ? p : Buffer.from(p);
}

function toList(p: Pem | readonly Pem[]): Array<string | Buffer> {
  return (Array.isArray(p) ? (p as readonly Pem[]) : [p as Pem]).map(toBuffer);
}
