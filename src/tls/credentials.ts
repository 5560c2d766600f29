/**
 * Credentials: what authenticates one side of a handshake, and the hooks through which the
 * delegated-credential code (src/tls/delegated) plugs in.
 *
 * Sending side: a `CredentialChoice` is the certificate chain, the extensions of the end-entity
 * CertificateEntry (RFC 9345 puts the DC there), the `Signer` for CertificateVerify and the
 * scheme. The server asks `selectCredential(hello, fallback)`; `fallback()` is the default
 * choice from the configured certificates, so a DC hook can fall back to the certificate key.
 *
 * Receiving side: `PeerCredentialHooks` offers extension 34 with `offer` and, after the chain
 * was verified, `acceptLeaf` decides which key must have signed CertificateVerify.
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { parseCertificate } from './x509/certificate.js';
import { CertificateError } from './x509/errors.js';
import { NO_SUBJECT_ALT_NAMES, matchesServerName, type SubjectAltNames } from './x509/names.js';
import { pemToDers } from './x509/pem.js';
import { createKeySigner, type Signer } from './signer.js';
import { keyPairProblem } from './key-pair.js';
import { isCertificateVerifyScheme } from './signature-schemes.js';
import type { RawExtension } from './messages/extensions.js';
import type { ClientHello } from './messages/client-hello.js';
import type { CertificateRequest } from './messages/handshake.js';

/** What one side presents: chain, end-entity extensions, signer and CertificateVerify scheme. */
export interface CredentialChoice {
  /** DER certificates, end-entity first. */
  readonly certificateChain: readonly Uint8Array[];
  /** Extensions of the end-entity CertificateEntry (e.g. delegated_credential). */
  readonly leafExtensions?: readonly RawExtension[];
  /** Produces the CertificateVerify signature; may be async (remote key server). */
  readonly signer: Signer;
  /** CertificateVerify scheme; must be one the peer offered. */
  readonly scheme: number;
  /** How this choice authenticates, reported in HandshakeInfo (default 'certificate'). */
  readonly label?: string;
  /** Free-form details reported in HandshakeInfo (e.g. the DC's expiry). */
  readonly details?: unknown;
}

/** Server hook: choose the credential for a ClientHello; `fallback()` is the default choice. */
export type SelectServerCredential = (
  hello: ClientHello,
  fallback: () => CredentialChoice | undefined,
) => CredentialChoice | undefined | Promise<CredentialChoice | undefined>;

/** Client hook (client authentication): choose for a CertificateRequest; undefined sends no certificate. */
export type SelectClientCredential = (
  request: CertificateRequest,
  fallback: () => CredentialChoice | undefined,
) => CredentialChoice | undefined | Promise<CredentialChoice | undefined>;

/** The key that must sign the peer's CertificateVerify, decided by `acceptLeaf`. */
export interface PeerKey {
  readonly publicKey: KeyObject;
  /** CertificateVerify schemes acceptable with this key. */
  readonly schemes: readonly number[];
  readonly label: string;
  readonly details?: unknown;
  /** When the key stops being valid, if sooner than the certificate chain (a delegated credential's expiry). */
  readonly validUntil?: Date;
}

export interface LeafContext {
  /** DER of the peer's end-entity certificate. */
  readonly leaf: Uint8Array;
  /** Extensions of the end-entity CertificateEntry. */
  readonly extensions: readonly RawExtension[];
  /** The certificate's public key. */
  readonly certificateKey: KeyObject;
  /** The signature_algorithms we offered (the DC's own signature must use one of them). */
  readonly offeredSignatureAlgorithms: readonly number[];
  /** What we offered in extension 34 (empty when not offered). */
  readonly offeredDelegatedCredentialSchemes: readonly number[];
  /** Verification time. */
  readonly now: Date;
}

/** Receiving-side hooks for credentials carried in certificate entry extensions (RFC 9345). */
export interface PeerCredentialHooks {
  /** Schemes to offer in the delegated_credential extension (34); empty or absent: not offered. */
  readonly offer?: readonly number[];
  /**
   * Called after the peer's chain was verified (or accepted unverified). Return the key that
   * must sign CertificateVerify (a DC key), or undefined to use the certificate key. Throw a
   * TlsError (IllegalParameter for a bad DC) to reject.
   */
  acceptLeaf(ctx: LeafContext): PeerKey | undefined;
}

/** A certificate chain with its private key or signer, parsed once. */
export interface CertifiedKey {
  readonly chain: readonly Uint8Array[];
  readonly signer: Signer;
  readonly leaf: X509Certificate;
  /** subjectAltName of the leaf, read from its DER once, for SNI selection (matchesServerName). */
  readonly names: SubjectAltNames;
}

