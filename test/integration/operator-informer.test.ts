// The informer against the real apiserver: an error that is not 410 (here 403, the operator
// started before its RBAC was applied, as happens in a Helm install) does not stop it: it backs
// off, retries, and syncs once the permission appears, then follows changes.
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { CoreV1Api, RbacAuthorizationV1Api, type KubeConfig, type V1Secret } from '@kubernetes/client-node';
import { systemClock } from '../../src/operator/clock.js';
import { Informer } from '../../src/operator/informer.js';
import { KubeClient } from '../../src/operator/kube.js';
import { createTestNamespace, testApiClient, testKubeConfig, type TestNamespace } from '../support/cluster.js';
import { serviceAccountKubeconfig, waitFor } from './operator-fixtures.js';

let admin: KubeConfig;
let ns: TestNamespace;

before(async () => {
  admin = await testKubeConfig();
  ns = await createTestNamespace('informer');
});

after(async () => {
  await ns?.delete();
});

void it('keeps retrying through 403 Forbidden and syncs once the permission is granted', async () => {
  const core = admin.makeApiClient(CoreV1Api);
  const api = await testApiClient(await serviceAccountKubeconfig(admin, ns.name, 'late-rbac'));
  const warnings: string[] = [];
  const informer = new Informer(
    'secrets',
    new KubeClient(api).secretSource(ns.name, { labelSelector: 'informer-test=yes' }),
    (s: V1Secret) => s.metadata?.name ?? '',
    systemClock,
    { warn: (m, meta) => warnings.push(`${m} ${JSON.stringify(meta)}`), debug: () => undefined },
  );
  const seen: string[] = [];
  informer.on((c) => seen.push(`${c.type}:${c.object}`));
  informer.start();
  try {
    await waitFor('two failed attempts', 10_000, () => Promise.resolve(informer.stats.errors >= 2 ? true : undefined));
    assert.equal(informer.hasSynced(), false);
    assert.match(warnings[0] ?? '', /informer error, retrying/);
    const rbac = admin.makeApiClient(RbacAuthorizationV1Api);
    await rbac.createNamespacedRole({
      namespace: ns.name,
      body: { metadata: { name: 'read-secrets' }, rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['list', 'watch'] }] },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: ns.name,
      body: {
        metadata: { name: 'read-secrets' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'read-secrets' },
        subjects: [{ kind: 'ServiceAccount', name: 'late-rbac', namespace: ns.name }],
      },
    });
    await waitFor('the informer syncs after the grant', 20_000, () => Promise.resolve(informer.hasSynced() ? true : undefined));
    await core.createNamespacedSecret({ namespace: ns.name, body: { metadata: { name: 'watched', labels: { 'informer-test': 'yes' } }, stringData: { a: 'b' } } });
    await core.createNamespacedSecret({ namespace: ns.name, body: { metadata: { name: 'ignored' }, stringData: { a: 'b' } } });
    await waitFor('the new Secret arrives through the watch', 10_000, () => Promise.resolve(informer.get(`${ns.name}/watched`)));
    await core.deleteNamespacedSecret({ namespace: ns.name, name: 'watched' });
    await waitFor('its deletion too', 10_000, () => Promise.resolve(informer.get(`${ns.name}/watched`) === undefined ? true : undefined));
    assert.deepEqual(seen, ['add:watched', 'delete:watched']);
    assert.equal(informer.get(`${ns.name}/ignored`), undefined, 'the label selector applies');
  } finally {
    await informer.stop();
  }
});
