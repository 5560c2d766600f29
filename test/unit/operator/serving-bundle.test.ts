import { test } from 'node:test';
import assert from 'node:assert/strict';
import { controllerIdentityUri, parseSidecarIdentityUri, sidecarIdentityUri } from '../../../src/operator/api/serving-bundle.js';

test('sidecar identity URI round-trips', () => {
  const id = { trustDomain: 'cluster.local', namespace: 'shop', name: 'www-dc' };
  const uri = sidecarIdentityUri(id);
  assert.equal(uri, 'spiffe://cluster.local/ns/shop/dc/www-dc');
  assert.deepEqual(parseSidecarIdentityUri(uri), id);
});

test('sidecar identity URI: anything else is not an identity', () => {
  for (const bad of [
    'spiffe://cluster.local/ns/shop/sa/default',
    'spiffe://cluster.local/ns/shop/dc/www/extra',
    'spiffe://cluster.local/ns/Shop/dc/www',
    'https://cluster.local/ns/shop/dc/www',
    'spiffe://cluster.local/ns//dc/www',
    'spiffe:///ns/shop/dc/www',
    `spiffe://cluster.local/ns/shop/dc/${'a'.repeat(600)}`,
  ]) assert.equal(parseSidecarIdentityUri(bad), undefined, bad);
  assert.throws(() => sidecarIdentityUri({ trustDomain: 'cluster.local', namespace: 'a/b', name: 'x' }), /invalid namespace/);
});

test('controller identity URI: one per trust domain, and never a sidecar identity', () => {
  assert.equal(controllerIdentityUri('cluster.local'), 'spiffe://cluster.local/dc-operator/controller');
  assert.equal(controllerIdentityUri('prod.example'), 'spiffe://prod.example/dc-operator/controller');
  assert.equal(parseSidecarIdentityUri(controllerIdentityUri('cluster.local')), undefined);
  assert.throws(() => controllerIdentityUri('Cluster/Local'), /invalid trust domain/);
});
