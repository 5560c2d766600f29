// Two operator processes' worth of controllers against one apiserver: only the Lease holder
// issues; when it stops (releasing the lease) or dies (lease expires), the other takes over.
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { CoordinationV1Api, CoreV1Api, V1MicroTime, type KubeConfig } from '@kubernetes/client-node';
import { runController, type ControllerHandle, type ControllerOptions } from '../../src/operator/main.js';
import { createLogger } from '../../src/operator/logger.js';
import { createTestNamespace, testKubeConfig, testKubeconfigPath, type TestNamespace } from '../support/cluster.js';
import { applyCrds, createDelegatedCredential, dcctlCertificate, putSecret, tlsSecret, waitFor, waitForCondition } from './operator-fixtures.js';

let kc: KubeConfig;
let ns: TestNamespace;
const running: ControllerHandle[] = [];

before(async () => {
  kc = await testKubeConfig();
  await applyCrds(kc);
  ns = await createTestNamespace('leader');
});

after(async () => {
  await Promise.all(running.map((c) => c.stop()));
  await ns?.delete();
});

async function replica(identity: string, extra: Partial<ControllerOptions> = {}): Promise<ControllerHandle> {
  const handle = await runController({
    kubeconfig: await testKubeconfigPath(),
    namespace: ns.name,
    operatorNamespace: ns.name,
    metricsPort: 0,
    metricsHost: '127.0.0.1',
    identity,
    leaseDurationSeconds: 4,
    renewDeadlineMs: 3000,
    retryPeriodMs: 500,
    log: createLogger(process.env['DC_TEST_LOG_LEVEL'] ?? 'error'),
    ...extra,
  });
  running.push(handle);
  return handle;
}

async function issuedTotal(handle: ControllerHandle): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${handle.port}/metrics`)).text();
  return [...text.matchAll(/^dc_operator_issued_credentials_total\{[^}]*\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
}

async function leaseHolder(): Promise<string | undefined> {
  const lease = await kc.makeApiClient(CoordinationV1Api).readNamespacedLease({ namespace: ns.name, name: 'dc-operator-controller' });
  return lease.spec?.holderIdentity ?? undefined;
}

void it('only the leader issues, and the standby takes over when the leader stops', async () => {
  const core = kc.makeApiClient(CoreV1Api);
  const first = await replica('replica-a');
  await waitFor('replica-a leads', 10_000, () => Promise.resolve(first.isLeader() ? true : undefined));
  const second = await replica('replica-b');
  const cert = dcctlCertificate();
  await putSecret(core, tlsSecret(ns.name, 'tls', cert.crt, cert.key));
  await createDelegatedCredential(kc, ns.name, 'one', { certificateSecretRef: { name: 'tls' }, secretName: 'one-dc' });
  await waitForCondition(kc, ns.name, 'one', 'Ready', 'True');
  assert.equal(await leaseHolder(), 'replica-a');
  assert.equal(second.isLeader(), false);
  assert.equal(await issuedTotal(first), 1);
  assert.equal(await issuedTotal(second), 0, 'the standby wrote nothing');
  assert.equal((await fetch(`http://127.0.0.1:${second.port}/readyz`)).status, 200, 'a standby is ready');

  const stoppedAt = Date.now();
  await first.stop(); // graceful: releases the lease
  await waitFor('replica-b leads', 10_000, () => Promise.resolve(second.isLeader() ? true : undefined), 100);
  const takeover = Date.now() - stoppedAt;
  assert.ok(takeover < 4000, `took over in ${takeover} ms, within the lease duration`);
  await createDelegatedCredential(kc, ns.name, 'two', { certificateSecretRef: { name: 'tls' }, secretName: 'two-dc' });
  await waitForCondition(kc, ns.name, 'two', 'Ready', 'True');
  assert.equal(await issuedTotal(second), 1, 'the new leader issued the new credential, and did not re-issue the first');
  assert.equal(await leaseHolder(), 'replica-b');
});

void it('a lease held by a crashed replica is taken over only after the lease duration', async () => {
  // Everyone from the previous test stops (releasing the lease); then the Lease is left as a
  // crashed leader would leave it: a holder that never renews again.
  await Promise.all(running.map((h) => h.stop()));
  const coordination = kc.makeApiClient(CoordinationV1Api);
  const lease = await coordination.readNamespacedLease({ namespace: ns.name, name: 'dc-operator-controller' });
  await coordination.replaceNamespacedLease({
    namespace: ns.name,
    name: 'dc-operator-controller',
    body: { ...lease, spec: { ...lease.spec, holderIdentity: 'crashed-replica', leaseDurationSeconds: 4, renewTime: new V1MicroTime() } },
  });
  const since = Date.now();
  const third = await replica('replica-c');
  await waitFor('replica-c takes over the abandoned lease', 15_000, () => Promise.resolve(third.isLeader() ? true : undefined), 100);
  const waited = Date.now() - since;
  assert.ok(waited >= 3500, `waited ${waited} ms: not before the lease duration`);
  assert.ok(waited < 9000, `waited ${waited} ms: soon after the lease duration`);
  assert.equal(await leaseHolder(), 'replica-c');
});

void it('says once which Lease namespace is missing and what to pass, and leads as soon as the namespace exists', async () => {
  const missing = `${ns.name}-lease`;
  const lines: string[] = [];
  const keep = (message: string): void => void lines.push(message);
  const handle = await replica('replica-lonely', {
    operatorNamespace: missing,
    log: { error: keep, warn: keep, info: () => {}, debug: () => {} },
  });
  await waitFor('the missing namespace is reported', 10_000, () => Promise.resolve(lines.length > 0 ? true : undefined), 100);
  await new Promise((r) => setTimeout(r, 1500)); // three more retry periods
  assert.deepEqual(lines, [
    `leader election: cannot create the Lease ${missing}/dc-operator-controller: namespace "${missing}" does not exist. ` +
      `Create it (kubectl create namespace ${missing}), or run with --operator-namespace set to the namespace the controller runs in ` +
      '(default: $POD_NAMESPACE, else dc-operator); retrying until it exists',
  ]);
  assert.equal(handle.isLeader(), false);
  const core = kc.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: missing, labels: { 'dc-operator.test/run': String(process.pid) } } } });
  try {
    await waitFor('leads once the namespace exists', 10_000, () => Promise.resolve(handle.isLeader() ? true : undefined), 100);
  } finally {
    await handle.stop(); // after() stops it again: a no-op
    await core.deleteNamespace({ name: missing });
  }
});
