import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Gauge, Registry } from 'prom-client';
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
  let text = await metrics.scrape();
  assert.match(text, /dc_operator_credential_expiration_timestamp_seconds\{namespace="ns",name="a",algorithm="ed25519"\} 1767312000/);
  assert.match(text, /dc_operator_credential_renewal_timestamp_seconds\{namespace="ns",name="b"\} 1767283200/);
  assert.match(text, /dc_operator_credential_ready_status\{namespace="ns",name="b",condition="False"\} 1/);
  assert.match(text, /dc_operator_issued_credentials_total\{algorithm="ed25519"\} 1/);
  assert.match(text, /dc_operator_issue_failures_total\{reason="KeyMismatch"\} 1/);
  assert.match(text, /dc_operator_sign_duration_seconds_count\{algorithm="ed25519",signer="certificate-key"\} 1/);
  assert.match(text, /dc_operator_leader 1/);
  cache = [dc('a', 'True')];
  text = await metrics.scrape();
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
  const text = await metrics.scrape();
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
  assert.ok(first.endsWith(await metrics.registry.metrics()), 'then the registry’s families');
});

void test('per-credential series: the text prom-client writes for the same series, label values escaped', async () => {
  const odd = dc('a', 'True');
  odd.metadata.namespace = 'n"s\\x\ny';
  odd.status!.credentials!.push({ algorithm: 'ecdsa_secp256r1_sha256', notAfter: 'not a date', publicKeyFingerprint: 'cd' });
  const cache = [odd, dc('b', 'False'), { ...dc('c', 'True'), status: undefined }];
  const metrics = new OperatorMetrics({ defaultMetrics: false });
  metrics.attach({ credentials: () => cache, isLeader: () => true, queueDepth: () => 0 });
  const ours = await metrics.scrape();
  // The same series through prom-client Gauges, as the operator wrote them before.
  const registry = new Registry();
  const gauge = (name: string, help: string, labelNames: string[]) => new Gauge({ name, help, labelNames, registers: [registry] });
  const expiration = gauge('dc_operator_credential_expiration_timestamp_seconds', 'When each delegated credential expires (notAfter), Unix seconds.', ['namespace', 'name', 'algorithm']);
  const renewal = gauge('dc_operator_credential_renewal_timestamp_seconds', 'When the operator will next issue credentials for a DelegatedCredential, Unix seconds.', ['namespace', 'name']);
  const ready = gauge('dc_operator_credential_ready_status', 'The Ready condition of each DelegatedCredential (1 for the current status value).', ['namespace', 'name', 'condition']);
  for (const d of cache) {
    const labels = { namespace: d.metadata.namespace ?? '', name: d.metadata.name ?? '' };
    for (const c of d.status?.credentials ?? []) expiration.set({ ...labels, algorithm: c.algorithm }, Date.parse(c.notAfter) / 1000);
    if (d.status?.renewalTime !== undefined) renewal.set(labels, Date.parse(d.status.renewalTime) / 1000);
    const status = d.status?.conditions?.find((c) => c.type === 'Ready')?.status ?? 'Unknown';
    for (const value of ['True', 'False', 'Unknown']) ready.set({ ...labels, condition: value }, value === status ? 1 : 0);
  }
  const theirs = await registry.metrics();
  assert.ok(ours.startsWith(`${theirs}\n`), `expected the prom-client text first:\n${theirs}\n---\n${ours.slice(0, theirs.length + 200)}`);
  assert.match(ours, /namespace="n\\"s\\\\x\\ny",name="a",algorithm="ecdsa_secp256r1_sha256"\} Nan/);
});

void test('/metrics of many objects is written in chunks, the same text as one string', async () => {
  const cache = Array.from({ length: 3000 }, (_, i) => dc(`dc-${i}`, i % 2 ? 'True' : 'False'));
  const metrics = new OperatorMetrics({ defaultMetrics: false });
  metrics.attach({ credentials: () => cache, isLeader: () => true, queueDepth: () => 0 });
  const chunks = [...(await metrics.exposition())];
  assert.ok(chunks.length > 5, `${chunks.length} chunks`);
  assert.ok(chunks.every((c) => c.length < 2 * 65_536));
  const server = await startHttpServer({ port: 0, host: '127.0.0.1', registry: metrics.registry, scrape: () => metrics.exposition(), probes: { ready: () => ({ ok: true, detail: '' }) } });
  try {
    const res = await fetch(`http://127.0.0.1:${server.port}/metrics`);
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.equal(text, await metrics.scrape());
    assert.equal(text.match(/^dc_operator_credential_ready_status\{/gm)?.length, 9000);
  } finally {
    await server.close();
  }
});
