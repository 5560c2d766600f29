// The controller runs as a ServiceAccount bound to exactly controllerRbac() (the apiserver runs
// with --authorization-mode=RBAC): if a rule were missing, nothing would be issued.
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import type { DelegationSigner } from '../../src/operator/api/v1alpha1.js';
import { runController, type ControllerHandle } from '../../src/operator/main.js';
import { createLogger } from '../../src/operator/logger.js';
import { createTestNamespace, testKubeConfig, type TestNamespace } from '../support/cluster.js';
import {
  DC,
  applyControllerRbac,
  applyCrds,
  createDelegatedCredential,
  dcctlCertificate,
  getDelegatedCredential,
  putSecret,
  serviceAccountKubeconfig,
  tlsSecret,
  waitFor,
  waitForCondition,
} from './operator-fixtures.js';

let admin: KubeConfig;
let ns: TestNamespace;
let controller: ControllerHandle | undefined;
let cleanup: (() => Promise<void>) | undefined;

before(async () => {
  admin = await testKubeConfig();
  await applyCrds(admin);
  ns = await createTestNamespace('rbac');
});

after(async () => {
  await controller?.stop();
  await cleanup?.();
  await ns?.delete();
});

void it('issues with only the RBAC rules it declares', async () => {
  const core = admin.makeApiClient(CoreV1Api);
  const kubeconfig = await serviceAccountKubeconfig(admin, ns.name, 'dc-operator');
  cleanup = await applyControllerRbac(admin, ns.name, 'dc-operator');

  controller = await runController({
    kubeconfig,
    operatorNamespace: ns.name,
    metricsPort: 0,
    metricsHost: '127.0.0.1',
    leaseDurationSeconds: 4,
    retryPeriodMs: 500,
    renewDeadlineMs: 3000,
    log: createLogger(process.env['DC_TEST_LOG_LEVEL'] ?? 'error'),
  });
  const cert = dcctlCertificate();
  await putSecret(core, tlsSecret(ns.name, 'tls', cert.crt, cert.key));
  await createDelegatedCredential(admin, ns.name, 'least', { certificateSecretRef: { name: 'tls' }, secretName: 'least-dc' });
  await waitForCondition(admin, ns.name, 'least', 'Ready', 'True', undefined, 30_000);
  const events = await core.listNamespacedEvent({ namespace: ns.name, fieldSelector: 'involvedObject.name=least' });
  assert.ok(events.items.some((e) => e.reason === 'Issued'), 'the event was recorded too');
});

void it('with the same rules writes signer statuses, watches key Secrets and deletes a previous output Secret', async () => {
  const core = admin.makeApiClient(CoreV1Api);
  const custom = admin.makeApiClient(CustomObjectsApi);
  const cert = dcctlCertificate();
  await putSecret(core, tlsSecret(ns.name, 'crt-only', cert.crt));
  await putSecret(core, { metadata: { name: 'shared-key', namespace: ns.name }, type: 'Opaque', data: { 'tls.key': Buffer.from(cert.key).toString('base64') } });
  const signerName = `shared-${ns.name}`;
  await custom.createClusterCustomObject({
    group: DC.group,
    version: DC.version,
    plural: 'clusterdelegationsigners',
    body: { apiVersion: 'dc-operator.io/v1alpha1', kind: 'ClusterDelegationSigner', metadata: { name: signerName }, spec: {
      inCluster: { keySecretRef: { name: 'shared-key', namespace: ns.name } },
      // Read through the Namespace watch its RBAC rule allows.
      namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': ns.name } },
    } },
  });
  const previousCleanup = cleanup;
  cleanup = async () => {
    await custom.deleteClusterCustomObject({ group: DC.group, version: DC.version, plural: 'clusterdelegationsigners', name: signerName });
    await previousCleanup?.();
  };
  await createDelegatedCredential(admin, ns.name, 'signed', { certificateSecretRef: { name: 'crt-only' }, secretName: 'signed-dc', signerRef: { kind: 'ClusterDelegationSigner', name: signerName } });
  await waitForCondition(admin, ns.name, 'signed', 'Ready', 'True', undefined, 30_000);
  await waitFor('the ClusterDelegationSigner status written', 15_000, async () => {
    const signer = (await custom.getClusterCustomObject({ group: DC.group, version: DC.version, plural: 'clusterdelegationsigners', name: signerName })) as DelegationSigner;
    return signer.status?.conditions?.find((c) => c.type === 'Ready' && c.status === 'True' && c.reason === 'KeyLoaded') ? true : undefined;
  });

  const dc = await getDelegatedCredential(admin, ns.name, 'least');
  await custom.replaceNamespacedCustomObject({ ...DC, namespace: ns.name, name: 'least', body: { ...dc, spec: { ...dc.spec, secretName: 'least-dc-renamed' } } });
  await waitFor('the previous output Secret deleted', 20_000, async () => {
    try {
      await core.readNamespacedSecret({ namespace: ns.name, name: 'least-dc' });
      return undefined;
    } catch (err) {
      return (err as { code?: number }).code === 404 ? true : undefined;
    }
  });
  assert.ok(await core.readNamespacedSecret({ namespace: ns.name, name: 'least-dc-renamed' }));
});
