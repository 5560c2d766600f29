// Used-by path 1 on the real node: `helm install` of charts/dc-operator with the image built here.
// The controller (2 replicas, leader election), the webhook and the key server become Ready; `helm uninstall`
// keeps the CRDs (crds.keep, the chart's default).
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { assertInNodeNetwork, helm, kubectl, run, e2e } from './support/node.js';
import { CONTROLLER, helmInstallArgs, OPERATOR_NS, RELEASE, waitForOperatorReady } from './support/operator.js';
import { join } from 'node:path';

const CRDS = ['delegatedcredentials.dc-operator.io', 'delegationsigners.dc-operator.io', 'clusterdelegationsigners.dc-operator.io'];

before(() => assertInNodeNetwork());

test('helm install: controller with 2 replicas and a leader, webhook Ready with its caBundle, key server Ready', async () => {
  await helm(helmInstallArgs(), { timeoutMs: 240_000 });
  const r = await waitForOperatorReady();
  assert.equal(r.controllerPods.length, 2, `controller pods: ${r.controllerPods.join(', ')}`);
  assert.ok(r.controllerPods.includes(r.leader));
  assert.ok(r.webhookReady >= 1);
  assert.equal(r.keyserverReady, 2, 'the key server (2 replicas by default) is Ready');
  // Every pod runs the image built here, never pulled.
  const images = await kubectl(['get', 'pods', '-n', OPERATOR_NS, '-o', 'jsonpath={range .items[*].spec.containers[*]}{.image} {.imagePullPolicy}{"\\n"}{end}']);
  for (const line of images.trim().split('\n')) assert.equal(line, `${e2e.image} Never`);
  // Only the leader issues: the standby logs that it waits.
  const leaderLog = await kubectl(['logs', '-n', OPERATOR_NS, r.leader]);
  assert.match(leaderLog, /became leader/);
  const standby = r.controllerPods.find((p) => p !== r.leader) ?? '';
  assert.doesNotMatch(await kubectl(['logs', '-n', OPERATOR_NS, standby]), /became leader/);
});

test('helm uninstall keeps the CRDs (crds.keep) and removes the rest', async () => {
  await helm(['uninstall', RELEASE, '-n', OPERATOR_NS, '--wait', '--timeout', '120s'], { timeoutMs: 150_000 });
  for (const crd of CRDS) assert.equal((await kubectl(['get', 'crd', crd, '-o', 'name'])).trim(), `customresourcedefinition.apiextensions.k8s.io/${crd}`);
  const left = await kubectl(['get', 'deploy,lease,mutatingwebhookconfiguration', '-A', '-o', 'name', '-l', `app.kubernetes.io/instance=${RELEASE}`]);
  assert.equal(left.trim(), '');
  assert.notEqual((await run(join(e2e.bin, 'kubectl'), ['get', 'deploy', CONTROLLER, '-n', OPERATOR_NS])).code, 0);
  // The next test file installs from manifests/install.yaml onto an empty cluster.
  await kubectl(['delete', 'crd', ...CRDS, '--wait']);
  await kubectl(['delete', 'namespace', OPERATOR_NS, '--wait', '--ignore-not-found', '--timeout', '120s'], { timeoutMs: 150_000 });
});
