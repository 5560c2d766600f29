/**
 * Who terminates a connection, decided from its ClientHello. The table, in order (first match):
 *
 *   client                                             route                       refusal metric
 *   TLS 1.3, accepts one of our fresh DCs          ->  ours, DC
 *   TLS 1.3, other; tls.key (fallback CertificateKey) -> certificate key (engine: below)
 *   TLS 1.3, other; keyless signer usable          ->  ours, keyless pull
 *   TLS 1.3, other; fallback None                  ->  handshake_failure           fallback-none
 *   TLS 1.3, other; keyless configured, unusable   ->  handshake_failure           keyserver-unreachable,
 *                                                                                 keyless-client-certificate,
 *                                                                                 keyless-misconfigured
 *   TLS 1.3, other; no fallback in the bundle      ->  handshake_failure           no-fallback
 *   TLS 1.2 only; tls.key                          ->  node:tls, certificate key (DEFAULT_TLS12_ENGINE)
 *   TLS 1.2 only; keyless signer usable            ->  ours (src/tls/tls12), keyless pull
 *   TLS 1.2 only; otherwise                        ->  protocol_version            protocol-version
 *
 * "Keyless signer usable": configured (bundle or --keyless-* flags), its client certificate valid
 * now, and the client not backing off after a failed connect (keyless-fallback.ts). A keyless
 * handshake whose signature then fails ends with our stack's alert, after at most the keyless
 * timeout.
 *
 * Non-DC TLS 1.3 clients with a local key could go to either engine. The default is chosen by
 * measurement (bench/sidecar-routing.ts, results in bench/results/sidecar-routing.md): see
 * DEFAULT_CERTIFICATE_ENGINE.
 *
 * `chooseCredential` is the credential hook of our stack: it reads the same material, so the
 * router's decision and the credential actually served agree.
 */
import { AlertDescription } from '../tls/alerts.js';
import { ProtocolVersion } from '../tls/constants.js';
import { delegatedCredentialSelector } from '../tls/delegated/index.js';
import type { CredentialChoice } from '../tls/credentials.js';
import type { ClientHello } from '../tls/messages/client-hello.js';
import { isCertificateVerifyScheme } from '../tls/signature-schemes.js';
import { createKeySigner, type Signer } from '../tls/signer.js';
import type { KeylessUnavailable } from './keyless-fallback.js';
import type { ServingMaterial } from './material.js';
import type { HandshakeMode, TlsEngine } from './metrics.js';

/**
 * Engine for TLS 1.3 clients served with the certificate key: node:tls, by measurement
 * (bench/sidecar-routing.ts, numbers in bench/results/sidecar-routing.md). Per handshake the two
 * are within about ±20% (node:tls cheaper with P-256, ours with RSA-2048, node:tls ahead under
 * load), but node:tls moves bulk data 1.4-1.7x faster through the proxy, and these clients take no
 * DC, the one thing only our stack can serve. `--certificate-engine` overrides it.
 */
export const DEFAULT_CERTIFICATE_ENGINE: TlsEngine = 'node';

/**
 * Engine for TLS 1.2-only clients when tls.key is mounted: node:tls, by measurement
 * (bench/tls12-handshake.ts, numbers in bench/results/tls12.md): with the same certificate its
 * server CPU per TLS 1.2 handshake is lower (ours reaches ~0.7x its capacity for full and for
 * resumed handshakes), and it moves bulk data faster (bench/results/sidecar-routing.md). Without
 * tls.key, node:tls cannot sign through the key server, so keyless TLS 1.2 goes to our stack.
 */
export const DEFAULT_TLS12_ENGINE: TlsEngine = 'node';

export interface RoutingPolicy {
  /** Engine for non-DC TLS 1.3 clients served with the local certificate key. */
  readonly certificateEngine: TlsEngine;
  /**
   * The keyless signer for a material's certificate, when keyless is configured (certificate
   * handshakes without a local key). Per material: a new certificate may name a new key.
   */
  readonly keylessFor: ((material: ServingMaterial) => Signer | undefined) | undefined;
  /** Why keyless cannot sign right now, when it is configured but unusable (the refusal's reason). */
  readonly keylessUnavailable?: () => KeylessUnavailable | undefined;
}

export type Route =
  | { readonly engine: TlsEngine; readonly mode: HandshakeMode }
  | { readonly engine: 'refuse'; readonly alert: number; readonly reason: string; readonly metric: string };

export function offersTls13(hello: ClientHello): boolean {
  return hello.extensions.supportedVersions?.includes(ProtocolVersion.TLS1_3) ?? false;
}

