// Key Secrets of in-cluster signers are watched: a DelegatedCredential failing for want of its
// signer's key is retried as soon as the key Secret is fixed, not at the end of its backoff.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CustomObjectsApi, type CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { X509Certificate } from 'node:crypto';
import type { DelegationSigner } from '../../src/operator/api/v1alpha1.js';
import { validateDelegatedCredential } from '../../src/tls/delegated/index.js';
import type { TestNamespace } from '../support/cluster.js';
import { DC, createDelegatedCredential, dcctlCertificate, putSecret, secretData, tlsSecret, waitFor, waitForCondition, namespacedControllerHooks } from './operator-fixtures.js';

let kc: KubeConfig;
let core: CoreV1Api;
let ns: TestNamespace;

namespacedControllerHooks('signer-keys', (c) => ({ kc, core, ns } = c));

void it('retries at once when the key Secret of a failing DelegationSigner gets its key, and writes the signer status', async () => {
  const cert = dcctlCertificate();
  await putSecret(core, tlsSecret(ns.name, 'web-tls', cert.crt));
  await putSecret(core, { metadata: { name: 'web-key', namespace: ns.name }, type: 'Opaque', data: { unrelated: Buffer.from('x').toString('base64') } });
  const custom = kc.makeApiClient(CustomObjectsApi);
  await custom.createNamespacedCustomObject({
    group: DC.group,
    version: DC.version,
    namespace: ns.name,
    plural: 'delegationsigners',
    body: { apiVersion: 'dc-operator.io/v1alpha1', kind: 'DelegationSigner', metadata: { name: 'vault' }, spec: { inCluster: { keySecretRef: { name: 'web-key' } } } },
  });
  await createDelegatedCredential(kc, ns.name, 'web', { certificateSecretRef: { name: 'web-tls' }, secretName: 'web-dc', signerRef: { kind: 'DelegationSigner', name: 'vault' } });
  await waitForCondition(kc, ns.name, 'web', 'SignerReady', 'False', 'KeyNotFound');
  // Retries back off 1, 2, 4, 8, 16 s: after ~17 s of failing the next retry is about 14 s away.
  await sleep(17_000);
  const signer = (await custom.getNamespacedCustomObject({ group: DC.group, version: DC.version, namespace: ns.name, plural: 'delegationsigners', name: 'vault' })) as DelegationSigner;
  const signerCondition = signer.status?.conditions?.find((c) => c.type === 'Ready');
  assert.equal(signerCondition?.status, 'False');
  assert.equal(signerCondition?.reason, 'KeyNotFound');

  const fixedAt = Date.now();
  await putSecret(core, { metadata: { name: 'web-key', namespace: ns.name }, type: 'Opaque', data: { 'tls.key': Buffer.from(cert.key).toString('base64') } });
  await waitForCondition(kc, ns.name, 'web', 'Ready', 'True', undefined, 30_000);
  const latency = Date.now() - fixedAt;
  assert.ok(latency < 6000, `issued ${latency} ms after the key Secret was fixed (the backoff alone would wait ~14 s)`);
  const out = await core.readNamespacedSecret({ namespace: ns.name, name: 'web-dc' });
  validateDelegatedCredential(secretData(out, 'ecdsa_secp256r1_sha256.cred'), { certificate: new X509Certificate(secretData(out, 'tls.crt')) });

  await waitFor('DelegationSigner vault Ready=True (KeyLoaded)', 10_000, async () => {
    const s = (await custom.getNamespacedCustomObject({ group: DC.group, version: DC.version, namespace: ns.name, plural: 'delegationsigners', name: 'vault' })) as DelegationSigner;
    const c = s.status?.conditions?.find((x) => x.type === 'Ready');
    return c?.status === 'True' && c.reason === 'KeyLoaded' ? true : undefined;
  });
});
