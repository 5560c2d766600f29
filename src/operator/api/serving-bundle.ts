// The output Secret is the sidecar's whole serving bundle: the webhook mounts this one Secret,
// kubelet swaps its `..data` link on every change, and the sidecar reads every part from it.
// The layout is defined here, once; the operator writes it, the sidecar reads it.
import type { Algorithm } from './v1alpha1.js';
export { FALLBACKS, DEFAULT_FALLBACK, type Fallback } from './v1alpha1.js';

export const BUNDLE_KEYS = {
  /** The certificate chain (leaf first), never a key. */
  chain: 'tls.crt',
  /** The certificate's private key: present only with `fallback: CertificateKey`. */
  certificateKey: 'tls.key',
  /** Which fallback the operator configured: one of FALLBACKS, so the sidecar can say what it serves. */
  fallback: 'fallback',
  /** host:port of the key server the sidecar pulls certificate-key signatures from (fallback Keyless). */
  keylessAddress: 'keyless.address',
  /** PEM CA bundle that signed the key server's serving certificate. */
  keylessCA: 'keyless-ca.crt',
  /** The sidecar's client certificate (PEM; its URI SAN is the identity below) and its key. */
  keylessClientCertificate: 'keyless-client.crt',
  keylessClientKey: 'keyless-client.key',
} as const;

/** `<algorithm>.cred`: an encoded DelegatedCredential (RFC 9345 §4). */
export const credentialKey = (algorithm: Algorithm): string => `${algorithm}.cred`;
/** `<algorithm>.key`: the credential's private key (PKCS#8 PEM). */
export const privateKeyKey = (algorithm: Algorithm): string => `${algorithm}.key`;

export const DEFAULT_TRUST_DOMAIN = 'cluster.local';

/**
 * A sidecar's identity toward a key server, the URI SAN of its client certificate:
 * `spiffe://<trust-domain>/ns/<namespace>/dc/<delegated-credential-name>`.
 * The key server lets this identity sign only with the key of the certificate that
 * DelegatedCredential references.
 */
export interface SidecarIdentity {
  trustDomain: string;
  namespace: string;
  name: string;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const TRUST_DOMAIN = /^[a-z0-9._-]{1,255}$/;

export function sidecarIdentityUri(id: SidecarIdentity): string {
  if (!TRUST_DOMAIN.test(id.trustDomain)) throw new RangeError(`invalid trust domain ${JSON.stringify(id.trustDomain)} (lower-case letters, digits, '.', '-', '_')`);
  if (!DNS_LABEL.test(id.namespace) || id.namespace.length > 63) throw new RangeError(`invalid namespace ${JSON.stringify(id.namespace)}`);
  if (!DNS_SUBDOMAIN.test(id.name) || id.name.length > 253) throw new RangeError(`invalid DelegatedCredential name ${JSON.stringify(id.name)}`);
  return `spiffe://${id.trustDomain}/ns/${id.namespace}/dc/${id.name}`;
}

/**
 * The controller's identity toward the in-cluster key server: `spiffe://<trust-domain>/dc-operator/controller`.
 * The key server lets it ping (the controller probes the key server's readiness) and sign nothing.
 */
export function controllerIdentityUri(trustDomain: string): string {
  if (!TRUST_DOMAIN.test(trustDomain)) throw new RangeError(`invalid trust domain ${JSON.stringify(trustDomain)} (lower-case letters, digits, '.', '-', '_')`);
  return `spiffe://${trustDomain}/dc-operator/controller`;
}

/** The inverse of sidecarIdentityUri; undefined for anything else (other SPIFFE paths included). */
export function parseSidecarIdentityUri(uri: string): SidecarIdentity | undefined {
  if (uri.length > 600) return undefined;
  const m = /^spiffe:\/\/([^/]+)\/ns\/([^/]+)\/dc\/([^/]+)$/.exec(uri);
  if (!m) return undefined;
  const [, trustDomain, namespace, name] = m as unknown as [string, string, string, string];
  if (!TRUST_DOMAIN.test(trustDomain) || !DNS_LABEL.test(namespace) || namespace.length > 63 || !DNS_SUBDOMAIN.test(name) || name.length > 253) return undefined;
  return { trustDomain, namespace, name };
}
