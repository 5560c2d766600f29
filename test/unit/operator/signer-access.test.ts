import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DelegationSigner, LabelSelector } from '../../../src/operator/api/v1alpha1.js';
import { clusterSignerAccess, labelSelectorMatches, labelSelectorProblem } from '../../../src/operator/signer-access.js';

const labels = { team: 'web', env: 'prod', 'kubernetes.io/metadata.name': 'shop' };

void test('label selectors match as Kubernetes matches them', () => {
  const table: [string, LabelSelector, boolean][] = [
    ['{} selects everything', {}, true],
    ['matchLabels, all present', { matchLabels: { team: 'web', env: 'prod' } }, true],
    ['matchLabels, one differs', { matchLabels: { team: 'web', env: 'dev' } }, false],
    ['matchLabels, key absent', { matchLabels: { owner: 'web' } }, false],
    ['In, value listed', { matchExpressions: [{ key: 'env', operator: 'In', values: ['dev', 'prod'] }] }, true],
    ['In, value not listed', { matchExpressions: [{ key: 'env', operator: 'In', values: ['dev'] }] }, false],
    ['In, key absent', { matchExpressions: [{ key: 'tier', operator: 'In', values: [''] }] }, false],
    ['NotIn, value listed', { matchExpressions: [{ key: 'env', operator: 'NotIn', values: ['prod'] }] }, false],
    ['NotIn, value not listed', { matchExpressions: [{ key: 'env', operator: 'NotIn', values: ['dev'] }] }, true],
    ['NotIn, key absent', { matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['x'] }] }, true],
    ['Exists', { matchExpressions: [{ key: 'team', operator: 'Exists' }] }, true],
    ['Exists, key absent', { matchExpressions: [{ key: 'tier', operator: 'Exists' }] }, false],
    ['DoesNotExist', { matchExpressions: [{ key: 'tier', operator: 'DoesNotExist' }] }, true],
    ['DoesNotExist, key present', { matchExpressions: [{ key: 'team', operator: 'DoesNotExist' }] }, false],
    ['matchLabels AND expressions, one fails', { matchLabels: { team: 'web' }, matchExpressions: [{ key: 'env', operator: 'In', values: ['dev'] }] }, false],
    ['two expressions, both hold', { matchExpressions: [{ key: 'team', operator: 'Exists' }, { key: 'kubernetes.io/metadata.name', operator: 'In', values: ['shop'] }] }, true],
    ['a key of Object.prototype is no label', { matchExpressions: [{ key: 'constructor', operator: 'Exists' }] }, false],
  ];
  for (const [what, selector, want] of table) assert.equal(labelSelectorMatches(selector, labels), want, what);
});

void test('malformed requirements are reported (the CRD refuses them; the operator refuses them again)', () => {
  assert.equal(labelSelectorProblem({ matchExpressions: [{ key: 'a', operator: 'Exists' }] }), undefined);
  assert.match(labelSelectorProblem({ matchExpressions: [{ key: 'a', operator: 'In', values: [] }] }) ?? '', /matchExpressions\[0\]: In needs values/);
  assert.match(labelSelectorProblem({ matchExpressions: [{ key: 'a', operator: 'Exists' }, { key: 'b', operator: 'DoesNotExist', values: ['x'] }] }) ?? '', /matchExpressions\[1\]: DoesNotExist takes no values/);
});

function signer(kind: 'DelegationSigner' | 'ClusterDelegationSigner', namespaceSelector?: LabelSelector): DelegationSigner {
  const spec = { inCluster: { keySecretRef: { name: 'k', key: 'tls.key' } } };
  if (kind === 'DelegationSigner') return { apiVersion: 'dc-operator.io/v1alpha1', kind, metadata: { name: 'shared', namespace: 'x' }, spec };
  return { apiVersion: 'dc-operator.io/v1alpha1', kind, metadata: { name: 'shared' }, spec: { ...spec, ...(namespaceSelector ? { namespaceSelector } : {}) } };
}

void test('access to a ClusterDelegationSigner: denied by default, granted by its selector, and every refusal says what to change', () => {
  const table: [string, DelegationSigner, Record<string, string> | undefined, RegExp | true][] = [
    ['no selector', signer('ClusterDelegationSigner'), labels, /has no spec\.namespaceSelector, so it signs for no namespace \(deny by default\): its owner must add a namespaceSelector that selects namespace shop/],
    ['{}', signer('ClusterDelegationSigner', {}), labels, true],
    ['selected by name', signer('ClusterDelegationSigner', { matchLabels: { 'kubernetes.io/metadata.name': 'shop' } }), labels, true],
    ['not selected', signer('ClusterDelegationSigner', { matchLabels: { team: 'payments' } }), labels, /does not allow namespace shop: .*label namespace shop so they do, or ask the signer's owner to widen the selector/],
    ['invalid selector', signer('ClusterDelegationSigner', { matchExpressions: [{ key: 'a', operator: 'In', values: [] }] }), labels, /invalid spec\.namespaceSelector \(matchExpressions\[0\]: In needs values\), which selects no namespace/],
    ['unknown namespace', signer('ClusterDelegationSigner', {}), undefined, /namespace shop is not known/],
    ['not a ClusterDelegationSigner at all', signer('DelegationSigner'), labels, /has no spec\.namespaceSelector/],
  ];
  for (const [what, s, nsLabels, want] of table) {
    const access = clusterSignerAccess(s, 'shop', nsLabels);
    if (want === true) {
      assert.deepEqual(access, { allowed: true }, what);
      continue;
    }
    assert.equal(access.allowed, false, what);
    assert.match(access.allowed ? '' : access.message, want, what);
    assert.doesNotMatch(access.allowed ? '' : access.message, /payments/, `${what}: the selector's content is not shown`);
  }
});
