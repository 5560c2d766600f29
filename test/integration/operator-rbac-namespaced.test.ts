// The namespaced install on the real apiserver (--authorization-mode=RBAC): the controller runs as
// a ServiceAccount bound to exactly controllerRbac({ watchNamespaces }) — a ClusterRole for
// ClusterDelegationSigners only, Roles in the two watched namespaces and in the cluster resource
// namespace — with --namespace for each watched one. It issues in both (one of them with a
// ClusterDelegationSigner whose key Secret lives in the cluster resource namespace), leaves a
// DelegatedCredential in an unwatched namespace alone, asks for nothing RBAC refuses, and the
// apiserver confirms it may not read Secrets anywhere else.
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { AuthorizationV1Api, CoreV1Api, CustomObjectsApi, RbacAuthorizationV1Api, type KubeConfig } from '@kubernetes/client-node';
import { controllerRbac } from '../../src/operator/rbac.js';
import { runController, type ControllerHandle } from '../../src/operator/main.js';
import type { Logger } from '../../src/operator/ports.js';
import { createTestNamespace, kubeConfigFromFile, testKubeConfig, type TestNamespace } from '../support/cluster.js';
import { DC, applyCrds, createDelegatedCredential, dcctlCertificate, getDelegatedCredential, putSecret, serviceAccountKubeconfig, tlsSecret, waitForCondition } from './operator-fixtures.js';

let admin: KubeConfig;
/** The operator namespace (ServiceAccount, Lease) and cluster resource namespace. */
let op: TestNamespace;
let shop: TestNamespace;
let pay: TestNamespace;
let other: TestNamespace;
let controller: ControllerHandle | undefined;
const cleanups: Array<() => Promise<unknown>> = [];

before(async () => {
  admin = await testKubeConfig();
  await applyCrds(admin);
  op = await createTestNamespace('rbac-op');
  shop = await createTestNamespace('rbac-shop');
  pay = await createTestNamespace('rbac-pay');
  other = await createTestNamespace('rbac-other');
});

after(async () => {
  await controller?.stop();
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  await Promise.all([op, shop, pay, other].map((n) => n?.delete()));
});

/** Everything the controller logs at warn or above: RBAC refusals would show here. */
function recordingLogger(lines: string[]): Logger {
  const keep = (level: string) => (message: string, meta?: Record<string, unknown>) => void lines.push(`${level} ${message} ${JSON.stringify(meta ?? {})}`);
  return { info: () => undefined, debug: () => undefined, warn: keep('warn'), error: keep('error') };
}

