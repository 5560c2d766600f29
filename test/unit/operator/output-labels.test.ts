// Label edits on an output Secret are repaired: the Secret's controller reference carries the
// DelegatedCredential's uid, so it is adopted and relabelled (as cert-manager re-applies its
// labels). Before, a changed or removed owner label made the real owner report
// OutputSecretConflict and stop renewing, and a removed managed-by label (the Secret leaves the
// cache) made its re-create fail with 409, "not managed by dc-operator".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Secret } from '@kubernetes/client-node';
import { ANNOTATIONS, MANAGED_BY_LABEL, OWNER_LABEL } from '../../../src/operator/output-secret.js';
import { MAX_LABEL_REPAIRS } from '../../../src/operator/reconciler.js';
import { delegationCertificate, harness, issuedOnce, type FakeCluster } from './fakes.js';

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

// Before, a label repair short-circuited the reconcile whatever its outcome: with labels that do
// not stay (a mutating policy rewrites the owner label on every write) the operator put them back
// every second forever and the credentials expired while Ready stayed True.
void test('labels that do not stay: renewal goes on, and after a few repairs Ready says why (table)', async () => {
  type Put = (s: V1Secret) => Promise<V1Secret>;
  const rows: { name: string; wrap: (put: Put, issuedAt: string | undefined) => Put }[] = [
    { name: 'a policy rewrites the owner label', wrap: (put) => (s) => put({ ...s, metadata: { ...s.metadata, labels: { ...s.metadata?.labels, [OWNER_LABEL]: 'team-x' } } }) },
    {
      name: 'a webhook refuses a label change alone',
      wrap: (put, issuedAt) => (s) => (s.metadata?.annotations?.[ANNOTATIONS.issuedAt] === issuedAt ? Promise.reject(Object.assign(new Error('denied by webhook'), { code: 403 })) : put(s)),
    },
  ];
  for (const row of rows) {
    const start = new Date('2026-01-01T00:00:00Z');
    const h = await issuedOnce(start);
    const issuedAt = h.cluster.secrets.get(KEY)!.metadata?.annotations?.[ANNOTATIONS.issuedAt];
    const put = h.cluster.replaceSecret.bind(h.cluster);
    h.cluster.replaceSecret = row.wrap(put, issuedAt);
    const secret = h.cluster.secrets.get(KEY)!;
    secret.metadata!.labels = { ...secret.metadata!.labels, [OWNER_LABEL]: 'team-x' };
    secret.metadata!.resourceVersion = `${secret.metadata!.resourceVersion ?? ''}9`;
    const results = [];
    for (let i = 0; i < MAX_LABEL_REPAIRS + 2; i++) results.push(await h.reconciler.reconcile(NS, 'web-dc'));
    assert.ok(results.slice(0, MAX_LABEL_REPAIRS).every((r) => r.kind === 'done' && r.requeueAt !== undefined && r.requeueAt.getTime() > start.getTime() + 3_600_000), `${row.name}: the first repairs wait for the renewal, not a second`);
    assert.ok(results.slice(MAX_LABEL_REPAIRS).every((r) => r.kind === 'failed' && r.failure.reason === 'OutputSecretConflict'), `${row.name}: then a failure, with backoff`);
    const ready = () => h.cluster.dcs.get(`${NS}/web-dc`)?.status?.conditions?.find((c) => c.type === 'Ready');
    assert.equal(ready()?.status, 'False', row.name);
    assert.match(ready()?.message ?? '', /do not stay/, row.name);
    // The credentials expire: they are renewed all the same.
    h.clock.advance(25 * 3_600_000);
    await h.reconciler.reconcile(NS, 'web-dc');
    const renewed = h.cluster.secrets.get(KEY)!.metadata?.annotations?.[ANNOTATIONS.issuedAt];
    assert.notEqual(renewed, issuedAt, `${row.name}: renewed after expiry`);
    assert.equal(renewed, h.clock.now().toISOString(), row.name);
    assert.notEqual(ready()?.status, 'True', `${row.name}: ${ready()?.message}`);
  }
});

