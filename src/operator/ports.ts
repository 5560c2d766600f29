// What the reconciler needs from the outside world, as narrow interfaces: read from caches,
// a few targeted API calls, events, metrics. kube.ts implements them against the apiserver;
// unit tests implement them in memory.
import type { V1Secret } from '@kubernetes/client-node';
import type { DelegatedCredential, DelegatedCredentialStatus, DelegationSigner } from './api/v1alpha1.js';
import type { CachedOutputSecret } from './cache-form.js';

/** What the certificate-Secret informer keeps: public data only, never tls.key (nor a key inside tls.crt). */
export interface CertificateSecretProjection {
  namespace: string;
  name: string;
  resourceVersion: string;
  /** Whether the Secret has a non-empty tls.key (its content is never cached). */
  hasKey: boolean;
  /** The CERTIFICATE blocks of tls.crt, re-encoded from DER; undefined when tls.crt is absent or unreadable. */
  chainPem: string | undefined;
  /** Labels of private-key blocks tls.crt also held ('PRIVATE KEY', 'EC PRIVATE KEY', ...): none belong there. */
  privateKeyLabels: string[];
  /** Why tls.crt could not be read (a CERTIFICATE block that is not base64). */
  invalid?: string;
}

export type CertificateLookup =
  | { state: 'syncing' }
  | { state: 'absent' }
  | { state: 'found'; secret: CertificateSecretProjection };

/** A Namespace as the operator caches it: its labels only (for ClusterDelegationSigner selectors). */
export type NamespaceLookup =
  | { state: 'syncing' }
  | { state: 'absent' }
  | { state: 'found'; labels: Readonly<Record<string, string>> };

export interface Listers {
  delegatedCredential(namespace: string, name: string): DelegatedCredential | undefined;
  outputSecret(namespace: string, name: string): CachedOutputSecret | undefined;
  certificateSecret(namespace: string, name: string): CertificateLookup;
  signer(kind: 'DelegationSigner' | 'ClusterDelegationSigner', namespace: string, name: string): DelegationSigner | undefined;
  namespace(name: string): NamespaceLookup;
  /** Output Secrets labelled as written for the DelegatedCredential `namespace/name` (any Secret name). */
  outputSecretsOwnedBy?(namespace: string, name: string): CachedOutputSecret[];
}

export interface KubeApi {
  /** A targeted read (key material is never cached); undefined on 404. */
  getSecret(namespace: string, name: string): Promise<V1Secret | undefined>;
  createSecret(secret: V1Secret): Promise<V1Secret>;
  /** Conditional on metadata.resourceVersion. */
  replaceSecret(secret: V1Secret): Promise<V1Secret>;
  /** Deletes a Secret if it still has this uid and resourceVersion (preconditions); a 404 is success. */
  deleteSecret(namespace: string, name: string, preconditions: { uid: string; resourceVersion: string }): Promise<void>;
  /** Replaces the status subresource, conditional on metadata.resourceVersion. */
  updateStatus(dc: DelegatedCredential, status: DelegatedCredentialStatus): Promise<DelegatedCredential>;
}

export interface EventRecorder {
  record(dc: DelegatedCredential, type: 'Normal' | 'Warning', reason: string, message: string): void;
}

export interface IssueMetrics {
  issued(algorithm: string): void;
  failed(reason: string): void;
  signDuration(algorithm: string, signer: string, seconds: number): void;
}

export interface Logger {
  info(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
  error(message: string, meta?: Record<string, unknown>): void;
  debug(message: string, meta?: Record<string, unknown>): void;
}
