/**
 * TLS 1.2 client authentication on the server: CertificateRequest (RFC 5246 §7.4.4), the client's
 * Certificate (§7.4.6) and CertificateVerify (§7.4.8), and what a ticket carries of it.
 *
 * The chain is verified by ../peer-auth.ts, the verifier of TLS 1.3 client authentication (trust
 * store, rejectUnauthorized, the error→alert mapping of ../errors.ts): a client certificate is
 * accepted or refused alike whatever the version. What TLS 1.2 does differently is here:
 * - no certificate at all, while one is required, is handshake_failure (RFC 5246 §7.4.6, as
 *   OpenSSL): certificate_required exists only in TLS 1.3;
 * - CertificateVerify signs the handshake messages themselves (not a transcript hash with a
 *   context string), with the hash of the scheme the client chose among those we offered; an
 *   ECDSA scheme names the hash only (RFC 5246 §7.4.1.4.1), and RSA PKCS#1 v1.5 is allowed;
 * - client delegated credentials are TLS 1.3 only (RFC 9345 §4): the receiving hooks' acceptLeaf is
 *   still asked (a policy callback that may refuse the client), told that nothing was offered.
 */
import type { HandshakeMode } from '../connection.js';
import type { PeerCredentialHooks } from '../credentials.js';
import { HandshakeType } from '../constants.js';
import { HandshakeFailure, PeerMisbehaved } from '../errors.js';
import { encodeHandshake } from '../messages/handshake.js';
import { authenticatePeer, type AuthenticatedPeer } from '../peer-auth.js';
import type { ServerConfig } from '../server.js';
import type { TicketState } from '../session.js';
import { schemeParams, verifyTls12Signature } from '../signature-schemes.js';
import { ClientCertificateType, decodeCertificate12, decodeCertificateVerify12, writeCertificateRequest12 } from './messages.js';

/** What the server knows of the client at the end of a TLS 1.2 handshake that requested a certificate. */
export interface ClientIdentity {
  /** The client's chain, leaf first (a resumed session: the leaf its ticket carries). */
  readonly chain: readonly Uint8Array[];
  readonly authorized: boolean;
  readonly authorizationError: string | undefined;
  /** Until when an authorized client's verification holds (AuthenticatedPeer.validUntil); what its tickets record. */
  readonly validUntil: number;
  /** How the client signed its CertificateVerify in this handshake; undefined when resumed. */
  readonly mode: HandshakeMode | undefined;
}

/**
 * The schemes a TLS 1.2 client may sign CertificateVerify with: those of `verifySchemes` (what the
 * TLS 1.3 CertificateRequest offers) that TLS 1.2 has for the certificate types we ask for
 * (ECDSA, RSA-PSS, RSA PKCS#1 v1.5). Ed25519 and ML-DSA client certificates are TLS 1.3 only here.
 */
export function tls12ClientSchemes(verifySchemes: readonly number[]): readonly number[] {
  let schemes = clientSchemes.get(verifySchemes);
  if (!schemes) {
    schemes = verifySchemes.filter((s) => {
      const kind = schemeParams(s)?.kind;
      return kind === 'ecdsa' || kind === 'rsa-pss' || kind === 'rsa-pkcs1';
    });
    clientSchemes.set(verifySchemes, schemes);
  }
  return schemes;
}
const clientSchemes = new WeakMap<readonly number[], readonly number[]>();

/**
 * The CertificateRequest, encoded once per scheme list (the config's, shared by its connections).
 * certificate_authorities is empty: RFC 5246 §7.4.4 lets the client send any certificate then, as
 * the TLS 1.3 CertificateRequest (no certificate_authorities extension) does.
 */
