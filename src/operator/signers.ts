// Which key signs a DelegatedCredential's credentials. `describeSigner` works from caches only
// (every reconcile); `loadSigner` reads the key Secret with a targeted GET (only when issuing), or
// hands a keyless plan to the shared keyless clients (keyless.ts).
//
// Where a ClusterDelegationSigner's Secrets live: like cert-manager's ClusterIssuer, in the
// "cluster resource namespace" (flag --cluster-resource-namespace, default the operator's own
// namespace). An inCluster keySecretRef may name another namespace explicitly; keyless Secret
// references are names only.
//
// Those Secrets live in another namespace than the DelegatedCredentials a ClusterDelegationSigner
// signs for, so nothing written to a DelegatedCredential (status, events) names them: its plan's
// description says "in-cluster key", and its failures reach the DelegatedCredential through
// `failureForTenant`. The signer's own status (cluster-scoped) keeps the full detail.
import type { V1Secret } from '@kubernetes/client-node';
import type { DelegatedCredential, DelegationSigner } from './api/v1alpha1.js';
import type { CertificateFacts, CryptoPort, Signer } from './crypto.js';
import { parseDuration } from './duration.js';
import { ReconcileFailure } from './failures.js';
import type { KeylessPlan, KeylessPort } from './keyless.js';
import type { KubeApi, Listers } from './ports.js';
import { clusterSignerAccess } from './signer-access.js';

export type SignerPlan =
  | { kind: 'certificate-key'; description: string; namespace: string; secretName: string; key: 'tls.key' }
  | {
      kind: 'in-cluster';
      /** What the DelegatedCredential's status may say about the signer. */
      description: string;
      namespace: string;
      secretName: string;
      key: string;
      signerId: string;
    }
  | KeylessPlan;

/** `DelegationSigner/<ns>/<name>` or `ClusterDelegationSigner/<name>`: how signers are named in caches and indexes. */
export function signerIdOf(kind: 'DelegationSigner' | 'ClusterDelegationSigner', namespace: string, name: string): string {
  return kind === 'DelegationSigner' ? `${kind}/${namespace}/${name}` : `${kind}/${name}`;
}

/** Whether a plan signs through a ClusterDelegationSigner (whose Secrets are another namespace's business). */
export function isClusterSigner(plan: SignerPlan): boolean {
  return plan.kind !== 'certificate-key' && plan.signerId.startsWith('ClusterDelegationSigner/');
}

/**
 * Resolves the signer from the spec and the signer caches; throws ReconcileFailure (SignerReady=False),
 * SignerNotAllowed when a ClusterDelegationSigner does not select the DelegatedCredential's
 * namespace. 'syncing': the namespace cache is not filled yet (try again shortly).
 * `clusterResourceNamespace` is where ClusterDelegationSigner Secrets live by default.
 */
export function planSigner(dc: DelegatedCredential, listers: Pick<Listers, 'signer' | 'namespace'>, clusterResourceNamespace: string): SignerPlan | 'syncing' {
  const namespace = dc.metadata.namespace ?? '';
  const ref = dc.spec.signerRef;
  if (ref === undefined) {
    const secretName = dc.spec.certificateSecretRef.name;
    return { kind: 'certificate-key', description: `tls.key of Secret ${secretName}`, namespace, secretName, key: 'tls.key' };
  }
  const signer: DelegationSigner | undefined = listers.signer(ref.kind, namespace, ref.name);
  const what = ref.kind === 'DelegationSigner' ? `DelegationSigner ${namespace}/${ref.name}` : `ClusterDelegationSigner ${ref.name}`;
  if (signer === undefined) {
    throw new ReconcileFailure('SignerNotFound', `${what} does not exist; create it or fix spec.signerRef`, { signer: true });
  }
  if (ref.kind === 'ClusterDelegationSigner') {
    // Checked before anything else is read for this DelegatedCredential: a refused namespace
    // learns nothing about the signer but that it exists and does not select it.
    const ns = listers.namespace(namespace);
    if (ns.state === 'syncing') return 'syncing';
    const access = clusterSignerAccess(signer, namespace, ns.state === 'found' ? ns.labels : undefined);
    if (!access.allowed) throw new ReconcileFailure('SignerNotAllowed', access.message, { signer: true });
  }
  const { inCluster, keyless } = signer.spec;
  const signerId = signerIdOf(ref.kind, namespace, ref.name);
  if (inCluster !== undefined) {
    const cluster = ref.kind === 'ClusterDelegationSigner';
    const secretNamespace = cluster ? (inCluster.keySecretRef.namespace ?? clusterResourceNamespace) : namespace;
    const { name, key } = inCluster.keySecretRef;
    const description = cluster ? `${what} (in-cluster key)` : `${what} (key ${key} of Secret ${secretNamespace}/${name})`;
    return { kind: 'in-cluster', description, namespace: secretNamespace, secretName: name, key, signerId };
  }
  if (keyless !== undefined) {
    let timeoutMs: number;
    try {
      timeoutMs = parseDuration(keyless.timeout);
    } catch (err) {
      throw new ReconcileFailure('InvalidSpec', `${what}: spec.keyless.timeout: ${err instanceof Error ? err.message : String(err)}`, { signer: true });
    }
    return {
      kind: 'keyless',
      description: `${what} (keyless ${keyless.address})`,
      signerId,
      uid: signer.metadata.uid ?? '',
      address: keyless.address,
      secretNamespace: ref.kind === 'ClusterDelegationSigner' ? clusterResourceNamespace : namespace,
      caBundleSecret: keyless.caBundleSecretRef.name,
      clientCertificateSecret: keyless.clientCertificateSecretRef.name,
      timeoutMs,
    };
  }
  throw new ReconcileFailure('SignerUnavailable', `${what} sets neither inCluster nor keyless`, { signer: true });
}

