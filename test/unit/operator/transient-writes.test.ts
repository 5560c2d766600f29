// A write the apiserver may accept on the next try (a 409 from another writer of the output
// Secret, throttling, a 5xx, a timeout) is retried quietly on the first attempts: Ready stays as
// it was and no Warning is recorded, as with cert-manager and controller-runtime. Only when it
// persists does it surface. Before, the first 409 turned Ready False with the raw API message and
// a Warning, then True again a second later.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { QUIET_TRANSIENT_RETRIES, isTransientApiError } from '../../../src/operator/failures.js';
import { Conflict, delegationCertificate, harness } from './fakes.js';

const NS = 'web';
const H = 3_600_000;

const errors: { name: string; make: () => Error; transient: boolean }[] = [
  { name: '409 conflict', make: () => new Conflict('the object has been modified'), transient: true },
  { name: '500', make: () => Object.assign(new Error('internal error'), { statusCode: 500 }), transient: true },
  { name: '503', make: () => Object.assign(new Error('unavailable'), { code: 503 }), transient: true },
  { name: '429', make: () => Object.assign(new Error('too many requests'), { statusCode: 429 }), transient: true },
  { name: 'timeout', make: () => new Error('PUT /api/v1/namespaces/web/secrets/x: no complete response within 60000 ms'), transient: true },
  { name: 'connection reset', make: () => new Error('PUT x: socket hang up', { cause: Object.assign(new Error('reset'), { code: 'ECONNRESET' }) }), transient: true },
  { name: '403', make: () => Object.assign(new Error('forbidden'), { statusCode: 403 }), transient: false },
  { name: '422', make: () => Object.assign(new Error('invalid'), { statusCode: 422 }), transient: false },
];

void test('a transient write error leaves Ready and the events alone on the first attempts, and surfaces when it persists (table)', async () => {
  for (const row of errors) {
    assert.equal(isTransientApiError(row.make()), row.transient, row.name);
    const h = harness(new Date('2026-01-01T00:00:00Z'));
    const cert = await delegationCertificate({ notBefore: new Date('2025-12-01T00:00:00Z'), notAfter: new Date('2027-01-01T00:00:00Z') });
    h.cluster.putTlsSecret(NS, 'web-tls', cert);
    h.cluster.putDelegatedCredential(NS, 'web-dc', { certificateSecretRef: { name: 'web-tls' }, secretName: 'web-dc-secret' });
    assert.equal((await h.reconciler.reconcile(NS, 'web-dc')).kind, 'done', row.name);
    const readyBefore = h.cluster.dcs.get(`${NS}/web-dc`)?.status?.conditions?.find((c) => c.type === 'Ready');
    assert.equal(readyBefore?.status, 'True', row.name);
    const eventsBefore = h.events.events.length;
    h.clock.advance(20 * H); // past the renewal time of a 24h credential
    h.cluster.replaceSecret = () => Promise.reject(row.make());
    const attempts = row.transient ? QUIET_TRANSIENT_RETRIES : 0;
    for (let attempt = 0; attempt < attempts; attempt++) {
      await assert.rejects(h.reconciler.reconcile(NS, 'web-dc', attempt), Error, `${row.name}: attempt ${attempt} is retried by the queue`);
      const ready = h.cluster.dcs.get(`${NS}/web-dc`)?.status?.conditions?.find((c) => c.type === 'Ready');
      assert.deepEqual(ready, readyBefore, `${row.name}: attempt ${attempt}: Ready untouched`);
      assert.equal(h.events.events.length, eventsBefore, `${row.name}: attempt ${attempt}: no event`);
    }
    const result = await h.reconciler.reconcile(NS, 'web-dc', attempts);
    assert.equal(result.kind, 'failed', `${row.name}: surfaces after ${attempts} quiet attempts`);
    const ready = h.cluster.dcs.get(`${NS}/web-dc`)?.status?.conditions?.find((c) => c.type === 'Ready');
    assert.equal(ready?.status, 'False', row.name);
    assert.equal(h.events.events.at(-1)?.type, 'Warning', row.name);
  }
});