export function certificateRequest12(verifySchemes: readonly number[]): Uint8Array {
  let message = certificateRequests.get(verifySchemes);
  if (!message) {
    const signatureAlgorithms = tls12ClientSchemes(verifySchemes);
    message = encodeHandshake(HandshakeType.certificate_request, (w) =>
      writeCertificateRequest12(w, {
        // In the RFC's (and OpenSSL's) order.
        certificateTypes: [ClientCertificateType.rsa_sign, ClientCertificateType.ecdsa_sign],
        signatureAlgorithms,
        certificateAuthorities: [],
      }),
    );
    certificateRequests.set(verifySchemes, message);
  }
  return message;
}
const certificateRequests = new WeakMap<readonly number[], Uint8Array>();

/**
 * The client's Certificate: undefined when it sent none and the server lets it in without one
 * (rejectUnauthorized false); else the verified (or, with rejectUnauthorized false, the
 * unverified) chain. Refusals carry the alert of the same verdict in TLS 1.3.
 */
export function authenticateClient12(body: Uint8Array, config: ServerConfig): AuthenticatedPeer | undefined {
  const chain = decodeCertificate12(body);
  const rejectUnauthorized = config.options.rejectUnauthorized ?? true;
  if (chain.length === 0) {
    if (rejectUnauthorized) throw new HandshakeFailure('the client sent no certificate, and one is required (requestCert with rejectUnauthorized)');
    return undefined;
  }
  return authenticatePeer(
    { context: NO_BYTES, entries: chain.map((data) => ({ data, extensions: [] })) },
    {
      ca: config.trustStore,
      rejectUnauthorized,
      servername: undefined,
      purpose: 'client',
      now: config.now(),
      hooks: tls12Hooks(config.options.clientCredentialHooks),
      offeredSchemes: tls12ClientSchemes(config.verifySchemes),
    },
  );
}

/**
 * The server's clientCredentialHooks for a TLS 1.2 client: acceptLeaf is a verification callback
 * (it may refuse the client, or name the key that must sign CertificateVerify), so it decides for
 * TLS 1.2 clients as for TLS 1.3 ones, one verdict for both; nothing was offered in extension 34
 * (TLS 1.2 has no delegated credentials), which is what the hook is told.
 */
function tls12Hooks(hooks: PeerCredentialHooks | undefined): PeerCredentialHooks | undefined {
  return hooks && { offer: [], acceptLeaf: (ctx) => hooks.acceptLeaf(ctx) };
}

/**
 * RFC 5246 §7.4.8: a scheme we offered in CertificateRequest, and a signature by the certificate's
 * key over every handshake message before this one (`messages`, raw, in order).
 */
export function checkCertificateVerify12(body: Uint8Array, peer: AuthenticatedPeer, offered: readonly number[], messages: readonly Uint8Array[]): HandshakeMode {
  const cv = decodeCertificateVerify12(body);
  if (!offered.includes(cv.scheme)) {
    throw new PeerMisbehaved('UnofferedSignatureScheme', `TLS 1.2 CertificateVerify with a scheme we did not offer: 0x${cv.scheme.toString(16)}`);
  }
  if (!verifyTls12Signature(cv.scheme, peer.key.publicKey, Buffer.concat(messages), cv.signature)) {
    throw new PeerMisbehaved('BadCertificateVerifySignature', 'TLS 1.2 client CertificateVerify signature does not verify with the certificate\'s key');
  }
  return { authentication: peer.key.label, signatureScheme: cv.scheme };
}

/**
 * What a resumed session knows of the client: the leaf its ticket carries, or nothing. Whether the
 * ticket may resume at all (same client authentication config, the certificate still valid, a
 * certificate where one is required) is ServerConfig.clientAuth's to say, for both versions.
 */
export function resumedClientIdentity(state: TicketState): ClientIdentity | undefined {
  if (state.clientCertificate.length === 0) return undefined;
  return { chain: [state.clientCertificate], authorized: true, authorizationError: undefined, validUntil: state.clientValidUntil, mode: undefined };
}

const NO_BYTES = new Uint8Array(0);
