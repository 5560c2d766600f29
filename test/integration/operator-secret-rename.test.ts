// spec.secretName changes: the operator writes the new output Secret, then deletes the previous
// one (ours: managed-by label, owner label and a controller reference with this object's uid);
// a Secret that only carries our labels is left alone.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { CustomObjectsApi, type CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { TestNamespace } from '../support/cluster.js';
import { DC, createDelegatedCredential, dcctlCertificate, getDelegatedCredential, putSecret, tlsSecret, waitFor, waitForCondition, namespacedControllerHooks } from './operator-fixtures.js';

let kc: KubeConfig;
let core: CoreV1Api;
let ns: TestNamespace;

namespacedControllerHooks('rename', (c) => ({ kc, core, ns } = c));

async function exists(name: string): Promise<boolean> {
  try {
    await core.readNamespacedSecret({ namespace: ns.name, name });
    return true;
  } catch (err) {
    if ((err as { code?: number }).code === 404) return false;
    throw err;
  }
}

void it('deletes the previous output Secret after spec.secretName changed, and only that one', async () => {
  const cert = dcctlCertificate();
  await putSecret(core, tlsSecret(ns.name, 'web-tls', cert.crt, cert.key));
  await createDelegatedCredential(kc, ns.name, 'web', { certificateSecretRef: { name: 'web-tls' }, secretName: 'web-dc-old' });
  await waitForCondition(kc, ns.name, 'web', 'Ready', 'True');
  // Someone copies our labels onto a Secret of their own: no owner reference, so not ours to delete.
  await core.createNamespacedSecret({
    namespace: ns.name,
    body: { metadata: { name: 'lookalike', labels: { 'app.kubernetes.io/managed-by': 'dc-operator', 'dc-operator.io/delegated-credential': 'web' } }, stringData: { keep: 'me' } },
  });
  const dc = await getDelegatedCredential(kc, ns.name, 'web');
  await kc.makeApiClient(CustomObjectsApi).replaceNamespacedCustomObject({ ...DC, namespace: ns.name, name: 'web', body: { ...dc, spec: { ...dc.spec, secretName: 'web-dc-new' } } });
  await waitFor('the previous output Secret deleted', 20_000, async () => ((await exists('web-dc-old')) ? undefined : true));
  assert.ok(await exists('web-dc-new'), 'the new output Secret exists');
  assert.ok(await exists('lookalike'), 'the look-alike Secret is left alone');
  const ready = await waitForCondition(kc, ns.name, 'web', 'Ready', 'True');
  assert.equal(ready.status?.observedGeneration, 2);
  const events = await core.listNamespacedEvent({ namespace: ns.name, fieldSelector: 'involvedObject.name=web' });
  assert.ok(events.items.some((e) => e.reason === 'OutputSecretRemoved'));
});
