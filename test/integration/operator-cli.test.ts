// `dc-operator controller` as a real process: it connects with --kubeconfig, issues, logs JSON
// lines naming the object, and on SIGTERM releases its Lease and exits 0.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { CoordinationV1Api, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { createTestNamespace, testKubeConfig, testKubeconfigPath, type TestNamespace } from '../support/cluster.js';
import { freePort, repoRoot } from '../support/control-plane.js';
import { applyCrds, createDelegatedCredential, dcctlCertificate, putSecret, tlsSecret, waitFor, waitForCondition } from './operator-fixtures.js';

let kc: KubeConfig;
let ns: TestNamespace;

before(async () => {
  kc = await testKubeConfig();
  await applyCrds(kc);
  ns = await createTestNamespace('cli');
});

after(async () => {
  await ns?.delete();
});

void it('dc-operator controller issues, logs JSON lines with namespace and name, and exits 0 on SIGTERM releasing its lease', async () => {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [join(repoRoot, 'dist', 'src', 'cli', 'dc-operator.js'), 'controller', '--kubeconfig', await testKubeconfigPath(), '--namespace', ns.name, '--operator-namespace', ns.name, '--metrics-port', String(port), '--metrics-address', '127.0.0.1'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    const cert = dcctlCertificate();
    await putSecret(kc.makeApiClient(CoreV1Api), tlsSecret(ns.name, 'tls', cert.crt, cert.key));
    await createDelegatedCredential(kc, ns.name, 'cli', { certificateSecretRef: { name: 'tls' }, secretName: 'cli-dc', algorithms: ['ed25519'] });
    await waitForCondition(kc, ns.name, 'cli', 'Ready', 'True', undefined, 30_000);
    const ready = await waitFor('/readyz answers 200', 10_000, async () => ((await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200 ? true : undefined));
    assert.equal(ready, true);
  } finally {
    child.kill('SIGTERM');
  }
  assert.equal(await exited, 0, `exit code (stderr: ${stderr.slice(-2000)})`);
  const lines = stderr.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const issuing = lines.find((l) => l['msg'] === 'issuing');
  assert.ok(issuing, 'an "issuing" line');
  assert.equal(issuing['namespace'], ns.name);
  assert.equal(issuing['name'], 'cli');
  assert.equal(issuing['reason'], 'SecretMissing');
  assert.ok(lines.some((l) => l['msg'] === 'released leadership'), 'the lease was released');
  const lease = await kc.makeApiClient(CoordinationV1Api).readNamespacedLease({ namespace: ns.name, name: 'dc-operator-controller' });
  assert.equal(lease.spec?.holderIdentity ?? undefined, undefined);
});