void test('a repair that stays clears the count: a later edit is repaired without a failure', async () => {
  const h = harness(new Date('2026-01-01T00:00:00Z'));
  const cert = await delegationCertificate({ notBefore: new Date('2025-12-01T00:00:00Z'), notAfter: new Date('2027-01-01T00:00:00Z') });
  h.cluster.putTlsSecret(NS, 'web-tls', cert);
  h.cluster.putDelegatedCredential(NS, 'web-dc', { certificateSecretRef: { name: 'web-tls' }, secretName: 'web-dc-secret' });
  await h.reconciler.reconcile(NS, 'web-dc');
  for (let edit = 0; edit < MAX_LABEL_REPAIRS + 2; edit++) {
    const secret = h.cluster.secrets.get(KEY)!;
    secret.metadata!.labels = { ...secret.metadata!.labels, [OWNER_LABEL]: 'someone-else' };
    secret.metadata!.resourceVersion = `${secret.metadata!.resourceVersion ?? ''}9`;
    assert.equal((await h.reconciler.reconcile(NS, 'web-dc')).kind, 'done', `edit ${edit}`);
    assert.equal((await h.reconciler.reconcile(NS, 'web-dc')).kind, 'done', `edit ${edit}, next pass`);
  }
  assert.equal(h.cluster.secrets.get(KEY)?.metadata?.labels?.[OWNER_LABEL], 'web-dc');
});

void test('a repair that does not stay still lets the renewal of the same pass write: the repaired Secret is primed, not read stale from a lagging cache', async () => {
  const start = new Date('2026-01-01T00:00:00Z');
  let snapshot: ReturnType<FakeCluster['outputSecret']>;
  let live: FakeCluster['outputSecret'] = () => undefined;
  // The operator's own writes reach its cache through primeSecret; everything else only when the watch delivers (between passes here).
  const h = harness(start, ({ cluster }) => {
    live = cluster.outputSecret.bind(cluster);
    return { primeSecret: () => void (snapshot = live(NS, 'web-dc-secret')) };
  });
  const cert = await delegationCertificate({ notBefore: new Date('2025-12-01T00:00:00Z'), notAfter: new Date('2027-01-01T00:00:00Z') });
  h.cluster.putTlsSecret(NS, 'web-tls', cert);
  h.cluster.putDelegatedCredential(NS, 'web-dc', { certificateSecretRef: { name: 'web-tls' }, secretName: 'web-dc-secret', validity: '24h' });
  await h.reconciler.reconcile(NS, 'web-dc');
  const issuedAt = (): string | undefined => h.cluster.secrets.get(KEY)?.metadata?.annotations?.[ANNOTATIONS.issuedAt];
  const first = issuedAt();
  // A mutating policy rewrites the owner label on every write, and has rewritten the current one.
  const replace = h.cluster.replaceSecret.bind(h.cluster);
  h.cluster.replaceSecret = (s: V1Secret) => replace({ ...s, metadata: { ...s.metadata, labels: { ...s.metadata?.labels, [OWNER_LABEL]: 'team-x' } } });
  const secret = h.cluster.secrets.get(KEY)!;
  secret.metadata!.labels = { ...secret.metadata!.labels, [OWNER_LABEL]: 'team-x' };
  secret.metadata!.resourceVersion = `${secret.metadata!.resourceVersion ?? ''}9`;
  h.cluster.outputSecret = () => snapshot;
  h.clock.advance(25 * 3600_000); // the credentials (24h) have expired
  snapshot = live(NS, 'web-dc-secret');
  await h.reconciler.reconcile(NS, 'web-dc');
  assert.notEqual(issuedAt(), first, 'renewed in the pass that repaired the labels');
});
