// Bad input at the edge of the real cluster: a pod annotated for a DelegatedCredential that does
// not exist is refused by the webhook with a message that names it; a namespace without the
// opt-in label (dc-operator.io/injection=enabled) is never sent to the webhook, so its annotated
// pods run as they are.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { assertInNodeNetwork, e2e, kubectl, run } from './support/node.js';
import { annotatedDeploymentYaml, appContainer, createNamespace, ensureOperator, waitForReadyPod } from './support/operator.js';

const namespaces: string[] = [];

before(async () => {
  assertInNodeNetwork();
  await ensureOperator();
});
after(async () => { for (const ns of namespaces) await kubectl(['delete', 'namespace', ns, '--wait=false']); });

test('a pod annotated for a DelegatedCredential that does not exist is refused, with a message naming it', async () => {
  const ns = await createNamespace('e2e-refused', true);
  namespaces.push(ns);
  const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'orphan', namespace: ns, annotations: { 'dc-operator.io/inject': 'no-such-dc' } },
    spec: { containers: [appContainer()] } };
  const r = await run(join(e2e.bin, 'kubectl'), ['create', '-f', '-'], { input: JSON.stringify(pod) });
  assert.notEqual(r.code, 0, `the pod was admitted:\n${r.stdout}`);
  assert.match(r.stderr, /admission webhook .* denied the request/);
  assert.match(r.stderr, /no-such-dc/);
  assert.match(r.stderr, new RegExp(ns));
  assert.notEqual((await run(join(e2e.bin, 'kubectl'), ['get', 'pod', 'orphan', '-n', ns])).code, 0, 'a refused pod exists');
});

test('a namespace without the opt-in label is left alone: annotated pods run without a sidecar', async () => {
  const ns = await createNamespace('e2e-not-opted-in', false);
  namespaces.push(ns);
  await kubectl(['apply', '-f', '-'], { input: annotatedDeploymentYaml(ns, 'plain', 'no-such-dc') });
  const pod = await waitForReadyPod(ns, 'plain');
  assert.deepEqual(pod.raw.spec.initContainers ?? [], []);
  assert.deepEqual(pod.raw.spec.containers.map((c) => c.name), ['app']);
  assert.equal(pod.raw.metadata.annotations?.['dc-operator.io/injected'], undefined);
});
