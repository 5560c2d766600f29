// How the sidecar serves clients without delegated-credential support (spec.fallback), as pure
// policies over what the reconciler knows: which parts of the serving bundle the output Secret
// must hold, whether the stored parts are still right, and what the FallbackReady condition says.
//
//   fallback        signer                        bundle holds (besides tls.crt and the DCs)
//   Keyless         certificate key / inCluster   the in-cluster key server's address, the operator's CA bundle, a client identity
//   Keyless         keyless (remote)              the signer's address, its caBundleSecretRef ca.crt, a client identity
//   Keyless         (no --keyserver-address)      nothing: FallbackReady=False NoKeyServer
//   None            any                           nothing: FallbackReady=True DisabledBySpec
//   CertificateKey  certificate key / inCluster   tls.key of the certificate Secret: FallbackReady=True CertificateKeyInPod (warning)
//   CertificateKey  keyless (remote)              nothing (the operator never has that key): FallbackReady=False
//
// Every mode writes `fallback`, so the sidecar can say what it serves.
import { X509Certificate } from 'node:crypto';
import { BUNDLE_KEYS, DEFAULT_FALLBACK, type Fallback } from './api/serving-bundle.js';
import type { DelegatedCredential } from './api/v1alpha1.js';
import type { DesiredCondition } from './conditions.js';
import { splitPemCertificates, subjectUidOf } from '../pki/certs.js';
import type { KeyCheck } from './cache-form.js';
import { sha256Hex } from './output-secret.js';

/** The in-cluster key server as the controller last saw it (one probe for every DelegatedCredential). */
export interface KeyServerState {
  address: string;
  /** undefined: not probed yet. */
  ready: boolean | undefined;
  /** Why it is not ready (the probe's error). */
  message: string;
}

/** What the controller's keyless identity component offers the reconciler. */
export interface KeylessIdentitySnapshot {
  /** The CA bundle (PEM, newest first); undefined until the CA Secret is loaded. */
  caBundlePem: string | undefined;
  /** Why the CA is not available. */
  caProblem?: string;
  /** undefined: no in-cluster key server configured (--keyserver-address empty). */
  keyServer: KeyServerState | undefined;
  trustDomain: string;
}

/** The signer, as far as the fallback cares. */
export type SignerKind = { kind: 'certificate-key' | 'in-cluster' } | { kind: 'keyless'; address: string; description: string; healthy: boolean | undefined };

export type FallbackPlan =
  | { kind: 'none' }
  | { kind: 'certificate-key' }
  | { kind: 'keyless'; address: string; source: 'in-cluster' | 'remote' }
  /** The fallback cannot be served; the DCs are still issued. */
  | { kind: 'unavailable'; reason: 'NoKeyServer' | 'KeylessCANotReady' | 'CertificateKeyUnavailable' | 'CertificateKeyNotFound'; message: string };

export function fallbackOf(dc: DelegatedCredential): Fallback {
  return dc.spec.fallback ?? DEFAULT_FALLBACK;
}