export type PemOrDer = string | Uint8Array;

export interface CertificateKeyInput {
  /** PEM (one or more certificates, leaf first) or DER chain. */
  readonly cert: PemOrDer | readonly PemOrDer[];
  /** PEM/DER private key, a KeyObject, or a Signer (keyless). */
  readonly key: PemOrDer | KeyObject | Signer;
}

/** Certificates from PEM text (via ./x509/pem.ts) or DER, as DER buffers, leaf first. */
export function certificateDers(input: PemOrDer | readonly PemOrDer[]): Uint8Array[] {
  const items: readonly PemOrDer[] = typeof input === 'string' || input instanceof Uint8Array ? [input] : input;
  return items.flatMap((item) => (typeof item === 'string' ? pemToDers(item, 'CERTIFICATE') : [item]));
}

function isSigner(x: unknown): x is Signer {
  return typeof x === 'object' && x !== null && 'sign' in x && 'schemes' in x;
}

function isKeyObject(x: unknown): x is KeyObject {
  return typeof x === 'object' && x !== null && 'asymmetricKeyType' in x && 'export' in x;
}

/** Loads a chain and key once (KeyObjects are cached here, never re-parsed per handshake). */
export function loadCertifiedKey(input: CertificateKeyInput): CertifiedKey {
  const chain = certificateDers(input.cert);
  if (chain.length === 0) throw new TypeError('no certificate found in cert');
  const leaf = new X509Certificate(chain[0]!);
  let signer: Signer;
  if (isSigner(input.key)) signer = input.key;
  else {
    const key = privateKeyOf(input.key);
    // Not checkPrivateKey: it compares public keys only, and a key file's public part can lie (key-pair.ts).
    const problem = keyPairProblem(key, leaf.publicKey, { key: 'the private key', owner: 'the certificate' });
    if (problem !== undefined) throw new TypeError(problem);
    signer = createKeySigner(key);
  }
  // Frozen: the server encodes the Certificate message of a frozen chain once (server.ts).
  return { chain: Object.freeze(chain), signer, leaf, names: subjectAltNamesOf(chain[0]!) };
}

function privateKeyOf(key: PemOrDer | KeyObject): KeyObject {
  if (isKeyObject(key)) return key;
  if (typeof key === 'string') return createPrivateKey(key);
  return createPrivateKey({ key: Buffer.from(key), format: 'der', type: 'pkcs8' });
}

/**
 * The leaf's subjectAltName, from the same parse chain verification uses (cached by digest). A
 * leaf that parse refuses can still be served, as the fallback, but is never chosen by name.
 */
function subjectAltNamesOf(leafDer: Uint8Array): SubjectAltNames {
  try {
    const { dnsNames, ipAddressBytes } = parseCertificate(leafDer);
    return { dnsNames, ipAddressBytes };
  } catch (e) {
    if (e instanceof CertificateError) return NO_SUBJECT_ALT_NAMES;
    throw e;
  }
}

/**
 * The default choice (a server's, and a client's for a CertificateRequest): a certificate matching
 * SNI (else the first one) whose signer has a CertificateVerify scheme the peer offered, in the
 * signer's order of preference. "Matching" is matchesServerName, the function a client's chain
 * verification uses. With `version` TLSv1.2 (the TLS 1.2 client's CertificateVerify) the signer's
 * TLS 1.2 schemes count, RSA PKCS#1 v1.5 included; the peer's list says what else is allowed.
 */
export function defaultCredential(
  keys: readonly CertifiedKey[],
  servername: string | undefined,
  peerSchemes: readonly number[],
  version: 'TLSv1.3' | 'TLSv1.2' = 'TLSv1.3',
): CredentialChoice | undefined {
  // With one certificate the SNI match and the fallback are the same: no name matching.
  const ordered =
    servername && keys.length > 1 ? [...keys.filter((k) => matchesServerName(k.names, servername)), ...keys] : keys;
  for (const k of ordered) {
    const scheme =
      version === 'TLSv1.2'
        ? (k.signer.tls12Schemes ?? k.signer.schemes).find((s) => peerSchemes.includes(s))
        : k.signer.schemes.find((s) => isCertificateVerifyScheme(s) && peerSchemes.includes(s));
    if (scheme !== undefined) return { certificateChain: k.chain, signer: k.signer, scheme, label: 'certificate' };
  }
  return undefined;
}
