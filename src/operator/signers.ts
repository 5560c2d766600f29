// Which key signs a DelegatedCredential's credentials. `describeSigner` works from caches only
// (every reconcile); `loadSigner` reads the key Secret with a targeted GET (only when issuing).
import type { V1Secret } from '@kubernetes/client-node';
import type { DelegatedCredential, DelegationSigner } from './api/v1alpha1.js';
import type { CertificateFacts, CryptoPort, Signer } from './crypto.js';
import { ReconcileFailure } from './failures.js';
import type { KubeApi, Listers } from './ports.js';

export type SignerPlan =
  | { kind: 'certificate-key'; description: string; namespace: string; secretName: string; key: 'tls.key' }
  | { kind: 'in-cluster'; description: string; namespace: string; secretName: string; key: string }
  | { kind: 'keyless'; description: string; address: string };

/** Resolves the signer from the spec and the signer caches; throws ReconcileFailure (SignerReady=False). */
export function planSigner(dc: DelegatedCredential, listers: Listers, operatorNamespace: string): SignerPlan {
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
  const { inCluster, keyless } = signer.spec;
  if (inCluster !== undefined) {
    const secretNamespace = ref.kind === 'ClusterDelegationSigner' ? (inCluster.keySecretRef.namespace ?? operatorNamespace) : namespace;
    const { name, key } = inCluster.keySecretRef;
    return { kind: 'in-cluster', description: `${what} (key ${key} of Secret ${secretNamespace}/${name})`, namespace: secretNamespace, secretName: name, key };
  }
  if (keyless !== undefined) {
    return { kind: 'keyless', description: `${what} (keyless ${keyless.address})`, address: keyless.address };
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
  prefetched?: V1Secret,
): Promise<Signer> {
  if (plan.kind === 'keyless') {
    throw new ReconcileFailure(
      'KeylessNotImplemented',
      `${plan.description}: keyless signing is not available in this version of the operator; use an inCluster signer or omit signerRef`,
      { signer: true },
    );
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
  return crypto.keySigner(Buffer.from(data, 'base64').toString('utf8'), `${plan.key} of Secret ${plan.namespace}/${plan.secretName}`, certificate);
}
