// `make demo` on the real node (scripts/e2e/demo.sh runs `demo.js --cluster node` inside
// cluster.sh, as this file is): it installs the chart in a namespace of its own, so the release the
// earlier files installed goes first (cluster-scoped objects and CRDs carry their release's name).
// It must exit 0 and print the lines that prove the used-by path ran for real: the chart's pods
// from the image built here, the pod with the injected native sidecar, a DC handshake with our
// client and with NSS through the pod, and curl through the pod served via the key server.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { GROUP, RESOURCES } from '../../src/operator/api/v1alpha1.js';
import { assertInNodeNetwork, e2e, helm, kubectl, repoRoot, run } from './support/node.js';
import { measure, OPERATOR_NS, RELEASE } from './support/operator.js';

const CRDS = Object.values(RESOURCES).map((r) => `${r.plural}.${GROUP}`);

before(async () => {
  assertInNodeNetwork();
  const status = await run(join(e2e.bin, 'helm'), ['status', RELEASE, '-n', OPERATOR_NS],
    { env: { HELM_CACHE_HOME: join(e2e.root, 'helm', 'cache'), HELM_CONFIG_HOME: join(e2e.root, 'helm', 'config'), HELM_DATA_HOME: join(e2e.root, 'helm', 'data') } });
  if (status.code === 0) await helm(['uninstall', RELEASE, '-n', OPERATOR_NS, '--wait', '--timeout', '120s'], { timeoutMs: 150_000 });
  await kubectl(['delete', 'crd', ...CRDS, '--ignore-not-found', '--wait']);
});

test('make demo on the real node: chart, injected pod, DC and fallback handshakes through the pod', { timeout: 240_000 }, async () => {
  const t0 = performance.now();
  const r = await new Promise<{ code: number | null; out: string }>((resolve) => {
    const child = spawn(process.execPath, [join(repoRoot, 'dist', 'src', 'cli', 'demo.js'), '--cluster', 'node'], { cwd: repoRoot });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { out += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), 220_000);
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, out }); });
  });
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /^dc-operator demo — real node: kubelet, containerd and pods from the image built here/m);
  assert.match(r.out, /✔ helm install dc-operator -n dc-demo-system-\w+: controller, keyserver, webhook Ready, 1 replica each, image \S+ \(imported, never pulled\)/);
  assert.match(r.out, /✔ kubectl apply -f demo-app\.yaml \(delegatedcredential\.dc-operator\.io\/web-dc created, deployment\.apps\/web created\)/);
  assert.match(r.out, /✔ pod web-\S+ Ready at 10\.244\.0\.\d+: dc-operator-sidecar injected as a native sidecar \(initContainers, restartPolicy Always\), started before app/);
  const probe = /✔ dcctl probe through pod web-\S+ \(10\.244\.0\.\d+:8443\): delegated credential: yes, verified; [^\n]*; ([0-9.]+) s after kubectl apply of the DelegatedCredential/.exec(r.out);
  assert.ok(probe, r.out);
  measure('kubectl apply of a DelegatedCredential + annotated Deployment (certificate Secret present) -> first DC handshake through the new pod (make demo)', Number(probe[1]) * 1000, 'ms');
  if ((await run('sh', ['-c', 'command -v tstclnt'])).code === 0) {
    assert.match(r.out, /✔ NSS tstclnt through pod web-\S+ \([^)]*\): "Received a Delegated Credential"; the app answered "hello from the app behind dc-operator \(pod\)"/);
  }
  assert.match(r.out, /✔ curl \(no DC support\) through pod web-\S+ \([^)]*\): 200 from the app, certificate key via keyless pull/);
  assert.ok(performance.now() - t0 < 200_000, `the demo took ${Math.round((performance.now() - t0) / 1000)} s`);
});
