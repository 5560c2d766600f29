/**
 * Signers from Kubernetes `kubernetes.io/tls` Secrets: `data['tls.key']` (base64 PEM private key)
 * and `data['tls.crt']` (base64 PEM chain, leaf first). Structural types only, so this needs no
 * Kubernetes client: pass a V1Secret or anything shaped like one. Every error names the Secret.
 */
import { X509Certificate } from 'node:crypto';
import { pemToDers } from '../tls/certificates.js';
import { InMemoryKeySigner, SignerKeyError } from './in-memory.js';

export const TLS_KEY = 'tls.key';
export const TLS_CERT = 'tls.crt';

/** The parts of a V1Secret we read. `data` values are base64, as in the Kubernetes API. */
export interface SecretLike {
  readonly metadata?: { readonly namespace?: string; readonly name?: string };
  readonly data?: Readonly<Record<string, string | undefined>>;
  /** Write-only in the API, but accepted here for convenience in tests and manifests. */
  readonly stringData?: Readonly<Record<string, string | undefined>>;
}

export interface TlsSecretSigner {
  readonly signer: InMemoryKeySigner;
  /** DER certificates from tls.crt, leaf first; empty when tls.crt was not required and absent. */
  readonly certificateChain: readonly Uint8Array[];
}

export function secretRef(secret: SecretLike): string {
  const ns = secret.metadata?.namespace ?? '';
  const name = secret.metadata?.name ?? '(unnamed)';
  return ns ? `${ns}/${name}` : name;
}

/** Text of a Secret key: stringData wins (as the API server would merge it), else base64-decoded data. */
function secretText(secret: SecretLike, key: string): string | undefined {
  const s = secret.stringData?.[key];
  if (s !== undefined) return s;
  const b64 = secret.data?.[key];
  if (b64 === undefined) return undefined;
  return Buffer.from(b64, 'base64').toString('utf8');
}

/**
 * Builds the in-cluster signer from a TLS Secret. With `requireCertificate` (default true), tls.crt
 * must be present and its leaf must match tls.key; otherwise tls.crt is only checked when present.
 */
export function signerFromTlsSecret(secret: SecretLike, opts: { requireCertificate?: boolean } = {}): TlsSecretSigner {
  const ref = `Secret ${secretRef(secret)}`;
  const keyPem = secretText(secret, TLS_KEY);
  if (keyPem === undefined || keyPem.trim() === '') throw new SignerKeyError('missing_key', `${ref} has no ${TLS_KEY}`);
  let signer: InMemoryKeySigner;
  try {
    signer = InMemoryKeySigner.fromPem(keyPem, TLS_KEY);
  } catch (e) {
    if (e instanceof SignerKeyError) throw new SignerKeyError(e.reason, `${ref}: ${e.message}`);
    throw e;
  }

  const certPem = secretText(secret, TLS_CERT);
  if (certPem === undefined || certPem.trim() === '') {
    if (opts.requireCertificate ?? true) throw new SignerKeyError('missing_certificate', `${ref} has no ${TLS_CERT}`);
    return { signer, certificateChain: [] };
  }
  let chain: Uint8Array[];
  let leafSpki: Buffer;
  try {
    chain = pemToDers(certPem, 'CERTIFICATE');
    if (chain.length === 0) throw new Error('no PEM CERTIFICATE block');
    leafSpki = new X509Certificate(chain[0]!).publicKey.export({ type: 'spki', format: 'der' });
  } catch (e) {
    throw new SignerKeyError('malformed_certificate', `${ref}: ${TLS_CERT} is not a PEM certificate chain (${(e as Error).message})`);
  }
  if (Buffer.compare(leafSpki, signer.spki) !== 0) {
    throw new SignerKeyError('key_mismatch', `${ref}: key does not match the certificate in ${TLS_CERT}`);
  }
  return { signer, certificateChain: chain };
}
