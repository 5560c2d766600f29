/**
 * Signers from Kubernetes `kubernetes.io/tls` Secrets: `data['tls.key']` (base64 PEM private key)
 * and `data['tls.crt']` (base64 PEM chain, leaf first). Structural types only, so this needs no
 * Kubernetes client: pass a V1Secret or anything shaped like one. Every error names the Secret.
 */
import { keyPairSigner, type KeyPairSigner } from './key-pair.js';

export const TLS_KEY = 'tls.key';
export const TLS_CERT = 'tls.crt';

/** The parts of a V1Secret we read. `data` values are base64, as in the Kubernetes API. */
export interface SecretLike {
  readonly metadata?: { readonly namespace?: string; readonly name?: string };
  readonly data?: Readonly<Record<string, string | undefined>>;
  /** Write-only in the API, but accepted here for convenience in tests and manifests. */
  readonly stringData?: Readonly<Record<string, string | undefined>>;
}

/** DER certificates from tls.crt (leaf first; empty when tls.crt was not required and absent) and the signer. */
export type TlsSecretSigner = KeyPairSigner;

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
  return keyPairSigner({
    keyPem: secretText(secret, TLS_KEY),
    certPem: secretText(secret, TLS_CERT),
    keyName: TLS_KEY,
    certName: TLS_CERT,
    owner: `Secret ${secretRef(secret)}`,
    ...(opts.requireCertificate === undefined ? {} : { requireCertificate: opts.requireCertificate }),
  });
}
