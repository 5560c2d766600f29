// Used-by path 2 on the real node: `kubectl apply --server-side -f manifests/install.yaml`.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { assertInNodeNetwork, e2e, kubectl, repoRoot } from './support/node.js';
import { OPERATOR_NS, waitForOperatorReady } from './support/operator.js';

const manifest = join(repoRoot, 'manifests', 'install.yaml');

before(() => assertInNodeNetwork());

test('kubectl apply --server-side -f manifests/install.yaml: controller (2, a leader), webhook and key server Ready', async () => {
  await kubectl(['apply', '--server-side', '-f', manifest], { timeoutMs: 120_000 });
  const r = await waitForOperatorReady();
  assert.equal(r.controllerPods.length, 2);
  assert.equal(r.keyserverReady, 2, 'the key server (2 replicas by default) is Ready');
  // manifests/install.yaml names the chart's default image (pullPolicy IfNotPresent): the one built here.
  const images = new Set((await kubectl(['get', 'pods', '-n', OPERATOR_NS, '-o', 'jsonpath={.items[*].spec.containers[*].image}'])).split(/\s+/).filter(Boolean));
  assert.deepEqual([...images], [e2e.image]);
});

test('kubectl delete -f manifests/install.yaml removes it all', async () => {
  await kubectl(['delete', '-f', manifest, '--wait', '--timeout', '180s'], { timeoutMs: 200_000 });
  const left = await kubectl(['get', 'crd', '-o', 'name']);
  assert.doesNotMatch(left, /dc-operator\.io/);
});