export function route(hello: ClientHello, material: ServingMaterial | undefined, policy: RoutingPolicy, now = new Date()): Route {
  if (!material) {
    return { engine: 'refuse', alert: AlertDescription.handshake_failure, reason: 'no valid credentials are loaded yet', metric: 'no-credential' };
  }
  if (offersTls13(hello)) {
    if (selectDelegatedCredential(hello, material, now)) return { engine: 'ours', mode: 'dc' };
    if (material.certificateKey && certificateScheme(certificateSigner(material)!, hello) !== undefined) {
      return { engine: policy.certificateEngine, mode: 'certificate' };
    }
    const keyless = policy.keylessFor?.(material);
    if (keyless && certificateScheme(keyless, hello) !== undefined) return { engine: 'ours', mode: 'keyless' };
    if (material.certificateKey) {
      // No signature scheme in common with our key: node:tls says so with the proper alert.
      return { engine: 'node', mode: 'certificate' };
    }
    if (keyless) return { engine: 'refuse', alert: AlertDescription.handshake_failure, reason: 'no signature scheme in common with the certificate key', metric: 'no-common-scheme' };
    return fallbackRefusal(hello, material, policy);
  }
  if (material.certificateKey) return { engine: DEFAULT_TLS12_ENGINE, mode: 'certificate' };
  const keyless12 = policy.keylessFor?.(material);
  if (keyless12 && tls12Scheme(keyless12, hello) !== undefined) return { engine: 'ours', mode: 'keyless' };
  return {
    engine: 'refuse',
    alert: AlertDescription.protocol_version,
    reason: 'the client does not offer TLS 1.3, and TLS 1.2 needs the certificate key (tls.key) or a usable keyless signer, and neither is available',
    metric: 'protocol-version',
  };
}

/** A non-DC TLS 1.3 client that no fallback can serve: handshake_failure, with why. */
function fallbackRefusal(hello: ClientHello, material: ServingMaterial, policy: RoutingPolicy): Route {
  const client = hello.extensions.delegatedCredential ? 'the client accepts none of our delegated credentials' : 'the client does not support delegated credentials';
  const refuse = (metric: string, why: string): Route => ({ engine: 'refuse', alert: AlertDescription.handshake_failure, reason: `${client}, and ${why}`, metric });
  if (material.fallback.declared === 'None') return refuse('fallback-none', 'the DelegatedCredential has fallback None (DC clients only)');
  const unavailable = policy.keylessUnavailable?.();
  if (unavailable) return refuse(unavailable.kind, `the keyless fallback cannot sign: ${unavailable.reason}`);
  return refuse('no-fallback', 'the bundle holds no fallback (no tls.key, no keyless configuration)');
}

/**
 * The DC library's server selector over this material's set: both scheme lists, the DC's name
 * coverage of SNI, freshness, and the NSS rule that the DC's own signature algorithm must be in
 * the client's extension-34 list too (requireAlgorithmInDcSchemes: NSS aborts otherwise, which
 * matters for RSA certificates). Router and credential hook both call this, so they agree.
 */
function selectDelegatedCredential(hello: ClientHello, material: ServingMaterial, now: Date): CredentialChoice | undefined {
  // A client without the delegated_credential extension takes no DC (the set's select says the
  // same): skip the selector and its name match, twice per such connection (route and hook).
  if (!hello.extensions.delegatedCredential?.length) return undefined;
  const select = delegatedCredentialSelector(material.credentials, { now: () => now, requireAlgorithmInDcSchemes: true });
  const choice = select(hello, () => undefined);
  return choice instanceof Promise ? undefined : choice;
}

const signers = new WeakMap<ServingMaterial, Signer>();

/** The certificate key's signer, built once per loaded material. */
export function certificateSigner(material: ServingMaterial): Signer | undefined {
  if (!material.certificateKey) return undefined;
  let s = signers.get(material);
  if (!s) {
    s = createKeySigner(material.certificateKey);
    signers.set(material, s);
  }
  return s;
}

function certificateScheme(signer: Signer, hello: ClientHello): number | undefined {
  const offered = hello.extensions.signatureAlgorithms ?? [];
  return signer.schemes.find((s) => isCertificateVerifyScheme(s) && offered.includes(s));
}

/** A TLS 1.2 ServerKeyExchange scheme the signer has and the client offers (src/tls/tls12 decides the same way). */
function tls12Scheme(signer: Signer, hello: ClientHello): number | undefined {
  const offered = hello.extensions.signatureAlgorithms ?? [];
  return (signer.tls12Schemes ?? signer.schemes).find((s) => offered.includes(s));
}

/** What chooseCredential reports about its choice (HandshakeInfo.serverMode.details). */
export interface ChoiceDetails {
  readonly mode: HandshakeMode;
}

/**
 * Our stack's credential hook: a DC when the client accepts one (label 'delegated-credential',
 * the DC library's choice), else the certificate key, local then keyless (label and
 * ChoiceDetails.mode 'certificate' / 'keyless'). Undefined fails the handshake (handshake_failure).
 */
export function chooseCredential(hello: ClientHello, material: ServingMaterial | undefined, keyless: Signer | undefined, now = new Date()): CredentialChoice | undefined {
  if (!material) return undefined;
  const dc = selectDelegatedCredential(hello, material, now);
  if (dc) return dc;
  for (const [signer, mode] of [
    [certificateSigner(material), 'certificate'],
    [keyless, 'keyless'],
  ] as const) {
    if (!signer) continue;
    const scheme = certificateScheme(signer, hello);
    if (scheme === undefined) continue;
    const details: ChoiceDetails = { mode };
    return { certificateChain: material.credentials.certificateChain, signer, scheme, label: mode, details };
  }
  return undefined;
}
