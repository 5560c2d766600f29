// Label edits on an output Secret are repaired: the Secret's controller reference carries the
// DelegatedCredential's uid, so it is adopted and relabelled (as cert-manager re-applies its
// labels). Before, a changed or removed owner label made the real owner report
// OutputSecretConflict and stop renewing, and a removed managed-by label (the Secret leaves the
// cache) made its re-create fail with 409, "not managed by dc-operator".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MANAGED_BY_LABEL, OWNER_LABEL } from '../../../src/operator/output-secret.js';
import { delegationCertificate, harness } from './fakes.js';

const NS = 'web';
const KEY = `${NS}/web-dc-secret`;

void test('an output Secret whose labels were edited is relabelled and kept, not reported as another\'s (table)', async () => {
  const rows: { name: string; edit: (labels: Record<string, string>) => void }[] = [
    { name: 'owner label changed', edit: (l) => void (l[OWNER_LABEL] = 'someone-else') },
    { name: 'owner label removed', edit: (l) => void delete l[OWNER_LABEL] },
    { name: 'managed-by label removed', edit: (l) => void delete l[MANAGED_BY_LABEL] },
    { name: 'managed-by label changed', edit: (l) => void (l[MANAGED_BY_LABEL] = 'argocd') },
    { name: 'both removed', edit: (l) => (delete l[OWNER_LABEL], delete l[MANAGED_BY_LABEL], undefined) },
  ];
  for (const row of rows) {
    const h = harness(new Date('2026-01-01T00:00:00Z'));
    const cert = await delegationCertificate({ notBefore: new Date('2025-12-01T00:00:00Z'), notAfter: new Date('2027-01-01T00:00:00Z') });
    h.cluster.putTlsSecret(NS, 'web-tls', cert);
    h.cluster.putDelegatedCredential(NS, 'web-dc', { certificateSecretRef: { name: 'web-tls' }, secretName: 'web-dc-secret' });
    await h.reconciler.reconcile(NS, 'web-dc');
    const secret = h.cluster.secrets.get(KEY)!;
    const labels = { ...secret.metadata!.labels };
    row.edit(labels);
    secret.metadata!.labels = labels;
    secret.metadata!.resourceVersion = `${secret.metadata!.resourceVersion ?? ''}9`;
    for (let i = 0; i < 3; i++) await h.reconciler.reconcile(NS, 'web-dc');
    const after = h.cluster.secrets.get(KEY)!;
    assert.equal(after.metadata?.labels?.[MANAGED_BY_LABEL], 'dc-operator', `${row.name}: managed-by put back`);
    assert.equal(after.metadata?.labels?.[OWNER_LABEL], 'web-dc', `${row.name}: owner put back`);
    const ready = h.cluster.dcs.get(`${NS}/web-dc`)?.status?.conditions?.find((c) => c.type === 'Ready');
    assert.equal(ready?.status, 'True', `${row.name}: ${ready?.reason} ${ready?.message}`);
    assert.ok(!h.events.events.some((e) => e.reason === 'OutputSecretConflict'), `${row.name}: no conflict reported`);
  }
});

void test('a Secret of that name controlled by another object is still never taken', async () => {
  const h = harness(new Date('2026-01-01T00:00:00Z'));
  const cert = await delegationCertificate({ notBefore: new Date('2025-12-01T00:00:00Z'), notAfter: new Date('2027-01-01T00:00:00Z') });
  h.cluster.putTlsSecret(NS, 'web-tls', cert);
  h.cluster.secrets.set(KEY, {
    metadata: { name: 'web-dc-secret', namespace: NS, resourceVersion: '1', labels: { [OWNER_LABEL]: 'web-dc' }, ownerReferences: [{ apiVersion: 'dc-operator.io/v1alpha1', kind: 'DelegatedCredential', name: 'web-dc', uid: 'uid-of-another', controller: true }] },
    data: { x: 'eA==' },
  });
  h.cluster.putDelegatedCredential(NS, 'web-dc', { certificateSecretRef: { name: 'web-tls' }, secretName: 'web-dc-secret' });
  await h.reconciler.reconcile(NS, 'web-dc');
  const ready = h.cluster.dcs.get(`${NS}/web-dc`)?.status?.conditions?.find((c) => c.type === 'Ready');
  assert.equal(ready?.reason, 'OutputSecretConflict');
  assert.deepEqual(h.cluster.secrets.get(KEY)?.data, { x: 'eA==' }, 'left as it was');
});
