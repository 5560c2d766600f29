// The controller runs as a ServiceAccount bound to exactly controllerRbac() (the apiserver runs
// with --authorization-mode=RBAC): if a rule were missing, nothing would be issued.
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { CoreV1Api, RbacAuthorizationV1Api, type KubeConfig } from '@kubernetes/client-node';
import { controllerRbac } from '../../src/operator/rbac.js';
import { runController, type ControllerHandle } from '../../src/operator/main.js';
import { createLogger } from '../../src/operator/logger.js';
import { createTestNamespace, testKubeConfig, type TestNamespace } from '../support/cluster.js';
import { applyCrds, createDelegatedCredential, dcctlCertificate, putSecret, serviceAccountKubeconfig, tlsSecret, waitForCondition } from './operator-fixtures.js';

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
  const rbacApi = admin.makeApiClient(RbacAuthorizationV1Api);
  const kubeconfig = await serviceAccountKubeconfig(admin, ns.name, 'dc-operator');
  const rbac = controllerRbac({ name: `dc-operator-controller-${ns.name}`, namespace: ns.name, serviceAccount: 'dc-operator' });
  await rbacApi.createClusterRole({ body: rbac.clusterRole });
  await rbacApi.createClusterRoleBinding({ body: rbac.clusterRoleBinding });
  await rbacApi.createNamespacedRole({ namespace: ns.name, body: rbac.leaseRole });
  await rbacApi.createNamespacedRoleBinding({ namespace: ns.name, body: rbac.leaseRoleBinding });
  cleanup = async () => {
    await rbacApi.deleteClusterRoleBinding({ name: rbac.clusterRoleBinding.metadata?.name ?? '' });
    await rbacApi.deleteClusterRole({ name: rbac.clusterRole.metadata?.name ?? '' });
  };

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
