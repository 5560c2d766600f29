// Used-by path 3 on the real node: a certificate Secret, a DelegatedCredential and an annotated
// Deployment in an opted-in namespace. The webhook injects the native sidecar; kubelet mounts the
// issued Secret; the sidecar starts before the app and is Ready only once it has a credential;
// NSS tstclnt -B (run in the node's network namespace, like every client here) gets a DC and the
// app's answer.
//
// The keyless fallback (curl and openssl, which do not offer delegated credentials, answered
// through the key server) lands separately: once the chart deploys the key server, add a test
// below that creates the ClusterDelegationSigner/keyless wiring for this namespace and asserts
//   (await run('curl', ['-sS', '--cacert', pki.caCert, '--resolve', `${pki.serverName}:8443:${pod.ip}`, `https://${pki.serverName}:8443/`])).stdout
// contains APP_GREETING, and the same through `openssl s_client -connect ${pod.ip}:8443 -servername ...`
// (test/interop/support.ts has the openssl helpers); `pod` and `pki` are the ones of this file.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { assertInNodeNetwork, kubectl, waitFor } from './support/node.js';
import {
  annotatedDeploymentYaml, createCertificateSecret, createNamespace, dcStatus, delegatedCredentialYaml, ensureOperator, makePki,
  measure, podsOf, tstclnt, waitForReadyPod, type PodInfo, type Pki,
} from './support/operator.js';

let ns = '';
let pki: Pki;
let pod: PodInfo;

before(async () => {
  assertInNodeNetwork();
  await ensureOperator();
  ns = await createNamespace('e2e-sidecar', true);
  pki = makePki();
});
after(async () => { if (ns) await kubectl(['delete', 'namespace', ns, '--wait=false']); });

test('the injected sidecar is not Ready before a credential exists, and is once the DC is issued', async () => {
  // DC and Deployment first: the pod waits for the Secret the DC will produce.
  await kubectl(['apply', '-f', '-'], { input: delegatedCredentialYaml(ns, 'web-dc', { validity: '1h' }) });
  await kubectl(['apply', '-f', '-'], { input: annotatedDeploymentYaml(ns, 'web', 'web-dc') });
  const waiting = await waitFor('the pod to be created', 60_000, async () => (await podsOf(ns, 'web'))[0]);
  await new Promise((r) => setTimeout(r, 3000));
  const [still] = await podsOf(ns, 'web');
  assert.equal(still?.ready, false, 'Ready without any credential');
  assert.equal(waiting.raw.metadata.annotations?.['dc-operator.io/injected-secret'], 'web-dc');
  const status = await dcStatus(ns, 'web-dc');
  assert.notEqual(status.conditions?.find((c) => c.type === 'Ready')?.status, 'True');

  const t0 = performance.now();
  await createCertificateSecret(ns, pki);
  pod = await waitForReadyPod(ns, 'web');
  const first = await waitFor('a DC handshake through the pod', 60_000, async () => {
    const h = await tstclnt(pod.ip, pki);
    return h.ok && h.delegated ? h : undefined;
  }, 200);
  measure('certificate Secret applied (DC, Deployment already applied) -> first DC handshake through the pod', performance.now() - t0, 'ms');
  assert.ok(first.delegated);
});

test('the sidecar is a native sidecar that started before the app', async () => {
  const p = pod.raw;
  const sidecar = p.spec.initContainers?.find((c) => c.name === 'dc-operator-sidecar');
  assert.ok(sidecar, 'no dc-operator-sidecar in initContainers');
  assert.equal(sidecar.restartPolicy, 'Always');
  assert.deepEqual(p.spec.containers.map((c) => c.name), ['app']);
  const sidecarStart = p.status.initContainerStatuses?.find((c) => c.name === 'dc-operator-sidecar')?.state?.running?.startedAt;
  const appStart = p.status.containerStatuses?.find((c) => c.name === 'app')?.state?.running?.startedAt;
  assert.ok(sidecarStart && appStart, `start times: sidecar ${sidecarStart}, app ${appStart}`);
  assert.ok(Date.parse(sidecarStart) <= Date.parse(appStart), `sidecar started ${sidecarStart}, app ${appStart}`);
});

test('NSS tstclnt -B gets a delegated credential and the app\'s answer, every time', async () => {
  for (let i = 0; i < 5; i++) {
    const h = await tstclnt(pod.ip, pki);
    assert.ok(h.delegated, `handshake ${i}: no delegated credential:\n${h.output}`);
    assert.ok(h.answered, `handshake ${i}: no answer from the app:\n${h.output}`);
  }
});

test('the issued Secret never holds the certificate\'s private key', async () => {
  const keys = Object.keys(JSON.parse(await kubectl(['get', 'secret', 'web-dc', '-n', ns, '-o', 'jsonpath={.data}'])) as object);
  assert.ok(!keys.includes('tls.key'), `keys: ${keys.join(', ')}`);
  assert.ok(keys.includes('ecdsa_secp256r1_sha256.cred'));
});
