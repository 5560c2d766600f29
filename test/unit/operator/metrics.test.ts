import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DelegatedCredential } from '../../../src/operator/api/v1alpha1.js';
import { OperatorMetrics } from '../../../src/operator/metrics.js';
import { startHttpServer } from '../../../src/operator/http.js';

function dc(name: string, ready: 'True' | 'False'): DelegatedCredential {
  return {
    apiVersion: 'dc-operator.io/v1alpha1',
    kind: 'DelegatedCredential',
    metadata: { name, namespace: 'ns' },
    spec: { certificateSecretRef: { name: 'tls' }, algorithms: ['ed25519'], validity: '24h', secretName: `${name}-out`, fallback: 'Keyless' },
    status: {
      conditions: [{ type: 'Ready', status: ready, reason: 'r', message: 'm', lastTransitionTime: '2026-01-01T00:00:00Z' }],
      credentials: [{ algorithm: 'ed25519', notAfter: '2026-01-02T00:00:00Z', publicKeyFingerprint: 'ab' }],
      renewalTime: '2026-01-01T16:00:00Z',
    },
  };
}

void test('per-credential series come from the cache at scrape time and vanish with the object', async () => {
  const metrics = new OperatorMetrics({ defaultMetrics: false });
  let cache = [dc('a', 'True'), dc('b', 'False')];
  metrics.attach({ credentials: () => cache, isLeader: () => true, queueDepth: () => 2 });
  metrics.issued('ed25519');
  metrics.failed('KeyMismatch');
  metrics.signDuration('ed25519', 'certificate-key', 0.002);
  let text = await metrics.registry.metrics();
  assert.match(text, /dc_operator_credential_expiration_timestamp_seconds\{namespace="ns",name="a",algorithm="ed25519"\} 1767312000/);
  assert.match(text, /dc_operator_credential_renewal_timestamp_seconds\{namespace="ns",name="b"\} 1767283200/);
  assert.match(text, /dc_operator_credential_ready_status\{namespace="ns",name="b",condition="False"\} 1/);
  assert.match(text, /dc_operator_issued_credentials_total\{algorithm="ed25519"\} 1/);
  assert.match(text, /dc_operator_issue_failures_total\{reason="KeyMismatch"\} 1/);
  assert.match(text, /dc_operator_sign_duration_seconds_count\{algorithm="ed25519",signer="certificate-key"\} 1/);
  assert.match(text, /dc_operator_leader 1/);
  cache = [dc('a', 'True')];
  text = await metrics.registry.metrics();
  assert.doesNotMatch(text, /name="b"/);
});

void test('serves /metrics, /healthz and /readyz on loopback', async () => {
  const metrics = new OperatorMetrics({ defaultMetrics: false });
  let ready = false;
  const server = await startHttpServer({ port: 0, host: '127.0.0.1', registry: metrics.registry, probes: { ready: () => ({ ok: ready, detail: ready ? 'synced' : 'syncing' }) } });
  try {
    const base = `http://127.0.0.1:${server.port}`;
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    assert.equal((await fetch(`${base}/readyz`)).status, 503);
    ready = true;
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
    const m = await fetch(`${base}/metrics`);
    assert.equal(m.status, 200);
    assert.match(await m.text(), /dc_operator_leader/);
    assert.equal((await fetch(`${base}/nope`)).status, 404);
  } finally {
    await server.close();
  }
});

void test('signer Ready series come from the signer caches at scrape time', async () => {
  const metrics = new OperatorMetrics({ defaultMetrics: false });
  const signer = (kind: 'DelegationSigner' | 'ClusterDelegationSigner', name: string, ready?: 'True' | 'False') => ({
    apiVersion: 'dc-operator.io/v1alpha1' as const,
    kind,
    metadata: kind === 'DelegationSigner' ? { name, namespace: 'ns' } : { name },
    spec: { inCluster: { keySecretRef: { name: 'k', key: 'tls.key' } } },
    ...(ready ? { status: { conditions: [{ type: 'Ready', status: ready, reason: 'r', message: 'm', lastTransitionTime: '2026-01-01T00:00:00Z' }] } } : {}),
  });
  metrics.attach({ credentials: () => [], signers: () => [signer('DelegationSigner', 'edge', 'False'), signer('ClusterDelegationSigner', 'shared')], isLeader: () => true, queueDepth: () => 0 });
  const text = await metrics.registry.metrics();
  assert.match(text, /dc_operator_signer_ready_status\{kind="DelegationSigner",namespace="ns",name="edge",condition="False"\} 1/);
  assert.match(text, /dc_operator_signer_ready_status\{kind="ClusterDelegationSigner",namespace="",name="shared",condition="Unknown"\} 1/);
});

void test('scrape(): per-object series are recomputed every scrape after being dropped, the counters kept', async () => {
  const metrics = new OperatorMetrics({ defaultMetrics: false });
  const cache = [dc('a', 'True'), dc('b', 'False')];
  metrics.attach({ credentials: () => cache, isLeader: () => true, queueDepth: () => 0 });
  metrics.issued('ed25519');
  const first = await metrics.scrape();
  const second = await metrics.scrape();
  assert.equal(second, first);
  assert.match(second, /dc_operator_credential_ready_status\{namespace="ns",name="b",condition="False"\} 1/);
  assert.match(second, /dc_operator_credential_expiration_timestamp_seconds\{namespace="ns",name="a",algorithm="ed25519"\} 1767312000/);
  assert.match(second, /dc_operator_issued_credentials_total\{algorithm="ed25519"\} 1/);
  assert.equal(await metrics.registry.metrics(), first, 'the same text as the registry gives');
});