/**
 * Loads the key of an in-cluster plan and checks it belongs to the certificate. `prefetched` is
 * the key Secret when the caller already read it (the certificate Secret holds the key).
 */
export async function loadSigner(
  plan: SignerPlan,
  certificate: CertificateFacts,
  api: KubeApi,
  crypto: CryptoPort,
  keyless: KeylessPort | undefined,
  prefetched?: V1Secret,
): Promise<Signer> {
  if (plan.kind === 'keyless') {
    if (keyless === undefined) {
      throw new ReconcileFailure('KeylessNotImplemented', `${plan.description}: this operator runs without keyless signing`, { signer: true });
    }
    return keyless.signer(plan, certificate);
  }
  const secret = prefetched ?? (await api.getSecret(plan.namespace, plan.secretName));
  if (secret === undefined) {
    throw new ReconcileFailure('SecretNotFound', `the key Secret ${plan.namespace}/${plan.secretName} of ${plan.description} does not exist`, {
      signer: true,
    });
  }
  const data = secret.data?.[plan.key];
  if (data === undefined || data === '') {
    const hint = plan.kind === 'certificate-key' ? '; for a certificate Secret without its key, set spec.signerRef' : '';
    throw new ReconcileFailure('KeyNotFound', `Secret ${plan.namespace}/${plan.secretName} has no ${plan.key}${hint}`, { signer: true });
  }
  // The decoded bytes are ours to drop: zeroed once parsed (the base64 text and the PEM string are not).
  const pem = Buffer.from(data, 'base64');
  try {
    return crypto.keySigner(pem.toString('utf8'), `${plan.key} of Secret ${plan.namespace}/${plan.secretName}`, certificate);
  } finally {
    pem.fill(0);
  }
}

/**
 * A ClusterDelegationSigner's failure as the DelegatedCredential's namespace may read it: the
 * reason and what it means, never the coordinates of the signer's Secrets (loadSigner's messages
 * name them; they go to the signer's own status). A key server's address and error are kept: they
 * name no Secret and tell the DelegatedCredential's owner what is down.
 */
export function failureForTenant(plan: SignerPlan, failure: ReconcileFailure, certificate: CertificateFacts): ReconcileFailure {
  if (failure.reason === 'SignerUnavailable' || failure.reason === 'KeylessNotImplemented') return failure;
  const name = plan.kind === 'certificate-key' ? '' : plan.signerId.slice('ClusterDelegationSigner/'.length);
  const more = `; the status of ClusterDelegationSigner ${name} says more (ask its owner)`;
  const what: Partial<Record<ReconcileFailure['reason'], string>> = {
    SecretNotFound: 'a Secret it needs does not exist',
    KeyNotFound: 'its key Secret holds no key under the name it gives',
    KeyInvalid: 'its key cannot be used',
    KeyMismatch: `its key does not belong to the certificate (sha256 ${certificate.fingerprint.slice(0, 12)}): it is another certificate's key, or its private part does not produce signatures the certificate's public key verifies`,
  };
  return new ReconcileFailure(failure.reason, `${plan.description}: ${what[failure.reason] ?? 'it cannot sign'}${more}`, { signer: failure.signer });
}
