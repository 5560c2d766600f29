// Bad input at the edge of the real cluster: a pod annotated for a DelegatedCredential that does
// not exist is refused by the webhook with a message that names it and says what to fix, both when
// created directly (kubectl shows the message) and through a Deployment (the ReplicaSet's
// FailedCreate event carries it); a namespace without the opt-in label (dc-operator.io/injection=
// enabled) is never sent to the webhook (its admission counters do not move), so its annotated
// pods run exactly as they were written.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { assertInNodeNetwork, e2e, kubectl, run, waitFor } from './support/node.js';
import { annotatedDeploymentYaml, appContainer, createNamespace, ensureOperator, OPERATOR_NS, podsOf, waitForReadyPod } from './support/operator.js';

const namespaces: string[] = [];
const notFound = (ns: string, dc: string): RegExp =>
  new RegExp(`DelegatedCredential ${ns}/${dc} not found: create it or fix the dc-operator\\.io/inject annotation`);

before(async () => {
  assertInNodeNetwork();
  await ensureOperator();
});
after(async () => { for (const ns of namespaces) await kubectl(['delete', 'namespace', ns, '--wait=false']); });

test('a pod annotated for a DelegatedCredential that does not exist is refused, with a message naming it and what to fix', async () => {
  const ns = await createNamespace('e2e-refused', true);
  namespaces.push(ns);
  const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'orphan', namespace: ns, annotations: { 'dc-operator.io/inject': 'no-such-dc' } },
    spec: { containers: [appContainer()] } };
  const r = await run(join(e2e.bin, 'kubectl'), ['create', '-f', '-'], { input: JSON.stringify(pod) });
  assert.notEqual(r.code, 0, `the pod was admitted:\n${r.stdout}`);
  assert.match(r.stderr, /admission webhook .* denied the request/);
  assert.match(r.stderr, notFound(ns, 'no-such-dc'));
  assert.notEqual((await run(join(e2e.bin, 'kubectl'), ['get', 'pod', 'orphan', '-n', ns])).code, 0, 'a refused pod exists');
});

test('a Deployment annotated for a DelegatedCredential that does not exist gets no pod, and its ReplicaSet says why', async () => {
  const ns = await createNamespace('e2e-refused-deploy', true);
  namespaces.push(ns);
  await kubectl(['apply', '-f', '-'], { input: annotatedDeploymentYaml(ns, 'orphan', 'missing-dc') });
  const event = await waitFor('a FailedCreate event on the ReplicaSet', 60_000, async () => {
    const list = JSON.parse(await kubectl(['get', 'events', '-n', ns, '--field-selector', 'reason=FailedCreate', '-o', 'json'])) as
      { items: { involvedObject: { kind: string }; message: string }[] };
    return list.items.find((e) => e.involvedObject.kind === 'ReplicaSet');
  }, 500);
  assert.match(event.message, /denied the request/);
  assert.match(event.message, notFound(ns, 'missing-dc'));
  assert.deepEqual(await podsOf(ns, 'orphan'), [], 'a pod of the refused Deployment exists');
  // Its ReplicaSet would go on retrying (and asking the webhook): the next test counts requests.
  await kubectl(['delete', 'deployment', 'orphan', '-n', ns, '--wait', '--timeout', '60s'], { timeoutMs: 70_000 });
  await waitFor('the ReplicaSet of the refused Deployment to be gone', 60_000, async () =>
    ((await kubectl(['get', 'replicasets', '-n', ns, '-o', 'name'])).trim() === '' ? true : undefined), 500);
});

/** Admission reviews the webhook pods answered, summed over pods and results (their /metrics). */
async function webhookAdmissions(): Promise<number> {
  const ips = (await kubectl(['get', 'pods', '-n', OPERATOR_NS, '-l', 'app.kubernetes.io/component=webhook', '--field-selector', 'status.phase=Running',
    '-o', 'jsonpath={.items[*].status.podIP}'])).split(/\s+/).filter(Boolean);
  assert.ok(ips.length > 0, 'no running webhook pod');
  let sum = 0;
  for (const ip of ips) {
    // The webhook serves /metrics on its HTTPS port with its self-issued certificate: only counters are read here.
    const r = await run('curl', ['-fsS', '-k', '--max-time', '10', `https://${ip}:9443/metrics`]);
    assert.equal(r.code, 0, `scraping the webhook at ${ip}: ${r.stderr}`);
    for (const line of r.stdout.split('\n')) {
      const m = /^dc_operator_webhook_admissions_total(?:\{[^}]*\})? (\S+)$/.exec(line);
      if (m) sum += Number(m[1]);
    }
  }
  return sum;
}

test('a namespace without the opt-in label is left alone: never sent to the webhook, annotated pods run as written', async () => {
  // The counter moves when the webhook is asked at all (here: an opted-in pod it refuses).
  const probeNs = await createNamespace('e2e-counted', true);
  namespaces.push(probeNs);
  const c0 = await webhookAdmissions();
  const refused = await run(join(e2e.bin, 'kubectl'), ['create', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'Pod',
    metadata: { name: 'counted', namespace: probeNs, annotations: { 'dc-operator.io/inject': 'no-such-dc' } }, spec: { containers: [appContainer()] } }) });
  assert.notEqual(refused.code, 0);
  const c1 = await webhookAdmissions();
  assert.ok(c1 > c0, `the webhook's admission counter did not move for a request it answered (${c0} -> ${c1})`);

  const ns = await createNamespace('e2e-not-opted-in', false);
  namespaces.push(ns);
  await kubectl(['apply', '-f', '-'], { input: annotatedDeploymentYaml(ns, 'plain', 'no-such-dc') });
  const pod = await waitForReadyPod(ns, 'plain');
  assert.equal(await webhookAdmissions(), c1, 'the webhook was asked about a pod in a namespace without the opt-in label');
  assert.deepEqual(pod.raw.spec.initContainers ?? [], []);
  assert.deepEqual(pod.raw.spec.containers.map((c) => c.name), ['app']);
  assert.equal(pod.raw.metadata.annotations?.['dc-operator.io/injected'], undefined);
  assert.equal(pod.raw.metadata.annotations?.['dc-operator.io/inject'], 'no-such-dc', 'the annotation as written');
});
