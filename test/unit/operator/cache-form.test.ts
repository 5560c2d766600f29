import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Secret } from '@kubernetes/client-node';
import type { DelegatedCredential } from '../../../src/operator/api/v1alpha1.js';
import { StringPool, cachedOutputSecret, cachedResource } from '../../../src/operator/cache-form.js';

const managedFields = [{ manager: 'dc-operator', operation: 'Update', fieldsV1: { 'f:data': {} } }];

void test('an output Secret is cached without managedFields, its data unchanged; only shared values enter the pool', () => {
  const pool = new StringPool();
  const form = cachedOutputSecret(pool);
  const secret = (name: string, key: string): V1Secret => ({
    metadata: { name, namespace: 'ns', resourceVersion: '1', labels: { app: 'x' }, managedFields },
    data: { 'tls.crt': 'Q0hBSU4=', fallback: 'Tm9uZQ==', 'ecdsa_secp256r1_sha256.key': key, 'ecdsa_secp256r1_sha256.cred': `cred-${key}` },
  });
  const a = form(secret('a', 'a2V5LWE='));
  const b = form(secret('b', 'a2V5LWI='));
  assert.equal(a.metadata?.managedFields, undefined);
  assert.deepEqual(a.metadata?.labels, { app: 'x' });
  assert.deepEqual(b.data, { 'tls.crt': 'Q0hBSU4=', fallback: 'Tm9uZQ==', 'ecdsa_secp256r1_sha256.key': 'a2V5LWI=', 'ecdsa_secp256r1_sha256.cred': 'cred-a2V5LWI=' });
  assert.equal(pool.size, 2, 'the chain and the fallback, once each; credential keys are never pooled');
});

void test('a DelegatedCredential is cached without managedFields; condition text is pooled except Ready messages', () => {
  const pool = new StringPool();
  const form = cachedResource<DelegatedCredential>(pool);
  const dc = (name: string): DelegatedCredential => ({
    apiVersion: 'dc-operator.io/v1alpha1',
    kind: 'DelegatedCredential',
    metadata: { name, namespace: 'ns', managedFields },
    spec: { certificateSecretRef: { name: 'web-tls' }, secretName: `${name}-out`, fallback: 'None', algorithms: ['ecdsa_secp256r1_sha256'], validity: '24h' },
    status: {
      conditions: [
        { type: 'Ready', status: 'True', reason: 'Issued', message: `credentials for ${name}`, lastTransitionTime: '2026-01-01T00:00:00Z' },
        { type: 'Issuing', status: 'False', reason: 'UpToDate', message: 'the credentials are current', lastTransitionTime: '2026-01-01T00:00:00Z' },
      ],
    },
  });
  const cached = [form(dc('a')), form(dc('b'))];
  for (const [i, c] of cached.entries()) {
    assert.equal(c.metadata.managedFields, undefined);
    assert.equal(c.status?.conditions?.[0]?.message, `credentials for ${['a', 'b'][i] ?? ''}`);
    assert.equal(c.status?.conditions?.[1]?.message, 'the credentials are current');
  }
  assert.equal(pool.size, 3, "Issued, UpToDate and Issuing's message; not the per-object Ready messages");
});

void test('the pool is bounded: full, it starts over rather than pinning what no object holds', () => {
  const pool = new StringPool(3);
  for (const s of ['a', 'b', 'c']) pool.of(s);
  assert.equal(pool.size, 3);
  assert.equal(pool.of('d'), 'd');
  assert.equal(pool.size, 1);
  assert.equal(pool.of('a'), 'a');
});