void it('with Roles in its namespaces and the cluster resource namespace only, issues there and may not read Secrets elsewhere', async () => {
  const core = admin.makeApiClient(CoreV1Api);
  const custom = admin.makeApiClient(CustomObjectsApi);
  const rbacApi = admin.makeApiClient(RbacAuthorizationV1Api);
  const serviceAccount = 'dc-operator';
  const kubeconfig = await serviceAccountKubeconfig(admin, op.name, serviceAccount);
  const rbac = controllerRbac({ name: `dc-operator-controller-${op.name}`, namespace: op.name, serviceAccount, watchNamespaces: [shop.name, pay.name] });
  assert.deepEqual(
    rbac.roles.map((r) => `${r.role.metadata?.namespace ?? ''}/${r.role.metadata?.name ?? ''}`).sort(),
    [`${op.name}/dc-operator-controller-${op.name}-keyless-identities`, `${op.name}/dc-operator-controller-${op.name}-signer-keys`, `${pay.name}/dc-operator-controller-${op.name}`, `${shop.name}/dc-operator-controller-${op.name}`].sort(),
    'a Role per watched namespace, one in the cluster resource namespace, one for the keyless CA and key server Secrets in the operator namespace',
  );
  await rbacApi.createClusterRole({ body: rbac.clusterRole });
  cleanups.push(() => rbacApi.deleteClusterRole({ name: rbac.clusterRole.metadata?.name ?? '' }));
  await rbacApi.createClusterRoleBinding({ body: rbac.clusterRoleBinding });
  cleanups.push(() => rbacApi.deleteClusterRoleBinding({ name: rbac.clusterRoleBinding.metadata?.name ?? '' }));
  for (const { role, roleBinding } of [...rbac.roles, { role: rbac.leaseRole, roleBinding: rbac.leaseRoleBinding }]) {
    await rbacApi.createNamespacedRole({ namespace: role.metadata?.namespace ?? '', body: role });
    await rbacApi.createNamespacedRoleBinding({ namespace: roleBinding.metadata?.namespace ?? '', body: roleBinding });
  }

  const cert = dcctlCertificate();
  await putSecret(core, tlsSecret(shop.name, 'tls', cert.crt, cert.key));
  await putSecret(core, tlsSecret(pay.name, 'crt-only', cert.crt));
  await putSecret(core, { metadata: { name: 'signer-key', namespace: op.name }, type: 'Opaque', data: { 'tls.key': Buffer.from(cert.key).toString('base64') } });
  await putSecret(core, tlsSecret(other.name, 'tls', cert.crt, cert.key));
  const signerName = `keys-${op.name}`;
  const signers = { group: DC.group, version: DC.version, plural: 'clusterdelegationsigners' };
  await custom.createClusterCustomObject({
    ...signers,
    body: { apiVersion: 'dc-operator.io/v1alpha1', kind: 'ClusterDelegationSigner', metadata: { name: signerName }, spec: {
      inCluster: { keySecretRef: { name: 'signer-key' } },
      // Deny by default: this signer signs for the pay namespace only.
      namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': pay.name } },
    } },
  });
  cleanups.push(() => custom.deleteClusterCustomObject({ ...signers, name: signerName }));
  await createDelegatedCredential(admin, other.name, 'ignored', { certificateSecretRef: { name: 'tls' }, secretName: 'ignored-dc' });

  const warnings: string[] = [];
  controller = await runController({
    kubeconfig,
    namespaces: [shop.name, pay.name],
    operatorNamespace: op.name,
    metricsPort: 0,
    metricsHost: '127.0.0.1',
    leaseDurationSeconds: 4,
    retryPeriodMs: 500,
    renewDeadlineMs: 3000,
    log: recordingLogger(warnings),
  });
  await createDelegatedCredential(admin, shop.name, 'web', { certificateSecretRef: { name: 'tls' }, secretName: 'web-dc' });
  await createDelegatedCredential(admin, pay.name, 'signed', { certificateSecretRef: { name: 'crt-only' }, secretName: 'signed-dc', signerRef: { kind: 'ClusterDelegationSigner', name: signerName } });
  await waitForCondition(admin, shop.name, 'web', 'Ready', 'True', undefined, 30_000);
  await waitForCondition(admin, pay.name, 'signed', 'Ready', 'True', undefined, 30_000);
  assert.ok((await core.readNamespacedSecret({ namespace: shop.name, name: 'web-dc' })).data?.['ecdsa_secp256r1_sha256.cred']);
  assert.ok((await core.readNamespacedSecret({ namespace: pay.name, name: 'signed-dc' })).data?.['ecdsa_secp256r1_sha256.cred']);

  // Outside its namespaces: untouched, and refused by the apiserver.
  assert.equal((await getDelegatedCredential(admin, other.name, 'ignored')).status, undefined, 'a DelegatedCredential in an unwatched namespace is left alone');
  const asController = kubeConfigFromFile(kubeconfig).makeApiClient(CoreV1Api);
  await assert.rejects(asController.readNamespacedSecret({ namespace: other.name, name: 'tls' }), (err: { code?: number }) => err.code === 403, 'reading a Secret of an unwatched namespace is refused');
  await assert.rejects(asController.listSecretForAllNamespaces(), (err: { code?: number }) => err.code === 403, 'listing Secrets cluster-wide is refused');
  const authz = admin.makeApiClient(AuthorizationV1Api);
  const user = `system:serviceaccount:${op.name}:${serviceAccount}`;
  const may = async (verb: string, namespace: string | undefined, resource = 'secrets', group = ''): Promise<boolean> => {
    const review = await authz.createSubjectAccessReview({ body: { spec: { user, groups: ['system:serviceaccounts', `system:serviceaccounts:${op.name}`, 'system:authenticated'], resourceAttributes: { verb, resource, group, ...(namespace ? { namespace } : {}) } } } });
    return review.status?.allowed === true;
  };
  for (const verb of ['get', 'list', 'watch', 'create', 'update', 'delete']) {
    assert.equal(await may(verb, other.name), false, `may not ${verb} Secrets in an unwatched namespace`);
    assert.equal(await may(verb, undefined), false, `may not ${verb} Secrets cluster-wide`);
    assert.equal(await may(verb, shop.name), true, `may ${verb} Secrets in a watched namespace`);
  }
  assert.equal(await may('list', other.name, 'delegatedcredentials', DC.group), false, 'may not list DelegatedCredentials in an unwatched namespace');
  assert.equal(await may('get', op.name), true, 'may read Secrets in the cluster resource namespace');
  // The operator namespace (here also the cluster resource namespace): the keyless CA and the key
  // server's serving Secret are created and renewed there, never deleted.
  assert.equal(await may('create', op.name), true, 'may create Secrets in the operator namespace (the keyless CA)');
  assert.equal(await may('update', op.name), true, 'may update Secrets in the operator namespace (renewals)');
  assert.equal(await may('delete', op.name), false, 'may not delete Secrets in the operator namespace');
  const ca = await core.readNamespacedSecret({ namespace: op.name, name: 'dc-operator-keyless-ca' });
  assert.deepEqual(Object.keys(ca.data ?? {}).sort(), ['ca.crt', 'ca.key'], 'the keyless CA was bootstrapped under these rules');
  const refused = warnings.filter((l) => /forbidden|cannot \w+ resource/i.test(l));
  assert.deepEqual(refused, [], 'RBAC refused none of the controller\'s requests');
});
