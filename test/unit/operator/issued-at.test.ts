// The dc-operator.io/issued-at annotation is not trusted blindly: anyone who may edit the output
// Secret can change it. Before, a value in 2035 set the renewal time to 2035 and Ready stayed True
// after the credentials expired. Now an issue time in the future (beyond a small skew) or not
// before the credentials' expiry re-issues, and an expired credential is replaced whatever it says.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ANNOTATIONS } from '../../../src/operator/output-secret.js';
import { ISSUED_AT_MAX_SKEW_MS } from '../../../src/operator/triggers.js';
import { delegationCertificate, harness, issuedOnce } from './fakes.js';

const NS = 'web';
const H = 3_600_000;
const KEY = `${NS}/web-dc-secret`;

void test('a forged issue time re-issues at once; one within the skew is kept (table)', async () => {
  const start = new Date('2026-01-01T00:00:00Z');
  const rows: { name: string; issuedAt: (notAfter: Date) => Date; reissues: boolean }[] = [
    { name: 'in 2035', issuedAt: () => new Date('2035-01-01T00:00:00Z'), reissues: true },
    { name: 'at the credential expiry', issuedAt: (notAfter) => notAfter, reissues: true },
    { name: 'past the skew', issuedAt: () => new Date(start.getTime() + ISSUED_AT_MAX_SKEW_MS + 1000), reissues: true },
    { name: 'within the skew (another replica a little ahead)', issuedAt: () => new Date(start.getTime() + 60_000), reissues: false },
    { name: 'the true issue time', issuedAt: () => start, reissues: false },
  ];
  for (const row of rows) {
    const h = harness(start);
    const cert = await delegationCertificate({ notBefore: new Date('2025-12-01T00:00:00Z'), notAfter: new Date('2027-01-01T00:00:00Z') });
    h.cluster.putTlsSecret(NS, 'web-tls', cert);
    h.cluster.putDelegatedCredential(NS, 'web-dc', { certificateSecretRef: { name: 'web-tls' }, secretName: 'web-dc-secret', validity: '24h' });
    assert.equal((await h.reconciler.reconcile(NS, 'web-dc')).kind, 'done', row.name);
    const secret = h.cluster.secrets.get(KEY)!;
    const notAfter = new Date(start.getTime() + 24 * H);
    secret.metadata!.annotations = { ...secret.metadata!.annotations, [ANNOTATIONS.issuedAt]: row.issuedAt(notAfter).toISOString() };
    secret.metadata!.resourceVersion = `${secret.metadata!.resourceVersion ?? ''}9`;
    const writes = h.cluster.writes().length;
    const result = await h.reconciler.reconcile(NS, 'web-dc');
    const reissued = h.cluster.writes().slice(writes).some((w) => w.endsWith(`secret ${KEY}`));
    assert.equal(reissued, row.reissues, `${row.name}: re-issued`);
    assert.equal(result.kind, 'done', row.name);
    if (result.kind === 'done') assert.ok(result.requeueAt !== undefined && result.requeueAt < notAfter, `${row.name}: next renewal ${result.requeueAt?.toISOString()} before the credential expires`);
  }
});

// A guard of the rule rather than a regression test: the renewal formula alone already renews an
// expired credential whose issue time is not after its expiry.
void test('a credential past its expiry is replaced, whatever the issue time says', async () => {
  const start = new Date('2026-01-01T00:00:00Z');
  const h = await issuedOnce(start);
  h.clock.advance(25 * H);
  // Forged to "just now": not in the future, so only the credential's own expiry can tell.
  const secret = h.cluster.secrets.get(KEY)!;
  secret.metadata!.annotations = { ...secret.metadata!.annotations, [ANNOTATIONS.issuedAt]: new Date(h.clock.now().getTime() - 1000).toISOString() };
  secret.metadata!.resourceVersion = `${secret.metadata!.resourceVersion ?? ''}9`;
  const writes = h.cluster.writes().length;
  await h.reconciler.reconcile(NS, 'web-dc');
  assert.ok(h.cluster.writes().slice(writes).some((w) => w.endsWith(`secret ${KEY}`)), 're-issued');
  const issuedAt = h.cluster.secrets.get(KEY)?.metadata?.annotations?.[ANNOTATIONS.issuedAt];
  assert.equal(issuedAt, h.clock.now().toISOString(), 'a true issue time written');
});
