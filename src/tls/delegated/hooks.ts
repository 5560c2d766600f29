/**
 * Delegated credentials plugged into the handshake through the credential hooks of
 * ../credentials.ts:
 *
 * - `delegatedCredentialSelector` (server) and `clientDelegatedCredentialSelector` (client
 *   authentication) choose a credential from the current set for each handshake, taking the set
 *   once so a concurrent reload does not affect it, and fall back to the certificate key when the
 *   peer did not offer extension 34 or no credential fits both of its lists.
 * - `delegatedCredentialPeerHooks` (the receiving side) offers extension 34 and validates the
 *   peer's credential with every RFC 9345 rule; CertificateVerify must then be made with the
 *   credential's key and scheme.
 */
import {
  type CredentialChoice,
  type LeafContext,
  type PeerCredentialHooks,
  type PeerKey,
  type SelectClientCredential,
  type SelectServerCredential,
} from '../credentials.js';
import { ExtensionType, SignatureScheme, signatureSchemeName } from '../constants.js';
import { PeerMisbehaved } from '../errors.js';
import { matchesServerName } from '../x509/names.js';
import type { RawExtension } from '../messages/extensions.js';
import { CredentialStore, type DelegatedCredentialEntry, type DelegatedCredentialSet } from './credential-set.js';
import type { DelegationSide } from './types.js';
import { verifyDelegatedCredential } from './verify.js';

/** The authentication label reported in HandshakeInfo when a delegated credential was used. */
export const DELEGATED_CREDENTIAL_LABEL = 'delegated-credential';

/** HandshakeMode.details for a handshake authenticated with a delegated credential. */
export interface DelegatedCredentialDetails {
  /** dc_cert_verify_algorithm by name, e.g. `ed25519`. */
  readonly algorithm: string;
  readonly dcCertVerifyAlgorithm: number;
  readonly expiresAt: Date;
}

export type CredentialSetSource = CredentialStore | DelegatedCredentialSet | (() => DelegatedCredentialSet | undefined);

export interface SelectorOptions {
  /** Clock, for tests. */
  readonly now?: () => Date;
  /**
   * Serve a credential only if its signature algorithm is also in the client's extension-34
   * list (NSS/Firefox rule; see SelectOptions.requireAlgorithmInDcSchemes). Matters only for
   * RSA (rsaEncryption) certificates, whose credentials are signed with rsa_pss_rsae_*.
   */
  readonly requireAlgorithmInDcSchemes?: boolean;
}

function currentSet(source: CredentialSetSource): () => DelegatedCredentialSet | undefined {
  if (typeof source === 'function') return source;
  if (source instanceof CredentialStore) return () => source.current;
  return () => source;
}

function details(entry: { readonly dcCertVerifyAlgorithm: number; readonly expiresAt: Date }): DelegatedCredentialDetails {
  return {
    algorithm: signatureSchemeName(entry.dcCertVerifyAlgorithm),
    dcCertVerifyAlgorithm: entry.dcCertVerifyAlgorithm,
    expiresAt: entry.expiresAt,
  };
}

/**
 * The choice for a credential of a set: the same for every handshake that serves it, so made
 * once per entry (allocation per handshake is what the collector costs a server,
 * docs/architecture.md "Hot paths"); the Certificate message built from it is cached by the
 * server per chain and the identity of the credential's encoded bytes.
 */
const choices = new WeakMap<DelegatedCredentialEntry, { readonly set: DelegatedCredentialSet; readonly choice: CredentialChoice }>();

function choiceFor(set: DelegatedCredentialSet, entry: DelegatedCredentialEntry): CredentialChoice {
  const cached = choices.get(entry);
  if (cached && cached.set === set) return cached.choice;
  const choice: CredentialChoice = Object.freeze({
    certificateChain: set.certificateChain,
    leafExtensions: Object.freeze([Object.freeze({ type: ExtensionType.delegated_credential, data: entry.encoded })]),
    signer: entry.signer,
    scheme: entry.dcCertVerifyAlgorithm,
    label: DELEGATED_CREDENTIAL_LABEL,
    details: Object.freeze(details(entry)),
  });
  choices.set(entry, { set, choice });
  return choice;
}

/** A certificate without DNS names is served for any name, as before; else matchesServerName decides. */
function coversServerName(set: DelegatedCredentialSet, servername: string | undefined): boolean {
  if (servername === undefined || set.names.dnsNames.length === 0) return true;
  return matchesServerName(set.names, servername);
}