/** Pure: what the bundle must hold for this fallback with this signer. */
export function planFallback(
  fallback: Fallback,
  signer: SignerKind,
  identity: KeylessIdentitySnapshot | undefined,
  certificate: { secretName: string; hasKey: boolean },
): FallbackPlan {
  if (fallback === 'None') return { kind: 'none' };
  if (fallback === 'CertificateKey') {
    if (signer.kind === 'keyless') {
      return {
        kind: 'unavailable',
        reason: 'CertificateKeyUnavailable',
        message: `fallback CertificateKey needs the certificate key, but ${signer.description} keeps it on its key server: the operator never has it. Use fallback Keyless (the sidecar pulls signatures from ${signer.address}) or None`,
      };
    }
    if (!certificate.hasKey) {
      return {
        kind: 'unavailable',
        reason: 'CertificateKeyNotFound',
        message: `fallback CertificateKey copies tls.key of the certificate Secret ${certificate.secretName}, which has none: put the key there, or use fallback Keyless`,
      };
    }
    return { kind: 'certificate-key' };
  }
  if (signer.kind !== 'keyless' && identity?.keyServer === undefined) {
    return {
      kind: 'unavailable',
      reason: 'NoKeyServer',
      message:
        'no in-cluster key server is configured (controller flag --keyserver-address): clients without delegated-credential support get a handshake failure. Install the key server, or set spec.fallback None to say DC clients only',
    };
  }
  if (identity?.caBundlePem === undefined) {
    return { kind: 'unavailable', reason: 'KeylessCANotReady', message: `the keyless CA is not available yet${identity?.caProblem ? `: ${identity.caProblem}` : ''}` };
  }
  if (signer.kind === 'keyless') return { kind: 'keyless', address: signer.address, source: 'remote' };
  return { kind: 'keyless', address: identity.keyServer?.address ?? '', source: 'in-cluster' };
}

/** Pure: the FallbackReady condition. */
export function fallbackCondition(plan: FallbackPlan, signer: SignerKind, identity: KeylessIdentitySnapshot | undefined): DesiredCondition {
  const type = 'FallbackReady' as const;
  switch (plan.kind) {
    case 'none':
      return { type, status: 'True', reason: 'DisabledBySpec', message: 'fallback None: only clients that support delegated credentials are served; others get a handshake failure' };
    case 'certificate-key':
      return {
        type,
        status: 'True',
        reason: 'CertificateKeyInPod',
        message: 'fallback CertificateKey: the certificate key is in the output Secret, so every pod that mounts it holds the key. Prefer fallback Keyless',
      };
    case 'unavailable':
      return { type, status: 'False', reason: plan.reason, message: plan.message };
    case 'keyless': {
      if (plan.source === 'remote') {
        if (signer.kind === 'keyless' && signer.healthy === false) {
          return { type, status: 'False', reason: 'KeyServerUnreachable', message: `key server ${plan.address} of ${signer.description} does not answer (SignerReady says more)` };
        }
        return { type, status: 'True', reason: 'KeyServerReady', message: `sidecars pull certificate-key signatures from ${plan.address}, which must trust the operator's keyless CA` };
      }
      const state = identity?.keyServer;
      if (state?.ready === undefined) return { type, status: 'Unknown', reason: 'Probing', message: `the key server ${plan.address} has not been probed yet` };
      if (!state.ready) return { type, status: 'False', reason: 'KeyServerUnreachable', message: `key server ${plan.address}: ${state.message}; clients without delegated-credential support get a handshake failure until it answers` };
      return { type, status: 'True', reason: 'KeyServerReady', message: `sidecars pull certificate-key signatures from ${plan.address}` };
    }
  }
}

// ---- what the stored bundle holds, and whether it is right -------------------------------------

/** The fallback parts of an output Secret, read back. */
export interface StoredFallback {
  value: string | undefined;
  address: string | undefined;
  caPem: string | undefined;
  clientCertPem: string | undefined;
  /** keyless-client.key as cached: never its PEM, the check of it (cache-form.ts). */
  clientKey: KeyCheck | undefined;
  hasCertificateKey: boolean;
}

export interface WantedFallback {
  plan: FallbackPlan;
  fallback: Fallback;
  /** The sidecar identity URI of this DelegatedCredential. */
  identityUri: string;
  /** Its UID, which its client certificate names (the key server refuses another: a deleted and re-created object's). */
  uid?: string;
  /** In-cluster: the operator's CA bundle, which the stored one must equal and the client certificate must chain to. */
  caBundlePem: string | undefined;
}

