import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildMutatingWebhookConfiguration } from '../../../src/webhook/webhook-configuration.js';

void test('the configuration sends pod creations to /mutate of the Service, v1 reviews only, with no side effects', () => {
  const mwc = buildMutatingWebhookConfiguration({
    endpoint: { service: { namespace: 'dc-operator-system', name: 'dc-operator-webhook', port: 443 } },
    operatorNamespace: 'dc-operator-system',
    caBundlePem: 'PEM',
  });
  const [w] = mwc.webhooks ?? [];
  assert.ok(w);
  assert.equal(mwc.metadata?.name, 'dc-operator-webhook');
  assert.deepEqual(w.clientConfig, {
    service: { namespace: 'dc-operator-system', name: 'dc-operator-webhook', port: 443, path: '/mutate' },
    caBundle: Buffer.from('PEM').toString('base64'),
  });
  assert.deepEqual(w.rules, [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' }]);
  assert.deepEqual(w.admissionReviewVersions, ['v1']);
  assert.equal(w.sideEffects, 'None');
  assert.equal(w.failurePolicy, 'Fail');
  assert.equal(w.timeoutSeconds, 5);
  assert.equal(w.reinvocationPolicy, 'IfNeeded');
});

void test('kube-system and the operator namespace are never matched, whatever else is excluded', () => {
  const mwc = buildMutatingWebhookConfiguration({ endpoint: { url: 'https://127.0.0.1:9443/mutate' }, operatorNamespace: 'ops', excludedNamespaces: ['ops', 'infra'] });
  const w = mwc.webhooks?.[0];
  assert.deepEqual(w?.namespaceSelector?.matchExpressions?.[0], {
    key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', 'ops', 'infra'],
  });
  assert.deepEqual(w?.clientConfig, { url: 'https://127.0.0.1:9443/mutate' });
});

void test('by default every pod but those labelled inject=disabled is sent; requireLabel sends only inject=enabled', () => {
  const open = buildMutatingWebhookConfiguration({ endpoint: { url: 'https://x/mutate' }, operatorNamespace: 'ops' });
  assert.deepEqual(open.webhooks?.[0]?.objectSelector, { matchExpressions: [{ key: 'dc-operator.io/inject', operator: 'NotIn', values: ['disabled'] }] });
  const labelled = buildMutatingWebhookConfiguration({ endpoint: { url: 'https://x/mutate' }, operatorNamespace: 'ops', requireLabel: true });
  assert.deepEqual(labelled.webhooks?.[0]?.objectSelector, { matchLabels: { 'dc-operator.io/inject': 'enabled' } });
});

void test('by default only namespaces labelled dc-operator.io/injection=enabled are sent; injectAllNamespaces restores "all but disabled"', () => {
  const optIn = buildMutatingWebhookConfiguration({ endpoint: { url: 'https://x/mutate' }, operatorNamespace: 'ops' });
  assert.deepEqual(optIn.webhooks?.[0]?.namespaceSelector, {
    matchExpressions: [
      { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', 'ops'] },
      { key: 'dc-operator.io/injection', operator: 'In', values: ['enabled'] },
    ],
  });
  assert.equal(optIn.webhooks?.[0]?.failurePolicy, 'Fail', 'Fail stays: the opt-in bounds what an outage blocks');
  const all = buildMutatingWebhookConfiguration({ endpoint: { url: 'https://x/mutate' }, operatorNamespace: 'ops', injectAllNamespaces: true });
  assert.deepEqual(all.webhooks?.[0]?.namespaceSelector?.matchExpressions?.[1], { key: 'dc-operator.io/injection', operator: 'NotIn', values: ['disabled'] });
});
