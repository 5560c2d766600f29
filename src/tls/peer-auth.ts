/**
 * Authenticating the peer: chain verification through ./x509/ (trust store, name,
 * validity), the receiving-side credential hooks (delegated credentials), and the
 * CertificateVerify check (RFC 8446 §4.4.2–§4.4.3). Shared by server (client auth) and client.
 */
import { X509Certificate, type KeyObject } from 'node:crypto';
import { CertificateError } from './x509/errors.js';
import type { TrustAnchorInput, TrustStore } from './x509/trust-store.js';
import { verifyCertificateChain } from './x509/verify-chain.js';
import { ExtensionType } from './constants.js';
import { BadCertificate, CertificateExpired, CertificateUnknown, UnknownCa, UnsupportedCertificate, type TlsError, PeerMisbehaved } from './errors.js';
import type { CertificateMessage, CertificateVerify } from './messages/handshake.js';
import { certificateVerifyContent, isCertificateVerifyScheme, verifySignature } from './signature-schemes.js';
import type { HandshakeMode } from './connection.js';
import type { PeerCredentialHooks, PeerKey } from './credentials.js';

export interface PeerVerification {
  readonly ca: readonly TrustAnchorInput[] | TrustStore | undefined;
  readonly rejectUnauthorized: boolean;
  readonly servername: string | undefined;
  readonly purpose: 'server' | 'client';
  readonly now: Date;
  readonly hooks: PeerCredentialHooks | undefined;
  /** signature_algorithms we offered: acceptable CertificateVerify schemes for the certificate key. */
  readonly offeredSchemes: readonly number[];
}

export interface AuthenticatedPeer {
  readonly chain: readonly Uint8Array[];
  readonly authorized: boolean;
  readonly authorizationError: string | undefined;
  readonly key: PeerKey;
  /**
   * Until when an authorized peer's verification holds (ms since the epoch): the earliest notAfter
   * of the verified chain, or the key's own expiry (a delegated credential) if sooner. 0 when not
   * authorized. A resumed session is authenticated only until then (session.ts ClientAuthPolicy).
   */
  readonly validUntil: number;
}

/** CertificateError (from ./x509/errors.ts) to our error class, by its alert kind. */
export function fromCertificateError(e: CertificateError): TlsError {
  switch (e.kind) {
    case 'bad_certificate':
      return new BadCertificate(e.message, { cause: e });
    case 'unknown_ca':
      return new UnknownCa(e.message, { cause: e });
    case 'certificate_expired':
      return new CertificateExpired(e.message, { cause: e });
    case 'unsupported_certificate':
      return new UnsupportedCertificate(e.message, { cause: e });
    case 'certificate_unknown':
      return new CertificateUnknown(e.message, { cause: e });
  }
}

/**
 * Verifies a non-empty Certificate message and decides which key must sign CertificateVerify.
 * Any extension but delegated_credential is rejected; a delegated credential we did not offer is
 * rejected with unexpected_message (RFC 9345 §4.1.1, §4.1.2: MUST); one in an entry other than the
 * end-entity's is ignored when we did offer (the same sections: SHOULD ignore).
 */
export function authenticatePeer(msg: CertificateMessage, v: PeerVerification): AuthenticatedPeer {
  const chain = msg.entries.map((e) => e.data);
  const offeredDc = v.hooks?.offer ?? [];
  for (const entry of msg.entries) {
    for (const ext of entry.extensions) {
      if (ext.type !== ExtensionType.delegated_credential) {
        throw new PeerMisbehaved('UnsolicitedExtension', `unsolicited extension ${ext.type} in CertificateEntry`);
      }
      if (offeredDc.length === 0) throw new PeerMisbehaved('UnsolicitedDelegatedCredential', 'delegated credential we did not ask for');
    }
  }

  let certificateKey: KeyObject;
  let authorized = false;
  let authorizationError: string | undefined;
  let validUntil = 0;
  try {
    if (v.ca === undefined) throw new CertificateError('unknown_ca', 'untrusted', 'no trust store configured');
    const verified = verifyCertificateChain(chain, { ca: v.ca, servername: v.servername, now: v.now, purpose: v.purpose });
    certificateKey = verified.publicKey;
    authorized = true;
    validUntil = verified.notAfter.getTime();
  } catch (e) {
    if (!(e instanceof CertificateError)) throw e;
    if (v.rejectUnauthorized) throw fromCertificateError(e);
    authorizationError = e.message;
    try {
      certificateKey = new X509Certificate(chain[0]!).publicKey;
    } catch (parseError) {
      throw new BadCertificate('unparseable end-entity certificate', { cause: parseError });
    }
  }

  const leafEntry = msg.entries[0]!;
  const fromHook = v.hooks?.acceptLeaf({
    leaf: leafEntry.data,
    extensions: leafEntry.extensions,
    certificateKey,
    offeredSignatureAlgorithms: v.offeredSchemes,
    offeredDelegatedCredentialSchemes: offeredDc,
    now: v.now,
  });
  if (!fromHook && leafEntry.extensions.some((e) => e.type === ExtensionType.delegated_credential)) {
    throw new PeerMisbehaved('DelegatedCredentialNotAccepted', 'delegated credential present but not accepted');
  }
  const key: PeerKey = fromHook ?? {
    publicKey: certificateKey,
    schemes: v.offeredSchemes.filter(isCertificateVerifyScheme),
    label: 'certificate',
  };
  if (authorized && key.validUntil !== undefined) validUntil = Math.min(validUntil, key.validUntil.getTime());
  return { chain, authorized, authorizationError, key, validUntil };
}

/**
 * §4.4.3: the scheme must be one we accept for this key (never rsa_pkcs1_*), and the signature
 * must cover 64 spaces || context || 0 || transcript hash.
 */
export function checkCertificateVerify(
  cv: CertificateVerify,
  key: PeerKey,
  signer: 'server' | 'client',
  transcriptHash: Uint8Array,
): HandshakeMode {
  if (!isCertificateVerifyScheme(cv.scheme) || !key.schemes.includes(cv.scheme)) {
    throw new PeerMisbehaved('UnofferedSignatureScheme', `CertificateVerify with a scheme we did not offer: 0x${cv.scheme.toString(16)}`);
  }
  if (!verifySignature(cv.scheme, key.publicKey, certificateVerifyContent(signer, transcriptHash), cv.signature)) {
    throw new PeerMisbehaved('BadCertificateVerifySignature', 'CertificateVerify signature does not verify');
  }
  return key.details === undefined
    ? { authentication: key.label, signatureScheme: cv.scheme }
    : { authentication: key.label, signatureScheme: cv.scheme, details: key.details };
}