/** The client certificate's facts, or why it is unusable. */
export function readClientCertificate(certPem: string | undefined, key: KeyCheck | undefined): { notAfter: Date; uri: string | undefined; uid: string | undefined; certificate: X509Certificate } | { problem: string } {
  if (certPem === undefined || key === undefined) return { problem: 'no client certificate' };
  try {
    const certificate = new X509Certificate(certPem);
    if ('problem' in key) return { problem: `${BUNDLE_KEYS.keylessClientKey} ${key.problem}` };
    const spki = certificate.publicKey.export({ type: 'spki', format: 'der' });
    if (key.publicKeyFingerprint !== sha256Hex(spki)) return { problem: `${BUNDLE_KEYS.keylessClientKey} does not belong to ${BUNDLE_KEYS.keylessClientCertificate}` };
    const uri = /(?:^|, )URI:([^,]+)/.exec(certificate.subjectAltName ?? '')?.[1];
    return { notAfter: new Date(certificate.validTo), uri, uid: subjectUidOf(certificate.subject), certificate };
  } catch (err) {
    return { problem: `the client certificate does not parse: ${err instanceof Error ? err.message : String(err)}` };
  }
}

/** Whether `certificate` was signed by one of the CAs of `bundlePem`. */
export function chainsTo(certificate: X509Certificate, bundlePem: string): boolean {
  for (const pem of splitPemCertificates(bundlePem)) {
    try {
      const ca = new X509Certificate(pem);
      if (certificate.checkIssued(ca) && certificate.verify(ca.publicKey)) return true;
    } catch {
      // an unreadable CA in the bundle trusts nothing
    }
  }
  return false;
}

/**
 * Pure apart from parsing: why the stored fallback parts must be rewritten, or null. `renewalAt`
 * is when the credentials are next renewed: a client certificate expiring before then is re-issued now.
 */
export function fallbackProblem(stored: StoredFallback, wanted: WantedFallback, now: Date, renewalAt: Date | undefined): string | null {
  const { plan } = wanted;
  if (stored.hasCertificateKey && plan.kind !== 'certificate-key') return `the output Secret holds ${BUNDLE_KEYS.certificateKey} but the fallback is ${wanted.fallback}: removing the certificate key`;
  if (stored.value !== wanted.fallback) return `the output Secret is laid out for fallback ${stored.value ?? '(none)'}, the spec asks for ${wanted.fallback}`;
  if (plan.kind === 'certificate-key') return stored.hasCertificateKey ? null : `the output Secret lacks ${BUNDLE_KEYS.certificateKey}`;
  const storedKeyless = [stored.address, stored.caPem, stored.clientCertPem, stored.clientKey].some((v) => v !== undefined);
  if (plan.kind !== 'keyless') return storedKeyless ? 'the output Secret holds keyless settings the fallback no longer uses' : null;
  if (stored.address !== plan.address) return `the key server address changed (${stored.address ?? 'none'} → ${plan.address})`;
  if (stored.caPem === undefined) return `the output Secret lacks ${BUNDLE_KEYS.keylessCA}`;
  if (plan.source === 'in-cluster' && wanted.caBundlePem !== undefined && stored.caPem.trim() !== wanted.caBundlePem.trim()) return "the operator's keyless CA bundle changed";
  const client = readClientCertificate(stored.clientCertPem, stored.clientKey);
  if ('problem' in client) return client.problem;
  if (client.uri !== wanted.identityUri) return `the client certificate names ${client.uri ?? 'no URI'}, not ${wanted.identityUri}`;
  if (wanted.uid !== undefined && client.uid !== wanted.uid) return `the client certificate names DelegatedCredential UID ${client.uid ?? '(none)'}, not ${wanted.uid}`;
  if (client.notAfter.getTime() <= now.getTime()) return `the client certificate expired at ${client.notAfter.toISOString()}`;
  if (renewalAt !== undefined && client.notAfter.getTime() <= renewalAt.getTime()) return `the client certificate expires at ${client.notAfter.toISOString()}, before the next renewal`;
  if (wanted.caBundlePem !== undefined && !chainsTo(client.certificate, wanted.caBundlePem)) return "the client certificate was not issued by the operator's keyless CA";
  return null;
}
