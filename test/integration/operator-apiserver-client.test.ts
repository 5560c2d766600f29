// The controller's own apiserver client (src/operator/apiserver) against the real apiserver, with
// each way a kubeconfig authenticates: a client certificate (the harness's admin kubeconfig), a
// service account token read from a tokenFile (our client), and an exec plugin (which our client
// hands to @kubernetes/client-node, loaded for that only). Each controller runs with leader
// election on (the Lease through the same client), issues a DelegatedCredential, records its
// Event, and stops.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { CoordinationV1Api, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { runController } from '../../src/operator/main.js';
import type { Logger } from '../../src/operator/ports.js';
import { createTestNamespace, testKubeConfig, testKubeconfigPath, type TestNamespace } from '../support/cluster.js';
import { applyControllerRbac, applyCrds, createDelegatedCredential, dcctlCertificate, putSecret, tlsSecret, waitFor, waitForCondition } from './operator-fixtures.js';

let admin: KubeConfig;
let ns: TestNamespace;
let token = '';
let cleanup: (() => Promise<void>) | undefined;
const dir = mkdtempSync(join(tmpdir(), 'dc-operator-client-'));

before(async () => {
  admin = await testKubeConfig();
  await applyCrds(admin);
  ns = await createTestNamespace('apiclient');
  const core = admin.makeApiClient(CoreV1Api);
  await core.createNamespacedServiceAccount({ namespace: ns.name, body: { metadata: { name: 'dc-operator' } } });
  cleanup = await applyControllerRbac(admin, ns.name, 'dc-operator');
  const issued = await core.createNamespacedServiceAccountToken({ namespace: ns.name, name: 'dc-operator', body: { spec: { audiences: [], expirationSeconds: 3600 } } });
  token = issued.status?.token ?? '';
  assert.ok(token);
  const cert = dcctlCertificate();
  await putSecret(core, tlsSecret(ns.name, 'tls', cert.crt, cert.key));
});

after(async () => {
  await cleanup?.();
  await ns?.delete();
});

/** A kubeconfig for the test cluster with `user` as its credentials (the CA is the admin kubeconfig's). */
function kubeconfigWith(name: string, user: Record<string, unknown>): string {
  const cluster = admin.getCurrentCluster();
  assert.ok(cluster?.caData, 'the harness kubeconfig carries its CA inline');
  const file = join(dir, name);
  // YAML as kubectl writes it (JSON is YAML too; the admin kubeconfig of the harness is YAML proper).
  writeFileSync(
    file,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'test', cluster: { server: cluster.server, 'certificate-authority-data': cluster.caData } }],
      users: [{ name: 'operator', user }],
      contexts: [{ name: 'operator', context: { cluster: 'test', user: 'operator' } }],
      'current-context': 'operator',
    }),
    { mode: 0o600 },
  );
  return file;
}

function recordingLogger(lines: string[]): Logger {
  const keep = (level: string) => (message: string, meta?: Record<string, unknown>) => void lines.push(`${level} ${message} ${JSON.stringify(meta ?? {})}`);
  return { info: keep('info'), debug: () => undefined, warn: keep('warn'), error: keep('error') };
}

async function issuesWith(kubeconfig: string, dcName: string): Promise<string[]> {
  const lines: string[] = [];
  const controller = await runController({
    kubeconfig,
    namespace: ns.name,
    operatorNamespace: ns.name,
    leaseName: `lease-${dcName}`,
    metricsPort: 0,
    metricsHost: '127.0.0.1',
    leaseDurationSeconds: 4,
    retryPeriodMs: 500,
    renewDeadlineMs: 3000,
    log: recordingLogger(lines),
  });
  try {
    await waitFor('leader', 15_000, () => Promise.resolve(controller.isLeader() ? true : undefined));
    await createDelegatedCredential(admin, ns.name, dcName, { certificateSecretRef: { name: 'tls' }, secretName: `${dcName}-out` });
    await waitForCondition(admin, ns.name, dcName, 'Ready', 'True', undefined, 30_000);
    const core = admin.makeApiClient(CoreV1Api);
    await waitFor('the Issued Event', 15_000, async () => {
      const events = await core.listNamespacedEvent({ namespace: ns.name, fieldSelector: `involvedObject.name=${dcName}` });
      return events.items.some((e) => e.reason === 'Issued') ? true : undefined;
    });
    assert.ok((await core.readNamespacedSecret({ namespace: ns.name, name: `${dcName}-out` })).data?.['ecdsa_secp256r1_sha256.cred'], 'the output Secret written');
  } finally {
    await controller.stop();
  }
  const lease = await admin.makeApiClient(CoordinationV1Api).readNamespacedLease({ namespace: ns.name, name: `lease-${dcName}` });
  assert.equal(lease.spec?.holderIdentity, undefined, 'the Lease was taken, renewed and released through the same client');
  assert.deepEqual(lines.filter((l) => l.startsWith('warn') || l.startsWith('error')), []);
  return lines;
}

void it('with a client certificate (the admin kubeconfig): our client', async () => {
  const lines = await issuesWith(await testKubeconfigPath(), 'by-cert');
  assert.ok(lines.some((l) => l.includes('dc-operator controller starting') && /"apiserver":"kubeconfig [^"]+, client certificate"/.test(l)), lines.join('\n'));
  assert.ok(!lines.some((l) => l.includes('client-node')));
});

void it('with a service account token in a tokenFile: our client', async () => {
  writeFileSync(join(dir, 'sa-token'), token, { mode: 0o600 });
  const lines = await issuesWith(kubeconfigWith('token-file', { tokenFile: 'sa-token' }), 'by-token');
  assert.ok(lines.some((l) => l.includes(`token file ${join(dir, 'sa-token')}`)), lines.join('\n'));
  assert.ok(!lines.some((l) => l.includes('client-node')));
});

void it('with an exec credential plugin: client-node authenticates, said at start', async () => {
  const credential = JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', status: { token } });
  const kubeconfig = kubeconfigWith('exec', {
    exec: { apiVersion: 'client.authentication.k8s.io/v1', command: process.execPath, args: ['-e', `process.stdout.write(${JSON.stringify(credential)})`], interactiveMode: 'Never' },
  });
  const lines = await issuesWith(kubeconfig, 'by-exec');
  assert.ok(lines.some((l) => l.includes('@kubernetes/client-node authenticates its requests') && l.includes('exec credential plugin')), lines.join('\n'));
});
