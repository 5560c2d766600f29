// Used-by path 3 on the real node: a certificate Secret, a DelegatedCredential and an annotated
// Deployment in an opted-in namespace. The webhook injects the native sidecar; kubelet mounts the
// issued Secret; the sidecar starts before the app and is Ready only once it has a credential;
// NSS tstclnt -B (run in the node's network namespace, like every client here) gets a DC and the
// app's answer. curl and openssl s_client, which do not offer delegated credentials, get the app's
// answer through the keyless fallback: the sidecar reaches the chart's key server by the Service
// name in its bundle (cluster DNS and kube-proxy of the node), and both sides count the signature.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { assertInNodeNetwork, kubectl, run, waitFor } from './support/node.js';
import {
  annotatedDeploymentYaml, APP_GREETING, createCertificateSecret, createNamespace, dcStatus, delegatedCredentialYaml, ensureOperator, makePki,
  KEYSERVER, measure, OPERATOR_NS, podsOf, tstclnt, waitForReadyPod, type PodInfo, type Pki,
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

/** Sum of a Prometheus counter's samples whose labels include all of `labels`, from text exposition. */
function counterSum(text: string, name: string, labels: Record<string, string>): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[3]);
  }
  return sum;
}

async function scrape(url: string): Promise<string> {
  const r = await run('curl', ['-fsS', '--max-time', '10', url]);
  assert.equal(r.code, 0, `scraping ${url}: ${r.stderr}`);
  return r.stdout;
}

const sidecarKeyless = async (): Promise<number> =>
  counterSum(await scrape(`http://${pod.ip}:15300/metrics`), 'dc_sidecar_handshakes_total', { mode: 'keyless', result: 'success' });
const sidecarDc = async (): Promise<number> =>
  counterSum(await scrape(`http://${pod.ip}:15300/metrics`), 'dc_sidecar_handshakes_total', { mode: 'dc', result: 'success' });

/** Successful signing requests answered by the chart's key server pods (all replicas). */
async function keyserverSignatures(): Promise<number> {
  const ips = (await kubectl(['get', 'endpointslices', '-n', OPERATOR_NS, '-l', `kubernetes.io/service-name=${KEYSERVER}`,
    '-o', 'jsonpath={.items[*].endpoints[*].addresses[0]}'])).split(/\s+/).filter(Boolean);
  assert.ok(ips.length > 0, `no endpoints of the ${KEYSERVER} Service`);
  let sum = 0;
  for (const ip of ips) {
    const text = await scrape(`http://${ip}:9090/metrics`);
    for (const line of text.split('\n')) {
      const m = /^keyless_server_requests_total\{([^}]*)\} (\S+)$/.exec(line);
      if (m?.[1]?.includes('result="ok"') && /opcode="[^"]*sign[^"]*"/i.test(m[1])) sum += Number(m[2]);
    }
  }
  return sum;
}

const curlPod = (): ReturnType<typeof run> => run('curl', ['-sS', '--max-time', '15', '--cacert', pki.caCert,
  '--resolve', `${pki.serverName}:8443:${pod.ip}`, `https://${pki.serverName}:8443/`]);

test('curl (no delegated credentials) gets the app\'s answer through the keyless fallback: the key server signed', async () => {
  const [sidecar0, dc0, server0] = [await sidecarKeyless(), await sidecarDc(), await keyserverSignatures()];
  // The sidecar's keyless client may still be connecting to the key server through the Service.
  const t0 = performance.now();
  const first = await waitFor('curl answered through the pod', 60_000, async () => {
    const r = await curlPod();
    return r.code === 0 ? r : undefined;
  }, 500);
  measure('first keyless (curl) answer through the pod after the pod was Ready and DC-tested', performance.now() - t0, 'ms');
  assert.ok(first.stdout.includes(APP_GREETING), `curl: ${first.stdout}${first.stderr}`);
  for (let i = 0; i < 3; i++) {
    const r = await curlPod();
    assert.equal(r.code, 0, `curl ${i}: ${r.stderr}`);
    assert.ok(r.stdout.includes(APP_GREETING), `curl ${i}: ${r.stdout}`);
  }
  const [sidecar1, dc1, server1] = [await sidecarKeyless(), await sidecarDc(), await keyserverSignatures()];
  assert.ok(sidecar1 - sidecar0 >= 4, `sidecar keyless handshakes ${sidecar0} -> ${sidecar1}`);
  assert.equal(dc1, dc0, 'curl was served a delegated credential');
  assert.ok(server1 - server0 >= 4, `key server signatures ${server0} -> ${server1}`);
});

for (const version of ['-tls1_3', '-tls1_2'] as const) {
  test(`openssl s_client ${version} gets the app's answer through the keyless fallback`, async () => {
    const [sidecar0, server0] = [await sidecarKeyless(), await keyserverSignatures()];
    const r = await run('openssl', ['s_client', version, '-connect', `${pod.ip}:8443`, '-servername', pki.serverName,
      '-CAfile', pki.caCert, '-verify_return_error', '-ign_eof'],
    { input: `GET / HTTP/1.0\r\nHost: ${pki.serverName}\r\n\r\n`, timeoutMs: 20_000 });
    const out = r.stdout + r.stderr;
    assert.equal(r.code, 0, out);
    assert.match(out, /Verify return code: 0 \(ok\)/);
    assert.match(out, version === '-tls1_3' ? /Protocol\s*:\s*TLSv1\.3/ : /Protocol\s*:\s*TLSv1\.2/);
    assert.ok(out.includes(APP_GREETING), out);
    const [sidecar1, server1] = [await sidecarKeyless(), await keyserverSignatures()];
    assert.ok(sidecar1 > sidecar0, `sidecar keyless handshakes ${sidecar0} -> ${sidecar1}`);
    assert.ok(server1 > server0, `key server signatures ${server0} -> ${server1}`);
  });
}
