// A tenant attacks a ClusterDelegationSigner on the real apiserver: in its own namespace it puts
// someone else's public certificate (no key) into a kubernetes.io/tls Secret and names the signer
// that holds that certificate's key. The signer's namespaceSelector does not select the tenant's
// namespace: refused, with a reason that says what to change, and nothing issued. Labelling the
// namespace grants access at once; removing the label stops renewals but keeps what was issued.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { CustomObjectsApi, type CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { ControllerHandle } from '../../src/operator/main.js';
import { createTestNamespace, uniqueName, type TestNamespace } from '../support/cluster.js';
import { beforeAndAfter } from '../support/file-hooks.js';
import { DC, createDelegatedCredential, dcctlCertificate, getDelegatedCredential, putSecret, tlsSecret, waitFor, waitForCondition, startNamespacedController } from './operator-fixtures.js';

let kc: KubeConfig;
let core: CoreV1Api;
let tenant: TestNamespace;
let keys: TestNamespace;
let controller: ControllerHandle;
let custom: CustomObjectsApi;
const signerName = uniqueName('shared');
const grantLabel = `dc-operator.test/${uniqueName('grant')}`;

beforeAndAfter(
  async () => {
    ({ kc, core, ns: tenant, controller } = await startNamespacedController('tenant-b'));
    custom = kc.makeApiClient(CustomObjectsApi);
    keys = await createTestNamespace('signer-keys');
  },
  async () => {
    await controller?.stop();
    await custom?.deleteClusterCustomObject({ group: DC.group, version: DC.version, plural: 'clusterdelegationsigners', name: signerName }).catch(() => undefined);
    await tenant?.delete();
    await keys?.delete();
  },
);

async function setNamespaceLabel(value: string | undefined): Promise<void> {
  const ns = await core.readNamespace({ name: tenant.name });
  const labels = { ...ns.metadata?.labels };
  if (value === undefined) delete labels[grantLabel];
  else labels[grantLabel] = value;
  await core.replaceNamespace({ name: tenant.name, body: { ...ns, metadata: { ...ns.metadata, labels } } });
}

void it('refuses a namespace the ClusterDelegationSigner does not select, issues once it is labelled, and stops renewing (keeping what was issued) when the label goes', async () => {
  // The victim's certificate and key; the key lives with the signer, in another namespace.
  const victim = dcctlCertificate({ dns: 'bank.example.test' });
  await putSecret(core, { metadata: { name: 'bank-key', namespace: keys.name }, type: 'Opaque', data: { 'tls.key': Buffer.from(victim.key).toString('base64') } });
  await custom.createClusterCustomObject({
    group: DC.group,
    version: DC.version,
    plural: 'clusterdelegationsigners',
    body: {
      apiVersion: 'dc-operator.io/v1alpha1',
      kind: 'ClusterDelegationSigner',
      metadata: { name: signerName },
      spec: { inCluster: { keySecretRef: { name: 'bank-key', namespace: keys.name } }, namespaceSelector: { matchLabels: { [grantLabel]: 'yes' } } },
    },
  });

  // The tenant copies the public certificate and names the signer.
  await putSecret(core, tlsSecret(tenant.name, 'copied', victim.crt));
  await createDelegatedCredential(kc, tenant.name, 'steal', { certificateSecretRef: { name: 'copied' }, secretName: 'steal-dc', signerRef: { kind: 'ClusterDelegationSigner', name: signerName } });
  const refused = await waitForCondition(kc, tenant.name, 'steal', 'Ready', 'False', 'SignerNotAllowed');
  const message = refused.status?.conditions?.find((c) => c.type === 'Ready')?.message ?? '';
  assert.match(message, new RegExp(`ClusterDelegationSigner ${signerName} does not allow namespace ${tenant.name}: .*label namespace ${tenant.name} so they do, or ask the signer's owner to widen the selector`));
  assert.equal(refused.status?.conditions?.find((c) => c.type === 'SignerReady')?.reason, 'SignerNotAllowed');
  const status = JSON.stringify(refused.status);
  assert.ok(!status.includes(keys.name) && !status.includes('bank-key'), `the signer's Secret is not named: ${status}`);
  await assert.rejects(core.readNamespacedSecret({ namespace: tenant.name, name: 'steal-dc' }), (err: unknown) => (err as { code?: number }).code === 404);

  // The signer's owner labels the namespace: issued without waiting for a backoff.
  await setNamespaceLabel('yes');
  const granted = await waitForCondition(kc, tenant.name, 'steal', 'Ready', 'True', undefined, 15_000);
  assert.equal(granted.status?.conditions?.find((c) => c.type === 'SignerReady')?.message, `signing with ClusterDelegationSigner ${signerName} (in-cluster key)`);
  const issued = await core.readNamespacedSecret({ namespace: tenant.name, name: 'steal-dc' });
  assert.ok(issued.data?.['ecdsa_secp256r1_sha256.cred']);

  // Revoked: no renewal, the issued Secret stays as it is until its credentials expire.
  await setNamespaceLabel(undefined);
  const revoked = await waitForCondition(kc, tenant.name, 'steal', 'Ready', 'False', 'SignerNotAllowed', 15_000);
  assert.match(revoked.status?.conditions?.find((c) => c.type === 'Ready')?.message ?? '', /The existing credentials were left in place\.$/);
  const dc = await getDelegatedCredential(kc, tenant.name, 'steal');
  // A spec change that would re-issue: still refused, the Secret untouched.
  await custom.replaceNamespacedCustomObject({ ...DC, namespace: tenant.name, name: 'steal', body: { ...dc, spec: { ...dc.spec, algorithms: ['ed25519'] } } });
  await waitFor('the spec change observed', 15_000, async () => {
    const d = await getDelegatedCredential(kc, tenant.name, 'steal');
    return d.status?.observedGeneration === 2 ? d : undefined;
  });
  const untouched = await core.readNamespacedSecret({ namespace: tenant.name, name: 'steal-dc' });
  assert.equal(untouched.metadata?.resourceVersion, issued.metadata?.resourceVersion, 'the output Secret was not touched');
});