/**
 * Server hook: serve a delegated credential to TLS 1.3 clients that offered extension 34 with
 * one of our credentials' schemes and list its signature algorithm; else `fallback()` (the
 * certificate key, local or keyless). The server only speaks TLS 1.3, so the hook never runs
 * for an older version.
 */
export function delegatedCredentialSelector(source: CredentialSetSource, options: SelectorOptions = {}): SelectServerCredential {
  const current = currentSet(source);
  return (hello, fallback) => {
    const set = current(); // once per handshake: a reload swapping the store does not affect this one
    if (!set || set.side !== 'server' || !coversServerName(set, hello.extensions.serverName)) return fallback();
    const entry = set.select({
      dcSchemes: hello.extensions.delegatedCredential,
      signatureSchemes: hello.extensions.signatureAlgorithms ?? [],
      now: options.now?.() ?? new Date(),
      requireAlgorithmInDcSchemes: options.requireAlgorithmInDcSchemes,
    });
    return entry ? choiceFor(set, entry) : fallback();
  };
}

/** Client-authentication hook: the same choice against a CertificateRequest's two lists. */
export function clientDelegatedCredentialSelector(source: CredentialSetSource, options: SelectorOptions = {}): SelectClientCredential {
  const current = currentSet(source);
  return (request, fallback) => {
    const set = current();
    if (!set || set.side !== 'client') return fallback();
    const entry = set.select({
      dcSchemes: request.delegatedCredential,
      signatureSchemes: request.signatureAlgorithms ?? [],
      now: options.now?.() ?? new Date(),
      requireAlgorithmInDcSchemes: options.requireAlgorithmInDcSchemes,
    });
    return entry ? choiceFor(set, entry) : fallback();
  };
}

/** What we accept for a peer's CertificateVerify made with a DC key, cheapest first, then ML-DSA (large). */
export const DEFAULT_DC_SCHEMES: readonly number[] = [
  SignatureScheme.ed25519,
  SignatureScheme.ecdsa_secp256r1_sha256,
  SignatureScheme.ecdsa_secp384r1_sha384,
  SignatureScheme.ecdsa_secp521r1_sha512,
  SignatureScheme.rsa_pss_pss_sha256,
  SignatureScheme.rsa_pss_pss_sha384,
  SignatureScheme.rsa_pss_pss_sha512,
  SignatureScheme.mldsa44,
  SignatureScheme.mldsa65,
  SignatureScheme.mldsa87,
];

export interface PeerHooksOptions {
  /** Whose credential we receive: 'server' on a client, 'client' on a server asking for client auth. */
  readonly peer: DelegationSide;
  /** Schemes to offer in extension 34 (default DEFAULT_DC_SCHEMES). */
  readonly offer?: readonly number[];
}

/**
 * Receiving side: offers extension 34 and validates a credential in the peer's end-entity
 * CertificateEntry (RFC 9345 §4.1.3 / §5.1). A bad credential raises InvalidDelegatedCredential
 * (illegal_parameter); a valid one makes its key the one that must sign CertificateVerify, with
 * exactly its dc_cert_verify_algorithm. Without the extension the certificate key is used.
 */
export function delegatedCredentialPeerHooks(options: PeerHooksOptions): PeerCredentialHooks {
  const offer = [...(options.offer ?? DEFAULT_DC_SCHEMES)];
  return {
    offer,
    acceptLeaf(ctx: LeafContext): PeerKey | undefined {
      const found = ctx.extensions.filter((e: RawExtension) => e.type === ExtensionType.delegated_credential);
      if (found.length === 0) return undefined;
      if (found.length > 1) throw new PeerMisbehaved('DuplicateExtension', 'two delegated_credential extensions in one CertificateEntry');
      const verified = verifyDelegatedCredential(found[0]!.data, {
        certificate: ctx.leaf,
        now: ctx.now,
        acceptedDcSchemes: ctx.offeredDelegatedCredentialSchemes,
        acceptedSignatureSchemes: ctx.offeredSignatureAlgorithms,
        side: options.peer,
      });
      return {
        publicKey: verified.publicKey,
        schemes: [verified.dcCertVerifyAlgorithm],
        label: DELEGATED_CREDENTIAL_LABEL,
        details: details(verified),
        validUntil: verified.expiresAt,
      };
    },
  };
}
